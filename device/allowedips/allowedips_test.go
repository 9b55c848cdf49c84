package allowedips

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"testing"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }

func wantLookup[P comparable](t *testing.T, tb *Table[P], addr string, want P, wantOK bool) {
	t.Helper()
	got, ok := tb.Lookup(ip(addr))
	if ok != wantOK || got != want {
		t.Errorf("Lookup(%s) = %v, %v; want %v, %v", addr, got, ok, want, wantOK)
	}
}

func TestEmpty(t *testing.T) {
	var tb Table[string]
	wantLookup(t, &tb, "10.0.0.1", "", false)
	wantLookup(t, &tb, "::1", "", false)
	if tb.Len() != 0 || tb.Prefixes("a") != nil {
		t.Fatal("empty table not empty")
	}
	if tb.Remove(pfx("10.0.0.0/8"), "a") {
		t.Fatal("removed from empty table")
	}
	tb.RemovePeer("a")
	if _, ok := tb.Lookup(netip.Addr{}); ok {
		t.Fatal("zero Addr found")
	}
}

func TestLongestMatchAcrossPeers(t *testing.T) {
	tb := New[string]()
	tb.Insert(pfx("10.0.0.0/8"), "A")
	tb.Insert(pfx("10.1.0.0/16"), "B")
	tb.Insert(pfx("10.1.2.3/32"), "C")
	wantLookup(t, tb, "10.0.0.1", "A", true)
	wantLookup(t, tb, "10.1.0.1", "B", true)
	wantLookup(t, tb, "10.1.255.255", "B", true)
	wantLookup(t, tb, "10.1.2.3", "C", true)
	wantLookup(t, tb, "10.1.2.4", "B", true)
	wantLookup(t, tb, "10.2.0.0", "A", true)
	wantLookup(t, tb, "11.0.0.0", "", false)
	wantLookup(t, tb, "9.255.255.255", "", false)
	// IPv4-mapped IPv6 is IPv6: no IPv4 prefix matches it.
	wantLookup(t, tb, "::ffff:10.1.2.3", "", false)
	// The IPv6 trie is separate.
	wantLookup(t, tb, "a01::", "", false)
	if tb.Len() != 3 {
		t.Fatalf("Len = %d", tb.Len())
	}

	// Removing the middle prefix falls back to the shorter one.
	if tb.Remove(pfx("10.1.0.0/16"), "A") {
		t.Fatal("A removed B's prefix")
	}
	if !tb.Remove(pfx("10.1.0.0/16"), "B") {
		t.Fatal("B could not remove its prefix")
	}
	if tb.Remove(pfx("10.1.0.0/16"), "B") {
		t.Fatal("removed twice")
	}
	wantLookup(t, tb, "10.1.0.1", "A", true)
	wantLookup(t, tb, "10.1.2.3", "C", true)
	if tb.Len() != 2 {
		t.Fatalf("Len = %d", tb.Len())
	}
}

func TestMaskingAndMove(t *testing.T) {
	var tb Table[int]
	tb.Insert(pfx("192.168.1.77/24"), 1)
	if got := tb.Prefixes(1); !slices.Equal(got, []netip.Prefix{pfx("192.168.1.0/24")}) {
		t.Fatalf("Prefixes = %v", got)
	}
	// The same prefix, written differently, moves to peer 2.
	tb.Insert(pfx("192.168.1.1/24"), 2)
	wantLookup(t, &tb, "192.168.1.200", 2, true)
	if got := tb.Prefixes(1); len(got) != 0 {
		t.Fatalf("peer 1 still has %v", got)
	}
	if got := tb.Prefixes(2); !slices.Equal(got, []netip.Prefix{pfx("192.168.1.0/24")}) {
		t.Fatalf("Prefixes(2) = %v", got)
	}
	if tb.Len() != 1 {
		t.Fatalf("Len = %d", tb.Len())
	}
	// Reinserting for the same peer changes nothing.
	tb.Insert(pfx("192.168.1.0/24"), 2)
	if tb.Len() != 1 || len(tb.Prefixes(2)) != 1 {
		t.Fatal("reinsert duplicated the entry")
	}
	if tb.Remove(pfx("192.168.1.0/24"), 1) {
		t.Fatal("old owner removed moved prefix")
	}
	// Invalid prefixes are ignored.
	tb.Insert(netip.Prefix{}, 3)
	if tb.Len() != 1 {
		t.Fatal("invalid prefix inserted")
	}
}

