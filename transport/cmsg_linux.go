package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Control message layout: a header of SizeofCmsghdr bytes (length as a
// native word, then level and type as int32), data, padding to a word.
const (
	cmsgHdrLen = unix.SizeofCmsghdr
	cmsgAlign  = unix.SizeofPtr
)

func cmsgAlignUp(n int) int { return (n + cmsgAlign - 1) &^ (cmsgAlign - 1) }

// errBadControl reports a malformed control message.
var errBadControl = errors.New("transport: malformed control message")

// recvControl is what a received datagram's control messages say.
type recvControl struct {
	src     netip.Addr // local address it arrived on (IP_PKTINFO/IPV6_PKTINFO)
	ifIndex int32      // interface it arrived on
	segSize int        // UDP_GRO segment size, 0 when not coalesced
}

// parseRecvControl walks the control messages in oob as filled in by
// recvmsg and extracts packet info and the UDP_GRO segment size. Unknown
// messages are skipped; a message whose length runs outside oob, or a known
// one with a short or impossible value, is an error.
func parseRecvControl(oob []byte) (recvControl, error) {
	var rc recvControl
	for len(oob) >= cmsgHdrLen {
		var length uint64
		if unix.SizeofPtr == 8 {
			length = binary.NativeEndian.Uint64(oob)
		} else {
			length = uint64(binary.NativeEndian.Uint32(oob))
		}
		level := int32(binary.NativeEndian.Uint32(oob[unix.SizeofPtr:]))
		typ := int32(binary.NativeEndian.Uint32(oob[unix.SizeofPtr+4:]))
		if length < cmsgHdrLen || length > uint64(len(oob)) {
			return recvControl{}, fmt.Errorf("%w: length %d with %d bytes left", errBadControl, length, len(oob))
		}
		data := oob[cmsgHdrLen:length]
		switch {
		case level == unix.IPPROTO_IP && typ == unix.IP_PKTINFO:
			// struct in_pktinfo { int ifindex; in_addr spec_dst; in_addr addr; }
			if len(data) < unix.SizeofInet4Pktinfo {
				return recvControl{}, fmt.Errorf("%w: IP_PKTINFO of %d bytes", errBadControl, len(data))
			}
			rc.ifIndex = int32(binary.NativeEndian.Uint32(data))
			rc.src = netip.AddrFrom4([4]byte(data[4:8]))
		case level == unix.IPPROTO_IPV6 && typ == unix.IPV6_PKTINFO:
			// struct in6_pktinfo { in6_addr addr; int ifindex; }
			if len(data) < unix.SizeofInet6Pktinfo {
				return recvControl{}, fmt.Errorf("%w: IPV6_PKTINFO of %d bytes", errBadControl, len(data))
			}
			rc.src = netip.AddrFrom16([16]byte(data[:16]))
			rc.ifIndex = int32(binary.NativeEndian.Uint32(data[16:]))
		case level == unix.SOL_UDP && typ == unix.UDP_GRO:
			if len(data) < 4 {
				return recvControl{}, fmt.Errorf("%w: UDP_GRO of %d bytes", errBadControl, len(data))
			}
			seg := int32(binary.NativeEndian.Uint32(data))
			if seg <= 0 || seg > 65535 {
				return recvControl{}, fmt.Errorf("%w: UDP_GRO segment size %d", errBadControl, seg)
			}
			rc.segSize = int(seg)
		}
		next := cmsgAlignUp(int(length))
		if next >= len(oob) {
			break
		}
		oob = oob[next:]
	}
	return rc, nil
}

// putCmsg writes a control message header for datalen bytes of data at the
// start of b and returns the data area and the space the message takes.
// b must hold CmsgSpace(datalen) bytes and be word aligned.
func putCmsg(b []byte, level, typ int32, datalen int) (data []byte, space int) {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level = level
	h.Type = typ
	h.SetLen(unix.CmsgLen(datalen))
	start := unix.CmsgLen(0)
	return b[start : start+datalen], unix.CmsgSpace(datalen)
}
