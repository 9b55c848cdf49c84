package daita

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gotatun/gotatun/maybenot"
)

// Packet is one encrypted data message on its way to the peer.
type Packet struct {
	// Msg is the whole transport message, ready for the socket.
	Msg []byte
	// Ref is the owner's handle on Msg's memory, given back through
	// Tunnel.Send or Tunnel.Release.
	Ref any
	// Normal is set for a normal packet this Peer counted in NormalSent
	// (not a decoy).
	Normal bool
}

// Tunnel is what a DAITA peer needs of the device. Its methods are called
// with the Peer's lock held and must not call back into the Peer.
type Tunnel interface {
	// MTU returns the TUN MTU now: the size of decoys and padded packets.
	MTU() int
	// SealDecoy builds a decoy of size bytes and encrypts it with the
	// current session. It reports false, having sent and kept nothing, when
	// there is no usable session or no endpoint.
	SealDecoy(size int) (Packet, bool)
	// Send sends pkts, in order, to the peer's current endpoint, counting
	// them as data for the WireGuard timers, and gives their memory back.
	// Without an endpoint they are dropped. Unlike the other methods it is
	// also called without the Peer's lock (for decoys, which need no
	// order), possibly concurrently with a call under the lock.
	Send(pkts []Packet)
	// Release gives a packet's memory back without sending it.
	Release(Packet)
}

// DecoyMarker is the first byte of a decoy's plaintext: as an IP version
// nibble (15) it can never be taken for an IP packet.
const DecoyMarker = 0xFF

// DecoyHeaderLen is the size of a decoy's header: marker, reserved byte,
// big-endian total length.
const DecoyHeaderLen = 4

// FillDecoy writes a decoy into b: the header with len(b) as its length
// and zeros after it.
func FillDecoy(b []byte) {
	clear(b)
	b[0] = DecoyMarker
	binary.BigEndian.PutUint16(b[2:4], uint16(len(b)))
}

// IsDecoy reports whether a decrypted, non-empty payload is a decoy: at
// least DecoyHeaderLen bytes starting with DecoyMarker. malformed is set
// when its length field is larger than the payload.
func IsDecoy(payload []byte) (decoy, malformed bool) {
	if len(payload) < DecoyHeaderLen || payload[0] != DecoyMarker {
		return false, false
	}
	return true, int(binary.BigEndian.Uint16(payload[2:4])) > len(payload)
}

// Peer is the DAITA state of one WireGuard peer: its framework, its
// timers, its delay queue and its counters. The device calls its methods
// from the data path; timers call it from the scheduler. A closed Peer
// ignores every call.
type Peer struct {
	s   *Scheduler
	t   Tunnel
	cfg Config

	mu     sync.Mutex
	fw     *maybenot.Framework
	timers []timer // action timers [0,n), internal timers [n,2n), delay end [2n]
	n      int
	closed bool

	inflight int // normal packets counted by NormalSent and not yet sent or dropped

	delaying bool
	bypass   bool
	queue    []Packet // the delay queue, oldest first from qhead
	qhead    int
	qnormal  int // normal packets in the queue

	pending  []maybenot.TriggerEvent // events raised by actions, one call each
	draining bool
	batch    *[]maybenot.TriggerEvent // events of the batch in hand, one call for all
	one      [1]Packet
	ev       [1]maybenot.TriggerEvent

	// Decoys a timer sealed are sent after the lock is released, so the
	// data path does not wait for their socket send: out collects them
	// under mu; sendMu (taken after mu) guards sending, the slice in the
	// socket's hands.
	out     []Packet
	sendMu  sync.Mutex
	sending []Packet

	txPadding, rxPadding, txDecoy, rxDecoy atomic.Uint64
	rxMalformed, decoysDropped, delayed    atomic.Uint64
}

