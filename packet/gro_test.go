package packet

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
)

const testOffset = 32

// toBufs places packets at testOffset in buffers with spare capacity for
// coalescing, as a TUN writer's buffers would be.
func toBufs(pkts [][]byte, capacity int) [][]byte {
	bufs := make([][]byte, len(pkts))
	for i, p := range pkts {
		b := make([]byte, testOffset+len(p), max(capacity, testOffset+len(p)))
		copy(b[testOffset:], p)
		bufs[i] = b
	}
	return bufs
}

var (
	splitBufs  [][]byte
	splitSizes []int
)

// splitAll splits every coalesced output back into packets.
func splitAll(t testing.TB, out [][]byte) [][]byte {
	if splitBufs == nil {
		splitBufs, splitSizes = makeBufs(256, 66000)
	}
	bufs, sizes := splitBufs, splitSizes
	var pkts [][]byte
	for _, b := range out {
		var h VirtioNetHdr
		if err := h.Decode(b[testOffset-VirtioNetHdrLen:]); err != nil {
			t.Fatal(err)
		}
		n, err := SplitGSO(h, b[testOffset:], bufs, sizes, 0)
		if err != nil {
			t.Fatalf("split of coalesced packet (hdr %+v): %v", h, err)
		}
		for i := 0; i < n; i++ {
			pkts = append(pkts, slices.Clone(bufs[i][:sizes[i]]))
		}
	}
	return pkts
}

func sameMultiset(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	sa := slices.Clone(a)
	sb := slices.Clone(b)
	slices.SortFunc(sa, bytes.Compare)
	slices.SortFunc(sb, bytes.Compare)
	for i := range sa {
		if !bytes.Equal(sa[i], sb[i]) {
			return false
		}
	}
	return true
}

// flow returns n consecutive segments of one TCP flow.
func flow(o tcpOpts, n, size int) [][]byte {
	var pkts [][]byte
	for i := 0; i < n; i++ {
		oi := o
		oi.payload = payloadBytes(size, byte(i))
		oi.seq = o.seq + uint32(i*size)
		oi.id = o.id + uint16(i)
		if oi.flags == 0 {
			oi.flags = TCPFlagACK
		}
		pkts = append(pkts, build(oi))
	}
	return pkts
}

func coalesceOK(t *testing.T, c *Coalescer, pkts [][]byte, udp bool) [][]byte {
	t.Helper()
	orig := make([][]byte, len(pkts))
	for i, p := range pkts {
		orig[i] = slices.Clone(p)
	}
	// CoalesceInto, given a slot per packet, builds the same outputs
	// without touching its input.
	var ci Coalescer
	into, used := coalesceInto(t, &ci, pkts, len(pkts)+1, udp)
	if used != len(pkts) {
		t.Fatalf("CoalesceInto took %d of %d packets with a slot for each", used, len(pkts))
	}
	out, err := c.Coalesce(toBufs(pkts, 70000), testOffset, udp)
	if err != nil {
		t.Fatal(err)
	}
	back := splitAll(t, out)
	if !sameMultiset(back, orig) {
		t.Fatalf("split(coalesce(x)) != x: %d packets in, %d out", len(orig), len(back))
	}
	if len(into) != len(out) {
		t.Fatalf("CoalesceInto made %d outputs, Coalesce %d", len(into), len(out))
	}
	for i := range out {
		if !bytes.Equal(into[i][testOffset-VirtioNetHdrLen:], out[i][testOffset-VirtioNetHdrLen:]) {
			t.Fatalf("output %d differs between CoalesceInto and Coalesce", i)
		}
	}
	for i := range pkts {
		if !bytes.Equal(pkts[i], orig[i]) {
			t.Fatalf("CoalesceInto wrote to input packet %d", i)
		}
	}
	return out
}

// coalesceInto runs CoalesceInto once with n fresh slots and returns
// copies of its outputs.
func coalesceInto(t testing.TB, c *Coalescer, pkts [][]byte, n int, udp bool) ([][]byte, int) {
	t.Helper()
	slots := make([][]byte, n)
	for i := range slots {
		slots[i] = make([]byte, testOffset+maxSuperPacket)
	}
	out, used, err := c.CoalesceInto(pkts, slots, testOffset, udp)
	if err != nil {
		t.Fatal(err)
	}
	copies := make([][]byte, len(out))
	for i, b := range out {
		copies[i] = slices.Clone(b)
	}
	return copies, used
}

