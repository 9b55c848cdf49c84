package noise

import (
	"bytes"
	"encoding/binary"
	"errors"
	mrand "math/rand/v2"
	"testing"
	"time"
)

// testKeypairs returns two matching keypairs without a handshake.
func testKeypairs() (a, b *Keypair) {
	k1 := [KeySize]byte{1}
	k2 := [KeySize]byte{2}
	a = newKeypair(&k1, &k2, 100, 200, true, epoch)
	b = newKeypair(&k2, &k1, 200, 100, false, epoch)
	return a, b
}

// setSendCounter moves the send counter, for tests near the limit.
func (k *Keypair) setSendCounter(c uint64) { k.sendCounter.Store(c) }

func TestNextCounterLimit(t *testing.T) {
	k, _ := testKeypairs()
	for i := uint64(0); i < 3; i++ {
		c, ok := k.NextCounter()
		if !ok || c != i {
			t.Fatalf("NextCounter = %d, %v; want %d", c, ok, i)
		}
	}
	if k.SendCounter() != 3 {
		t.Fatalf("SendCounter = %d", k.SendCounter())
	}
	k.setSendCounter(RejectAfterMessages - 2)
	for _, want := range []uint64{RejectAfterMessages - 2, RejectAfterMessages - 1} {
		c, ok := k.NextCounter()
		if !ok || c != want {
			t.Fatalf("NextCounter = %d, %v; want %d", c, ok, want)
		}
	}
	for i := 0; i < 10000; i++ {
		if c, ok := k.NextCounter(); ok {
			t.Fatalf("NextCounter handed out %d beyond the limit", c)
		}
	}
	if k.SendCounter() != RejectAfterMessages {
		t.Fatalf("SendCounter = %d after exhaustion", k.SendCounter())
	}
}

func TestNextCounterConcurrentUnique(t *testing.T) {
	k, _ := testKeypairs()
	k.setSendCounter(RejectAfterMessages - 1000)
	const workers = 4
	results := make(chan []uint64, workers)
	for w := 0; w < workers; w++ {
		go func() {
			var got []uint64
			for {
				c, ok := k.NextCounter()
				if !ok {
					break
				}
				got = append(got, c)
			}
			results <- got
		}()
	}
	seen := map[uint64]bool{}
	for w := 0; w < workers; w++ {
		for _, c := range <-results {
			if seen[c] || c >= RejectAfterMessages {
				t.Fatalf("counter %d handed out twice or beyond the limit", c)
			}
			seen[c] = true
		}
	}
	if len(seen) != 1000 {
		t.Fatalf("%d counters handed out, want 1000", len(seen))
	}
}

