package tun

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// noDeleted fails the test if d reports its deletion within a moment
// (other events are passed over).
func noDeleted(t *testing.T, d Device) {
	t.Helper()
	timeout := time.After(300 * time.Millisecond)
	for {
		select {
		case ev := <-d.Events():
			if ev&EventDeleted != 0 {
				t.Fatal("interface moved, but reported deleted")
			}
		case <-timeout:
			return
		}
	}
}

// linkMTU reads the interface's MTU as ip(8) shows it in ns.
func linkMTU(t *testing.T, ns *netns, name string) string {
	t.Helper()
	out, err := exec.Command("ip", "-n", ns.name, "-o", "link", "show", name).CombinedOutput()
	if err != nil {
		t.Fatalf("ip link show %s in %s: %v: %s", name, ns.name, err, out)
	}
	f := strings.Fields(string(out))
	for i := range f[:len(f)-1] {
		if f[i] == "mtu" {
			return f[i+1]
		}
	}
	t.Fatalf("no mtu in %q", out)
	return ""
}

// TestTUNMovesBetweenNamespaces moves the interface from the namespace it
// was created in to another, on to a third and back: the device follows
// it (events, MTU, name, traffic) and reports deletion only when it is
// deleted.
func TestTUNMovesBetweenNamespaces(t *testing.T) {
	for _, m := range tunModes {
		t.Run(m.name, func(t *testing.T) {
			home, c, d3 := newNetns(t), newNetns(t), newNetns(t)
			d := home.createTUN("gtm0", 1400, m.opts)
			home.ip("link", "set", "gtm0", "up")
			expectEvent(t, d, EventUp)

			// Home to c: the move takes the link down; nothing else.
			home.ip("link", "set", "gtm0", "netns", c.name)
			expectEvent(t, d, EventDown)
			noDeleted(t, d)
			if name, err := d.Name(); err != nil || name != "gtm0" {
				t.Fatalf("Name() in %s = %q, %v", c.name, name, err)
			}
			// Its changes there are heard, and ioctls reach it there.
			c.ip("link", "set", "gtm0", "mtu", "1300")
			expectEvent(t, d, EventMTUUpdate)
			if mtu, err := d.MTU(); err != nil || mtu != 1300 {
				t.Fatalf("MTU() in %s = %d, %v", c.name, mtu, err)
			}
			if err := d.SetMTU(1280); err != nil {
				t.Fatal(err)
			}
			expectEvent(t, d, EventMTUUpdate)
			if got := linkMTU(t, c, "gtm0"); got != "1280" {
				t.Fatalf("MTU in %s after SetMTU: %s", c.name, got)
			}
			setupAddrs(c, "gtm0")
			expectEvent(t, d, EventUp)
			// Traffic flows in c.
			u := c.listenUDP("10.77.0.1:7000")
			remote := netip.MustParseAddrPort("10.77.0.2:9999")
			if _, err := u.WriteToUDPAddrPort([]byte("in c"), remote); err != nil {
				t.Fatal(err)
			}
			const offset = 16
			bufs := [][]byte{make([]byte, offset+1500), make([]byte, offset+1500)}
			readUntil(t, d, bufs, offset, func(p []byte) bool {
				_, dst, pl, ok := udpInfo(p)
				return ok && dst == remote && bytes.Equal(pl, []byte("in c"))
			})
			n := ipUDP(bufs[0], offset, remote, netip.MustParseAddrPort("10.77.0.1:7000"), []byte("reply in c"))
			if _, err := d.Write([][]byte{bufs[0][:offset+n]}, offset); err != nil {
				t.Fatal(err)
			}
			u.SetReadDeadline(time.Now().Add(5 * time.Second))
			rb := make([]byte, 64)
			if rn, _, err := u.ReadFromUDPAddrPort(rb); err != nil || string(rb[:rn]) != "reply in c" {
				t.Fatalf("socket in %s got %q, %v", c.name, rb[:rn], err)
			}

			// On from c to a third namespace, renamed there: the home
			// namespace had no id for it.
			c.ip("link", "set", "gtm0", "netns", d3.name)
			expectEvent(t, d, EventDown)
			noDeleted(t, d)
			d3.ip("link", "set", "gtm0", "name", "gtm1")
			if name, err := d.Name(); err != nil || name != "gtm1" {
				t.Fatalf("Name() in %s = %q, %v", d3.name, name, err)
			}
			d3.ip("link", "set", "gtm1", "mtu", "1360")
			expectEvent(t, d, EventMTUUpdate)

			// Back home.
			d3.ip("link", "set", "gtm1", "netns", home.name)
			noDeleted(t, d)
			home.ip("link", "set", "gtm1", "mtu", "1340")
			expectEvent(t, d, EventMTUUpdate)
			if mtu, err := d.MTU(); err != nil || mtu != 1340 {
				t.Fatalf("MTU() back home = %d, %v", mtu, err)
			}

			// Deleted in another namespace: reported.
			home.ip("link", "set", "gtm1", "netns", c.name)
			c.ip("link", "del", "gtm1")
			expectEvent(t, d, EventDeleted)
		})
	}
}

