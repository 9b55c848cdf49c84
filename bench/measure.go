//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// plan is how long and how often each measurement runs.
type plan struct {
	Rounds         int     `json:"rounds"`
	TCPSeconds     int     `json:"tcp_seconds"`
	UDPSeconds     int     `json:"udp_seconds"`
	UDPProbeSecs   int     `json:"udp_probe_seconds"`
	UDPFixedMbps   float64 `json:"udp_fixed_mbps"`
	UDPLossLimit   float64 `json:"udp_loss_limit_percent"`
	UDPSearchSteps int     `json:"udp_search_steps"`
	UDPPayload     int     `json:"udp_payload_bytes"`
	UDPSockBuf     string  `json:"udp_socket_buffer"`
	PingCount      int     `json:"ping_count"`
	PingIntervalMS int     `json:"ping_interval_ms"`
	BenchTime      string  `json:"go_benchtime"`
	BenchCount     int     `json:"go_bench_count"`
	IdlePeers      int     `json:"idle_peers"`
	// The handshake flood (flood.go).
	FloodRate       int `json:"flood_rate"`
	FloodSources    int `json:"flood_sources"`
	FloodPorts      int `json:"flood_ports_per_source"`
	FloodTCPSeconds int `json:"flood_tcp_seconds"`
	FloodHSCapSecs  int `json:"flood_handshake_cap_seconds"`
}

func fullPlan() plan {
	return plan{
		Rounds: 3, TCPSeconds: 5, UDPSeconds: 3, UDPProbeSecs: 2,
		UDPFixedMbps: 500, UDPLossLimit: 1, UDPSearchSteps: 5, UDPPayload: 1380, UDPSockBuf: "4M",
		PingCount: 500, PingIntervalMS: 10,
		BenchTime: "1s", BenchCount: 3, IdlePeers: 10000,
		FloodRate: 200000, FloodSources: 64, FloodPorts: 4, FloodTCPSeconds: 10, FloodHSCapSecs: 60,
	}
}

func smokePlan() plan {
	return plan{
		Rounds: 1, TCPSeconds: 2, UDPSeconds: 2, UDPProbeSecs: 1,
		UDPFixedMbps: 500, UDPLossLimit: 1, UDPSearchSteps: 1, UDPPayload: 1380, UDPSockBuf: "4M",
		PingCount: 50, PingIntervalMS: 10,
		BenchTime: "20x", BenchCount: 1, IdlePeers: 200,
		FloodRate: 5000, FloodSources: 4, FloodPorts: 2, FloodTCPSeconds: 1, FloodHSCapSecs: 20,
	}
}

// samples collects every measured value: metric id → implementation → one
// value per round (or per benchmark count).
type samples map[string]map[string][]float64

func (s samples) add(metric, impl string, v float64) {
	if s[metric] == nil {
		s[metric] = map[string][]float64{}
	}
	s[metric][impl] = append(s[metric][impl], v)
}

// netBench runs the namespace measurements of one bench run.
type netBench struct {
	plan   plan
	topo   *topology
	work   string
	logf   func(string, ...any)
	res    samples
	server *proc // iperf3 server in namespace B
	// vethRTT is the bare veth average RTT of each round, subtracted from
	// the tunnels' RTT of the same round.
	vethRTT map[int]float64
}

// ensureServer (re)starts the iperf3 server in namespace B.
func (nb *netBench) ensureServer(ctx context.Context) error {
	if nb.server != nil && !nb.server.exited() {
		return nil
	}
	p, err := startProc(nb.topo.nsB, "iperf3", "-s", "-p", strconv.Itoa(iperfPort))
	if err != nil {
		return err
	}
	nb.server = p
	// Wait until it accepts connections.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("iperf3 server exited: %v: %s", p.err, p.out.String())
		}
		if out, err := nsExec(ctx, nb.topo.nsB, "ss", "-Htln", "sport", "=", ":"+strconv.Itoa(iperfPort)); err == nil && len(strings.TrimSpace(string(out))) > 0 {
			return nil
		} else if err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("iperf3 server did not start listening within 5s")
}

