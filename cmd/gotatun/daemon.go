package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/gotatun/gotatun/tun"
)

// Environment variables of the daemon, the same as wireguard-go's.
const (
	// envForeground=1 keeps the daemon in the foreground.
	envForeground = "WG_PROCESS_FOREGROUND"
	// envTUNFD names an already open TUN descriptor to use.
	envTUNFD = "WG_TUN_FD"
	// envUAPIFD names an already listening configuration socket to use.
	envUAPIFD = "WG_UAPI_FD"
	// envLogLevel is verbose (or debug), error or silent.
	envLogLevel = "LOG_LEVEL"
	// envReadyFD is set by the launching process on the daemon it starts:
	// the daemon writes "ok" or the reason it failed to this descriptor
	// once its interface and socket exist.
	envReadyFD = "GOTATUN_READY_FD"
)

const daemonUsage = `Usage: gotatun [-f|--foreground] IFNAME

Creates the WireGuard interface IFNAME and its configuration socket
/var/run/wireguard/IFNAME.sock for wg(8), then runs in the background
(in the foreground with -f or WG_PROCESS_FOREGROUND=1) until the interface
is deleted or the process gets SIGINT or SIGTERM.

Environment: LOG_LEVEL=verbose|error|silent (default error), WG_TUN_FD,
WG_UAPI_FD (descriptors to use instead of creating the interface and the
socket), GOMAXPROCS (on a two-CPU machine the daemon otherwise runs its Go
code on one CPU until that one is busy, then on both).
`

// daemonArgs is the parsed command line of the daemon.
type daemonArgs struct {
	foreground bool
	ifname     string
}

// parseDaemonArgs parses [-f|--foreground] IFNAME.
func parseDaemonArgs(args []string) (daemonArgs, error) {
	var a daemonArgs
	var rest []string
	for i, arg := range args {
		if arg == "--" {
			rest = append(rest, args[i+1:]...)
			break
		}
		switch {
		case arg == "-f" || arg == "--foreground":
			a.foreground = true
		case strings.HasPrefix(arg, "-") && arg != "-":
			return a, fmt.Errorf("unknown flag %q", arg)
		default:
			rest = append(rest, arg)
		}
	}
	switch len(rest) {
	case 0:
		return a, errors.New("missing interface name")
	case 1:
		a.ifname = rest[0]
	default:
		return a, fmt.Errorf("expected one interface name, got %d arguments", len(rest))
	}
	return a, nil
}

// logLevel maps LOG_LEVEL to a slog level; silent reports ok=false.
func logLevel(s string) (level slog.Level, ok bool) {
	switch s {
	case "verbose", "debug":
		return slog.LevelDebug, true
	case "silent":
		return 0, false
	default:
		return slog.LevelError, true
	}
}

func newLogger(w io.Writer, ifname string) *slog.Logger {
	level, ok := logLevel(os.Getenv(envLogLevel))
	if !ok {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})).With("interface", ifname)
}

// runDaemon is `gotatun [-f|--foreground] IFNAME`: the wireguard-go
// compatible daemon.
func runDaemon(args []string, stdout, stderr io.Writer) int {
	a, err := parseDaemonArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "gotatun: %v\n\n%s", err, daemonUsage)
		return 2
	}
	if !a.foreground && os.Getenv(envForeground) != "1" {
		return daemonize(args, stderr)
	}
	return runForeground(a.ifname, stderr)
}

// watchedTUN passes a TUN device's events on to the device while noting
// the interface's deletion.
type watchedTUN struct {
	tun.Device
	events  chan tun.Event
	deleted chan struct{}
	stop    chan struct{}
	once    sync.Once
	done    chan struct{}
}

func watchTUN(t tun.Device) *watchedTUN {
	w := &watchedTUN{
		Device:  t,
		events:  make(chan tun.Event, 16),
		deleted: make(chan struct{}),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go w.forwardEvents()
	return w
}

func (w *watchedTUN) forwardEvents() {
	defer close(w.done)
	defer close(w.events)
	gone := false
	for ev := range w.Device.Events() {
		if ev&tun.EventDeleted != 0 && !gone {
			gone = true
			close(w.deleted)
		}
		select {
		case w.events <- ev:
		case <-w.stop:
			// Nobody reads any more; drain until the device closes.
		}
	}
}

// Events implements tun.Device.
func (w *watchedTUN) Events() <-chan tun.Event { return w.events }

// Close implements tun.Device.
func (w *watchedTUN) Close() error {
	var err error
	w.once.Do(func() {
		close(w.stop)
		err = w.Device.Close()
		<-w.done
	})
	return err
}

// ReadFunc implements tun.BatchReader, with Read where the device is not
// one.
func (w *watchedTUN) ReadFunc(bufs [][]byte, sizes []int, offset int, handle func(n int)) error {
	if br, ok := w.Device.(tun.BatchReader); ok {
		return br.ReadFunc(bufs, sizes, offset, handle)
	}
	n, err := w.Device.Read(bufs, sizes, offset)
	if err == nil {
		handle(n)
	}
	return err
}

// PollFunc implements tun.BatchReader; it finds nothing where the device
// is not one.
func (w *watchedTUN) PollFunc(bufs [][]byte, sizes []int, offset int, handle func(n int)) bool {
	if br, ok := w.Device.(tun.BatchReader); ok {
		return br.PollFunc(bufs, sizes, offset, handle)
	}
	return false
}

// Deleted is closed when the interface is deleted.
func (w *watchedTUN) Deleted() <-chan struct{} { return w.deleted }
