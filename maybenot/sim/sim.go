// Package sim is a discrete-event simulator for Maybenot machines: it
// replays a recorded, undefended packet trace between a client and a
// server, runs a framework instance with its own machines on each side, and
// produces the defended trace.
//
// It follows the behaviour of the reference simulator (maybenot-simulator):
// a fixed one-way network delay, blocking of outgoing packets with its
// knock-on "aggregate delay" on later trace packets, padding with the
// bypass and replace flags, action and internal timers per machine, and the
// same event ordering, so its output matches the reference's for the same
// machines and trace.
//
// Config.FixedTraceTimes selects a second model, of a live tunnel into which
// the trace is played at its recorded times (see there): blocking holds
// packets but shifts nothing, as in a device replaying a trace.
//
// Usage:
//
//	packets, err := sim.ParseTrace(r)
//	events, err := sim.Run(clientMachines, serverMachines, packets, sim.Config{Delay: 5 * time.Millisecond})
//	sim.WriteDefendedTrace(w, events, 0)
package sim

import (
	"errors"
	"math"
	"slices"
	"time"

	"github.com/gotatun/gotatun/maybenot"
)

// Event is one event processed by the simulator.
type Event struct {
	// Time is the time of the event on the trace's clock: the trace's first
	// packet is at 0; server-side events may be negative.
	Time time.Duration
	// Kind is the event; Machine names the machine for PaddingSent,
	// BlockingBegin, TimerBegin and TimerEnd.
	Kind    maybenot.Event
	Machine maybenot.MachineID
	// Client is true for events at the client, false for the server.
	Client bool
	// Padding is true for padding packets (PaddingSent, and TunnelSent,
	// TunnelRecv, PaddingRecv of padding).
	Padding bool
	// Size is the packet size in bytes: the trace's size for normal packets
	// (0 if the trace has none), Config.PaddingSize for padding.
	Size int
	// Action, in a run with Config.RecordActions, marks an entry that is
	// not an event but an action the side's framework returned (Kind and
	// Padding are then unset); it follows the events of the call that
	// returned it.
	Action *maybenot.TriggerAction

	bypass, replace bool
	// pass marks a TunnelSent that a full blocking queue lets through
	// (FixedTraceTimes).
	pass bool
}

// Config holds the simulation settings.
type Config struct {
	// Delay is the one-way network delay between client and server.
	Delay time.Duration
	// MaxTraceLength stops the simulation after this many recorded events
	// (both sides); 0 means no limit.
	MaxTraceLength int
	// MaxIterations stops the simulation after this many processed events;
	// 0 means no limit.
	MaxIterations int
	// ContinueAfterAllNormal keeps simulating after all trace packets have
	// been delivered (machines may pad forever: set a limit above).
	ContinueAfterAllNormal bool
	// OnlyClientEvents records only client events.
	OnlyClientEvents bool
	// OnlyNetworkActivity records only TunnelSent and TunnelRecv events.
	OnlyNetworkActivity bool
	// Framework-level fraction caps for each side (0 = none).
	MaxPaddingFracClient, MaxBlockingFracClient float64
	MaxPaddingFracServer, MaxBlockingFracServer float64
	// ClientRand and ServerRand are the random sources of the two
	// framework instances; nil selects a secure source.
	ClientRand, ServerRand *maybenot.Rand
	// PaddingSize is the size recorded for padding packets.
	PaddingSize int

	// FixedTraceTimes models a live tunnel into which the trace is played
	// at its recorded times, as a device sees it, instead of the
	// reference's connection that waits for what blocking held:
	//
	//   - blocking holds a side's outgoing packets by the same bypass and
	//     replace rules, but never shifts later trace packets (no aggregate
	//     delay);
	//   - when blocking ends, the packets it held are sent in the order
	//     they were held, their TunnelSent events reported in one framework
	//     call, and then BlockingEnd is reported;
	//   - a received packet's TunnelRecv and its NormalRecv (or
	//     PaddingRecv) are reported in one framework call;
	//   - MaxBlockedPackets and MinBlockedCapacity bound what blocking
	//     holds.
	FixedTraceTimes bool
	// MaxBlockedPackets bounds, with FixedTraceTimes, the packets blocking
	// holds at a side (0 means no bound): beyond it a normal packet is sent
	// at once and a padding packet dropped. MinBlockedCapacity ends the
	// blocking at once when a packet it takes leaves fewer free places.
	// They are DAITA's max_delayed_packets and min_delay_capacity.
	MaxBlockedPackets, MinBlockedCapacity int
	// RecordActions adds the actions the frameworks return to the output
	// (Event.Action), each after the events of the call that returned it.
	RecordActions bool
}

