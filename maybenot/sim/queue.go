package sim

import (
	"time"

	"github.com/gotatun/gotatun/maybenot"
)

// kindOrder orders events of equal time: tunnel before normal before
// padding, sent before received, begin before end.
func kindOrder(k maybenot.Event) int {
	switch k {
	case maybenot.EventTunnelSent:
		return 0
	case maybenot.EventNormalSent:
		return 1
	case maybenot.EventPaddingSent:
		return 2
	case maybenot.EventTunnelRecv:
		return 3
	case maybenot.EventNormalRecv:
		return 4
	case maybenot.EventPaddingRecv:
		return 5
	case maybenot.EventBlockingBegin:
		return 6
	case maybenot.EventBlockingEnd:
		return 7
	case maybenot.EventTimerBegin:
		return 8
	case maybenot.EventTimerEnd:
		return 9
	}
	return 10
}

// earlier compares two queued events by time, then kind order: -1 if a
// comes first, 1 if b does, 0 if they tie.
func earlier(a, b *Event) int {
	switch {
	case a.Time < b.Time:
		return -1
	case a.Time > b.Time:
		return 1
	}
	ka, kb := kindOrder(a.Kind), kindOrder(b.Kind)
	switch {
	case ka < kb:
		return -1
	case ka > kb:
		return 1
	}
	return 0
}

// priorityHeap is a binary max-heap of "priority" (earliest first). Its
// push and pop follow the classic hole-based sift-up and
// sift-down-to-bottom-then-up procedure, which fixes the order in which
// elements of equal priority come out; the reference simulator's results
// depend on that order, so it is kept deliberately.
type priorityHeap[T any] struct {
	data []T
	// higher reports whether a has strictly higher priority than b.
	higher func(a, b *T) bool
}

func (h *priorityHeap[T]) len() int { return len(h.data) }

func (h *priorityHeap[T]) peek() *T {
	if len(h.data) == 0 {
		return nil
	}
	return &h.data[0]
}

func (h *priorityHeap[T]) push(x T) {
	h.data = append(h.data, x)
	h.siftUp(0, len(h.data)-1)
}

// siftUp moves the element at pos up while it has higher priority than its
// parent.
func (h *priorityHeap[T]) siftUp(start, pos int) {
	elem := h.data[pos]
	for pos > start {
		parent := (pos - 1) / 2
		if !h.higher(&elem, &h.data[parent]) {
			break
		}
		h.data[pos] = h.data[parent]
		pos = parent
	}
	h.data[pos] = elem
}

func (h *priorityHeap[T]) pop() (T, bool) {
	var zero T
	n := len(h.data)
	if n == 0 {
		return zero, false
	}
	item := h.data[n-1]
	h.data[n-1] = zero
	h.data = h.data[:n-1]
	if len(h.data) > 0 {
		item, h.data[0] = h.data[0], item
		h.siftDownToBottom(0)
	}
	return item, true
}

// siftDownToBottom moves the hole at pos all the way down, always to the
// child of higher-or-equal priority (the right one on ties), then sifts the
// displaced element back up.
func (h *priorityHeap[T]) siftDownToBottom(pos int) {
	end := len(h.data)
	start := pos
	elem := h.data[pos]
	child := 2*pos + 1
	for end >= 2 && child <= end-2 {
		if !h.higher(&h.data[child], &h.data[child+1]) {
			child++
		}
		h.data[pos] = h.data[child]
		pos = child
		child = 2*pos + 1
	}
	if child == end-1 {
		h.data[pos] = h.data[child]
		pos = child
	}
	h.data[pos] = elem
	h.siftUp(start, pos)
}

func newEventHeap() priorityHeap[Event] {
	return priorityHeap[Event]{higher: func(a, b *Event) bool { return earlier(a, b) < 0 }}
}

// queueID names one of the four queues of a side.
type queueID uint8

const (
	qBlocking queueID = iota
	qBypassable
	qInternal
	qBase
)

// eventQueue holds the pending events of one side: base (trace packets,
// NormalSent), blocking (TunnelSent held by blocking), bypassable
// (TunnelSent that may pass bypassable blocking) and internal (the rest).
type eventQueue struct {
	base, blocking, bypassable, internal priorityHeap[Event]
}

