package netstack_test

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gotatun/gotatun/tun/netstack"
)

// lossyWire joins two stacks directly, as the two ends of a tunnel,
// dropping packets at random and all of them while blacked out.
type lossyWire struct {
	wg       sync.WaitGroup
	mu       sync.Mutex
	rng      *rand.Rand
	loss     float64
	blackout atomic.Bool
}

func (w *lossyWire) drop() bool {
	if w.blackout.Load() {
		return true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rng.Float64() < w.loss
}

func (w *lossyWire) pump(from, to *netstack.Stack) {
	defer w.wg.Done()
	bufs := [][]byte{make([]byte, 65536)}
	sizes := make([]int, 1)
	for {
		if _, err := from.Read(bufs, sizes, 0); err != nil {
			return
		}
		if w.drop() {
			continue
		}
		if _, err := to.Write([][]byte{bufs[0][:sizes[0]]}, 0); err != nil {
			return
		}
	}
}

// connectTCP opens a TCP connection from client to port 7000 of server
// (at 10.7.0.2) and returns both ends.
func connectTCP(t *testing.T, client, server *netstack.Stack) (cc, sc net.Conn) {
	t.Helper()
	ln, err := server.Listen("tcp", ":7000")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	cc, err = client.Dial("tcp", "10.7.0.2:7000")
	if err != nil {
		t.Fatal(err)
	}
	sc, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	return cc, sc
}

// TestTCPThroughBlackouts sends TCP both ways between two stacks over a
// path that loses a few percent of packets and, every few seconds, all
// of them for a second, as a tunnel does while it waits for a new
// session. Each direction must keep delivering. gVisor's CUBIC before
// RFC 9438's lower bound on its target window shrank the congestion
// window to zero on the ACKs after a loss detected at a window of a
// packet or two, which such losses bring about; with nothing in flight
// no timer fired again and the connection stalled for good, within a
// second or two here. Each direction must then deliver again once the
// path is clean.
func TestTCPThroughBlackouts(t *testing.T) {
	const (
		runFor  = 10 * time.Second
		every   = 3 * time.Second
		outFor  = time.Second
		maxWait = 30 * time.Second
	)
	cst, sst := newStackPair(t)
	w := &lossyWire{rng: rand.New(rand.NewPCG(1, 2)), loss: 0.02}
	w.wg.Add(2)
	go w.pump(cst, sst)
	go w.pump(sst, cst)
	defer func() {
		cst.Close()
		sst.Close()
		w.wg.Wait()
	}()

	cc, sc := connectTCP(t, cst, sst)

	var wg sync.WaitGroup
	var up, down atomic.Int64
	transfer := func(from, to net.Conn, n *atomic.Int64) {
		wg.Add(2)
		go func() {
			defer wg.Done()
			buf := make([]byte, 32<<10)
			for {
				if _, err := from.Write(buf); err != nil {
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			buf := make([]byte, 32<<10)
			for {
				k, err := to.Read(buf)
				n.Add(int64(k))
				if err != nil {
					return
				}
			}
		}()
	}
	transfer(cc, sc, &up)
	transfer(sc, cc, &down)

	start := time.Now()
	upProgress, downProgress := progress{at: start}, progress{at: start}
	for time.Since(start) < runFor {
		time.Sleep(100 * time.Millisecond)
		w.blackout.Store(time.Since(start)%every >= every-outFor)
		now := time.Now()
		upProgress.update(up.Load(), now)
		downProgress.update(down.Load(), now)
	}
	// Then a clean path: a sender that works resends within its
	// retransmission timeout, which the gaps may have backed off to
	// seconds (more under the race detector on a busy machine); a
	// collapsed one never sends again.
	w.blackout.Store(false)
	w.mu.Lock()
	w.loss = 0
	w.mu.Unlock()
	upFrom, downFrom := up.Load(), down.Load()
	deadline := time.Now().Add(maxWait)
	for (up.Load()-upFrom < 1<<20 || down.Load()-downFrom < 1<<20) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if u, d := up.Load()-upFrom, down.Load()-downFrom; u < 1<<20 || d < 1<<20 {
		t.Errorf("stalled: %v after the impairments ended, %d bytes client to server, %d back since\nclient TCP: %s\nserver TCP: %s",
			maxWait, u, d, netstack.TCPSenders(cst), netstack.TCPSenders(sst))
	}
	t.Logf("%d bytes client to server, %d back; longest without progress while impaired: %v, %v",
		up.Load(), down.Load(), upProgress.longest.Round(100*time.Millisecond), downProgress.longest.Round(100*time.Millisecond))
	cc.Close()
	sc.Close()
	wg.Wait()
}

// newStackPair returns the client (10.7.0.1) and server (10.7.0.2) stacks
// of the soak and blackout tests.
func newStackPair(t *testing.T) (client, server *netstack.Stack) {
	t.Helper()
	var err error
	if client, err = netstack.New(netstack.Config{Addresses: []netip.Prefix{netip.MustParsePrefix("10.7.0.1/32")}}); err != nil {
		t.Fatal(err)
	}
	if server, err = netstack.New(netstack.Config{Addresses: []netip.Prefix{netip.MustParsePrefix("10.7.0.2/32")}}); err != nil {
		t.Fatal(err)
	}
	return client, server
}
