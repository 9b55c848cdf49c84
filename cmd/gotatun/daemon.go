package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"

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

// daemonArgs is the parsed command line of the daemon.
type daemonArgs struct {
	foreground bool
	ifname     string
	logLevel   slog.Level
	silent     bool      // LOG_LEVEL=silent
	entry      entryArgs // multihop
	pcap       pcapFlag
}

// daemonFlagAliases maps a daemon flag's short name to its long one; the
// help lists them together.
var daemonFlagAliases = map[string]string{"f": "foreground"}

// daemonFlags defines the daemon's flags, which fill a. A flag with a
// short alias is defined under both names, with the usage on the long one.
func daemonFlags(a *daemonArgs) *flag.FlagSet {
	fs := flag.NewFlagSet("gotatun", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.BoolVar(&a.foreground, "foreground", false, "stay in the foreground (as WG_PROCESS_FOREGROUND=1)")
	fs.BoolVar(&a.foreground, "f", false, "")
	a.entry.define(fs)
	a.pcap.define(fs)
	return fs
}

// daemonFlagHelp lists the daemon's flags, one per line, aliases together.
func daemonFlagHelp() string {
	var a daemonArgs
	fs := daemonFlags(&a)
	short := make(map[string]string)
	for s, l := range daemonFlagAliases {
		short[l] = s
	}
	var b strings.Builder
	fs.VisitAll(func(f *flag.Flag) {
		if f.Usage == "" {
			return
		}
		names := "--" + f.Name
		if s, ok := short[f.Name]; ok {
			names = "-" + s + ", " + names
		}
		arg, usage := flag.UnquoteUsage(f)
		if arg != "" {
			names += " " + arg
		}
		writeTwoColumns(&b, names, usage, 20)
	})
	return b.String()
}

// daemonHelp is the part of the usage about the daemon.
func daemonHelp() string {
	return `The daemon creates the WireGuard interface IFNAME and its configuration
socket /var/run/wireguard/IFNAME.sock for wg(8), then runs in the background
(in the foreground with -f or WG_PROCESS_FOREGROUND=1) until the interface
is deleted, in whichever network namespace it is by then, or the process
gets SIGINT or SIGTERM. The interface may be moved to another network
namespace (ip link set IFNAME netns NS) and on or back: its UDP sockets and
configuration socket stay in the namespace the daemon started in. Creating
the interface needs root or CAP_NET_ADMIN, and read and write access to
/dev/net/tun.

Daemon flags:
` + daemonFlagHelp() + `
` + multihopHelp + `
Interface names: an IFNAME that is a command name, or one edit from one
(a letter added, dropped or changed, or two neighbours swapped; case
ignored), is refused as a likely typo: "gotatun dmeo" does not create dmeo.
To use such a name anyway, put it after "--": gotatun -f -- demo1.

Environment:
  LOG_LEVEL              verbose (or debug), error (the default) or silent:
                         what the daemon logs on stderr; other values are
                         refused
  WG_PROCESS_FOREGROUND  1 to stay in the foreground, as -f
  WG_TUN_FD              an open TUN descriptor to use instead of creating
                         the interface
  WG_UAPI_FD             a listening Unix socket descriptor to use instead of
                         creating the configuration socket
  GOMAXPROCS             CPUs to run Go code on; unset, on a two-CPU machine
                         the daemon runs on one until that one is busy, then
                         on both
  GOTATUN_OFFLOADS       off to run without the TUN's segmentation offloads
                         and without UDP GSO/GRO (default on)
`
}

// parseDaemonArgs parses [flags] IFNAME, with flags also after IFNAME. A
// name that could be a mistyped command is refused unless it follows "--".
func parseDaemonArgs(args []string) (daemonArgs, error) {
	var a daemonArgs
	fs := daemonFlags(&a)
	checked, forced := args, []string(nil)
	for i, arg := range args {
		if arg == "--" {
			checked, forced = args[:i], args[i+1:]
			break
		}
	}
	var names []string
	for rest := checked; ; {
		if err := fs.Parse(rest); err != nil {
			return a, err
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		names = append(names, rest[0])
		rest = rest[1:]
	}
	for _, name := range names {
		if err := checkIfname(name); err != nil {
			return a, err
		}
	}
	names = append(names, forced...)
	switch len(names) {
	case 0:
		return a, errors.New("missing interface name")
	case 1:
		a.ifname = names[0]
	default:
		return a, fmt.Errorf("expected one interface name, got %d arguments: %q", len(names), names)
	}
	if err := a.entry.check(a.ifname); err != nil {
		return a, err
	}
	level, ok, err := logLevel(os.Getenv(envLogLevel))
	if err != nil {
		return a, err
	}
	a.logLevel, a.silent = level, !ok
	return a, nil
}

// errLikelyTypo is an interface name refused as a mistyped command.
var errLikelyTypo = errors.New("likely a mistyped command")

// checkIfname refuses an interface name that is a command name or one edit
// away from one.
func checkIfname(name string) error {
	for _, c := range commandNames() {
		if editDistance(strings.ToLower(name), c) <= 1 {
			return fmt.Errorf("%w: %q is not a command; did you mean \"gotatun %s\"? "+
				"To create an interface called %s, put the name after --: gotatun -f -- %s", errLikelyTypo, name, c, name, name)
		}
	}
	return nil
}

// editDistance is the optimal string alignment distance between a and b:
// the fewest runes inserted, deleted or substituted, or adjacent runes
// swapped, that turn one into the other.
func editDistance(a, b string) int {
	s, t := []rune(a), []rune(b)
	// Three rows of the dynamic programme: i-2, i-1 and i.
	prev2 := make([]int, len(t)+1)
	prev := make([]int, len(t)+1)
	cur := make([]int, len(t)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(s); i++ {
		cur[0] = i
		for j := 1; j <= len(t); j++ {
			cost := 1
			if s[i-1] == t[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && s[i-1] == t[j-2] && s[i-2] == t[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(t)]
}

// logLevel maps LOG_LEVEL to a slog level; silent reports ok=false. An
// empty value is the default, error.
func logLevel(s string) (level slog.Level, ok bool, err error) {
	switch s {
	case "verbose", "debug":
		return slog.LevelDebug, true, nil
	case "error", "":
		return slog.LevelError, true, nil
	case "silent":
		return 0, false, nil
	}
	return 0, false, fmt.Errorf("%s=%q: want verbose, debug, error or silent", envLogLevel, s)
}

func newLogger(w io.Writer, a daemonArgs, ifname string) *slog.Logger {
	if a.silent {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: a.logLevel})).With("interface", ifname)
}

// privilegeHint says what the daemon needs when err is a refusal for want
// of privileges.
func privilegeHint(err error) string {
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
		return " (the daemon needs root or CAP_NET_ADMIN, read and write access to /dev/net/tun, " +
			"and write access to /var/run/wireguard)"
	}
	return ""
}

// runDaemon is `gotatun [-f|--foreground] IFNAME`: the wireguard-go
// compatible daemon.
func runDaemon(args []string, stdout, stderr io.Writer) int {
	a, err := parseDaemonArgs(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		printUsage(stdout)
		return 0
	case errors.Is(err, errLikelyTypo):
		fmt.Fprintf(stderr, "gotatun: %v\n", err)
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "gotatun: %v\n\n", err)
		printShortUsage(stderr)
		return 2
	}
	if !a.foreground && os.Getenv(envForeground) != "1" {
		return daemonize(withAbsPcap(args, a.pcap), stderr)
	}
	return runForeground(a, stderr)
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