func TestDefaultRoutesAndHosts(t *testing.T) {
	var tb Table[string]
	tb.Insert(pfx("0.0.0.0/0"), "v4default")
	tb.Insert(pfx("::/0"), "v6default")
	tb.Insert(pfx("1.2.3.4/32"), "host4")
	tb.Insert(pfx("2001:db8::1/128"), "host6")
	tb.Insert(pfx("2001:db8::/32"), "net6")
	tb.Insert(pfx("2001:db8:0:0:8000::/65"), "half")
	wantLookup(t, &tb, "1.2.3.4", "host4", true)
	wantLookup(t, &tb, "1.2.3.5", "v4default", true)
	wantLookup(t, &tb, "255.255.255.255", "v4default", true)
	wantLookup(t, &tb, "0.0.0.0", "v4default", true)
	wantLookup(t, &tb, "2001:db8::1", "host6", true)
	wantLookup(t, &tb, "2001:db8::2", "net6", true)
	wantLookup(t, &tb, "2001:db8::8000:0:0:1", "half", true)
	wantLookup(t, &tb, "2001:db8:0:1::", "net6", true)
	wantLookup(t, &tb, "2001:db9::", "v6default", true)
	wantLookup(t, &tb, "::", "v6default", true)
	wantLookup(t, &tb, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "v6default", true)
	wantLookup(t, &tb, "fe80::1%eth0", "v6default", true)

	tb.RemovePeer("v4default")
	wantLookup(t, &tb, "1.2.3.5", "", false)
	wantLookup(t, &tb, "1.2.3.4", "host4", true)
	tb.RemovePeer("net6")
	wantLookup(t, &tb, "2001:db8::2", "v6default", true)
	wantLookup(t, &tb, "2001:db8::1", "host6", true)
	if tb.Len() != 4 {
		t.Fatalf("Len = %d", tb.Len())
	}
}

func TestPrefixesSorted(t *testing.T) {
	var tb Table[int]
	in := []string{"2001:db8::/48", "10.0.0.0/8", "10.0.0.0/24", "::/0", "1.0.0.0/8", "fd00::/8"}
	for _, s := range in {
		tb.Insert(pfx(s), 7)
	}
	want := []netip.Prefix{pfx("1.0.0.0/8"), pfx("10.0.0.0/8"), pfx("10.0.0.0/24"), pfx("::/0"), pfx("2001:db8::/48"), pfx("fd00::/8")}
	if got := tb.Prefixes(7); !slices.Equal(got, want) {
		t.Fatalf("Prefixes = %v, want %v", got, want)
	}
	tb.RemovePeer(7)
	if tb.Len() != 0 || tb.Prefixes(7) != nil {
		t.Fatal("RemovePeer left entries")
	}
	if s := tb.snap.Load(); s.v4 != nil || s.v6 != nil {
		t.Fatal("trie not empty after removing everything")
	}
}

func TestUpdateBatchIsAtomic(t *testing.T) {
	var tb Table[int]
	tb.Insert(pfx("10.0.0.0/8"), 1)
	tb.Update(func(tx *Txn[int]) {
		tx.Insert(pfx("10.1.0.0/16"), 2)
		// Not visible until Update returns.
		if p, ok := tb.Lookup(ip("10.1.0.1")); !ok || p != 1 {
			t.Errorf("inside Update: Lookup = %d, %v; want the published 1", p, ok)
		}
		tx.Insert(pfx("10.2.0.0/16"), 3)
		if !tx.Remove(pfx("10.0.0.0/8"), 1) {
			t.Error("Remove in txn failed")
		}
		tx.Insert(pfx("10.1.0.0/16"), 4) // moves within the transaction
		tx.RemovePeer(3)
	})
	wantLookup(t, &tb, "10.1.0.1", 4, true)
	wantLookup(t, &tb, "10.2.0.1", 0, false)
	wantLookup(t, &tb, "10.3.0.1", 0, false)
	if tb.Len() != 1 {
		t.Fatalf("Len = %d", tb.Len())
	}
}

