// Package clock is the time source of gotatun's timers: an interface the
// device and the DAITA scheduler are driven through, the real clock, and a
// fake one that tests step exactly.
package clock

import (
	"container/heap"
	"sync"
	"time"
)

// Clock is a source of time. Every timer rule of the protocol is driven
// through it, so tests can replace it with a Fake and step time exactly.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// AfterFunc calls f, in a goroutine of the clock's choosing, once d has
	// passed. The returned Timer stops or re-arms it.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a stoppable, re-armable timer created by a Clock.
type Timer interface {
	// Stop prevents the timer from firing. It reports whether it was armed.
	Stop() bool
	// Reset re-arms the timer to fire after d. It reports whether it was
	// armed before.
	Reset(d time.Duration) bool
}

// Real is the Clock of package time.
type Real struct{}

// Now implements Clock.
func (Real) Now() time.Time { return time.Now() }

// AfterFunc implements Clock with time.AfterFunc, which starts no goroutine
// until the timer fires.
func (Real) AfterFunc(d time.Duration, f func()) Timer {
	return time.AfterFunc(d, f)
}

// Fake is a Clock for tests: time stands still until Advance moves it,
// and due timers fire synchronously inside Advance, in deadline order.
type Fake struct {
	mu     sync.Mutex
	now    time.Time
	timers fakeHeap
	seq    uint64
}

// NewFake returns a Fake reading start.
func NewFake(start time.Time) *Fake {
	return &Fake{now: start}
}

// Now implements Clock.
func (c *Fake) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc implements Clock.
func (c *Fake) AfterFunc(d time.Duration, f func()) Timer {
	t := &fakeTimer{c: c, f: f, index: -1}
	c.mu.Lock()
	c.arm(t, d)
	c.mu.Unlock()
	return t
}

// Advance moves the clock forward by d, firing every timer that falls due on
// the way, each with the clock reading its deadline. Callbacks run in the
// calling goroutine and may arm further timers; those fire too if they fall
// due before the end of the step.
func (c *Fake) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	for len(c.timers) > 0 && !c.timers[0].when.After(end) {
		t := heap.Pop(&c.timers).(*fakeTimer)
		if t.when.After(c.now) {
			c.now = t.when
		}
		f := t.f
		c.mu.Unlock()
		f()
		c.mu.Lock()
	}
	if end.After(c.now) {
		c.now = end
	}
	c.mu.Unlock()
}

// AdvanceBefore moves the clock forward by d like Advance, but the timers
// due exactly at the new time stay armed: they fire at the next step. A
// simulation uses it to handle what arrives at an instant before that
// instant's timers.
func (c *Fake) AdvanceBefore(d time.Duration) {
	if d <= 0 {
		return
	}
	c.Advance(d - time.Nanosecond)
	c.mu.Lock()
	c.now = c.now.Add(time.Nanosecond)
	c.mu.Unlock()
}

// Pending returns how many timers are armed.
func (c *Fake) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// NextDeadline returns when the earliest armed timer fires, and false if
// none is armed.
func (c *Fake) NextDeadline() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.timers) == 0 {
		return time.Time{}, false
	}
	return c.timers[0].when, true
}

func (c *Fake) arm(t *fakeTimer, d time.Duration) {
	if d < 0 {
		d = 0
	}
	t.when = c.now.Add(d)
	c.seq++
	t.seq = c.seq
	if t.index >= 0 {
		heap.Fix(&c.timers, t.index)
	} else {
		heap.Push(&c.timers, t)
	}
}

type fakeTimer struct {
	c     *Fake
	f     func()
	when  time.Time
	seq   uint64
	index int // position in the heap, -1 when not armed
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.index < 0 {
		return false
	}
	heap.Remove(&t.c.timers, t.index)
	return true
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.index >= 0
	t.c.arm(t, d)
	return was
}

// fakeHeap orders timers by deadline, then by arming order.
type fakeHeap []*fakeTimer

func (h fakeHeap) Len() int { return len(h) }
func (h fakeHeap) Less(i, j int) bool {
	if !h[i].when.Equal(h[j].when) {
		return h[i].when.Before(h[j].when)
	}
	return h[i].seq < h[j].seq
}
func (h fakeHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *fakeHeap) Push(x any) {
	t := x.(*fakeTimer)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *fakeHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.index = -1
	return t
}
