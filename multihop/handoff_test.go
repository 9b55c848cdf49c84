package multihop

import (
	"bytes"
	"encoding/binary"
	mrand "math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/gotatun/gotatun/transport"
)

// waitForReader waits until the pipe's reader is parked on an empty queue.
func waitForReader(t *testing.T, p *Pipe) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.waitMu.Lock()
		w := p.waiter
		p.waitMu.Unlock()
		if w != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("reader never waited")
		}
		time.Sleep(time.Millisecond)
	}
}

// A reader waiting on an empty queue gets the first packets written into
// its own buffers; the rest of the send is queued behind them.
func TestSendFillsWaitingReader(t *testing.T) {
	p, _, port := newTestPipe(t, nil)
	bufs := make([][]byte, 4)
	for i := range bufs {
		bufs[i] = make([]byte, 1000)
	}
	sizes := make([]int, len(bufs))
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := p.TUN().Read(bufs, sizes, 16)
		done <- result{n, err}
	}()
	waitForReader(t, p)
	msgs := make([][]byte, 10)
	for i := range msgs {
		msgs[i] = bytes.Repeat([]byte{byte(i)}, 200+i)
	}
	msgs[3] = make([]byte, 1000) // too big for the reader's buffers: dropped
	if err := p.Bind().Send(msgs, transport.Endpoint{Dst: relay4}); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.n != 4 {
		t.Fatalf("direct read: %d packets, %v", r.n, r.err)
	}
	next, id := 0, uint16(1)
	check := func(pkt []byte) {
		t.Helper()
		if next == 3 {
			next++ // the packet that did not fit
		}
		src, dst, payload := checkUDP(t, pkt)
		if src != netip.AddrPortFrom(client4, port) || dst != relay4 || !bytes.Equal(payload, msgs[next]) {
			t.Fatalf("packet %d: %v → %v, %d bytes of %#x", next, src, dst, len(payload), payload[:1])
		}
		if got := binary.BigEndian.Uint16(pkt[4:6]); got != id {
			t.Fatalf("packet %d: IPv4 ID %d, want %d", next, got, id)
		}
		next++
		id++
	}
	for i := range r.n {
		check(bufs[i][16 : 16+sizes[i]])
	}
	for next < len(msgs) {
		check(readOne(t, p))
	}
	if s := p.Stats(); s.Sent != 9 || s.Read != 9 || s.ReadTooBig != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// Whether the reader waits or finds batches queued, it reads the
// datagrams of one sender in the order sent.
func TestHandoffKeepsOrder(t *testing.T) {
	p, _, _ := newTestPipe(t, nil)
	const total = 20000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r := mrand.New(mrand.NewPCG(1, 2))
		seq := uint32(0)
		msgs := make([][]byte, 200)
		for i := range msgs {
			msgs[i] = make([]byte, 4)
		}
		for seq < total {
			k := min(1+r.IntN(len(msgs)), total-int(seq))
			for i := range k {
				binary.BigEndian.PutUint32(msgs[i], seq)
				seq++
			}
			if err := p.Bind().Send(msgs[:k], transport.Endpoint{Dst: relay4}); err != nil {
				t.Error(err)
				return
			}
			if r.IntN(4) == 0 {
				time.Sleep(time.Duration(r.IntN(50)) * time.Microsecond)
			}
		}
	}()
	r := mrand.New(mrand.NewPCG(3, 4))
	bufs := make([][]byte, 64)
	for i := range bufs {
		bufs[i] = make([]byte, 100)
	}
	sizes := make([]int, len(bufs))
	for want := uint32(0); want < total; {
		n, err := p.TUN().Read(bufs[:1+r.IntN(len(bufs))], sizes, 16)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			pkt := bufs[i][16 : 16+sizes[i]]
			if got := binary.BigEndian.Uint32(pkt[28:]); got != want {
				t.Fatalf("datagram %d read where %d was due", got, want)
			}
			want++
		}
	}
	wg.Wait()
}
