package packet

import (
	"encoding/binary"
	"net/netip"
)

// naiveChecksum is the textbook RFC 1071 sum over 16-bit words, used to check
// the fast one independently.
func naiveChecksum(b []byte, initial uint32) uint16 {
	s := initial
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
		for s > 0xffff {
			s = s>>16 + s&0xffff
		}
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// naivePseudo builds the pseudo-header bytes and sums them naively.
func naivePseudo(src, dst []byte, proto uint8, length int) uint32 {
	var ph []byte
	ph = append(ph, src...)
	ph = append(ph, dst...)
	if len(src) == 4 {
		ph = append(ph, 0, proto, byte(length>>8), byte(length))
	} else {
		ph = append(ph, byte(length>>24), byte(length>>16), byte(length>>8), byte(length), 0, 0, 0, proto)
	}
	return uint32(naiveChecksum(ph, 0))
}

// validL4 reports whether the transport checksum of an IP packet with no
// options or extension headers verifies, computed naively.
func validL4(pkt []byte) bool {
	var src, dst []byte
	var proto uint8
	var off int
	if pkt[0]>>4 == 4 {
		src, dst, proto, off = pkt[12:16], pkt[16:20], pkt[9], int(pkt[0]&0xf)*4
	} else {
		src, dst, proto, off = pkt[8:24], pkt[24:40], pkt[6], 40
	}
	return naiveChecksum(pkt[off:], naivePseudo(src, dst, proto, len(pkt)-off)) == 0xffff
}

func validIPv4Header(pkt []byte) bool {
	return naiveChecksum(pkt[:int(pkt[0]&0xf)*4], 0) == 0xffff
}

type tcpOpts struct {
	v6              bool
	src, dst        netip.Addr
	sport, dport    uint16
	seq, ack        uint32
	flags           uint8
	window          uint16
	id              uint16
	ttl             uint8
	tos             uint8
	options         []byte // TCP options, multiple of 4
	ipOptions       []byte // IPv4 options, multiple of 4
	payload         []byte
	udp             bool
	badChecksum     bool
	zeroUDPChecksum bool
	flowLabel       uint32
	dontFragmentOff bool
	fragmentOffset  uint16
	extraIPTrailer  int // bytes appended after the packet (padding)
}

func defaults(o *tcpOpts) {
	if !o.src.IsValid() {
		if o.v6 {
			o.src, o.dst = netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
		} else {
			o.src, o.dst = netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
		}
	}
	if o.sport == 0 {
		o.sport, o.dport = 40000, 443
	}
	if o.ttl == 0 {
		o.ttl = 64
	}
}

// build makes an IP/TCP or IP/UDP packet with correct lengths and checksums.
func build(o tcpOpts) []byte {
	defaults(&o)
	var l4 []byte
	be := binary.BigEndian
	if o.udp {
		l4 = make([]byte, 8, 8+len(o.payload))
		be.PutUint16(l4[0:], o.sport)
		be.PutUint16(l4[2:], o.dport)
		be.PutUint16(l4[4:], uint16(8+len(o.payload)))
	} else {
		hl := 20 + len(o.options)
		l4 = make([]byte, hl, hl+len(o.payload))
		be.PutUint16(l4[0:], o.sport)
		be.PutUint16(l4[2:], o.dport)
		be.PutUint32(l4[4:], o.seq)
		be.PutUint32(l4[8:], o.ack)
		l4[12] = byte(hl/4) << 4
		l4[13] = o.flags
		be.PutUint16(l4[14:], o.window)
		copy(l4[20:], o.options)
	}
	l4 = append(l4, o.payload...)
	proto := uint8(ProtoTCP)
	if o.udp {
		proto = ProtoUDP
	}
	var ip []byte
	var src, dst []byte
	if o.v6 {
		ip = make([]byte, 40)
		be.PutUint32(ip[0:], 6<<28|uint32(o.tos)<<20|o.flowLabel&0xfffff)
		be.PutUint16(ip[4:], uint16(len(l4)))
		ip[6] = proto
		ip[7] = o.ttl
		s, d := o.src.As16(), o.dst.As16()
		copy(ip[8:], s[:])
		copy(ip[24:], d[:])
		src, dst = ip[8:24], ip[24:40]
	} else {
		hl := 20 + len(o.ipOptions)
		ip = make([]byte, hl)
		ip[0] = 4<<4 | byte(hl/4)
		ip[1] = o.tos
		be.PutUint16(ip[2:], uint16(hl+len(l4)))
		be.PutUint16(ip[4:], o.id)
		frag := o.fragmentOffset
		if !o.dontFragmentOff {
			frag |= 0x4000
		}
		be.PutUint16(ip[6:], frag)
		ip[8] = o.ttl
		ip[9] = proto
		s, d := o.src.As4(), o.dst.As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
		copy(ip[20:], o.ipOptions)
		be.PutUint16(ip[10:], ^naiveChecksum(ip, 0))
		src, dst = ip[12:16], ip[16:20]
	}
	csField := 16
	if o.udp {
		csField = 6
	}
	cs := ^naiveChecksum(l4, naivePseudo(src, dst, proto, len(l4)))
	if o.udp && cs == 0 {
		cs = 0xffff
	}
	if o.badChecksum {
		cs ^= 0x5555
	}
	if o.zeroUDPChecksum {
		cs = 0
	}
	be.PutUint16(l4[csField:], cs)
	pkt := append(ip, l4...)
	for i := 0; i < o.extraIPTrailer; i++ {
		pkt = append(pkt, 0xee)
	}
	return pkt
}

func payloadBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}