func hdrOf(b []byte) VirtioNetHdr {
	var h VirtioNetHdr
	h.Decode(b[testOffset-VirtioNetHdrLen:])
	return h
}

func TestCoalesceTCP(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		t.Run(fmt.Sprintf("v6=%v", v6), func(t *testing.T) {
			var c Coalescer
			o := tcpOpts{v6: v6, seq: 0xffffff00, ack: 5, id: 0xfffe, window: 300, options: []byte{1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 7}}
			pkts := flow(o, 5, 1200)
			// A shorter last segment with PSH.
			last := o
			last.seq += 5 * 1200
			last.id += 5
			last.flags = TCPFlagACK | TCPFlagPSH
			last.payload = payloadBytes(100, 9)
			pkts = append(pkts, build(last))
			out := coalesceOK(t, &c, pkts, false)
			if len(out) != 1 {
				t.Fatalf("%d outputs, want 1", len(out))
			}
			h := hdrOf(out[0])
			wantType, l4 := uint8(GSOTCPv4), 20
			if v6 {
				wantType, l4 = GSOTCPv6, 40
			}
			want := VirtioNetHdr{Flags: VirtioNetHdrFNeedsCsum, GSOType: wantType, HdrLen: uint16(l4 + 32), GSOSize: 1200, CsumStart: uint16(l4), CsumOffset: 16}
			if h != want {
				t.Fatalf("header %+v, want %+v", h, want)
			}
			sp := out[0][testOffset:]
			if len(sp) != l4+32+6100 {
				t.Fatalf("super-packet %d bytes", len(sp))
			}
			if tl, ok := TotalLen(sp); !ok || tl != len(sp) {
				t.Fatal("IP length not updated")
			}
			if !v6 && !validIPv4Header(sp) {
				t.Fatal("IPv4 header checksum")
			}
			// The checksum field holds the pseudo-header sum: completing it
			// over the segment gives a valid checksum.
			var src, dst []byte
			if v6 {
				src, dst = sp[8:24], sp[24:40]
			} else {
				src, dst = sp[12:16], sp[16:20]
			}
			if got, want := be.Uint16(sp[l4+16:]), uint16(naivePseudo(src, dst, ProtoTCP, len(sp)-l4)); got != want {
				t.Fatalf("partial checksum %#x, want %#x", got, want)
			}
			if sp[l4+13] != TCPFlagACK|TCPFlagPSH {
				t.Fatalf("flags %#x", sp[l4+13])
			}
		})
	}
}

func TestCoalesceUDP(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		var c Coalescer
		var pkts [][]byte
		for i := 0; i < 4; i++ {
			size := 1000
			if i == 3 {
				size = 10
			}
			pkts = append(pkts, build(tcpOpts{v6: v6, udp: true, id: uint16(100 + i), payload: payloadBytes(size, byte(i))}))
		}
		// Disabled: nothing merges.
		out := coalesceOK(t, &c, pkts, false)
		if len(out) != 4 {
			t.Fatalf("udp disabled: %d outputs", len(out))
		}
		for _, b := range out {
			if hdrOf(b) != (VirtioNetHdr{}) {
				t.Fatal("non-zero header on passed-through packet")
			}
		}
		out = coalesceOK(t, &c, pkts, true)
		if len(out) != 1 {
			t.Fatalf("v6=%v: %d outputs, want 1", v6, len(out))
		}
		h := hdrOf(out[0])
		if h.GSOType != GSOUDPL4 || h.GSOSize != 1000 || h.CsumOffset != 6 || h.Flags != VirtioNetHdrFNeedsCsum {
			t.Fatalf("header %+v", h)
		}
	}
	// At most 64 datagrams per super-packet.
	var pkts [][]byte
	for i := 0; i < 100; i++ {
		pkts = append(pkts, build(tcpOpts{udp: true, id: uint16(i), payload: payloadBytes(100, byte(i))}))
	}
	var c Coalescer
	out := coalesceOK(t, &c, pkts, true)
	if len(out) != 2 || hdrOf(out[0]).GSOType != GSOUDPL4 {
		t.Fatalf("%d outputs", len(out))
	}
}

