// Command wgproxy is the benchmark's reference for `gotatun proxy`: the
// same proxy package and configuration file, run on wireguard-go's device
// and its gVisor netstack TUN, the way wireproxy is built.
//
//	wgproxy --socks5 127.0.0.1:0 CONFIG
//
// It prints "socks5 ADDR" and "ready", and runs until SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/netstack"

	"github.com/gotatun/gotatun/proxy"
	"github.com/gotatun/gotatun/wgconf"
)

func main() {
	socks := flag.String("socks5", "127.0.0.1:1080", "SOCKS5 listen address")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: wgproxy [--socks5 ADDR] CONFIG")
		os.Exit(2)
	}
	if err := run(*socks, flag.Arg(0)); err != nil {
		fmt.Fprintln(os.Stderr, "wgproxy:", err)
		os.Exit(1)
	}
}

func run(socksAddr, path string) error {
	cfg, err := wgconf.ParseFile(path)
	if err != nil {
		return err
	}
	var addrs []netip.Addr
	for _, p := range cfg.Interface.Addresses {
		addrs = append(addrs, p.Addr())
	}
	mtu := cfg.Interface.MTU
	if mtu == 0 {
		mtu = 1420
	}
	tunDev, tnet, err := netstack.CreateNetTUN(addrs, cfg.Interface.DNS, mtu)
	if err != nil {
		return err
	}
	dev := device.NewDevice(tunDev, conn.NewDefaultBind(), device.NewLogger(device.LogLevelError, "wgproxy: "))
	defer dev.Close()
	uapi, err := uapiText(cfg)
	if err != nil {
		return err
	}
	if err := dev.IpcSet(uapi); err != nil {
		return err
	}
	if err := dev.Up(); err != nil {
		return err
	}
	srv := proxy.New(proxy.Options{Net: network{tnet}})
	defer srv.Close()
	ln, err := net.Listen("tcp", socksAddr)
	if err != nil {
		return err
	}
	fmt.Printf("socks5 %s\nready\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeSOCKS5(ln) }()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-sigs:
		return nil
	case err := <-errc:
		return err
	}
}

// uapiText is the configuration as wireguard-go's IpcSet takes it.
func uapiText(cfg *wgconf.Config) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "private_key=%s\nreplace_peers=true\n", cfg.Interface.PrivateKey.Hex())
	if cfg.Interface.ListenPort != nil {
		fmt.Fprintf(&b, "listen_port=%d\n", *cfg.Interface.ListenPort)
	}
	dc, err := cfg.DeviceConfig(context.Background(), nil)
	if err != nil {
		return "", err
	}
	for _, p := range dc.Peers {
		fmt.Fprintf(&b, "public_key=%s\n", p.PublicKey.Hex())
		if p.PresharedKey != nil {
			fmt.Fprintf(&b, "preshared_key=%s\n", p.PresharedKey.Hex())
		}
		if p.Endpoint != nil {
			fmt.Fprintf(&b, "endpoint=%s\n", p.Endpoint)
		}
		if p.PersistentKeepalive != nil {
			fmt.Fprintf(&b, "persistent_keepalive_interval=%d\n", int(p.PersistentKeepalive.Seconds()))
		}
		for _, a := range p.AllowedIPs {
			fmt.Fprintf(&b, "allowed_ip=%s\n", a)
		}
	}
	return b.String(), nil
}

// network adapts wireguard-go's netstack to proxy.Network.
type network struct{ n *netstack.Net }

func (w network) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return w.n.DialContext(ctx, network, address)
}

func (w network) ListenPacket(network, address string) (net.PacketConn, error) {
	if network == "udp6" {
		return w.n.ListenUDPAddrPort(netip.AddrPortFrom(netip.IPv6Unspecified(), 0))
	}
	return w.n.ListenUDPAddrPort(netip.AddrPort{})
}

func (w network) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	ss, err := w.n.LookupContextHost(ctx, host)
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, s := range ss {
		if a, err := netip.ParseAddr(s); err == nil && (network == "ip" || (network == "ip4") == a.Is4()) {
			out = append(out, a)
		}
	}
	return out, nil
}
