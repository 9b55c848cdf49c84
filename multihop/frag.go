package multihop

import (
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds of reassembly. A datagram of the exit tunnel is a little
// over the exit MTU, so a few pieces of a few KiB each are the real load;
// the bounds keep a flood of forged fragments from growing memory.
const (
	fragMaxPackets = 64               // datagrams in progress
	fragMaxBytes   = 1 << 20          // bytes buffered over all of them
	fragMaxPieces  = 64               // fragments of one datagram
	fragTimeout    = 30 * time.Second // as Linux's ipfrag_time
	fragKeepCap    = 4096             // largest buffer kept for reuse
	maxIPLen       = 65535            // IPv4 total length, IPv6 payload length
)

// fragKey names a datagram being reassembled: IPv4 fragments share
// addresses and the 16-bit identification, IPv6 ones addresses and the
// 32-bit one. The protocol is always UDP here.
type fragKey struct {
	src, dst netip.Addr
	id       uint32
}

// fragment is one piece of a datagram: data at off, more after it unless
// it is the last, of a datagram whose transport part may reach max bytes.
type fragment struct {
	key  fragKey
	off  int
	more bool
	data []byte
	max  int
}

type fragPiece struct{ off, end int }

// fragEntry is a datagram being reassembled: its transport bytes so far.
type fragEntry struct {
	key     fragKey
	start   time.Time
	data    []byte // len is the furthest byte received
	pieces  [fragMaxPieces]fragPiece
	npieces int
	got     int // bytes received (pieces never overlap)
	total   int // transport length once the last fragment came, else -1
}

// reassembler joins IPv4 and IPv6 fragments. Callers hold mu.
type reassembler struct {
	mu    sync.Mutex
	now   func() time.Time
	live  []*fragEntry // oldest first
	bytes int          // sum of len(data) over live
	spare []*fragEntry
	drops *atomic.Uint64 // fragments dropped
}

func newReassembler(now func() time.Time, drops *atomic.Uint64) *reassembler {
	return &reassembler{now: now, drops: drops, live: make([]*fragEntry, 0, fragMaxPackets)}
}

// add takes a fragment. It returns the entry once the datagram is
// complete, removed from the live set: data[:total] is the transport
// header and payload. The caller reads it and then calls release.
func (r *reassembler) add(f fragment) *fragEntry {
	now := r.now()
	r.expire(now)
	off, more, data := f.off, f.more, f.data
	end := off + len(data)
	if more && (len(data) == 0 || len(data)%8 != 0) || end > f.max {
		r.drops.Add(1)
		return nil
	}
	e := r.find(f.key)
	if e == nil {
		e = r.newEntry(f.key, now)
	}
	if !r.fits(e, off, end, more) {
		r.drops.Add(1)
		return nil
	}
	if e.npieces == fragMaxPieces {
		r.drop(e)
		r.drops.Add(1)
		return nil
	}
	if grow := end - len(e.data); grow > 0 {
		for r.bytes+grow > fragMaxBytes && r.live[0] != e {
			r.drop(r.live[0])
		}
		if r.bytes+grow > fragMaxBytes {
			r.drop(e)
			r.drops.Add(1)
			return nil
		}
		e.data = slices.Grow(e.data, grow)[:end]
		r.bytes += grow
	}
	copy(e.data[off:end], data)
	e.pieces[e.npieces] = fragPiece{off, end}
	e.npieces++
	e.got += len(data)
	if !more {
		e.total = end
	}
	if e.total < 0 || e.got != e.total {
		return nil
	}
	r.unlink(e)
	return e
}

// fits reports whether a fragment covering [off, end) agrees with what e
// already has: within the length the last fragment gave, not past the end
// if it is the last one, and overlapping no other fragment.
func (r *reassembler) fits(e *fragEntry, off, end int, more bool) bool {
	if e.total >= 0 && (end > e.total || !more && end != e.total) {
		return false
	}
	for _, pc := range e.pieces[:e.npieces] {
		if off < pc.end && pc.off < end || off == pc.off {
			return false
		}
		if !more && pc.end > end {
			return false
		}
	}
	return true
}

func (r *reassembler) find(k fragKey) *fragEntry {
	for _, e := range r.live {
		if e.key == k {
			return e
		}
	}
	return nil
}

func (r *reassembler) newEntry(k fragKey, now time.Time) *fragEntry {
	if len(r.live) == fragMaxPackets {
		r.drop(r.live[0])
	}
	var e *fragEntry
	if n := len(r.spare); n > 0 {
		e, r.spare = r.spare[n-1], r.spare[:n-1]
	} else {
		e = new(fragEntry)
	}
	e.key, e.start = k, now
	e.data, e.npieces, e.got, e.total = e.data[:0], 0, 0, -1
	r.live = append(r.live, e)
	return e
}

// expire drops datagrams older than fragTimeout.
func (r *reassembler) expire(now time.Time) {
	for len(r.live) > 0 && now.Sub(r.live[0].start) >= fragTimeout {
		r.drop(r.live[0])
	}
}

// drop discards a live datagram and counts its fragments.
func (r *reassembler) drop(e *fragEntry) {
	r.drops.Add(uint64(e.npieces))
	r.unlink(e)
	r.release(e)
}

func (r *reassembler) unlink(e *fragEntry) {
	if i := slices.Index(r.live, e); i >= 0 {
		r.live = slices.Delete(r.live, i, i+1)
		r.bytes -= len(e.data)
	}
}

// release returns an entry no longer live for reuse.
func (r *reassembler) release(e *fragEntry) {
	if cap(e.data) > fragKeepCap {
		e.data = nil
	}
	if len(r.spare) < fragMaxPackets {
		r.spare = append(r.spare, e)
	}
}

// pending returns the datagrams in progress and the bytes they hold.
func (r *reassembler) pending() (n, bytes int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.live), r.bytes
}
