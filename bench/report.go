//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// The implementations as they appear in results. veth is the bare underlay.
const (
	nameGotatun = "gotatun"
	nameWG      = "wireguard-go"
	nameVeth    = "veth"
)

// target is a goal for gotatun, judged on medians unless Kind says otherwise.
type target struct {
	// Kind is "ratio_min" (gotatun/wireguard-go ≥ Value), "ratio_max"
	// (ratio ≤ Value), "abs_max" (gotatun ≤ Value), "abs_min" (gotatun ≥
	// Value) or "all_zero" (every gotatun sample is 0).
	Kind  string  `json:"kind"`
	Value float64 `json:"value"`
	Text  string  `json:"text"`
}

// metricDef describes one reported figure.
type metricDef struct {
	ID     string
	Name   string
	Short  string // label in the chart, if Name is too long
	Unit   string
	Higher bool // higher is better
	Group  string
	Target *target
	Digits int  // decimals shown
	Veth   bool // also measured on the bare veth
	NoWG   bool // gotatun only: wireguard-go has no such feature
}

const (
	groupThroughput = "Tunnel throughput (namespaces + veth)"
	groupLatency    = "Tunnel latency"
	groupEfficiency = "Tunnel efficiency"
	groupInproc     = "In-process (Go benchmarks)"
	groupProxy      = "Rootless proxy (SOCKS5 on a userspace TCP/IP stack)"
)

