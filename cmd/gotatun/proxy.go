package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/gotatun/gotatun/device"
	"github.com/gotatun/gotatun/proxy"
	"github.com/gotatun/gotatun/transport"
	"github.com/gotatun/gotatun/tun/netstack"
	"github.com/gotatun/gotatun/wgconf"
)

func init() {
	registerCommand(command{
		name:     "proxy",
		synopsis: "[--socks5 ADDR] [--http ADDR] [--forward tcp|udp:LOCAL=REMOTE]... CONFIG",
		summary:  "a WireGuard tunnel in userspace as SOCKS5/HTTP proxy and port forwards, no root needed",
		run: func(args []string, _ io.Reader, stdout, stderr io.Writer) int {
			return runProxy(args, stdout, stderr, nil)
		},
	})
}

const proxyUsage = `Usage: gotatun proxy [flags] CONFIG

Brings up the WireGuard tunnel described by CONFIG, a wg-quick style file
([Interface] PrivateKey, Address, DNS, MTU, ListenPort; [Peer] sections),
on a userspace TCP/IP stack, with no TUN device and no root, and serves:

  --socks5 ADDR            a SOCKS5 proxy on ADDR (CONNECT and UDP ASSOCIATE;
                           host names are looked up with the tunnel's DNS)
  --socks5-auth USER:PASS  require this username and password from SOCKS5 clients
  --http ADDR              an HTTP proxy on ADDR (CONNECT and plain http:// requests)
  --forward tcp:LOCAL=REMOTE
  --forward udp:LOCAL=REMOTE
                           listen on LOCAL (host:port) and connect each client
                           to REMOTE (host:port) through the tunnel; repeatable
  --dial-timeout DURATION  give up connecting to a target after this (default 15s)

It prints one line per listener ("socks5 127.0.0.1:1080") once the tunnel
is configured, and runs until SIGINT or SIGTERM. LOG_LEVEL=verbose|error|silent
sets the logging on standard error.
`

type forwardSpec struct {
	network       string // "tcp" or "udp"
	local, remote string
}

type proxyArgs struct {
	socks5, http string
	user, pass   string
	forwards     []forwardSpec
	dialTimeout  time.Duration
	config       string
}

type forwardFlag struct{ list *[]forwardSpec }

func (f forwardFlag) String() string { return "" }

func (f forwardFlag) Set(v string) error {
	network, rest, ok := strings.Cut(v, ":")
	if !ok || (network != "tcp" && network != "udp") {
		return fmt.Errorf("%q: want tcp:LOCAL=REMOTE or udp:LOCAL=REMOTE", v)
	}
	local, remote, ok := strings.Cut(rest, "=")
	if !ok {
		return fmt.Errorf("%q: want %s:LOCAL=REMOTE", v, network)
	}
	for _, hp := range []string{local, remote} {
		if _, _, err := net.SplitHostPort(hp); err != nil {
			return fmt.Errorf("%q: %q is not host:port", v, hp)
		}
	}
	*f.list = append(*f.list, forwardSpec{network, local, remote})
	return nil
}

func parseProxyArgs(args []string) (proxyArgs, error) {
	var a proxyArgs
	fs := flag.NewFlagSet("gotatun proxy", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&a.socks5, "socks5", "", "")
	fs.StringVar(&a.http, "http", "", "")
	auth := fs.String("socks5-auth", "", "")
	fs.Var(forwardFlag{&a.forwards}, "forward", "")
	fs.DurationVar(&a.dialTimeout, "dial-timeout", 15*time.Second, "")
	// Flags may come after CONFIG too.
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return a, err
		}
		if fs.NArg() == 0 {
			break
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(rest) != 1 {
		return a, fmt.Errorf("want one CONFIG file, got %d arguments", len(rest))
	}
	a.config = rest[0]
	if *auth != "" {
		u, p, ok := strings.Cut(*auth, ":")
		if !ok || u == "" || len(u) > 255 || len(p) > 255 {
			return a, errors.New("--socks5-auth: want USER:PASS, each 1 to 255 bytes")
		}
		a.user, a.pass = u, p
	}
	if a.socks5 == "" && a.http == "" && len(a.forwards) == 0 {
		return a, errors.New("nothing to serve: give --socks5, --http or --forward")
	}
	if a.user != "" && a.socks5 == "" {
		return a, errors.New("--socks5-auth without --socks5")
	}
	if a.dialTimeout <= 0 {
		return a, errors.New("--dial-timeout must be positive")
	}
	return a, nil
}

