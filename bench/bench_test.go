//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const iperfTCP = `{
	"start": {"version": "iperf 3.12"},
	"end": {
		"sum_sent": {"seconds": 2.0, "bytes": 500000000, "bits_per_second": 2000000000, "retransmits": 3, "sender": true},
		"sum_received": {"seconds": 2.001, "bytes": 499000000, "bits_per_second": 1995000000, "sender": true}
	}
}`

const iperfUDP = `{
	"end": {
		"sum": {"start": 0, "end": 2.1, "seconds": 2.1, "bytes": 108084360, "bits_per_second": 417604963.3, "jitter_ms": 0.07, "lost_packets": 58851, "packets": 78322, "lost_percent": 75.1398, "sender": true},
		"sum_sent": {"seconds": 2.07, "bytes": 108084360, "bits_per_second": 417604963.3, "lost_packets": 0, "packets": 78322, "lost_percent": 0, "sender": true},
		"sum_received": {"seconds": 2.1, "bytes": 26817540, "bits_per_second": 102014282.2, "lost_packets": 58851, "packets": 78284, "lost_percent": 75.1398, "sender": false}
	}
}`

func TestParseIperf(t *testing.T) {
	r, err := parseIperf([]byte(iperfTCP), false)
	if err != nil {
		t.Fatal(err)
	}
	if r.BitsPerSecond != 1995000000 || r.Bytes != 499000000 || r.Seconds != 2.001 {
		t.Errorf("TCP: got %+v, want the receiver's sum", r)
	}
	r, err = parseIperf([]byte(iperfUDP), true)
	if err != nil {
		t.Fatal(err)
	}
	if r.BitsPerSecond != 102014282.2 || r.LostPercent != 75.1398 || r.Packets != 78284 {
		t.Errorf("UDP: got %+v, want the receiver's sum", r)
	}
	// Older iperf3 versions put UDP results only in "sum".
	r, err = parseIperf([]byte(`{"end":{"sum":{"seconds":1,"bytes":10,"bits_per_second":80,"lost_percent":0.5,"packets":3}}}`), true)
	if err != nil || r.LostPercent != 0.5 || r.BitsPerSecond != 80 {
		t.Errorf("UDP sum only: %+v, %v", r, err)
	}

	for name, in := range map[string]string{
		"error":        `{"start":{}, "end":{}, "error": "unable to connect to server: Connection refused"}`,
		"not json":     `iperf3: error - unable to connect`,
		"no summary":   `{"end":{}}`,
		"zero seconds": `{"end":{"sum_received":{"seconds":0,"bytes":0,"bits_per_second":0}}}`,
		"negative":     `{"end":{"sum_received":{"seconds":1,"bytes":-5,"bits_per_second":0}}}`,
		"loss > 100":   `{"end":{"sum_received":{"seconds":1,"bytes":5,"bits_per_second":40,"lost_percent":140}}}`,
	} {
		if _, err := parseIperf([]byte(in), true); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := parseIperf([]byte(`{"error":"the server is busy running a test. try again later"}`), false); err == nil || !strings.Contains(err.Error(), "busy") {
		t.Errorf("busy server: error %v does not carry iperf3's message", err)
	}
}

const pingOut = `PING 10.102.0.2 (10.102.0.2) 56(84) bytes of data.
64 bytes from 10.102.0.2: icmp_seq=1 ttl=64 time=2.74 ms
64 bytes from 10.102.0.2: icmp_seq=2 ttl=64 time=0.452 ms
64 bytes from 10.102.0.2: icmp_seq=2 ttl=64 time=0.500 ms (DUP!)
64 bytes from 10.102.0.2: icmp_seq=3 ttl=64 time<0.001 ms
64 bytes from 10.102.0.2: icmp_seq=4 ttl=64 time=0.369 ms

