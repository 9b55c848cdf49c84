//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// iperfResult is what one iperf3 run measured at the receiving end.
type iperfResult struct {
	BitsPerSecond float64 // goodput seen by the receiver
	Bytes         float64 // bytes the receiver got
	Seconds       float64
	LostPercent   float64 // UDP only
	Packets       int64   // UDP only: datagrams sent
}

type iperfSum struct {
	Seconds       float64 `json:"seconds"`
	Bytes         float64 `json:"bytes"`
	BitsPerSecond float64 `json:"bits_per_second"`
	LostPercent   float64 `json:"lost_percent"`
	Packets       int64   `json:"packets"`
}

// parseIperf reads the JSON report of `iperf3 -c … -J`. For TCP the
// receiver's sum is used; for UDP the receiver's sum, which carries the loss
// the server reported back.
func parseIperf(data []byte, udp bool) (iperfResult, error) {
	var doc struct {
		Error string `json:"error"`
		End   struct {
			Sum         *iperfSum `json:"sum"`
			SumReceived *iperfSum `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return iperfResult{}, fmt.Errorf("iperf3 output is not JSON: %w", err)
	}
	if doc.Error != "" {
		return iperfResult{}, fmt.Errorf("iperf3: %s", doc.Error)
	}
	s := doc.End.SumReceived
	if s == nil && udp {
		s = doc.End.Sum
	}
	if s == nil {
		return iperfResult{}, errors.New("iperf3 output has no receiver summary (end.sum_received)")
	}
	for name, v := range map[string]float64{"seconds": s.Seconds, "bytes": s.Bytes, "bits_per_second": s.BitsPerSecond, "lost_percent": s.LostPercent} {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return iperfResult{}, fmt.Errorf("iperf3 summary field %s is %v", name, v)
		}
	}
	if s.Seconds == 0 {
		return iperfResult{}, errors.New("iperf3 summary covers 0 seconds")
	}
	if udp && s.LostPercent > 100 {
		return iperfResult{}, fmt.Errorf("iperf3 reports %v%% loss", s.LostPercent)
	}
	return iperfResult{
		BitsPerSecond: s.BitsPerSecond,
		Bytes:         s.Bytes,
		Seconds:       s.Seconds,
		LostPercent:   s.LostPercent,
		Packets:       s.Packets,
	}, nil
}

// parsePing extracts the round-trip time, in milliseconds, of every reply
// line of ping(8) output ("… time=0.123 ms"). Duplicate replies are skipped.
func parsePing(out []byte) ([]float64, error) {
	var rtts []float64
	for line := range bytes.Lines(out) {
		s := strings.TrimSpace(string(line))
		if strings.Contains(s, "DUP!") {
			continue
		}
		i := strings.Index(s, " time=")
		if i < 0 {
			i = strings.Index(s, " time<")
		}
		if i < 0 {
			continue
		}
		rest := s[i+len(" time="):]
		j := strings.IndexByte(rest, ' ')
		if j < 0 {
			return nil, fmt.Errorf("ping reply without a unit: %q", s)
		}
		if unit := strings.TrimSpace(rest[j:]); unit != "ms" {
			return nil, fmt.Errorf("ping reply in unexpected unit %q: %q", unit, s)
		}
		v, err := strconv.ParseFloat(rest[:j], 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return nil, fmt.Errorf("ping reply with bad time %q: %q", rest[:j], s)
		}
		rtts = append(rtts, v)
	}
	if len(rtts) == 0 {
		return nil, errors.New("ping got no replies")
	}
	return rtts, nil
}

// mean returns the arithmetic mean of xs (0 for none).
func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// percentile returns the nearest-rank p-th percentile (0 < p ≤ 100) of xs.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = max(1, min(rank, len(s)))
	return s[rank-1]
}

// parseProcStat returns utime+stime, in clock ticks, from /proc/PID/stat.
// The command name may hold spaces and parentheses, so fields are counted
// from the last ')'.
func parseProcStat(data []byte) (uint64, error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, errors.New("/proc stat: no ')' after the command name")
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat: %d fields after the command name, want at least 13", len(f))
	}
	u, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc stat utime: %w", err)
	}
	s, err := strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc stat stime: %w", err)
	}
	if u > math.MaxUint64-s {
		return 0, errors.New("/proc stat: utime+stime overflows")
	}
	return u + s, nil
}

// parseVmHWM returns the peak resident set size, in bytes, from
// /proc/PID/status.
func parseVmHWM(data []byte) (uint64, error) {
	for line := range bytes.Lines(data) {
		rest, ok := bytes.CutPrefix(line, []byte("VmHWM:"))
		if !ok {
			continue
		}
		f := strings.Fields(string(rest))
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("/proc status: malformed VmHWM line %q", bytes.TrimSpace(line))
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil || kb > math.MaxUint64/1024 {
			return 0, fmt.Errorf("/proc status: bad VmHWM value %q", f[0])
		}
		return kb * 1024, nil
	}
	return 0, errors.New("/proc status has no VmHWM line")
}

// benchLine is one result line of `go test -bench` output.
type benchLine struct {
	Name    string // without the Benchmark prefix and -GOMAXPROCS suffix
	N       int64
	Metrics map[string]float64 // by unit: "ns/op", "allocs/op", custom units
}

// parseBenchOutput reads the result lines of `go test -bench -benchmem`
// output and ignores everything else.
func parseBenchOutput(out []byte) ([]benchLine, error) {
	var lines []benchLine
	for raw := range bytes.Lines(out) {
		f := strings.Fields(string(raw))
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || n <= 0 {
			continue // a "BenchmarkX --- FAIL" or log line, not a result
		}
		if len(f)%2 != 0 {
			return nil, fmt.Errorf("benchmark line with an odd number of fields: %q", strings.TrimSpace(string(raw)))
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		if i := strings.LastIndexByte(name, '-'); i >= 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		bl := benchLine{Name: name, N: n, Metrics: map[string]float64{}}
		for i := 2; i < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("benchmark %s: bad value %q for %s", name, f[i], f[i+1])
			}
			bl.Metrics[f[i+1]] = v
		}
		lines = append(lines, bl)
	}
	return lines, nil
}

// rateProbe offers UDP at mbps and reports whether loss stayed within the
// limit and what the receiver got.
type rateProbe func(mbps float64) (ok bool, goodputMbps float64, err error)

// searchResult is the outcome of searchMaxRate.
type searchResult struct {
	RateMbps    float64 // highest offered rate that stayed within the loss limit
	GoodputMbps float64 // what the receiver got at that rate
	Capped      bool    // the upper bound itself passed; the real limit is higher
	Probes      int
}

// searchMaxRate bisects over offered rates (geometrically once a passing
// rate is known) for the highest one whose loss stays within the limit. good is a rate known to pass (0 if none) with its
// goodput; bad is a rate known to fail, or, when badKnown is false, an upper
// bound that is probed first. steps bisection probes follow.
func searchMaxRate(probe rateProbe, good, goodGoodput, bad float64, badKnown bool, steps int) (searchResult, error) {
	res := searchResult{RateMbps: good, GoodputMbps: goodGoodput}
	if bad <= good {
		return res, fmt.Errorf("search bounds: upper %v ≤ lower %v", bad, good)
	}
	if !badKnown {
		ok, gp, err := probe(bad)
		res.Probes++
		if err != nil {
			return res, err
		}
		if ok {
			res.RateMbps, res.GoodputMbps, res.Capped = bad, gp, true
			return res, nil
		}
	}
	lo, hi := good, bad
	for range steps {
		// Halve the ratio hi/lo once a lower bound is known, so the
		// resolution is relative; halve the range while it is not.
		mid := (lo + hi) / 2
		if lo > 0 {
			mid = math.Sqrt(lo * hi)
		}
		ok, gp, err := probe(mid)
		res.Probes++
		if err != nil {
			return res, err
		}
		if ok {
			lo = mid
			res.RateMbps, res.GoodputMbps = mid, gp
		} else {
			hi = mid
		}
	}
	return res, nil
}