func TestSealOpen(t *testing.T) {
	a, b := testKeypairs()
	payload := []byte("hello, transport")

	// Out of place.
	dst := make([]byte, 100)
	msg := a.SealTransport(dst, payload, 5)
	if len(msg) != len(payload)+MessageTransportOverhead || &msg[0] != &dst[0] {
		t.Fatalf("sealed %d bytes", len(msg))
	}
	if typ, ok := MessageType(msg); !ok || typ != MessageTransportType {
		t.Fatalf("type %d %v", typ, ok)
	}
	if r := binary.LittleEndian.Uint32(msg[4:]); r != a.RemoteIndex {
		t.Fatalf("receiver %d", r)
	}
	if c := binary.LittleEndian.Uint64(msg[8:]); c != 5 {
		t.Fatalf("counter %d", c)
	}
	orig := append([]byte(nil), msg...)
	pt, c, err := b.OpenTransport(nil, msg)
	if err != nil || c != 5 || !bytes.Equal(pt, payload) {
		t.Fatalf("OpenTransport = %q, %d, %v", pt, c, err)
	}
	if !bytes.Equal(msg, orig) {
		t.Fatal("OpenTransport out of place modified the message")
	}

	// In place, both ways.
	buf := make([]byte, 2000)
	copy(buf[16:], payload)
	msg = a.SealTransport(buf, buf[16:16+len(payload)], 6)
	if bytes.Contains(msg, payload) {
		t.Fatal("plaintext visible after in-place seal")
	}
	pt, c, err = b.OpenTransport(msg[16:16], msg)
	if err != nil || c != 6 || !bytes.Equal(pt, payload) || &pt[0] != &buf[16] {
		t.Fatalf("in-place OpenTransport = %q, %d, %v", pt, c, err)
	}
	if r := binary.LittleEndian.Uint32(msg[4:]); r != a.RemoteIndex {
		t.Fatal("receiver index not restored")
	}

	// The responder's direction uses the other key.
	msg = b.SealTransport(make([]byte, 64), []byte("back"), 0)
	if pt, _, err := a.OpenTransport(nil, msg); err != nil || string(pt) != "back" {
		t.Fatalf("reverse direction: %q %v", pt, err)
	}

	// Empty payload (keepalive).
	msg = a.SealTransport(make([]byte, 32), nil, 7)
	if len(msg) != MessageKeepaliveSize {
		t.Fatalf("keepalive %d bytes", len(msg))
	}
	if pt, c, err := b.OpenTransport(nil, msg); err != nil || len(pt) != 0 || c != 7 {
		t.Fatalf("keepalive open: %d %d %v", len(pt), c, err)
	}

	// Too small a destination.
	if a.SealTransport(make([]byte, 10, 40), payload, 8) != nil {
		t.Fatal("SealTransport wrote past the capacity")
	}
}

func TestOpenErrors(t *testing.T) {
	a, b := testKeypairs()
	good := a.SealTransport(make([]byte, 64), []byte("data"), 1)
	mutate := func(f func(m []byte)) []byte {
		m := append([]byte(nil), good...)
		f(m)
		return m
	}
	cases := []struct {
		name string
		msg  []byte
		want error
	}{
		{"short", good[:31], ErrMalformed},
		{"empty", nil, ErrMalformed},
		{"wrong type", mutate(func(m []byte) { m[0] = 1 }), ErrMalformed},
		{"reserved", mutate(func(m []byte) { m[2] = 1 }), ErrMalformed},
		{"other receiver", mutate(func(m []byte) { m[4]++ }), ErrMalformed},
		{"tampered counter", mutate(func(m []byte) { m[8]++ }), ErrDecrypt},
		{"tampered ciphertext", mutate(func(m []byte) { m[17] ^= 0x80 }), ErrDecrypt},
		{"tampered tag", mutate(func(m []byte) { m[len(m)-1] ^= 1 }), ErrDecrypt},
		{"truncated", good[:len(good)-1], ErrDecrypt},
		{"counter at limit", a.SealTransport(make([]byte, 64), []byte("data"), RejectAfterMessages), ErrCounter},
		{"counter max", a.SealTransport(make([]byte, 64), []byte("data"), ^uint64(0)), ErrCounter},
	}
	for _, tc := range cases {
		orig := append([]byte(nil), tc.msg...)
		if _, _, err := b.OpenTransport(nil, tc.msg); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if !bytes.Equal(orig, tc.msg) {
			t.Errorf("%s: message modified", tc.name)
		}
	}
	// Just below the limit is fine.
	msg := a.SealTransport(make([]byte, 64), []byte("data"), RejectAfterMessages-1)
	if _, c, err := b.OpenTransport(nil, msg); err != nil || c != RejectAfterMessages-1 {
		t.Fatalf("counter below the limit: %d %v", c, err)
	}
}

func TestKeypairZero(t *testing.T) {
	a, b := testKeypairs()
	msg := a.SealTransport(make([]byte, 64), []byte("x"), 0)
	b.Zero()
	if _, _, err := b.OpenTransport(nil, msg); !errors.Is(err, ErrState) {
		t.Fatalf("open after Zero: %v", err)
	}
	if b.SealTransport(make([]byte, 64), []byte("x"), 0) != nil {
		t.Fatal("seal after Zero produced a message")
	}
	if _, ok := b.NextCounter(); ok {
		t.Fatal("NextCounter after Zero")
	}
	if b.AcceptCounter(0) {
		t.Fatal("AcceptCounter accepted a counter after Zero")
	}
}

