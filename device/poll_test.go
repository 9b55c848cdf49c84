package device

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gotatun/gotatun/transport"
	"github.com/gotatun/gotatun/tun"
)

// echoTUN is a tun.BatchReader whose kernel answers every packet written to
// it at once with the same packet, addresses swapped, as a host answers a
// ping: the answer is queued before Write returns.
type echoTUN struct {
	*tun.Memory
	mu      sync.Mutex
	q       [][]byte
	notify  chan struct{}
	polled  atomic.Int64 // packets handed out by PollFunc
	handing atomic.Bool
	overlap atomic.Bool // two batches were handled at once
}

func newEchoTUN(m *tun.Memory) *echoTUN {
	return &echoTUN{Memory: m, notify: make(chan struct{}, 1)}
}

func (e *echoTUN) Write(bufs [][]byte, offset int) (int, error) {
	e.mu.Lock()
	for _, b := range bufs {
		p := append([]byte(nil), b[offset:]...)
		var a [4]byte
		copy(a[:], p[12:16])
		copy(p[12:16], p[16:20])
		copy(p[16:20], a[:])
		e.q = append(e.q, p)
	}
	e.mu.Unlock()
	select {
	case e.notify <- struct{}{}:
	default:
	}
	return len(bufs), nil
}

// fillLocked moves queued packets into bufs and hands them to handle.
func (e *echoTUN) fillLocked(bufs [][]byte, sizes []int, offset int, handle func(int)) int {
	n := 0
	for n < len(bufs) && len(e.q) > 0 {
		sizes[n] = copy(bufs[n][offset:], e.q[0])
		e.q = e.q[1:]
		n++
	}
	if n > 0 {
		if !e.handing.CompareAndSwap(false, true) {
			e.overlap.Store(true)
		}
		handle(n)
		e.handing.Store(false)
	}
	return n
}

func (e *echoTUN) ReadFunc(bufs [][]byte, sizes []int, offset int, handle func(n int)) error {
	for {
		e.mu.Lock()
		n := e.fillLocked(bufs, sizes, offset, handle)
		e.mu.Unlock()
		if n > 0 {
			return nil
		}
		select {
		case <-e.notify:
		case <-e.Events(): // closed by Close
			return tun.ErrClosed
		}
	}
}

func (e *echoTUN) PollFunc(bufs [][]byte, sizes []int, offset int, handle func(n int)) bool {
	if !e.mu.TryLock() {
		return false
	}
	defer e.mu.Unlock()
	n := e.fillLocked(bufs, sizes, offset, handle)
	e.polled.Add(int64(n))
	return n > 0
}

// A device without workers sends what its TUN answers with as soon as it
// has written, from the goroutine that wrote; every answer arrives, in
// order.
func TestTUNAnswersPickedUpAfterWrite(t *testing.T) {
	nw := transport.NewNetwork()
	var echo *echoTUN
	a := newNodeTUN(t, nw, "192.0.2.1", 51820, nil, 1, func(m *tun.Memory) tun.Device {
		echo = newEchoTUN(m)
		return echo
	})
	b := newNode(t, nw, "192.0.2.2", 51820, nil, 2)
	if !a.d.inline {
		t.Fatal("node A has workers; the test needs none")
	}
	a.addPeer(b, false, "10.0.0.2/32")
	b.addPeer(a, true, "10.0.0.1/32")
	// A first answer completes the handshake, so nothing waits in the
	// staging queue (which keeps only the newest packets).
	warm := ipv4Packet("10.0.0.2", "10.0.0.1", []byte("warm-up"))
	b.inject(warm)
	b.expectPacket(ipv4Packet("10.0.0.1", "10.0.0.2", []byte("warm-up")))
	const n = 500
	go func() {
		for i := range n {
			b.tun.Inject(ipv4Packet("10.0.0.2", "10.0.0.1", []byte(fmt.Sprintf("ping %04d", i))))
		}
	}()
	for i := range n {
		b.expectPacket(ipv4Packet("10.0.0.1", "10.0.0.2", []byte(fmt.Sprintf("ping %04d", i))))
	}
	if echo.overlap.Load() {
		t.Fatal("two TUN batches were handled at once")
	}
	if echo.polled.Load() == 0 {
		t.Fatal("no answer was picked up after a write")
	}
}