func newEventQueue() *eventQueue {
	return &eventQueue{
		base: newEventHeap(), blocking: newEventHeap(),
		bypassable: newEventHeap(), internal: newEventHeap(),
	}
}

func (q *eventQueue) len() int {
	return q.base.len() + q.blocking.len() + q.bypassable.len() + q.internal.len()
}

func (q *eventQueue) push(e Event) {
	switch e.Kind {
	case maybenot.EventTunnelSent:
		switch {
		case e.pass:
			q.internal.push(e)
		case e.bypass:
			q.bypassable.push(e)
		default:
			q.blocking.push(e)
		}
	case maybenot.EventNormalSent:
		q.base.push(e)
	default:
		q.internal.push(e)
	}
}

// firstOf reports whether a (possibly nil) comes strictly before b
// (possibly nil); a present event comes before an absent one.
func firstOf(a, b *Event) bool {
	switch {
	case a == nil:
		return false
	case b == nil:
		return true
	}
	return earlier(a, b) < 0
}

// baseFirst reports whether base event a, shifted by delay, comes at or
// before b.
func baseFirst(a, b *Event, delay time.Duration) bool {
	switch {
	case a == nil:
		return false
	case b == nil:
		return true
	}
	shifted := *a
	shifted.Time += delay
	return earlier(&shifted, b) <= 0
}

// peek returns the next event of the side with its queue and its time
// (base events shifted by delay).
func (q *eventQueue) peek(delay time.Duration) (*Event, queueID, time.Duration) {
	if q.len() == 0 {
		return nil, qBlocking, 0
	}
	first, id := q.bypassable.peek(), qBypassable
	if n := q.blocking.peek(); firstOf(n, first) {
		first, id = n, qBlocking
	}
	if n := q.internal.peek(); firstOf(n, first) {
		first, id = n, qInternal
	}
	if n := q.base.peek(); baseFirst(n, first, delay) {
		return n, qBase, n.Time + delay
	}
	return first, id, first.Time
}

func (q *eventQueue) pop(id queueID, delay time.Duration) (Event, bool) {
	switch id {
	case qBlocking:
		return q.blocking.pop()
	case qBypassable:
		return q.bypassable.pop()
	case qInternal:
		return q.internal.pop()
	}
	e, ok := q.base.pop()
	e.Time += delay
	return e, ok
}

// peekBlocking returns the first queued TunnelSent that the active blocking
// holds: with bypassable blocking only the blocking queue, otherwise the
// earlier of blocking and bypassable.
func (q *eventQueue) peekBlocking(bypassable bool) (*Event, queueID) {
	if bypassable {
		return q.blocking.peek(), qBlocking
	}
	b, bb := q.blocking.peek(), q.bypassable.peek()
	if firstOf(b, bb) {
		return b, qBlocking
	}
	return bb, qBypassable
}

// peekNonBlocking returns the first event that blocking does not hold.
func (q *eventQueue) peekNonBlocking(bypassable bool, delay time.Duration) (*Event, queueID) {
	b, i := q.base.peek(), q.internal.peek()
	n, nq := i, qInternal
	if baseFirst(b, i, delay) {
		n, nq = b, qBase
	}
	if bypassable {
		if bb := q.bypassable.peek(); firstOf(bb, n) {
			return bb, qBypassable
		}
	}
	return n, nq
}

// popBlocking removes the event found by peekBlocking.
func (q *eventQueue) popBlocking(id queueID, bypassable bool, delay time.Duration) (Event, bool) {
	if bypassable {
		return q.blocking.pop()
	}
	return q.pop(id, delay)
}

// hasNormalPackets reports whether any trace packet is still queued or in
// flight on this side.
func (q *eventQueue) hasNormalPackets() bool {
	if q.base.len() > 0 {
		return true
	}
	for _, h := range []*priorityHeap[Event]{&q.blocking, &q.bypassable, &q.internal} {
		for i := range h.data {
			e := &h.data[i]
			switch e.Kind {
			case maybenot.EventTunnelSent, maybenot.EventTunnelRecv, maybenot.EventNormalRecv:
				if !e.Padding {
					return true
				}
			}
		}
	}
	return false
}