// TracePacket is one packet of an input trace.
type TracePacket struct {
	// Time since the first packet of the trace.
	Time time.Duration
	// Sent is true for packets sent by the client, false for received.
	Sent bool
	// Size in bytes, 0 if unknown; carried into the output, otherwise
	// ignored.
	Size int
}

// ErrInternal reports an inconsistency in the simulation state (time moving
// backwards); it indicates a bug, not bad input.
var ErrInternal = errors.New("sim: internal error")

const never = time.Duration(math.MaxInt64)

// epoch maps the trace clock onto time.Time for the framework.
var epoch = time.Unix(1_000_000_000, 0)

type scheduledAction struct {
	action maybenot.TriggerAction
	at     time.Duration
	set    bool
}

type side struct {
	client     bool
	fw         *maybenot.Framework
	action     []scheduledAction
	internal   []time.Duration
	internalOn []bool
	blocking   bool
	blockUntil time.Duration
	bypassable bool
	queue      *eventQueue
}

type pendingDelay struct {
	at     time.Duration
	delay  time.Duration
	client bool
}

type simulator struct {
	cfg            Config
	client, server *side
	aggClient      time.Duration
	aggServer      time.Duration
	pending        priorityHeap[pendingDelay]
	now            time.Duration
	// ready holds events to process, one call each, before anything else
	// (FixedTraceTimes: BlockingEnd after the release of held packets).
	ready []Event
	batch []Event
	tev   []maybenot.TriggerEvent
}

func newSide(client bool, machines []maybenot.Machine, padFrac, blockFrac float64, start time.Duration, rng *maybenot.Rand) (*side, error) {
	fw, err := maybenot.NewFramework(machines, padFrac, blockFrac, epoch.Add(start), rng)
	if err != nil {
		return nil, err
	}
	return &side{
		client:     client,
		fw:         fw,
		action:     make([]scheduledAction, len(machines)),
		internal:   make([]time.Duration, len(machines)),
		internalOn: make([]bool, len(machines)),
		queue:      newEventQueue(),
	}, nil
}

// Run simulates the trace with the given machines at the client and the
// server and returns the recorded events sorted by time (stable).
func Run(clientMachines, serverMachines []maybenot.Machine, trace []TracePacket, cfg Config) ([]Event, error) {
	if len(trace) == 0 {
		return nil, nil
	}
	if cfg.Delay < 0 {
		return nil, errors.New("sim: negative delay")
	}
	s := &simulator{cfg: cfg}
	s.pending.higher = func(a, b *pendingDelay) bool { return a.at < b.at }
	cq, sq := newEventQueue(), newEventQueue()
	first := never
	for _, p := range trace {
		e := Event{Kind: maybenot.EventNormalSent, Size: p.Size}
		if p.Sent {
			e.Client, e.Time = true, p.Time
			cq.push(e)
		} else {
			// Sent by the server one delay before the client receives it.
			e.Time = p.Time - cfg.Delay
			sq.push(e)
		}
		first = min(first, e.Time)
	}
	var err error
	if s.client, err = newSide(true, clientMachines, cfg.MaxPaddingFracClient, cfg.MaxBlockingFracClient, first, cfg.ClientRand); err != nil {
		return nil, err
	}
	if s.server, err = newSide(false, serverMachines, cfg.MaxPaddingFracServer, cfg.MaxBlockingFracServer, first, cfg.ServerRand); err != nil {
		return nil, err
	}
	s.client.queue, s.server.queue = cq, sq
	s.now = first
	return s.run()
}

func (s *simulator) sideOf(client bool) *side {
	if client {
		return s.client
	}
	return s.server
}

func (s *simulator) agg(client bool) time.Duration {
	if client {
		return s.aggClient
	}
	return s.aggServer
}