// A message decrypted just before the keypair is wiped must not pass the
// replay check afterwards, whether it is new, a duplicate or a replay.
func TestKeypairZeroBetweenOpenAndAccept(t *testing.T) {
	a, b := testKeypairs()
	seal := func(c uint64) []byte { return a.SealTransport(make([]byte, 64), []byte("x"), c) }
	if _, c, err := b.OpenTransport(nil, seal(5)); err != nil || !b.AcceptCounter(c) {
		t.Fatalf("first delivery: %v", err)
	}
	var counters []uint64
	for _, c := range []uint64{5, 6, 6, 7} { // a replay, a new one twice, a new one
		_, got, err := b.OpenTransport(nil, seal(c))
		if err != nil {
			t.Fatal(err)
		}
		counters = append(counters, got)
	}
	b.Zero()
	for _, c := range counters {
		if b.AcceptCounter(c) {
			t.Errorf("counter %d accepted after Zero", c)
		}
	}
}

func TestAcceptCounter(t *testing.T) {
	_, b := testKeypairs()
	if !b.AcceptCounter(3) || b.AcceptCounter(3) || !b.AcceptCounter(1) {
		t.Fatal("AcceptCounter wrong")
	}
}

func TestReplayFilterBasics(t *testing.T) {
	var f ReplayFilter
	steps := []struct {
		c    uint64
		want bool
	}{
		{0, true}, {0, false}, // first and duplicate
		{1, true}, {2, true}, {2, false}, // in order
		{10, true}, {5, true}, {5, false}, {9, true}, // out of order in window
		{ReplayWindow + 9, true},         // max = 8201; window is (9, 8201]
		{9, false},                       // already seen
		{10, false},                      // seen and at the edge
		{11, true},                       // new, inside
		{9 - 1, false},                   // too old
		{RejectAfterMessages, false},     // never
		{RejectAfterMessages + 1, false}, // never
		{^uint64(0), false},              // never
		{ReplayWindow + 10, true},        // advance by one: 10 slides out
		{11, false},                      // 11 was seen
		{12, true},
		{RejectAfterMessages - 1, true},                 // the last usable counter
		{RejectAfterMessages - 1, false},                // once
		{RejectAfterMessages - ReplayWindow, true},      // at the window edge
		{RejectAfterMessages - ReplayWindow - 1, false}, // beyond
		{ReplayWindow + 11, false},                      // far behind now
	}
	for i, s := range steps {
		if got := f.Accept(s.c); got != s.want {
			t.Fatalf("step %d: Accept(%d) = %v, want %v", i, s.c, got, s.want)
		}
	}
	f.Reset()
	if !f.Accept(0) || !f.Accept(12) {
		t.Fatal("Reset did not forget")
	}
}

func TestReplayFilterWindowEdge(t *testing.T) {
	// With max = m, counter m-ReplayWindow+1 is the oldest accepted and
	// m-ReplayWindow is refused, whatever the alignment of m.
	for _, m := range []uint64{ReplayWindow, ReplayWindow + 1, ReplayWindow + 63, ReplayWindow + 64, 3*ReplayWindow + 17, 1 << 40} {
		var f ReplayFilter
		if !f.Accept(m) {
			t.Fatal("first counter refused")
		}
		if f.Accept(m - ReplayWindow) {
			t.Errorf("max %d: counter %d (window+0) accepted", m, m-ReplayWindow)
		}
		for c := m - ReplayWindow + 1; c < m; c++ {
			if !f.Accept(c) {
				t.Fatalf("max %d: counter %d inside the window refused", m, c)
			}
		}
		for c := m - ReplayWindow + 1; c <= m; c++ {
			if f.Accept(c) {
				t.Fatalf("max %d: counter %d accepted twice", m, c)
			}
		}
	}
}

