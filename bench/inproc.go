//go:build linux

package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// benchMap says which figure a unit of a Go benchmark feeds.
type benchMap struct {
	bench   string // benchmark name without "Benchmark" and the implementation
	unit    string
	metric  string
	convert func(float64) float64
}

var inprocMaps = []benchMap{
	{"Handshake", "ns/op", "hs_per_sec", func(ns float64) float64 { return 1e9 / ns }},
	{"Handshake", "allocs/op", "hs_allocs", nil},
	{"Seal1420", "ns/op", "seal_ns", nil},
	{"Seal1420", "allocs/op", "seal_allocs", nil},
	{"Open1420", "ns/op", "open_ns", nil},
	{"Open1420", "allocs/op", "open_allocs", nil},
	{"AllowedIPsLookup", "ns/op", "lookup_ns", nil},
	{"AllowedIPsLookup", "allocs/op", "lookup_allocs", nil},
	{"IdlePeers", "heap-B/peer", "idle_heap_per_peer", nil},
	{"IdlePeers", "mem-B/peer", "idle_mem_per_peer", nil},
	{"IdlePeers", "goroutines/peer", "idle_goroutines_per_peer", nil},
	{"IdlePeers", "goroutine-growth", "idle_goroutine_growth", nil},
}

// runInproc runs the compiled bench/inproc test binary: the timed
// benchmarks, then the idle-peer measurement once per count.
func runInproc(ctx context.Context, testBin, dir string, p plan, res samples, logf func(string, ...any)) error {
	runs := [][]string{
		{"-test.bench=^Benchmark(Handshake|Seal1420|Open1420|AllowedIPsLookup)$", "-test.benchtime=" + p.BenchTime},
		{"-test.bench=^BenchmarkIdlePeers$", "-test.benchtime=1x", "-peers=" + strconv.Itoa(p.IdlePeers)},
	}
	for _, extra := range runs {
		args := append([]string{"-test.run=^$", "-test.benchmem", "-test.count=" + strconv.Itoa(p.BenchCount)}, extra...)
		logf("go test %s", strings.Join(args, " "))
		out, err := runCmdIn(ctx, dir, testBin, args...)
		if err != nil {
			return fmt.Errorf("in-process benchmarks: %w\n%s", err, out)
		}
		lines, err := parseBenchOutput(out)
		if err != nil {
			return fmt.Errorf("in-process benchmarks: %w", err)
		}
		if len(lines) == 0 {
			return fmt.Errorf("in-process benchmarks produced no results:\n%s", out)
		}
		for _, l := range lines {
			bench, who, ok := strings.Cut(l.Name, "/")
			if !ok || (who != nameGotatun && who != nameWG) {
				return fmt.Errorf("in-process benchmark %q is not named Bench/%s or Bench/%s", l.Name, nameGotatun, nameWG)
			}
			logf("  %-40s %s", l.Name, formatMetrics(l.Metrics))
			for _, m := range inprocMaps {
				if m.bench != bench {
					continue
				}
				v, ok := l.Metrics[m.unit]
				if !ok {
					return fmt.Errorf("in-process benchmark %s reported no %s", l.Name, m.unit)
				}
				if m.convert != nil {
					v = m.convert(v)
				}
				res.add(m.metric, who, v)
			}
		}
	}
	return nil
}

func formatMetrics(m map[string]float64) string {
	var parts []string
	for _, u := range []string{"ns/op", "B/op", "allocs/op", "heap-B/peer", "mem-B/peer", "goroutines/peer", "goroutine-growth"} {
		if v, ok := m[u]; ok {
			parts = append(parts, strconv.FormatFloat(v, 'f', -1, 64)+" "+u)
		}
	}
	return strings.Join(parts, "  ")
}

// buildInproc compiles the in-process benchmarks into a test binary.
func buildInproc(ctx context.Context, modRoot, out string) error {
	_, err := runCmdIn(ctx, modRoot, "go", "test", "-c", "-o", out, "./bench/inproc")
	return err
}

// inprocDir is where the test binary runs (its package directory).
func inprocDir(modRoot string) string { return filepath.Join(modRoot, "bench", "inproc") }
