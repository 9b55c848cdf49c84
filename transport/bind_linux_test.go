package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

var linuxConfigs = []struct {
	name string
	cfg  LinuxBindConfig
}{
	{"default", LinuxBindConfig{}},
	{"noGRO", LinuxBindConfig{DisableGRO: true}},
	{"noOffload", LinuxBindConfig{DisableGRO: true, DisableGSO: true, BatchSize: 16}},
}

func TestLinuxBindExchange(t *testing.T) {
	for _, c := range linuxConfigs {
		t.Run(c.name, func(t *testing.T) {
			testBindExchange(t, func() Bind { return NewLinuxBind(c.cfg) })
		})
	}
}

func TestLinuxBindLifecycle(t *testing.T) {
	for _, c := range linuxConfigs {
		t.Run(c.name, func(t *testing.T) {
			testBindLifecycle(t, func() Bind { return NewLinuxBind(c.cfg) })
		})
	}
}

func TestLinuxBindOversize(t *testing.T) {
	for _, c := range linuxConfigs {
		t.Run(c.name, func(t *testing.T) {
			b := NewLinuxBind(c.cfg)
			testBindOversize(t, NewLinuxBind(c.cfg), b, netip.MustParseAddr("127.0.0.1"))
			st := b.Stats()
			if st.Truncated+st.SegmentTooLarge != 2 {
				t.Fatalf("stats %+v: want exactly two oversize drops", st)
			}
		})
	}
}

func TestNewDefaultBindIsLinux(t *testing.T) {
	if _, ok := NewDefaultBind().(*LinuxBind); !ok {
		t.Fatalf("NewDefaultBind returned %T", NewDefaultBind())
	}
}

// segments returns n datagrams of size bytes (the last one last bytes),
// each filled with a pattern that encodes its index.
func segments(n, size, last int) [][]byte {
	bufs := make([][]byte, n)
	for i := range bufs {
		l := size
		if i == n-1 {
			l = last
		}
		bufs[i] = make([]byte, l)
		for j := range bufs[i] {
			bufs[i][j] = byte(i*7 + j)
		}
		binary.BigEndian.PutUint16(bufs[i], uint16(i))
	}
	return bufs
}

func TestLinuxBindGSO(t *testing.T) {
	for _, gro := range []bool{true, false} {
		t.Run(fmt.Sprintf("gro=%v", gro), func(t *testing.T) {
			a := NewLinuxBind(LinuxBindConfig{})
			b := NewLinuxBind(LinuxBindConfig{DisableGRO: !gro})
			openBind(t, a, 0)
			fnsB, portB := openBind(t, b, 0)
			defer a.Close()
			defer b.Close()
			gsoOn, _ := a.Offloads()
			if !gsoOn {
				t.Skip("kernel lacks UDP_SEGMENT")
			}
			if _, groOn := b.Offloads(); groOn != gro {
				if gro {
					t.Skip("kernel lacks UDP_GRO")
				}
				t.Fatal("GRO on although disabled")
			}
			for _, dstAddr := range []string{"127.0.0.1", "::1"} {
				if dstAddr == "::1" && !hasIPv6Loopback() {
					continue
				}
				want := segments(50, 1200, 700)
				dst := Endpoint{Dst: netip.AddrPortFrom(netip.MustParseAddr(dstAddr), portB)}
				if err := a.Send(want, dst); err != nil {
					t.Fatal(err)
				}
				fn := fnsB[0]
				if dstAddr == "::1" {
					fn = fnsB[1]
				}
				// Fewer buffers than segments: the rest must come on later calls.
				const nbufs = 8
				bufs := make([][]byte, nbufs)
				for i := range bufs {
					bufs[i] = make([]byte, 1500)
				}
				sizes := make([]int, nbufs)
				eps := make([]Endpoint, nbufs)
				got := 0
				own := slices.Clone(bufs)
				for call := 0; got < len(want); call++ {
					copy(bufs, own)
					n, err := fn(bufs, sizes, eps)
					if err != nil {
						t.Fatal(err)
					}
					if gro && call == 0 && n != nbufs {
						t.Fatalf("first call with GRO returned %d datagrams, want %d", n, nbufs)
					}
					for i := range n {
						if !bytes.Equal(bufs[i][:sizes[i]], want[got]) {
							t.Fatalf("datagram %d: got %d bytes starting %x, want %d bytes starting %x",
								got, sizes[i], bufs[i][:2], len(want[got]), want[got][:2])
						}
						if eps[i].Dst.Addr() != dst.Dst.Addr() || eps[i].Src != dst.Dst.Addr() {
							t.Fatalf("datagram %d: endpoint %+v", got, eps[i])
						}
						got++
					}
				}
			}
			if st := a.Stats(); st.GSOFallbacks != 0 {
				t.Fatalf("unexpected GSO fallbacks: %+v", st)
			}
		})
	}
}

