package tun

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// requirePrivilege skips the test, or fails it when CI=true.
func requirePrivilege(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(reason)
	}
	t.Skip(reason)
}

var nsCounter atomic.Int32

// netns is a network namespace created for one test.
type netns struct {
	t    testing.TB
	name string
	fd   int
}

// newNetns creates a fresh network namespace with loopback up, removed
// when the test ends.
func newNetns(t testing.TB) *netns {
	t.Helper()
	if os.Geteuid() != 0 {
		requirePrivilege(t, "TUN tests need root")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		requirePrivilege(t, "no /dev/net/tun: "+err.Error())
	}
	if _, err := exec.LookPath("ip"); err != nil {
		requirePrivilege(t, "the ip command is missing")
	}
	name := fmt.Sprintf("gotatun-tun-%d-%d", os.Getpid(), nsCounter.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		requirePrivilege(t, fmt.Sprintf("ip netns add: %v: %s", err, out))
	}
	n := &netns{t: t, name: name, fd: -1}
	t.Cleanup(func() {
		if n.fd >= 0 {
			unix.Close(n.fd)
		}
		exec.Command("ip", "netns", "del", name).Run()
	})
	fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open netns: %v", err)
	}
	n.fd = fd
	n.ip("link", "set", "lo", "up")
	return n
}

// ip runs the ip command inside the namespace.
func (n *netns) ip(args ...string) {
	n.t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", n.name}, args...)...).CombinedOutput()
	if err != nil {
		n.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// do runs fn on a thread switched into the namespace, so sockets and
// devices it creates live there.
func (n *netns) do(fn func()) {
	n.t.Helper()
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		n.t.Fatalf("open current netns: %v", err)
	}
	defer unix.Close(orig)
	if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		n.t.Fatalf("setns: %v", err)
	}
	defer func() {
		if unix.Setns(orig, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		// Otherwise the thread stays locked and dies with the goroutine.
	}()
	fn()
}

// createTUN creates a TUN device inside the namespace.
func (n *netns) createTUN(name string, mtu int, opts LinuxOptions) *LinuxDevice {
	n.t.Helper()
	var d *LinuxDevice
	var err error
	n.do(func() { d, err = CreateLinuxTUN(name, mtu, opts) })
	if err != nil {
		n.t.Fatalf("CreateLinuxTUN(%q): %v", name, err)
	}
	n.t.Cleanup(func() { d.Close() })
	return d
}

func (n *netns) listenUDP(addr string) *net.UDPConn {
	n.t.Helper()
	var c *net.UDPConn
	var err error
	n.do(func() { c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr))) })
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { c.Close() })
	return c
}

