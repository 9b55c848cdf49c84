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
	h := encapHeader{dst: dst, sport: st.port, dport: ep.Dst.Port(), flow: st.flow}
	var hdr int
	switch {
	case dst.Is4() && p.src4.IsValid():
		a := p.src4.As4()
		copy(h.src[:], a[:])
		hdr = ipv4Header + udpHeader
		// IDs for the whole send at once: one atomic operation, not
		// one per packet behind the stores of the previous one.
		n := uint32(len(bufs))
		h.id = p.ipID.Add(n) - n
	case dst.Is6() && p.src6.IsValid():
		h.src = p.src6.As16()
		hdr = ipv6Header + udpHeader
	default:
		p.stats.sendNoSource.Add(uint64(len(bufs)))
		return fmt.Errorf("%w: %v", ErrNoSource, dst)
	}
	h.init()
	if done, tooBig := p.sendDirect(bufs, hdr, &h); done {
		return p.tooBig(tooBig, len(bufs))
	}
	var (
		tooBig int
		batch  *pktBatch
		w      *readWait
	)
	for _, d := range bufs {
		if len(d)+hdr > p.mtu {
			tooBig++
			continue
		}
		if w == nil && batch == nil {
			// A reader waiting on an empty queue gets the packets
			// written straight into its buffers: one copy instead of
			// two.
			if w = p.takeWaiter(); w == nil {
				select {
				case batch = <-p.out.free:
				case <-p.closed:
					return transport.ErrClosed
				case <-st.done:
					return transport.ErrClosed
				}
			}
		}
		if w != nil {
			if out := w.bufs[w.n][w.offset:]; len(d)+hdr > len(out) {
				p.stats.readTooBig.Add(1)
			} else {
				w.sizes[w.n] = h.put(out, d)
				w.n++
			}
			if w.n == len(w.bufs) {
				p.wake(w)
				w = nil
			}
			continue
		}
		buf := p.out.slot(batch, batch.n)
		batch.bufs[batch.n] = buf[:h.put(buf, d)]
		batch.n++
		if batch.n == batchCap {
			if err := p.queueOut(batch, st); err != nil {
				return err
			}
			batch = nil
		}
	}
	if w != nil {
		p.wake(w)
	}
	if batch != nil {
		if err := p.queueOut(batch, st); err != nil {
			return err
		}
	}
	return p.tooBig(tooBig, len(bufs))
}

// tooBig counts and reports datagrams dropped for the entry MTU.
func (p *Pipe) tooBig(n, of int) error {
	if n == 0 {
		return nil
	}
	p.stats.sendTooBig.Add(uint64(n))
	return fmt.Errorf("%w: %d of %d datagrams dropped (entry MTU %d)", ErrTooBig, n, of, p.mtu)
}

// sendDirect hands the datagrams to the entry device's batch handler on
// this goroutine if nothing else is reading: written straight into the
// device's read buffers, after whatever was queued before. It reports
// false, having done nothing, when it cannot.
func (p *Pipe) sendDirect(bufs [][]byte, hdr int, e *encapHeader) (done bool, tooBig int) {
	if !p.readMu.TryLock() {
		return false, 0
	}
	defer p.readMu.Unlock()
	h := &p.handler
	if h.handle == nil {
		return false, 0 // the entry device reads without ReadFunc
	}
	select {
	case <-p.closed:
		return false, 0
	default:
	}
	p.drainLocked()
	n := 0
	for _, d := range bufs {
		if len(d)+hdr > p.mtu {
			tooBig++
			continue
		}
		if out := h.bufs[n][h.offset:]; len(d)+hdr > len(out) {
			p.stats.readTooBig.Add(1)
			continue
		} else {
			h.sizes[n] = e.put(out, d)
		}
		if n++; n == len(h.bufs) {
			p.stats.sent.Add(uint64(n))
			p.stats.read.Add(uint64(n))
			h.handle(n)
			n = 0
		}
	}
	if n > 0 {
		p.stats.sent.Add(uint64(n))
		p.stats.read.Add(uint64(n))
		h.handle(n)
	}
	return true, tooBig
}

// queueOut queues a batch for the entry device's reader, or hands it to
// the reader if it is waiting.
func (p *Pipe) queueOut(batch *pktBatch, st *bindState) error {
	n := batch.n
	p.waitMu.Lock()
	if w := p.waiter; w != nil {
		p.waiter = nil
		p.waitMu.Unlock()
		w.batch = batch
		p.stats.sent.Add(uint64(n))
		w.filled <- struct{}{}
		return nil
	}
	select {
	case p.out.q <- batch: // never waits: the queue holds every batch
		p.waitMu.Unlock()
		p.stats.sent.Add(uint64(n))
		p.notifyReader()
		return nil
	default:
	}
	p.waitMu.Unlock()
	select {
	case p.out.q <- batch:
		p.stats.sent.Add(uint64(n))
		p.notifyReader()
		return nil
	case <-p.closed:
	case <-st.done:
	}
	p.out.recycle(batch)
	return transport.ErrClosed
}