// An older snapshot must be unaffected by later writes (readers walking it
// concurrently see a consistent trie).
func TestSnapshotsImmutable(t *testing.T) {
	var tb Table[int]
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200; i++ {
		tb.Insert(randPrefix(r), r.IntN(5))
	}
	old := tb.snap.Load()
	before := dump(old)
	for i := 0; i < 500; i++ {
		switch r.IntN(3) {
		case 0:
			tb.Insert(randPrefix(r), r.IntN(5))
		case 1:
			tb.RemovePeer(r.IntN(5))
		default:
			tb.Update(func(tx *Txn[int]) {
				for j := 0; j < 10; j++ {
					tx.Insert(randPrefix(r), r.IntN(5))
					tx.Remove(randPrefix(r), r.IntN(5))
				}
			})
		}
	}
	if after := dump(old); after != before {
		t.Fatal("published snapshot was modified")
	}
}

func dump[P comparable](s *snapshot[P]) string {
	var out []byte
	var walk func(n *node[P], depth int)
	walk = func(n *node[P], depth int) {
		if n == nil {
			return
		}
		out = fmt.Appendf(out, "%d %x %x %d %v %v %p %p\n", depth, n.hi, n.lo, n.bits, n.has, n.peer, n.child[0], n.child[1])
		walk(n.child[0], depth+1)
		walk(n.child[1], depth+1)
	}
	walk(s.v4, 0)
	walk(s.v6, 0)
	return string(out)
}

func randPrefix(r *rand.Rand) netip.Prefix {
	if r.IntN(2) == 0 {
		a := [4]byte{10, byte(r.IntN(4)), byte(r.IntN(256)), byte(r.IntN(256))}
		return netip.PrefixFrom(netip.AddrFrom4(a), 8+r.IntN(25)).Masked()
	}
	var a [16]byte
	a[0], a[1], a[2], a[3] = 0x20, 0x01, 0x0d, 0xb8
	a[4] = byte(r.IntN(4))
	a[8] = byte(r.IntN(256))
	a[15] = byte(r.IntN(256))
	return netip.PrefixFrom(netip.AddrFrom16(a), 32+r.IntN(97)).Masked()
}

func TestConcurrentLookups(t *testing.T) {
	var tb Table[int]
	// 10.0.0.0/8 always belongs to peer 1; writers churn more specific
	// prefixes underneath it, which must never make an address outside them
	// unroutable.
	tb.Insert(pfx("10.0.0.0/8"), 1)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := ip("10.200.0.1")
			for {
				select {
				case <-stop:
					return
				default:
				}
				if p, ok := tb.Lookup(a); !ok || p != 1 {
					t.Errorf("Lookup = %d, %v", p, ok)
					return
				}
			}
		}()
	}
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 2000; i++ {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(r.IntN(100)), byte(r.IntN(256)), 0}), 16+r.IntN(9)).Masked()
		if r.IntN(2) == 0 {
			tb.Insert(p, 2)
		} else {
			tb.Remove(p, 2)
		}
	}
	close(stop)
	wg.Wait()
}

func TestManyPrefixes(t *testing.T) {
	var tb Table[int]
	prefixes := benchPrefixes(10000, false)
	tb.Update(func(tx *Txn[int]) {
		for i, p := range prefixes {
			tx.Insert(p, i)
		}
	})
	if tb.Len() != len(prefixes) {
		t.Fatalf("Len = %d, want %d", tb.Len(), len(prefixes))
	}
	for i, p := range prefixes {
		if !p.IsSingleIP() {
			continue
		}
		if got, ok := tb.Lookup(p.Addr()); !ok || got != i {
			t.Fatalf("Lookup(%v) = %d, %v; want %d", p.Addr(), got, ok, i)
		}
	}
	for i := 0; i < len(prefixes); i += 2 {
		tb.RemovePeer(i)
	}
	if tb.Len() != len(prefixes)/2 {
		t.Fatalf("Len = %d", tb.Len())
	}
	for i, p := range prefixes {
		if !p.IsSingleIP() {
			continue
		}
		got, ok := tb.Lookup(p.Addr())
		if i%2 == 0 && ok && got == i {
			t.Fatalf("removed %v still routes to %d", p, got)
		}
		if i%2 == 1 && (!ok || got != i) {
			t.Fatalf("Lookup(%v) = %d, %v", p.Addr(), got, ok)
		}
	}
}