func TestCoalesceInterleavedFlows(t *testing.T) {
	a := flow(tcpOpts{sport: 1000, dport: 80}, 4, 500)
	b := flow(tcpOpts{sport: 1001, dport: 80, seq: 777}, 4, 500)
	v6 := flow(tcpOpts{v6: true, sport: 1000, dport: 80}, 3, 700)
	icmp := []byte{0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, ProtoICMP, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 8, 0, 0, 0, 0, 0, 0, 0}
	var pkts [][]byte
	for i := 0; i < 4; i++ {
		pkts = append(pkts, a[i], b[i])
		if i < 3 {
			pkts = append(pkts, v6[i])
		}
		if i == 1 {
			pkts = append(pkts, icmp)
		}
	}
	var c Coalescer
	out := coalesceOK(t, &c, pkts, true)
	if len(out) != 4 {
		t.Fatalf("%d outputs, want 4", len(out))
	}
	// Order of first appearance: a, b, v6, icmp.
	if hdrOf(out[0]).GSOSize != 500 || hdrOf(out[1]).GSOSize != 500 || hdrOf(out[2]).GSOType != GSOTCPv6 ||
		hdrOf(out[3]) != (VirtioNetHdr{}) || !bytes.Equal(out[3][testOffset:], icmp) {
		t.Fatal("wrong outputs or order")
	}
	if be.Uint16(out[1][testOffset+20:]) != 1001 {
		t.Fatal("flows mixed")
	}
}

