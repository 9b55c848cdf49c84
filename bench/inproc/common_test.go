package inproc

import (
	"flag"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/gotatun/gotatun/noise"
)

// peersFlag is the number of idle peers BenchmarkIdlePeers configures.
var peersFlag = flag.Int("peers", 10000, "idle peers configured by BenchmarkIdlePeers")

// payloadSize is the plaintext size of the encryption benchmarks: a full
// packet at the default WireGuard MTU.
const payloadSize = 1420

// Both implementations get the same work: the same keys, prefixes and
// addresses, from fixed seeds.

func seeded(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	for i := range s {
		s[i] = byte(seed >> (8 * (i % 8)))
	}
	s[31] ^= 0x5a
	return rand.NewChaCha8(s)
}

var (
	keysMu sync.Mutex
	keys   []noise.PrivateKey
)

// privateKeys returns n deterministic private keys, generated once.
func privateKeys(tb testing.TB, n int) []noise.PrivateKey {
	keysMu.Lock()
	defer keysMu.Unlock()
	if len(keys) < n {
		r := seeded(uint64(len(keys)) + 1)
		for len(keys) < n {
			k, err := noise.GeneratePrivateKey(r)
			if err != nil {
				tb.Fatal(err)
			}
			keys = append(keys, k)
		}
	}
	return keys[:n]
}

var (
	pubsMu sync.Mutex
	pubs   []noise.PublicKey
)

// publicKeys returns the public keys of privateKeys(n).
func publicKeys(tb testing.TB, n int) []noise.PublicKey {
	priv := privateKeys(tb, n)
	pubsMu.Lock()
	defer pubsMu.Unlock()
	for len(pubs) < n {
		pubs = append(pubs, priv[len(pubs)].PublicKey())
	}
	return pubs[:n]
}

// routeSet is the allowed-IPs workload: prefixes owned by peers, and
// addresses to look up (half inside some prefix, half anywhere).
type routeSet struct {
	prefixes []netip.Prefix
	owner    []int // index of the owning peer, per prefix
	addrs    []netip.Addr
}

const (
	routePrefixes = 10000
	routePeers    = 256
	routeAddrs    = 4096 // a power of two
)

var routes = sync.OnceValue(func() routeSet {
	r := rand.New(seeded(7))
	var rs routeSet
	seen := map[netip.Prefix]bool{}
	for len(rs.prefixes) < routePrefixes {
		var p netip.Prefix
		if r.IntN(5) < 4 {
			var a [4]byte
			for i := range a {
				a[i] = byte(r.Uint32())
			}
			p = netip.PrefixFrom(netip.AddrFrom4(a), 8+r.IntN(25)).Masked()
		} else {
			var a [16]byte
			a[0] = 0x20 | byte(r.IntN(16))
			for i := 1; i < 16; i++ {
				a[i] = byte(r.Uint32())
			}
			p = netip.PrefixFrom(netip.AddrFrom16(a), 16+r.IntN(113)).Masked()
		}
		if seen[p] {
			continue
		}
		seen[p] = true
		rs.prefixes = append(rs.prefixes, p)
		rs.owner = append(rs.owner, r.IntN(routePeers))
	}
	for len(rs.addrs) < routeAddrs {
		if r.IntN(2) == 0 {
			// An address inside a random prefix.
			p := rs.prefixes[r.IntN(len(rs.prefixes))]
			b := p.Addr().AsSlice()
			for i := p.Bits(); i < len(b)*8; i++ {
				if r.IntN(2) == 1 {
					b[i/8] |= 0x80 >> (i % 8)
				}
			}
			a, _ := netip.AddrFromSlice(b)
			rs.addrs = append(rs.addrs, a)
			continue
		}
		var a [4]byte
		for i := range a {
			a[i] = byte(r.Uint32())
		}
		rs.addrs = append(rs.addrs, netip.AddrFrom4(a))
	}
	return rs
})

// memSnapshot is the memory and goroutine count after a full GC.
type memSnapshot struct {
	heap, stack uint64
	goroutines  int
}

func snapshot() memSnapshot {
	// Let goroutines that are exiting finish, then collect twice so
	// finalizers and sync.Pool victims are gone too.
	settleGoroutines()
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSnapshot{heap: ms.HeapAlloc, stack: ms.StackInuse, goroutines: runtime.NumGoroutine()}
}

// settleGoroutines waits (briefly) until the goroutine count stops changing.
func settleGoroutines() {
	last := runtime.NumGoroutine()
	for range 50 {
		time.Sleep(10 * time.Millisecond)
		n := runtime.NumGoroutine()
		if n == last {
			return
		}
		last = n
	}
}

// idleResult is what BenchmarkIdlePeers reports for one implementation.
type idleResult struct {
	base, tenth, full memSnapshot
	peers             int
}

func (r idleResult) report(b *testing.B) {
	n := float64(r.peers)
	b.ReportMetric((float64(r.full.heap)-float64(r.base.heap))/n, "heap-B/peer")
	b.ReportMetric((float64(r.full.heap+r.full.stack)-float64(r.base.heap+r.base.stack))/n, "mem-B/peer")
	b.ReportMetric(float64(r.full.goroutines-r.base.goroutines)/n, "goroutines/peer")
	b.ReportMetric(float64(r.full.goroutines-r.tenth.goroutines), "goroutine-growth")
}

// BenchmarkHandshake: one full handshake per op — initiation created and
// consumed, response created and consumed, and both sides' sessions
// derived. MACs are not computed by either implementation's functions.
func BenchmarkHandshake(b *testing.B) {
	b.Run("gotatun", benchHandshakeGotatun)
	b.Run("wireguard-go", benchHandshakeWG)
}

// BenchmarkSeal1420 encrypts one 1420-byte packet in place per op.
func BenchmarkSeal1420(b *testing.B) {
	b.Run("gotatun", benchSealGotatun)
	b.Run("wireguard-go", benchSealWG)
}

// BenchmarkOpen1420 authenticates and decrypts one 1420-byte packet in
// place per op (restoring the ciphertext first, the same copy for both).
func BenchmarkOpen1420(b *testing.B) {
	b.Run("gotatun", benchOpenGotatun)
	b.Run("wireguard-go", benchOpenWG)
}

// BenchmarkAllowedIPsLookup looks up one address per op in a table of
// 10,000 prefixes.
func BenchmarkAllowedIPsLookup(b *testing.B) {
	b.Run("gotatun", benchLookupGotatun)
	b.Run("wireguard-go", benchLookupWG)
}

// BenchmarkIdlePeers configures -peers idle peers on a running device and
// reports heap, stack and goroutines per peer. It measures once per call
// whatever b.N is (the figures are per peer, not per op); its ns/op is the
// time to build the device and configure the peers.
func BenchmarkIdlePeers(b *testing.B) {
	b.Run("gotatun", benchIdleGotatun)
	b.Run("wireguard-go", benchIdleWG)
}

// TestRoutes checks the shared workload is what the benchmarks claim.
func TestRoutes(t *testing.T) {
	rs := routes()
	if len(rs.prefixes) != routePrefixes || len(rs.addrs) != routeAddrs || len(rs.owner) != routePrefixes {
		t.Fatalf("workload sizes %d/%d/%d", len(rs.prefixes), len(rs.owner), len(rs.addrs))
	}
	const checked = 512
	inside := 0
	for _, a := range rs.addrs[:checked] {
		for _, p := range rs.prefixes {
			if p.Contains(a) {
				inside++
				break
			}
		}
	}
	if inside < checked*2/5 {
		t.Fatalf("only %d of %d lookup addresses fall inside a prefix, want about half", inside, checked)
	}
}
