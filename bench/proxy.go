//go:build linux

package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gotatun/gotatun/internal/netns"
	"github.com/gotatun/gotatun/noise"
)

// The rootless proxy benchmark: a bulk download through a SOCKS5 proxy in
// namespace A, from a server in namespace B behind a WireGuard peer (the
// gotatun daemon, the same for both), with the proxy run by `gotatun
// proxy` and by bench/wgproxy, the same proxy code on wireguard-go's device
// and netstack.
const (
	bulkPort   = 5301
	peerPort   = 51821
	proxyTagGT = 'p'
	proxyTagWG = 'q'
)

// proxyBench runs the proxy downloads of every round.
type proxyBench struct {
	nb      *netBench
	wgProxy string // bench/wgproxy binary
	gtBin   string
	peer    *proc
	peerPub noise.PublicKey
	ln      net.Listener
}

// setup starts the WireGuard peer and the bulk server in namespace B.
func (pb *proxyBench) setup(ctx context.Context) error {
	t := pb.nb.topo
	ifname := t.tunName('s', 0, 'b')
	_ = os.Remove(filepath.Join(socketDir, ifname+".sock"))
	p, err := startProc(t.nsB, pb.gtBin, "-f", ifname)
	if err != nil {
		return err
	}
	pb.peer = p
	if err := waitSocket(ctx, p, ifname); err != nil {
		return err
	}
	priv, err := noise.GeneratePrivateKey(rand.Reader)
	if err != nil {
		return err
	}
	pb.peerPub = priv.PublicKey()
	keyFile := filepath.Join(pb.nb.work, ifname+".key")
	if err := os.WriteFile(keyFile, []byte(priv.Base64()+"\n"), 0o600); err != nil {
		return err
	}
	if _, err := nsExec(ctx, t.nsB, "wg", "set", ifname, "private-key", keyFile, "listen-port", strconv.Itoa(peerPort)); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"-n", t.nsB, "addr", "add", tunnelB + "/24", "dev", ifname},
		{"-n", t.nsB, "link", "set", ifname, "mtu", strconv.Itoa(tunnelMTU), "up"},
	} {
		if _, err := runCmd(ctx, "ip", args...); err != nil {
			return err
		}
	}
	pb.ln, err = listenIn(t.nsB, "tcp", ":"+strconv.Itoa(bulkPort))
	if err != nil {
		return err
	}
	go serveZeros(pb.ln)
	return nil
}

func (pb *proxyBench) stop() {
	if pb.ln != nil {
		pb.ln.Close()
	}
	if pb.peer != nil {
		pb.peer.stop()
	}
}

// serveZeros writes zeros to every connection until the client closes it.
func serveZeros(ln net.Listener) {
	buf := make([]byte, 256<<10)
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			for {
				if _, err := c.Write(buf); err != nil {
					return
				}
			}
		}()
	}
}