// TestTUNNamespaceDeleted deletes the namespace the interface was moved
// to, which deletes the interface: the device holds nothing there that
// would keep the namespace alive, and reports the deletion.
func TestTUNNamespaceDeleted(t *testing.T) {
	home, c := newNetns(t), newNetns(t)
	d := home.createTUN("gtm0", 1400, LinuxOptions{})
	home.ip("link", "set", "gtm0", "netns", c.name)
	noDeleted(t, d)
	// Reading, as the device does, notices the interface's end.
	readErr := make(chan error, 1)
	go func() {
		bufs := [][]byte{make([]byte, 1500)}
		for {
			if _, err := d.Read(bufs, make([]int, 1), 0); err != nil {
				readErr <- err
				return
			}
		}
	}()
	// The test's own descriptor of the namespace would keep it alive.
	unix.Close(c.fd)
	c.fd = -1
	if out, err := exec.Command("ip", "netns", "del", c.name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns del: %v: %s", err, out)
	}
	deadline := time.After(10 * time.Second)
	for deleted := false; !deleted; {
		select {
		case ev := <-d.Events():
			deleted = ev&EventDeleted != 0
		case <-deadline:
			t.Fatal("no EventDeleted after the namespace was deleted")
		}
	}
	if err := <-readErr; !errors.Is(err, unix.EBADFD) {
		t.Fatalf("read: %v", err)
	}
}

func TestNsidMessages(t *testing.T) {
	req := nsidRequestMessage(unix.RTM_NEWNSID, 7, 5)
	if len(req) != 36 || binary.NativeEndian.Uint32(req) != 36 || binary.NativeEndian.Uint16(req[4:]) != unix.RTM_NEWNSID ||
		binary.NativeEndian.Uint16(req[6:])&unix.NLM_F_ACK == 0 || binary.NativeEndian.Uint32(req[24:]) != 5 ||
		int32(binary.NativeEndian.Uint32(req[32:])) != -1 {
		t.Fatalf("NEWNSID request % x", req)
	}
	if req := nsidRequestMessage(unix.RTM_GETNSID, 8, 5); len(req) != 28 {
		t.Fatalf("GETNSID request % x", req)
	}
	msg := func(typ uint16, seq uint32, body ...byte) []byte {
		b := make([]byte, nlmsgHdrLen, nlmsgHdrLen+len(body))
		binary.NativeEndian.PutUint32(b, uint32(nlmsgHdrLen+len(body)))
		binary.NativeEndian.PutUint16(b[4:], typ)
		binary.NativeEndian.PutUint32(b[8:], seq)
		return append(b, body...)
	}
	le := func(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }
	attr := func(typ uint16, v uint32) []byte {
		a := binary.NativeEndian.AppendUint16(nil, 8)
		a = binary.NativeEndian.AppendUint16(a, typ)
		return append(a, le(v)...)
	}
	newnsid := func(seq uint32, id int32) []byte {
		return msg(unix.RTM_NEWNSID, seq, append([]byte{0, 0, 0, 0}, attr(unix.NETNSA_NSID, uint32(id))...)...)
	}
	for _, tt := range []struct {
		name string
		b    []byte
		id   int32
		done bool
		err  error
	}{
		{"id", newnsid(3, 4), 4, true, nil},
		{"not assigned", newnsid(3, -1), -1, true, nil},
		{"other sequence first", append(newnsid(2, 9), newnsid(3, 5)...), 5, true, nil},
		{"other sequence only", newnsid(2, 9), nsUnknown, false, nil},
		{"ack", msg(unix.NLMSG_ERROR, 3, le(0)...), nsLocal, true, nil},
		{"error", msg(unix.NLMSG_ERROR, 3, le(uint32(0xffffffef))...), nsUnknown, true, syscall.EEXIST},
		{"short error", msg(unix.NLMSG_ERROR, 3, 1, 2), nsUnknown, true, errBadNetlink},
		{"short body", msg(unix.RTM_NEWNSID, 3, 1), nsUnknown, true, errBadNetlink},
		{"bad attribute", msg(unix.RTM_NEWNSID, 3, 0, 0, 0, 0, 40, 0, 1, 0), nsUnknown, true, errBadNetlink},
		{"bad length", []byte{200, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0}, nsUnknown, true, errBadNetlink},
		{"empty", nil, nsUnknown, false, nil},
	} {
		id, done, err := parseNsidReply(tt.b, 3)
		if id != tt.id || done != tt.done || (tt.err == nil) != (err == nil) || (tt.err != nil && !errors.Is(err, tt.err)) {
			t.Errorf("%s: got %d, %v, %v; want %d, %v, %v", tt.name, id, done, err, tt.id, tt.done, tt.err)
		}
	}
}

func FuzzParseNsidReply(f *testing.F) {
	f.Add([]byte{24, 0, 0, 0, 88, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		parseNsidReply(b, 3)
	})
}

// TestTUNFromFileInOtherNamespace takes over the descriptor of an
// interface that lives in another namespace than the device's sockets,
// as when a descriptor is handed over after the interface moved.
func TestTUNFromFileInOtherNamespace(t *testing.T) {
	home, there := newNetns(t), newNetns(t)
	var f *os.File
	there.do(func() {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		ifr, _ := unix.NewIfreq("gtmf")
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			t.Fatal(err)
		}
		f = os.NewFile(uintptr(fd), "tun")
	})
	var d Device
	var err error
	home.do(func() { d, err = CreateTUNFromFile(f, 1380) })
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got := linkMTU(t, there, "gtmf"); got != "1380" {
		t.Fatalf("MTU in %s: %s", there.name, got)
	}
	if name, err := d.Name(); err != nil || name != "gtmf" {
		t.Fatalf("Name() = %q, %v", name, err)
	}
	there.ip("link", "set", "gtmf", "up")
	expectEvent(t, d, EventUp)
	there.ip("link", "set", "gtmf", "mtu", "1300")
	expectEvent(t, d, EventMTUUpdate)
	if mtu, err := d.MTU(); err != nil || mtu != 1300 {
		t.Fatalf("MTU() = %d, %v", mtu, err)
	}
	there.ip("link", "del", "gtmf")
	expectEvent(t, d, EventDeleted)
}