// benchPrefixes returns n distinct prefixes like a large deployment: a /32
// (or /128) per peer inside a few ranges, plus some shorter ones.
func benchPrefixes(n int, v6 bool) []netip.Prefix {
	r := rand.New(rand.NewPCG(42, uint64(n)))
	seen := make(map[netip.Prefix]bool, n)
	out := make([]netip.Prefix, 0, n)
	for len(out) < n {
		var p netip.Prefix
		if v6 {
			var a [16]byte
			a[0], a[1] = 0xfd, byte(r.IntN(4))
			for i := 8; i < 16; i++ {
				a[i] = byte(r.Uint32())
			}
			bits := 128
			if r.IntN(10) == 0 {
				bits = 64 + r.IntN(64)
			}
			p = netip.PrefixFrom(netip.AddrFrom16(a), bits).Masked()
		} else {
			x := r.Uint32()
			a := [4]byte{10, byte(x >> 16), byte(x >> 8), byte(x)}
			bits := 32
			if r.IntN(10) == 0 {
				bits = 16 + r.IntN(16)
			}
			p = netip.PrefixFrom(netip.AddrFrom4(a), bits).Masked()
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	// Host routes last so each one's own address finds itself.
	slices.SortStableFunc(out, func(a, b netip.Prefix) int { return a.Bits() - b.Bits() })
	return out
}

// The table follows the packet's family, as the kernel does: an
// IPv4-mapped IPv6 address is an IPv6 address.
func TestIPv4MappedIPv6(t *testing.T) {
	tb := New[string]()
	tb.Insert(pfx("10.0.0.2/32"), "v4owner")
	tb.Insert(pfx("::/0"), "v6default")
	// An IPv6 source ::ffff:10.0.0.2 belongs to the owner of ::/0, not to
	// the peer owning 10.0.0.2/32 (the inbound source check).
	wantLookup(t, tb, "::ffff:10.0.0.2", "v6default", true)
	// Outbound to ::ffff:10.0.0.2 likewise goes to the IPv6 owner.
	wantLookup(t, tb, "::ffff:10.0.0.3", "v6default", true)
	wantLookup(t, tb, "10.0.0.2", "v4owner", true)
	wantLookup(t, tb, "10.0.0.3", "", false)

	// A configured ::ffff:0:0/96 matches every mapped address and nothing
	// IPv4 or other IPv6.
	tb.Insert(pfx("::ffff:0:0/96"), "mapped")
	tb.Insert(pfx("::ffff:10.0.0.0/104"), "mapped10")
	wantLookup(t, tb, "::ffff:192.0.2.1", "mapped", true)
	wantLookup(t, tb, "::ffff:10.9.9.9", "mapped10", true)
	wantLookup(t, tb, "::ffff:10.0.0.2", "mapped10", true)
	wantLookup(t, tb, "192.0.2.1", "", false)
	wantLookup(t, tb, "10.0.0.2", "v4owner", true)
	wantLookup(t, tb, "::fffe:c000:201", "v6default", true)
	if got := tb.Prefixes("mapped"); len(got) != 1 || got[0] != pfx("::ffff:0:0/96") {
		t.Fatalf("Prefixes = %v", got)
	}
	// Without any IPv6 prefix a mapped address has no owner.
	tb.RemovePeer("v6default")
	tb.RemovePeer("mapped")
	tb.RemovePeer("mapped10")
	wantLookup(t, tb, "::ffff:10.0.0.2", "", false)
}
