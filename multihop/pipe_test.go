package multihop

import (
	"bytes"
	"encoding/binary"
	"errors"
	mrand "math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/gotatun/gotatun/packet"
	"github.com/gotatun/gotatun/transport"
	"github.com/gotatun/gotatun/tun"
)

var (
	client4 = netip.MustParseAddr("10.64.0.2")
	client6 = netip.MustParseAddr("fc00:bbbb:bbbb:bb01::2")
	relay4  = netip.MustParseAddrPort("203.0.113.2:51820")
	relay6  = netip.MustParseAddrPort("[2001:db8::2]:51820")
)

type seqRand struct{ r *mrand.ChaCha8 }

func (s seqRand) Read(b []byte) (int, error) { return s.r.Read(b) }

func newRand(seed byte) seqRand { return seqRand{mrand.NewChaCha8([32]byte{seed})} }

// newTestPipe returns a pipe with both addresses, its bind open, and the
// bind's receive function and port.
func newTestPipe(t testing.TB, now func() time.Time) (*Pipe, transport.ReceiveFunc, uint16) {
	t.Helper()
	p, err := NewPipe(PipeConfig{Addrs: []netip.Addr{client4, client6}, Rand: newRand(1), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	fns, port, err := p.Bind().Open(0)
	if err != nil {
		t.Fatal(err)
	}
	return p, fns[0], port
}

// readOne reads one packet from the pipe's TUN side.
func readOne(t testing.TB, p *Pipe) []byte {
	t.Helper()
	bufs := [][]byte{make([]byte, 2000)}
	sizes := []int{0}
	n, err := p.TUN().Read(bufs, sizes, 16)
	if err != nil || n != 1 {
		t.Fatalf("read: %d packets, %v", n, err)
	}
	return bufs[0][16 : 16+sizes[0]]
}

// checkUDP verifies an IP/UDP packet's headers and checksums on its own
// terms and returns source, destination and payload.
func checkUDP(t *testing.T, pkt []byte) (src, dst netip.AddrPort, payload []byte) {
	t.Helper()
	var u []byte
	var pseudo uint64
	var s, d netip.Addr
	switch pkt[0] >> 4 {
	case 4:
		ip, err := packet.ParseIPv4(pkt)
		if err != nil || !ip.ChecksumValid() || ip.Protocol() != 17 || ip.TTL() != 64 || ip.IsFragment() || ip.DontFragment() {
			t.Fatalf("bad IPv4 header %x (%v)", pkt[:20], err)
		}
		s, d, u = ip.Src(), ip.Dst(), ip.Payload()
		pseudo = packet.PseudoHeaderSum(17, pkt[12:16], pkt[16:20], len(u))
	case 6:
		ip, err := packet.ParseIPv6(pkt)
		if err != nil || ip.NextHeader() != 17 || ip.HopLimit() != 64 {
			t.Fatalf("bad IPv6 header %x (%v)", pkt[:40], err)
		}
		s, d, u = ip.Src(), ip.Dst(), ip.Payload()
		pseudo = packet.PseudoHeaderSum(17, pkt[8:24], pkt[24:40], len(u))
	default:
		t.Fatalf("not IP: %x", pkt)
	}
	udp, err := packet.ParseUDP(u)
	if err != nil || udp.Length() != len(u) {
		t.Fatalf("bad UDP header %x (%v)", u[:8], err)
	}
	if udp.Checksum() == 0 || packet.Checksum(u, pseudo) != 0xffff {
		t.Fatalf("bad UDP checksum %#04x", udp.Checksum())
	}
	return netip.AddrPortFrom(s, udp.SrcPort()), netip.AddrPortFrom(d, udp.DstPort()), udp.Payload()
}

func TestSendBuildsPackets(t *testing.T) {
	p, _, port := newTestPipe(t, nil)
	msgs := [][]byte{[]byte("first datagram"), make([]byte, 1392), {}}
	if err := p.Bind().Send(msgs, transport.Endpoint{Dst: relay4}); err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		pkt := readOne(t, p)
		src, dst, payload := checkUDP(t, pkt)
		if src != netip.AddrPortFrom(client4, port) || dst != relay4 || !bytes.Equal(payload, m) {
			t.Fatalf("packet %d: %v → %v %q", i, src, dst, payload)
		}
		if id := binary.BigEndian.Uint16(pkt[4:6]); id != uint16(i+1) {
			t.Fatalf("packet %d: IPv4 ID %d, want %d", i, id, i+1)
		}
	}
	// IPv4-mapped destinations are IPv4.
	mapped := netip.AddrPortFrom(netip.AddrFrom16(relay4.Addr().As16()), relay4.Port())
	if err := p.Bind().Send([][]byte{{1}}, transport.Endpoint{Dst: mapped}); err != nil {
		t.Fatal(err)
	}
	if pkt := readOne(t, p); pkt[0]>>4 != 4 {
		t.Fatal("mapped destination not sent as IPv4")
	}

	// IPv6: one flow label per opening.
	var labels []uint32
	for range 2 {
		if err := p.Bind().Send([][]byte{[]byte("a"), []byte("b")}, transport.Endpoint{Dst: relay6}); err != nil {
			t.Fatal(err)
		}
		var got []uint32
		for range 2 {
			pkt := readOne(t, p)
			src, dst, _ := checkUDP(t, pkt)
			if src.Addr() != client6 || dst != relay6 {
				t.Fatalf("IPv6 packet %v → %v", src, dst)
			}
			got = append(got, packet.IPv6(pkt).FlowLabel())
		}
		if got[0] != got[1] || got[0] == 0 {
			t.Fatalf("flow labels %v within one opening", got)
		}
		labels = append(labels, got[0])
		p.Bind().Close()
		if _, _, err := p.Bind().Open(0); err != nil {
			t.Fatal(err)
		}
	}
	if labels[0] == labels[1] {
		t.Fatalf("same flow label %#x after re-opening", labels[0])
	}

	// Too big for the entry MTU, and a family without an address.
	err := p.Bind().Send([][]byte{make([]byte, 1393), []byte("fits")}, transport.Endpoint{Dst: relay4})
	if !errors.Is(err, ErrTooBig) {
		t.Fatalf("oversize send: %v", err)
	}
	if _, _, payload := checkUDP(t, readOne(t, p)); string(payload) != "fits" {
		t.Fatalf("got %q after an oversize datagram", payload)
	}
	if err := p.Bind().Send([][]byte{make([]byte, 1373)}, transport.Endpoint{Dst: relay6}); !errors.Is(err, ErrTooBig) {
		t.Fatalf("oversize IPv6 send: %v", err)
	}
	p4, err := NewPipe(PipeConfig{Addrs: []netip.Addr{client4}})
	if err != nil {
		t.Fatal(err)
	}
	defer p4.Close()
	p4.Bind().Open(0)
	if err := p4.Bind().Send([][]byte{{1}}, transport.Endpoint{Dst: relay6}); !errors.Is(err, ErrNoSource) {
		t.Fatalf("IPv6 send without an IPv6 address: %v", err)
	}
	if s := p.Stats(); s.SendTooBig != 2 || s.Sent != 9 || s.Read != 9 {
		t.Fatalf("stats %+v", s)
	}
}

// reply builds the packet the entry device writes for a datagram from
// the relay to the client.
func reply(t testing.TB, from, to netip.AddrPort, payload []byte) []byte {
	t.Helper()
	h, err := NewPipe(PipeConfig{Addrs: []netip.Addr{from.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	buf := make([]byte, 65536)
	e := encapHeader{dst: to.Addr(), sport: from.Port(), dport: to.Port(), flow: 7}
	if from.Addr().Is4() {
		a := from.Addr().As4()
		copy(e.src[:], a[:])
		e.init()
		return buf[:e.put4(buf, payload, uint16(h.ipID.Add(1)))]
	}
	e.src = from.Addr().As16()
	e.init()
	return buf[:e.put6(buf, payload)]
}

func receiveOne(t testing.TB, recv transport.ReceiveFunc) ([]byte, transport.Endpoint) {
	t.Helper()
	bufs := [][]byte{make([]byte, 2000)}
	sizes := []int{0}
	eps := []transport.Endpoint{{}}
	n, err := recv(bufs, sizes, eps)
	if err != nil || n != 1 {
		t.Fatalf("receive: %d, %v", n, err)
	}
	return append([]byte(nil), bufs[0][:sizes[0]]...), eps[0]
}

func TestWriteDeliversAndDrops(t *testing.T) {
	p, recv, port := newTestPipe(t, nil)
	me4, me6 := netip.AddrPortFrom(client4, port), netip.AddrPortFrom(client6, port)
	good4 := reply(t, relay4, me4, []byte("four"))
	good6 := reply(t, relay6, me6, []byte("six"))
	trunc := bytes.Clone(good4)
	binary.BigEndian.PutUint16(trunc[24:], 200) // UDP length past the end
	notUDP := bytes.Clone(good4)
	notUDP[9] = 6
	ext6 := bytes.Clone(good6)
	ext6[6] = 0 // hop-by-hop options
	bad := [][]byte{
		reply(t, relay4, netip.AddrPortFrom(netip.MustParseAddr("10.64.0.3"), port), []byte("x")), // wrong address
		reply(t, relay6, netip.AddrPortFrom(client6, port+1), []byte("x")),                        // wrong port
		good4[:27], good6[:30], trunc, {0x45}, {}, {0x10, 0, 0, 0}, // malformed
		notUDP, ext6,
	}
	in := append([][]byte{good4}, bad...)
	in = append(in, good6)
	// The offset is headroom the writer keeps in front of each packet.
	bufs := make([][]byte, len(in))
	for i, b := range in {
		bufs[i] = append(make([]byte, 16), b...)
	}
	if n, err := p.TUN().Write(bufs, 16); err != nil || n != len(bufs) {
		t.Fatalf("write: %d, %v", n, err)
	}
	for _, want := range []struct {
		payload string
		from    netip.AddrPort
	}{{"four", relay4}, {"six", relay6}} {
		d, ep := receiveOne(t, recv)
		if string(d) != want.payload || ep.Dst != want.from {
			t.Fatalf("received %q from %v, want %q from %v", d, ep.Dst, want.payload, want.from)
		}
	}
	s := p.Stats()
	if s.Received != 2 || s.WrongAddr != 1 || s.WrongPort != 1 || s.Malformed != 6 || s.NotUDP != 2 || s.FragmentsDropped != 0 {
		t.Fatalf("stats %+v", s)
	}
	// Closed bind: counted, not queued.
	p.Bind().Close()
	p.TUN().Write([][]byte{good4}, 0)
	if s := p.Stats(); s.NotOpen != 1 {
		t.Fatalf("not-open count %d", s.NotOpen)
	}
}

// fragments splits an IPv4 packet into fragments of at most size payload
// bytes (a multiple of 8).
func fragments(pkt []byte, size int) [][]byte {
	hl := int(pkt[0]&0xf) * 4
	data := pkt[hl:]
	var out [][]byte
	for off := 0; off < len(data); off += size {
		end := min(off+size, len(data))
		f := append(bytes.Clone(pkt[:hl]), data[off:end]...)
		binary.BigEndian.PutUint16(f[2:], uint16(len(f)))
		ff := uint16(off / 8)
		if end < len(data) {
			ff |= 0x2000
		}
		binary.BigEndian.PutUint16(f[6:], ff)
		packet.IPv4(f).SetChecksum()
		out = append(out, f)
	}
	return out
}

func TestReassembly(t *testing.T) {
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	p, recv, port := newTestPipe(t, clock)
	me := netip.AddrPortFrom(client4, port)
	payload := make([]byte, 1300)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	pkt := reply(t, relay4, me, payload)
	frags := fragments(pkt, 512)
	if len(frags) != 3 {
		t.Fatalf("%d fragments", len(frags))
	}
	// Out of order, with a duplicate and an overlapping piece in between.
	overlap := bytes.Clone(frags[1])
	binary.BigEndian.PutUint16(overlap[6:], 0x2000|(512-8)/8)
	p.TUN().Write([][]byte{frags[2], frags[1], frags[1], overlap, frags[0]}, 0)
	d, ep := receiveOne(t, recv)
	if !bytes.Equal(d, payload) || ep.Dst != relay4 {
		t.Fatalf("reassembled %d bytes from %v", len(d), ep.Dst)
	}
	if s := p.Stats(); s.Fragments != 5 || s.Reassembled != 1 || s.FragmentsDropped != 2 {
		t.Fatalf("stats %+v", s)
	}

	// A missing piece: the rest times out.
	p.TUN().Write([][]byte{frags[0], frags[2]}, 0)
	if n, _ := p.frag.pending(); n != 1 {
		t.Fatalf("%d pending", n)
	}
	mu.Lock()
	now = now.Add(fragTimeout)
	mu.Unlock()
	p.TUN().Write([][]byte{frags[1]}, 0) // starts a new datagram
	if n, b := p.frag.pending(); n != 1 || b != 1024 {
		t.Fatalf("%d pending, %d bytes, after the timeout", n, b)
	}
	// Bad fragments: a non-final piece not a multiple of 8 bytes, and one
	// past 65535.
	odd := bytes.Clone(frags[0][:101])
	binary.BigEndian.PutUint16(odd[2:], 101)
	binary.BigEndian.PutUint16(odd[4:], 99)
	far := bytes.Clone(frags[0])
	binary.BigEndian.PutUint16(far[4:], 98)
	binary.BigEndian.PutUint16(far[6:], 0x2000|0x1fff)
	before := p.Stats().FragmentsDropped
	p.TUN().Write([][]byte{odd, far}, 0)
	if got := p.Stats().FragmentsDropped - before; got != 2 {
		t.Fatalf("%d bad fragments dropped, want 2", got)
	}

	// Bounded memory: a flood of first pieces with distinct IDs.
	for id := range 1000 {
		f := bytes.Clone(frags[0])
		binary.BigEndian.PutUint16(f[4:], uint16(id+1000))
		p.TUN().Write([][]byte{f}, 0)
	}
	if n, b := p.frag.pending(); n > fragMaxPackets || b > fragMaxBytes {
		t.Fatalf("%d pending, %d bytes", n, b)
	}
	// A flood of large pieces stays under the byte bound.
	big := reply(t, relay4, me, make([]byte, 60000))
	for id := range 100 {
		f := fragments(big, 30000)[0]
		binary.BigEndian.PutUint16(f[4:], uint16(id+5000))
		packet.IPv4(f).SetChecksum()
		p.TUN().Write([][]byte{f}, 0)
	}
	if _, b := p.frag.pending(); b > fragMaxBytes {
		t.Fatalf("%d bytes pending", b)
	}
}

// fragments6 splits an IPv6 packet (no extension headers) into fragments
// of at most size payload bytes (a multiple of 8) with identification id.
func fragments6(pkt []byte, size int, id uint32) [][]byte {
	data := pkt[40:]
	var out [][]byte
	for off := 0; off < len(data); off += size {
		end := min(off+size, len(data))
		f := append(bytes.Clone(pkt[:40]), make([]byte, 8)...)
		f = append(f, data[off:end]...)
		binary.BigEndian.PutUint16(f[4:], uint16(len(f)-40))
		f[6] = 44
		f[40] = pkt[6]
		of := uint16(off)
		if end < len(data) {
			of |= 1
		}
		binary.BigEndian.PutUint16(f[42:], of)
		binary.BigEndian.PutUint32(f[44:], id)
		out = append(out, f)
	}
	return out
}

func TestReassembly6(t *testing.T) {
	p, recv, port := newTestPipe(t, nil)
	me := netip.AddrPortFrom(client6, port)
	payload := make([]byte, 1300)
	for i := range payload {
		payload[i] = byte(i * 3)
	}
	frags := fragments6(reply(t, relay6, me, payload), 600, 77)
	if len(frags) != 3 {
		t.Fatalf("%d fragments", len(frags))
	}
	// An atomic fragment (offset 0, no more) is a whole datagram.
	atomic := fragments6(reply(t, relay6, me, []byte("atomic")), 1000, 78)[0]
	// A piece overlapping the second one is dropped; the datagram is
	// still rebuilt from the right pieces.
	overlap := bytes.Clone(frags[1])
	binary.BigEndian.PutUint16(overlap[42:], uint16(600-8)|1)
	notUDP := bytes.Clone(frags[0])
	notUDP[40] = 6
	p.TUN().Write([][]byte{atomic, frags[1], overlap, notUDP, frags[2], frags[0]}, 0)
	for _, want := range [][]byte{[]byte("atomic"), payload} {
		d, ep := receiveOne(t, recv)
		if !bytes.Equal(d, want) || ep.Dst != relay6 {
			t.Fatalf("got %d bytes from %v, want %d", len(d), ep.Dst, len(want))
		}
	}
	if s := p.Stats(); s.Fragments != 4 || s.Reassembled != 1 || s.FragmentsDropped != 1 || s.NotUDP != 1 {
		t.Fatalf("stats %+v", s)
	}
	if n, _ := p.frag.pending(); n != 0 {
		t.Fatalf("%d datagrams pending", n)
	}
}

func TestCloseEitherSide(t *testing.T) {
	// Closing the TUN side (the entry device going) closes everything.
	p, recv, _ := newTestPipe(t, nil)
	errc := make(chan error, 2)
	go func() {
		_, err := recv([][]byte{make([]byte, 100)}, []int{0}, []transport.Endpoint{{}})
		errc <- err
	}()
	go func() {
		_, err := p.TUN().Read([][]byte{make([]byte, 100)}, []int{0}, 0)
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	p.TUN().Close()
	for range 2 {
		if err := <-errc; !errors.Is(err, transport.ErrClosed) && !errors.Is(err, tun.ErrClosed) {
			t.Fatalf("blocked call returned %v", err)
		}
	}
	if err := p.Bind().Send([][]byte{{1}}, transport.Endpoint{Dst: relay4}); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
	if _, err := p.TUN().Write([][]byte{{0x45}}, 0); !errors.Is(err, tun.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	if _, _, err := p.Bind().Open(0); err == nil {
		t.Fatal("open after close succeeded")
	}
	for range p.TUN().Events() { // EventUp, then closed
	}

	// Closing the Bind side fails sends, ends its receive function, and
	// the pipe works again after re-opening.
	p, recv, _ = newTestPipe(t, nil)
	p.Bind().Close()
	if err := p.Bind().Send([][]byte{{1}}, transport.Endpoint{Dst: relay4}); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("send on a closed bind: %v", err)
	}
	if _, err := recv([][]byte{make([]byte, 100)}, []int{0}, []transport.Endpoint{{}}); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("receive on a closed bind: %v", err)
	}
	fns, port, err := p.Bind().Open(4242)
	if err != nil || port != 4242 {
		t.Fatalf("re-open: %v, port %d", err, port)
	}
	p.TUN().Write([][]byte{reply(t, relay4, netip.AddrPortFrom(client4, 4242), []byte("again"))}, 0)
	if d, _ := receiveOne(t, fns[0]); string(d) != "again" {
		t.Fatalf("got %q", d)
	}

	// A send waiting on a full queue returns when the pipe closes.
	full, err := NewPipe(PipeConfig{Addrs: []netip.Addr{client4}, Batches: 1})
	if err != nil {
		t.Fatal(err)
	}
	full.Bind().Open(0)
	full.Bind().Send([][]byte{{1}}, transport.Endpoint{Dst: relay4})
	go func() { errc <- full.Bind().Send([][]byte{{2}}, transport.Endpoint{Dst: relay4}) }()
	time.Sleep(10 * time.Millisecond)
	full.Close()
	if err := <-errc; !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("blocked send returned %v", err)
	}
}

func TestBadConfig(t *testing.T) {
	for _, cfg := range []PipeConfig{
		{},
		{Addrs: []netip.Addr{client4, netip.MustParseAddr("10.0.0.1")}},
		{Addrs: []netip.Addr{netip.IPv4Unspecified()}},
		{Addrs: []netip.Addr{client4}, MTU: 100},
	} {
		if p, err := NewPipe(cfg); err == nil {
			p.Close()
			t.Errorf("config %+v accepted", cfg)
		}
	}
}
