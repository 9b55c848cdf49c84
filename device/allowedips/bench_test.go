package allowedips

import (
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"
)

func benchLookup(b *testing.B, v6 bool) {
	prefixes := benchPrefixes(10000, v6)
	var tb Table[int]
	tb.Update(func(tx *Txn[int]) {
		for i, p := range prefixes {
			tx.Insert(p, i)
		}
	})
	// Probe addresses: half inside the table, half random.
	r := rand.New(rand.NewPCG(7, 8))
	addrs := make([]netip.Addr, 1024)
	for i := range addrs {
		if i%2 == 0 {
			addrs[i] = prefixes[r.IntN(len(prefixes))].Addr()
		} else {
			addrs[i] = lastAddr(prefixes[r.IntN(len(prefixes))])
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	found := 0
	for i := 0; b.Loop(); i++ {
		if _, ok := tb.Lookup(addrs[i&1023]); ok {
			found++
		}
	}
	if found == 0 {
		b.Fatal("nothing found")
	}
}

func BenchmarkLookup(b *testing.B) {
	b.Run("v4", func(b *testing.B) { benchLookup(b, false) })
	b.Run("v6", func(b *testing.B) { benchLookup(b, true) })
}

func BenchmarkLookupParallel(b *testing.B) {
	prefixes := benchPrefixes(10000, false)
	var tb Table[int]
	tb.Update(func(tx *Txn[int]) {
		for i, p := range prefixes {
			tx.Insert(p, i)
		}
	})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			tb.Lookup(prefixes[i%len(prefixes)].Addr())
			i++
		}
	})
}

// BenchmarkInsert10k measures building a 10,000-prefix table, one op per
// prefix ("single") and in one Update ("batch"); it also reports the memory
// the finished table holds per prefix.
func BenchmarkInsert10k(b *testing.B) {
	for _, mode := range []string{"single", "batch"} {
		b.Run(mode, func(b *testing.B) {
			prefixes := benchPrefixes(10000, false)
			b.ReportAllocs()
			var tb *Table[*int]
			peers := make([]*int, len(prefixes))
			for i := range peers {
				peers[i] = new(int)
			}
			for b.Loop() {
				tb = New[*int]()
				if mode == "single" {
					for i, p := range prefixes {
						tb.Insert(p, peers[i])
					}
				} else {
					tb.Update(func(tx *Txn[*int]) {
						for i, p := range prefixes {
							tx.Insert(p, peers[i])
						}
					})
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(retained(func() any {
				t := New[*int]()
				t.Update(func(tx *Txn[*int]) {
					for i, p := range prefixes {
						tx.Insert(p, peers[i])
					}
				})
				return t
			}))/float64(len(prefixes)), "B/prefix")
		})
	}
}

// retained returns the heap bytes still held by the value build returns.
func retained(build func() any) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	v := build()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(v)
	return after.HeapAlloc - before.HeapAlloc
}
