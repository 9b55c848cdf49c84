package daita

import (
	"container/heap"
	"crypto/rand"
	"io"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/gotatun/gotatun/clock"
	"github.com/gotatun/gotatun/maybenot"
)

// Clock is the time source of a Scheduler; see package clock.
type Clock = clock.Clock

// Timer is a stoppable, re-armable timer made by a Clock.
type Timer = clock.Timer

// Trace is one entry of a peer's timeline, for tests and diagnostics:
// an event handed to the framework (Action nil) or an action it returned.
type Trace struct {
	Peer   *Peer
	Time   time.Time
	Event  maybenot.TriggerEvent
	Action *maybenot.TriggerAction
}

// SchedulerOptions configure a Scheduler; every field may be left zero.
type SchedulerOptions struct {
	// Clock drives every timer; nil is the real clock.
	Clock Clock
	// Rand seeds each peer's random source; nil is crypto/rand.
	Rand io.Reader
	// NewRand, if set, makes each peer's random source instead (tests).
	NewRand func() *maybenot.Rand
	// Observe, if set, is called with every event and action of every
	// peer, with the peer's lock held.
	Observe func(Trace)
}

// Scheduler runs the timers of every DAITA peer of a device: the machines'
// action and internal timers and the end of each peer's delay, in one heap
// woken by one clock timer. It starts no goroutine of its own; expired
// timers are handled in the clock's timer goroutine.
//
// Lock order: a Peer's lock, then the Scheduler's.
type Scheduler struct {
	opts  SchedulerOptions
	clock Clock

	seedMu sync.Mutex
	seeds  io.Reader

	mu      sync.Mutex
	timers  timerHeap
	wake    Timer
	wakeAt  time.Time // zero while wake is not armed
	firing  bool
	closed  bool
	fires   sync.WaitGroup // fire calls running
	due     []dueTimer
	seq     uint64
	nactive int // peers running

	events sync.Pool // *[]maybenot.TriggerEvent: batches in hand
}

func (s *Scheduler) getEvents() *[]maybenot.TriggerEvent {
	if b, ok := s.events.Get().(*[]maybenot.TriggerEvent); ok {
		return b
	}
	b := make([]maybenot.TriggerEvent, 0, 256)
	return &b
}

func (s *Scheduler) putEvents(b *[]maybenot.TriggerEvent) {
	*b = (*b)[:0]
	s.events.Put(b)
}

type dueTimer struct {
	t   *timer
	seq uint64
}

// NewScheduler returns a Scheduler.
func NewScheduler(opts SchedulerOptions) *Scheduler {
	s := &Scheduler{opts: opts, clock: opts.Clock, seeds: opts.Rand}
	if s.clock == nil {
		s.clock = clock.Real{}
	}
	if s.seeds == nil {
		s.seeds = rand.Reader
	}
	return s
}

// Now returns the scheduler's clock reading.
func (s *Scheduler) Now() time.Time { return s.clock.Now() }

// Peers returns how many peers run on s.
func (s *Scheduler) Peers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nactive
}

// Close stops every timer and waits for expired ones being handled;
// peers still running stay silent from then on.
func (s *Scheduler) Close() {
	defer s.fires.Wait()
	s.mu.Lock()
	s.closed = true
	if s.wake != nil {
		s.wake.Stop()
	}
	for _, t := range s.timers {
		t.index = -1
	}
	clear(s.timers)
	s.timers = s.timers[:0]
	s.mu.Unlock()
}

func (s *Scheduler) newRand() *maybenot.Rand {
	if s.opts.NewRand != nil {
		return s.opts.NewRand()
	}
	var seed [32]byte
	s.seedMu.Lock()
	_, err := io.ReadFull(s.seeds, seed[:])
	s.seedMu.Unlock()
	if err != nil {
		// A broken seed source must not make timing predictable.
		_, _ = rand.Read(seed[:])
	}
	return maybenot.NewRand(mrand.NewChaCha8(seed))
}

// timer kinds.
const (
	timerAction   = iota // a machine's SendPadding or BlockOutgoing
	timerInternal        // a machine's UpdateTimer
	timerDelayEnd        // the peer's delay ends
)

type timer struct {
	peer    *Peer
	kind    uint8
	machine maybenot.MachineID
	when    time.Time
	index   int    // in the heap, -1 when not armed
	seq     uint64 // changes on every arm and disarm
	act     maybenot.TriggerAction
}

func (t *timer) armed() bool { return t.index >= 0 }

// arm (re)sets t to fire at when.
func (s *Scheduler) arm(t *timer, when time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.seq++
	t.seq = s.seq
	t.when = when
	if t.index >= 0 {
		heap.Fix(&s.timers, t.index)
	} else {
		heap.Push(&s.timers, t)
	}
	s.rearmLocked()
}

// disarm stops t.
func (s *Scheduler) disarm(t *timer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	t.seq = s.seq
	if t.index >= 0 {
		heap.Remove(&s.timers, t.index)
	}
}

// rearmLocked points the wake-up timer at the earliest deadline. A wake-up
// that comes early (a timer was removed) finds nothing due and re-arms.
func (s *Scheduler) rearmLocked() {
	if s.firing || s.closed {
		return // fire re-arms when it is done
	}
	if len(s.timers) == 0 {
		return
	}
	next := s.timers[0].when
	if !s.wakeAt.IsZero() && !s.wakeAt.After(next) {
		return
	}
	s.wakeAt = next
	d := next.Sub(s.clock.Now())
	if s.wake == nil {
		s.wake = s.clock.AfterFunc(d, s.fire)
	} else {
		s.wake.Reset(d)
	}
}

// fire handles every timer that is due, then re-arms the wake-up.
func (s *Scheduler) fire() {
	s.mu.Lock()
	if s.closed || s.firing {
		s.mu.Unlock()
		return
	}
	s.fires.Add(1)
	defer s.fires.Done()
	s.firing = true
	s.wakeAt = time.Time{}
	for {
		now := s.clock.Now()
		due := s.due[:0]
		for len(s.timers) > 0 && !s.timers[0].when.After(now) {
			t := heap.Pop(&s.timers).(*timer)
			due = append(due, dueTimer{t, t.seq})
		}
		s.due = due
		if len(due) == 0 || s.closed {
			break
		}
		s.mu.Unlock()
		for i := range due {
			due[i].t.peer.expire(due[i].t, due[i].seq)
			due[i] = dueTimer{}
		}
		s.mu.Lock()
	}
	s.firing = false
	s.rearmLocked()
	s.mu.Unlock()
}

// timerHeap orders timers by deadline; timers due at the same instant as
// the reference simulator takes them: the end of a delay first, then
// internal timers, then action timers, each by machine, then by arming
// order. So a delay ending as a machine starts another ends first,
// sending what it held, rather than being extended.
type timerHeap []*timer

// kindRank orders timer kinds due at the same instant.
var kindRank = [...]uint8{timerDelayEnd: 0, timerInternal: 1, timerAction: 2}

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	a, b := h[i], h[j]
	if !a.when.Equal(b.when) {
		return a.when.Before(b.when)
	}
	if a.kind != b.kind {
		return kindRank[a.kind] < kindRank[b.kind]
	}
	if a.machine != b.machine {
		return a.machine < b.machine
	}
	return a.seq < b.seq
}
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *timerHeap) Push(x any) {
	t := x.(*timer)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.index = -1
	return t
}
