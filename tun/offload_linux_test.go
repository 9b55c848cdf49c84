package tun

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// wire forwards packets between two TUN devices in both directions, as a
// cable would, and checks every packet read: no larger than the MTU and
// with valid IPv4 header and TCP/UDP checksums.
type wire struct {
	t       *testing.T
	mtu     int
	bad     atomic.Int64
	packets atomic.Int64
	maxRead atomic.Int64 // most packets one Read returned
	wg      sync.WaitGroup
	errMu   sync.Mutex
	errs    []string
}

func startWire(t *testing.T, a, b *LinuxDevice, mtu int) *wire {
	w := &wire{t: t, mtu: mtu}
	w.wg.Add(2)
	go w.forward(a, b)
	go w.forward(b, a)
	return w
}

func (w *wire) forward(from, to *LinuxDevice) {
	defer w.wg.Done()
	const offset = 16
	bufs := make([][]byte, from.BatchSize())
	for i := range bufs {
		bufs[i] = make([]byte, offset+w.mtu+64)
	}
	sizes := make([]int, len(bufs))
	out := make([][]byte, 0, len(bufs))
	for {
		n, err := from.Read(bufs, sizes, offset)
		if err != nil {
			return
		}
		if int64(n) > w.maxRead.Load() {
			w.maxRead.Store(int64(n))
		}
		out = out[:0]
		for i := range n {
			pkt := bufs[i][offset : offset+sizes[i]]
			w.packets.Add(1)
			if msg := checkPacket(pkt, w.mtu); msg != "" {
				w.bad.Add(1)
				w.errMu.Lock()
				if len(w.errs) < 5 {
					w.errs = append(w.errs, msg)
				}
				w.errMu.Unlock()
			}
			out = append(out, bufs[i][:offset+sizes[i]])
		}
		if _, err := to.Write(out, offset); err != nil {
			return
		}
	}
}

// checkPacket returns what is wrong with a packet read from a TUN device.
func checkPacket(pkt []byte, mtu int) string {
	if len(pkt) > mtu {
		return fmt.Sprintf("%d-byte packet exceeds MTU %d", len(pkt), mtu)
	}
	if len(pkt) < 20 {
		return fmt.Sprintf("%d-byte packet", len(pkt))
	}
	var proto byte
	switch pkt[0] >> 4 {
	case 4:
		proto = pkt[9]
	case 6:
		if len(pkt) < 40 {
			return "short IPv6 packet"
		}
		proto = pkt[6]
	default:
		return "bad IP version"
	}
	if proto == unix.IPPROTO_TCP || proto == unix.IPPROTO_UDP {
		if !l4ChecksumOK(pkt) {
			return fmt.Sprintf("bad checksum in %d-byte packet proto %d", len(pkt), proto)
		}
	}
	return ""
}

// stop closes the devices and waits for the forwarders.
func (w *wire) stop(a, b *LinuxDevice) {
	a.Close()
	b.Close()
	w.wg.Wait()
	if w.bad.Load() > 0 {
		w.t.Errorf("%d of %d packets bad: %v", w.bad.Load(), w.packets.Load(), w.errs)
	}
}

// twoTUNs creates two namespaces joined by two TUN devices and a wire.
func twoTUNs(t *testing.T, mtu int, opts LinuxOptions) (ns1, ns2 *netns, a, b *LinuxDevice, w *wire) {
	ns1, ns2 = newNetns(t), newNetns(t)
	a = ns1.createTUN("gtta", mtu, opts)
	b = ns2.createTUN("gttb", mtu, opts)
	ns1.ip("addr", "add", "10.78.0.1/24", "dev", "gtta")
	ns1.ip("addr", "add", "fd78::1/64", "dev", "gtta", "nodad")
	ns2.ip("addr", "add", "10.78.0.2/24", "dev", "gttb")
	ns2.ip("addr", "add", "fd78::2/64", "dev", "gttb", "nodad")
	ns1.ip("link", "set", "gtta", "up")
	ns2.ip("link", "set", "gttb", "up")
	ns1.waitLocalRoute("fd78::1")
	ns2.waitLocalRoute("fd78::2")
	w = startWire(t, a, b, mtu)
	return
}

