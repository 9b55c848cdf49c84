package tun

import (
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// linkMessage builds an RTM_NEWLINK or RTM_DELLINK message with an
// IFLA_MTU attribute (when mtu > 0) and an IFLA_IFNAME attribute.
func linkMessage(typ uint16, index int32, flags, mtu uint32) []byte {
	var attrs []byte
	if mtu > 0 {
		a := make([]byte, 8)
		binary.NativeEndian.PutUint16(a, 8)
		binary.NativeEndian.PutUint16(a[2:], unix.IFLA_MTU)
		binary.NativeEndian.PutUint32(a[4:], mtu)
		attrs = append(attrs, a...)
	}
	name := make([]byte, 12) // 4 header + "gtt0\0" padded to 8
	binary.NativeEndian.PutUint16(name, 9)
	binary.NativeEndian.PutUint16(name[2:], unix.IFLA_IFNAME)
	copy(name[4:], "gtt0")
	attrs = append(attrs, name...)
	msg := make([]byte, 32, 32+len(attrs))
	binary.NativeEndian.PutUint32(msg, uint32(32+len(attrs)))
	binary.NativeEndian.PutUint16(msg[4:], typ)
	binary.NativeEndian.PutUint32(msg[16+4:], uint32(index))
	binary.NativeEndian.PutUint32(msg[16+8:], flags)
	return append(msg, attrs...)
}

func TestParseLinkMessages(t *testing.T) {
	var b []byte
	b = append(b, linkMessage(unix.RTM_NEWLINK, 7, unix.IFF_UP|unix.IFF_RUNNING, 1420)...)
	b = append(b, linkMessage(unix.RTM_NEWADDR, 7, 0, 0)...)
	b = append(b, linkMessage(unix.RTM_DELLINK, 8, 0, 0)...)
	var got []linkMsg
	if err := parseLinkMessages(b, func(m linkMsg) { got = append(got, m) }); err != nil {
		t.Fatal(err)
	}
	want := []linkMsg{
		{index: 7, flags: unix.IFF_UP | unix.IFF_RUNNING, mtu: 1420},
		{index: 8, deleted: true},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %+v, want %+v", got, want)
	}

	bad := linkMessage(unix.RTM_NEWLINK, 7, 0, 1420)
	binary.NativeEndian.PutUint16(bad[32:], 60) // attribute longer than the message
	if err := parseLinkMessages(bad, func(linkMsg) {}); !errors.Is(err, errBadNetlink) {
		t.Fatalf("attribute overrun: %v", err)
	}
	short := linkMessage(unix.RTM_NEWLINK, 7, 0, 0)
	binary.NativeEndian.PutUint32(short, 20) // too short for ifinfomsg
	if err := parseLinkMessages(short, func(linkMsg) {}); !errors.Is(err, errBadNetlink) {
		t.Fatalf("short ifinfomsg: %v", err)
	}
	long := linkMessage(unix.RTM_NEWLINK, 7, 0, 0)
	binary.NativeEndian.PutUint32(long, 1000)
	if err := parseLinkMessages(long, func(linkMsg) {}); !errors.Is(err, errBadNetlink) {
		t.Fatalf("message overrun: %v", err)
	}
}

func FuzzParseLinkMessages(f *testing.F) {
	f.Add(linkMessage(unix.RTM_NEWLINK, 3, unix.IFF_UP, 1500))
	f.Add(append(linkMessage(unix.RTM_DELLINK, 3, 0, 0), linkMessage(unix.RTM_NEWLINK, 4, 0, 9000)...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		err := parseLinkMessages(b, func(linkMsg) { n++ })
		if n > len(b)/(nlmsgHdrLen+ifInfoMsgLen) {
			t.Fatalf("%d link messages from %d bytes", n, len(b))
		}
		if err != nil && !errors.Is(err, errBadNetlink) {
			t.Fatalf("error %v does not wrap errBadNetlink", err)
		}
	})
}
