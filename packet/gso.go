package packet

import "fmt"

// SplitGSO turns one packet read from a TUN device with IFF_VNET_HDR into
// the packets it stands for, written to outBufs[i][offset:] with their sizes
// in sizes[i]; it returns how many it wrote. pkt is the packet after the
// virtio-net header hdr.
//
// A packet without GSO is copied to outBufs[0] (pkt may be exactly
// outBufs[0][offset:offset+len(pkt)]); if hdr asks for it (NEEDS_CSUM), its
// transport checksum is completed.
//
// A TCPv4, TCPv6 or UDP (GSO_UDP_L4) super-packet is cut into segments of
// hdr.GSOSize payload bytes, each with a copy of the headers in which the IP
// length, IPv4 identification (incremented per segment) and header checksum,
// TCP sequence number, UDP length and transport checksum are fixed; TCP FIN
// and PSH stay only on the last segment, CWR only on the first. The header
// and transport offsets are taken from the packet itself, not from
// hdr.HdrLen and hdr.CsumStart. For GSO, pkt must not overlap outBufs.
//
// SplitGSO never panics on malformed input: it returns an error wrapping
// ErrMalformed, ErrTruncated, ErrUnsupported, ErrTooManySegments or
// ErrBufferTooSmall, and n is then 0 (outBufs may have been written to).
func SplitGSO(hdr VirtioNetHdr, pkt []byte, outBufs [][]byte, sizes []int, offset int) (n int, err error) {
	slots := min(len(outBufs), len(sizes))
	if offset < 0 {
		return 0, fmt.Errorf("%w: negative offset %d", ErrMalformed, offset)
	}
	if slots == 0 {
		return 0, fmt.Errorf("%w: no output buffers", ErrTooManySegments)
	}
	gsoType := hdr.GSOType &^ GSOECNBit
	if gsoType == GSONone {
		return splitNone(hdr, pkt, outBufs[0], sizes, offset)
	}

	// Locate the headers.
	var v6 bool
	var proto uint8
	switch gsoType {
	case GSOTCPv4, GSOTCPv6:
		proto = ProtoTCP
	case GSOUDPL4:
		proto = ProtoUDP
	case GSOUDP:
		return 0, fmt.Errorf("%w: UDP fragmentation offload (GSO type %d)", ErrUnsupported, gsoType)
	default:
		return 0, fmt.Errorf("%w: unknown GSO type %d", ErrMalformed, hdr.GSOType)
	}
	switch Version(pkt) {
	case 4:
		if gsoType == GSOTCPv6 {
			return 0, fmt.Errorf("%w: IPv4 packet with GSO type TCPv6", ErrMalformed)
		}
	case 6:
		if gsoType == GSOTCPv4 {
			return 0, fmt.Errorf("%w: IPv6 packet with GSO type TCPv4", ErrMalformed)
		}
		v6 = true
	default:
		return 0, fmt.Errorf("%w: IP version %d in GSO packet", ErrMalformed, Version(pkt))
	}
	if !v6 && len(pkt) >= IPv4MinHeaderLen && be.Uint16(pkt[6:8])&0x3fff != 0 {
		return 0, fmt.Errorf("%w: IPv4 fragment in GSO packet", ErrMalformed)
	}
	p, l4, ok := Transport(pkt)
	if !ok {
		return 0, fmt.Errorf("%w: IP headers of GSO packet", ErrMalformed)
	}
	if p != proto {
		return 0, fmt.Errorf("%w: protocol %d with GSO type %d", ErrMalformed, p, gsoType)
	}
	var l4Len int
	if proto == ProtoTCP {
		if len(pkt) < l4+TCPMinHeaderLen {
			return 0, fmt.Errorf("%w: TCP header of GSO packet", ErrTruncated)
		}
		l4Len = int(pkt[l4+12]>>4) * 4
		if l4Len < TCPMinHeaderLen {
			return 0, fmt.Errorf("%w: TCP data offset %d", ErrMalformed, l4Len/4)
		}
	} else {
		l4Len = UDPHeaderLen
	}
	hdrLen := l4 + l4Len
	if hdrLen > len(pkt) {
		return 0, fmt.Errorf("%w: transport header of GSO packet", ErrTruncated)
	}
	gsoSize := int(hdr.GSOSize)
	if gsoSize == 0 {
		return 0, fmt.Errorf("%w: GSO size 0", ErrMalformed)
	}
	payload := pkt[hdrLen:]
	segs := max(1, (len(payload)+gsoSize-1)/gsoSize)
	if segs > slots {
		return 0, fmt.Errorf("%w: %d segments, %d buffers", ErrTooManySegments, segs, slots)
	}
	if hdrLen+min(gsoSize, len(payload)) > 0xffff {
		return 0, fmt.Errorf("%w: segment longer than 65535 bytes", ErrMalformed)
	}

	// The checksums are built from sums over the headers as read plus the
	// fields that change per segment, and the payload sum comes from the
	// copy itself: nothing just written is read back.
	var src, dst []byte
	var seq uint32
	var id uint16
	var ipSum uint64 // IPv4 header without length, identification, checksum
	if v6 {
		src, dst = pkt[8:24], pkt[24:40]
	} else {
		src, dst = pkt[12:16], pkt[16:20]
		id = be.Uint16(pkt[4:6])
		ihl := int(pkt[0]&0x0f) * 4
		ipSum = uint64(fold(sum(pkt[12:ihl], sum(pkt[6:10], sum(pkt[0:2], 0)))))
	}
	// Transport header without length, sequence number, flags, checksum,
	// plus the pseudo-header without its length.
	l4Sum := PseudoHeaderSum(proto, src, dst, 0)
	var offFlags uint16 // TCP data offset and flags as read
	if proto == ProtoTCP {
		seq = be.Uint32(pkt[l4+4:])
		offFlags = be.Uint16(pkt[l4+12:])
		l4Sum = sum(pkt[l4+18:hdrLen], sum(pkt[l4+14:l4+16], sum(pkt[l4+8:l4+12], sum(pkt[l4:l4+4], l4Sum))))
	} else {
		l4Sum = sum(pkt[l4:l4+4], l4Sum)
	}
	l4Sum = uint64(fold(l4Sum))
	for i := 0; i < segs; i++ {
		chunk := payload[min(i*gsoSize, len(payload)):min((i+1)*gsoSize, len(payload))]
		total := hdrLen + len(chunk)
		if len(outBufs[i]) < offset+total {
			return 0, fmt.Errorf("%w: segment %d needs %d bytes after offset %d, buffer has %d", ErrBufferTooSmall, i, total, offset, len(outBufs[i]))
		}
		out := outBufs[i][offset : offset+total]
		copy(out, pkt[:hdrLen])
		dataSum := uint64(fold(copySum(out[hdrLen:], chunk, 0)))

		if v6 {
			be.PutUint16(out[4:6], uint16(total-IPv6HeaderLen))
		} else {
			segID := id + uint16(i)
			be.PutUint16(out[2:4], uint16(total))
			be.PutUint16(out[4:6], segID)
			be.PutUint16(out[10:12], ^fold(ipSum+uint64(total)+uint64(segID)))
		}
		l4Len := uint64(total - l4)
		if proto == ProtoTCP {
			segSeq := seq + uint32(i*gsoSize)
			flags := offFlags
			if i != segs-1 {
				flags &^= TCPFlagFIN | TCPFlagPSH
			}
			if i != 0 {
				flags &^= TCPFlagCWR
			}
			be.PutUint32(out[l4+4:], segSeq)
			be.PutUint16(out[l4+12:], flags)
			s := l4Sum + l4Len + uint64(segSeq>>16) + uint64(segSeq&0xffff) + uint64(flags) + dataSum
			be.PutUint16(out[l4+16:], l4Finish(s, proto))
		} else {
			be.PutUint16(out[l4+4:], uint16(l4Len))
			be.PutUint16(out[l4+6:], l4Finish(l4Sum+2*l4Len+dataSum, proto))
		}
		sizes[i] = total
	}
	return segs, nil
}

// splitNone handles a packet without GSO.
func splitNone(hdr VirtioNetHdr, pkt, out []byte, sizes []int, offset int) (int, error) {
	if len(out) < offset+len(pkt) {
		return 0, fmt.Errorf("%w: packet of %d bytes, buffer has %d after offset %d", ErrBufferTooSmall, len(pkt), len(out)-min(offset, len(out)), offset)
	}
	if hdr.Flags&VirtioNetHdrFNeedsCsum != 0 {
		start, field := int(hdr.CsumStart), int(hdr.CsumStart)+int(hdr.CsumOffset)
		if field+2 > len(pkt) {
			return 0, fmt.Errorf("%w: checksum at %d+%d outside %d-byte packet", ErrMalformed, hdr.CsumStart, hdr.CsumOffset, len(pkt))
		}
		out = out[offset : offset+len(pkt)]
		copy(out, pkt)
		// The field holds the pseudo-header sum, so it is summed with the rest.
		c := ^Checksum(out[start:], 0)
		if c == 0 {
			c = 0xffff
		}
		be.PutUint16(out[field:], c)
	} else {
		copy(out[offset:], pkt)
	}
	sizes[0] = len(pkt)
	return 1, nil
}