// expectEvent waits for ev, skipping none.
func expectEvent(t *testing.T, d Device, want Event) {
	t.Helper()
	select {
	case ev, ok := <-d.Events():
		if !ok {
			t.Fatalf("events closed, want %v", want)
		}
		if ev != want {
			t.Fatalf("event %v, want %v", ev, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no event, want %v", want)
	}
}

var tunModes = []struct {
	name string
	opts LinuxOptions
}{
	{"default", LinuxOptions{}},
	{"plain", LinuxOptions{DisableOffloads: true}},
}

func TestTUNLifecycle(t *testing.T) {
	for _, m := range tunModes {
		t.Run(m.name, func(t *testing.T) {
			ns := newNetns(t)
			d := ns.createTUN("gtt0", 1400, m.opts)
			if name, err := d.Name(); err != nil || name != "gtt0" {
				t.Fatalf("Name() = %q, %v", name, err)
			}
			if mtu, err := d.MTU(); err != nil || mtu != 1400 {
				t.Fatalf("MTU() = %d, %v", mtu, err)
			}
			if d.BatchSize() < 1 {
				t.Fatal("batch size")
			}
			ns.ip("link", "set", "gtt0", "up")
			expectEvent(t, d, EventUp)
			if err := d.SetMTU(1280); err != nil {
				t.Fatal(err)
			}
			expectEvent(t, d, EventMTUUpdate)
			if mtu, _ := d.MTU(); mtu != 1280 {
				t.Fatalf("MTU after SetMTU: %d", mtu)
			}
			ns.ip("link", "set", "gtt0", "mtu", "1300")
			expectEvent(t, d, EventMTUUpdate)
			ns.ip("link", "set", "gtt0", "down")
			expectEvent(t, d, EventDown)
			ns.ip("link", "set", "gtt0", "name", "gtt1")
			if name, err := d.Name(); err != nil || name != "gtt1" {
				t.Fatalf("Name() after rename = %q, %v", name, err)
			}
			if mtu, err := d.MTU(); err != nil || mtu != 1300 {
				t.Fatalf("MTU() after rename = %d, %v", mtu, err)
			}
			ns.ip("link", "del", "gtt1")
			expectEvent(t, d, EventDeleted)
			bufs := [][]byte{make([]byte, 1500)}
			if _, err := d.Read(bufs, make([]int, 1), 0); err == nil {
				t.Fatal("Read after deletion succeeded")
			}
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			if _, ok := <-d.Events(); ok {
				t.Fatal("events not closed")
			}
		})
	}
}

func TestTUNCloseUnblocksRead(t *testing.T) {
	ns := newNetns(t)
	d := ns.createTUN("gtt0", 0, LinuxOptions{})
	errc := make(chan error, 1)
	go func() {
		_, err := d.Read([][]byte{make([]byte, 2000)}, make([]int, 1), 0)
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	d.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Read returned %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still blocked after Close")
	}
	if _, err := d.Write([][]byte{make([]byte, 40)}, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	if _, err := d.MTU(); err == nil {
		t.Fatal("MTU after Close succeeded")
	}
}

// ipUDP builds an IPv4 or IPv6 UDP packet with valid checksums at
// buf[offset:] and returns its length.
func ipUDP(buf []byte, offset int, src, dst netip.AddrPort, payload []byte) int {
	p := buf[offset:]
	var hl int
	if src.Addr().Is4() {
		hl = 20
		total := hl + 8 + len(payload)
		clear(p[:hl])
		p[0] = 0x45
		binary.BigEndian.PutUint16(p[2:], uint16(total))
		p[8] = 64
		p[9] = unix.IPPROTO_UDP
		s, d := src.Addr().As4(), dst.Addr().As4()
		copy(p[12:], s[:])
		copy(p[16:], d[:])
		binary.BigEndian.PutUint16(p[10:], ^fold(sum16(p[:20], 0)))
	} else {
		hl = 40
		clear(p[:hl])
		p[0] = 0x60
		binary.BigEndian.PutUint16(p[4:], uint16(8+len(payload)))
		p[6] = unix.IPPROTO_UDP
		p[7] = 64
		s, d := src.Addr().As16(), dst.Addr().As16()
		copy(p[8:], s[:])
		copy(p[24:], d[:])
	}
	u := p[hl:]
	binary.BigEndian.PutUint16(u[0:], src.Port())
	binary.BigEndian.PutUint16(u[2:], dst.Port())
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	u[6], u[7] = 0, 0
	copy(u[8:], payload)
	cs := ^fold(sum16(u[:8+len(payload)], pseudoSum(p, hl, unix.IPPROTO_UDP, 8+len(payload))))
	if cs == 0 {
		cs = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:], cs)
	return hl + 8 + len(payload)
}

// Test-local checksum helpers, independent of the code under test.
func sum16(b []byte, acc uint32) uint32 {
	for len(b) >= 2 {
		acc += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint32(b[0]) << 8
	}
	return acc
}

func fold(acc uint32) uint16 {
	for acc > 0xffff {
		acc = acc>>16 + acc&0xffff
	}
	return uint16(acc)
}

func pseudoSum(ip []byte, hl int, proto uint8, l4len int) uint32 {
	var acc uint32
	if ip[0]>>4 == 4 {
		acc = sum16(ip[12:20], 0)
	} else {
		acc = sum16(ip[8:40], 0)
	}
	return acc + uint32(proto) + uint32(l4len)
}

// l4ChecksumOK verifies the TCP or UDP checksum of an IP packet.
func l4ChecksumOK(pkt []byte) bool {
	hl := 40
	proto := pkt[6]
	if pkt[0]>>4 == 4 {
		hl = int(pkt[0]&0xf) * 4
		proto = pkt[9]
		if fold(sum16(pkt[:hl], 0)) != 0xffff {
			return false
		}
	}
	l4 := pkt[hl:]
	return fold(sum16(l4, pseudoSum(pkt, hl, proto, len(l4)))) == 0xffff
}

// udpInfo decodes an IPv4 or IPv6 UDP packet (no extension headers).
func udpInfo(pkt []byte) (src, dst netip.AddrPort, payload []byte, ok bool) {
	if len(pkt) < 1 {
		return
	}
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 28 || pkt[9] != unix.IPPROTO_UDP {
			return
		}
		hl := int(pkt[0]&0xf) * 4
		u := pkt[hl:]
		src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(pkt[12:16])), binary.BigEndian.Uint16(u))
		dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(pkt[16:20])), binary.BigEndian.Uint16(u[2:]))
		return src, dst, u[8:], true
	case 6:
		if len(pkt) < 48 || pkt[6] != unix.IPPROTO_UDP {
			return
		}
		u := pkt[40:]
		src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(pkt[8:24])), binary.BigEndian.Uint16(u))
		dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(pkt[24:40])), binary.BigEndian.Uint16(u[2:]))
		return src, dst, u[8:], true
	}
	return
}

