//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gotatun/gotatun/internal/testmachines"
)

// DAITA: gotatun against itself with DAITA off and on (wireguard-go has no
// DAITA), in the same namespaces, daemons and rounds as the rest.

const groupDAITA = "DAITA (gotatun at both ends, DAITA on against off; wireguard-go has none)"

func daitaMetricDefs(p plan) []metricDef {
	return []metricDef{
		{ID: "daita_tcp1", Short: "DAITA on: TCP, 1 stream", Name: "TCP, 1 stream, A→B and B→A averaged, DAITA on at both ends (four machines)",
			Unit: "Mbit/s", Higher: true, Group: groupDAITA, NoWG: true},
		{ID: "daita_tcp_ratio", Short: "DAITA on ÷ off: TCP", Name: "TCP throughput with DAITA on ÷ off (1 stream, both directions, same daemons)",
			Unit: "×", Higher: true, Group: groupDAITA, NoWG: true, Digits: 2, Target: &target{Kind: "abs_min", Value: 0.9, Text: "≥ 0.9× DAITA off"}},
		{ID: "daita_cpu_per_gb", Short: "DAITA on: CPU s per GB", Name: "CPU time of both daemons per GB moved, DAITA on",
			Unit: "CPU s/GB", Group: groupDAITA, NoWG: true, Digits: 2},
		{ID: "daita_cpu_ratio", Short: "DAITA on ÷ off: CPU per GB", Name: "CPU time per GB with DAITA on ÷ off",
			Unit: "×", Group: groupDAITA, NoWG: true, Digits: 2, Target: &target{Kind: "abs_max", Value: 1.15, Text: "≤ 1.15× DAITA off"}},
		{ID: "daita_rtt_added", Short: "Padding only: added idle RTT", Name: "Idle ping RTT added by DAITA with padding only (no machines), mean",
			Unit: "µs", Group: groupDAITA, NoWG: true, Digits: 1},
		{ID: "daita_pkt_allocs", Short: "DAITA on: allocs per packet", Name: "Allocations per packet through two devices with DAITA on (four machines)",
			Unit: "allocs", Group: groupDAITA, NoWG: true, Digits: 2, Target: &target{Kind: "all_zero", Text: "0 allocs"}},
		{ID: "daita_idle_heap_per_peer", Short: "Heap per idle DAITA peer", Name: fmt.Sprintf("Heap per idle peer with DAITA on, four machines (%d peers)", p.IdlePeers),
			Unit: "B", Group: groupDAITA, NoWG: true, Target: &target{Kind: "abs_max", Value: 16 << 10, Text: "≤ 16 KiB"}},
		{ID: "daita_idle_goroutines_per_peer", Short: "Goroutines per idle DAITA peer", Name: fmt.Sprintf("Goroutines per idle DAITA peer (%d peers)", p.IdlePeers),
			Unit: "goroutines", Group: groupDAITA, NoWG: true, Digits: 3, Target: &target{Kind: "abs_max", Value: 0, Text: "0"}},
	}
}

// daitaMachines writes the machines DAITA runs in the bench, one a line:
// the three Mullvad DAITA machines of the test data and the Maybenot
// README machine.
func daitaMachines(root, work string) (string, error) {
	out, err := testmachines.Mullvad(filepath.Join(root, "maybenot", "testdata", "machines-public.txt"))
	if err != nil {
		return "", err
	}
	out = append(out, "02eNp1ibEJAEAIA5Nf7B3N0v1cSESwEL0m5A6YvBqSgP7WeXfM5UoBW7ICYg==")
	f := filepath.Join(work, "daita-machines")
	return f, os.WriteFile(f, []byte(strings.Join(out, "\n")+"\n"), 0o600)
}

// setDAITA runs `gotatun daita set` at both ends of tun: machines is the
// machines file, "" for padding only, "off" to turn DAITA off.
func setDAITA(ctx context.Context, t *topology, tun *tunnel, machines string) error {
	for _, s := range []struct{ ns, ifname string }{{t.nsA, tun.ifA}, {t.nsB, tun.ifB}} {
		out, err := nsExec(ctx, s.ns, "wg", "show", s.ifname, "peers")
		if err != nil {
			return err
		}
		peer := strings.TrimSpace(string(out))
		args := []string{"daita", "set", s.ifname, peer}
		switch machines {
		case "off":
			args = append(args, "off")
		case "":
		default:
			args = append(args, "--machine", "@"+machines)
		}
		if _, err := nsExec(ctx, s.ns, tun.impl.bin, args...); err != nil {
			return err
		}
	}
	return nil
}