func (s *simulator) run() ([]Event, error) {
	var trace []Event
	iterations, recorded := 0, 0
	for {
		batch, ok := s.pickNext()
		if !ok {
			break
		}
		if batch[0].Time < s.now {
			return nil, ErrInternal
		}
		s.now = batch[0].Time
		// A batch is one side's events reported in one framework call; the
		// network stack may add an event to it (FixedTraceTimes).
		for i := 0; i < len(batch); i++ {
			if then, ok := s.networkStack(&batch[i]); ok {
				batch = append(batch, then)
			}
		}
		s.batch = batch
		actions := s.triggerUpdate(batch)
		stop := false
		for _, e := range batch {
			if (!s.cfg.OnlyNetworkActivity || e.activity()) && (!s.cfg.OnlyClientEvents || e.Client) {
				if e.Padding {
					e.Size = s.cfg.PaddingSize
				}
				trace = append(trace, e)
				recorded++
			}
			if s.cfg.MaxTraceLength > 0 && recorded >= s.cfg.MaxTraceLength {
				stop = true
				break
			}
		}
		if !stop && s.cfg.RecordActions && !s.cfg.OnlyNetworkActivity && (!s.cfg.OnlyClientEvents || batch[0].Client) {
			for _, a := range actions {
				a := a
				trace = append(trace, Event{Time: s.now, Client: batch[0].Client, Machine: a.Machine, Action: &a})
			}
		}
		if stop {
			break
		}
		iterations += len(batch)
		if s.cfg.MaxIterations > 0 && iterations >= s.cfg.MaxIterations {
			break
		}
		if !s.cfg.ContinueAfterAllNormal && !s.client.queue.hasNormalPackets() && !s.server.queue.hasNormalPackets() {
			break
		}
	}
	slices.SortStableFunc(trace, func(a, b Event) int {
		switch {
		case a.Time < b.Time:
			return -1
		case a.Time > b.Time:
			return 1
		}
		return 0
	})
	return trace, nil
}

// activity reports whether the event is network activity: a packet
// entering or leaving the network.
func (e *Event) activity() bool {
	return e.Action == nil && (e.Kind == maybenot.EventTunnelSent || e.Kind == maybenot.EventTunnelRecv)
}

func since(t, now time.Duration) time.Duration {
	if t <= now {
		return 0
	}
	return t - now
}

// pickNext returns the next events to process, in one framework call:
// the earliest of pending aggregate delay, blocking expiry, queued events,
// internal timers and action timers, preferred in that order on equal
// times. Expired timers become queued events and the choice is made again.
// It returns one event, except for the release of held packets
// (FixedTraceTimes).
func (s *simulator) pickNext() ([]Event, bool) {
	if len(s.ready) > 0 {
		e := s.ready[0]
		s.ready = s.ready[1:]
		return s.one(e), true
	}
	for {
		sa := s.peekScheduledAction()
		it := s.peekInternalTimer()
		b, bClient := s.peekBlockingExpiry()
		n := never
		if p := s.pending.peek(); p != nil {
			n = since(p.at, s.now)
		}
		q, qid, qClient := s.peekQueue(min(sa, it, b, n))
		if sa == never && it == never && b == never && n == never && q == never {
			return nil, false
		}
		if n <= sa && n <= it && n <= b && n <= q {
			p, _ := s.pending.pop()
			if p.client {
				s.aggClient += p.delay
			} else {
				s.aggServer += p.delay
			}
			continue
		}
		if b <= sa && b <= it && b <= q {
			return s.blockingExpired(b, bClient), true
		}
		if q <= sa && q <= it {
			sd := s.sideOf(qClient)
			e, _ := sd.queue.pop(qid, s.agg(qClient))
			if t := s.now + q; t > e.Time {
				e.Time = t
			}
			return s.one(e), true
		}
		if it <= sa {
			s.fireInternalTimer(s.now + it)
			continue
		}
		s.fireAction(s.now + sa)
	}
}

// one returns a batch of just e.
func (s *simulator) one(e Event) []Event {
	return append(s.batch[:0], e)
}

func (s *simulator) peekScheduledAction() time.Duration {
	earliest := never
	for _, sd := range []*side{s.client, s.server} {
		for i := range sd.action {
			a := &sd.action[i]
			if a.set && a.at >= s.now && a.at-s.now < earliest {
				earliest = a.at - s.now
			}
		}
	}
	return earliest
}

func (s *simulator) peekInternalTimer() time.Duration {
	earliest := never
	for _, sd := range []*side{s.client, s.server} {
		for i, on := range sd.internalOn {
			if on && sd.internal[i] >= s.now && sd.internal[i]-s.now < earliest {
				earliest = sd.internal[i] - s.now
			}
		}
	}
	return earliest
}

func (s *simulator) peekBlockingExpiry() (time.Duration, bool) {
	c, sv := s.client, s.server
	switch {
	case c.blocking && sv.blocking:
		if c.blockUntil < sv.blockUntil {
			return since(c.blockUntil, s.now), true
		}
		return since(sv.blockUntil, s.now), false
	case c.blocking:
		return since(c.blockUntil, s.now), true
	case sv.blocking:
		return since(sv.blockUntil, s.now), false
	}
	return never, true
}