// Cases where packets must not be merged; each list is coalesced and must
// come out as want outputs (and split back to the same packets).
func TestCoalesceRefuses(t *testing.T) {
	base := tcpOpts{seq: 1000, ack: 1, id: 10}
	seg := func(i int, f func(*tcpOpts)) []byte {
		o := base
		o.flags = TCPFlagACK
		o.seq += uint32(i * 100)
		o.id += uint16(i)
		o.payload = payloadBytes(100, byte(i))
		if f != nil {
			f(&o)
		}
		return build(o)
	}
	none := func(*tcpOpts) {}
	cases := []struct {
		name string
		pkts [][]byte
		want int
	}{
		{"baseline", [][]byte{seg(0, none), seg(1, none), seg(2, none)}, 1},
		{"seq gap", [][]byte{seg(0, none), seg(2, none)}, 2},
		{"retransmission", [][]byte{seg(0, none), seg(0, func(o *tcpOpts) { o.id++ })}, 2},
		{"ack differs", [][]byte{seg(0, none), seg(1, func(o *tcpOpts) { o.ack = 2 })}, 2},
		{"window differs", [][]byte{seg(0, none), seg(1, func(o *tcpOpts) { o.window = 9 })}, 2},
		{"options differ", [][]byte{seg(0, func(o *tcpOpts) { o.options = []byte{1, 1, 1, 1} }), seg(1, func(o *tcpOpts) { o.options = []byte{1, 1, 1, 0} })}, 2},
		{"SYN", [][]byte{seg(0, func(o *tcpOpts) { o.flags |= TCPFlagSYN }), seg(1, none)}, 2},
		{"FIN", [][]byte{seg(0, none), seg(1, func(o *tcpOpts) { o.flags |= TCPFlagFIN })}, 2},
		{"RST", [][]byte{seg(0, none), seg(1, func(o *tcpOpts) { o.flags |= TCPFlagRST })}, 2},
		{"URG", [][]byte{seg(0, none), seg(1, func(o *tcpOpts) { o.flags |= TCPFlagURG })}, 2},
		{"CWR", [][]byte{seg(0, none), seg(1, func(o *tcpOpts) { o.flags |= TCPFlagCWR })}, 2},
		{"no ACK", [][]byte{seg(0, func(o *tcpOpts) { o.flags = 0 }), seg(1, func(o *tcpOpts) { o.flags = 0 })}, 2},
		{"ECE both", [][]byte{seg(0, func(o *tcpOpts) { o.flags |= TCPFlagECE }), seg(1, func(o *tcpOpts) { o.flags |= TCPFlagECE })}, 1},
		{"PSH in middle ends group", [][]byte{seg(0, none), seg(1, func(o *tcpOpts) { o.flags |= TCPFlagPSH }), seg(2, none), seg(3, none)}, 2},
		{"short segment ends group", [][]byte{seg(0, none), seg(1, func(o *tcpOpts) { o.payload = o.payload[:50] }), seg(2, func(o *tcpOpts) { o.seq -= 50 })}, 2},
		{"larger segment", [][]byte{seg(0, func(o *tcpOpts) { o.payload = o.payload[:50] }), seg(1, func(o *tcpOpts) { o.seq -= 50 })}, 2},
		{"bad checksum", [][]byte{seg(0, none), seg(1, func(o *tcpOpts) { o.badChecksum = true })}, 2},
		{"bad checksum head", [][]byte{seg(0, func(o *tcpOpts) { o.badChecksum = true }), seg(1, none)}, 2},
		{"ip options", [][]byte{seg(0, func(o *tcpOpts) { o.ipOptions = []byte{1, 1, 1, 0} }), seg(1, func(o *tcpOpts) { o.ipOptions = []byte{1, 1, 1, 0} })}, 2},
		{"ttl differs", [][]byte{seg(0, none), seg(1, func(o *tcpOpts) { o.ttl = 3 })}, 2},
		{"tos differs", [][]byte{seg(0, none), seg(1, func(o *tcpOpts) { o.tos = 4 })}, 2},
		{"DF differs", [][]byte{seg(0, none), seg(1, func(o *tcpOpts) { o.dontFragmentOff = true })}, 2},
		{"fixed id", [][]byte{seg(0, none), seg(1, func(o *tcpOpts) { o.id-- })}, 2},
		{"fragment", [][]byte{seg(0, func(o *tcpOpts) { o.fragmentOffset = 0x2000 }), seg(1, none)}, 2},
		{"padding", [][]byte{seg(0, func(o *tcpOpts) { o.extraIPTrailer = 2 }), seg(1, none)}, 2},
		{"pure ACK between", [][]byte{seg(0, none), seg(1, func(o *tcpOpts) { o.payload = nil }), seg(1, none)}, 3},
		{"other flow between is fine", [][]byte{seg(0, none), seg(0, func(o *tcpOpts) { o.sport = 1 }), seg(1, none)}, 2},
		{"v6 flow label differs", [][]byte{seg(0, func(o *tcpOpts) { o.v6 = true }), seg(1, func(o *tcpOpts) { o.v6, o.flowLabel = true, 5 })}, 2},
		{"v6 hop limit differs", [][]byte{seg(0, func(o *tcpOpts) { o.v6 = true }), seg(1, func(o *tcpOpts) { o.v6, o.ttl = true, 5 })}, 2},
		{"udp zero checksum", [][]byte{
			build(tcpOpts{udp: true, zeroUDPChecksum: true, payload: payloadBytes(10, 0)}),
			build(tcpOpts{udp: true, zeroUDPChecksum: true, id: 1, payload: payloadBytes(10, 1)})}, 2},
		{"udp bad checksum", [][]byte{
			build(tcpOpts{udp: true, payload: payloadBytes(10, 0)}),
			build(tcpOpts{udp: true, badChecksum: true, id: 1, payload: payloadBytes(10, 1)})}, 2},
		{"udp empty", [][]byte{build(tcpOpts{udp: true}), build(tcpOpts{udp: true, id: 1})}, 2},
	}
	var c Coalescer
	for _, tc := range cases {
		out, err := c.Coalesce(toBufs(tc.pkts, 70000), testOffset, true)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(out) != tc.want {
			t.Errorf("%s: %d outputs, want %d", tc.name, len(out), tc.want)
		}
		if back := splitAll(t, out); !sameMultiset(back, tc.pkts) {
			t.Errorf("%s: split does not restore the packets", tc.name)
		}
	}
}