// NewPeer starts DAITA with cfg (validated here) for the peer reached
// through t.
func (s *Scheduler) NewPeer(cfg Config, t Tunnel) (*Peer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ms, err := cfg.machines()
	if err != nil {
		return nil, err
	}
	now := s.clock.Now()
	fw, err := maybenot.NewFramework(ms, cfg.MaxDecoyFrac, cfg.MaxDelayFrac, now, s.newRand())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	p := &Peer{s: s, t: t, cfg: cfg.Clone(), fw: fw, n: len(ms)}
	p.timers = make([]timer, 2*p.n+1)
	for i := range p.timers {
		tm := &p.timers[i]
		tm.peer, tm.index = p, -1
		switch {
		case i < p.n:
			tm.kind, tm.machine = timerAction, maybenot.MachineID(i)
		case i < 2*p.n:
			tm.kind, tm.machine = timerInternal, maybenot.MachineID(i-p.n)
		default:
			tm.kind = timerDelayEnd
		}
	}
	p.pending = make([]maybenot.TriggerEvent, 0, 4)
	s.mu.Lock()
	s.nactive++
	s.mu.Unlock()
	return p, nil
}

// Config returns the peer's settings.
func (p *Peer) Config() Config { return p.cfg.Clone() }

// Stats returns the peer's counters.
func (p *Peer) Stats() Stats {
	return Stats{
		TxPaddingBytes:    p.txPadding.Load(),
		RxPaddingBytes:    p.rxPadding.Load(),
		TxDecoyBytes:      p.txDecoy.Load(),
		RxDecoyBytes:      p.rxDecoy.Load(),
		RxMalformedDecoys: p.rxMalformed.Load(),
		TxDecoysDropped:   p.decoysDropped.Load(),
		Delayed:           p.delayed.Load(),
	}
}

// Close stops the peer's timers and sends what its delay queue holds
// (flushed, not lost). Later calls do nothing.
func (p *Peer) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.sendMu.Lock() // a decoy send in progress ends first
	defer p.sendMu.Unlock()
	p.closed = true // the framework hears no more
	p.flushLocked()
	for i := range p.timers {
		p.s.disarm(&p.timers[i])
	}
	p.delaying = false
	p.queue = nil
	p.s.mu.Lock()
	p.s.nactive--
	p.s.mu.Unlock()
}

// InFlight returns the number of normal packets reported by NormalSent
// and neither sent nor dropped yet.
func (p *Peer) InFlight() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inflight
}

// Unqueued returns the normal packets in flight that are not in the delay
// queue: routed, but not yet offered to Outbound (or dropped).
func (p *Peer) Unqueued() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inflight - p.qnormal
}

// Delaying reports whether a delay is active and how many messages the
// queue holds.
func (p *Peer) Delaying() (bool, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.delaying, len(p.queue) - p.qhead
}

// NormalSent reports n packets from the TUN routed to the peer, which has
// an endpoint: it fires NormalSent for each, in one framework call, and
// counts them in flight. padding is the number of zeros the device
// appended to them.
func (p *Peer) NormalSent(n, padding int) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.inflight += n
	if padding > 0 {
		p.txPadding.Add(uint64(padding))
	}
	for range n {
		p.add(maybenot.TriggerEvent{Kind: maybenot.EventNormalSent})
	}
	p.flushEvents()
	p.mu.Unlock()
}

// NormalDropped reports n normal packets counted by NormalSent that will
// never be sent (dropped from the handshake queue, no endpoint, failed
// encryption).
func (p *Peer) NormalDropped(n int) {
	p.mu.Lock()
	if !p.closed {
		p.NormalDroppedLocked(n)
	}
	p.mu.Unlock()
}

// NormalDroppedLocked is NormalDropped between Begin and End.
func (p *Peer) NormalDroppedLocked(n int) {
	p.inflight = max(0, p.inflight-n)
}

// Begin starts reporting one batch of the data path: it takes the Peer's
// lock, which End releases after handing the batch's events to the
// framework in one call, as GotaTun does. It reports false, holding no
// lock, once the Peer is closed. Between them only the Locked methods may
// be called.
func (p *Peer) Begin() bool {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return false
	}
	return true
}

