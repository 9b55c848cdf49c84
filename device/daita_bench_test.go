package device

import (
	"os"
	"strings"
	"testing"

	"github.com/gotatun/gotatun/daita"
)

// benchMachines are the three Mullvad DAITA machines of the public test
// data and the Maybenot README machine: four machines, as a relay hands
// out.
func benchMachines(tb testing.TB) []string {
	tb.Helper()
	data, err := os.ReadFile("../maybenot/testdata/machines-public.txt")
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	mullvad := false
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(line, "#"):
			mullvad = strings.Contains(line, "mullvadvpn-app/dist-assets/maybenot_machines")
		case mullvad && line != "":
			out = append(out, line)
		}
	}
	if len(out) != 3 {
		tb.Fatalf("found %d Mullvad machines, want 3", len(out))
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

func benchDataPathDAITA(b *testing.B, machines []string) {
	dp := newDataPath(b, 1420-28)
	dp.withDAITA(b, machines)
	b.SetBytes(int64(len(dp.pkt)))
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(b.N-done, 4096)
		dp.send(n)
		done += n
	}
	b.StopTimer()
	if bad := dp.tb.bad.Load(); bad != 0 {
		b.Fatalf("%d packets arrived altered", bad)
	}
}

// BenchmarkDataPath1420DAITA is BenchmarkDataPath1420 with DAITA on at
// both ends running the four machines.
func BenchmarkDataPath1420DAITA(b *testing.B) { benchDataPathDAITA(b, benchMachines(b)) }

// BenchmarkDataPath1420DAITAPaddingOnly has DAITA on with no machine:
// constant-size padding and decoy recognition only.
func BenchmarkDataPath1420DAITAPaddingOnly(b *testing.B) { benchDataPathDAITA(b, nil) }

func BenchmarkDataPathSmallDAITA(b *testing.B) {
	dp := newDataPath(b, 64)
	dp.withDAITA(b, benchMachines(b))
	b.SetBytes(int64(len(dp.pkt)))
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(b.N-done, 4096)
		dp.send(n)
		done += n
	}
}

func TestDataPathAllocsDAITA(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	dp := newDataPath(t, 1000)
	dp.withDAITA(t, benchMachines(t))
	dp.send(5000) // warm the pools and the scheduler's heap
	allocs := testing.AllocsPerRun(20, func() { dp.send(256) })
	perPacket := allocs / 256
	t.Logf("%.3f allocations per packet", perPacket)
	if perPacket > 0.05 {
		t.Fatalf("data path with DAITA allocates: %.3f allocations per packet", perPacket)
	}
	if bad := dp.tb.bad.Load(); bad != 0 {
		t.Fatalf("%d packets arrived altered", bad)
	}
}