// blockingExpired ends the blocking of one side after b and returns the
// BlockingEnd event, recording any aggregate delay the blocking caused.
// With FixedTraceTimes it returns the release of the packets the blocking
// held, if any, and BlockingEnd follows.
func (s *simulator) blockingExpired(b time.Duration, client bool) []Event {
	sd := s.sideOf(client)
	sd.blocking = false
	expiry := s.now + b
	end := Event{Kind: maybenot.EventBlockingEnd, Time: expiry, Client: client}
	if s.cfg.FixedTraceTimes {
		batch := s.batch[:0]
		for {
			head, id := sd.queue.peekBlocking(false)
			if head == nil {
				break
			}
			e, _ := sd.queue.pop(id, 0)
			e.Time = expiry
			batch = append(batch, e)
		}
		if len(batch) == 0 {
			return s.one(end)
		}
		s.ready = append(s.ready, end)
		return batch
	}
	if head, _ := sd.queue.peekBlocking(false); head != nil && head.Time < expiry {
		if d, ok := aggDelayOnBlockingExpire(sd.queue, expiry, head, s.agg(client)); ok {
			s.pushAggregateDelay(d, expiry, client)
		}
	}
	return s.one(end)
}

const (
	burstWindow    = time.Millisecond
	adjacentWindow = 100 * time.Millisecond
)

// aggDelayOnBlockingExpire decides how much of a blocking that held packets
// shifts the rest of the trace: the time from the tail of the blocked burst
// to the expiry, unless the next trace packet belongs to the same burst.
func aggDelayOnBlockingExpire(q *eventQueue, expiry time.Duration, head *Event, agg time.Duration) (time.Duration, bool) {
	tail := head.Time
	if q.blocking.len()+q.bypassable.len() > 2 {
		for _, h := range []*priorityHeap[Event]{&q.blocking, &q.bypassable} {
			for i := range h.data {
				e := &h.data[i]
				if since(e.Time, head.Time) <= burstWindow && e.Time > tail {
					tail = e.Time
				}
			}
		}
	}
	if expiry == tail {
		return 0, false
	}
	if base := q.base.peek(); base != nil && since(base.Time+agg, head.Time) <= burstWindow {
		return 0, false
	}
	return since(expiry, tail), true
}

// aggDelayOnPaddingBypassReplace decides the aggregate delay when a blocked
// packet is sent through bypassable blocking in place of padding.
func aggDelayOnPaddingBypassReplace(q *eventQueue, now time.Duration, head *Event, agg time.Duration) (time.Duration, bool) {
	for _, h := range []*priorityHeap[Event]{&q.blocking, &q.bypassable} {
		for i := range h.data {
			if since(h.data[i].Time, head.Time) <= adjacentWindow {
				return 0, false
			}
		}
	}
	if base := q.base.peek(); base != nil && since(base.Time+agg, head.Time) <= burstWindow {
		return 0, false
	}
	return since(now, head.Time), true
}

// pushAggregateDelay schedules a blocked duration to shift later trace
// packets at both sides, after the time the blocking takes to be noticed:
// max(4D-B, 0) at the client and max(3D-B, 0) at the server when the client
// blocked, max(D-B, 0) and max(4D-B, 0) when the server did.
func (s *simulator) pushAggregateDelay(blocked, now time.Duration, client bool) {
	d := s.cfg.Delay
	sub := func(a time.Duration) time.Duration {
		if a > blocked {
			return a - blocked
		}
		return 0
	}
	var atClient, atServer time.Duration
	if client {
		atClient, atServer = sub(4*d), sub(3*d)
	} else {
		atClient, atServer = sub(d), sub(4*d)
	}
	s.pending.push(pendingDelay{at: now + atClient, delay: blocked, client: true})
	s.pending.push(pendingDelay{at: now + atServer, delay: blocked, client: false})
}