func TestCoalesceLimits(t *testing.T) {
	var c Coalescer
	// No spare capacity: nothing can grow.
	pkts := flow(tcpOpts{}, 3, 100)
	out, err := c.Coalesce(toBufs(pkts, 0), testOffset, false)
	if err != nil || len(out) != 3 {
		t.Fatalf("no capacity: %d outputs, err %v", len(out), err)
	}
	// Room for exactly one more segment.
	bufs := toBufs(pkts, testOffset+len(pkts[0])+100)
	out, _ = c.Coalesce(bufs, testOffset, false)
	if len(out) != 2 {
		t.Fatalf("room for one: %d outputs", len(out))
	}
	// 64 KiB limit.
	pkts = flow(tcpOpts{}, 50, 1400)
	out = coalesceOK(t, &c, pkts, false)
	for _, b := range out {
		if len(b)-testOffset > 0xffff {
			t.Fatalf("super-packet of %d bytes", len(b)-testOffset)
		}
	}
	if len(out) != 2 {
		t.Fatalf("64KiB: %d outputs", len(out))
	}
	// Bad arguments.
	if _, err := c.Coalesce(bufs, 9, false); err == nil {
		t.Fatal("offset 9 accepted")
	}
	if _, err := c.Coalesce([][]byte{make([]byte, 5)}, 10, false); err == nil {
		t.Fatal("buffer shorter than offset accepted")
	}
	// Empty and garbage packets pass through.
	out, err = c.Coalesce([][]byte{make([]byte, 10), append(make([]byte, 10), 0x45, 1, 2)}, 10, true)
	if err != nil || len(out) != 2 {
		t.Fatalf("garbage: %d, %v", len(out), err)
	}
}

func TestCoalesceReuseNoAlloc(t *testing.T) {
	var c Coalescer
	pkts := append(flow(tcpOpts{}, 32, 1000), flow(tcpOpts{sport: 5, v6: true}, 32, 1000)...)
	bufs := toBufs(pkts, 70000)
	orig := make([][]byte, len(bufs))
	for i := range bufs {
		orig[i] = slices.Clone(bufs[i])
	}
	reset := func() {
		for i := range bufs {
			bufs[i] = bufs[i][:len(orig[i])]
			copy(bufs[i], orig[i])
		}
	}
	c.Coalesce(bufs, testOffset, false)
	allocs := testing.AllocsPerRun(20, func() {
		reset()
		c.Coalesce(bufs, testOffset, false)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per Coalesce", allocs)
	}
}

func FuzzCoalesce(f *testing.F) {
	// Input: a sequence of packets, each prefixed by a 2-byte length.
	enc := func(pkts [][]byte) []byte {
		var b []byte
		for _, p := range pkts {
			b = append(b, byte(len(p)>>8), byte(len(p)))
			b = append(b, p...)
		}
		return b
	}
	f.Add(enc(flow(tcpOpts{}, 3, 20)), false)
	f.Add(enc(flow(tcpOpts{v6: true}, 3, 20)), false)
	f.Add(enc([][]byte{
		build(tcpOpts{udp: true, payload: payloadBytes(20, 0)}),
		build(tcpOpts{udp: true, id: 1, payload: payloadBytes(20, 1)}),
		build(tcpOpts{udp: true, id: 2, payload: payloadBytes(5, 2)}),
	}), true)
	f.Add(enc(append(flow(tcpOpts{sport: 9}, 2, 30), flow(tcpOpts{}, 2, 30)...)), true)
	var c Coalescer
	f.Fuzz(func(t *testing.T, data []byte, udp bool) {
		var pkts [][]byte
		for len(data) >= 2 && len(pkts) < 128 {
			n := int(data[0])<<8 | int(data[1])
			data = data[2:]
			n = min(n, len(data))
			pkts = append(pkts, slices.Clone(data[:n]))
			data = data[n:]
		}
		bufs := toBufs(pkts, 2048)
		out, err := c.Coalesce(bufs, testOffset, udp)
		if err != nil {
			t.Fatal(err)
		}
		if len(out) > len(pkts) {
			t.Fatalf("%d outputs from %d packets", len(out), len(pkts))
		}
		// Splitting the outputs gives back exactly the inputs.
		back := splitAll(t, out)
		if !sameMultiset(back, pkts) {
			t.Fatalf("split(coalesce(x)) != x: %d in, %d back", len(pkts), len(back))
		}
		// Likewise CoalesceInto with few slots, called until it has
		// taken every packet, each call making progress.
		var into [][]byte
		for rest := pkts; len(rest) > 0; {
			o, used := coalesceInto(t, &c, rest, 1+len(rest)%3, udp)
			if used == 0 || len(o) == 0 {
				t.Fatalf("CoalesceInto took %d packets, made %d outputs", used, len(o))
			}
			into = append(into, o...)
			rest = rest[used:]
		}
		if back := splitAll(t, into); !sameMultiset(back, pkts) {
			t.Fatalf("split(coalesceInto(x)) != x: %d in, %d back", len(pkts), len(back))
		}
	})
}