func metricDefs(p plan) []metricDef {
	tcpTarget := &target{Kind: "ratio_min", Value: 2, Text: "≥ 2.0× wireguard-go"}
	return append([]metricDef{
		{ID: "tcp1_fwd", Name: "TCP, 1 stream, A→B", Unit: "Mbit/s", Higher: true, Group: groupThroughput, Target: tcpTarget, Veth: true},
		{ID: "tcp1_rev", Name: "TCP, 1 stream, B→A", Unit: "Mbit/s", Higher: true, Group: groupThroughput, Target: tcpTarget},
		{ID: "tcp4_fwd", Name: "TCP, 4 streams, A→B", Unit: "Mbit/s", Higher: true, Group: groupThroughput, Target: tcpTarget, Veth: true},
		{ID: "tcp4_rev", Name: "TCP, 4 streams, B→A", Unit: "Mbit/s", Higher: true, Group: groupThroughput, Target: tcpTarget},
		{ID: "udp_fixed_goodput", Name: fmt.Sprintf("UDP goodput at %.0f Mbit/s offered", p.UDPFixedMbps), Unit: "Mbit/s", Higher: true, Group: groupThroughput, Veth: true},
		{ID: "udp_fixed_loss", Name: fmt.Sprintf("UDP loss at %.0f Mbit/s offered", p.UDPFixedMbps), Unit: "%", Group: groupThroughput, Digits: 2, Veth: true},
		{ID: "udp_max_rate", Short: "UDP: max rate with ≤ 1% loss", Name: fmt.Sprintf("UDP: highest offered rate with ≤ %.0f%% loss", p.UDPLossLimit), Unit: "Mbit/s", Higher: true, Group: groupThroughput},
		{ID: "udp_max_goodput", Name: "UDP goodput at that rate", Unit: "Mbit/s", Higher: true, Group: groupThroughput},
		{ID: "rtt_idle_avg", Name: "Ping RTT, idle, mean", Unit: "µs", Group: groupLatency, Veth: true},
		{ID: "rtt_idle_p99", Name: "Ping RTT, idle, p99", Unit: "µs", Group: groupLatency, Veth: true},
		{ID: "rtt_added_idle", Short: "Added RTT over bare veth, idle", Name: "Added RTT (tunnel − bare veth), idle mean", Unit: "µs", Group: groupLatency}, // reported, no target: an idle ping mostly measures the host waking a halted vCPU
		{ID: "rtt_load_avg", Short: "Ping RTT under TCP load, mean", Name: "Ping RTT under 1-stream TCP load, mean", Unit: "µs", Group: groupLatency, Veth: true},
		{ID: "rtt_load_p99", Short: "Ping RTT under TCP load, p99", Name: "Ping RTT under 1-stream TCP load, p99", Unit: "µs", Group: groupLatency, Veth: true},
		{ID: "cpu_per_gb", Short: "CPU s per GB (both daemons)", Name: "CPU time of both daemons per GB moved (TCP tests)", Unit: "CPU s/GB", Group: groupEfficiency, Target: &target{Kind: "ratio_max", Value: 0.5, Text: "≤ 0.5× wireguard-go"}, Digits: 2},
		{ID: "peak_rss", Short: "Peak RSS of a daemon", Name: "Peak RSS of a daemon (VmHWM, larger of the two)", Unit: "MiB", Group: groupEfficiency, Digits: 1},
		{ID: "proxy_socks5_mbps", Short: "SOCKS5 proxy download", Name: "Bulk download through the SOCKS5 proxy (gotatun proxy vs the same proxy on wireguard-go's netstack)", Unit: "Mbit/s", Higher: true, Group: groupProxy, Target: &target{Kind: "ratio_min", Value: 1.5, Text: "≥ 1.5× wireguard-go"}},
		{ID: "proxy_cpu_per_gb", Short: "SOCKS5 proxy CPU s per GB", Name: "CPU time of the proxy process per GB downloaded", Unit: "CPU s/GB", Group: groupProxy, Target: &target{Kind: "ratio_max", Value: 0.6, Text: "≤ 0.6× wireguard-go"}, Digits: 2},
		{ID: "hs_per_sec", Short: "Full handshakes per second", Name: "Full handshakes per second (initiation + response, both consumed, sessions derived)", Unit: "1/s", Higher: true, Group: groupInproc, Target: &target{Kind: "ratio_min", Value: 1, Text: "≥ 1.0× wireguard-go"}},
		{ID: "hs_allocs", Name: "Allocations per full handshake", Unit: "allocs", Group: groupInproc},
		{ID: "seal_ns", Name: "Encrypt one 1420-byte packet", Unit: "ns", Group: groupInproc},
		{ID: "seal_allocs", Name: "Allocations per encrypted packet", Unit: "allocs", Group: groupInproc, Target: &target{Kind: "all_zero", Text: "0 allocs"}, Digits: 2},
		{ID: "open_ns", Name: "Decrypt one 1420-byte packet", Unit: "ns", Group: groupInproc},
		{ID: "open_allocs", Name: "Allocations per decrypted packet", Unit: "allocs", Group: groupInproc, Target: &target{Kind: "all_zero", Text: "0 allocs"}, Digits: 2},
		{ID: "lookup_ns", Short: "Allowed-IPs lookup (10,000 prefixes)", Name: "Allowed-IPs lookup among 10,000 prefixes", Unit: "ns", Group: groupInproc, Digits: 1},
		{ID: "lookup_allocs", Name: "Allocations per allowed-IPs lookup", Unit: "allocs", Group: groupInproc, Digits: 2},
		{ID: "idle_heap_per_peer", Short: "Heap per idle peer", Name: fmt.Sprintf("Heap per idle peer (%d peers)", p.IdlePeers), Unit: "B", Group: groupInproc},
		{ID: "idle_mem_per_peer", Short: "Heap + stacks per idle peer", Name: fmt.Sprintf("Heap + goroutine stacks per idle peer (%d peers)", p.IdlePeers), Unit: "B", Group: groupInproc, Target: &target{Kind: "abs_max", Value: 4096, Text: "≤ 4 KiB"}},
		{ID: "idle_goroutines_per_peer", Short: "Goroutines per idle peer", Name: fmt.Sprintf("Goroutines per idle peer (%d peers)", p.IdlePeers), Unit: "goroutines", Group: groupInproc, Digits: 3},
		{ID: "idle_goroutine_growth", Short: "Goroutines added, N/10 → N peers", Name: fmt.Sprintf("Goroutines added going from %d to %d peers", p.IdlePeers/10, p.IdlePeers), Unit: "goroutines", Group: groupInproc, Target: &target{Kind: "abs_max", Value: 0, Text: "0 (independent of peer count)"}},
	}, append(append(multihopMetricDefs(), daitaMetricDefs(p)...), floodMetricDefs(p)...)...)
}

