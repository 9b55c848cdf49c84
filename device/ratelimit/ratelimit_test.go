package ratelimit

import (
	"net/netip"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *fakeClock { return &fakeClock{now: time.Unix(1700000000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

var (
	ipA = netip.MustParseAddr("192.0.2.1")
	ipB = netip.MustParseAddr("192.0.2.2")
)

// allowed sends n messages from ip and returns how many were allowed.
func allowed(l *Limiter, ip netip.Addr, n int) int {
	c := 0
	for i := 0; i < n; i++ {
		if l.Allow(ip) {
			c++
		}
	}
	return c
}

func TestBurst(t *testing.T) {
	c := newClock()
	l := New(c.Now)
	if got := allowed(l, ipA, 100); got != Burst {
		t.Fatalf("burst allowed %d, want %d", got, Burst)
	}
}

func TestRefill(t *testing.T) {
	c := newClock()
	l := New(c.Now)
	allowed(l, ipA, Burst)
	if l.Allow(ipA) {
		t.Fatal("allowed beyond burst")
	}
	// One message's worth of time earns exactly one message.
	c.Advance(time.Second/Rate - time.Nanosecond)
	if l.Allow(ipA) {
		t.Fatal("allowed before a token accrued")
	}
	c.Advance(time.Nanosecond)
	if !l.Allow(ipA) {
		t.Fatal("denied after a token accrued")
	}
	if l.Allow(ipA) {
		t.Fatal("allowed two for one token")
	}
	// Sustained: over 10 s at 100 messages/s, about Rate per second get
	// through.
	total := 0
	for i := 0; i < 1000; i++ {
		c.Advance(10 * time.Millisecond)
		total += allowed(l, ipA, 1)
	}
	if total != 10*Rate {
		t.Fatalf("sustained: %d allowed in 10s, want %d", total, 10*Rate)
	}
	// A long pause refills only up to the burst.
	c.Advance(time.Hour)
	if got := allowed(l, ipA, 100); got != Burst {
		t.Fatalf("after pause allowed %d, want %d", got, Burst)
	}
}

func TestSourcesIndependent(t *testing.T) {
	c := newClock()
	l := New(c.Now)
	allowed(l, ipA, 100)
	if got := allowed(l, ipB, 100); got != Burst {
		t.Fatalf("second source allowed %d, want %d", got, Burst)
	}
	// IPv4-mapped IPv6 is the same source as the IPv4 address.
	if l.Allow(netip.MustParseAddr("::ffff:192.0.2.1")) {
		t.Fatal("mapped address escaped its IPv4 bucket")
	}
	// An IPv6 address that merely shares the low bytes is a different source.
	if !l.Allow(netip.MustParseAddr("::c000:201")) {
		t.Fatal("unrelated IPv6 source denied")
	}
	if l.Allow(netip.Addr{}) {
		t.Fatal("invalid address allowed")
	}
}

func TestIPv6Slash64(t *testing.T) {
	c := newClock()
	l := New(c.Now)
	a := netip.MustParseAddr("2001:db8:1:2::1")
	if got := allowed(l, a, 3); got != 3 {
		t.Fatalf("allowed %d", got)
	}
	// Same /64, different interface IDs: same bucket.
	if got := allowed(l, netip.MustParseAddr("2001:db8:1:2:ffff::9"), 10); got != Burst-3 {
		t.Fatalf("same /64 allowed %d, want %d", got, Burst-3)
	}
	if l.Allow(netip.MustParseAddr("2001:db8:1:2::1%eth0")) {
		t.Fatal("zone made a new source")
	}
	// Neighbouring /64: fresh bucket.
	if got := allowed(l, netip.MustParseAddr("2001:db8:1:3::1"), 10); got != Burst {
		t.Fatalf("other /64 allowed %d, want %d", got, Burst)
	}
	if l.Len() != 2 {
		t.Fatalf("Len = %d, want 2", l.Len())
	}
}

func TestExpiry(t *testing.T) {
	c := newClock()
	l := New(c.Now)
	allowed(l, ipA, 1)
	c.Advance(Expiry / 2)
	allowed(l, ipB, 1)
	c.Advance(Expiry/2 - time.Nanosecond)
	l.Sweep()
	if l.Len() != 2 {
		t.Fatalf("Len = %d before expiry, want 2", l.Len())
	}
	c.Advance(time.Nanosecond)
	l.Sweep()
	if l.Len() != 1 {
		t.Fatalf("Len = %d, want 1 (A expired)", l.Len())
	}
	// A source that keeps sending (even when denied) stays tracked.
	for i := 0; i < 30; i++ {
		c.Advance(100 * time.Millisecond)
		l.Allow(ipB)
		l.Sweep()
	}
	if l.Len() != 1 {
		t.Fatalf("Len = %d, want 1 (B active)", l.Len())
	}
	c.Advance(Expiry)
	l.Sweep()
	if l.Len() != 0 {
		t.Fatalf("Len = %d after all idle", l.Len())
	}
	// A forgotten source starts with a full bucket, exactly as if kept.
	if got := allowed(l, ipA, 100); got != Burst {
		t.Fatalf("after expiry allowed %d", got)
	}
}

func addrN(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}

func TestBoundedSize(t *testing.T) {
	c := newClock()
	l := New(c.Now)
	for i := 0; i < MaxEntries; i++ {
		if !l.Allow(addrN(i)) {
			t.Fatalf("source %d denied below the cap", i)
		}
	}
	if l.Len() != MaxEntries {
		t.Fatalf("Len = %d", l.Len())
	}
	// Full: new sources are denied, known ones keep their buckets.
	if l.Allow(addrN(MaxEntries)) {
		t.Fatal("new source allowed in a full table")
	}
	if !l.Allow(addrN(0)) {
		t.Fatal("known source denied in a full table")
	}
	if l.Len() != MaxEntries {
		t.Fatalf("table grew to %d", l.Len())
	}
	// Once entries are idle long enough, a new source triggers a lazy sweep
	// even without Sweep calls.
	c.Advance(Expiry)
	if !l.Allow(addrN(MaxEntries + 1)) {
		t.Fatal("new source denied after entries expired")
	}
	// addrN(0) was last used at the same instant as the others, so all of
	// them expired together; only the new source remains.
	if l.Len() != 1 {
		t.Fatalf("Len = %d after lazy sweep, want 1", l.Len())
	}
}

func TestLazySweepRateLimited(t *testing.T) {
	c := newClock()
	l := New(c.Now)
	l.max = 4
	for i := 0; i < 4; i++ {
		l.Allow(addrN(i)) // at t=0
	}
	c.Advance(900 * time.Millisecond)
	// Full and nothing expired: the lazy sweep finds nothing.
	if l.Allow(addrN(100)) {
		t.Fatal("allowed with a full table of live entries")
	}
	// At t=1s every entry has expired, but the table swept 100ms ago, so it
	// does not sweep again yet.
	c.Advance(100 * time.Millisecond)
	if l.Allow(addrN(101)) {
		t.Fatal("swept again within the lazy sweep interval")
	}
	if l.Len() != 4 {
		t.Fatalf("Len = %d, want 4", l.Len())
	}
	c.Advance(lazySweepEvery - 100*time.Millisecond)
	if !l.Allow(addrN(102)) {
		t.Fatal("expired entries not swept")
	}
	if l.Len() != 1 {
		t.Fatalf("Len = %d after lazy sweep, want 1", l.Len())
	}
}

func TestConcurrent(t *testing.T) {
	c := newClock()
	l := New(c.Now)
	var wg sync.WaitGroup
	counts := make([]int, 8)
	for g := range counts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				if l.Allow(ipA) {
					counts[g]++
				}
				if i%100 == 0 {
					l.Sweep()
				}
			}
		}()
	}
	wg.Wait()
	total := 0
	for _, n := range counts {
		total += n
	}
	if total != Burst {
		t.Fatalf("concurrent senders got %d, want %d", total, Burst)
	}
}

func BenchmarkAllow(b *testing.B) {
	l := New(nil)
	ips := make([]netip.Addr, 1024)
	for i := range ips {
		ips[i] = addrN(i)
		l.Allow(ips[i])
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		l.Allow(ips[i&1023])
	}
}

func BenchmarkAllowIPv6(b *testing.B) {
	l := New(nil)
	a := netip.MustParseAddr("2001:db8::1")
	l.Allow(a)
	b.ReportAllocs()
	for b.Loop() {
		l.Allow(a)
	}
}
