// Package packet reads and rewrites IP packets in place: typed views over
// IPv4, IPv6, TCP and UDP headers, Internet checksums, splitting of
// offloaded super-packets read from a TUN device (GSO) and coalescing of
// segments into super-packets written to one (GRO).
//
// Nothing here allocates to parse. Views are byte slices validated once by
// their Parse function; their accessors then read fields without further
// checks, so build views only with Parse. Functions that take raw bytes
// check lengths and report malformed input instead of panicking.
package packet

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// IP protocol numbers.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58

	// IPv6 extension headers.
	protoHopByHop = 0
	protoRouting  = 43
	protoFragment = 44
	protoESP      = 50
	protoAH       = 51
	protoNoNext   = 59
	protoDestOpts = 60
)

// Header sizes.
const (
	IPv4MinHeaderLen = 20
	IPv6HeaderLen    = 40
	TCPMinHeaderLen  = 20
	UDPHeaderLen     = 8
)

// Errors. Returned errors wrap one of these.
var (
	ErrTruncated   = errors.New("packet: truncated")
	ErrMalformed   = errors.New("packet: malformed")
	ErrUnsupported = errors.New("packet: unsupported")
	// ErrTooManySegments means a super-packet has more segments than the
	// caller supplied buffers for.
	ErrTooManySegments = errors.New("packet: too many segments for the buffers")
	// ErrBufferTooSmall means a caller-supplied buffer cannot hold a packet.
	ErrBufferTooSmall = errors.New("packet: buffer too small")
)

var be = binary.BigEndian

// Version returns the IP version in the first nibble of b (4 or 6 for valid
// packets), or 0 if b is empty.
func Version(b []byte) int {
	if len(b) == 0 {
		return 0
	}
	return int(b[0] >> 4)
}

// Src returns the source address of the IPv4 or IPv6 packet b. It checks only
// that the version is known and b is long enough to hold the address.
func Src(b []byte) (netip.Addr, bool) {
	switch Version(b) {
	case 4:
		if len(b) >= IPv4MinHeaderLen {
			return netip.AddrFrom4([4]byte(b[12:16])), true
		}
	case 6:
		if len(b) >= IPv6HeaderLen {
			return netip.AddrFrom16([16]byte(b[8:24])), true
		}
	}
	return netip.Addr{}, false
}

// Dst returns the destination address of the IPv4 or IPv6 packet b. It checks
// only that the version is known and b is long enough to hold the address.
func Dst(b []byte) (netip.Addr, bool) {
	switch Version(b) {
	case 4:
		if len(b) >= IPv4MinHeaderLen {
			return netip.AddrFrom4([4]byte(b[16:20])), true
		}
	case 6:
		if len(b) >= IPv6HeaderLen {
			return netip.AddrFrom16([16]byte(b[24:40])), true
		}
	}
	return netip.Addr{}, false
}

// TotalLen returns the length the IP header of b claims for the whole packet
// (header included). ok is false if the version is unknown, b is shorter than
// the fixed header, or the claimed length is shorter than the header or longer
// than b. A decrypted packet padded to a block size is trimmed with
// b[:TotalLen(b)].
func TotalLen(b []byte) (n int, ok bool) {
	switch Version(b) {
	case 4:
		if len(b) < IPv4MinHeaderLen {
			return 0, false
		}
		n = int(be.Uint16(b[2:4]))
		if n < int(b[0]&0x0f)*4 || n < IPv4MinHeaderLen {
			return 0, false
		}
	case 6:
		if len(b) < IPv6HeaderLen {
			return 0, false
		}
		n = IPv6HeaderLen + int(be.Uint16(b[4:6]))
	default:
		return 0, false
	}
	if n > len(b) {
		return 0, false
	}
	return n, true
}

// HeaderLen returns the length of the fixed IP header of b with options: the
// IHL for IPv4, 40 for IPv6 (extension headers are part of the payload; see
// Transport).
func HeaderLen(b []byte) (int, bool) {
	switch Version(b) {
	case 4:
		if len(b) < IPv4MinHeaderLen {
			return 0, false
		}
		n := int(b[0]&0x0f) * 4
		if n < IPv4MinHeaderLen || n > len(b) {
			return 0, false
		}
		return n, true
	case 6:
		if len(b) < IPv6HeaderLen {
			return 0, false
		}
		return IPv6HeaderLen, true
	}
	return 0, false
}

// maxExtHeaders bounds the IPv6 extension headers Transport walks.
const maxExtHeaders = 8

