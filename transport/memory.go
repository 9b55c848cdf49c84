package transport

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
)

// Network is an in-memory UDP network: Binds created from it exchange
// datagrams by address without touching the kernel. A Filter may drop,
// duplicate or delay datagrams to model a lossy path.
type Network struct {
	mu    sync.Mutex
	binds map[netip.AddrPort]*memBind
	// Filter, when set, is called for every datagram and returns how many
	// copies to deliver (0 drops it). Set it before traffic flows.
	Filter func(from, to netip.AddrPort, pkt []byte) int
}

// NewNetwork returns an empty in-memory network.
func NewNetwork() *Network {
	return &Network{binds: make(map[netip.AddrPort]*memBind)}
}

// NewBind returns a Bind that listens on addr within this network.
func (n *Network) NewBind(addr netip.Addr) Bind {
	return &memBind{net: n, addr: addr}
}

type datagram struct {
	data []byte
	from netip.AddrPort
}

type memBind struct {
	net   *Network
	addr  netip.Addr
	mu    sync.Mutex
	local netip.AddrPort
	queue chan datagram
	done  chan struct{}
}

const memQueueLen = 4096

func (b *memBind) Open(port uint16) ([]ReceiveFunc, uint16, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.queue != nil {
		return nil, 0, errors.New("transport: bind already open")
	}
	b.net.mu.Lock()
	defer b.net.mu.Unlock()
	port, err := b.freePortLocked(port)
	if err != nil {
		return nil, 0, err
	}
	return []ReceiveFunc{b.startLocked(port)}, port, nil
}

// freePortLocked returns port if it is free on b's address, or for port 0
// a free one. b.net.mu must be held.
func (b *memBind) freePortLocked(port uint16) (uint16, error) {
	if port == 0 {
		for p := uint16(40000); p != 0; p++ {
			if _, used := b.net.binds[netip.AddrPortFrom(b.addr, p)]; !used {
				port = p
				break
			}
		}
	}
	ap := netip.AddrPortFrom(b.addr, port)
	if _, used := b.net.binds[ap]; used || port == 0 {
		return 0, fmt.Errorf("transport: address %v in use", ap)
	}
	return port, nil
}

// startLocked registers b on port, which must be free, and returns its
// receive function. b.mu and b.net.mu must be held.
func (b *memBind) startLocked(port uint16) ReceiveFunc {
	ap := netip.AddrPortFrom(b.addr, port)
	b.local = ap
	b.queue = make(chan datagram, memQueueLen)
	b.done = make(chan struct{})
	b.net.binds[ap] = b
	queue, done := b.queue, b.done
	// Every other datagram is lent rather than copied, and what was lent
	// is overwritten when the next call starts, so a caller that keeps a
	// lent datagram too long sees garbage.
	var lent [][]byte
	lend := false
	var kept datagram // a datagram too large for the last call's buffer
	held, retried := false, false
	recv := func(bufs [][]byte, sizes []int, eps []Endpoint) (int, error) {
		for _, l := range lent {
			for i := range l {
				l[i] = 0xdd
			}
		}
		clear(lent)
		lent = lent[:0]
		var d datagram
		if held {
			d, held = kept, false
		} else {
			select {
			case d = <-queue:
			case <-done:
				return 0, ErrClosed
			}
		}
		n := 0
		for {
			// A datagram larger than its buffer is never truncated: as
			// the Linux bind does, it is kept for the next call if
			// datagrams precede it or it is its first try (the caller
			// may grow its buffers), else dropped.
			if len(d.data) > len(bufs[n]) {
				if n > 0 || !retried {
					kept, held, retried = d, true, n == 0
					return n, nil
				}
				retried = false
			} else {
				retried = false
				if lend = !lend; lend {
					bufs[n] = d.data[:len(d.data):len(d.data)]
					lent = append(lent, bufs[n])
					sizes[n] = len(d.data)
				} else {
					sizes[n] = copy(bufs[n], d.data)
				}
				eps[n] = Endpoint{Dst: d.from, Src: ap.Addr()}
				n++
				if n == len(bufs) {
					return n, nil
				}
			}
			if n == 0 {
				select {
				case d = <-queue:
				case <-done:
					return 0, ErrClosed
				}
				continue
			}
			select {
			case d = <-queue:
			default:
				return n, nil
			}
		}
	}
	return recv
}

func (b *memBind) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.queue == nil {
		return nil
	}
	b.net.mu.Lock()
	delete(b.net.binds, b.local)
	close(b.done)
	b.queue, b.done = nil, nil
	b.net.mu.Unlock()
	return nil
}

func (b *memBind) SetMark(uint32) error { return nil }

func (b *memBind) BatchSize() int { return 128 }

// Send copies each datagram to the destination's queue. Like UDP, it drops
// datagrams for unknown destinations or full queues silently.
func (b *memBind) Send(bufs [][]byte, ep Endpoint) error {
	b.mu.Lock()
	from, open := b.local, b.queue != nil
	b.mu.Unlock()
	if !open {
		return ErrClosed
	}
	b.net.mu.Lock()
	var queue chan datagram
	var done chan struct{}
	if dst := b.net.binds[ep.Dst]; dst != nil {
		queue, done = dst.queue, dst.done
	}
	filter := b.net.Filter
	b.net.mu.Unlock()
	if queue == nil {
		return nil
	}
	for _, buf := range bufs {
		copies := 1
		if filter != nil {
			copies = filter(from, ep.Dst, buf)
		}
		for range copies {
			d := datagram{data: append([]byte(nil), buf...), from: from}
			select {
			case queue <- d:
			case <-done:
				return nil
			default: // queue full: dropped, as UDP would
			}
		}
	}
	return nil
}