// runProxy is `gotatun proxy`. It runs until a signal or, if stop is
// not nil, until stop is closed.
func runProxy(args []string, stdout, stderr io.Writer, stop <-chan struct{}) int {
	a, err := parseProxyArgs(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, proxyUsage)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "gotatun proxy: %v\n\n%s", err, proxyUsage)
		return 2
	}
	level, on, err := logLevel(os.Getenv(envLogLevel))
	if err != nil {
		fmt.Fprintf(stderr, "gotatun proxy: %v\n", err)
		return 2
	}
	log := slog.New(slog.DiscardHandler)
	if on {
		log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	}
	if err := serveProxy(a, log, stdout, stop); err != nil {
		fmt.Fprintf(stderr, "gotatun proxy: %v\n", err)
		return 1
	}
	return 0
}

func serveProxy(a proxyArgs, log *slog.Logger, stdout io.Writer, stop <-chan struct{}) error {
	cfg, err := wgconf.ParseFile(a.config)
	if err != nil {
		return err
	}
	for _, ig := range cfg.Ignored {
		log.Warn("ignoring a wg-quick key that means nothing here", "file", a.config, "key", ig)
	}
	if len(cfg.Interface.Addresses) == 0 {
		return &wgconf.Error{File: a.config, Key: "Address", Err: errors.New("the proxy needs at least one tunnel address")}
	}
	if len(cfg.Peers) == 0 {
		return &wgconf.Error{File: a.config, Err: errors.New("no [Peer] section")}
	}
	if cfg.Interface.FirewallMark != nil && *cfg.Interface.FirewallMark != 0 {
		log.Warn("FwMark needs CAP_NET_ADMIN; setting it may fail")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	dc, err := cfg.DeviceConfig(ctx, nil)
	cancel()
	if err != nil {
		return err
	}
	st, err := netstack.New(netstack.Config{
		Addresses: cfg.Interface.Addresses,
		DNS:       cfg.Interface.DNS,
		MTU:       cfg.Interface.MTU,
	})
	if err != nil {
		return err
	}
	dev, err := device.New(device.Options{TUN: st, Bind: transport.NewDefaultBind(), Logger: log})
	if err != nil {
		st.Close()
		return err
	}
	defer dev.Close()
	if err := dev.Apply(dc); err != nil {
		return fmt.Errorf("%s: %w", a.config, err)
	}

	srv := proxy.New(proxy.Options{
		Net: st, Logger: log, DialTimeout: a.dialTimeout,
		SOCKS5User: a.user, SOCKS5Password: a.pass,
	})
	defer srv.Close()
	errc := make(chan error, 2+len(a.forwards))
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	listen := func(kind, addr string, serve func(net.Listener) error) error {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
		closers = append(closers, ln)
		fmt.Fprintf(stdout, "%s %s\n", kind, ln.Addr())
		go func() { errc <- serve(ln) }()
		return nil
	}
	if a.socks5 != "" {
		if err := listen("socks5", a.socks5, srv.ServeSOCKS5); err != nil {
			return err
		}
	}
	if a.http != "" {
		if err := listen("http", a.http, srv.ServeHTTPProxy); err != nil {
			return err
		}
	}
	for _, f := range a.forwards {
		kind := "forward " + f.network + ":" + f.remote
		if f.network == "tcp" {
			if err := listen(kind, f.local, func(ln net.Listener) error { return srv.ForwardTCP(ln, f.remote) }); err != nil {
				return err
			}
			continue
		}
		pc, err := net.ListenPacket("udp", f.local)
		if err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
		closers = append(closers, pc)
		fmt.Fprintf(stdout, "%s %s\n", kind, pc.LocalAddr())
		go func() { errc <- srv.ForwardUDP(pc, f.remote) }()
	}
	fmt.Fprintln(stdout, "ready")

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	select {
	case s := <-sigs:
		log.Info("shutting down", "signal", s.String())
		return nil
	case <-stop:
		return nil
	case err := <-errc:
		return err
	}
}