func TestReplayFilterRingWraparound(t *testing.T) {
	// Walk far beyond the ring size in steps that land on every slot
	// alignment; stale bits from earlier laps must not refuse new counters.
	var f ReplayFilter
	var c uint64
	for lap := 0; lap < 50; lap++ {
		for i := 0; i < 300; i++ {
			c += 61
			if !f.Accept(c) {
				t.Fatalf("lap %d: fresh counter %d refused", lap, c)
			}
			if f.Accept(c) {
				t.Fatalf("counter %d accepted twice", c)
			}
		}
		// Jumps of exactly the ring size and more.
		c += replayBlocks * replayBlockBits
		if !f.Accept(c) || !f.Accept(c-1) || !f.Accept(c-ReplayWindow+1) {
			t.Fatalf("lap %d: counters after a jump refused", lap)
		}
	}
}

// naiveReplay is the reference: a set of seen counters and the maximum.
type naiveReplay struct {
	seen map[uint64]bool
	max  uint64
	any  bool
}

func (n *naiveReplay) accept(c uint64) bool {
	if c >= RejectAfterMessages || n.seen[c] {
		return false
	}
	if n.any && c < n.max && n.max-c >= ReplayWindow {
		return false
	}
	if n.seen == nil {
		n.seen = map[uint64]bool{}
	}
	n.seen[c] = true
	if !n.any || c > n.max {
		n.max = c
	}
	n.any = true
	return true
}

// replayStep turns random bits into a counter near the current maximum, so
// that sequences exercise the window edges, duplicates and big jumps.
func replayStep(max uint64, sel byte, v uint16) uint64 {
	switch sel % 8 {
	case 0: // far ahead
		return max + uint64(v)*37
	case 1: // just ahead
		return max + uint64(v%130)
	case 2, 3: // behind within about a window
		return max - uint64(v)%(ReplayWindow+200)
	case 4: // window edge
		return max - ReplayWindow + uint64(v%3)
	case 5: // near the reject limit
		return RejectAfterMessages - 2 + uint64(v%5)
	case 6: // small absolute
		return uint64(v % 200)
	default: // same as max
		return max
	}
}

func TestReplayFilterMatchesReference(t *testing.T) {
	r := mrand.New(mrand.NewPCG(1, 2))
	for seq := 0; seq < 200; seq++ {
		var f ReplayFilter
		var n naiveReplay
		var max uint64
		for i := 0; i < 2000; i++ {
			c := replayStep(max, byte(r.UintN(256)), uint16(r.UintN(1<<16)))
			want := n.accept(c)
			if got := f.Accept(c); got != want {
				t.Fatalf("sequence %d step %d: Accept(%d) = %v, reference %v (max %d)", seq, i, c, got, want, n.max)
			}
			max = n.max
		}
	}
}

