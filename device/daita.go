package device

import (
	"sync"

	"github.com/gotatun/gotatun/daita"
	"github.com/gotatun/gotatun/packet"
)

// DAITA attaches to the data path at five points, each a nil check when a
// peer has no DAITA:
//
//   - handleTUNBatch: a packet routed to a DAITA peer with an endpoint is
//     reported (NormalSent) and padded with zeros to the TUN MTU, before it
//     is staged and encrypted;
//   - finishOutbound: each encrypted data message (not a keepalive) is
//     offered to the delay queue, or reported as sent (TunnelSent) just
//     before the socket send;
//   - finishInbound: after authentication and the replay check, a payload
//     starting with 0xFF is a decoy (counted and dropped, never written to
//     the TUN); any other non-empty payload is reported (TunnelRecv, then
//     NormalRecv for IP packets, before the source check);
//   - wherever a staged packet is dropped, it leaves the in-flight count;
//   - Apply starts, changes and stops DAITA on a peer in place, keeping its
//     sessions; a removed peer's delay queue is sent first.
//
// Lock order: the peer's stageMu, then the DAITA peer's lock (held from
// Begin to End around a batch), then the scheduler's. DAITA calls back
// into the device (daitaTunnel) with its lock held, except for sending
// decoys a timer sealed, which happens after the lock is released so the
// data path never waits for a decoy's socket send; those calls take no
// peer lock but timers.mu and the tunnel's own mu.
//
// Handshakes, cookie replies and keepalives never reach DAITA. An
// authenticated decoy updates the peer's endpoint like any authenticated
// data message (the whitepaper's roaming rule; GotaTun skips it).

// daitaTunnel is the device side of one peer's DAITA: it seals decoys and
// sends what the delay queue releases. Its methods run under the DAITA
// peer's lock, except Send, which may also run without it (decoys): mu
// guards bufs.
type daitaTunnel struct {
	p    *Peer
	mu   sync.Mutex
	bufs [][]byte
}

func (t *daitaTunnel) MTU() int { return int(t.p.d.mtu.Load()) }

func (t *daitaTunnel) SealDecoy(size int) (daita.Packet, bool) {
	p, d := t.p, t.p.d
	if p.removed.Load() || p.endpoint.Load() == nil {
		return daita.Packet{}, false
	}
	kp := p.keypairs.Current()
	if !usable(kp, d.clock.Now()) {
		return daita.Packet{}, false
	}
	buf := d.getBuf()
	if headroom+size+tagSize > len(buf.b) || size < daita.DecoyHeaderLen {
		d.putBuf(buf)
		return daita.Packet{}, false
	}
	c, ok := kp.NextCounter()
	if !ok {
		d.putBuf(buf)
		return daita.Packet{}, false
	}
	pt := buf.b[headroom : headroom+size]
	daita.FillDecoy(pt)
	msg := kp.SealTransport(buf.b, pt, c)
	if msg == nil {
		d.putBuf(buf)
		return daita.Packet{}, false
	}
	return daita.Packet{Msg: msg, Ref: buf}, true
}

func (t *daitaTunnel) Send(pkts []daita.Packet) {
	p, d := t.p, t.p.d
	ep, ok := p.getEndpoint()
	if !ok || p.removed.Load() {
		d.stats.noEndpoint.Add(uint64(len(pkts)))
		for _, pkt := range pkts {
			t.Release(pkt)
		}
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for len(pkts) > 0 {
		n := min(len(pkts), d.bindBatch)
		bufs := t.bufs[:0]
		var bytes uint64
		for _, pkt := range pkts[:n] {
			bufs = append(bufs, pkt.Msg)
			bytes += uint64(len(pkt.Msg))
		}
		p.timersAnyAuthenticatedPacketSent()
		p.timersDataSent()
		if err := d.send(bufs, ep); err != nil {
			d.log.Debug("send failed", "peer", p.short(), "err", err)
		} else {
			p.txBytes.Add(bytes)
		}
		clear(bufs)
		t.bufs = bufs[:0]
		for _, pkt := range pkts[:n] {
			t.Release(pkt)
		}
		pkts = pkts[n:]
	}
}

func (t *daitaTunnel) Release(pkt daita.Packet) {
	if b, ok := pkt.Ref.(*buffer); ok {
		t.p.d.putBuf(b)
	}
}

// daitaPad pads a packet routed to a DAITA peer to the MTU (before it
// is staged and encrypted) and returns its new length and the padding.
func (d *Device) daitaPad(buf *buffer, n int) (int, int) {
	mtu := int(d.mtu.Load())
	if n < mtu && headroom+mtu+tagSize <= len(buf.b) {
		clear(buf.b[headroom+n : headroom+mtu])
		return mtu, mtu - n
	}
	if n > mtu {
		d.stats.daitaOversized.Add(1)
	}
	return n, 0
}

// daitaDropped takes packets that will not be sent out of flight.
func daitaDropped(e *elem) {
	if e.dt != nil {
		e.dt.NormalDropped(1)
		e.dt = nil
	}
}

// daitaDroppedIn is daitaDropped between dt.Begin and dt.End (dt may be
// nil).
func daitaDroppedIn(dt *daita.Peer, e *elem) {
	if dt != nil && e.dt == dt {
		dt.NormalDroppedLocked(1)
		e.dt = nil
		return
	}
	daitaDropped(e)
}

// daitaOutbound offers an encrypted data message to dt's delay queue,
// between dt.Begin and dt.End; it reports true when the queue took it (and
// its buffer), and otherwise has reported it sent.
func daitaOutbound(dt *daita.Peer, e *elem) bool {
	if dt.OutboundLocked(daita.Packet{Msg: e.buf.b[:e.plen], Ref: e.buf, Normal: e.dt == dt}) {
		e.buf = nil
		return true
	}
	return false
}

// daitaInbound handles an authenticated, non-empty payload of a DAITA
// peer, between dt.Begin and dt.End: it reports true for a decoy, which
// the caller drops.
func daitaInbound(dt *daita.Peer, pt []byte) bool {
	if decoy, malformed := daita.IsDecoy(pt); decoy {
		dt.ReceivedDecoyLocked(len(pt), malformed)
		return true
	}
	total, ok := packet.TotalLen(pt)
	pad := 0
	if ok {
		pad = len(pt) - (total+15)&^15
	}
	dt.ReceivedLocked(ok, max(0, pad))
	return false
}

// setDAITA starts, changes (cfg differs) or stops (cfg nil) DAITA on p.
// The old instance's delay queue is sent first.
func (p *Peer) setDAITA(cfg *daita.Config) error {
	old := p.daita.Load()
	if cfg != nil && old != nil && old.Config().Equal(*cfg) {
		return nil
	}
	var dt *daita.Peer
	if cfg != nil {
		var err error
		dt, err = p.d.dsched.NewPeer(*cfg, &daitaTunnel{p: p})
		if err != nil {
			return err
		}
	}
	p.daita.Store(dt)
	if old != nil {
		old.Close()
	}
	return nil
}

// stopDAITA stops DAITA on a peer about to be removed (before shutdown),
// sending its delay queue.
func (p *Peer) stopDAITA() {
	if old := p.daita.Swap(nil); old != nil {
		old.Close()
	}
}

// daitaState fills the DAITA part of a peer's state.
func (p *Peer) daitaState(s *PeerState) {
	if dt := p.daita.Load(); dt != nil {
		cfg := dt.Config()
		st := dt.Stats()
		s.DAITA, s.DAITAStats = &cfg, &st
	}
}