// iperfSpec describes one iperf3 client run.
type iperfSpec struct {
	dst     string
	udp     bool
	streams int
	reverse bool
	mbps    float64 // UDP offered load
	seconds int
}

// iperf runs one iperf3 client in namespace A against the server in B.
func (nb *netBench) iperf(ctx context.Context, s iperfSpec) (iperfResult, error) {
	args := []string{"-c", s.dst, "-p", strconv.Itoa(iperfPort), "-t", strconv.Itoa(s.seconds), "-J", "--connect-timeout", "3000"}
	if s.streams > 1 {
		args = append(args, "-P", strconv.Itoa(s.streams))
	}
	if s.reverse {
		args = append(args, "-R")
	}
	if s.udp {
		args = append(args, "-u", "-b", strconv.FormatFloat(s.mbps, 'f', 0, 64)+"M",
			"-l", strconv.Itoa(nb.plan.UDPPayload), "-w", nb.plan.UDPSockBuf)
	}
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		if err := nb.ensureServer(ctx); err != nil {
			return iperfResult{}, err
		}
		cctx, cancel := context.WithTimeout(ctx, time.Duration(s.seconds+20)*time.Second)
		out, runErr := nsExec(cctx, nb.topo.nsA, "iperf3", args...)
		cancel()
		if ctx.Err() != nil {
			return iperfResult{}, ctx.Err()
		}
		res, err := parseIperf(out, s.udp)
		if err == nil {
			return res, nil
		}
		if runErr != nil {
			err = fmt.Errorf("%w (%v)", err, runErr)
		}
		last = err
		// A busy or confused server is restarted; a broken path fails the
		// same way again and is reported after the retries.
		if nb.server != nil {
			nb.server.stop()
		}
		time.Sleep(300 * time.Millisecond)
	}
	return iperfResult{}, fmt.Errorf("iperf3 %s: %w", strings.Join(args, " "), last)
}

// ping measures the RTT from namespace A to dst: mean and p99 in µs.
func (nb *netBench) ping(ctx context.Context, dst string) (avg, p99 float64, err error) {
	interval := strconv.FormatFloat(float64(nb.plan.PingIntervalMS)/1000, 'f', 3, 64)
	out, runErr := nsExec(ctx, nb.topo.nsA, "ping", "-n", "-i", interval, "-c", strconv.Itoa(nb.plan.PingCount), "-W", "2", dst)
	if ctx.Err() != nil {
		return 0, 0, ctx.Err()
	}
	rtts, err := parsePing(out)
	if err != nil {
		if runErr != nil {
			return 0, 0, fmt.Errorf("%w (%v)", err, runErr)
		}
		return 0, 0, err
	}
	if len(rtts) < nb.plan.PingCount/2 {
		return 0, 0, fmt.Errorf("ping %s: only %d of %d replies", dst, len(rtts), nb.plan.PingCount)
	}
	if lost := nb.plan.PingCount - len(rtts); lost > 0 {
		nb.logf("  ping %s: %d of %d lost", dst, lost, nb.plan.PingCount)
	}
	for i := range rtts {
		rtts[i] *= 1000 // ms → µs
	}
	return mean(rtts), percentile(rtts, 99), nil
}

// pingUnderLoad pings dst while one TCP stream runs from A to B.
func (nb *netBench) pingUnderLoad(ctx context.Context, dst string) (avg, p99 float64, err error) {
	pingTime := time.Duration(nb.plan.PingCount*nb.plan.PingIntervalMS) * time.Millisecond
	// The load starts a second before the pings and outlasts them a little.
	secs := int(math.Ceil(1 + pingTime.Seconds() + 0.5))
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	loadErr := make(chan error, 1)
	go func() {
		_, err := nb.iperf(lctx, iperfSpec{dst: dst, streams: 1, seconds: secs})
		loadErr <- err
	}()
	select {
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	case err := <-loadErr:
		return 0, 0, fmt.Errorf("TCP load ended early: %w", err)
	case <-time.After(time.Second):
	}
	avg, p99, err = nb.ping(ctx, dst)
	if lerr := <-loadErr; lerr != nil && err == nil {
		err = fmt.Errorf("TCP load: %w", lerr)
	}
	return avg, p99, err
}

