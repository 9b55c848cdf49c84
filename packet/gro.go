package packet

import (
	"bytes"
	"fmt"
	"math/bits"
)

// maxUDPSegments is the most datagrams coalesced into one UDP super-packet;
// Linux refuses more (UDP_MAX_SEGMENTS is 64 on older kernels).
const maxUDPSegments = 64

// maxSuperPacket is the largest super-packet built: the IPv4 total length
// limit, also used for IPv6.
const maxSuperPacket = 0xffff

// Coalescer merges IP packets bound for a TUN device with IFF_VNET_HDR into
// super-packets (receive-side GRO done in user space), so the kernel handles
// one large packet instead of many small ones.
//
// Coalesced are, within one batch and in order: TCP segments of one flow
// (same addresses and ports) with consecutive sequence numbers, equal
// acknowledgement numbers, window and options, only ACK/ECE (and PSH on the
// last) flags, equal payload sizes except a shorter last one, and IP headers
// that differ only in length, checksum and an IPv4 identification that
// increments by one; and, when enabled, UDP datagrams of one flow likewise.
// Only packets without IPv4 options, IPv6 extension headers or
// fragmentation, whose length matches their IP header and whose checksums are
// valid and canonical, are merged, so SplitGSO of a super-packet gives back
// the original packets byte for byte.
//
// A Coalescer is reused from batch to batch and allocates nothing in steady
// state. It is not safe for concurrent use.
type Coalescer struct {
	flows  map[flowKey]int // flow → index in groups of its open group
	groups []group
	out    [][]byte
}

type flowKey struct {
	src, dst     [16]byte
	sport, dport uint16
	proto        uint8
	v6           bool
}

// group is a super-packet being built.
type group struct {
	out     int // index in Coalescer.out
	l4      int // offset of the transport header
	l4Len   int // transport header length
	proto   uint8
	v6      bool
	gsoSize int    // payload size of the first segment
	segs    int    // segments so far
	nextSeq uint32 // TCP: sequence number the next segment must have
	id      uint16 // IPv4: identification of the first segment
	psh     bool   // TCP: the last segment carried PSH
	closed  bool   // no more segments may be added
}

// pktInfo is what classify learns about a packet.
type pktInfo struct {
	l4, l4Len, payload int
	proto              uint8
	v6                 bool
	seq                uint32
	flags              uint8
	id                 uint16
	// sumLater: the transport checksum is checked when the packet is
	// copied (checkSum), from the sum the copy computes.
	sumLater bool
}

// appendResult is what tryAppend did with a packet.
type appendResult int

const (
	notAppended appendResult = iota
	appended
	badChecksum // the packet cannot be merged with anything
)

// packet kinds
const (
	kindOther     = iota // no flow: passed through
	kindFlow             // TCP/UDP flow packet that cannot be merged
	kindCandidate        // may be merged
)

// Coalesce merges the packets in bufs, each at bufs[i][offset:] (the whole
// rest of the slice is the packet), and returns the buffers to write to the
// TUN device, in order of their first packet. Every returned buffer has its
// virtio-net header at [offset-VirtioNetHdrLen:offset] and its packet at
// [offset:]: a GSO header with NEEDS_CSUM (and the partial pseudo-header
// checksum in the transport checksum field) for a super-packet, a zero
// header for a packet passed through unchanged. udp enables UDP coalescing
// (only if the device accepts GSO_UDP_L4).
//
// Buffer use: Coalesce rewrites the headroom and the packets in place, and
// grows a super-packet into the spare capacity of its first packet's buffer
// (cap(bufs[i]) beyond len(bufs[i]), which must therefore be free; carve
// buffers from one array with full slice expressions). Segments merged into
// another buffer are not returned; the caller may reuse them at once. The
// returned slice and its elements alias the Coalescer and bufs: they are
// valid until the next Coalesce call or until the caller reuses bufs.
func (c *Coalescer) Coalesce(bufs [][]byte, offset int, udp bool) ([][]byte, error) {
	if offset < VirtioNetHdrLen {
		return nil, fmt.Errorf("%w: offset %d leaves no room for the %d-byte virtio-net header", ErrBufferTooSmall, offset, VirtioNetHdrLen)
	}
	for i, b := range bufs {
		if len(b) < offset {
			return nil, fmt.Errorf("%w: buffer %d is %d bytes, shorter than offset %d", ErrBufferTooSmall, i, len(b), offset)
		}
	}
	c.coalesce(bufs, nil, offset, udp)
	return c.out, nil
}

