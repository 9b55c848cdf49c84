package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gotatun/gotatun/tun"
)

func TestParseDaemonArgs(t *testing.T) {
	tests := []struct {
		args []string
		want daemonArgs
		err  string
	}{
		{[]string{"wg0"}, daemonArgs{ifname: "wg0"}, ""},
		{[]string{"-f", "wg0"}, daemonArgs{foreground: true, ifname: "wg0"}, ""},
		{[]string{"--foreground", "wg0"}, daemonArgs{foreground: true, ifname: "wg0"}, ""},
		{[]string{"wg0", "-f"}, daemonArgs{foreground: true, ifname: "wg0"}, ""},
		{[]string{"--", "-wg"}, daemonArgs{ifname: "-wg"}, ""},
		{[]string{"-f", "--", "demo"}, daemonArgs{foreground: true, ifname: "demo"}, ""},
		{[]string{"--", "dmeo"}, daemonArgs{ifname: "dmeo"}, ""},
		{[]string{"de"}, daemonArgs{ifname: "de"}, ""},
		{[]string{"demo12"}, daemonArgs{ifname: "demo12"}, ""},
		{nil, daemonArgs{}, "missing interface name"},
		{[]string{"-f"}, daemonArgs{}, "missing interface name"},
		{[]string{"wg0", "wg1"}, daemonArgs{}, "got 2 arguments"},
		{[]string{"wg0", "--", "wg1"}, daemonArgs{}, "got 2 arguments"},
		{[]string{"-x", "wg0"}, daemonArgs{}, "flag provided but not defined: -x"},
		{[]string{"--foregrund", "wg0"}, daemonArgs{}, "flag provided but not defined: -foregrund"},
		{[]string{"dmeo"}, daemonArgs{}, `did you mean "gotatun demo"?`},
		{[]string{"-f", "demo"}, daemonArgs{}, `did you mean "gotatun demo"?`},
		{[]string{"Daita"}, daemonArgs{}, `did you mean "gotatun daita"?`},
		{[]string{"daitaa"}, daemonArgs{}, `did you mean "gotatun daita"?`},
		{[]string{"dita"}, daemonArgs{}, `did you mean "gotatun daita"?`},
		{[]string{"hlep"}, daemonArgs{}, `did you mean "gotatun help"?`},
		{[]string{"versoin"}, daemonArgs{}, `did you mean "gotatun version"?`},
		{[]string{"-f", "--help"}, daemonArgs{}, "flag: help requested"},
	}
	for _, tt := range tests {
		got, err := parseDaemonArgs(tt.args)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: error %v, want %q", tt.args, err, tt.err)
			}
			continue
		}
		got.logLevel, got.silent = 0, false
		if err != nil || got != tt.want {
			t.Errorf("%q: got %+v, %v; want %+v", tt.args, got, err, tt.want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"demo", "demo", 0}, {"", "demo", 4}, {"dmeo", "demo", 1}, {"dem", "demo", 1},
		{"demoo", "demo", 1}, {"deme", "demo", 1}, {"edmo", "demo", 1}, {"wg0", "demo", 4},
		{"ca", "abc", 3}, {"daita", "dita", 1}, {"demo", "dome", 2}, {"émo", "demo", 2},
	} {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := editDistance(tt.b, tt.a); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.b, tt.a, got, tt.want)
		}
	}
}

func runTest(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestRunDaemonUsage(t *testing.T) {
	for _, args := range [][]string{{"--bogus", "wg0"}, {"-f"}, {"a", "b"}, {}} {
		code, stdout, stderr := runTest(args...)
		if code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
		if !strings.Contains(stderr, "gotatun [-f|--foreground] [flags] IFNAME") || !strings.Contains(stderr, "gotatun --help") {
			t.Errorf("%q: no usage on stderr: %q", args, stderr)
		}
		if stdout != "" {
			t.Errorf("%q: wrote to stdout: %q", args, stdout)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"-f", "--help"}, {"--foreground", "-h"}, {"wg0", "--help"}} {
		code, stdout, stderr := runTest(args...)
		if code != 0 || stderr != "" {
			t.Errorf("%q: exit %d, stderr %q", args, code, stderr)
		}
		for _, want := range []string{"gotatun [-f|--foreground] [flags] IFNAME", "-f, --foreground", "gotatun demo", "gotatun daita",
			"LOG_LEVEL", "WG_PROCESS_FOREGROUND", "WG_TUN_FD", "WG_UAPI_FD", "GOMAXPROCS", "GOTATUN_OFFLOADS", "CAP_NET_ADMIN", "/dev/net/tun",
			"one edit from", "gotatun -f -- demo1"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("%q: help lacks %q", args, want)
			}
		}
	}
}

