package device

import (
	"encoding/binary"
	"time"

	"github.com/gotatun/gotatun/noise"
	"github.com/gotatun/gotatun/transport"
)

// identity is the device's static key with what is derived from it.
type identity struct {
	priv    noise.PrivateKey
	pub     noise.PublicKey
	id      *noise.Identity
	checker *noise.CookieChecker
}

// underLoadFor is how long the device keeps demanding cookies after its
// handshake queue was last found filling up.
const underLoadFor = time.Second

// underLoadLogEvery is the least time between two logs of the device
// going under load, so a flood that comes and goes does not flood the log.
const underLoadLogEvery = time.Minute

// initiate sends a handshake initiation to the peer. Outside retries
// (retry false) it restarts the Rekey-Attempt-Time count, and it never
// sends more than one initiation per Rekey-Timeout.
func (p *Peer) initiate(retry bool) {
	d := p.d
	if p.removed.Load() || d.closing.Load() || d.suspended.Load() {
		return
	}
	now := d.clock.Now()
	if !retry {
		p.timerEvent(func(now time.Time) { p.timers.firstAttempt = now })
	}
	p.hsMu.Lock()
	if p.hs == nil || p.removed.Load() {
		p.hsMu.Unlock()
		return
	}
	if !p.lastInitSent.IsZero() && now.Sub(p.lastInitSent) < noise.RekeyTimeout {
		p.hsMu.Unlock()
		return
	}
	idx, ent, err := d.indices.add(p)
	if err != nil {
		p.hsMu.Unlock()
		d.log.Error("handshake initiation", "peer", p.short(), "err", err)
		return
	}
	msg, err := p.hs.CreateInitiation(now, idx, d.rand)
	if err != nil {
		d.indices.remove(idx, ent)
		p.hsMu.Unlock()
		d.log.Error("handshake initiation", "peer", p.short(), "err", err)
		return
	}
	p.dropHandshakeIndexLocked()
	p.hsIndex, p.hsEntry = idx, ent
	p.lastInitSent = now
	p.hsMu.Unlock()

	buf := make([]byte, noise.MessageInitiationSize)
	msg.MarshalTo(buf)
	p.cookie.AddMACs(buf, now)
	d.log.Debug("sending handshake initiation", "peer", p.short(), "retry", retry)
	// Timers first: the response may arrive before the send returns.
	p.timersAnyAuthenticatedPacketSent()
	p.timersHandshakeInitiated(retry)
	d.stats.initiationsSent.Add(1)
	p.sendHandshake(buf)
}

// sendHandshake sends one handshake message to the peer's endpoint.
func (p *Peer) sendHandshake(msg []byte) {
	ep, ok := p.getEndpoint()
	if !ok {
		p.d.log.Debug("no endpoint for handshake message", "peer", p.short())
		return
	}
	if err := p.d.send([][]byte{msg}, ep); err != nil {
		p.d.log.Debug("sending handshake message", "peer", p.short(), "err", err)
		return
	}
	p.txBytes.Add(uint64(len(msg)))
}

// routineHandshake processes handshake messages one at a time.
func (d *Device) routineHandshake() {
	defer d.wg.Done()
	for {
		select {
		case m := <-d.hsQ:
			d.handleHandshake(m.buf.b[:m.n], m.ep)
			d.putBuf(m.buf)
			d.pending.Add(-1)
		case <-d.done:
			return
		}
	}
}

// underLoad reports whether handshake messages must carry a valid mac2.
func (d *Device) underLoad(now time.Time) bool {
	if d.forceUnderLoad.Load() {
		return true
	}
	if len(d.hsQ) >= cap(d.hsQ)/8 {
		d.markUnderLoad(now)
		return true
	}
	return now.UnixNano() < d.underLoadUntil.Load()
}

// markUnderLoad keeps the device under load until underLoadFor after now
// and, when that starts a spell of load, logs it with the flood counters,
// at most once every underLoadLogEvery.
func (d *Device) markUnderLoad(now time.Time) {
	t := now.UnixNano()
	if d.underLoadUntil.Swap(now.Add(underLoadFor).UnixNano()) > t {
		return // already under load
	}
	last := d.underLoadLogged.Load()
	if last != 0 && t-last < int64(underLoadLogEvery) || !d.underLoadLogged.CompareAndSwap(last, t) {
		return
	}
	st := d.Stats()
	d.log.Info("handshake queue filling up: under load, answering handshakes without a valid cookie with cookie replies",
		"cookies_sent", st.CookiesSent, "cookies_dropped", st.CookiesDropped,
		"rate_limited", st.RateLimited, "handshakes_dropped", st.HandshakeDropped)
}