func TestTUNOffloadTCP(t *testing.T) {
	for _, m := range tunModes {
		for _, server := range []string{"10.78.0.2:5000", "[fd78::2]:5000"} {
			t.Run(m.name+"/"+server, func(t *testing.T) {
				const mtu = 1420
				ns1, ns2, a, b, w := twoTUNs(t, mtu, m.opts)
				tso, _ := a.Offloads()
				if m.opts.DisableOffloads && tso {
					t.Fatal("offloads on although disabled")
				}

				var ln net.Listener
				var err error
				ns2.do(func() { ln, err = net.Listen("tcp", server) })
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
				data := make([]byte, 4<<20)
				for i := range data {
					data[i] = byte(i*31 + i>>9)
				}
				want := sha256.Sum256(data)
				got := make(chan [32]byte, 1)
				go func() {
					c, err := ln.Accept()
					if err != nil {
						got <- [32]byte{}
						return
					}
					defer c.Close()
					h := sha256.New()
					io.Copy(h, c)
					got <- [32]byte(h.Sum(nil))
				}()
				var c net.Conn
				ns1.do(func() { c, err = net.DialTimeout("tcp", server, 5*time.Second) })
				if err != nil {
					t.Fatal(err)
				}
				if _, err := c.Write(data); err != nil {
					t.Fatal(err)
				}
				c.Close()
				select {
				case h := <-got:
					if h != want {
						t.Fatal("data corrupted through the TUN pair")
					}
				case <-time.After(60 * time.Second):
					t.Fatal("transfer timed out")
				}
				w.stop(a, b)
				sa, sb := a.Stats(), b.Stats()
				t.Logf("tso=%v packets=%d maxRead=%d a=%+v b=%+v", tso, w.packets.Load(), w.maxRead.Load(), sa, sb)
				if tso {
					if sa.GSOSplit == 0 {
						t.Error("no super-packet was read from the sending side")
					}
					if sb.Coalesced == 0 {
						t.Error("no segments were coalesced on the receiving side")
					}
				} else if sa.GSOSplit != 0 || sb.Coalesced != 0 {
					t.Errorf("offload counters without offloads: %+v %+v", sa, sb)
				}
				if sa.ReadBad+sb.ReadBad+sa.ReadTooLarge+sb.ReadTooLarge != 0 {
					t.Errorf("drops: %+v %+v", sa, sb)
				}
			})
		}
	}
}

func TestTUNOffloadUDP(t *testing.T) {
	const mtu = 1420
	ns1, ns2, a, b, w := twoTUNs(t, mtu, LinuxOptions{})
	defer w.stop(a, b)
	_, uso := a.Offloads()
	if !uso {
		t.Skip("kernel lacks USO on TUN devices")
	}
	for _, dst := range []string{"10.78.0.2:6000", "[fd78::2]:6000"} {
		rx := ns2.listenUDP(dst)
		var tx *net.UDPConn
		var err error
		ns1.do(func() { tx, err = net.ListenUDP("udp", nil) })
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Close()
		const seg, count = 1000, 20
		rc, _ := tx.SyscallConn()
		var opErr error
		rc.Control(func(fd uintptr) { opErr = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_SEGMENT, seg) })
		if opErr != nil {
			t.Skipf("UDP_SEGMENT: %v", opErr)
		}
		payload := make([]byte, seg*count-300)
		for i := range payload {
			payload[i] = byte(i / seg)
		}
		before := a.Stats().GSOSplit
		if _, err := tx.WriteToUDPAddrPort(payload, netip.MustParseAddrPort(dst)); err != nil {
			t.Fatal(err)
		}
		rx.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 2000)
		for i := range count {
			n, err := rx.Read(buf)
			if err != nil {
				t.Fatalf("datagram %d: %v (forwarded %d packets, bad %d %v; a %+v; b %+v)", i, err,
					w.packets.Load(), w.bad.Load(), w.errs, a.Stats(), b.Stats())
			}
			wantLen := seg
			if i == count-1 {
				wantLen = seg - 300
			}
			if n != wantLen || !bytes.Equal(buf[:n], payload[i*seg:i*seg+n]) {
				t.Fatalf("datagram %d: %d bytes, want %d", i, n, wantLen)
			}
		}
		if a.Stats().GSOSplit == before {
			t.Errorf("%s: the UDP super-packet was not split by the reader", dst)
		}
	}
}