--- 10.102.0.2 ping statistics ---
4 packets transmitted, 4 received, +1 duplicates, 0% packet loss, time 407ms
rtt min/avg/max/mdev = 0.001/1.188/2.743/1.100 ms
`

func TestParsePing(t *testing.T) {
	got, err := parsePing([]byte(pingOut))
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{2.74, 0.452, 0.001, 0.369}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	for name, in := range map[string]string{
		"no replies": "PING x\n--- stats ---\n3 packets transmitted, 0 received\n",
		"bad number": "64 bytes from x: icmp_seq=1 ttl=64 time=abc ms\n",
		"negative":   "64 bytes from x: icmp_seq=1 ttl=64 time=-1 ms\n",
		"no unit":    "64 bytes from x: icmp_seq=1 ttl=64 time=1.0\n",
		"other unit": "64 bytes from x: icmp_seq=1 ttl=64 time=1.0 s\n",
		"empty":      "",
	} {
		if _, err := parsePing([]byte(in)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestPercentileAndMean(t *testing.T) {
	xs := make([]float64, 0, 200)
	for i := 200; i >= 1; i-- {
		xs = append(xs, float64(i))
	}
	if p := percentile(xs, 99); p != 198 {
		t.Errorf("p99 of 1..200 = %v, want 198", p)
	}
	if p := percentile(xs, 100); p != 200 {
		t.Errorf("p100 = %v, want 200", p)
	}
	if p := percentile([]float64{5}, 99); p != 5 {
		t.Errorf("p99 of one value = %v", p)
	}
	if xs[0] != 200 {
		t.Error("percentile reordered its input")
	}
	if m := mean(xs); m != 100.5 {
		t.Errorf("mean = %v, want 100.5", m)
	}
	if percentile(nil, 99) != 0 || mean(nil) != 0 {
		t.Error("empty input should give 0")
	}
}

func TestParseProcStat(t *testing.T) {
	// The command name holds a space and a ')' to check the field counting.
	stat := "4242 (wire guard) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 731 269 0 0 20 0 12 0 500 800000000 2000 18446744073709551615\n"
	got, err := parseProcStat([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if got != 1000 {
		t.Errorf("utime+stime = %d, want 1000", got)
	}
	for name, in := range map[string]string{
		"no paren":  "4242 wg S 1 2 3",
		"short":     "4242 (wg) S 1 2 3 4",
		"bad utime": "4242 (wg) S 1 4242 4242 0 -1 4194560 1234 0 0 0 x 269 0",
		"overflow":  "4242 (wg) S 1 4242 4242 0 -1 4194560 1234 0 0 0 18446744073709551615 1 0",
	} {
		if _, err := parseProcStat([]byte(in)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestParseVmHWM(t *testing.T) {
	status := "Name:\twireguard-go\nVmPeak:\t 1300000 kB\nVmHWM:\t  110836 kB\nVmRSS:\t   90000 kB\n"
	got, err := parseVmHWM([]byte(status))
	if err != nil {
		t.Fatal(err)
	}
	if got != 110836*1024 {
		t.Errorf("VmHWM = %d", got)
	}
	for name, in := range map[string]string{
		"missing": "Name:\twg\nVmRSS:\t 5 kB\n",
		"unit":    "VmHWM:\t 5 MB\n",
		"number":  "VmHWM:\t x kB\n",
		"huge":    "VmHWM:\t 18446744073709551615 kB\n",
	} {
		if _, err := parseVmHWM([]byte(in)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

const benchOut = `goos: linux
goarch: amd64
pkg: github.com/gotatun/gotatun/bench/inproc
cpu: AMD EPYC
BenchmarkHandshake/gotatun-2  	     200	   2983035 ns/op	    7160 B/op	     147 allocs/op
BenchmarkSeal1420/wireguard-go-2          	     200	       949.7 ns/op	1495.19 MB/s	       0 B/op	       0 allocs/op
BenchmarkIdlePeers/wireguard-go       	       1	 567251684 ns/op	      1800 goroutine-growth	         2.000 goroutines/peer	     22788 heap-B/peer
--- FAIL: BenchmarkBroken/gotatun
    bench_test.go:10: something
