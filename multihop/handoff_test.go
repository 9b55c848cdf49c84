package multihop

import (
	"bytes"
	"encoding/binary"
	"errors"
	mrand "math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gotatun/gotatun/transport"
	"github.com/gotatun/gotatun/tun"
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

// sendNumbered sends datagrams holding the numbers 0…total-1, in sends
// of random sizes, with short random pauses if pause is set.
func sendNumbered(p *Pipe, total int, r *mrand.Rand, pause bool) error {
	msgs := make([][]byte, 200)
	for i := range msgs {
		msgs[i] = make([]byte, 4)
	}
	for seq := uint32(0); seq < uint32(total); {
		k := min(1+r.IntN(len(msgs)), total-int(seq))
		for i := range k {
			binary.BigEndian.PutUint32(msgs[i], seq)
			seq++
		}
		if err := p.Bind().Send(msgs[:k], transport.Endpoint{Dst: relay4}); err != nil {
			return err
		}
		if pause && r.IntN(4) == 0 {
			time.Sleep(time.Duration(r.IntN(50)) * time.Microsecond)
		}
	}
	return nil
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
		if err := sendNumbered(p, total, mrand.New(mrand.NewPCG(1, 2)), true); err != nil {
			t.Error(err)
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

// batchReader is the entry device's side of ReadFunc and PollFunc in
// tests: it records the datagram sequence numbers it is handed.
type batchReader struct {
	mu    sync.Mutex
	bufs  [][]byte
	sizes []int
	got   []uint32
	calls int
}

func newBatchReader(n int) *batchReader {
	r := &batchReader{bufs: make([][]byte, n), sizes: make([]int, n)}
	for i := range r.bufs {
		r.bufs[i] = make([]byte, 100)
	}
	return r
}

// handle runs with the pipe's read lock held, as the device's does.
func (r *batchReader) handle(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	for i := range n {
		pkt := r.bufs[i][16 : 16+r.sizes[i]]
		r.got = append(r.got, binary.BigEndian.Uint32(pkt[28:]))
	}
}

func (r *batchReader) seen() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// With the entry device waiting in ReadFunc, a Send hands its packets to
// the device's handler itself, before it returns.
func TestSendHandsToReadFunc(t *testing.T) {
	p, _, _ := newTestPipe(t, nil)
	r := newBatchReader(4)
	done := make(chan error, 1)
	go func() {
		for {
			if err := p.TUN().(tun.BatchReader).ReadFunc(r.bufs, r.sizes, 16, r.handle); err != nil {
				done <- err
				return
			}
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.readMu.Lock()
		ready := p.handler.handle != nil
		p.readMu.Unlock()
		if ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("ReadFunc never registered its handler")
		}
		time.Sleep(time.Millisecond)
	}
	msgs := make([][]byte, 10)
	for i := range msgs {
		msgs[i] = binary.BigEndian.AppendUint32(nil, uint32(i))
	}
	if err := p.Bind().Send(msgs, transport.Endpoint{Dst: relay4}); err != nil {
		t.Fatal(err)
	}
	// Handled on this goroutine: no waiting for the reader.
	r.mu.Lock()
	got, calls := slices.Clone(r.got), r.calls
	r.mu.Unlock()
	if len(got) != 10 || calls != 3 {
		t.Fatalf("after Send: handled %v in %d calls, want 0…9 in 3", got, calls)
	}
	for i, v := range got {
		if v != uint32(i) {
			t.Fatalf("handled %v", got)
		}
	}
	if s := p.Stats(); s.Sent != 10 || s.Read != 10 {
		t.Fatalf("stats %+v", s)
	}
	p.Close()
	if err := <-done; !errors.Is(err, tun.ErrClosed) {
		t.Fatalf("ReadFunc after Close: %v", err)
	}
	if err := p.Bind().Send(msgs, transport.Endpoint{Dst: relay4}); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
}

// Senders handing packets over themselves, ReadFunc and PollFunc taking
// queued batches: the handler sees one sender's datagrams in order.
func TestReadFuncKeepsOrder(t *testing.T) {
	p, _, _ := newTestPipe(t, nil)
	br := p.TUN().(tun.BatchReader)
	r := newBatchReader(16)
	const total = 30000
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			if err := br.ReadFunc(r.bufs, r.sizes, 16, r.handle); err != nil {
				return
			}
		}
	}()
	go func() { // a receive goroutine polling after its TUN writes
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			br.PollFunc(r.bufs, r.sizes, 16, r.handle)
			runtime.Gosched()
		}
	}()
	if err := sendNumbered(p, total, mrand.New(mrand.NewPCG(5, 6)), false); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for r.seen() < total {
		if time.Now().After(deadline) {
			t.Fatalf("handled %d of %d datagrams", r.seen(), total)
		}
		time.Sleep(time.Millisecond)
	}
	close(stop)
	p.Close()
	wg.Wait()
	for i, v := range r.got {
		if v != uint32(i) {
			t.Fatalf("datagram %d handled where %d was due", v, i)
		}
	}
	if s := p.Stats(); s.Sent != total || s.Read != total {
		t.Fatalf("stats %+v", s)
	}
}
