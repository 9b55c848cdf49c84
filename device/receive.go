package device

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/gotatun/gotatun/noise"
	"github.com/gotatun/gotatun/packet"
	"github.com/gotatun/gotatun/transport"
)

// hsMsg is a handshake message waiting for the handshake worker.
type hsMsg struct {
	buf *buffer
	n   int
	ep  transport.Endpoint
}

// receiver is the state of one receive goroutine.
type receiver struct {
	d       *Device
	holders []*buffer
	bufs    [][]byte
	sizes   []int
	eps     []transport.Endpoint
	pending []*batch // one open inbound batch per peer seen in this read
	size    int      // buffer size when last resized
	cookies cookieReplies
	one     [1][]byte // one cookie reply, for Binds that send to one endpoint
}

func (d *Device) newReceiver() *receiver {
	n := d.bindBatch
	r := &receiver{
		d:       d,
		holders: make([]*buffer, n),
		bufs:    make([][]byte, n),
		sizes:   make([]int, n),
		eps:     make([]transport.Endpoint, n),
		pending: make([]*batch, 0, 8),
		cookies: newCookieReplies(n),
	}
	for i := range r.holders {
		r.holders[i] = d.getBuf()
		r.bufs[i] = r.holders[i].b
	}
	r.size = len(r.holders[0].b)
	return r
}

// routineReceive reads datagrams from one receive function until the bind
// closes.
func (d *Device) routineReceive(fn transport.ReceiveFunc) {
	defer d.recvWG.Done()
	r := d.newReceiver()
	defer r.release()
	for {
		n, err := fn(r.bufs, r.sizes, r.eps)
		if err != nil {
			if d.closing.Load() || errors.Is(err, transport.ErrClosed) {
				return
			}
			d.log.Debug("UDP receive failed", "err", err)
			if d.backoff() {
				return
			}
			continue
		}
		r.handle(n)
		// Our own buffers again where the bind lent its.
		for i := range n {
			r.bufs[i] = r.holders[i].b
		}
		r.resize()
	}
}

func (r *receiver) release() {
	for i, h := range r.holders {
		r.d.putBuf(h)
		r.holders[i] = nil
	}
}

// takeBuf hands buffer i on to a later stage and puts a fresh one in its
// place. If the bind lent datagram i, it stays where it is: the caller
// copies it into the buffer or sets elem.src.
func (r *receiver) takeBuf(i int) *buffer {
	b := r.holders[i]
	r.holders[i] = r.d.getBuf()
	r.bufs[i] = r.holders[i].b
	return b
}

// handle sorts n received datagrams by type: handshake messages to the
// handshake queue, transport data to per-peer batches for decryption.
func (r *receiver) handle(n int) {
	d := r.d
	var now time.Time // read once, at the first handshake message
	for i := range n {
		size := r.sizes[i]
		own := r.holders[i].b
		if size < 4 || size > len(r.bufs[i]) || size > len(own) {
			d.stats.badInbound.Add(1)
			continue
		}
		msg := r.bufs[i][:size]
		lent := &msg[0] != &own[0]
		typ := binary.LittleEndian.Uint32(msg[:4])
		switch typ {
		case noise.MessageInitiationType, noise.MessageResponseType, noise.MessageCookieReplyType:
			if !handshakeSizeOK(typ, size) {
				d.stats.badInbound.Add(1)
				continue
			}
			if now.IsZero() {
				now = d.clock.Now()
			}
			if typ == noise.MessageCookieReplyType {
				d.consumeCookieReply(msg, now)
				continue
			}
			if !r.admitHandshake(msg, r.eps[i], now) {
				continue
			}
			if lent {
				copy(own, msg) // queued past the next receive call
			}
			m := hsMsg{buf: r.holders[i], n: size, ep: r.eps[i]}
			d.pending.Add(1)
			select {
			case d.hsQ <- m:
				d.stats.handshakesQueued.Add(1)
				r.takeBuf(i)
			default:
				d.pending.Add(-1)
				d.stats.handshakeDropped.Add(1)
			}
		case noise.MessageTransportType:
			if size < noise.MessageTransportOverhead {
				d.stats.badInbound.Add(1)
				continue
			}
			idx := binary.LittleEndian.Uint32(msg[4:8])
			ent := d.indices.lookup(idx)
			if ent == nil {
				d.stats.unknownIndex.Add(1)
				continue
			}
			kp := ent.keypair.Load()
			if kp == nil {
				d.stats.unknownIndex.Add(1)
				continue
			}
			b := r.batchFor(ent.peer)
			b.elems = append(b.elems, elem{}) // filled in place: elem is large
			e := &b.elems[len(b.elems)-1]
			e.buf, e.n, e.kp, e.ep = r.takeBuf(i), size, kp, r.eps[i]
			if lent {
				if d.inline {
					// Decrypted before handle returns (dispatch runs
					// the crypto at once), so straight from the bind.
					e.src = msg
				} else {
					copy(e.buf.b, msg)
				}
			}
			if len(b.elems) == cap(b.elems) {
				r.flushPeer(ent.peer)
			}
		default:
			d.stats.badInbound.Add(1)
		}
	}
	r.flushCookies()
	for i, b := range r.pending {
		d.pending.Add(1)
		b.peer.inQ.push(b)
		d.dispatch(b, false)
		r.pending[i] = nil
	}
	r.pending = r.pending[:0]
	d.stats.rxDatagrams.Add(uint64(n))
}

