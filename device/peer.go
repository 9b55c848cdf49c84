package device

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gotatun/gotatun/daita"
	"github.com/gotatun/gotatun/noise"
	"github.com/gotatun/gotatun/transport"
)

// Peer is one remote WireGuard peer of a Device, keyed by its public key.
// Its methods are internal; configure peers through Device.Apply and read
// them through Device.State.
//
// Lock order within a peer: stageMu, then hsMu, then timers.mu; queue
// mutexes and the device's random source lock are leaves. Device locks come before peer locks.
type Peer struct {
	d   *Device
	pub noise.PublicKey

	// Handshake state. hsEntry is the index entry of the handshake in
	// flight (nil when none); once a session is derived its index belongs
	// to the keypair.
	hsMu         sync.Mutex
	hs           *noise.Handshake // nil while the device has no private key
	psk          noise.PresharedKey
	hsIndex      uint32
	hsEntry      *indexEntry
	lastInitSent time.Time // last initiation, or response, we sent
	cookie       *noise.CookieGenerator

	keypairs noise.Keypairs

	endpoint  atomic.Pointer[transport.Endpoint]
	keepalive atomic.Int64 // persistent keepalive interval, 0 = off

	rxBytes       atomic.Uint64
	txBytes       atomic.Uint64
	lastHandshake atomic.Int64 // unix nanoseconds, 0 = never

	// Packets waiting for a session, oldest first, at most maxStaged.
	stageMu sync.Mutex
	staged  []elem

	daita atomic.Pointer[daita.Peer] // nil while DAITA is off

	outQ, inQ peerQueue
	timers    peerTimers
	removed   atomic.Bool
}

// maxStaged bounds the packets a peer holds while its handshake is in flight.
const maxStaged = 128

func (p *Peer) short() string {
	s := p.pub.String()
	return s[:8]
}

func (p *Peer) getEndpoint() (transport.Endpoint, bool) {
	ep := p.endpoint.Load()
	if ep == nil {
		return transport.Endpoint{}, false
	}
	return *ep, true
}

// setEndpoint makes ep the peer's address (roaming). It allocates only when
// the address actually changes.
func (p *Peer) setEndpoint(ep transport.Endpoint) {
	if old := p.endpoint.Load(); old != nil && *old == ep {
		return
	}
	e := ep
	p.endpoint.Store(&e)
}

// clearEndpointSrc forgets the sticky source address, so the next send
// lets the system pick one again.
func (p *Peer) clearEndpointSrc() {
	old := p.endpoint.Load()
	if old == nil || (!old.Src.IsValid() && old.IfIndex == 0) {
		return
	}
	p.endpoint.CompareAndSwap(old, &transport.Endpoint{Dst: old.Dst})
}

// stage appends packets for sending; it must be called with stageMu held.
// When the queue is full the oldest packet is dropped.
func (p *Peer) stageLocked(e elem) {
	if len(p.staged) >= maxStaged {
		p.d.putBuf(p.staged[0].buf)
		daitaDropped(&p.staged[0])
		n := copy(p.staged, p.staged[1:])
		p.staged[n] = elem{}
		p.staged = p.staged[:n]
		p.d.stats.stagedDropped.Add(1)
	}
	if p.staged == nil {
		p.staged = make([]elem, 0, 8)
	}
	p.staged = append(p.staged, e)
}

// dropStaged discards every staged packet.
func (p *Peer) dropStaged() {
	p.stageMu.Lock()
	for i := range p.staged {
		p.d.putBuf(p.staged[i].buf)
		daitaDropped(&p.staged[i])
		p.staged[i] = elem{}
	}
	p.staged = nil
	p.stageMu.Unlock()
}

func (p *Peer) stagedLen() int {
	p.stageMu.Lock()
	defer p.stageMu.Unlock()
	return len(p.staged)
}

// usable reports whether kp may still encrypt at now.
func usable(kp *noise.Keypair, now time.Time) bool {
	return kp != nil && now.Sub(kp.Created) < noise.RejectAfterTime
}