// notifyReader wakes ReadFunc for a queued batch.
func (p *Pipe) notifyReader() {
	select {
	case p.notify <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// takeWaiter returns the reader waiting on the empty queue, if any; the
// caller must wake it.
func (p *Pipe) takeWaiter() *readWait {
	p.waitMu.Lock()
	w := p.waiter
	p.waiter = nil
	p.waitMu.Unlock()
	return w
}

// wake returns a waiting reader the packets written into its buffers.
func (p *Pipe) wake(w *readWait) {
	p.stats.sent.Add(uint64(w.n))
	w.filled <- struct{}{}
}

// encapHeader is what the IP and UDP headers of one send have in common,
// with the parts of their checksums that do not change from packet to
// packet, so a packet's headers are written once and never read back.
type encapHeader struct {
	src          [16]byte // an IPv4 address in the first 4 bytes
	dst          netip.Addr
	sport, dport uint16
	flow         uint32 // IPv6 flow label
	id           uint32 // IPv4 identification last used
	ipSum        uint64 // IPv4 header sum without length and ID
	udpSum       uint64 // UDP pseudo-header and header sum without lengths
}

// init computes the constant checksum parts; src, dst and the ports must
// be set.
func (h *encapHeader) init() {
	var s, d []byte
	if h.dst.Is4() {
		s, d = h.src[:4], h.dst.AsSlice()
		h.ipSum = uint64(0x4500) + uint64(64<<8|protoUDP) + packet.PseudoHeaderSum(0, s, d, 0)
	} else {
		s, d = h.src[:], h.dst.AsSlice()
	}
	h.udpSum = packet.PseudoHeaderSum(protoUDP, s, d, 0) + uint64(h.sport) + uint64(h.dport)
}

// put writes an IP/UDP packet carrying d into buf and returns its length.
func (h *encapHeader) put(buf, d []byte) int {
	if h.dst.Is4() {
		h.id++
		return h.put4(buf, d, uint16(h.id))
	}
	return h.put6(buf, d)
}

// put4 writes an IPv4/UDP packet carrying d into buf and returns its
// length: no options, DF clear, TTL 64, identification id.
func (h *encapHeader) put4(buf, d []byte, id uint16) int {
	total := ipv4Header + udpHeader + len(d)
	ip := buf[:ipv4Header]
	ip[0], ip[1] = 0x45, 0
	binary.BigEndian.PutUint16(ip[2:], uint16(total))
	binary.BigEndian.PutUint16(ip[4:], id)
	ip[6], ip[7], ip[8], ip[9] = 0, 0, 64, protoUDP
	binary.BigEndian.PutUint16(ip[10:], ^packet.Checksum(nil, h.ipSum+uint64(total)+uint64(id)))
	copy(ip[12:16], h.src[:4])
	d4 := h.dst.As4()
	copy(ip[16:20], d4[:])
	h.putUDP(buf[ipv4Header:total], d)
	return total
}

// put6 writes an IPv6/UDP packet carrying d into buf and returns its
// length: traffic class 0, the bind's flow label, hop limit 64.
func (h *encapHeader) put6(buf, d []byte) int {
	total := ipv6Header + udpHeader + len(d)
	ip := buf[:ipv6Header]
	binary.BigEndian.PutUint32(ip[0:], 6<<28|h.flow&0xfffff)
	binary.BigEndian.PutUint16(ip[4:], uint16(udpHeader+len(d)))
	ip[6], ip[7] = protoUDP, 64
	copy(ip[8:24], h.src[:])
	d16 := h.dst.As16()
	copy(ip[24:40], d16[:])
	h.putUDP(buf[ipv6Header:total], d)
	return total
}

// putUDP writes a UDP header and payload d into u (exactly their size)
// with the checksum over the pseudo-header. The payload is summed as it
// is copied, so it is read once. A computed zero is sent as 0xffff, since
// zero means "no checksum".
func (h *encapHeader) putUDP(u, d []byte) {
	binary.BigEndian.PutUint16(u[0:], h.sport)
	binary.BigEndian.PutUint16(u[2:], h.dport)
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	// The length is in the pseudo-header and in the header.
	c := ^packet.CopyChecksum(u[udpHeader:], d, h.udpSum+2*uint64(len(u)))
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