// readUntil reads from d until match accepts a packet, skipping others
// (such as IPv6 router solicitations).
func readUntil(t *testing.T, d Device, bufs [][]byte, offset int, match func([]byte) bool) (calls, maxBatch int) {
	t.Helper()
	sizes := make([]int, len(bufs))
	deadline := time.Now().Add(10 * time.Second)
	type result struct {
		n   int
		err error
	}
	for time.Now().Before(deadline) {
		res := make(chan result, 1)
		go func() { n, err := d.Read(bufs, sizes, offset); res <- result{n, err} }()
		var r result
		select {
		case r = <-res:
		case <-time.After(time.Until(deadline)):
			t.Fatal("timed out reading from TUN")
		}
		if r.err != nil {
			t.Fatalf("Read: %v", r.err)
		}
		calls++
		maxBatch = max(maxBatch, r.n)
		for i := range r.n {
			if match(bufs[i][offset : offset+sizes[i]]) {
				return calls, maxBatch
			}
		}
	}
	t.Fatal("timed out reading from TUN")
	return
}

func setupAddrs(ns *netns, dev string) {
	ns.ip("addr", "add", "10.77.0.1/24", "dev", dev)
	ns.ip("addr", "add", "fd77::1/64", "dev", dev, "nodad")
	ns.ip("link", "set", dev, "up")
	ns.waitLocalRoute("fd77::1")
}

