package device

import (
	"errors"

	"github.com/gotatun/gotatun/noise"
	"github.com/gotatun/gotatun/packet"
	"github.com/gotatun/gotatun/tun"
)

// tunReader is the buffers TUN reads fill. One set serves the TUN reader
// and the goroutines that poll the TUN after writing to it: the TUN
// device hands batches to handleTUN one at a time.
type tunReader struct {
	holders []*buffer
	bufs    [][]byte
	sizes   []int
	peers   []*Peer
	size    int // buffer size when last resized
}

func (d *Device) newTUNReader() *tunReader {
	n := max(1, d.tun.BatchSize())
	tr := &tunReader{
		holders: make([]*buffer, n),
		bufs:    make([][]byte, n),
		sizes:   make([]int, n),
		peers:   make([]*Peer, n),
	}
	for i := range tr.holders {
		tr.holders[i] = d.getBuf()
		tr.bufs[i] = tunReadSlice(tr.holders[i])
	}
	tr.size = len(tr.holders[0].b)
	return tr
}

// routineReadTUN reads plaintext packets from the TUN device, routes them
// by destination and hands them to their peers.
func (d *Device) routineReadTUN() {
	defer d.wg.Done()
	tr := d.tr
	for {
		var err error
		if d.tunBatch != nil {
			err = d.tunBatch.ReadFunc(tr.bufs, tr.sizes, headroom, d.handleTUN)
		} else {
			var cnt int
			if cnt, err = d.tun.Read(tr.bufs, tr.sizes, headroom); err == nil {
				d.handleTUNBatch(cnt)
			}
		}
		if err != nil {
			if d.closing.Load() || errors.Is(err, tun.ErrClosed) {
				return
			}
			d.log.Debug("TUN read failed", "err", err)
			if d.backoff() {
				return
			}
		}
	}
}

// pollTUN hands on what the TUN has queued, if anything, without waiting:
// called after writing to the TUN, it sends what the kernel answered with
// (an echo reply, an ACK) without a wake-up of the TUN reader.
func (d *Device) pollTUN() {
	if d.tunBatch != nil {
		d.tunBatch.PollFunc(d.tr.bufs, d.tr.sizes, headroom, d.handleTUN)
	}
}

// handleTUNBatch routes cnt packets read into d.tr by destination and
// stages them on their peers, replacing the buffers it takes.
func (d *Device) handleTUNBatch(cnt int) {
	tr := d.tr
	for i := range cnt {
		pkt := tr.bufs[i][headroom : headroom+tr.sizes[i]]
		dst, ok := packet.Dst(pkt)
		if !ok {
			d.stats.badOutbound.Add(1)
			continue
		}
		p, ok := d.allowed.Lookup(dst)
		if !ok {
			d.stats.noRoute.Add(1)
			continue
		}
		tr.peers[i] = p
		if d.capture != nil {
			d.capturePacket(pkt)
		}
	}
	for i := range cnt {
		p := tr.peers[i]
		if p == nil {
			continue
		}
		// DAITA: NormalSent for packets to a peer with an endpoint, then
		// padding to the MTU, before staging and encryption.
		dt := p.daita.Load()
		if dt != nil && p.endpoint.Load() == nil {
			dt = nil
		}
		normals, padding := 0, 0
		p.stageMu.Lock()
		for j := i; j < cnt; j++ {
			if tr.peers[j] != p {
				continue
			}
			e := elem{buf: tr.holders[j], n: tr.sizes[j]}
			if dt != nil {
				var pad int
				e.n, pad = d.daitaPad(e.buf, e.n)
				e.dt = dt
				normals++
				padding += pad
			}
			p.stageLocked(e)
			tr.holders[j] = d.getBuf()
			tr.bufs[j] = tunReadSlice(tr.holders[j])
			tr.peers[j] = nil
		}
		if normals > 0 {
			dt.NormalSent(normals, padding) // before anything can send them
		}
		p.stageMu.Unlock()
		if !p.removed.Load() && !d.suspended.Load() {
			p.sendStaged(false)
		} else {
			p.dropStaged()
		}
	}
	d.stats.tunPackets.Add(uint64(cnt))
	tr.resize(d)
}

// encrypt pads and seals every packet of an outbound batch in place.
func (d *Device) encrypt(b *batch) {
	mtu := int(d.mtu.Load())
	for i := range b.elems {
		e := &b.elems[i]
		buf := e.buf.b
		padded := noise.PaddedLen(e.n, mtu)
		if headroom+padded+tagSize > len(buf) {
			padded = e.n
		}
		clear(buf[headroom+e.n : headroom+padded])
		msg := b.kp.SealTransport(buf, buf[headroom:headroom+padded], e.counter)
		e.plen = len(msg)
		e.ok = msg != nil
	}
}

// finishOutbound sends an encrypted batch, in the peer's order.
func (d *Device) finishOutbound(b *batch) {
	defer d.pending.Add(-1)
	p := b.peer
	ep, haveEP := p.getEndpoint()
	if p.removed.Load() || !haveEP {
		d.stats.noEndpoint.Add(uint64(len(b.elems)))
		for i := range b.elems {
			daitaDropped(&b.elems[i])
		}
		d.releaseBatch(b)
		return
	}
	var bytes uint64
	data := false
	dt := p.daita.Load()
	if dt != nil && !dt.Begin() {
		dt = nil
	}
	for i := range b.elems {
		e := &b.elems[i]
		if !e.ok {
			daitaDroppedIn(dt, e)
			continue
		}
		if dt != nil && e.n > 0 && daitaOutbound(dt, e) {
			continue // in the delay queue
		}
		b.bufs = append(b.bufs, e.buf.b[:e.plen])
		bytes += uint64(e.plen)
		if e.n > 0 {
			data = true
		}
	}
	if dt != nil {
		dt.End() // TunnelSent for what goes now
	}
	if len(b.bufs) > 0 {
		// Timers first: the answer may arrive before Send returns.
		p.timersAnyAuthenticatedPacketSent()
		if data {
			p.timersDataSent()
		}
		if err := d.send(b.bufs, ep); err != nil {
			d.log.Debug("send failed", "peer", p.short(), "err", err)
		} else {
			p.txBytes.Add(bytes)
		}
	}
	d.releaseBatch(b)
}

// releaseBatch recycles a batch and its buffers.
func (d *Device) releaseBatch(b *batch) {
	for i := range b.elems {
		d.putBuf(b.elems[i].buf)
	}
	d.putBatch(b)
}