// measureDAITA measures one round: one fresh gotatun tunnel, TCP one
// stream both ways with DAITA off, then on, then the idle ping off and
// with padding only.
func (nb *netBench) measureDAITA(ctx context.Context, gt *impl, round int, machines string) error {
	tun, err := startTunnel(ctx, nb.topo, gt, 100+round, nb.work)
	if err != nil {
		return err
	}
	defer tun.stop()
	type tcpRun struct{ mbps, cpuPerGB float64 }
	tcp := func(mode string) (tcpRun, error) {
		var ticks uint64
		var bytes, sum float64
		for _, rev := range []bool{false, true} {
			before, err := tun.cpuTicks()
			if err != nil {
				return tcpRun{}, err
			}
			r, err := nb.iperf(ctx, iperfSpec{dst: tunnelB, streams: 1, reverse: rev, seconds: nb.plan.TCPSeconds})
			if err != nil {
				return tcpRun{}, fmt.Errorf("DAITA %s: %w", mode, err)
			}
			after, err := tun.cpuTicks()
			if err != nil {
				return tcpRun{}, err
			}
			ticks += after - before
			bytes += r.Bytes
			sum += mbps(r)
		}
		if bytes <= 0 {
			return tcpRun{}, fmt.Errorf("DAITA %s: no bytes moved", mode)
		}
		res := tcpRun{mbps: sum / 2, cpuPerGB: float64(ticks) / clockTicksPerSecond / (bytes / 1e9)}
		nb.logf("  gotatun DAITA %-4s TCP 1 stream %6.0f Mbit/s (mean of both ways), CPU %.2f s/GB", mode, res.mbps, res.cpuPerGB)
		return res, nil
	}
	off, err := tcp("off")
	if err != nil {
		return err
	}
	if err := setDAITA(ctx, nb.topo, tun, machines); err != nil {
		return err
	}
	on, err := tcp("on")
	if err != nil {
		return err
	}
	nb.res.add("daita_tcp1", nameGotatun, on.mbps)
	nb.res.add("daita_tcp_ratio", nameGotatun, on.mbps/off.mbps)
	nb.res.add("daita_cpu_per_gb", nameGotatun, on.cpuPerGB)
	nb.res.add("daita_cpu_ratio", nameGotatun, on.cpuPerGB/off.cpuPerGB)

	if err := setDAITA(ctx, nb.topo, tun, "off"); err != nil {
		return err
	}
	idleOff, _, err := nb.ping(ctx, tunnelB)
	if err != nil {
		return err
	}
	if err := setDAITA(ctx, nb.topo, tun, ""); err != nil {
		return err
	}
	idlePad, _, err := nb.ping(ctx, tunnelB)
	if err != nil {
		return err
	}
	nb.res.add("daita_rtt_added", nameGotatun, idlePad-idleOff)
	nb.logf("  gotatun idle RTT %.0f µs, with DAITA padding only %.0f µs", idleOff, idlePad)
	return tun.alive()
}

// buildDAITAInproc compiles the device package's tests, which hold the
// DAITA Go benchmarks.
func buildDAITAInproc(ctx context.Context, root, out string) error {
	_, err := runCmdIn(ctx, root, "go", "test", "-c", "-o", out, "./device")
	return err
}

// runDAITAInproc runs the device package's DAITA benchmarks: the data
// path with DAITA on (allocations) and idle DAITA peers.
func runDAITAInproc(ctx context.Context, testBin, root string, p plan, res samples, logf func(string, ...any)) error {
	args := []string{"-test.run=^$", "-test.benchmem", "-test.count=" + strconv.Itoa(p.BenchCount),
		"-test.bench=^Benchmark(DataPath1420DAITA|IdleDAITAPeers)$", "-test.benchtime=" + p.BenchTime,
		"-daita-peers=" + strconv.Itoa(p.IdlePeers)}
	logf("device.test %s", strings.Join(args, " "))
	out, err := runCmdIn(ctx, filepath.Join(root, "device"), testBin, args...)
	if err != nil {
		return fmt.Errorf("DAITA benchmarks: %w\n%s", err, out)
	}
	lines, err := parseBenchOutput(out)
	if err != nil {
		return fmt.Errorf("DAITA benchmarks: %w", err)
	}
	for _, l := range lines {
		logf("  %-40s %s", l.Name, formatMetrics(l.Metrics))
		get := func(unit string) (float64, error) {
			v, ok := l.Metrics[unit]
			if !ok {
				return 0, fmt.Errorf("DAITA benchmark %s reported no %s", l.Name, unit)
			}
			return v, nil
		}
		switch l.Name {
		case "DataPath1420DAITA":
			v, err := get("allocs/op")
			if err != nil {
				return err
			}
			res.add("daita_pkt_allocs", nameGotatun, v)
		case "IdleDAITAPeers":
			h, err := get("heapB/peer")
			if err != nil {
				return err
			}
			g, err := get("goroutines/peer")
			if err != nil {
				return err
			}
			res.add("daita_idle_heap_per_peer", nameGotatun, h)
			res.add("daita_idle_goroutines_per_peer", nameGotatun, g)
		}
	}
	return nil
}