// handleHandshake processes one initiation or response. Sizes, mac1 and,
// under load, mac2 and the source's rate were checked by the receiver
// (cookiepath.go).
func (d *Device) handleHandshake(msg []byte, ep transport.Endpoint) {
	now := d.clock.Now()
	if now.Sub(d.lastSweep) >= time.Second {
		d.lastSweep = now
		d.limiter.Sweep()
		d.replyLimiter.Sweep()
	}
	id := d.ident.Load()
	if id == nil {
		return
	}
	switch binary.LittleEndian.Uint32(msg[:4]) {
	case noise.MessageInitiationType:
		d.handleInitiation(id, msg, ep, now)
	case noise.MessageResponseType:
		d.handleResponse(msg, ep, now)
	}
}

func (d *Device) handleInitiation(id *identity, msg []byte, ep transport.Endpoint, now time.Time) {
	var m noise.MessageInitiation
	if m.Unmarshal(msg) != nil {
		d.stats.badInbound.Add(1)
		return
	}
	var p *Peer
	lookup := func(pub noise.PublicKey) *noise.Handshake {
		d.peersMu.RLock()
		found := d.peers[pub]
		d.peersMu.RUnlock()
		if found == nil {
			return nil
		}
		found.hsMu.Lock()
		hs := found.hs
		found.hsMu.Unlock()
		if hs != nil {
			p = found
		}
		return hs
	}
	hs, err := noise.ConsumeInitiation(id.id, &m, lookup, now)
	if err != nil {
		d.stats.badHandshake.Add(1)
		d.log.Debug("rejected handshake initiation", "from", ep.Dst, "err", err)
		return
	}
	if p == nil || p.removed.Load() {
		return
	}
	p.hsMu.Lock()
	if p.hs != hs || p.removed.Load() { // removed: shutdown has run or waits for hsMu
		p.hsMu.Unlock()
		return
	}
	idx, ent, err := d.indices.add(p)
	if err != nil {
		p.hsMu.Unlock()
		d.log.Error("handshake response", "peer", p.short(), "err", err)
		return
	}
	resp, err := hs.CreateResponse(now, idx, d.rand)
	if err != nil {
		d.indices.remove(idx, ent)
		p.hsMu.Unlock()
		d.log.Debug("handshake response", "peer", p.short(), "err", err)
		return
	}
	p.dropHandshakeIndexLocked()
	// The response counts as a handshake attempt, as in wireguard-go and
	// the kernel: no initiation of ours for Rekey-Timeout.
	p.lastInitSent = now
	kp, err := hs.BeginSession(now)
	if err != nil {
		d.indices.remove(idx, ent)
		p.hsMu.Unlock()
		d.log.Debug("deriving session", "peer", p.short(), "err", err)
		return
	}
	ent.keypair.Store(kp)
	evicted := p.keypairs.Install(kp)
	p.hsMu.Unlock()
	p.discard(evicted)

	p.setEndpoint(ep)
	p.rxBytes.Add(uint64(len(msg)))
	p.timersAnyAuthenticatedPacketReceived()

	buf := make([]byte, noise.MessageResponseSize)
	resp.MarshalTo(buf)
	p.cookie.AddMACs(buf, now)
	d.log.Debug("answering handshake initiation", "peer", p.short())
	p.timersSessionDerived()
	p.timersAnyAuthenticatedPacketSent()
	p.sendHandshake(buf)
}

func (d *Device) handleResponse(msg []byte, ep transport.Endpoint, now time.Time) {
	var m noise.MessageResponse
	if m.Unmarshal(msg) != nil {
		d.stats.badInbound.Add(1)
		return
	}
	e := d.indices.lookup(m.Receiver)
	if e == nil || e.keypair.Load() != nil {
		d.stats.unknownIndex.Add(1)
		return
	}
	p := e.peer
	p.hsMu.Lock()
	if p.hsEntry != e || p.hs == nil || p.removed.Load() {
		p.hsMu.Unlock()
		return
	}
	if err := p.hs.ConsumeResponse(&m, now); err != nil {
		p.hsMu.Unlock()
		d.stats.badHandshake.Add(1)
		d.log.Debug("rejected handshake response", "peer", p.short(), "err", err)
		return
	}
	kp, err := p.hs.BeginSession(now)
	if err != nil {
		p.hsMu.Unlock()
		d.log.Debug("deriving session", "peer", p.short(), "err", err)
		return
	}
	e.keypair.Store(kp)
	p.hsEntry = nil
	evicted := p.keypairs.Install(kp)
	p.hsMu.Unlock()
	p.discard(evicted)

	d.log.Debug("handshake complete", "peer", p.short())
	p.setEndpoint(ep)
	p.rxBytes.Add(uint64(len(msg)))
	p.timersAnyAuthenticatedPacketReceived()
	p.timersSessionDerived()
	p.timersHandshakeComplete()
	// Confirm the session to the responder: with staged data, or else a
	// keepalive.
	p.sendKeepalive()
}

// discard releases and wipes keypairs that left the rotation.
func (p *Peer) discard(kps []*noise.Keypair) {
	p.releaseKeypairs(kps)
	for _, kp := range kps {
		kp.Zero()
	}
}