func TestKeypairsRotation(t *testing.T) {
	kp := func(idx uint32, initiator bool) *Keypair {
		return &Keypair{LocalIndex: idx, IsInitiator: initiator, Created: time.Time{}}
	}
	same := func(got []*Keypair, want ...*Keypair) bool {
		if len(got) != len(want) {
			return false
		}
		for i := range got {
			if got[i] != want[i] {
				return false
			}
		}
		return true
	}
	check := func(s *Keypairs, prev, cur, next *Keypair) {
		t.Helper()
		if s.Previous() != prev || s.Current() != cur || s.Next() != next {
			t.Fatalf("previous/current/next = %v/%v/%v, want %v/%v/%v", s.Previous(), s.Current(), s.Next(), prev, cur, next)
		}
	}

	var s Keypairs
	check(&s, nil, nil, nil)
	if s.Install(nil) != nil {
		t.Fatal("Install(nil) evicted")
	}

	// Initiator keypairs become current at once.
	i1 := kp(1, true)
	if ev := s.Install(i1); ev != nil {
		t.Fatalf("evicted %v", ev)
	}
	check(&s, nil, i1, nil)
	i2 := kp(2, true)
	if ev := s.Install(i2); ev != nil {
		t.Fatalf("evicted %v", ev)
	}
	check(&s, i1, i2, nil)
	i3 := kp(3, true)
	if ev := s.Install(i3); !same(ev, i1) {
		t.Fatalf("evicted %v, want i1", ev)
	}
	check(&s, i2, i3, nil)

	// A responder keypair waits in next; previous is dropped.
	r4 := kp(4, false)
	if ev := s.Install(r4); !same(ev, i2) {
		t.Fatalf("evicted %v, want i2", ev)
	}
	check(&s, nil, i3, r4)
	// Packets on current or unknown keypairs rotate nothing.
	if rot, ev := s.Received(i3); rot || ev != nil {
		t.Fatal("receiving on current rotated")
	}
	if rot, _ := s.Received(kp(99, false)); rot {
		t.Fatal("receiving on a stranger rotated")
	}
	// Another responder keypair replaces the waiting one.
	r5 := kp(5, false)
	if ev := s.Install(r5); !same(ev, r4) {
		t.Fatalf("evicted %v, want r4", ev)
	}
	check(&s, nil, i3, r5)
	if rot, _ := s.Received(r4); rot {
		t.Fatal("receiving on a dropped next rotated")
	}
	// The first packet on next promotes it.
	if rot, ev := s.Received(r5); !rot || ev != nil {
		t.Fatalf("Received(next) = %v, %v", rot, ev)
	}
	check(&s, i3, r5, nil)
	if rot, _ := s.Received(r5); rot {
		t.Fatal("second Received rotated again")
	}

	// Next waiting, then an initiator keypair: next becomes previous, the
	// old current is dropped.
	r6 := kp(6, false)
	if ev := s.Install(r6); !same(ev, i3) {
		t.Fatalf("evicted %v, want i3", ev)
	}
	check(&s, nil, r5, r6)
	i7 := kp(7, true)
	if ev := s.Install(i7); !same(ev, r5) {
		t.Fatalf("evicted %v, want r5", ev)
	}
	check(&s, r6, i7, nil)

	// Received with a previous in place drops it.
	r8 := kp(8, false)
	if ev := s.Install(r8); !same(ev, r6) {
		t.Fatalf("evicted %v, want r6", ev)
	}
	i9 := kp(9, true)
	s.Install(i9) // r8 -> previous, i7 dropped
	check(&s, r8, i9, nil)
	r10 := kp(10, false)
	s.Install(r10) // r8 dropped
	check(&s, nil, i9, r10)
	if rot, _ := s.Received(r10); !rot {
		t.Fatal("no rotation")
	}
	r11 := kp(11, false)
	s.Install(r11)
	check(&s, nil, r10, r11)

	all := s.Clear()
	if !same(all, r10, r11) {
		t.Fatalf("Clear returned %v", all)
	}
	check(&s, nil, nil, nil)
}

func TestPaddedLen(t *testing.T) {
	for _, tc := range []struct{ n, mtu, want int }{
		{0, 1420, 0},
		{-1, 1420, 0},
		{1, 1420, 16},
		{15, 1420, 16},
		{16, 1420, 16},
		{17, 1420, 32},
		{1400, 1420, 1408},
		{1410, 1420, 1420}, // 1424 capped at the MTU
		{1420, 1420, 1420},
		{1421, 1420, 1421}, // never below n
		{3000, 1420, 3000},
		{17, 0, 32}, // no MTU: no cap
		{17, 20, 20},
		{17, 17, 17},
	} {
		if got := PaddedLen(tc.n, tc.mtu); got != tc.want {
			t.Errorf("PaddedLen(%d, %d) = %d, want %d", tc.n, tc.mtu, got, tc.want)
		}
	}
}
