package packet

import (
	"encoding/binary"
	"math/bits"
)

// Checksum returns the 16-bit one's-complement sum of b, read as big-endian
// 16-bit words (an odd last byte is padded with zero), added to initial,
// folded but not complemented. The Internet checksum to store in a header is
// ^Checksum(...) computed with the checksum field zero; a received header
// or segment is intact when Checksum over it (field included, pseudo-header
// sum as initial) is 0xffff. initial is an unfolded sum such as
// PseudoHeaderSum returns, or a previous Checksum result.
func Checksum(b []byte, initial uint64) uint16 {
	return fold(sum(b, initial))
}

// CopyChecksum copies src to dst, which must be at least as long, and
// returns Checksum(src, initial), reading src once.
func CopyChecksum(dst, src []byte, initial uint64) uint16 {
	return fold(copySum(dst, src, initial))
}

// sum adds b to acc as 64-bit big-endian words with end-around carry.
// Because 2^16 ≡ 1 modulo 0xffff, summing wider words and folding gives the
// same result as summing 16-bit words.
func sum(b []byte, acc uint64) uint64 {
	if len(b) >= simdMin {
		return sumSIMD(b, acc)
	}
	return sumScalar(b, acc)
}

// copySum copies src to dst, which must be at least as long, and returns
// sum(src, acc).
func copySum(dst, src []byte, acc uint64) uint64 {
	if len(src) >= simdMin {
		return copySumSIMD(dst, src, acc)
	}
	copy(dst, src)
	return sumScalar(src, acc)
}

// sumScalar is sum in portable Go.
func sumScalar(b []byte, acc uint64) uint64 {
	var c uint64
	for len(b) >= 32 {
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[0:8]), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[8:16]), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[16:24]), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[24:32]), c)
		b = b[32:]
	}
	for len(b) >= 8 {
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b), c)
		b = b[8:]
	}
	if len(b) >= 4 {
		acc, c = bits.Add64(acc, uint64(binary.BigEndian.Uint32(b)), c)
		b = b[4:]
	}
	if len(b) >= 2 {
		acc, c = bits.Add64(acc, uint64(binary.BigEndian.Uint16(b)), c)
		b = b[2:]
	}
	if len(b) == 1 {
		acc, c = bits.Add64(acc, uint64(b[0])<<8, c)
	}
	acc, c = bits.Add64(acc, c, 0)
	return acc + c
}

// fold reduces a 64-bit one's-complement sum to 16 bits.
func fold(s uint64) uint16 {
	s = (s >> 32) + (s & 0xffffffff) // at most 33 bits
	s = (s >> 16) + (s & 0xffff)     // at most 18 bits
	s = (s >> 16) + (s & 0xffff)     // at most 17 bits
	s = (s >> 16) + (s & 0xffff)
	return uint16(s)
}

// PseudoHeaderSum returns the unfolded sum of the TCP/UDP pseudo-header:
// source and destination addresses (4 or 16 bytes each), protocol and the
// transport length (header plus payload). Pass it as Checksum's initial value.
func PseudoHeaderSum(proto uint8, src, dst []byte, length int) uint64 {
	s := uint64(proto) + uint64(uint32(length))
	for len(src) >= 4 {
		s += uint64(binary.BigEndian.Uint32(src))
		src = src[4:]
	}
	for len(dst) >= 4 {
		s += uint64(binary.BigEndian.Uint32(dst))
		dst = dst[4:]
	}
	return s
}

// l4Checksum returns the checksum a TCP or UDP header at pkt[off:] should
// carry, computed as if its checksum field were zero. For UDP a result of
// zero is sent as 0xffff (zero means "no checksum"). The caller guarantees
// the IP header and the transport checksum field are within pkt.
func l4Checksum(pkt []byte, v6 bool, proto uint8, off int) uint16 {
	s, field := l4HeaderSum(pkt, v6, proto, off, off)
	return l4Finish(sum(pkt[field+2:], s), proto)
}

// l4HeaderSum returns the unfolded sum of the pseudo-header of the TCP or
// UDP packet at pkt[off:] and of pkt[off:end] without the checksum field
// (or of pkt[off:field] if end is before it), and where that field is.
func l4HeaderSum(pkt []byte, v6 bool, proto uint8, off, end int) (s uint64, field int) {
	var src, dst []byte
	if v6 {
		src, dst = pkt[8:24], pkt[24:40]
	} else {
		src, dst = pkt[12:16], pkt[16:20]
	}
	field = off + 16
	if proto == ProtoUDP {
		field = off + 6
	}
	s = PseudoHeaderSum(proto, src, dst, len(pkt)-off)
	// Skip the field: both parts start at an even offset from off.
	s = sum(pkt[off:field], s)
	if end > field+2 {
		s = sum(pkt[field+2:end], s)
	}
	return s, field
}

// l4Finish turns the unfolded sum of a TCP or UDP packet and its
// pseudo-header, checksum field left out, into the checksum to store.
func l4Finish(s uint64, proto uint8) uint16 {
	c := ^fold(s)
	if proto == ProtoUDP && c == 0 {
		c = 0xffff
	}
	return c
}

// ipv4HeaderChecksum returns the header checksum h should carry, computed as
// if its checksum field were zero.
func ipv4HeaderChecksum(h []byte) uint16 {
	return ^fold(sum(h[12:], sum(h[:10], 0)))
}