func handshakeSizeOK(typ uint32, size int) bool {
	switch typ {
	case noise.MessageInitiationType:
		return size == noise.MessageInitiationSize
	case noise.MessageResponseType:
		return size == noise.MessageResponseSize
	case noise.MessageCookieReplyType:
		return size == noise.MessageCookieReplySize
	}
	return false
}

// batchFor returns the open batch of p in this read, starting one if needed.
func (r *receiver) batchFor(p *Peer) *batch {
	for _, b := range r.pending {
		if b.peer == p {
			return b
		}
	}
	b := r.d.getBatch()
	b.peer = p
	r.pending = append(r.pending, b)
	return b
}

// flushPeer sends p's full batch on its way now.
func (r *receiver) flushPeer(p *Peer) {
	for i, b := range r.pending {
		if b.peer == p {
			last := len(r.pending) - 1
			r.pending[i] = r.pending[last]
			r.pending[last] = nil
			r.pending = r.pending[:last]
			r.d.pending.Add(1)
			p.inQ.push(b)
			r.d.dispatch(b, false)
			return
		}
	}
}

// decrypt opens every packet of an inbound batch in place.
func (d *Device) decrypt(b *batch) {
	now := d.clock.Now()
	for i := range b.elems {
		e := &b.elems[i]
		msg := e.buf.b[:e.n]
		if e.src != nil {
			msg, e.src = e.src, nil
		}
		if now.Sub(e.kp.Created) >= noise.RejectAfterTime {
			continue
		}
		pt, ctr, err := e.kp.OpenTransport(e.buf.b[headroom:headroom], msg)
		if err != nil || ctr >= noise.RejectAfterMessages {
			continue
		}
		e.plen = len(pt)
		e.counter = ctr
		e.ok = true
	}
}

// finishInbound completes a decrypted batch in the peer's order: replay
// check, key rotation, roaming, the allowed-IPs source check, counters and
// timers, then one TUN write.
func (d *Device) finishInbound(b *batch) {
	defer d.pending.Add(-1)
	p := b.peer
	if p.removed.Load() {
		d.releaseBatch(b)
		return
	}
	var (
		rotated, any, data bool
		lastEP             transport.Endpoint
		rx                 uint64
	)
	dt := p.daita.Load()
	if dt != nil && !dt.Begin() {
		dt = nil
	}
	for i := range b.elems {
		e := &b.elems[i]
		if !e.ok {
			d.stats.decryptFailed.Add(1)
			continue
		}
		if !e.kp.AcceptCounter(e.counter) {
			d.stats.replayed.Add(1)
			continue
		}
		if r, evicted := p.keypairs.Received(e.kp); r {
			rotated = true
			p.discard(evicted)
		}
		any = true
		lastEP = e.ep
		rx += uint64(e.n)
		if e.plen == 0 {
			continue // keepalive
		}
		pkt := e.buf.b[headroom : headroom+e.plen]
		if dt != nil && daitaInbound(dt, pkt) {
			data = true // a decoy: data for the timers, never for the TUN
			continue
		}
		src, ok := packet.Src(pkt)
		total, lenOK := packet.TotalLen(pkt)
		if !ok || !lenOK {
			d.stats.badInner.Add(1)
			continue
		}
		if owner, ok := d.allowed.Lookup(src); !ok || owner != p {
			d.dropDisallowed(p, src)
			continue
		}
		data = true
		b.bufs = append(b.bufs, e.buf.b[:headroom+total])
		if d.capture != nil {
			d.capturePacket(pkt[:total])
		}
	}
	if dt != nil {
		dt.End() // the batch's events in one call
	}
	if any {
		p.setEndpoint(lastEP)
		p.rxBytes.Add(rx)
		p.timersAnyAuthenticatedPacketReceived()
		if rotated {
			p.timersHandshakeComplete()
		}
		if data {
			p.timersDataReceived()
		}
	}
	wrote := false
	if len(b.bufs) > 0 {
		if _, err := d.tun.Write(b.bufs, headroom); err != nil {
			d.log.Debug("TUN write failed", "err", err)
		}
		wrote = true
	}
	d.releaseBatch(b)
	if wrote && d.inline {
		// Workers must not read the TUN: staging may wait for them.
		d.pollTUN()
	}
	if rotated {
		p.sendStaged(true)
	}
	if any && p.lastMinuteHandshake(p.keypairs.Current(), d.clock.Now()) {
		p.initiate(false)
	}
}