// stat summarises the samples of one metric for one implementation.
type stat struct {
	Median  float64   `json:"median"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
	Samples []float64 `json:"samples"`
}

func summarize(xs []float64) *stat {
	if len(xs) == 0 {
		return nil
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return &stat{Median: med, Min: s[0], Max: s[len(s)-1], Samples: xs}
}

// metricResult is one row of the report.
type metricResult struct {
	ID             string           `json:"id"`
	Name           string           `json:"name"`
	Unit           string           `json:"unit"`
	Group          string           `json:"group"`
	HigherIsBetter bool             `json:"higher_is_better"`
	Values         map[string]*stat `json:"values"`
	// Ratio is gotatun's median divided by wireguard-go's; absent when
	// wireguard-go's median is not positive.
	Ratio  *float64 `json:"ratio,omitempty"`
	Target *target  `json:"target,omitempty"`
	Met    *bool    `json:"met,omitempty"`
	digits int
	short  string
}

// machine describes where the figures were measured.
type machine struct {
	CPUModel       string  `json:"cpu_model"`
	Cores          int     `json:"cores"`
	Kernel         string  `json:"kernel"`
	GoVersion      string  `json:"go_version"`
	GotatunVersion string  `json:"gotatun_version"`
	WGVersion      string  `json:"wireguard_go_version"`
	Iperf3         string  `json:"iperf3_version"`
	LoadAvg        float64 `json:"load_average_at_start"`
}

// report is the whole result, written as benchmarks.json.
type report struct {
	Generated    string         `json:"generated"`
	Smoke        bool           `json:"smoke"`
	Machine      machine        `json:"machine"`
	Plan         plan           `json:"plan"`
	Metrics      []metricResult `json:"metrics"`
	TargetsMet   int            `json:"targets_met"`
	TargetsTotal int            `json:"targets_total"`
}

// buildReport turns samples into report rows and judges the targets.
func buildReport(p plan, res samples) ([]metricResult, int, int) {
	var rows []metricResult
	met, total := 0, 0
	for _, d := range metricDefs(p) {
		r := metricResult{ID: d.ID, Name: d.Name, Unit: d.Unit, Group: d.Group, HigherIsBetter: d.Higher, Values: map[string]*stat{}, Target: d.Target, digits: d.Digits, short: d.Short}
		for _, who := range []string{nameVeth, nameWG, nameGotatun} {
			if s := summarize(res[d.ID][who]); s != nil {
				r.Values[who] = s
			}
		}
		g, w := r.Values[nameGotatun], r.Values[nameWG]
		if g != nil && w != nil && w.Median > 0 {
			ratio := g.Median / w.Median
			r.Ratio = &ratio
		}
		if d.Target != nil {
			ok := judge(*d.Target, g, r.Ratio)
			r.Met = &ok
			total++
			if ok {
				met++
			}
		}
		rows = append(rows, r)
	}
	return rows, met, total
}

func judge(t target, g *stat, ratio *float64) bool {
	switch t.Kind {
	case "ratio_min":
		return ratio != nil && *ratio >= t.Value
	case "ratio_max":
		return ratio != nil && *ratio <= t.Value
	case "abs_max":
		return g != nil && g.Median <= t.Value
	case "abs_min":
		return g != nil && g.Median >= t.Value
	case "all_zero":
		return g != nil && g.Max == 0 && g.Min == 0
	}
	return false
}

// missing lists the figures that have no value for an implementation that
// should have produced one.
func missing(rows []metricResult, defs []metricDef) []string {
	var out []string
	for i, d := range defs {
		want := []string{nameWG, nameGotatun}
		if d.NoWG {
			want = want[1:]
		}
		if d.Veth {
			want = append(want, nameVeth)
		}
		for _, who := range want {
			s := rows[i].Values[who]
			if s == nil || len(s.Samples) == 0 {
				out = append(out, d.ID+"/"+who)
				continue
			}
			for _, v := range s.Samples {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					out = append(out, d.ID+"/"+who)
					break
				}
			}
		}
	}
	return out
}

func formatNum(v float64, digits int) string {
	if digits == 0 && math.Abs(v) < 10 && v != math.Trunc(v) {
		digits = 1
	}
	s := fmt.Sprintf("%.*f", digits, v)
	// Thousands separators for the integer part.
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	intPart, frac, hasFrac := strings.Cut(s, ".")
	var b strings.Builder
	for i, c := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	out := b.String()
	if hasFrac {
		out += "." + frac
	}
	if neg {
		out = "-" + out
	}
	return out
}

func formatStat(s *stat, digits int) string {
	if s == nil {
		return "—"
	}
	if len(s.Samples) == 1 || s.Min == s.Max {
		return formatNum(s.Median, digits)
	}
	return fmt.Sprintf("%s (%s–%s)", formatNum(s.Median, digits), formatNum(s.Min, digits), formatNum(s.Max, digits))
}

func formatRatio(r *float64) string {
	if r == nil {
		return "—"
	}
	switch {
	case *r == 0:
		return "0×"
	case *r < 0.01:
		return fmt.Sprintf("%.4f×", *r)
	case *r < 10:
		return fmt.Sprintf("%.2f×", *r)
	}
	return fmt.Sprintf("%.0f×", *r)
}

// reportFromJSON rebuilds a report from a benchmarks.json, re-judging the
// targets from its raw samples, so the Markdown and SVG can be rendered
// again without measuring.
func reportFromJSON(data []byte) (report, error) {
	var old report
	if err := json.Unmarshal(data, &old); err != nil {
		return report{}, fmt.Errorf("reading benchmarks.json: %w", err)
	}
	res := samples{}
	for _, m := range old.Metrics {
		for who, s := range m.Values {
			if s == nil {
				continue
			}
			for _, v := range s.Samples {
				res.add(m.ID, who, v)
			}
		}
	}
	rep := old
	rep.Metrics, rep.TargetsMet, rep.TargetsTotal = buildReport(old.Plan, res)
	return rep, nil
}

// writeReport writes benchmarks.json, benchmarks.md and benchmarks.svg to dir.
func writeReport(dir string, rep report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "benchmarks.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "benchmarks.svg"), []byte(renderSVG(rep)), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "benchmarks.md"), []byte(renderMarkdown(rep)), 0o644)
}

func renderMarkdown(rep report) string {
	var b strings.Builder
	p := rep.Plan
	b.WriteString("# Benchmarks: gotatun vs wireguard-go\n\n")
	b.WriteString("Generated by `make bench` (the program in `bench/`); do not edit by hand.\n")
	if rep.Smoke {
		b.WriteString("\n**Smoke run**: one short round, tiny in-process runs. These numbers only show that every measurement works; they say nothing about speed.\n")
	}
	fmt.Fprintf(&b, "\nRun %s. Targets met: **%d of %d**.\n\n", rep.Generated, rep.TargetsMet, rep.TargetsTotal)
	b.WriteString("![gotatun vs wireguard-go](benchmarks.svg)\n\n")

	b.WriteString("## Machine\n\n| | |\n| --- | --- |\n")
	m := rep.Machine
	for _, kv := range [][2]string{
		{"CPU", fmt.Sprintf("%s, %d cores", m.CPUModel, m.Cores)},
		{"Kernel", m.Kernel},
		{"Go", m.GoVersion},
		{"gotatun", m.GotatunVersion},
		{"wireguard-go", m.WGVersion},
		{"iperf3", m.Iperf3},
		{"Load average at start", fmt.Sprintf("%.2f", m.LoadAvg)},
	} {
		fmt.Fprintf(&b, "| %s | %s |\n", kv[0], mdEscape(kv[1]))
	}

	b.WriteString("\n## Method\n\n")
	fmt.Fprintf(&b, "- Two network namespaces joined by a veth pair; each implementation's daemon runs in both (`IMPL -f IFNAME`), configured by `wg set` and `ip`, MTU %d. The bare veth path is measured too, as the ceiling.\n", tunnelMTU)
	fmt.Fprintf(&b, "- %d round(s), interleaved: each round measures the veth, then starts fresh wireguard-go daemons, measures them and stops them, then the same for gotatun. Figures are the median over rounds, with min–max in parentheses.\n", p.Rounds)
	fmt.Fprintf(&b, "- TCP: `iperf3 -t %d` (JSON, receiver's figure), 1 and 4 streams, A→B and B→A (`-R`). UDP: `iperf3 -u -l %d -w %s`, %d s at %.0f Mbit/s offered; then a bisection over offered rates (%d s probes) for the highest rate with at most %.0f%% loss.\n",
		p.TCPSeconds, p.UDPPayload, p.UDPSockBuf, p.UDPSeconds, p.UDPFixedMbps, p.UDPProbeSecs, p.UDPLossLimit)
	fmt.Fprintf(&b, "- RTT: `ping -i %.2f -c %d`, mean and p99 from the per-packet times, idle and while one TCP stream runs A→B. Added RTT is the tunnel's mean minus the bare veth's mean in the same round.\n", float64(p.PingIntervalMS)/1000, p.PingCount)
	b.WriteString("- CPU: utime+stime of both daemons (`/proc/PID/stat`) summed over the four TCP tests, divided by the bytes those tests delivered. Peak RSS: `VmHWM` from `/proc/PID/status` at the end of the round. iperf3 and ping share the same cores.\n")
	fmt.Fprintf(&b, "- In-process: `go test -bench` in `bench/inproc` (benchtime %s, count %d), gotatun's packages beside wireguard-go's `device` package doing the same work. Idle peers: a device with %d configured peers (gotatun via `Apply`, wireguard-go via `IpcSet`), heap and stacks from `runtime.ReadMemStats` after GC before and after, goroutines from `runtime.NumGoroutine`.\n",
		p.BenchTime, p.BenchCount, p.IdlePeers)
	b.WriteString("- Handshakes, allowed-IPs lookups and idle peers call wireguard-go's exported `device` API. Its keypairs keep their ciphers unexported, so its encrypt/decrypt figures reproduce the per-packet steps of its encryption and decryption workers (header, counter nonce, golang.org/x/crypto ChaCha20-Poly1305 in place).\n")
	b.WriteString("- The machine may be shared with other work (see the load average above); interleaving and medians soften, but do not remove, that noise.\n")

	b.WriteString("\n## Results\n")
	group := ""
	for _, r := range rep.Metrics {
		if r.Group != group {
			group = r.Group
			fmt.Fprintf(&b, "\n### %s\n\n", group)
			b.WriteString("| Figure | Unit | bare veth | wireguard-go | gotatun | gotatun ÷ wireguard-go | Target | Met |\n")
			b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | --- | --- |\n")
		}
		better := "lower is better"
		if r.HigherIsBetter {
			better = "higher is better"
		}
		tgt, met := "", ""
		if r.Target != nil {
			tgt = r.Target.Text
			met = "not met"
			if r.Met != nil && *r.Met {
				met = "**met**"
			}
		}
		fmt.Fprintf(&b, "| %s | %s (%s) | %s | %s | %s | %s | %s | %s |\n",
			mdEscape(r.Name), r.Unit, better,
			formatStat(r.Values[nameVeth], r.digits), formatStat(r.Values[nameWG], r.digits), formatStat(r.Values[nameGotatun], r.digits),
			formatRatio(r.Ratio), tgt, met)
	}
	b.WriteString("\nThe raw samples of every figure are in [benchmarks.json](benchmarks.json).\n")
	return b.String()
}

// label is the row's name in the chart.
func (r metricResult) label() string {
	if r.short != "" {
		return r.short
	}
	return r.Name
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", "\\|") }