// End ends what Begin started.
func (p *Peer) End() {
	p.flushEvents()
	p.mu.Unlock()
}

// OutboundLocked offers an encrypted data message (not a keepalive) about
// to be sent. While a delay is active and the queue has room, the queue
// takes it and OutboundLocked returns true: the caller must then neither
// send nor release it. Otherwise the caller sends it now: TunnelSent is
// fired for it and, for a normal packet this Peer counted, it leaves the
// in-flight count.
func (p *Peer) OutboundLocked(pkt Packet) bool {
	if !p.delaying || p.queued() >= p.cfg.MaxDelayedPackets {
		if pkt.Normal && p.inflight > 0 {
			p.inflight--
		}
		p.add(maybenot.TriggerEvent{Kind: maybenot.EventTunnelSent})
		return false
	}
	p.push(pkt)
	p.delayed.Add(1)
	if p.cfg.MaxDelayedPackets-p.queued() < p.cfg.MinDelayCapacity {
		p.s.disarm(&p.timers[2*p.n])
		p.endDelayLocked()
	}
	return true
}

// ReceivedDecoyLocked reports an authenticated decoy of payloadLen
// bytes: TunnelRecv and PaddingRecv, and the counters.
func (p *Peer) ReceivedDecoyLocked(payloadLen int, malformed bool) {
	p.rxDecoy.Add(uint64(payloadLen))
	if malformed {
		p.rxMalformed.Add(1)
	}
	p.add(maybenot.TriggerEvent{Kind: maybenot.EventTunnelRecv})
	p.add(maybenot.TriggerEvent{Kind: maybenot.EventPaddingRecv})
}

// ReceivedLocked reports an authenticated, non-empty data message that
// is not a decoy: TunnelRecv and, if it is an IP packet, NormalRecv.
// padding is what the payload carries beyond its IP length rounded up to
// 16.
func (p *Peer) ReceivedLocked(ip bool, padding int) {
	if padding > 0 {
		p.rxPadding.Add(uint64(padding))
	}
	p.add(maybenot.TriggerEvent{Kind: maybenot.EventTunnelRecv})
	if ip {
		p.add(maybenot.TriggerEvent{Kind: maybenot.EventNormalRecv})
	}
}

// add puts ev into the batch in hand.
func (p *Peer) add(ev maybenot.TriggerEvent) {
	if p.n == 0 {
		return // no machine to tell
	}
	if p.batch == nil {
		p.batch = p.s.getEvents()
	}
	*p.batch = append(*p.batch, ev)
}

// flushEvents hands the batch in hand to the framework in one call.
func (p *Peer) flushEvents() {
	if p.batch == nil {
		return
	}
	b := p.batch
	p.batch = nil
	now := p.s.clock.Now()
	if obs := p.s.opts.Observe; obs != nil {
		for _, ev := range *b {
			obs(Trace{Peer: p, Time: now, Event: ev})
		}
	}
	acts := p.fw.TriggerEvents(*b, now)
	p.s.putEvents(b)
	p.applyAll(acts, now)
}

// trigger hands ev to the framework, one event per call as the reference
// simulator does, and carries out the actions; events those actions raise
// (TimerBegin) follow in order.
func (p *Peer) trigger(ev maybenot.TriggerEvent) {
	if p.n == 0 {
		return // no machine to tell
	}
	p.flushEvents() // what came before goes first
	p.pending = append(p.pending, ev)
	p.drainPending(p.s.clock.Now())
}

// applyAll carries out the actions of one framework call, then the events
// they raised.
func (p *Peer) applyAll(acts []maybenot.TriggerAction, now time.Time) {
	for _, a := range acts {
		if obs := p.s.opts.Observe; obs != nil {
			a := a
			obs(Trace{Peer: p, Time: now, Action: &a})
		}
		p.apply(a, now)
	}
	p.drainPending(now)
}