// Transport finds the transport-layer header of the IP packet b: its protocol
// number and offset in b. IPv6 extension headers (hop-by-hop, routing,
// fragment, destination options, authentication) are skipped. ok is false if
// the headers are malformed or truncated, or b is a fragment other than the
// first (which has no transport header). For protocols without a header to
// find (ESP, no-next-header) it returns that protocol and the offset where its
// data starts. The returned offset may equal len(b); callers check that the
// transport header fits.
func Transport(b []byte) (proto uint8, off int, ok bool) {
	switch Version(b) {
	case 4:
		hl, ok := HeaderLen(b)
		if !ok {
			return 0, 0, false
		}
		if be.Uint16(b[6:8])&0x1fff != 0 {
			return 0, 0, false // not the first fragment
		}
		return b[9], hl, true
	case 6:
		if len(b) < IPv6HeaderLen {
			return 0, 0, false
		}
		proto, off = b[6], IPv6HeaderLen
		for i := 0; ; i++ {
			var n int
			switch proto {
			case protoHopByHop, protoRouting, protoDestOpts:
				if len(b) < off+8 {
					return 0, 0, false
				}
				n = (int(b[off+1]) + 1) * 8
			case protoFragment:
				if len(b) < off+8 {
					return 0, 0, false
				}
				if be.Uint16(b[off+2:off+4])&0xfff8 != 0 {
					return 0, 0, false // not the first fragment
				}
				n = 8
			case protoAH:
				if len(b) < off+8 {
					return 0, 0, false
				}
				n = (int(b[off+1]) + 2) * 4
			default:
				return proto, off, true
			}
			if i >= maxExtHeaders || off+n > len(b) {
				return 0, 0, false
			}
			proto, off = b[off], off+n
		}
	}
	return 0, 0, false
}

// IPv4 is a view of a validated IPv4 packet; make it with ParseIPv4.
type IPv4 []byte

// ParseIPv4 validates b as an IPv4 packet and returns a view of exactly the
// packet's length (the total length field), dropping any trailing bytes.
func ParseIPv4(b []byte) (IPv4, error) {
	if len(b) < IPv4MinHeaderLen {
		return nil, ErrTruncated
	}
	if b[0]>>4 != 4 {
		return nil, ErrMalformed
	}
	hl := int(b[0]&0x0f) * 4
	tl := int(be.Uint16(b[2:4]))
	switch {
	case hl < IPv4MinHeaderLen || tl < hl:
		return nil, ErrMalformed
	case tl > len(b):
		return nil, ErrTruncated
	}
	return IPv4(b[:tl]), nil
}

// HeaderLen returns the header length, options included.
func (p IPv4) HeaderLen() int { return int(p[0]&0x0f) * 4 }

// TOS returns the type-of-service (DSCP and ECN) byte.
func (p IPv4) TOS() uint8 { return p[1] }

// TotalLen returns the total length field.
func (p IPv4) TotalLen() int { return int(be.Uint16(p[2:4])) }

// ID returns the identification field.
func (p IPv4) ID() uint16 { return be.Uint16(p[4:6]) }

// DontFragment reports whether DF is set.
func (p IPv4) DontFragment() bool { return p[6]&0x40 != 0 }

// MoreFragments reports whether MF is set.
func (p IPv4) MoreFragments() bool { return p[6]&0x20 != 0 }

// FragmentOffset returns the fragment offset in bytes.
func (p IPv4) FragmentOffset() int { return int(be.Uint16(p[6:8])&0x1fff) * 8 }

// IsFragment reports whether the packet is a fragment (MF or an offset).
func (p IPv4) IsFragment() bool { return be.Uint16(p[6:8])&0x3fff != 0 }

// TTL returns the time to live.
func (p IPv4) TTL() uint8 { return p[8] }

// Protocol returns the protocol of the payload.
func (p IPv4) Protocol() uint8 { return p[9] }

// Checksum returns the header checksum field.
func (p IPv4) Checksum() uint16 { return be.Uint16(p[10:12]) }

// ChecksumValid reports whether the header checksum is correct.
func (p IPv4) ChecksumValid() bool { return Checksum(p[:p.HeaderLen()], 0) == 0xffff }

// SetChecksum recomputes and stores the header checksum.
func (p IPv4) SetChecksum() {
	p[10], p[11] = 0, 0
	be.PutUint16(p[10:12], ^Checksum(p[:p.HeaderLen()], 0))
}

// Src returns the source address.
func (p IPv4) Src() netip.Addr { return netip.AddrFrom4([4]byte(p[12:16])) }

// Dst returns the destination address.
func (p IPv4) Dst() netip.Addr { return netip.AddrFrom4([4]byte(p[16:20])) }

// Payload returns the bytes after the header.
func (p IPv4) Payload() []byte { return p[p.HeaderLen():] }

// IPv6 is a view of a validated IPv6 packet; make it with ParseIPv6.
type IPv6 []byte

