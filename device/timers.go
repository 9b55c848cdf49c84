package device

import (
	"sync"
	"time"

	"github.com/gotatun/gotatun/noise"
)

// The protocol's timers (WireGuard whitepaper §6) are deadlines kept per
// peer. One Clock timer per peer, created on first use, is armed for the
// earliest of them; when it fires the due deadlines run and the timer is
// re-armed for the next. An idle peer therefore costs no goroutine and, until
// it first talks, no timer.

type timerKind int

const (
	// timerRetransmit resends a handshake initiation that got no answer
	// (Rekey-Timeout plus jitter), and gives up after Rekey-Attempt-Time.
	timerRetransmit timerKind = iota
	// timerSendKeepalive sends a keepalive Keepalive-Timeout after data
	// arrived if nothing was sent in between (passive keepalive).
	timerSendKeepalive
	// timerNewHandshake starts a handshake when data was sent and nothing
	// came back for Keepalive-Timeout + Rekey-Timeout.
	timerNewHandshake
	// timerZeroKeys erases all session keys 3 × Reject-After-Time after the
	// last session was derived.
	timerZeroKeys
	// timerPersistent sends a keepalive when nothing was sent for the
	// persistent keepalive interval.
	timerPersistent
	numTimers
)

// maxJitter is the largest random delay added to handshake timers.
const maxJitter = 333 * time.Millisecond

// lastMinuteRekey is the keypair age after which receiving on a keypair we
// initiated triggers a new handshake, so that it completes before the
// keypair is rejected.
const lastMinuteRekey = noise.RejectAfterTime - noise.KeepaliveTimeout - noise.RekeyTimeout

type peerTimers struct {
	mu    sync.Mutex
	t     Timer     // nil until first armed
	armed time.Time // deadline t is armed for; zero if not armed
	due   [numTimers]time.Time
	// firstAttempt is when the current run of handshake attempts started;
	// zero when no handshake is being retried.
	firstAttempt            time.Time
	needAnotherKeepalive    bool
	sentLastMinuteHandshake bool
	stopped                 bool
}

// rearmLocked makes sure the peer's clock timer fires no later than its
// earliest deadline.
func (p *Peer) rearmLocked(now time.Time) {
	t := &p.timers
	if t.stopped {
		return
	}
	var next time.Time
	for _, d := range t.due {
		if !d.IsZero() && (next.IsZero() || d.Before(next)) {
			next = d
		}
	}
	// Lazily: a clock timer armed no later than needed stays armed, and
	// when it fires early onTimer finds nothing due and re-arms. Data
	// packets move deadlines all the time, mostly later or away; re-arming
	// the runtime timer for each would wake the runtime's poller each time.
	if next.IsZero() || (!t.armed.IsZero() && !next.Before(t.armed)) {
		return
	}
	t.armed = next
	d := next.Sub(now)
	if t.t == nil {
		t.t = p.d.clock.AfterFunc(d, p.onTimer)
	} else {
		t.t.Reset(d)
	}
}

// onTimer runs the deadlines that are due.
func (p *Peer) onTimer() {
	if !p.d.enterCallback() {
		return
	}
	defer p.d.exitCallback()
	now := p.d.clock.Now()
	var fire [numTimers]bool
	var giveUp, another bool
	t := &p.timers
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return
	}
	for k, d := range t.due {
		if !d.IsZero() && !d.After(now) {
			fire[k] = true
			t.due[k] = time.Time{}
		}
	}
	if fire[timerRetransmit] {
		if t.firstAttempt.IsZero() {
			t.firstAttempt = now
		}
		if now.Sub(t.firstAttempt) >= noise.RekeyAttemptTime {
			giveUp = true
			t.firstAttempt = time.Time{}
			// No passive keepalive either, as in wireguard-go.
			t.due[timerSendKeepalive] = time.Time{}
			fire[timerSendKeepalive] = false
			if t.due[timerZeroKeys].IsZero() {
				t.due[timerZeroKeys] = now.Add(3 * noise.RejectAfterTime)
			}
		}
	}
	if fire[timerSendKeepalive] && t.needAnotherKeepalive {
		t.needAnotherKeepalive = false
		another = true
	}
	t.armed = time.Time{} // the clock timer has fired
	p.rearmLocked(now)
	t.mu.Unlock()

	if fire[timerRetransmit] {
		if giveUp {
			p.d.log.Debug("handshake did not complete, giving up", "peer", p.short())
			p.dropStaged()
		} else {
			p.clearEndpointSrc()
			p.initiate(true)
		}
	}
	if fire[timerNewHandshake] {
		p.d.log.Debug("no reply to sent data, starting handshake", "peer", p.short())
		p.clearEndpointSrc()
		p.initiate(false)
	}
	if fire[timerSendKeepalive] {
		p.sendKeepalive()
		if another {
			p.timerEvent(func(now time.Time) {
				if p.timers.due[timerSendKeepalive].IsZero() {
					p.timers.due[timerSendKeepalive] = now.Add(noise.KeepaliveTimeout)
				}
			})
		}
	}
	if fire[timerPersistent] && p.keepalive.Load() > 0 {
		p.sendKeepalive()
	}
	if fire[timerZeroKeys] {
		p.d.log.Debug("erasing session keys", "peer", p.short())
		p.zeroKeys()
		p.dropStaged()
	}
}