// drainPending hands the raised events to the framework one call each.
func (p *Peer) drainPending(now time.Time) {
	if p.draining {
		return
	}
	p.draining = true
	for len(p.pending) > 0 {
		p.ev[0] = p.pending[0]
		n := copy(p.pending, p.pending[1:])
		p.pending = p.pending[:n]
		if obs := p.s.opts.Observe; obs != nil {
			obs(Trace{Peer: p, Time: now, Event: p.ev[0]})
		}
		for _, a := range p.fw.TriggerEvents(p.ev[:], now) {
			if obs := p.s.opts.Observe; obs != nil {
				a := a
				obs(Trace{Peer: p, Time: now, Action: &a})
			}
			p.apply(a, now)
		}
	}
	p.draining = false
}

func (p *Peer) apply(a maybenot.TriggerAction, now time.Time) {
	m := int(a.Machine)
	if m < 0 || m >= p.n {
		return
	}
	switch a.Kind {
	case maybenot.ActionCancel:
		if a.Timer == maybenot.TimerAction || a.Timer == maybenot.TimerAll {
			p.s.disarm(&p.timers[m])
		}
		if a.Timer == maybenot.TimerInternal || a.Timer == maybenot.TimerAll {
			p.s.disarm(&p.timers[p.n+m])
		}
	case maybenot.ActionSendPadding, maybenot.ActionBlockOutgoing:
		t := &p.timers[m]
		t.act = a
		p.s.arm(t, now.Add(a.Timeout))
	case maybenot.ActionUpdateTimer:
		t := &p.timers[p.n+m]
		until := now.Add(a.Duration)
		if t.armed() && !a.Replace && !t.when.Before(until) {
			return // the current, later expiry stays
		}
		p.s.arm(t, until)
		p.pending = append(p.pending, maybenot.TriggerEvent{Kind: maybenot.EventTimerBegin, Machine: a.Machine})
	}
}

// expire handles a timer the scheduler found due; seq is the timer's
// sequence number then, so a timer re-armed or stopped since is skipped.
func (p *Peer) expire(t *timer, seq uint64) {
	p.mu.Lock()
	p.expireLocked(t, seq)
	var out []Packet
	if len(p.out) > 0 {
		p.sendMu.Lock()
		p.out, p.sending = p.sending[:0], p.out
		out = p.sending
	}
	p.mu.Unlock()
	if out != nil {
		p.t.Send(out)
		clear(out)
		p.sendMu.Unlock()
	}
}

// expireLocked is expire with the lock held; the decoys it seals wait in
// p.out.
func (p *Peer) expireLocked(t *timer, seq uint64) {
	if p.closed || t.seq != seq || t.armed() {
		return
	}
	switch t.kind {
	case timerInternal:
		p.trigger(maybenot.TriggerEvent{Kind: maybenot.EventTimerEnd, Machine: t.machine})
	case timerDelayEnd:
		p.endDelayLocked()
	case timerAction:
		a := t.act
		if a.Kind == maybenot.ActionSendPadding {
			p.trigger(maybenot.TriggerEvent{Kind: maybenot.EventPaddingSent, Machine: a.Machine})
			p.decoy(a)
		} else {
			p.trigger(maybenot.TriggerEvent{Kind: maybenot.EventBlockingBegin, Machine: a.Machine})
			p.delay(a)
		}
	}
}

// decoy carries out a SendPadding action whose timer fired. Only a
// normal packet takes the place of a "replace" decoy (Maybenot: "an
// existing non-padding packet"): one on its way to the delay queue, or the
// one at the queue's head, as the reference simulator has it; a decoy
// waiting in the queue does not.
func (p *Peer) decoy(a maybenot.TriggerAction) {
	switch {
	case !p.delaying:
		if a.Replace && p.inflight > 0 {
			return // a normal packet goes instead
		}
		p.sendDecoy()
	case p.bypass && a.Bypass && a.Replace:
		if p.headNormal() {
			pkt := p.pop()
			p.sendNow(pkt)
			return
		}
		p.sendDecoy()
	case p.bypass && a.Bypass:
		p.sendDecoy()
	case a.Replace && (p.inflight > p.qnormal || p.headNormal()):
		// replaced by what waits
	default:
		if p.queued() >= p.cfg.MaxDelayedPackets {
			p.decoysDropped.Add(1)
			return
		}
		mtu := p.t.MTU()
		pkt, ok := p.t.SealDecoy(mtu)
		if !ok {
			return
		}
		p.txDecoy.Add(uint64(mtu))
		p.push(pkt)
		p.delayed.Add(1)
		if p.cfg.MaxDelayedPackets-p.queued() < p.cfg.MinDelayCapacity {
			p.s.disarm(&p.timers[2*p.n])
			p.endDelayLocked()
		}
	}
}