// TestLinuxBindMixedSizes sends runs of different sizes, including empty
// datagrams, which must keep their boundaries and order.
func TestLinuxBindMixedSizes(t *testing.T) {
	a, b := NewLinuxBind(LinuxBindConfig{}), NewLinuxBind(LinuxBindConfig{})
	openBind(t, a, 0)
	fnsB, portB := openBind(t, b, 0)
	r := startReceiver(t, fnsB, 128, 2000)
	defer func() { a.Close(); b.Close(); r.wait(t) }()
	var want [][]byte
	for i, l := range []int{100, 100, 100, 50, 50, 0, 0, 1400, 1400, 1400, 1400, 1, 1400, 0, 200, 300, 300} {
		d := make([]byte, l)
		for j := range d {
			d[j] = byte(i)
		}
		want = append(want, d)
	}
	if err := a.Send(want, Endpoint{Dst: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), portB)}); err != nil {
		t.Fatal(err)
	}
	for i := range want {
		got := r.next(t)
		if !bytes.Equal(got.data, want[i]) {
			t.Fatalf("datagram %d: got %d bytes %x.., want %d bytes", i, len(got.data), got.data[:min(4, len(got.data))], len(want[i]))
		}
	}
}

// TestLinuxBindManyDatagrams sends more datagrams than a batch in one call.
func TestLinuxBindManyDatagrams(t *testing.T) {
	a := NewLinuxBind(LinuxBindConfig{BatchSize: 8, DisableGSO: true})
	b := NewLinuxBind(LinuxBindConfig{BatchSize: 8})
	openBind(t, a, 0)
	fnsB, portB := openBind(t, b, 0)
	r := startReceiver(t, fnsB, 8, 2000)
	defer func() { a.Close(); b.Close(); r.wait(t) }()
	want := segments(100, 300, 300)
	if err := a.Send(want, Endpoint{Dst: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), portB)}); err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if got := r.next(t); !bytes.Equal(got.data, want[i]) {
			t.Fatalf("datagram %d differs", i)
		}
	}
}

func TestLinuxBindStickySource(t *testing.T) {
	a, b := NewLinuxBind(LinuxBindConfig{}), NewLinuxBind(LinuxBindConfig{})
	fnsA, portA := openBind(t, a, 0)
	fnsB, portB := openBind(t, b, 0)
	ra := startReceiver(t, fnsA, 16, 2000)
	rb := startReceiver(t, fnsB, 16, 2000)
	defer func() { a.Close(); b.Close(); ra.wait(t); rb.wait(t) }()

	addrs := []string{"127.0.0.2", "127.0.0.1", "127.0.0.2"}
	if hasIPv6Loopback() {
		addrs = append(addrs, "::1")
	}
	for _, s := range addrs {
		local := netip.MustParseAddr(s)
		if err := a.Send([][]byte{[]byte("ping " + s)}, Endpoint{Dst: netip.AddrPortFrom(local, portB)}); err != nil {
			t.Fatal(err)
		}
		got := rb.next(t)
		if got.ep.Src != local {
			t.Fatalf("datagram sent to %v arrived with Src %v", local, got.ep.Src)
		}
		if got.ep.IfIndex == 0 {
			t.Fatalf("no interface index in %+v", got.ep)
		}
		if err := b.Send([][]byte{[]byte("pong")}, got.ep); err != nil {
			t.Fatal(err)
		}
		reply := ra.next(t)
		if reply.ep.Dst != netip.AddrPortFrom(local, portB) {
			t.Fatalf("reply to a datagram sent to %v came from %v", local, reply.ep.Dst)
		}
	}
	if st := b.Stats(); st.SourceFallbacks != 0 {
		t.Fatalf("unexpected source fallbacks: %+v", st)
	}

	// A source address that is not ours is refused by the kernel: the
	// datagram still goes out from an address routing picks.
	ep := Endpoint{Dst: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), portA), Src: netip.MustParseAddr("198.51.100.77")}
	if err := b.Send([][]byte{[]byte("fallback")}, ep); err != nil {
		t.Fatalf("send with foreign source: %v", err)
	}
	reply := ra.next(t)
	if string(reply.data) != "fallback" || reply.ep.Dst.Addr() != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("got %q from %v", reply.data, reply.ep.Dst)
	}
	if st := b.Stats(); st.SourceFallbacks != 1 {
		t.Fatalf("stats %+v: want one source fallback", st)
	}

	// The refused address is left out of the next sends at once, and
	// tried again once staleFor has passed.
	var now int64
	b.nowNano = func() int64 { return now }
	b.markStale(ep.Src)
	for i := range 3 {
		if err := b.Send([][]byte{[]byte("again")}, ep); err != nil {
			t.Fatal(err)
		}
		if reply := ra.next(t); string(reply.data) != "again" {
			t.Fatalf("got %q", reply.data)
		}
		if st := b.Stats(); st.SourceFallbacks != 1 {
			t.Fatalf("send %d: stats %+v: the refused source was tried again", i, st)
		}
	}
	now += int64(staleFor)
	if err := b.Send([][]byte{[]byte("later")}, ep); err != nil {
		t.Fatal(err)
	}
	ra.next(t)
	if st := b.Stats(); st.SourceFallbacks != 2 {
		t.Fatalf("stats %+v: the source was not tried again after %v", st, staleFor)
	}
}