// peekQueue returns how long until the next queued event that may be
// processed (taking blocking into account), its queue and side; never if
// there is none or it comes after earliest.
func (s *simulator) peekQueue(earliest time.Duration) (time.Duration, queueID, bool) {
	if s.client.queue.len()+s.server.queue.len() == 0 {
		return never, qBlocking, false
	}
	ce, cq, ct := s.client.queue.peek(s.aggClient)
	se, sq, st := s.server.queue.peek(s.aggServer)
	var peek *Event
	var id queueID
	var t time.Duration
	switch {
	case ce != nil && se == nil:
		peek, id, t = ce, cq, ct
	case ce == nil:
		peek, id, t = se, sq, st
	default:
		cd, sd := since(ct, s.now), since(st, s.now)
		if cd < sd || (cd == sd && kindOrder(ce.Kind) <= kindOrder(se.Kind)) {
			peek, id, t = ce, cq, ct
		} else {
			peek, id, t = se, sq, st
		}
	}
	d := since(t, s.now)
	if d > earliest {
		return never, qBlocking, false
	}
	if peek.Kind != maybenot.EventTunnelSent || peek.pass {
		return d, id, peek.Client
	}
	c, sv := s.client, s.server
	if !c.blocking && !sv.blocking {
		return d, id, peek.Client
	}
	if (peek.Client && !c.blocking) || (!peek.Client && !sv.blocking) {
		return d, id, peek.Client
	}
	if peek.bypass && ((peek.Client && c.bypassable) || (!peek.Client && sv.bypassable)) {
		return d, id, peek.Client
	}
	cd, cid := s.earliestOnSide(c, s.aggClient)
	sd, sid := s.earliestOnSide(sv, s.aggServer)
	if cd <= sd {
		return cd, cid, true
	}
	return sd, sid, false
}

// earliestOnSide returns when the next event of one side may be processed,
// holding blocked TunnelSent events until the blocking ends.
func (s *simulator) earliestOnSide(sd *side, agg time.Duration) (time.Duration, queueID) {
	pb, bq := sd.queue.peekBlocking(sd.bypassable)
	pn, nq := sd.queue.peekNonBlocking(sd.bypassable, agg)
	if pb == nil && pn == nil {
		return never, qBlocking
	}
	until := s.now
	if sd.blocking {
		until = sd.blockUntil
	}
	var nt time.Duration
	if pn != nil {
		nt = pn.Time
		if nq == qBase {
			nt += agg
		}
	}
	if pb == nil {
		return since(nt, s.now), nq
	}
	bt := max(pb.Time, until)
	if pn == nil {
		return since(bt, s.now), bq
	}
	blockingFirst := bt < nt || (bt == nt && nq != qBase)
	if blockingFirst {
		return since(bt, s.now), bq
	}
	return since(nt, s.now), nq
}

// fireInternalTimer turns the first internal timer expiring at target
// (client machines first) into a TimerEnd event.
func (s *simulator) fireInternalTimer(target time.Duration) {
	for _, sd := range []*side{s.client, s.server} {
		for i, on := range sd.internalOn {
			if on && sd.internal[i] == target {
				sd.internalOn[i] = false
				sd.queue.push(Event{Kind: maybenot.EventTimerEnd, Machine: maybenot.MachineID(i), Time: target, Client: sd.client})
				return
			}
		}
	}
}

// fireAction carries out the first action timer expiring at target (client
// machines first): padding becomes a PaddingSent event, blocking starts,
// extends or replaces the side's blocking and becomes a BlockingBegin
// event.
func (s *simulator) fireAction(target time.Duration) {
	for _, sd := range []*side{s.client, s.server} {
		for i := range sd.action {
			a := &sd.action[i]
			if !a.set || a.at != target {
				continue
			}
			a.set = false
			act := a.action
			switch act.Kind {
			case maybenot.ActionSendPadding:
				sd.queue.push(Event{Kind: maybenot.EventPaddingSent, Machine: act.Machine, Time: a.at,
					Client: sd.client, Padding: true, bypass: act.Bypass, replace: act.Replace})
			case maybenot.ActionBlockOutgoing:
				until := a.at + act.Duration
				current := a.at
				if sd.blocking {
					current = sd.blockUntil
				}
				if act.Replace || until > current {
					sd.blocking, sd.blockUntil, sd.bypassable = true, until, act.Bypass
				}
				sd.queue.push(Event{Kind: maybenot.EventBlockingBegin, Machine: act.Machine, Time: a.at,
					Client: sd.client, bypass: sd.bypassable})
			}
			return
		}
	}
}