// sendStaged encrypts and sends the staged packets on the current keypair,
// or starts a handshake when there is none fit to use. fromWorker is set
// when called by a crypto worker, which must never block on the work queue.
func (p *Peer) sendStaged(fromWorker bool) {
	d := p.d
	var (
		kp            *noise.Keypair
		now           time.Time
		needHandshake bool
		first, last   *batch
	)
	p.stageMu.Lock()
	for len(p.staged) > 0 {
		now = d.clock.Now()
		kp = p.keypairs.Current()
		if !usable(kp, now) {
			kp = nil
			needHandshake = true
			break
		}
		b := d.getBatch()
		b.peer, b.kp, b.out = p, kp, true
		take := 0
		for _, e := range p.staged {
			if len(b.elems) == cap(b.elems) {
				break
			}
			c, ok := kp.NextCounter()
			if !ok {
				needHandshake = true
				break
			}
			e.counter = c
			b.elems = append(b.elems, e)
			take++
		}
		n := copy(p.staged, p.staged[take:])
		clear(p.staged[n:])
		p.staged = p.staged[:n]
		if len(b.elems) == 0 {
			d.putBatch(b)
			break
		}
		// The peer's queue order is fixed here, under stageMu, so it
		// matches the counter order; the work queue may reorder freely.
		d.pending.Add(1)
		p.outQ.push(b)
		if first == nil {
			first = b
		} else {
			last.link = b
		}
		last = b
		if needHandshake {
			break
		}
	}
	p.stageMu.Unlock()

	for b := first; b != nil; {
		next := b.link
		b.link = nil
		d.dispatch(b, fromWorker)
		b = next
	}
	if needHandshake {
		p.initiate(false)
		return
	}
	// Rekey-After-Messages applies to both roles, Rekey-After-Time to the
	// initiator only.
	if kp != nil && (kp.SendCounter() >= noise.RekeyAfterMessages ||
		kp.IsInitiator && now.Sub(kp.Created) >= noise.RekeyAfterTime) {
		p.initiate(false)
	}
}

// sendKeepalive sends an empty packet unless packets are already waiting.
func (p *Peer) sendKeepalive() {
	p.sendKeepaliveFrom(false)
}

func (p *Peer) sendKeepaliveFrom(fromWorker bool) {
	p.stageMu.Lock()
	if len(p.staged) == 0 {
		p.stageLocked(elem{buf: p.d.getBuf()})
	}
	p.stageMu.Unlock()
	p.sendStaged(fromWorker)
}

// releaseKeypairs forgets the index entries of keypairs that left the
// peer's rotation.
func (p *Peer) releaseKeypairs(kps []*noise.Keypair) {
	for _, kp := range kps {
		if kp == nil {
			continue
		}
		if e := p.d.indices.lookup(kp.LocalIndex); e != nil && e.keypair.Load() == kp {
			p.d.indices.remove(kp.LocalIndex, e)
		}
	}
}

// zeroKeys erases every session key and the handshake state. It holds
// hsMu while it takes them, so no handshake installs a keypair or an index
// in between.
func (p *Peer) zeroKeys() {
	p.hsMu.Lock()
	kps := p.keypairs.Clear()
	p.dropHandshakeIndexLocked()
	if p.hs != nil {
		p.hs.Clear()
	}
	p.hsMu.Unlock()
	p.discard(kps)
}

// dropHandshakeIndexLocked releases the index of the handshake in flight.
func (p *Peer) dropHandshakeIndexLocked() {
	if p.hsEntry != nil {
		p.d.indices.remove(p.hsIndex, p.hsEntry)
		p.hsEntry = nil
	}
}

// shutdown stops the peer for good: timers, keys, staged packets.
// Handshake code checks removed under hsMu, after zeroKeys here, so a
// removed peer keeps no index entry and no live key.
func (p *Peer) shutdown() {
	p.removed.Store(true)
	p.stopTimers()
	p.wipeSecrets()
	p.dropStaged()
}

func (p *Peer) state() PeerState {
	s := PeerState{
		PublicKey:           p.pub,
		PersistentKeepalive: time.Duration(p.keepalive.Load()),
		AllowedIPs:          p.d.allowed.Prefixes(p),
		RxBytes:             p.rxBytes.Load(),
		TxBytes:             p.txBytes.Load(),
		ProtocolVersion:     1,
	}
	p.hsMu.Lock()
	s.PresharedKey = p.psk
	p.hsMu.Unlock()
	if ep, ok := p.getEndpoint(); ok {
		s.Endpoint = ep.Dst
	}
	if ns := p.lastHandshake.Load(); ns != 0 {
		s.LastHandshake = time.Unix(0, ns)
	}
	if s.AllowedIPs == nil {
		s.AllowedIPs = []netip.Prefix{}
	}
	p.daitaState(&s)
	return s
}