// timerEvent runs fn on the peer's deadlines under their lock and re-arms.
func (p *Peer) timerEvent(fn func(now time.Time)) {
	now := p.d.clock.Now()
	p.timers.mu.Lock()
	if !p.timers.stopped {
		fn(now)
		p.rearmLocked(now)
	}
	p.timers.mu.Unlock()
}

func (p *Peer) stopTimers() {
	p.timers.mu.Lock()
	p.timers.stopped = true
	p.timers.due = [numTimers]time.Time{}
	p.timers.armed = time.Time{}
	if p.timers.t != nil {
		p.timers.t.Stop()
	}
	p.timers.mu.Unlock()
}

// jitter returns a random delay in [0, maxJitter]. It draws from a
// generator seeded from the device's random source, not the source itself:
// data packets ask for jitter, and crypto/rand would cost a system call.
func (d *Device) jitter() time.Duration {
	d.jitterMu.Lock()
	n := d.jitterRand.Uint64N(uint64(maxJitter/time.Millisecond) + 1)
	d.jitterMu.Unlock()
	return time.Duration(n) * time.Millisecond
}

// The events below are the whitepaper's timer hooks, called by the data
// and handshake paths.

// timersHandshakeInitiated: an initiation was sent; retransmit it unless
// answered in Rekey-Timeout plus jitter.
func (p *Peer) timersHandshakeInitiated(retry bool) {
	j := p.d.jitter()
	p.timerEvent(func(now time.Time) {
		if !retry || p.timers.firstAttempt.IsZero() {
			p.timers.firstAttempt = now
		}
		p.timers.due[timerRetransmit] = now.Add(noise.RekeyTimeout + j)
	})
}

// timersHandshakeComplete: a handshake finished (we received its response,
// or the first data on a session we responded to).
func (p *Peer) timersHandshakeComplete() {
	p.timerEvent(func(now time.Time) {
		p.timers.due[timerRetransmit] = time.Time{}
		p.timers.firstAttempt = time.Time{}
		p.timers.sentLastMinuteHandshake = false
		p.lastHandshake.Store(now.UnixNano())
	})
}

// timersSessionDerived: new keys exist; erase them if no further session
// is derived within 3 × Reject-After-Time.
func (p *Peer) timersSessionDerived() {
	p.timerEvent(func(now time.Time) {
		p.timers.due[timerZeroKeys] = now.Add(3 * noise.RejectAfterTime)
	})
}

// timersDataSent: a data packet (not a keepalive) was sent; expect an
// answer within Keepalive-Timeout + Rekey-Timeout or start a handshake.
func (p *Peer) timersDataSent() {
	p.timerEvent(func(now time.Time) {
		if p.timers.due[timerNewHandshake].IsZero() {
			p.timers.due[timerNewHandshake] = now.Add(noise.KeepaliveTimeout + noise.RekeyTimeout + p.d.jitter())
		}
	})
}

// timersDataReceived: a data packet (not a keepalive) arrived; answer with
// a keepalive unless something is sent within Keepalive-Timeout.
func (p *Peer) timersDataReceived() {
	p.timerEvent(func(now time.Time) {
		if p.timers.due[timerSendKeepalive].IsZero() {
			p.timers.due[timerSendKeepalive] = now.Add(noise.KeepaliveTimeout)
		} else {
			p.timers.needAnotherKeepalive = true
		}
	})
}

// timersAnyAuthenticatedPacketSent: anything authenticated (handshake
// message, data or keepalive) was sent.
func (p *Peer) timersAnyAuthenticatedPacketSent() {
	p.timerEvent(func(now time.Time) {
		p.timers.due[timerSendKeepalive] = time.Time{}
		p.timers.needAnotherKeepalive = false
		if ka := time.Duration(p.keepalive.Load()); ka > 0 {
			p.timers.due[timerPersistent] = now.Add(ka)
		}
	})
}

// timersAnyAuthenticatedPacketReceived: anything authenticated arrived.
// Like sending, it postpones the persistent keepalive (wireguard-go's
// timersAnyAuthenticatedPacketTraversal).
func (p *Peer) timersAnyAuthenticatedPacketReceived() {
	p.timerEvent(func(now time.Time) {
		p.timers.due[timerNewHandshake] = time.Time{}
		if ka := time.Duration(p.keepalive.Load()); ka > 0 {
			p.timers.due[timerPersistent] = now.Add(ka)
		}
	})
}

// timersPersistentKeepaliveChanged re-arms the persistent keepalive after
// its interval changed.
func (p *Peer) timersPersistentKeepaliveChanged(ka time.Duration) {
	p.timerEvent(func(now time.Time) {
		if ka > 0 {
			p.timers.due[timerPersistent] = now.Add(ka)
		} else {
			p.timers.due[timerPersistent] = time.Time{}
		}
	})
}

// lastMinuteHandshake reports whether receiving on kp should start a
// handshake now (the responder-side rekey rule), and marks it started.
func (p *Peer) lastMinuteHandshake(kp *noise.Keypair, now time.Time) bool {
	if kp == nil || !kp.IsInitiator || now.Sub(kp.Created) <= lastMinuteRekey {
		return false
	}
	p.timers.mu.Lock()
	defer p.timers.mu.Unlock()
	if p.timers.sentLastMinuteHandshake {
		return false
	}
	p.timers.sentLastMinuteHandshake = true
	return true
}
