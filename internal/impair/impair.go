// Package impair is a userspace UDP relay that impairs what it forwards:
// loss, duplication, reordering and delay jitter, drawn from a seeded
// random source so that a run can be repeated. It stands between the
// outer sockets of two WireGuard devices in soak tests.
//
// The relay has a front socket, which the client side sends to, and a back
// socket, which it sends from towards a fixed target. Replies to the back
// socket go to the address that last sent to the front socket. Rebind
// replaces the back socket with one on a new port, which looks to the
// target like the client roaming.
package impair

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Impairment is what happens to datagrams in one direction.
type Impairment struct {
	Loss      float64 // probability a datagram is dropped
	Duplicate float64 // probability a datagram is sent twice
	Reorder   float64 // probability a datagram is held and sent after the next one
	// Jitter delays each datagram by a uniform [0, Jitter), but never past
	// the one after it: jitter alone does not reorder (Reorder does).
	Jitter time.Duration
}

// delayed is a datagram (and its copies) waiting in a direction's delay line.
type delayed struct {
	at  time.Time
	out [][]byte
}

// delayLineLen bounds each direction's delay line; beyond it datagrams are
// dropped, as a full router queue would.
const delayLineLen = 4096

func (im Impairment) check() error {
	for _, p := range []float64{im.Loss, im.Duplicate, im.Reorder} {
		if p < 0 || p > 1 {
			return fmt.Errorf("impair: probability %v outside [0,1]", p)
		}
	}
	if im.Jitter < 0 {
		return fmt.Errorf("impair: negative jitter %v", im.Jitter)
	}
	return nil
}

// Stats counts what the relay did, over both directions.
type Stats struct {
	Received, Sent, Dropped, Duplicated, Reordered uint64
}

// Relay is a running impairment relay. Its methods are safe for
// concurrent use.
type Relay struct {
	target netip.AddrPort
	up     Impairment // front to target
	down   Impairment // target to front

	mu     sync.Mutex
	rng    *rand.Rand
	back   *net.UDPConn
	client netip.AddrPort // last sender to front
	held   [2][]byte      // per direction: a datagram held back for reordering
	closed bool

	front  *net.UDPConn
	wg     sync.WaitGroup
	lines  [2]chan delayed
	lastAt [2]time.Time // under mu
	done   chan struct{}

	received, sent, dropped, duplicated, reordered atomic.Uint64
}

// New starts a relay on a loopback front socket forwarding to target with
// up impairing datagrams towards target and down the replies.
func New(target netip.AddrPort, up, down Impairment, seed uint64) (*Relay, error) {
	if err := up.check(); err != nil {
		return nil, err
	}
	if err := down.check(); err != nil {
		return nil, err
	}
	front, err := listen()
	if err != nil {
		return nil, err
	}
	back, err := listen()
	if err != nil {
		front.Close()
		return nil, err
	}
	r := &Relay{target: target, up: up, down: down, front: front, back: back,
		rng:  rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		done: make(chan struct{})}
	r.wg.Add(4)
	for dir := range r.lines {
		r.lines[dir] = make(chan delayed, delayLineLen)
		go r.delayLine(dir)
	}
	go r.readFront()
	go r.readBack(back)
	return r, nil
}

func listen() (*net.UDPConn, error) {
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		return nil, fmt.Errorf("impair: listen: %w", err)
	}
	return c, nil
}

// Addr is the front socket's address: where the client side sends.
func (r *Relay) Addr() netip.AddrPort {
	return r.front.LocalAddr().(*net.UDPAddr).AddrPort()
}

// BackAddr is the address the target currently sees datagrams from.
func (r *Relay) BackAddr() netip.AddrPort {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.back.LocalAddr().(*net.UDPAddr).AddrPort()
}

// Rebind moves the back socket to a new port; the target sees the client
// roam there.
func (r *Relay) Rebind() error {
	nb, err := listen()
	if err != nil {
		return err
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		nb.Close()
		return errors.New("impair: relay closed")
	}
	old := r.back
	r.back = nb
	r.wg.Add(1)
	r.mu.Unlock()
	go r.readBack(nb)
	old.Close()
	return nil
}

// Stats returns the counters so far.
func (r *Relay) Stats() Stats {
	return Stats{Received: r.received.Load(), Sent: r.sent.Load(), Dropped: r.dropped.Load(),
		Duplicated: r.duplicated.Load(), Reordered: r.reordered.Load()}
}

// Close stops the relay and waits for its goroutines. Datagrams still
// delayed are dropped.
func (r *Relay) Close() error {
	r.mu.Lock()
	if !r.closed {
		close(r.done)
	}
	r.closed = true
	back := r.back
	r.mu.Unlock()
	r.front.Close()
	back.Close()
	r.wg.Wait()
	return nil
}

func (r *Relay) readFront() {
	defer r.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, from, err := r.front.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		r.mu.Lock()
		r.client = from
		r.mu.Unlock()
		r.forward(0, buf[:n])
	}
}

func (r *Relay) readBack(c *net.UDPConn) {
	defer r.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, _, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		r.forward(1, buf[:n])
	}
}

// forward applies direction dir's impairment (0 up, 1 down) to pkt.
func (r *Relay) forward(dir int, pkt []byte) {
	r.received.Add(1)
	im := r.up
	if dir == 1 {
		im = r.down
	}
	r.mu.Lock()
	if r.rng.Float64() < im.Loss {
		r.mu.Unlock()
		r.dropped.Add(1)
		return
	}
	p := append([]byte(nil), pkt...)
	if r.held[dir] == nil && r.rng.Float64() < im.Reorder {
		r.held[dir] = p
		r.mu.Unlock()
		r.reordered.Add(1)
		return
	}
	out := [][]byte{p}
	if r.rng.Float64() < im.Duplicate {
		out = append(out, p)
		r.duplicated.Add(1)
	}
	if h := r.held[dir]; h != nil {
		out = append(out, h)
		r.held[dir] = nil
	}
	if im.Jitter == 0 {
		r.mu.Unlock()
		r.send(dir, out)
		return
	}
	at := time.Now().Add(time.Duration(r.rng.Int64N(int64(im.Jitter))))
	if at.Before(r.lastAt[dir]) {
		at = r.lastAt[dir]
	}
	r.lastAt[dir] = at
	r.mu.Unlock()
	select {
	case r.lines[dir] <- delayed{at, out}:
	default:
		r.dropped.Add(1)
	}
}

// delayLine sends direction dir's delayed datagrams when they are due, in
// the order they came.
func (r *Relay) delayLine(dir int) {
	defer r.wg.Done()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case d := <-r.lines[dir]:
			if wait := time.Until(d.at); wait > 0 {
				t.Reset(wait)
				select {
				case <-t.C:
				case <-r.done:
					return
				}
			}
			r.send(dir, d.out)
		case <-r.done:
			return
		}
	}
}

func (r *Relay) send(dir int, out [][]byte) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	conn, to := r.back, r.target
	if dir == 1 {
		conn, to = r.front, r.client
	}
	r.mu.Unlock()
	if !to.IsValid() {
		return
	}
	for _, p := range out {
		if _, err := conn.WriteToUDPAddrPort(p, to); err == nil {
			r.sent.Add(1)
		}
	}
}