func TestMistypedCommand(t *testing.T) {
	for _, args := range [][]string{{"dmeo"}, {"-f", "dmeo"}, {"dmeo", "-f"}, {"daiat", "inspect"}} {
		code, stdout, stderr := runTest(args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, "did you mean") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
	// Two arguments: the typo is reported, not the count.
	if _, _, stderr := runTest("daiat", "inspect"); !strings.Contains(stderr, `"gotatun daita"`) {
		t.Errorf("daiat inspect: %q", stderr)
	}
}

func TestLogLevelRefused(t *testing.T) {
	t.Setenv(envLogLevel, "loud")
	code, _, stderr := runTest("-f", "wg0")
	if code != 2 || !strings.Contains(stderr, `LOG_LEVEL="loud"`) || !strings.Contains(stderr, "verbose, debug, error or silent") {
		t.Errorf("exit %d, %q", code, stderr)
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"-v"}, {"version"}} {
		code, stdout, _ := runTest(args...)
		if code != 0 || !strings.HasPrefix(stdout, "gotatun v"+version) {
			t.Errorf("%q: exit %d, %q", args, code, stdout)
		}
	}
	info := &debug.BuildInfo{Settings: []debug.BuildSetting{
		{Key: "vcs", Value: "git"},
		{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
		{Key: "vcs.time", Value: "2026-12-03T09:24:04Z"},
		{Key: "vcs.modified", Value: "true"},
	}}
	if got, want := formatVersion("1.2.3", info), "gotatun v1.2.3 (revision 0123456789abcdef0123456789abcdef01234567, modified, 2026-12-03T09:24:04Z)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	info.Settings = info.Settings[:2]
	if got, want := formatVersion("v1.2.3", info), "gotatun v1.2.3 (revision 0123456789abcdef0123456789abcdef01234567)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := formatVersion("1.2.3", &debug.BuildInfo{}); got != "gotatun v1.2.3" {
		t.Errorf("without VCS: %q", got)
	}
	if got := formatVersion("1.2.3", nil); got != "gotatun v1.2.3" {
		t.Errorf("without build info: %q", got)
	}
}

func TestPrivilegeHint(t *testing.T) {
	for _, err := range []error{syscall.EPERM, fmt.Errorf("tun: create: %w", syscall.EACCES)} {
		if h := privilegeHint(err); !strings.Contains(h, "root or CAP_NET_ADMIN") || !strings.Contains(h, "/dev/net/tun") {
			t.Errorf("%v: hint %q", err, h)
		}
	}
	if h := privilegeHint(syscall.EBUSY); h != "" {
		t.Errorf("EBUSY: hint %q", h)
	}
}

func TestLogLevel(t *testing.T) {
	for in, want := range map[string]slog.Level{"verbose": slog.LevelDebug, "debug": slog.LevelDebug, "error": slog.LevelError, "": slog.LevelError} {
		got, ok, err := logLevel(in)
		if !ok || err != nil || got != want {
			t.Errorf("logLevel(%q) = %v, %v, %v; want %v", in, got, ok, err, want)
		}
	}
	if _, ok, err := logLevel("silent"); ok || err != nil {
		t.Errorf("silent: %v, %v", ok, err)
	}
	for _, bad := range []string{"nonsense", "VERBOSE", "info", " error"} {
		if _, _, err := logLevel(bad); err == nil {
			t.Errorf("logLevel(%q) accepted", bad)
		}
	}
	var buf bytes.Buffer
	newLogger(&buf, daemonArgs{silent: true}, "wg0").Error("x")
	if buf.Len() != 0 {
		t.Errorf("silent logger wrote %q", buf.String())
	}
	l := newLogger(&buf, daemonArgs{logLevel: slog.LevelError}, "wg0")
	l.Info("hidden")
	l.Error("shown")
	if s := buf.String(); strings.Contains(s, "hidden") || !strings.Contains(s, "shown") || !strings.Contains(s, "interface=wg0") {
		t.Errorf("default logger wrote %q", s)
	}
}

// eventTUN is an in-memory TUN whose events the test sends.
type eventTUN struct {
	*tun.Memory
	ev chan tun.Event
}

func (e *eventTUN) Events() <-chan tun.Event { return e.ev }
func (e *eventTUN) Close() error {
	err := e.Memory.Close()
	close(e.ev)
	return err
}

func TestWatchedTUN(t *testing.T) {
	inner := &eventTUN{Memory: tun.NewMemory("wgt", 1420, 4), ev: make(chan tun.Event)}
	w := watchTUN(inner)
	inner.ev <- tun.EventUp
	if ev := <-w.Events(); ev != tun.EventUp {
		t.Fatalf("got %v", ev)
	}
	select {
	case <-w.Deleted():
		t.Fatal("deleted too early")
	default:
	}
	inner.ev <- tun.EventDeleted
	select {
	case <-w.Deleted():
	case <-time.After(5 * time.Second):
		t.Fatal("deletion not noticed")
	}
	if ev := <-w.Events(); ev != tun.EventDeleted {
		t.Fatalf("got %v", ev)
	}
	// Events nobody reads do not keep Close from finishing.
	for range 20 {
		select {
		case inner.ev <- tun.EventMTUUpdate:
		case <-time.After(100 * time.Millisecond):
		}
	}
	done := make(chan struct{})
	go func() { w.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked")
	}
	for range w.Events() {
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
