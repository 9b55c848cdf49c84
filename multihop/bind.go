package multihop

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/gotatun/gotatun/packet"
	"github.com/gotatun/gotatun/transport"
)

// pipeBind is the exit device's Bind.
type pipeBind struct {
	p    *Pipe
	mu   sync.Mutex // serialises Open and Close
	open atomic.Pointer[bindState]
}

// bindState is one opening of the Bind.
type bindState struct {
	port uint16
	flow uint32 // IPv6 flow label, drawn per opening
	done chan struct{}
}

// Open implements transport.Bind. Port 0 draws a random port in 1…65535.
func (b *pipeBind) Open(port uint16) ([]transport.ReceiveFunc, uint16, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-b.p.closed:
		return nil, 0, transport.ErrClosed
	default:
	}
	if b.open.Load() != nil {
		return nil, 0, errors.New("multihop: bind already open")
	}
	for port == 0 {
		port = uint16(b.p.randUint32())
	}
	st := &bindState{port: port, flow: b.p.randUint32() & 0xfffff, done: make(chan struct{})}
	b.open.Store(st)
	r := &receiver{p: b.p, st: st, lent: make([]*pktBatch, 0, cap(b.p.in.free))}
	return []transport.ReceiveFunc{r.receive}, port, nil
}

// Close implements transport.Bind: receive functions return ErrClosed and
// sends fail until the next Open. The Pipe stays open.
func (b *pipeBind) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if st := b.open.Swap(nil); st != nil {
		close(st.done)
	}
	return nil
}

// SetMark implements transport.Bind; marks mean nothing inside a tunnel.
func (b *pipeBind) SetMark(uint32) error { return nil }

// BatchSize implements transport.Bind.
func (b *pipeBind) BatchSize() int { return batchCap }

// Send implements transport.Bind: each datagram becomes an IP/UDP packet
// from the entry-tunnel address and the bound port to ep, queued for the
// entry device. It waits while the queue is full. Datagrams that do not
// fit the entry MTU, or whose family has no entry-tunnel address, are
// dropped, counted and reported in the error after the rest are queued.
func (b *pipeBind) Send(bufs [][]byte, ep transport.Endpoint) error {
	p := b.p
	st := b.open.Load()
	if st == nil {
		return transport.ErrClosed
	}
	dst := ep.Dst.Addr().Unmap()
	var src [16]byte
	var hdr int
	switch {
	case dst.Is4() && p.src4.IsValid():
		a := p.src4.As4()
		copy(src[:], a[:])
		hdr = ipv4Header + udpHeader
	case dst.Is6() && p.src6.IsValid():
		src = p.src6.As16()
		hdr = ipv6Header + udpHeader
	default:
		p.stats.sendNoSource.Add(uint64(len(bufs)))
		return fmt.Errorf("%w: %v", ErrNoSource, dst)
	}
	var tooBig int
	var batch *pktBatch
	for _, d := range bufs {
		if len(d)+hdr > p.mtu {
			tooBig++
			continue
		}
		if batch == nil {
			select {
			case batch = <-p.out.free:
			case <-p.closed:
				return transport.ErrClosed
			case <-st.done:
				return transport.ErrClosed
			}
		}
		buf := p.out.slot(batch, batch.n)
		var n int
		if hdr == ipv4Header+udpHeader {
			n = p.encap4(buf, d, src, dst, st.port, ep.Dst.Port())
		} else {
			n = encap6(buf, d, src, dst, st.port, ep.Dst.Port(), st.flow)
		}
		batch.bufs[batch.n] = buf[:n]
		batch.n++
		if batch.n == batchCap {
			if err := p.queueOut(batch, st); err != nil {
				return err
			}
			batch = nil
		}
	}
	if batch != nil {
		if err := p.queueOut(batch, st); err != nil {
			return err
		}
	}
	if tooBig > 0 {
		p.stats.sendTooBig.Add(uint64(tooBig))
		return fmt.Errorf("%w: %d of %d datagrams dropped (entry MTU %d)", ErrTooBig, tooBig, len(bufs), p.mtu)
	}
	return nil
}

