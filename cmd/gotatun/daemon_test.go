package main

import (
	"bytes"
	"log/slog"
	"strings"
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
		{nil, daemonArgs{}, "missing interface name"},
		{[]string{"-f"}, daemonArgs{}, "missing interface name"},
		{[]string{"wg0", "wg1"}, daemonArgs{}, "got 2 arguments"},
		{[]string{"-x", "wg0"}, daemonArgs{}, `unknown flag "-x"`},
		{[]string{"--foregrund", "wg0"}, daemonArgs{}, `unknown flag "--foregrund"`},
	}
	for _, tt := range tests {
		got, err := parseDaemonArgs(tt.args)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: error %v, want %q", tt.args, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%q: got %+v, %v; want %+v", tt.args, got, err, tt.want)
		}
	}
}

func TestRunDaemonUsage(t *testing.T) {
	for _, args := range [][]string{{"--bogus", "wg0"}, {"-f"}, {"a", "b"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, strings.NewReader(""), &stdout, &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
		if !strings.Contains(stderr.String(), "Usage: gotatun [-f|--foreground] IFNAME") {
			t.Errorf("%q: no usage on stderr: %q", args, stderr.String())
		}
		if stdout.Len() != 0 {
			t.Errorf("%q: wrote to stdout: %q", args, stdout.String())
		}
	}
}

func TestLogLevel(t *testing.T) {
	for in, want := range map[string]slog.Level{"verbose": slog.LevelDebug, "debug": slog.LevelDebug, "error": slog.LevelError, "": slog.LevelError, "nonsense": slog.LevelError} {
		got, ok := logLevel(in)
		if !ok || got != want {
			t.Errorf("logLevel(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	if _, ok := logLevel("silent"); ok {
		t.Error("silent logs")
	}
	t.Setenv(envLogLevel, "silent")
	var buf bytes.Buffer
	newLogger(&buf, "wg0").Error("x")
	if buf.Len() != 0 {
		t.Errorf("silent logger wrote %q", buf.String())
	}
	t.Setenv(envLogLevel, "")
	l := newLogger(&buf, "wg0")
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