func listenIn(ns, network, addr string) (ln net.Listener, err error) {
	err = netns.Do(ns, func() error {
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

func dialIn(ctx context.Context, ns, network, addr string) (c net.Conn, err error) {
	err = netns.Do(ns, func() error {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// measure runs one implementation's proxy for one round.
func (pb *proxyBench) measure(ctx context.Context, implName string, round int) error {
	nb := pb.nb
	t := nb.topo
	tag := byte(proxyTagGT)
	bin, args := pb.gtBin, []string{"proxy"}
	if implName == nameWG {
		tag, bin, args = proxyTagWG, pb.wgProxy, nil
	}
	priv, err := noise.GeneratePrivateKey(rand.Reader)
	if err != nil {
		return err
	}
	// The peer takes this proxy's key; the previous one's is replaced.
	if _, err := nsExec(ctx, t.nsB, "wg", "set", t.tunName('s', 0, 'b'), "peer", priv.PublicKey().String(),
		"allowed-ips", tunnelA+"/32"); err != nil {
		return err
	}
	defer nsExec(context.Background(), t.nsB, "wg", "set", t.tunName('s', 0, 'b'), "peer", priv.PublicKey().String(), "remove")
	conf := filepath.Join(nb.work, fmt.Sprintf("proxy-%c%d.conf", tag, round))
	text := fmt.Sprintf("[Interface]\nPrivateKey = %s\nAddress = %s/32\nMTU = %d\n\n[Peer]\nPublicKey = %s\nEndpoint = %s:%d\nAllowedIPs = %s/32\n",
		priv.Base64(), tunnelA, tunnelMTU, pb.peerPub, underlayB, peerPort, tunnelB)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return err
	}
	p, err := startProc(t.nsA, bin, append(args, "--socks5", "127.0.0.1:0", conf)...)
	if err != nil {
		return err
	}
	defer p.stop()
	socks, err := waitProxyReady(ctx, p)
	if err != nil {
		return fmt.Errorf("%s proxy: %w", implName, err)
	}
	// Warm up: the handshake, TCP slow start, the Go runtime's heap.
	if _, _, err := pb.download(ctx, socks, time.Second); err != nil {
		return fmt.Errorf("%s proxy: %w\n%s", implName, err, p.out.String())
	}
	before, err := p.cpuTicks()
	if err != nil {
		return err
	}
	n, elapsed, err := pb.download(ctx, socks, time.Duration(nb.plan.TCPSeconds)*time.Second)
	if err != nil {
		return fmt.Errorf("%s proxy: %w\n%s", implName, err, p.out.String())
	}
	after, err := p.cpuTicks()
	if err != nil {
		return err
	}
	mb := float64(n) * 8 / elapsed.Seconds() / 1e6
	cpu := float64(after-before) / clockTicksPerSecond / (float64(n) / 1e9)
	nb.res.add("proxy_socks5_mbps", implName, mb)
	nb.res.add("proxy_cpu_per_gb", implName, cpu)
	nb.logf("  %s proxy: SOCKS5 download %.0f Mbit/s, %.2f CPU s/GB", implName, mb, cpu)
	return nil
}

// waitProxyReady waits for the proxy's "ready" line and returns its SOCKS5
// address.
func waitProxyReady(ctx context.Context, p *proc) (string, error) {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		out := p.out.String()
		if strings.Contains(out, "ready\n") {
			for l := range strings.Lines(out) {
				if a, ok := strings.CutPrefix(strings.TrimSpace(l), "socks5 "); ok {
					return a, nil
				}
			}
			return "", fmt.Errorf("no SOCKS5 address in %q", out)
		}
		if p.exited() {
			return "", fmt.Errorf("exited: %v\n%s", p.err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "", fmt.Errorf("not ready within 15s:\n%s", p.out.String())
}

// download connects through the SOCKS5 proxy at socks to the bulk server
// and reads for d; it returns the bytes read and the time taken.
func (pb *proxyBench) download(ctx context.Context, socks string, d time.Duration) (int64, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, d+20*time.Second)
	defer cancel()
	c, err := dialIn(ctx, pb.nb.topo.nsA, "tcp", socks)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	req := []byte{5, 1, 0, 5, 1, 0, 1}
	req = append(req, netip.MustParseAddr(tunnelB).AsSlice()...)
	req = binary.BigEndian.AppendUint16(req, bulkPort)
	if _, err := c.Write(req); err != nil {
		return 0, 0, err
	}
	var rep [2 + 10]byte
	if _, err := io.ReadFull(c, rep[:]); err != nil {
		return 0, 0, fmt.Errorf("SOCKS5 handshake: %w", err)
	}
	if rep[1] != 0 || rep[3] != 0 {
		return 0, 0, fmt.Errorf("SOCKS5 reply %d", rep[3])
	}
	buf := make([]byte, 256<<10)
	var n int64
	start := time.Now()
	end := start.Add(d)
	for time.Now().Before(end) {
		k, err := c.Read(buf)
		n += int64(k)
		if err != nil {
			return n, time.Since(start), err
		}
	}
	if n == 0 {
		return 0, 0, errors.New("no data")
	}
	return n, time.Since(start), nil
}

// buildWGProxy builds bench/wgproxy into dir.
func buildWGProxy(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "wgproxy")
	_, err := runCmdIn(ctx, root, "go", "build", "-o", bin, "./bench/wgproxy")
	return bin, err
}

// runProxyRounds measures both proxies in interleaved rounds.
func runProxyRounds(ctx context.Context, nb *netBench, wgProxy, gtBin string) error {
	pb := &proxyBench{nb: nb, wgProxy: wgProxy, gtBin: gtBin}
	defer pb.stop()
	if err := pb.setup(ctx); err != nil {
		return fmt.Errorf("proxy benchmark: %w", err)
	}
	for round := 1; round <= nb.plan.Rounds; round++ {
		for _, name := range []string{nameWG, nameGotatun} {
			nb.logf("round %d of %d: SOCKS5 proxy on %s", round, nb.plan.Rounds, name)
			if err := pb.measure(ctx, name, round); err != nil {
				return err
			}
		}
	}
	return nil
}