// waitLocalRoute waits for the local route of an IPv6 address, which the
// kernel installs in the background after the link comes up; until then
// packets to the address are dropped.
func (n *netns) waitLocalRoute(addr string) {
	n.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := exec.Command("ip", "-n", n.name, "-6", "route", "show", "table", "local", addr).CombinedOutput()
		if err == nil && strings.Contains(string(out), addr) {
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("no local route for %s: %v %s", addr, err, out)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTUNReadWrite(t *testing.T) {
	for _, m := range tunModes {
		t.Run(m.name, func(t *testing.T) {
			ns := newNetns(t)
			d := ns.createTUN("gtt0", 1420, m.opts)
			setupAddrs(ns, "gtt0")
			for _, fam := range []struct{ local, remote string }{
				{"10.77.0.1:7000", "10.77.0.2:9999"},
				{"[fd77::1]:7000", "[fd77::2]:9999"},
			} {
				local, remote := netip.MustParseAddrPort(fam.local), netip.MustParseAddrPort(fam.remote)
				c := ns.listenUDP(fam.local)
				const offset = 16
				bufs := make([][]byte, 8)
				for i := range bufs {
					bufs[i] = make([]byte, offset+1500)
				}
				// Outbound: a datagram routed into the TUN is read whole.
				payload := []byte("hello through " + fam.remote)
				if _, err := c.WriteToUDPAddrPort(payload, remote); err != nil {
					t.Fatal(err)
				}
				readUntil(t, d, bufs, offset, func(p []byte) bool {
					src, dst, pl, ok := udpInfo(p)
					if !ok || dst != remote {
						return false
					}
					if src != local || !bytes.Equal(pl, payload) || !l4ChecksumOK(p) {
						t.Fatalf("read packet from %v payload %q checksum ok %v", src, pl, l4ChecksumOK(p))
					}
					return true
				})

				// Inbound: a written packet reaches the socket.
				buf := make([]byte, offset+1500)
				n := ipUDP(buf, offset, remote, local, []byte("reply "+fam.local))
				if w, err := d.Write([][]byte{buf[:offset+n]}, offset); err != nil || w != 1 {
					t.Fatalf("Write: %d, %v", w, err)
				}
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				rb := make([]byte, 100)
				rn, from, err := c.ReadFromUDPAddrPort(rb)
				if err != nil {
					t.Fatal(err)
				}
				if string(rb[:rn]) != "reply "+fam.local || from.Addr().Unmap() != remote.Addr() {
					t.Fatalf("socket got %q from %v", rb[:rn], from)
				}
			}
			if st := d.Stats(); st != (LinuxStats{}) {
				t.Fatalf("unexpected drops: %+v", st)
			}
		})
	}
}

// udpIntoTUN creates gtt0 in a new namespace and a UDP socket there whose
// datagrams to remote are routed into the TUN.
func udpIntoTUN(t *testing.T, opts LinuxOptions) (d *LinuxDevice, c *net.UDPConn, remote netip.AddrPort) {
	t.Helper()
	ns := newNetns(t)
	d = ns.createTUN("gtt0", 1420, opts)
	setupAddrs(ns, "gtt0")
	return d, ns.listenUDP("10.77.0.1:7000"), netip.MustParseAddrPort("10.77.0.2:9999")
}

func TestTUNBatchRead(t *testing.T) {
	d, c, remote := udpIntoTUN(t, LinuxOptions{})
	const count = 50
	for i := range count {
		if _, err := c.WriteToUDPAddrPort(fmt.Appendf(nil, "datagram %d", i), remote); err != nil {
			t.Fatal(err)
		}
	}
	bufs := make([][]byte, 128)
	for i := range bufs {
		bufs[i] = make([]byte, 1500)
	}
	seen := 0
	_, maxBatch := readUntil(t, d, bufs, 0, func(p []byte) bool {
		if _, dst, pl, ok := udpInfo(p); ok && dst == remote {
			if want := fmt.Sprintf("datagram %d", seen); string(pl) != want {
				t.Fatalf("got %q, want %q", pl, want)
			}
			seen++
		}
		return seen == count
	})
	if maxBatch < 2 {
		t.Fatalf("queued packets came one per Read (max batch %d)", maxBatch)
	}
}

func TestTUNDropsTooLarge(t *testing.T) {
	for _, m := range tunModes {
		t.Run(m.name, func(t *testing.T) {
			d, c, remote := udpIntoTUN(t, m.opts)
			if _, err := c.WriteToUDPAddrPort(make([]byte, 400), remote); err != nil {
				t.Fatal(err)
			}
			if _, err := c.WriteToUDPAddrPort([]byte("small"), remote); err != nil {
				t.Fatal(err)
			}
			bufs := [][]byte{make([]byte, 8+200)}
			readUntil(t, d, bufs, 8, func(p []byte) bool {
				_, dst, pl, ok := udpInfo(p)
				if ok && dst == remote && string(pl) != "small" {
					t.Fatalf("got a %d-byte payload, want only the small one", len(pl))
				}
				return ok && dst == remote
			})
			if st := d.Stats(); st.ReadTooLarge+st.ReadBad == 0 {
				t.Fatalf("stats %+v: oversize packet not counted", st)
			}
		})
	}
}

func TestTUNWriteRejected(t *testing.T) {
	ns := newNetns(t)
	d := ns.createTUN("gtt0", 1420, LinuxOptions{DisableOffloads: true})
	setupAddrs(ns, "gtt0")
	c := ns.listenUDP("10.77.0.1:7000")
	good := make([]byte, 1500)
	n := ipUDP(good, 0, netip.MustParseAddrPort("10.77.0.2:9999"), netip.MustParseAddrPort("10.77.0.1:7000"), []byte("after garbage"))
	garbage := bytes.Repeat([]byte{0x00}, 40)
	w, err := d.Write([][]byte{garbage, good[:n]}, 0)
	if err != nil || w != 2 {
		t.Fatalf("Write: %d, %v", w, err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	rb := make([]byte, 100)
	rn, _, err := c.ReadFromUDPAddrPort(rb)
	if err != nil || string(rb[:rn]) != "after garbage" {
		t.Fatalf("got %q, %v", rb[:rn], err)
	}
	if st := d.Stats(); st.WriteRejected != 1 {
		t.Fatalf("stats %+v: want one rejected write", st)
	}
}

func TestCreateTUNFromFile(t *testing.T) {
	for _, vnet := range []bool{false, true} {
		t.Run(fmt.Sprintf("vnet=%v", vnet), func(t *testing.T) {
			testCreateTUNFromFile(t, vnet)
		})
	}
}

func testCreateTUNFromFile(t *testing.T, vnet bool) {
	ns := newNetns(t)
	var d Device
	var err error
	ns.do(func() {
		fd, oerr := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if oerr != nil {
			err = oerr
			return
		}
		ifr, _ := unix.NewIfreq("gttf")
		flags := uint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if vnet {
			flags |= unix.IFF_VNET_HDR
		}
		ifr.SetUint16(flags)
		if err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return
		}
		d, err = CreateTUNFromFile(os.NewFile(uintptr(fd), "tun"), 1380)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if tso, _ := d.(*LinuxDevice).Offloads(); tso != vnet {
		t.Fatalf("TSO %v on a descriptor with IFF_VNET_HDR %v", tso, vnet)
	}
	if name, err := d.Name(); err != nil || name != "gttf" {
		t.Fatalf("Name() = %q, %v", name, err)
	}
	if mtu, err := d.MTU(); err != nil || mtu != 1380 {
		t.Fatalf("MTU() = %d, %v", mtu, err)
	}
	setupAddrs(ns, "gttf")
	expectEvent(t, d, EventUp)
	c := ns.listenUDP("10.77.0.1:7000")
	remote := netip.MustParseAddrPort("10.77.0.2:9999")
	if _, err := c.WriteToUDPAddrPort([]byte("from file"), remote); err != nil {
		t.Fatal(err)
	}
	bufs := [][]byte{make([]byte, 1500)}
	readUntil(t, d, bufs, 0, func(p []byte) bool {
		_, dst, pl, ok := udpInfo(p)
		return ok && dst == remote && string(pl) == "from file"
	})
	buf := make([]byte, 1500)
	n := ipUDP(buf, 0, remote, netip.MustParseAddrPort("10.77.0.1:7000"), []byte("to file"))
	if _, err := d.Write([][]byte{buf[:n]}, 0); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	rb := make([]byte, 100)
	if rn, _, err := c.ReadFromUDPAddrPort(rb); err != nil || string(rb[:rn]) != "to file" {
		t.Fatalf("got %q, %v", rb[:rn], err)
	}
}

func TestCreateTUNFromFileRejectsNonTUN(t *testing.T) {
	f, err := os.Open("/dev/null")
	if err != nil {
		t.Skip(err)
	}
	if _, err := CreateTUNFromFile(f, 0); err == nil {
		t.Fatal("CreateTUNFromFile accepted /dev/null")
	}
}

// ReadFunc on one goroutine and PollFunc spinning on others hand every
// packet to handle exactly once, one batch at a time, in the order the
// kernel queued them.
func TestTUNReadFuncAndPollFunc(t *testing.T) {
	for _, m := range tunModes {
		t.Run(m.name, func(t *testing.T) {
			d, c, remote := udpIntoTUN(t, m.opts)
			const count = 3000
			bufs := make([][]byte, 16)
			for i := range bufs {
				bufs[i] = make([]byte, 1500)
			}
			sizes := make([]int, len(bufs))
			var (
				inHandle atomic.Bool
				next     int // guarded by the device: handle calls never overlap
				handled  atomic.Int64
				polled   atomic.Int64
				done     = make(chan struct{})
				failed   atomic.Value
			)
			handle := func(n int) {
				if !inHandle.CompareAndSwap(false, true) {
					failed.Store("two handle calls at once")
				}
				for i := range n {
					_, dst, pl, ok := udpInfo(bufs[i][:sizes[i]])
					if !ok || dst != remote {
						continue
					}
					if want := fmt.Sprintf("datagram %d", next); string(pl) != want {
						failed.Store(fmt.Sprintf("got %q, want %q", pl, want))
					}
					next++
					handled.Store(int64(next))
					if next == count {
						close(done)
					}
				}
				inHandle.Store(false)
			}
			var wg sync.WaitGroup
			wg.Add(3)
			go func() {
				defer wg.Done()
				for d.ReadFunc(bufs, sizes, 0, handle) == nil {
				}
			}()
			for range 2 {
				go func() {
					defer wg.Done()
					for {
						select {
						case <-done:
							return
						default:
						}
						if d.PollFunc(bufs, sizes, 0, handle) {
							polled.Add(1)
						}
					}
				}()
			}
			// Paced to stay within the TUN's queue, which drops beyond it.
			for i := range count {
				for deadline := time.Now().Add(5 * time.Second); int64(i)-handled.Load() > 200; {
					if time.Now().After(deadline) {
						t.Fatalf("stuck at %d of %d datagrams", handled.Load(), count)
					}
					time.Sleep(50 * time.Microsecond)
				}
				if _, err := c.WriteToUDPAddrPort(fmt.Appendf(nil, "datagram %d", i), remote); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("only %d of %d datagrams handled", handled.Load(), count)
			}
			d.Close()
			wg.Wait()
			if f := failed.Load(); f != nil {
				t.Fatal(f)
			}
			if polled.Load() == 0 {
				t.Fatal("PollFunc never found anything")
			}
			if d.PollFunc(bufs, sizes, 0, handle) {
				t.Fatal("PollFunc after Close read something")
			}
		})
	}
}
