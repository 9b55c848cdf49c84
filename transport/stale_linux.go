package transport

import (
	"net/netip"
	"time"
)

// staleFor is how long a source address the kernel refused is left out
// of sends before it is tried again.
const staleFor = time.Second

// staleSource is a source address the kernel refused (it was removed from
// the host): sends that would use it leave it out, letting routing pick a
// valid one at once instead of failing first every time, until the peer's
// next datagram brings a new sticky source or staleFor has passed.
type staleSource struct {
	addr  netip.Addr
	until int64 // nanoseconds of nowNano
}

func monotonicNano() int64 { return int64(time.Since(processStart)) }

var processStart = time.Now()

// isStale reports whether src was refused lately.
func (b *LinuxBind) isStale(src netip.Addr) bool {
	s := b.stale.Load()
	return s != nil && s.addr == src && b.nowNano() < s.until
}

// markStale records that the kernel refused src.
func (b *LinuxBind) markStale(src netip.Addr) {
	b.stale.Store(&staleSource{addr: src, until: b.nowNano() + int64(staleFor)})
}