// sendDecoy seals a decoy and fires TunnelSent for it; expire sends it
// once the lock is released. Without a session or an endpoint it is
// silently dropped.
func (p *Peer) sendDecoy() {
	mtu := p.t.MTU()
	pkt, ok := p.t.SealDecoy(mtu)
	if !ok {
		return
	}
	p.txDecoy.Add(uint64(mtu))
	p.trigger(maybenot.TriggerEvent{Kind: maybenot.EventTunnelSent})
	p.out = append(p.out, pkt)
}

// sendNow sends one message past the delay queue.
func (p *Peer) sendNow(pkt Packet) {
	if pkt.Normal && p.inflight > 0 {
		p.inflight--
	}
	p.trigger(maybenot.TriggerEvent{Kind: maybenot.EventTunnelSent})
	p.one[0] = pkt
	p.t.Send(p.one[:])
	p.one[0] = Packet{}
}

// delay carries out a BlockOutgoing action whose timer fired.
func (p *Peer) delay(a maybenot.TriggerAction) {
	end := &p.timers[2*p.n]
	until := p.s.clock.Now().Add(a.Duration)
	if p.delaying && !a.Replace && end.armed() && !end.when.Before(until) {
		return // the current, later end stays
	}
	p.delaying = true
	p.bypass = a.Bypass
	p.s.arm(end, until)
}

// endDelayLocked ends the delay: the queue is sent, then BlockingEnd.
func (p *Peer) endDelayLocked() {
	if !p.delaying {
		return
	}
	p.flushLocked()
	p.delaying = false
	p.trigger(maybenot.TriggerEvent{Kind: maybenot.EventBlockingEnd})
}

// flushLocked sends everything in the delay queue, in order, one
// TunnelSent per message.
func (p *Peer) flushLocked() {
	q := p.queue[p.qhead:]
	if len(q) == 0 {
		return
	}
	for _, pkt := range q {
		if pkt.Normal && p.inflight > 0 {
			p.inflight--
		}
		if !p.closed {
			p.add(maybenot.TriggerEvent{Kind: maybenot.EventTunnelSent})
		}
	}
	p.flushEvents()
	p.t.Send(q)
	clear(p.queue)
	p.qhead, p.qnormal = 0, 0
	if cap(p.queue) > 64 {
		p.queue = nil // a long queue's memory goes with its packets
	} else {
		p.queue = p.queue[:0]
	}
}

func (p *Peer) queued() int { return len(p.queue) - p.qhead }

// headNormal reports whether the delay queue's next packet is a normal
// one.
func (p *Peer) headNormal() bool { return p.queued() > 0 && p.queue[p.qhead].Normal }

func (p *Peer) push(pkt Packet) {
	if p.qhead > 0 && len(p.queue) == cap(p.queue) {
		n := copy(p.queue, p.queue[p.qhead:])
		clear(p.queue[n:])
		p.queue = p.queue[:n]
		p.qhead = 0
	}
	p.queue = append(p.queue, pkt)
	if pkt.Normal {
		p.qnormal++
	}
}

func (p *Peer) pop() Packet {
	pkt := p.queue[p.qhead]
	p.queue[p.qhead] = Packet{}
	if pkt.Normal {
		p.qnormal--
	}
	p.qhead++
	if p.qhead == len(p.queue) {
		p.queue = p.queue[:0]
		p.qhead = 0
	}
	return pkt
}