// injectSendErrors makes sendmmsg fail with errno for messages carrying a
// UDP_SEGMENT control message, for the duration of the test.
func injectSendErrors(t *testing.T, errno unix.Errno) {
	real := sendmmsg
	t.Cleanup(func() { sendmmsg = real })
	sendmmsg = func(fd uintptr, msgs []mmsghdr) (int, unix.Errno) {
		for i := range msgs {
			if msgs[i].hdr.Iovlen > 1 {
				if i == 0 {
					return 0, errno
				}
				n, e := real(fd, msgs[:i])
				return n, e
			}
		}
		return real(fd, msgs)
	}
}

func TestLinuxBindGSOFallback(t *testing.T) {
	for _, errno := range []unix.Errno{unix.EIO, unix.EINVAL} {
		t.Run(errno.Error(), func(t *testing.T) {
			a, b := NewLinuxBind(LinuxBindConfig{}), NewLinuxBind(LinuxBindConfig{})
			openBind(t, a, 0)
			fnsB, portB := openBind(t, b, 0)
			r := startReceiver(t, fnsB, 64, 2000)
			defer func() { a.Close(); b.Close(); r.wait(t) }()
			if gso, _ := a.Offloads(); !gso {
				t.Skip("kernel lacks UDP_SEGMENT")
			}
			injectSendErrors(t, errno)
			// One single datagram first, then a run that would use GSO.
			want := append([][]byte{[]byte("single")}, segments(20, 1000, 1000)...)
			if err := a.Send(want, Endpoint{Dst: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), portB)}); err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if got := r.next(t); !bytes.Equal(got.data, want[i]) {
					t.Fatalf("datagram %d differs", i)
				}
			}
			if st := a.Stats(); st.GSOFallbacks != 1 {
				t.Fatalf("stats %+v: want one GSO fallback", st)
			}
			gso, _ := a.Offloads()
			if gso != (errno != unix.EIO) {
				t.Fatalf("after %v GSO on = %v", errno, gso)
			}
		})
	}
}

func TestLinuxBindSendErrors(t *testing.T) {
	a := NewLinuxBind(LinuxBindConfig{})
	openBind(t, a, 0)
	defer a.Close()
	injectSendErrors(t, unix.EPERM)
	err := a.Send(segments(4, 100, 100), Endpoint{Dst: netip.MustParseAddrPort("127.0.0.1:9")})
	if !errors.Is(err, unix.EPERM) {
		t.Fatalf("got %v, want EPERM", err)
	}
	if err := a.Send([][]byte{make([]byte, 70000)}, Endpoint{Dst: netip.MustParseAddrPort("127.0.0.1:9")}); !errors.Is(err, unix.EMSGSIZE) {
		t.Fatalf("oversized datagram: got %v, want EMSGSIZE", err)
	}
}

