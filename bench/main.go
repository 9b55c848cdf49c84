//go:build linux

// Command bench measures gotatun against wireguard-go on this machine and
// writes the report to docs/benchmarks.{md,json,svg}.
//
// It builds both daemons, joins two network namespaces with a veth pair,
// and measures each implementation in interleaved rounds: TCP and UDP
// throughput with iperf3, ping RTT idle and under load, CPU time per GB and
// peak RSS of the daemons, and the bare veth as the ceiling; and a
// legitimate TCP transfer while the server is flooded with handshake
// initiations (flood.go). It then runs
// the in-process Go benchmarks in bench/inproc (handshakes, packet
// encryption, idle peers, allowed-IPs lookups) for both implementations.
//
// It must run as root (network namespaces). With -smoke it runs one short
// round in under a minute, for CI; those numbers mean nothing.
//
//	go run ./bench            # full run, several minutes, writes docs/
//	go run ./bench -smoke     # quick check, writes to a temporary directory
//	go run ./bench -only flood  # one section (see -help), to a temporary directory
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// impl is one implementation under test.
type impl struct {
	name string
	tag  byte   // one letter in interface names
	bin  string // daemon binary: BIN -f IFNAME
}

type options struct {
	smoke      bool
	rounds     int // 0: the plan's default
	outDir     string
	gotatunBin string // prebuilt daemon instead of building ./cmd/gotatun
	wgBin      string // prebuilt wireguard-go instead of building the pinned module
	skipInproc bool
	only       string
	fromJSON   string // re-render this benchmarks.json instead of measuring
	stdout     io.Writer
}