func mbps(r iperfResult) float64 { return r.BitsPerSecond / 1e6 }

// tcpTests are the TCP throughput measurements of each path.
var tcpTests = []struct {
	metric  string
	streams int
	reverse bool
}{
	{"tcp1_fwd", 1, false},
	{"tcp1_rev", 1, true},
	{"tcp4_fwd", 4, false},
	{"tcp4_rev", 4, true},
}

// measureVeth measures the bare underlay: the ceiling.
func (nb *netBench) measureVeth(ctx context.Context, round int) error {
	const who = "veth"
	for _, tt := range tcpTests {
		if tt.reverse {
			continue // the bare veth is symmetric
		}
		r, err := nb.iperf(ctx, iperfSpec{dst: underlayB, streams: tt.streams, seconds: nb.plan.TCPSeconds})
		if err != nil {
			return fmt.Errorf("veth %s: %w", tt.metric, err)
		}
		nb.res.add(tt.metric, who, mbps(r))
		nb.logf("  veth %-8s %8.0f Mbit/s", tt.metric, mbps(r))
	}
	r, err := nb.iperf(ctx, iperfSpec{dst: underlayB, udp: true, mbps: nb.plan.UDPFixedMbps, seconds: nb.plan.UDPSeconds})
	if err != nil {
		return fmt.Errorf("veth UDP: %w", err)
	}
	nb.res.add("udp_fixed_goodput", who, mbps(r))
	nb.res.add("udp_fixed_loss", who, r.LostPercent)
	avg, p99, err := nb.ping(ctx, underlayB)
	if err != nil {
		return fmt.Errorf("veth ping: %w", err)
	}
	nb.vethRTT[round] = avg
	nb.res.add("rtt_idle_avg", who, avg)
	nb.res.add("rtt_idle_p99", who, p99)
	lavg, lp99, err := nb.pingUnderLoad(ctx, underlayB)
	if err != nil {
		return fmt.Errorf("veth ping under load: %w", err)
	}
	nb.res.add("rtt_load_avg", who, lavg)
	nb.res.add("rtt_load_p99", who, lp99)
	nb.logf("  veth RTT idle %.0f µs (p99 %.0f), under load %.0f µs (p99 %.0f)", avg, p99, lavg, lp99)
	return nil
}