func getMark(t *testing.T, s *linuxSocket) int {
	t.Helper()
	var mark int
	var opErr error
	if err := s.rc.Control(func(fd uintptr) { mark, opErr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK) }); err != nil {
		t.Fatal(err)
	}
	if opErr != nil {
		t.Fatal(opErr)
	}
	return mark
}

func TestLinuxBindSetMark(t *testing.T) {
	if os.Geteuid() != 0 {
		requirePrivilege(t, "SO_MARK needs CAP_NET_ADMIN")
	}
	b := NewLinuxBind(LinuxBindConfig{})
	if err := b.SetMark(0x51); err != nil {
		t.Fatal(err)
	}
	openBind(t, b, 0)
	check := func(want int) {
		t.Helper()
		s := b.socks.Load()
		for _, sock := range []*linuxSocket{s.v4, s.v6} {
			if sock != nil {
				if got := getMark(t, sock); got != want {
					t.Fatalf("mark %#x, want %#x", got, want)
				}
			}
		}
	}
	check(0x51)
	if err := b.SetMark(0x1234); err != nil {
		t.Fatal(err)
	}
	check(0x1234)
	b.Close()
	openBind(t, b, 0)
	check(0x1234)
	b.Close()
}

// requirePrivilege skips the test, or fails it when CI=true.
func requirePrivilege(t *testing.T, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(reason)
	}
	t.Skip(reason)
}

// fakeReceiver builds a GRO-mode receiver whose messages are filled by the
// test instead of the kernel.
func fakeReceiver(b *LinuxBind, n int) *linuxReceiver {
	b.cfg.GROBuffers = n
	return newLinuxReceiver(b, &linuxSocket{gro: true})
}

func (r *linuxReceiver) fakeMessage(i int, from netip.AddrPort, data []byte, oob []byte) {
	copy(r.arena[i*groBufSize:], data)
	r.msgs[i].n = uint32(len(data))
	r.msgs[i].hdr.Flags = 0
	sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&r.names[i]))
	*sa = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: from.Addr().As4()}
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], from.Port())
	copy(r.oob[i*recvOOBSize:], oob)
	r.msgs[i].hdr.SetControllen(len(oob))
}

func groCmsg(seg int32) []byte {
	b := make([]byte, unix.CmsgSpace(4))
	data, _ := putCmsg(b, unix.SOL_UDP, unix.UDP_GRO, 4)
	binary.NativeEndian.PutUint32(data, uint32(seg))
	return b
}

func TestLinuxReceiverDrainMalformed(t *testing.T) {
	b := NewLinuxBind(LinuxBindConfig{})
	r := fakeReceiver(b, 4)
	from := netip.MustParseAddrPort("10.0.0.1:51820")
	r.fakeMessage(0, from, bytes.Repeat([]byte{1}, 300), groCmsg(0))   // impossible segment size
	r.fakeMessage(1, from, bytes.Repeat([]byte{2}, 300), groCmsg(100)) // three segments
	bad := groCmsg(100)
	bad[0] = 200 // length beyond the buffer
	r.fakeMessage(2, from, bytes.Repeat([]byte{3}, 300), bad)
	r.fakeMessage(3, from, bytes.Repeat([]byte{4}, 250), groCmsg(100)) // 100, 100, 50
	r.msgs[0].hdr.Flags = 0
	r.pending = pendingGRO{count: 4}

	bufs := [][]byte{make([]byte, 100), make([]byte, 100)}
	sizes, eps := make([]int, 2), make([]Endpoint, 2)
	var got []string
	own := slices.Clone(bufs)
	for r.pending.next < r.pending.count {
		copy(bufs, own)
		n := r.drain(bufs, sizes, eps)
		for i := range n {
			got = append(got, fmt.Sprintf("%d:%d", bufs[i][0], sizes[i]))
			if eps[i].Dst != from {
				t.Fatalf("endpoint %v", eps[i].Dst)
			}
		}
	}
	want := "[2:100 2:100 2:100 4:100 4:100 4:50]"
	if fmt.Sprint(got) != want {
		t.Fatalf("got %v, want %v", got, want)
	}
	if st := b.Stats(); st.BadControl != 2 {
		t.Fatalf("stats %+v: want two bad control drops", st)
	}
}