func (p *Pipe) queueOut(batch *pktBatch, st *bindState) error {
	n := batch.n
	select {
	case p.out.q <- batch:
		p.stats.sent.Add(uint64(n))
		return nil
	case <-p.closed:
	case <-st.done:
	}
	p.out.recycle(batch)
	return transport.ErrClosed
}

// encap4 writes an IPv4/UDP packet carrying d into buf and returns its
// length: no options, DF clear, TTL 64, IDs counting up from 1.
func (p *Pipe) encap4(buf, d []byte, src [16]byte, dst netip.Addr, sport, dport uint16) int {
	total := ipv4Header + udpHeader + len(d)
	h := buf[:ipv4Header]
	h[0], h[1] = 0x45, 0
	binary.BigEndian.PutUint16(h[2:], uint16(total))
	binary.BigEndian.PutUint16(h[4:], uint16(p.ipID.Add(1)))
	h[6], h[7], h[8], h[9] = 0, 0, 64, protoUDP
	h[10], h[11] = 0, 0
	copy(h[12:16], src[:4])
	d4 := dst.As4()
	copy(h[16:20], d4[:])
	binary.BigEndian.PutUint16(h[10:], ^packet.Checksum(h, 0))
	putUDP(buf[ipv4Header:total], d, h[12:16], h[16:20], sport, dport)
	return total
}

// encap6 writes an IPv6/UDP packet carrying d into buf and returns its
// length: traffic class 0, the bind's flow label, hop limit 64.
func encap6(buf, d []byte, src [16]byte, dst netip.Addr, sport, dport uint16, flow uint32) int {
	total := ipv6Header + udpHeader + len(d)
	h := buf[:ipv6Header]
	binary.BigEndian.PutUint32(h[0:], 6<<28|flow&0xfffff)
	binary.BigEndian.PutUint16(h[4:], uint16(udpHeader+len(d)))
	h[6], h[7] = protoUDP, 64
	copy(h[8:24], src[:])
	d16 := dst.As16()
	copy(h[24:40], d16[:])
	putUDP(buf[ipv6Header:total], d, h[8:24], h[24:40], sport, dport)
	return total
}

// putUDP writes a UDP header and payload d into u (exactly their size)
// with the checksum over the pseudo-header of src and dst. A computed
// zero is sent as 0xffff, since zero means "no checksum".
func putUDP(u, d, src, dst []byte, sport, dport uint16) {
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	u[6], u[7] = 0, 0
	copy(u[udpHeader:], d)
	c := ^packet.Checksum(u, packet.PseudoHeaderSum(protoUDP, src, dst, len(u)))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:], c)
}

// receiver is the exit device's receive function for one opening.
type receiver struct {
	p    *Pipe
	st   *bindState
	cur  *pktBatch   // batch being lent from
	lent []*pktBatch // batches lent by the last call, finished
}

// receive implements transport.ReceiveFunc. It lends the queued
// datagrams; they stay valid until the next call.
func (r *receiver) receive(bufs [][]byte, sizes []int, eps []transport.Endpoint) (int, error) {
	p := r.p
	for _, b := range r.lent {
		p.in.recycle(b)
	}
	r.lent = r.lent[:0]
	if len(bufs) == 0 {
		return 0, nil
	}
	n := 0
	for n == 0 {
		if r.cur == nil {
			select {
			case r.cur = <-p.in.q:
			case <-r.st.done:
				return 0, r.closed()
			case <-p.closed:
				return 0, r.closed()
			}
		}
		for {
			b := r.cur
			for b.pos < b.n && n < len(bufs) {
				d := b.bufs[b.pos]
				ep := b.eps[b.pos]
				b.pos++
				if len(d) > len(bufs[n]) {
					p.stats.readTooBig.Add(1)
					continue
				}
				bufs[n], sizes[n], eps[n] = d, len(d), ep
				n++
			}
			// A used-up batch goes back on the next call, once the
			// caller is done with what was lent.
			if !p.in.advance(&r.cur, n < len(bufs), &r.lent) {
				break
			}
		}
	}
	p.stats.received.Add(uint64(n))
	return n, nil
}

// closed releases what the receiver holds and returns ErrClosed.
func (r *receiver) closed() error {
	if r.cur != nil {
		r.p.in.recycle(r.cur)
		r.cur = nil
	}
	return transport.ErrClosed
}
