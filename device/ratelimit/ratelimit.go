// Package ratelimit limits the rate of handshake messages a device processes
// per source address, so that one busy or hostile source cannot make the
// device spend all its time on handshake cryptography.
//
// Each source has a token bucket: it may send Burst messages at once and
// Rate messages per second sustained. IPv4 sources are keyed by their full
// address, IPv6 sources by their /64, since one host usually owns a whole
// /64. The device calls Allow only for messages that passed the cookie check
// when under load, so source addresses are (weakly) proven.
package ratelimit

import (
	"net/netip"
	"sync"
	"time"
)

const (
	// Rate is the sustained number of messages allowed per second per source.
	Rate = 20
	// Burst is the number of messages a source idle for long enough may send
	// at once.
	Burst = 5
	// MaxEntries bounds the number of sources tracked at once.
	MaxEntries = 65536
	// Expiry is how long a source must be idle before its entry is dropped.
	// It is longer than the time an empty bucket takes to fill (Burst/Rate),
	// so dropping an entry never changes a decision.
	Expiry = time.Second

	cost      = int64(time.Second / Rate) // tokens, in nanoseconds, per message
	maxTokens = cost * Burst
	// lazySweepEvery limits how often a full table sweeps itself from Allow.
	lazySweepEvery = 250 * time.Millisecond
)

type key [16]byte

type bucket struct {
	tokens int64 // nanoseconds worth of credit, at most maxTokens
	last   int64 // time of the last refill, in nanoseconds since Limiter.base
}

// Limiter is a per-source token-bucket rate limiter. It starts no goroutine:
// the owner calls Sweep periodically (about once per Expiry) to forget idle
// sources. The table never holds more than MaxEntries sources; when it is full
// of sources active within Expiry, messages from new sources are denied until
// entries expire (existing sources keep their buckets, so a flood from many
// addresses cannot evict a legitimate peer's state). A full table also sweeps
// itself, at most every 250ms, when a new source arrives. It is safe for
// concurrent use.
type Limiter struct {
	clock func() time.Time
	base  time.Time // the zero of bucket times

	mu        sync.Mutex
	table     map[key]bucket
	lastSweep int64
	max       int
}

// New returns a Limiter that reads the time from clock (time.Now if nil).
func New(clock func() time.Time) *Limiter {
	if clock == nil {
		clock = time.Now
	}
	return &Limiter{clock: clock, base: clock(), table: make(map[key]bucket), max: MaxEntries}
}

func makeKey(ip netip.Addr) key {
	ip = ip.Unmap()
	if ip.Is4() {
		return key(netip.AddrFrom4(ip.As4()).As16()) // v4-mapped form, full address
	}
	k := key(ip.As16())
	clear(k[8:]) // the /64
	return k
}

// Allow reports whether a handshake message from ip may be processed now,
// and if so charges it to ip's bucket. IPv4-mapped IPv6 addresses count as
// the IPv4 address. It does not allocate for sources already tracked.
func (l *Limiter) Allow(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	k := makeKey(ip)
	now := int64(l.clock().Sub(l.base))
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.table[k]
	if !ok {
		if len(l.table) >= l.max {
			if now-l.lastSweep < int64(lazySweepEvery) {
				return false
			}
			l.sweepLocked(now)
			if len(l.table) >= l.max {
				return false
			}
		}
		l.table[k] = bucket{tokens: maxTokens - cost, last: now}
		return true
	}
	if elapsed := now - b.last; elapsed > 0 {
		b.tokens = min(b.tokens+elapsed, maxTokens)
		b.last = now
	}
	if b.tokens < cost {
		l.table[k] = b
		return false
	}
	b.tokens -= cost
	l.table[k] = b
	return true
}

// Sweep forgets sources idle for Expiry or longer.
func (l *Limiter) Sweep() {
	now := int64(l.clock().Sub(l.base))
	l.mu.Lock()
	l.sweepLocked(now)
	l.mu.Unlock()
}

func (l *Limiter) sweepLocked(now int64) {
	l.lastSweep = now
	for k, b := range l.table {
		if now-b.last >= int64(Expiry) {
			delete(l.table, k)
		}
	}
}

// Len returns the number of sources tracked.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.table)
}
