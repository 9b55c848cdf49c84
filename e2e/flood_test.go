//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// floodBytesEnv sets how much each direction of TestSustainedUDP sends, in
// iperf3's notation (1G); the default keeps CI short.
const floodBytesEnv = "GOTATUN_E2E_FLOOD_BYTES"

// maxDaemonRSS bounds a gotatun daemon's peak resident memory under the
// flood: far above what it needs, far below what growing without bound
// would reach.
const maxDaemonRSS = 512 << 20

// peakRSS reads a process's peak resident set size (VmHWM) in bytes.
func peakRSS(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

// TestSustainedUDP floods the tunnel with UDP at the highest rate iperf3
// can offer (-b 0), both ways at once, at the default and a jumbo MTU:
// the daemons survive, their memory stays bounded, and the tunnel works
// afterwards.
func TestSustainedUDP(t *testing.T) {
	need(t, "iperf3", "ss")
	size := "200M"
	if v := os.Getenv(floodBytesEnv); v != "" {
		size = v
	}
	for _, implB := range []string{gotatun, wireguardGo} {
		for _, mtu := range []int{1420, 9000} {
			t.Run(fmt.Sprintf("gotatun-%s/mtu=%d", implB, mtu), func(t *testing.T) {
				p := jumboPair(t, true, implB)
				p.setMTU(mtu)
				fullSizeUDP(t, p, mtu, 3)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
				defer cancel()
				defer iperfServer(ctx, t, p.nb, innerB4)()
				start := time.Now()
				out, err := p.na.command(ctx, "iperf3", "-c", innerB4.String(), "-u", "-b", "0", "--bidir",
					"-n", size, "-l", strconv.Itoa(mtu-28), "-J").Output()
				elapsed := time.Since(start)
				if err != nil {
					t.Fatalf("iperf3: %v\n%s", err, out)
				}
				var res struct {
					Error string `json:"error"`
					End   struct {
						Sum struct {
							Bytes   uint64  `json:"bytes"`
							Packets uint64  `json:"packets"`
							Lost    uint64  `json:"lost_packets"`
							Percent float64 `json:"lost_percent"`
						} `json:"sum"`
						SumBidirReverse struct {
							Bytes   uint64  `json:"bytes"`
							Packets uint64  `json:"packets"`
							Lost    uint64  `json:"lost_packets"`
							Percent float64 `json:"lost_percent"`
						} `json:"sum_bidir_reverse"`
					} `json:"end"`
				}
				if err := json.Unmarshal(out, &res); err != nil || res.Error != "" {
					t.Fatalf("iperf3 output: %v %s\n%s", err, res.Error, out)
				}
				fwd, rev := res.End.Sum, res.End.SumBidirReverse
				t.Logf("%s each way in %v: a→b %d packets, %.1f%% lost; b→a %d packets, %.1f%% lost",
					size, elapsed.Round(time.Millisecond), fwd.Packets, fwd.Percent, rev.Packets, rev.Percent)
				if fwd.Lost >= fwd.Packets || rev.Lost >= rev.Packets {
					t.Fatalf("nothing crossed one way: %+v / %+v", fwd, rev)
				}
				for _, i := range []*iface{p.a, p.b} {
					select {
					case <-i.exited:
						t.Fatalf("%s (%s) died under the flood: %v\n%s", i.name, i.impl, i.err, i.out.String())
					default:
					}
					rss, err := peakRSS(i.cmd.Process.Pid)
					if err != nil {
						t.Fatal(err)
					}
					t.Logf("%s (%s): peak RSS %d MiB", i.name, i.impl, rss>>20)
					if i.impl == gotatun && rss > maxDaemonRSS {
						t.Fatalf("%s: peak RSS %d MiB, more than %d MiB", i.name, rss>>20, maxDaemonRSS>>20)
					}
				}
				fullSizeUDP(t, p, mtu, 3)
				transfer(t, p.na, p.nb, innerB4, mtuTransfer, nil)
			})
		}
	}
}