// measureImpl starts a fresh tunnel of one implementation and measures it.
func (nb *netBench) measureImpl(ctx context.Context, im *impl, round int) error {
	tun, err := startTunnel(ctx, nb.topo, im, round, nb.work)
	if err != nil {
		return err
	}
	defer tun.stop()
	who := im.name
	fail := func(what string, err error) error {
		if aerr := tun.alive(); aerr != nil {
			return fmt.Errorf("%s %s: %w", who, what, aerr)
		}
		return fmt.Errorf("%s %s: %w", who, what, err)
	}

	var ticks uint64
	var bytesMoved, bestTCP float64
	for _, tt := range tcpTests {
		before, err := tun.cpuTicks()
		if err != nil {
			return fail(tt.metric, err)
		}
		r, err := nb.iperf(ctx, iperfSpec{dst: tunnelB, streams: tt.streams, reverse: tt.reverse, seconds: nb.plan.TCPSeconds})
		if err != nil {
			return fail(tt.metric, err)
		}
		after, err := tun.cpuTicks()
		if err != nil {
			return fail(tt.metric, err)
		}
		ticks += after - before
		bytesMoved += r.Bytes
		bestTCP = max(bestTCP, mbps(r))
		nb.res.add(tt.metric, who, mbps(r))
		nb.logf("  %s %-8s %8.0f Mbit/s", who, tt.metric, mbps(r))
	}
	if bytesMoved <= 0 {
		return fail("CPU per GB", errors.New("no bytes moved"))
	}
	cpuPerGB := float64(ticks) / clockTicksPerSecond / (bytesMoved / 1e9)
	nb.res.add("cpu_per_gb", who, cpuPerGB)
	nb.logf("  %s CPU %.2f s/GB over %.2f GB", who, cpuPerGB, bytesMoved/1e9)

	fixed, err := nb.iperf(ctx, iperfSpec{dst: tunnelB, udp: true, mbps: nb.plan.UDPFixedMbps, seconds: nb.plan.UDPSeconds})
	if err != nil {
		return fail("UDP fixed load", err)
	}
	nb.res.add("udp_fixed_goodput", who, mbps(fixed))
	nb.res.add("udp_fixed_loss", who, fixed.LostPercent)
	nb.logf("  %s UDP at %.0f Mbit/s: goodput %.0f Mbit/s, loss %.2f%%", who, nb.plan.UDPFixedMbps, mbps(fixed), fixed.LostPercent)

	probe := func(rate float64) (bool, float64, error) {
		r, err := nb.iperf(ctx, iperfSpec{dst: tunnelB, udp: true, mbps: rate, seconds: nb.plan.UDPProbeSecs})
		if err != nil {
			return false, 0, err
		}
		ok := r.LostPercent <= nb.plan.UDPLossLimit
		nb.logf("    probe %5.0f Mbit/s: goodput %5.0f, loss %5.2f%% %s", rate, mbps(r), r.LostPercent, map[bool]string{true: "ok", false: "over"}[ok])
		return ok, mbps(r), nil
	}
	upper := max(1000, 2*bestTCP)
	var sr searchResult
	if fixed.LostPercent <= nb.plan.UDPLossLimit {
		sr, err = searchMaxRate(probe, nb.plan.UDPFixedMbps, mbps(fixed), max(upper, 2*nb.plan.UDPFixedMbps), false, nb.plan.UDPSearchSteps)
	} else {
		sr, err = searchMaxRate(probe, 0, 0, nb.plan.UDPFixedMbps, true, nb.plan.UDPSearchSteps+1)
	}
	if err != nil {
		return fail("UDP rate search", err)
	}
	nb.res.add("udp_max_rate", who, sr.RateMbps)
	nb.res.add("udp_max_goodput", who, sr.GoodputMbps)
	capped := ""
	if sr.Capped {
		capped = " (search ceiling)"
	}
	nb.logf("  %s UDP max rate with ≤%.0f%% loss: %.0f Mbit/s%s, goodput %.0f Mbit/s", who, nb.plan.UDPLossLimit, sr.RateMbps, capped, sr.GoodputMbps)

	avg, p99, err := nb.ping(ctx, tunnelB)
	if err != nil {
		return fail("ping", err)
	}
	nb.res.add("rtt_idle_avg", who, avg)
	nb.res.add("rtt_idle_p99", who, p99)
	if v, ok := nb.vethRTT[round]; ok {
		nb.res.add("rtt_added_idle", who, avg-v)
	}
	lavg, lp99, err := nb.pingUnderLoad(ctx, tunnelB)
	if err != nil {
		return fail("ping under load", err)
	}
	nb.res.add("rtt_load_avg", who, lavg)
	nb.res.add("rtt_load_p99", who, lp99)
	nb.logf("  %s RTT idle %.0f µs (p99 %.0f), under load %.0f µs (p99 %.0f)", who, avg, p99, lavg, lp99)

	if err := tun.alive(); err != nil {
		return err
	}
	rss, err := tun.peakRSS()
	if err != nil {
		return fail("peak RSS", err)
	}
	nb.res.add("peak_rss", who, float64(rss)/(1<<20))
	nb.logf("  %s peak RSS %.1f MiB", who, float64(rss)/(1<<20))
	return nil
}