// CoalesceInto is Coalesce for packets that stay where they are: pkts[i]
// is a whole packet, never written to. Each returned buffer is one of
// slots, holding a packet passed through or a super-packet, with its
// virtio-net header at [offset-VirtioNetHdrLen:offset]; merged segments
// are copied once, straight into their super-packet, so a super-packet
// may hold as many segments as fit in 64 KiB whatever len(slots) is.
// Slots must have room for offset plus the largest super-packet in their
// capacity. When the slots run out it stops early; used tells how many of
// pkts it took. The returned slice aliases the Coalescer and slots.
func (c *Coalescer) CoalesceInto(pkts, slots [][]byte, offset int, udp bool) (out [][]byte, used int, err error) {
	if offset < VirtioNetHdrLen {
		return nil, 0, fmt.Errorf("%w: offset %d leaves no room for the %d-byte virtio-net header", ErrBufferTooSmall, offset, VirtioNetHdrLen)
	}
	if len(slots) == 0 {
		return nil, 0, fmt.Errorf("%w: no slots", ErrBufferTooSmall)
	}
	for i, s := range slots {
		if cap(s) < offset+maxSuperPacket {
			return nil, 0, fmt.Errorf("%w: slot %d holds %d bytes, need %d", ErrBufferTooSmall, i, cap(s), offset+maxSuperPacket)
		}
	}
	used = c.coalesce(pkts, slots, offset, udp)
	return c.out, used, nil
}

// coalesce does the work of Coalesce (slots nil: packets are at
// bufs[i][offset:] and grow in place) and CoalesceInto (bufs[i] is the
// packet, copied into the next slot when it starts an output). It returns
// how many of bufs it took.
func (c *Coalescer) coalesce(bufs, slots [][]byte, offset int, udp bool) int {
	if c.flows == nil {
		c.flows = make(map[flowKey]int)
	} else {
		clear(c.flows)
	}
	c.out = c.out[:0]
	c.groups = c.groups[:0]
	used := 0
	for _, b := range bufs {
		pkt := b
		if slots == nil {
			pkt = b[offset:]
		}
		// Packets to be copied have their transport checksum checked
		// as they are copied, so they are read once.
		kind, key, info := classify(pkt, udp, slots != nil)
		if kind != kindOther {
			if gi, ok := c.flows[key]; ok {
				if kind == kindCandidate {
					switch c.tryAppend(&c.groups[gi], pkt, &info, offset) {
					case appended:
						used++
						continue
					case badChecksum:
						kind = kindFlow
					}
				}
				delete(c.flows, key)
			}
		}
		if slots != nil {
			if len(c.out) == len(slots) || len(pkt) > maxSuperPacket {
				if len(c.out) == len(slots) {
					break
				}
				used++ // too large for any TUN write: dropped
				continue
			}
			slot := slots[len(c.out)]
			b = slot[:offset+len(pkt)]
			if kind == kindCandidate && info.sumLater {
				h := info.l4 + info.l4Len
				copy(b[offset:offset+h], pkt[:h])
				if !info.checkSum(pkt, copySum(b[offset+h:], pkt[h:], 0)) {
					kind = kindFlow
				}
			} else {
				copy(b[offset:], pkt)
			}
		}
		if kind == kindCandidate {
			g := group{
				out: len(c.out), l4: info.l4, l4Len: info.l4Len, proto: info.proto, v6: info.v6,
				gsoSize: info.payload, segs: 1, nextSeq: info.seq + uint32(info.payload), id: info.id,
				psh: info.flags&TCPFlagPSH != 0,
			}
			g.closed = g.psh
			c.groups = append(c.groups, g)
			if !g.closed {
				c.flows[key] = len(c.groups) - 1
			}
		}
		c.out = append(c.out, b)
		used++
	}
	for _, b := range c.out {
		clear(b[offset-VirtioNetHdrLen : offset])
	}
	for i := range c.groups {
		if c.groups[i].segs > 1 {
			c.finish(&c.groups[i], offset)
		}
	}
	return used
}