PASS
ok  	github.com/gotatun/gotatun/bench/inproc	4.005s
`

func TestParseBenchOutput(t *testing.T) {
	lines, err := parseBenchOutput([]byte(benchOut))
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 3 {
		t.Fatalf("got %d lines: %+v", len(lines), lines)
	}
	if lines[0].Name != "Handshake/gotatun" || lines[0].N != 200 || lines[0].Metrics["ns/op"] != 2983035 || lines[0].Metrics["allocs/op"] != 147 {
		t.Errorf("line 0: %+v", lines[0])
	}
	if lines[1].Name != "Seal1420/wireguard-go" || lines[1].Metrics["MB/s"] != 1495.19 {
		t.Errorf("line 1: %+v", lines[1])
	}
	if lines[2].Name != "IdlePeers/wireguard-go" || lines[2].Metrics["goroutines/peer"] != 2 || lines[2].Metrics["goroutine-growth"] != 1800 {
		t.Errorf("line 2: %+v", lines[2])
	}
	if _, err := parseBenchOutput([]byte("BenchmarkX-2 10 5 ns/op 7\n")); err == nil {
		t.Error("odd field count: no error")
	}
	if _, err := parseBenchOutput([]byte("BenchmarkX-2 10 NaN ns/op\n")); err == nil {
		t.Error("NaN value: no error")
	}
}

func TestSearchMaxRate(t *testing.T) {
	// A path that carries up to limit Mbit/s without loss.
	path := func(limit float64, probes *[]float64) rateProbe {
		return func(rate float64) (bool, float64, error) {
			*probes = append(*probes, rate)
			return rate <= limit, math.Min(rate, limit), nil
		}
	}
	var probes []float64
	r, err := searchMaxRate(path(700, &probes), 500, 500, 2000, false, 4)
	if err != nil {
		t.Fatal(err)
	}
	// 2000 fails, then geometric midpoints: 1000 ✗, 707.1 ✗, 594.6 ✓, 648.4 ✓.
	want := []float64{2000, 1000, 707.1, 594.6, 648.4}
	if len(probes) != len(want) {
		t.Fatalf("probes %v, want %v", probes, want)
	}
	for i := range want {
		if math.Abs(probes[i]-want[i]) > 0.1 {
			t.Fatalf("probes %v, want %v", probes, want)
		}
	}
	if math.Abs(r.RateMbps-648.4) > 0.1 || r.GoodputMbps != r.RateMbps || r.Capped || r.Probes != 5 {
		t.Errorf("result %+v", r)
	}

	probes = nil
	r, err = searchMaxRate(path(5000, &probes), 500, 499, 2000, false, 4)
	if err != nil || !r.Capped || r.RateMbps != 2000 || len(probes) != 1 {
		t.Errorf("upper bound passes: %+v, %v, probes %v", r, err, probes)
	}

	probes = nil
	r, err = searchMaxRate(path(100, &probes), 0, 0, 500, true, 3)
	if err != nil || r.RateMbps != 62.5 || probes[0] != 250 {
		t.Errorf("known-bad upper bound: %+v, %v, probes %v", r, err, probes)
	}

	probes = nil
	r, err = searchMaxRate(path(1, &probes), 0, 0, 500, true, 2)
	if err != nil || r.RateMbps != 0 || r.GoodputMbps != 0 {
		t.Errorf("nothing passes: %+v, %v", r, err)
	}

	boom := errors.New("iperf3 failed")
	_, err = searchMaxRate(func(float64) (bool, float64, error) { return false, 0, boom }, 0, 0, 500, true, 2)
	if !errors.Is(err, boom) {
		t.Errorf("probe error not returned: %v", err)
	}
	if _, err := searchMaxRate(path(1, &probes), 500, 0, 500, true, 2); err == nil {
		t.Error("empty range: no error")
	}
}

func TestSummarize(t *testing.T) {
	s := summarize([]float64{3, 1, 2})
	if s.Median != 2 || s.Min != 1 || s.Max != 3 || s.Samples[0] != 3 {
		t.Errorf("odd: %+v", s)
	}
	s = summarize([]float64{4, 1, 2, 3})
	if s.Median != 2.5 {
		t.Errorf("even: median %v", s.Median)
	}
	if summarize(nil) != nil {
		t.Error("no samples should give nil")
	}
}

// fakeSamples gives every metric a value for every implementation.
func fakeSamples(p plan, g, w float64) samples {
	res := samples{}
	for _, d := range metricDefs(p) {
		res.add(d.ID, nameWG, w)
		res.add(d.ID, nameGotatun, g)
		if d.Veth {
			res.add(d.ID, nameVeth, 2*w)
		}
	}
	return res
}

func TestBuildReportTargets(t *testing.T) {
	p := fullPlan()
	res := fakeSamples(p, 10, 4)
	rows, met, total := buildReport(p, res)
	if len(missing(rows, metricDefs(p))) != 0 {
		t.Fatalf("missing: %v", missing(rows, metricDefs(p)))
	}
	byID := map[string]metricResult{}
	for _, r := range rows {
		byID[r.ID] = r
	}
	check := func(id string, want bool) {
		t.Helper()
		r := byID[id]
		if r.Met == nil || *r.Met != want {
			t.Errorf("%s: met %v, want %v (ratio %v)", id, r.Met, want, formatRatio(r.Ratio))
		}
	}
	// gotatun 10 vs wireguard-go 4: ratio 2.5.
	check("tcp1_fwd", true)    // ≥ 2.0×
	check("hs_per_sec", true)  // ≥ 1.0×
	check("cpu_per_gb", false) // ≤ 0.5×
	if byID["rtt_added_idle"].Target != nil || byID["rtt_added_idle"].Met != nil {
		t.Errorf("rtt_added_idle has a target; it is reported only")
	}
	check("seal_allocs", false)           // not zero
	check("idle_mem_per_peer", true)      // 10 ≤ 4096
	check("idle_goroutine_growth", false) // 10 > 0
	check("proxy_socks5_mbps", true)      // ≥ 1.5×
	check("proxy_cpu_per_gb", false)      // ≤ 0.6×
	check("mh_tcp1", true)                // ≥ 1.5×
	check("mh_cpu_per_gb", false)         // ≤ 0.6×
	check("mh_over_single", true)         // 10 ≥ 0.6
	check("daita_tcp_ratio", true)        // 10 ≥ 0.9
	check("daita_cpu_ratio", false)       // 10 > 1.15
	check("daita_pkt_allocs", false)
	check("daita_idle_heap_per_peer", true)        // 10 ≤ 16 KiB
	check("daita_idle_goroutines_per_peer", false) // 10 > 0
	check("flood_tcp", true)                       // ≥ 1.0×
	if total != 21 || met != 12 {
		t.Errorf("met %d of %d, want 12 of 21", met, total)
	}

	res = fakeSamples(p, 1, 4) // ratio 0.25
	res["seal_allocs"][nameGotatun] = []float64{0, 0, 0}
	res["open_allocs"][nameGotatun] = []float64{0, 0.01, 0}
	res["idle_goroutine_growth"][nameGotatun] = []float64{0}
	res["idle_mem_per_peer"][nameGotatun] = []float64{5000, 4000, 4096}
	res["mh_over_single"][nameGotatun] = []float64{0.5, 0.7, 0.55}
	rows, _, _ = buildReport(p, res)
	for _, r := range rows {
		byID[r.ID] = r
	}
	check("tcp1_fwd", false)
	check("cpu_per_gb", true)
	check("seal_allocs", true)
	check("open_allocs", false) // one sample allocated
	check("idle_goroutine_growth", true)
	check("idle_mem_per_peer", true) // median 4096
	check("mh_over_single", false)   // median 0.55
	check("flood_tcp", false)        // 0.25×

	// DAITA rows have no wireguard-go figure, and need none.
	for _, d := range daitaMetricDefs(p) {
		delete(res[d.ID], nameWG)
	}
	delete(res["tcp4_rev"], nameGotatun)
	res["tcp1_rev"][nameWG] = []float64{math.NaN()}
	rows, _, _ = buildReport(p, res)
	miss := strings.Join(missing(rows, metricDefs(p)), " ")
	if !strings.Contains(miss, "tcp4_rev/gotatun") || !strings.Contains(miss, "tcp1_rev/wireguard-go") || strings.Contains(miss, "daita") {
		t.Errorf("missing() = %q", miss)
	}
}

func TestFormatNum(t *testing.T) {
	for _, c := range []struct {
		v      float64
		digits int
		want   string
	}{
		{1234567, 0, "1,234,567"},
		{-1234.5, 1, "-1,234.5"},
		{0.5, 0, "0.5"},
		{999, 0, "999"},
		{1000, 2, "1,000.00"},
	} {
		if got := formatNum(c.v, c.digits); got != c.want {
			t.Errorf("formatNum(%v, %d) = %q, want %q", c.v, c.digits, got, c.want)
		}
	}
}

// checkReportFiles validates what writeReport produced in dir.
func checkReportFiles(t *testing.T, dir string, p plan) {
	t.Helper()
	js, err := os.ReadFile(filepath.Join(dir, "benchmarks.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(js, &rep); err != nil {
		t.Fatalf("benchmarks.json: %v", err)
	}
	if miss := missing(rep.Metrics, metricDefs(p)); len(miss) > 0 {
		t.Errorf("benchmarks.json lacks values for %v", miss)
	}
	if rep.TargetsTotal == 0 || rep.Machine.Cores == 0 || rep.Machine.Kernel == "" {
		t.Errorf("benchmarks.json: targets %d, machine %+v", rep.TargetsTotal, rep.Machine)
	}
	md, err := os.ReadFile(filepath.Join(dir, "benchmarks.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range metricDefs(p) {
		if !bytes.Contains(md, []byte(mdEscape(d.Name))) {
			t.Errorf("benchmarks.md has no row %q", d.Name)
		}
	}
	if !bytes.Contains(md, []byte("benchmarks.svg")) || !bytes.Contains(md, []byte("| CPU |")) {
		t.Error("benchmarks.md lacks the chart or the machine table")
	}
	svg, err := os.ReadFile(filepath.Join(dir, "benchmarks.svg"))
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(svg))
	rects := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("benchmarks.svg is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			rects++
		}
	}
	if rects < 10 {
		t.Errorf("benchmarks.svg has only %d bars", rects)
	}
}

func TestWriteReport(t *testing.T) {
	p := fullPlan()
	rows, met, total := buildReport(p, fakeSamples(p, 10, 4))
	dir := t.TempDir()
	rep := report{Generated: "now", Machine: machine{Cores: 2, Kernel: "6.1", CPUModel: "x <&> y"}, Plan: p, Metrics: rows, TargetsMet: met, TargetsTotal: total}
	if err := writeReport(dir, rep); err != nil {
		t.Fatal(err)
	}
	checkReportFiles(t, dir, p)

	// Re-rendering from the JSON gives the same report.
	js, err := os.ReadFile(filepath.Join(dir, "benchmarks.json"))
	if err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "benchmarks.md"))
	again, err := reportFromJSON(js)
	if err != nil {
		t.Fatal(err)
	}
	if again.TargetsMet != met || again.TargetsTotal != total || renderMarkdown(again) != string(md) {
		t.Error("report rebuilt from benchmarks.json differs")
	}
	if _, err := reportFromJSON([]byte("{")); err == nil {
		t.Error("bad JSON: no error")
	}
}

// testLog forwards the bench's progress lines to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestSmoke runs the whole bench in smoke mode: both daemons in network
// namespaces and the in-process benchmarks. It checks that every figure got
// a number and the report files were written, nothing about speed. It needs
// root and the tools; it skips without them, and fails without them when
// CI=true.
func TestSmoke(t *testing.T) {
	if err := checkPrereqs(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but the bench cannot run: %v", err)
		}
		t.Skipf("bench smoke test needs root and tools: %v", err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := run(ctx, options{smoke: true, outDir: dir, stdout: testLog{t}}); err != nil {
		t.Fatal(err)
	}
	checkReportFiles(t, dir, smokePlan())
}

func TestNotRoot(t *testing.T) {
	if os.Geteuid() == 0 {
		if err := checkPrereqs(); errors.Is(err, errNotRoot) {
			t.Error("root reported as not root")
		}
		return
	}
	if err := checkPrereqs(); !errors.Is(err, errNotRoot) {
		t.Errorf("checkPrereqs as non-root = %v, want errNotRoot", err)
	}
}

// FuzzParsers feeds arbitrary bytes to every parser of tool output: none
// may panic, and what they accept must be sane.
func FuzzParsers(f *testing.F) {
	for _, s := range []string{iperfTCP, iperfUDP, pingOut, benchOut,
		"4242 (wg) S 1 4242 4242 0 -1 4194560 1234 0 0 0 731 269 0",
		"VmHWM:\t  110836 kB\n", `{"error":"x"}`, ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, udp := range []bool{false, true} {
			if r, err := parseIperf(data, udp); err == nil {
				if r.Seconds <= 0 || r.BitsPerSecond < 0 || r.Bytes < 0 || r.LostPercent < 0 || (udp && r.LostPercent > 100) {
					t.Fatalf("parseIperf accepted %+v", r)
				}
			}
		}
		if rtts, err := parsePing(data); err == nil {
			if len(rtts) == 0 {
				t.Fatal("parsePing accepted no replies")
			}
			for _, v := range rtts {
				if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("parsePing accepted %v", v)
				}
			}
			_ = percentile(rtts, 99)
		}
		_, _ = parseProcStat(data)
		_, _ = parseVmHWM(data)
		if lines, err := parseBenchOutput(data); err == nil {
			for _, l := range lines {
				if l.N <= 0 {
					t.Fatalf("parseBenchOutput accepted N=%d", l.N)
				}
			}
		}
	})
}

func TestParseSections(t *testing.T) {
	if s, err := parseSections(""); err != nil || s != nil {
		t.Fatalf(`parseSections("") = %v, %v; want nil, nil`, s, err)
	}
	s, err := parseSections("daita, multihop")
	if err != nil || len(s) != 2 || !s["daita"] || !s["multihop"] {
		t.Fatalf("parseSections(daita, multihop) = %v, %v", s, err)
	}
	if _, err := parseSections("daita,flod"); err == nil || !strings.Contains(err.Error(), `"flod"`) {
		t.Fatalf("unknown section: err = %v", err)
	}
}

func TestLatestHandshake(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{
		{"", 0},
		{"abc=\t0\n", 0},
		{"abc=\t1700000000\ndef=\t1700000005\n", 1700000005},
		{"garbage\nabc=\tx\n", 0},
	} {
		if got := latestHandshake([]byte(c.in)); got != c.want {
			t.Errorf("%q: %d, want %d", c.in, got, c.want)
		}
	}
}