// TestTUNSplitMoreSegmentsThanBuffers reads a super-packet with a single
// buffer: the segments must come out one per call, none lost.
func TestTUNSplitMoreSegmentsThanBuffers(t *testing.T) {
	ns := newNetns(t)
	d := ns.createTUN("gtt0", 1420, LinuxOptions{})
	if _, uso := d.Offloads(); !uso {
		t.Skip("kernel lacks USO on TUN devices")
	}
	setupAddrs(ns, "gtt0")
	var tx *net.UDPConn
	var err error
	ns.do(func() { tx, err = net.ListenUDP("udp", nil) })
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	rc, _ := tx.SyscallConn()
	rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_SEGMENT, 500) })
	remote := netip.MustParseAddrPort("10.77.0.2:9999")
	payload := make([]byte, 500*10)
	for i := range payload {
		payload[i] = byte(i / 500)
	}
	if _, err := tx.WriteToUDPAddrPort(payload, remote); err != nil {
		t.Fatal(err)
	}
	bufs := [][]byte{make([]byte, 1500)}
	next := 0
	readUntil(t, d, bufs, 0, func(p []byte) bool {
		_, dst, pl, ok := udpInfo(p)
		if !ok || dst != remote {
			return false
		}
		if len(pl) != 500 || pl[0] != byte(next) || !l4ChecksumOK(p) {
			t.Fatalf("segment %d: %d bytes starting %d", next, len(pl), pl[0])
		}
		next++
		return next == 10
	})
	if st := d.Stats(); st.GSOSplit == 0 {
		t.Fatalf("stats %+v: no super-packet split", st)
	}
}

// FuzzVnetSplit feeds arbitrary bytes, as if read from a TUN device with
// virtio-net headers, through the splitting path with few and many
// buffers: it must never panic and never report more packets than buffers.
func FuzzVnetSplit(f *testing.F) {
	seg := make([]byte, 1500)
	n := tcpSegment(seg, 0, netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("10.0.0.2:2"), 1, 1, make([]byte, 1400))
	gso := append([]byte{1, 1, 40, 0, 100, 0, 20, 0, 16, 0}, seg[:n]...) // TCPv4, 100-byte segments
	f.Add(gso)
	f.Add(append([]byte{1, 5, 28, 0, 200, 0, 20, 0, 6, 0}, seg[:n]...))
	f.Add(append(make([]byte, 10), seg[:n]...))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x45})
	d := &LinuxDevice{}
	d.vr.init()
	bufs := make([][]byte, 128)
	for i := range bufs {
		bufs[i] = make([]byte, 1500)
	}
	sizes := make([]int, len(bufs))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > virtioHdrLen+maxPacket {
			return
		}
		for _, nbufs := range []int{1, 3, 128} {
			d.vr.plen = copy(d.vr.buf, data)
			d.vr.have = true
			d.vr.next, d.vr.segN, d.vr.retried = 0, 0, false
			k, wait := d.split(bufs[:nbufs], sizes[:nbufs], 8, true)
			if wait {
				// Too large for the buffers: kept for one more call
				// (with larger buffers, after an MTU change), then
				// dropped.
				if k != 0 || !d.vr.have || !d.vr.retried {
					t.Fatalf("split waited with %d packets, have %v, retried %v", k, d.vr.have, d.vr.retried)
				}
				k, wait = d.split(bufs[:nbufs], sizes[:nbufs], 8, true)
			}
			if wait || k > nbufs || d.vr.have {
				t.Fatalf("split returned %d, wait %v with %d buffers", k, wait, nbufs)
			}
			for i := range k {
				if sizes[i] > 1500-8 {
					t.Fatalf("size %d", sizes[i])
				}
			}
		}
	})
}