// classify parses pkt enough to find its flow and whether it may be merged.
// With sumLater it leaves the transport checksum to the caller.
func classify(pkt []byte, udp, sumLater bool) (kind int, key flowKey, info pktInfo) {
	proto, l4, ok := Transport(pkt)
	if !ok || (proto != ProtoTCP && (proto != ProtoUDP || !udp)) || len(pkt) < l4+4 {
		return kindOther, key, info
	}
	info.proto, info.l4 = proto, l4
	key.proto, key.sport, key.dport = proto, be.Uint16(pkt[l4:]), be.Uint16(pkt[l4+2:])
	if Version(pkt) == 6 {
		info.v6, key.v6 = true, true
		key.src, key.dst = [16]byte(pkt[8:24]), [16]byte(pkt[24:40])
	} else {
		copy(key.src[:], pkt[12:16])
		copy(key.dst[:], pkt[16:20])
	}
	kind = kindFlow

	// Plain headers only, exactly as long as they say.
	if info.v6 {
		if l4 != IPv6HeaderLen || IPv6HeaderLen+int(be.Uint16(pkt[4:6])) != len(pkt) {
			return
		}
	} else {
		if l4 != IPv4MinHeaderLen || int(be.Uint16(pkt[2:4])) != len(pkt) ||
			be.Uint16(pkt[6:8])&0x3fff != 0 ||
			be.Uint16(pkt[10:12]) != ipv4HeaderChecksum(pkt[:IPv4MinHeaderLen]) {
			return
		}
		info.id = be.Uint16(pkt[4:6])
	}
	if proto == ProtoTCP {
		if len(pkt) < l4+TCPMinHeaderLen {
			return
		}
		info.l4Len = int(pkt[l4+12]>>4) * 4
		if info.l4Len < TCPMinHeaderLen || l4+info.l4Len > len(pkt) {
			return
		}
		info.flags = pkt[l4+13]
		if info.flags&^(TCPFlagACK|TCPFlagPSH|TCPFlagECE) != 0 || info.flags&TCPFlagACK == 0 {
			return
		}
		info.seq = be.Uint32(pkt[l4+4:])
		if !sumLater && be.Uint16(pkt[l4+16:]) != l4Checksum(pkt, info.v6, proto, l4) {
			return
		}
	} else {
		info.l4Len = UDPHeaderLen
		if len(pkt) < l4+UDPHeaderLen || int(be.Uint16(pkt[l4+4:])) != len(pkt)-l4 {
			return
		}
		if cs := be.Uint16(pkt[l4+6:]); cs == 0 || (!sumLater && cs != l4Checksum(pkt, info.v6, proto, l4)) {
			return
		}
	}
	info.payload = len(pkt) - l4 - info.l4Len
	if info.payload == 0 {
		return
	}
	info.sumLater = sumLater
	return kindCandidate, key, info
}

// checkSum reports whether pkt carries the transport checksum it should,
// given dataSum, the sum of its payload (after the transport header).
func (info *pktInfo) checkSum(pkt []byte, dataSum uint64) bool {
	s, field := l4HeaderSum(pkt, info.v6, info.proto, info.l4, info.l4+info.l4Len)
	s, c := bits.Add64(s, dataSum, 0)
	return be.Uint16(pkt[field:]) == l4Finish(s+c, info.proto)
}

