package device

import (
	"flag"
	"testing"
	"time"

	"github.com/gotatun/gotatun/daita"
	"github.com/gotatun/gotatun/internal/testmachines"
)

// benchMachines are the three Mullvad DAITA machines of the public test
// data and the Maybenot README machine: four machines, as a relay hands
// out.
func benchMachines(tb testing.TB) []string {
	tb.Helper()
	out, err := testmachines.Mullvad("../maybenot/testdata/machines-public.txt")
	if err != nil {
		tb.Fatal(err)
	}
	return append(out, padAfterSend)
}

// withDAITA turns DAITA on at both ends of dp.
func (dp *dataPath) withDAITA(tb testing.TB, machines []string) {
	tb.Helper()
	cfg := daita.DefaultConfig()
	cfg.Machines = machines
	for _, pr := range [][2]*Device{{dp.a, dp.b}, {dp.b, dp.a}} {
		id := pr[1].ident.Load()
		if err := pr[0].Apply(Config{Peers: []PeerConfig{{PublicKey: id.pub, UpdateOnly: true, DAITA: &cfg}}}); err != nil {
			tb.Fatal(err)
		}
	}
}

func benchDataPathDAITA(b *testing.B, payload int, machines []string) {
	dp := newDataPath(b, payload)
	dp.withDAITA(b, machines)
	dp.bench(b)
}

// BenchmarkDataPath1420DAITA is BenchmarkDataPath1420 with DAITA on at
// both ends running the four machines.
func BenchmarkDataPath1420DAITA(b *testing.B) { benchDataPathDAITA(b, 1420-28, benchMachines(b)) }

// BenchmarkDataPath1420DAITAPaddingOnly has DAITA on with no machine:
// constant-size padding and decoy recognition only.
func BenchmarkDataPath1420DAITAPaddingOnly(b *testing.B) { benchDataPathDAITA(b, 1420-28, nil) }

func BenchmarkDataPathSmallDAITA(b *testing.B) { benchDataPathDAITA(b, 64, benchMachines(b)) }

func TestDataPathAllocsDAITA(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	dp := newDataPath(t, 1000)
	dp.withDAITA(t, benchMachines(t))
	dp.checkAllocs(t)
}

// idleDAITAPeers measures the heap and goroutines that n idle peers with
// DAITA on (the four machines) cost, the peers included.
func idleDAITAPeers(tb testing.TB, n int) (heapPerPeer, goroutinesPerPeer float64) {
	tb.Helper()
	dcfg := daita.DefaultConfig()
	dcfg.Machines = benchMachines(tb)
	return idlePeersWith(tb, n, func(pc *PeerConfig) { pc.DAITA = &dcfg }, func(d *Device) {
		if got := d.dsched.Peers(); got != n {
			tb.Fatalf("%d DAITA peers running, want %d", got, n)
		}
	})
}

// TestIdleDAITAPeersAreCheap: an idle peer with DAITA on costs at most
// 16 KiB (with the peer itself) and no goroutine.
func TestIdleDAITAPeersAreCheap(t *testing.T) {
	heap, gor := idleDAITAPeers(t, 2000)
	t.Logf("%.0f heap bytes and %.4f goroutines per idle DAITA peer", heap, gor)
	if heap > 16<<10 {
		t.Fatalf("%.0f bytes per idle DAITA peer, want at most 16 KiB", heap)
	}
	if gor != 0 {
		t.Fatalf("goroutines grow with DAITA peers: %.4f per peer", gor)
	}
}

var daitaPeers = flag.Int("daita-peers", 10000, "peers for BenchmarkIdleDAITAPeers")

// BenchmarkIdleDAITAPeers measures -daita-peers idle DAITA peers.
func BenchmarkIdleDAITAPeers(b *testing.B) {
	for range b.N {
		heap, gor := idleDAITAPeers(b, *daitaPeers)
		b.ReportMetric(heap, "heapB/peer")
		b.ReportMetric(gor, "goroutines/peer")
	}
}

// benchBursts sends bursts of burst full-size packets from A to B, each
// answered by burst/2 TCP-ACK-sized packets from B to A, as a TCP flow
// does; an op is one burst and its answers.
func benchBursts(b *testing.B, burst int, machines []string, daitaOn bool) {
	dp := newDataPath(b, 1420-28)
	if daitaOn {
		dp.withDAITA(b, machines)
	}
	ack := ipv4Packet("10.0.0.2", "10.0.0.1", make([]byte, 32))
	acks := max(1, burst/2)
	var got int64
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		dp.send(burst)
		got += int64(acks)
		dp.ta.target.Store(got)
		for range acks {
			dp.tb.in <- ack
		}
		select {
		case <-dp.ta.reached:
		case <-time.After(30 * time.Second):
			b.Fatalf("answers stalled: %d of %d arrived", dp.ta.written.Load(), got)
		}
	}
}

// BenchmarkDataPathRoundTrip* send one packet and its answer; the
// Burst32 ones 32 packets and 16 answers, with DAITA off, on with the four
// machines, and on with padding only.
func BenchmarkDataPathRoundTrip(b *testing.B)      { benchBursts(b, 1, nil, false) }
func BenchmarkDataPathRoundTripDAITA(b *testing.B) { benchBursts(b, 1, benchMachines(b), true) }
func BenchmarkDataPathBurst32(b *testing.B)        { benchBursts(b, 32, nil, false) }
func BenchmarkDataPathBurst32DAITA(b *testing.B)   { benchBursts(b, 32, benchMachines(b), true) }
func BenchmarkDataPathBurst32DAITAPaddingOnly(b *testing.B) {
	benchBursts(b, 32, nil, true)
}
