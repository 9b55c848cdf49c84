package tun

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// errBadNetlink reports a malformed netlink message.
var errBadNetlink = errors.New("tun: malformed netlink message")

// linkMsg is what an RTM_NEWLINK or RTM_DELLINK message says about a link.
type linkMsg struct {
	deleted bool
	index   int32
	flags   uint32 // IFF_* flags
	mtu     uint32 // 0 when the message carries no IFLA_MTU
}

const (
	nlmsgHdrLen   = unix.SizeofNlMsghdr  // 16
	ifInfoMsgLen  = unix.SizeofIfInfomsg // 16
	rtAttrHdrLen  = unix.SizeofRtAttr    // 4
	nlmsgAlignTo  = unix.NLMSG_ALIGNTO   // 4
	rtaAlignTo    = unix.RTA_ALIGNTO     // 4
	maxLinkAttrs  = 512                  // bound on attributes walked per message
	nlmsgTypeDone = unix.NLMSG_DONE
)

func nlAlign(n, to int) int { return (n + to - 1) &^ (to - 1) }

// parseLinkMessages walks the netlink messages in b, as read from a
// NETLINK_ROUTE socket, and calls fn for every link message. Other
// message types are skipped. It stops with an error at the first message
// whose lengths do not fit; messages before it have been reported.
func parseLinkMessages(b []byte, fn func(linkMsg)) error {
	for len(b) >= nlmsgHdrLen {
		l := int(binary.NativeEndian.Uint32(b[0:4]))
		typ := binary.NativeEndian.Uint16(b[4:6])
		if l < nlmsgHdrLen || l > len(b) {
			return fmt.Errorf("%w: length %d with %d bytes left", errBadNetlink, l, len(b))
		}
		body := b[nlmsgHdrLen:l]
		switch typ {
		case unix.RTM_NEWLINK, unix.RTM_DELLINK:
			m, err := parseIfInfo(body)
			if err != nil {
				return err
			}
			m.deleted = typ == unix.RTM_DELLINK
			fn(m)
		case nlmsgTypeDone:
			return nil
		}
		next := nlAlign(l, nlmsgAlignTo)
		if next >= len(b) {
			return nil
		}
		b = b[next:]
	}
	return nil
}

// parseIfInfo decodes struct ifinfomsg and the IFLA_MTU attribute.
func parseIfInfo(b []byte) (linkMsg, error) {
	if len(b) < ifInfoMsgLen {
		return linkMsg{}, fmt.Errorf("%w: ifinfomsg of %d bytes", errBadNetlink, len(b))
	}
	m := linkMsg{
		index: int32(binary.NativeEndian.Uint32(b[4:8])),
		flags: binary.NativeEndian.Uint32(b[8:12]),
	}
	err := walkAttrs(b[ifInfoMsgLen:], func(typ uint16, val []byte) error {
		if typ != unix.IFLA_MTU {
			return nil
		}
		if len(val) < 4 {
			return fmt.Errorf("%w: IFLA_MTU of %d bytes", errBadNetlink, len(val))
		}
		m.mtu = binary.NativeEndian.Uint32(val)
		return nil
	})
	if err != nil {
		return linkMsg{}, err
	}
	return m, nil
}

// walkAttrs calls fn with the type (without the nested and byte order
// flags) and value of each route attribute in attrs, up to maxLinkAttrs.
// It stops at the first error of fn, or with one at an attribute whose
// length does not fit.
func walkAttrs(attrs []byte, fn func(typ uint16, val []byte) error) error {
	for range maxLinkAttrs {
		if len(attrs) < rtAttrHdrLen {
			return nil
		}
		al := int(binary.NativeEndian.Uint16(attrs[0:2]))
		at := binary.NativeEndian.Uint16(attrs[2:4])
		if al < rtAttrHdrLen || al > len(attrs) {
			return fmt.Errorf("%w: attribute length %d with %d bytes left", errBadNetlink, al, len(attrs))
		}
		if err := fn(at&^(unix.NLA_F_NESTED|unix.NLA_F_NET_BYTEORDER), attrs[rtAttrHdrLen:al]); err != nil {
			return err
		}
		next := nlAlign(al, rtaAlignTo)
		if next >= len(attrs) {
			return nil
		}
		attrs = attrs[next:]
	}
	return nil
}