// tryAppend adds pkt's payload to group g if pkt continues it.
func (c *Coalescer) tryAppend(g *group, pkt []byte, info *pktInfo, offset int) appendResult {
	if g.closed || info.l4 != g.l4 || info.l4Len != g.l4Len || info.payload > g.gsoSize {
		return notAppended
	}
	if g.proto == ProtoUDP && g.segs >= maxUDPSegments {
		return notAppended
	}
	buf := c.out[g.out]
	head := buf[offset:]
	newLen := len(head) + info.payload
	if newLen > maxSuperPacket || offset+newLen > cap(buf) {
		return notAppended
	}
	// IP headers equal but for lengths, checksum and identification.
	if g.v6 {
		if !bytes.Equal(head[0:4], pkt[0:4]) || head[7] != pkt[7] {
			return notAppended
		}
	} else {
		if head[0] != pkt[0] || head[1] != pkt[1] || head[6] != pkt[6] || head[7] != pkt[7] || head[8] != pkt[8] ||
			info.id != g.id+uint16(g.segs) {
			return notAppended
		}
	}
	l4 := g.l4
	if g.proto == ProtoTCP {
		// Flags: head has no PSH (its group would be closed), pkt may.
		if info.seq != g.nextSeq ||
			!bytes.Equal(head[l4+8:l4+13], pkt[l4+8:l4+13]) || // ack, data offset
			head[l4+13] != info.flags&^TCPFlagPSH ||
			!bytes.Equal(head[l4+14:l4+16], pkt[l4+14:l4+16]) || // window
			!bytes.Equal(head[l4+18:l4+g.l4Len], pkt[l4+18:l4+g.l4Len]) { // urgent, options
			return notAppended
		}
	}
	buf = buf[:offset+newLen]
	if info.sumLater {
		// Written past the end of the super-packet until checked.
		if !info.checkSum(pkt, copySum(buf[offset+len(head):], pkt[l4+g.l4Len:], 0)) {
			return badChecksum
		}
	} else {
		copy(buf[offset+len(head):], pkt[l4+g.l4Len:])
	}
	c.out[g.out] = buf
	g.segs++
	g.nextSeq += uint32(info.payload)
	if info.payload < g.gsoSize {
		g.closed = true
	}
	if info.flags&TCPFlagPSH != 0 {
		g.psh, g.closed = true, true
	}
	return appended
}

// finish turns the head packet of a group of two or more segments into a
// super-packet and writes its virtio-net header.
func (c *Coalescer) finish(g *group, offset int) {
	buf := c.out[g.out]
	pkt := buf[offset:]
	l4 := g.l4
	var src, dst []byte
	h := VirtioNetHdr{
		Flags:     VirtioNetHdrFNeedsCsum,
		HdrLen:    uint16(l4 + g.l4Len),
		GSOSize:   uint16(g.gsoSize),
		CsumStart: uint16(l4),
	}
	if g.v6 {
		be.PutUint16(pkt[4:6], uint16(len(pkt)-IPv6HeaderLen))
		src, dst = pkt[8:24], pkt[24:40]
		h.GSOType = GSOTCPv6
	} else {
		be.PutUint16(pkt[2:4], uint16(len(pkt)))
		be.PutUint16(pkt[10:12], ipv4HeaderChecksum(pkt[:IPv4MinHeaderLen]))
		src, dst = pkt[12:16], pkt[16:20]
		h.GSOType = GSOTCPv4
	}
	partial := Checksum(nil, PseudoHeaderSum(g.proto, src, dst, len(pkt)-l4))
	if g.proto == ProtoTCP {
		if g.psh {
			pkt[l4+13] |= TCPFlagPSH
		}
		h.CsumOffset = 16
	} else {
		be.PutUint16(pkt[l4+4:], uint16(len(pkt)-l4))
		h.GSOType = GSOUDPL4
		h.CsumOffset = 6
	}
	be.PutUint16(pkt[l4+int(h.CsumOffset):], partial)
	h.Encode(buf[offset-VirtioNetHdrLen : offset])
}