func TestParseRecvControl(t *testing.T) {
	var oob []byte
	b := make([]byte, unix.CmsgSpace(unix.SizeofInet4Pktinfo))
	data, _ := putCmsg(b, unix.IPPROTO_IP, unix.IP_PKTINFO, unix.SizeofInet4Pktinfo)
	binary.NativeEndian.PutUint32(data, 7)
	copy(data[4:8], []byte{10, 1, 2, 3})
	oob = append(oob, b...)
	oob = append(oob, groCmsg(1280)...)
	rc, err := parseRecvControl(oob)
	if err != nil {
		t.Fatal(err)
	}
	if rc.src != netip.MustParseAddr("10.1.2.3") || rc.ifIndex != 7 || rc.segSize != 1280 {
		t.Fatalf("got %+v", rc)
	}

	b6 := make([]byte, unix.CmsgSpace(unix.SizeofInet6Pktinfo))
	data, _ = putCmsg(b6, unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, unix.SizeofInet6Pktinfo)
	a := netip.MustParseAddr("fd00::1").As16()
	copy(data, a[:])
	binary.NativeEndian.PutUint32(data[16:], 3)
	rc, err = parseRecvControl(b6)
	if err != nil || rc.src != netip.MustParseAddr("fd00::1") || rc.ifIndex != 3 || rc.segSize != 0 {
		t.Fatalf("got %+v, %v", rc, err)
	}

	for name, bad := range map[string][]byte{
		"short pktinfo":   b[:unix.CmsgLen(4)],
		"length past end": append([]byte(nil), oob[:len(oob)-8]...),
		"negative gro":    groCmsg(-5),
		"huge gro":        groCmsg(70000),
	} {
		if name == "short pktinfo" {
			bad = append([]byte(nil), bad...)
			(*unix.Cmsghdr)(unsafe.Pointer(&bad[0])).SetLen(unix.CmsgLen(4))
		}
		if _, err := parseRecvControl(bad); !errors.Is(err, errBadControl) {
			t.Errorf("%s: got %v, want errBadControl", name, err)
		}
	}
	if rc, err := parseRecvControl(nil); err != nil || rc != (recvControl{}) {
		t.Fatalf("empty: %+v %v", rc, err)
	}
}

func FuzzParseRecvControl(f *testing.F) {
	f.Add(groCmsg(1200))
	f.Add(groCmsg(-1))
	b := make([]byte, unix.CmsgSpace(unix.SizeofInet6Pktinfo))
	putCmsg(b, unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, unix.SizeofInet6Pktinfo)
	f.Add(append(b, groCmsg(1452)...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, oob []byte) {
		rc, err := parseRecvControl(oob)
		if err != nil {
			if !errors.Is(err, errBadControl) {
				t.Fatalf("error %v does not wrap errBadControl", err)
			}
			return
		}
		if rc.segSize < 0 || rc.segSize > 65535 {
			t.Fatalf("segment size %d", rc.segSize)
		}
	})
}

func TestLinuxBindGrowBuffers(t *testing.T) {
	for _, c := range linuxConfigs {
		t.Run(c.name, func(t *testing.T) {
			b := NewLinuxBind(c.cfg)
			openBind(t, b, 0)
			_, gro := b.Offloads()
			b.Close()
			// With UDP_GRO the datagram waits in the bind's own buffer;
			// without, the kernel has already cut it short.
			testBindGrowBuffers(t, NewLinuxBind(c.cfg), b, netip.MustParseAddr("127.0.0.1"), gro)
		})
	}
}

func TestSocketFDs(t *testing.T) {
	b := NewLinuxBind(LinuxBindConfig{})
	if v4, v6 := b.SocketFDs(); v4 != -1 || v6 != -1 {
		t.Fatalf("closed bind has descriptors %d, %d", v4, v6)
	}
	_, port, err := b.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	v4, _ := b.SocketFDs()
	if v4 < 0 {
		t.Fatal("no IPv4 descriptor")
	}
	sa, err := unix.Getsockname(v4)
	if err != nil {
		t.Fatal(err)
	}
	if in4, ok := sa.(*unix.SockaddrInet4); !ok || in4.Port != int(port) {
		t.Fatalf("descriptor %d is bound to %v, want port %d", v4, sa, port)
	}
	b.Close()
	if v4, v6 := b.SocketFDs(); v4 != -1 || v6 != -1 {
		t.Fatalf("closed bind has descriptors %d, %d", v4, v6)
	}
}
