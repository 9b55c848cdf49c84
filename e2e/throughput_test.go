//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

// TestThroughputReport measures iperf3 TCP throughput through a gotatun
// tunnel and a wireguard-go tunnel between two namespaces, in interleaved
// rounds. It only reports (speed is not asserted: the machine is shared);
// it runs when GOTATUN_E2E_THROUGHPUT=1.
func TestThroughputReport(t *testing.T) {
	if os.Getenv("GOTATUN_E2E_THROUGHPUT") != "1" {
		t.Skip("measurement only; set GOTATUN_E2E_THROUGHPUT=1 to run it")
	}
	need(t, "iperf3")
	pairs := map[string]*pair{
		gotatun:     newPair(t, pairOpts{implA: gotatun, implB: gotatun, initiator: 'a'}),
		wireguardGo: newPair(t, pairOpts{implA: wireguardGo, implB: wireguardGo, initiator: 'a'}),
	}
	for _, p := range pairs {
		ping(t, p.na, innerB4, 3)
	}
	results := map[string][]float64{}
	for round := 1; round <= 3; round++ {
		for _, impl := range []string{gotatun, wireguardGo} {
			bps := iperf(t, pairs[impl], 10*time.Second)
			results[impl] = append(results[impl], bps)
			t.Logf("round %d %-12s %7.0f Mbit/s", round, impl, bps/1e6)
		}
	}
	for _, impl := range []string{gotatun, wireguardGo} {
		var sum float64
		var s []string
		for _, v := range results[impl] {
			sum += v
			s = append(s, fmt.Sprintf("%.0f", v/1e6))
		}
		t.Logf("%-12s mean %.0f Mbit/s (rounds: %s)", impl, sum/float64(len(results[impl]))/1e6, strings.Join(s, ", "))
	}
}

// iperf runs one iperf3 TCP test from a to b and returns the received
// rate in bit/s.
func iperf(t *testing.T, p *pair, d time.Duration) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d+time.Minute)
	defer cancel()
	defer iperfServer(ctx, t, p.nb, innerB4)()
	var out string
	var err error
	out, err = p.na.try("iperf3", "-c", innerB4.String(), "-t", fmt.Sprint(int(d.Seconds())), "-J")
	if err != nil {
		t.Fatalf("iperf3: %v\n%s", err, out)
	}
	var res struct {
		Error string `json:"error"`
		End   struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("iperf3 output: %v\n%s", err, out)
	}
	if res.Error != "" || res.End.SumReceived.BitsPerSecond == 0 {
		t.Fatalf("iperf3 through %s: %q\n%s", p.a.impl, res.Error, out)
	}
	return res.End.SumReceived.BitsPerSecond
}

// iperfServer starts an iperf3 server for one test on addr in n, bound
// to ctx, and waits until it listens; the returned function waits for it
// to end.
func iperfServer(ctx context.Context, t *testing.T, n *netns, addr netip.Addr) (wait func()) {
	t.Helper()
	srv := n.command(ctx, "iperf3", "-s", "-1", "-B", addr.String())
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	waitListening(t, n, 5201)
	return func() { srv.Wait() }
}

// waitListening waits until a TCP socket listens on port in n.
func waitListening(t *testing.T, n *netns, port int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := n.try("ss", "-Hltn", fmt.Sprintf("sport = :%d", port))
		if strings.TrimSpace(out) != "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on port %d", port)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