// networkStack simulates the network for the event: sent packets enter the
// tunnel, tunnel packets cross the network, received tunnel packets are
// classified. It returns an event to report in the same framework call,
// if any (FixedTraceTimes).
func (s *simulator) networkStack(e *Event) (Event, bool) {
	sd := s.sideOf(e.Client)
	switch e.Kind {
	case maybenot.EventNormalSent:
		s.send(sd, Event{Kind: maybenot.EventTunnelSent, Time: e.Time, Client: e.Client, Size: e.Size})
	case maybenot.EventPaddingSent:
		if e.replace {
			queued, id := sd.queue.peekBlocking(sd.bypassable)
			if queued != nil && queued.Client == e.Client && queued.Kind == maybenot.EventTunnelSent && !queued.Padding {
				if !e.bypass {
					// The queued packet stands in for the padding.
					return Event{}, false
				}
				entry, _ := sd.queue.popBlocking(id, sd.bypassable, s.agg(e.Client))
				entry.bypass, entry.replace = true, false
				if !s.cfg.FixedTraceTimes {
					if d, ok := aggDelayOnPaddingBypassReplace(sd.queue, s.now, &entry, s.agg(e.Client)); ok {
						s.pushAggregateDelay(d, s.now, e.Client)
					}
				}
				sd.queue.push(entry)
				return Event{}, false
			}
		}
		s.send(sd, Event{Kind: maybenot.EventTunnelSent, Time: e.Time, Client: e.Client,
			Padding: true, bypass: e.bypass, replace: e.replace})
	case maybenot.EventTunnelSent:
		at := e.Time + s.cfg.Delay
		if !e.Padding {
			at = max(at, s.now)
		}
		s.sideOf(!e.Client).queue.push(Event{Kind: maybenot.EventTunnelRecv, Time: at, Client: !e.Client,
			Padding: e.Padding, Size: e.Size})
	case maybenot.EventTunnelRecv:
		k := maybenot.EventNormalRecv
		if e.Padding {
			k = maybenot.EventPaddingRecv
		}
		recv := Event{Kind: k, Time: e.Time, Client: e.Client, Padding: e.Padding, Size: e.Size}
		if s.cfg.FixedTraceTimes {
			return recv, true
		}
		sd.queue.push(recv)
	}
	return Event{}, false
}

// send queues a TunnelSent at its side. With FixedTraceTimes and
// MaxBlockedPackets, a packet that blocking would hold finds a bounded
// queue: when it is full, a normal packet goes out at once and padding is
// dropped; when what is left free is below MinBlockedCapacity, the
// blocking ends now.
func (s *simulator) send(sd *side, e Event) {
	limit := s.cfg.MaxBlockedPackets
	if !s.cfg.FixedTraceTimes || limit <= 0 || !sd.blocking || (e.bypass && sd.bypassable) {
		sd.queue.push(e)
		return
	}
	held := sd.queue.blocking.len()
	if !sd.bypassable {
		held += sd.queue.bypassable.len()
	}
	if held >= limit {
		if !e.Padding {
			e.pass = true
			sd.queue.push(e)
		}
		return
	}
	sd.queue.push(e)
	if limit-(held+1) < s.cfg.MinBlockedCapacity {
		sd.blockUntil = s.now
	}
}

// triggerUpdate reports a batch of one side's events to its framework in
// one call and applies the returned actions to the side's timers; it
// returns the actions.
func (s *simulator) triggerUpdate(batch []Event) []maybenot.TriggerAction {
	sd := s.sideOf(batch[0].Client)
	s.tev = s.tev[:0]
	for _, e := range batch {
		s.tev = append(s.tev, maybenot.TriggerEvent{Kind: e.Kind, Machine: e.Machine})
	}
	actions := sd.fw.TriggerEvents(s.tev, epoch.Add(s.now))
	for _, a := range actions {
		m := int(a.Machine)
		switch a.Kind {
		case maybenot.ActionCancel:
			if a.Timer == maybenot.TimerAction || a.Timer == maybenot.TimerAll {
				sd.action[m].set = false
			}
			if a.Timer == maybenot.TimerInternal || a.Timer == maybenot.TimerAll {
				sd.internalOn[m] = false
			}
		case maybenot.ActionSendPadding, maybenot.ActionBlockOutgoing:
			sd.action[m] = scheduledAction{action: a, at: s.now + a.Timeout, set: true}
		case maybenot.ActionUpdateTimer:
			current := s.now
			if sd.internalOn[m] {
				current = sd.internal[m]
			}
			until := s.now + a.Duration
			if a.Replace || current < until {
				sd.internal[m], sd.internalOn[m] = until, true
				sd.queue.push(Event{Kind: maybenot.EventTimerBegin, Machine: a.Machine, Time: s.now, Client: sd.client})
			}
		}
	}
	return actions
}