func main() {
	var o options
	flag.BoolVar(&o.smoke, "smoke", false, "one short round and tiny in-process runs (CI check; numbers are meaningless)")
	flag.IntVar(&o.rounds, "rounds", 0, "rounds of namespace measurements (default 3, or 1 with -smoke)")
	flag.StringVar(&o.outDir, "out", "", "directory for benchmarks.{md,json,svg} (default: docs/ of the module, or a temporary directory with -smoke)")
	flag.StringVar(&o.gotatunBin, "gotatun", "", "use this gotatun daemon binary instead of building ./cmd/gotatun")
	flag.StringVar(&o.wgBin, "wireguard-go", "", "use this wireguard-go binary instead of building the version pinned in go.mod")
	flag.BoolVar(&o.skipInproc, "skip-inproc", false, "skip the in-process Go benchmarks")
	flag.StringVar(&o.only, "only", "", "run only these sections, comma-separated: "+strings.Join(sectionNames, ",")+" (the report then goes to a temporary directory unless -out is given)")
	flag.StringVar(&o.fromJSON, "render", "", "measure nothing: re-render benchmarks.md and .svg from this benchmarks.json (into -out, default the file's directory)")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "bench: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	o.stdout = os.Stdout
	if o.fromJSON != "" {
		if err := render(o); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		<-ctx.Done()
		stop() // a second interrupt kills the process outright
	}()
	err := run(ctx, o)
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("interrupted (namespaces and daemons removed): %w", err)
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// render rewrites the report files from an existing benchmarks.json.
func render(o options) error {
	data, err := os.ReadFile(o.fromJSON)
	if err != nil {
		return err
	}
	rep, err := reportFromJSON(data)
	if err != nil {
		return err
	}
	if o.outDir == "" {
		o.outDir = filepath.Dir(o.fromJSON)
	}
	if err := writeReport(o.outDir, rep); err != nil {
		return err
	}
	fmt.Fprintf(o.stdout, "wrote %s/benchmarks.{md,json,svg}; targets met: %d of %d\n", o.outDir, rep.TargetsMet, rep.TargetsTotal)
	return nil
}

// errNotRoot is returned when the bench is not run as root.
var errNotRoot = errors.New("must run as root: it creates network namespaces, veth pairs and TUN devices (try: sudo make bench)")

// requiredTools are the programs the namespace measurements run.
var requiredTools = []string{"ip", "ss", "wg", "iperf3", "ping", "go"}

// checkPrereqs reports what is missing to run the bench.
func checkPrereqs() error {
	if os.Geteuid() != 0 {
		return errNotRoot
	}
	var miss []string
	for _, t := range requiredTools {
		if _, err := exec.LookPath(t); err != nil {
			miss = append(miss, t)
		}
	}
	if len(miss) > 0 {
		return fmt.Errorf("missing tools: %s (Debian/Ubuntu: apt-get install iproute2 wireguard-tools iperf3 iputils-ping)", strings.Join(miss, ", "))
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return fmt.Errorf("no TUN support: %w", err)
	}
	return nil
}

// runCmdIn runs a command in directory dir and returns its combined output.
func runCmdIn(ctx context.Context, dir, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// moduleRoot finds the gotatun module from the working directory.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := runCmdIn(ctx, ".", "go", "env", "GOMOD")
	if err != nil {
		return "", err
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run from inside the gotatun module (no go.mod found)")
	}
	return filepath.Dir(gomod), nil
}

func run(ctx context.Context, o options) (err error) {
	start := time.Now()
	if err := checkPrereqs(); err != nil {
		return err
	}
	sections, err := parseSections(o.only)
	if err != nil {
		return err
	}
	want := func(name string) bool { return sections == nil || sections[name] }
	runInprocs := !o.skipInproc && want(sectionInproc)
	p := fullPlan()
	if o.smoke {
		p = smokePlan()
	}
	if o.rounds > 0 {
		p.Rounds = o.rounds
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(o.stdout, "[%5.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}

	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	if o.outDir == "" {
		if o.smoke || sections != nil {
			o.outDir = filepath.Join(os.TempDir(), "gotatun-bench-smoke")
		} else {
			o.outDir = filepath.Join(root, "docs")
		}
	}
	work, err := os.MkdirTemp("", "gotatun-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	// Build everything before measuring, so compiles do not disturb it.
	gt := &impl{name: nameGotatun, tag: 'g', bin: o.gotatunBin}
	wg := &impl{name: nameWG, tag: 'w', bin: o.wgBin}
	if gt.bin == "" {
		gt.bin = filepath.Join(work, "gotatun")
		logf("building gotatun")
		if _, err := runCmdIn(ctx, root, "go", "build", "-o", gt.bin, "./cmd/gotatun"); err != nil {
			return err
		}
	}
	if wg.bin == "" {
		wg.bin = filepath.Join(work, "wireguard-go")
		logf("building wireguard-go (version pinned in go.mod)")
		if _, err := runCmdIn(ctx, root, "go", "build", "-o", wg.bin, "golang.zx2c4.com/wireguard"); err != nil {
			return err
		}
	}
	var wgProxy string
	if want(sectionProxy) {
		logf("building wgproxy (the proxy package on wireguard-go's netstack)")
		if wgProxy, err = buildWGProxy(ctx, root, work); err != nil {
			return err
		}
	}
	testBin := filepath.Join(work, "inproc.test")
	if runInprocs {
		logf("building the in-process benchmarks")
		if err := buildInproc(ctx, root, testBin); err != nil {
			return err
		}
	}
	daitaBin := filepath.Join(work, "device.test")
	if runInprocs {
		logf("building the DAITA benchmarks (device package)")
		if err := buildDAITAInproc(ctx, root, daitaBin); err != nil {
			return err
		}
	}
	daitaFile, err := daitaMachines(root, work)
	if err != nil {
		return err
	}
	mach := describeMachine(ctx, root, gt.bin, wg.bin)
	logf("machine: %s, %d cores, kernel %s, %s, load %.2f", mach.CPUModel, mach.Cores, mach.Kernel, mach.GoVersion, mach.LoadAvg)

	res := samples{}
	cleanStale(ctx, logf)
	topo := newTopology()
	defer func() {
		logf("removing namespaces %s and %s", topo.nsA, topo.nsB)
		topo.teardown()
	}()
	if err := topo.setup(ctx); err != nil {
		return err
	}
	nb := &netBench{plan: p, topo: topo, work: work, logf: logf, res: res, vethRTT: map[int]float64{}}
	defer func() {
		if nb.server != nil {
			nb.server.stop()
		}
	}()
	for round := 1; want(sectionTunnel) && round <= p.Rounds; round++ {
		logf("round %d of %d: bare veth", round, p.Rounds)
		if err := nb.measureVeth(ctx, round); err != nil {
			return err
		}
		for _, im := range []*impl{wg, gt} {
			logf("round %d of %d: %s", round, p.Rounds, im.name)
			if err := nb.measureImpl(ctx, im, round); err != nil {
				return err
			}
		}
	}
	for round := 1; want(sectionDAITA) && round <= p.Rounds; round++ {
		logf("round %d of %d: gotatun, DAITA off and on", round, p.Rounds)
		if err := nb.measureDAITA(ctx, gt, round, daitaFile); err != nil {
			return err
		}
	}
	if want(sectionFlood) {
		if err := runFloodRounds(ctx, nb, []*impl{wg, gt}); err != nil {
			return err
		}
	}
	if nb.server != nil {
		nb.server.stop()
	}
	if want(sectionProxy) {
		if err := runProxyRounds(ctx, nb, wgProxy, gt.bin); err != nil {
			return err
		}
	}
	if want(sectionMultihop) {
		logf("multihop: client, entry relay and exit relay in three namespaces")
		if err := measureMultihop(ctx, p, gt, wg, work, logf, res); err != nil {
			return err
		}
	}
	if runInprocs {
		logf("in-process benchmarks")
		if err := runInproc(ctx, testBin, inprocDir(root), p, res, logf); err != nil {
			return err
		}
		if err := runDAITAInproc(ctx, daitaBin, root, p, res, logf); err != nil {
			return err
		}
	}

	rows, met, total := buildReport(p, res)
	rep := report{
		Generated:    time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		Smoke:        o.smoke,
		Machine:      mach,
		Plan:         p,
		Metrics:      rows,
		TargetsMet:   met,
		TargetsTotal: total,
	}
	if err := writeReport(o.outDir, rep); err != nil {
		return err
	}
	logf("wrote %s/benchmarks.{md,json,svg}; targets met: %d of %d", o.outDir, met, total)
	for _, r := range rows {
		if r.Target == nil {
			continue
		}
		status := "NOT MET"
		if *r.Met {
			status = "met"
		}
		logf("  %-60s %-16s %-22s %s", r.Name, judged(r), r.Target.Text, status)
	}
	if !runInprocs || sections != nil {
		return nil
	}
	if miss := missing(rows, metricDefs(p)); len(miss) > 0 {
		return fmt.Errorf("no value for: %s", strings.Join(miss, ", "))
	}
	return nil
}

// describeMachine collects what the report says about where it ran.
func describeMachine(ctx context.Context, root, gtBin, wgBin string) machine {
	m := machine{Cores: runtime.NumCPU(), CPUModel: "unknown", Kernel: "unknown"}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(data)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(data)); len(f) > 0 {
			m.LoadAvg, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	first := func(out []byte, err error) string {
		if err != nil {
			return "unknown"
		}
		l, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		return strings.TrimSpace(l)
	}
	m.GoVersion = first(runCmdIn(ctx, root, "go", "env", "GOVERSION"))
	m.GotatunVersion = first(runCmdIn(ctx, root, gtBin, "--version"))
	if rev := first(runCmdIn(ctx, root, "git", "rev-parse", "--short", "HEAD")); rev != "unknown" {
		if st, err := runCmdIn(ctx, root, "git", "status", "--porcelain", "--untracked-files=no"); err == nil && len(strings.TrimSpace(string(st))) > 0 {
			rev += " with local changes"
		}
		m.GotatunVersion += " (commit " + rev + ")"
	}
	m.WGVersion = first(runCmdIn(ctx, root, wgBin, "--version"))
	if mod := first(runCmdIn(ctx, root, "go", "list", "-m", "golang.zx2c4.com/wireguard")); mod != "unknown" {
		m.WGVersion += " (module " + mod + ")"
	}
	m.Iperf3 = first(runCmdIn(ctx, root, "iperf3", "--version"))
	return m
}

// Sections of the benchmark that -only can select.
const (
	sectionTunnel   = "tunnel"   // veth, wireguard-go and gotatun: TCP, UDP, RTT, CPU, RSS
	sectionDAITA    = "daita"    // gotatun with DAITA off and on
	sectionProxy    = "proxy"    // the SOCKS5 proxy on both netstacks
	sectionMultihop = "multihop" // three namespaces, both implementations
	sectionInproc   = "inproc"   // the in-process Go benchmarks
	sectionFlood    = "flood"    // legitimate TCP under a handshake flood, both implementations
)

var sectionNames = []string{sectionTunnel, sectionDAITA, sectionFlood, sectionProxy, sectionMultihop, sectionInproc}

// parseSections reads -only: nil means every section.
func parseSections(only string) (map[string]bool, error) {
	if strings.TrimSpace(only) == "" {
		return nil, nil
	}
	out := map[string]bool{}
	for _, name := range strings.Split(only, ",") {
		name = strings.TrimSpace(name)
		if !slices.Contains(sectionNames, name) {
			return nil, fmt.Errorf("-only: unknown section %q (known: %s)", name, strings.Join(sectionNames, ", "))
		}
		out[name] = true
	}
	return out, nil
}

// judged is what a target is judged on, for the log: the ratio to
// wireguard-go, or gotatun's own median for an absolute target.
func judged(r metricResult) string {
	switch r.Target.Kind {
	case "abs_min", "abs_max", "all_zero":
		g := r.Values[nameGotatun]
		if g == nil {
			return "gotatun —"
		}
		return fmt.Sprintf("gotatun %.*f", max(r.digits, 2), g.Median)
	}
	return "ratio " + formatRatio(r.Ratio)
}