// ParseIPv6 validates b as an IPv6 packet and returns a view of exactly the
// packet's length (40 plus the payload length field), dropping any trailing
// bytes. Jumbograms are not supported.
func ParseIPv6(b []byte) (IPv6, error) {
	if len(b) < IPv6HeaderLen {
		return nil, ErrTruncated
	}
	if b[0]>>4 != 6 {
		return nil, ErrMalformed
	}
	tl := IPv6HeaderLen + int(be.Uint16(b[4:6]))
	if tl > len(b) {
		return nil, ErrTruncated
	}
	return IPv6(b[:tl]), nil
}

// TrafficClass returns the traffic class (DSCP and ECN).
func (p IPv6) TrafficClass() uint8 { return uint8(be.Uint16(p[0:2]) >> 4) }

// FlowLabel returns the 20-bit flow label.
func (p IPv6) FlowLabel() uint32 { return be.Uint32(p[0:4]) & 0xfffff }

// PayloadLen returns the payload length field.
func (p IPv6) PayloadLen() int { return int(be.Uint16(p[4:6])) }

// NextHeader returns the protocol of the first header after the fixed one.
func (p IPv6) NextHeader() uint8 { return p[6] }

// HopLimit returns the hop limit.
func (p IPv6) HopLimit() uint8 { return p[7] }

// Src returns the source address.
func (p IPv6) Src() netip.Addr { return netip.AddrFrom16([16]byte(p[8:24])) }

// Dst returns the destination address.
func (p IPv6) Dst() netip.Addr { return netip.AddrFrom16([16]byte(p[24:40])) }

// Payload returns the bytes after the fixed header (extension headers
// included).
func (p IPv6) Payload() []byte { return p[IPv6HeaderLen:] }

// TCP flags.
const (
	TCPFlagFIN = 0x01
	TCPFlagSYN = 0x02
	TCPFlagRST = 0x04
	TCPFlagPSH = 0x08
	TCPFlagACK = 0x10
	TCPFlagURG = 0x20
	TCPFlagECE = 0x40
	TCPFlagCWR = 0x80
)

// TCP is a view of a validated TCP segment; make it with ParseTCP.
type TCP []byte

// ParseTCP validates b as a TCP segment (header and payload).
func ParseTCP(b []byte) (TCP, error) {
	if len(b) < TCPMinHeaderLen {
		return nil, ErrTruncated
	}
	hl := int(b[12]>>4) * 4
	switch {
	case hl < TCPMinHeaderLen:
		return nil, ErrMalformed
	case hl > len(b):
		return nil, ErrTruncated
	}
	return TCP(b), nil
}

// SrcPort returns the source port.
func (t TCP) SrcPort() uint16 { return be.Uint16(t[0:2]) }

// DstPort returns the destination port.
func (t TCP) DstPort() uint16 { return be.Uint16(t[2:4]) }

// Seq returns the sequence number.
func (t TCP) Seq() uint32 { return be.Uint32(t[4:8]) }

// Ack returns the acknowledgement number.
func (t TCP) Ack() uint32 { return be.Uint32(t[8:12]) }

// HeaderLen returns the header length in bytes (data offset × 4).
func (t TCP) HeaderLen() int { return int(t[12]>>4) * 4 }

// Flags returns the flag byte (TCPFlag*).
func (t TCP) Flags() uint8 { return t[13] }

// Window returns the window field.
func (t TCP) Window() uint16 { return be.Uint16(t[14:16]) }

// Checksum returns the checksum field.
func (t TCP) Checksum() uint16 { return be.Uint16(t[16:18]) }

// Urgent returns the urgent pointer.
func (t TCP) Urgent() uint16 { return be.Uint16(t[18:20]) }

// Options returns the option bytes.
func (t TCP) Options() []byte { return t[TCPMinHeaderLen:t.HeaderLen()] }

// Payload returns the data after the header.
func (t TCP) Payload() []byte { return t[t.HeaderLen():] }

// UDP is a view of a validated UDP datagram; make it with ParseUDP.
type UDP []byte

// ParseUDP validates b as a UDP datagram and returns a view of the length its
// length field claims (at least 8, at most len(b)).
func ParseUDP(b []byte) (UDP, error) {
	if len(b) < UDPHeaderLen {
		return nil, ErrTruncated
	}
	n := int(be.Uint16(b[4:6]))
	switch {
	case n < UDPHeaderLen:
		return nil, ErrMalformed
	case n > len(b):
		return nil, ErrTruncated
	}
	return UDP(b[:n]), nil
}

// SrcPort returns the source port.
func (u UDP) SrcPort() uint16 { return be.Uint16(u[0:2]) }

// DstPort returns the destination port.
func (u UDP) DstPort() uint16 { return be.Uint16(u[2:4]) }

// Length returns the length field.
func (u UDP) Length() int { return int(be.Uint16(u[4:6])) }

// Checksum returns the checksum field.
func (u UDP) Checksum() uint16 { return be.Uint16(u[6:8]) }

// Payload returns the data after the header.
func (u UDP) Payload() []byte { return u[UDPHeaderLen:] }
