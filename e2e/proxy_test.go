//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	xproxy "golang.org/x/net/proxy"

	nsutil "github.com/gotatun/gotatun/internal/netns"
)

// inNetns runs f on a thread switched into n's network namespace, so the
// sockets f creates live there.
func inNetns(t *testing.T, n *netns, f func()) {
	t.Helper()
	if err := nsutil.Do(n.name, func() error { f(); return nil }); err != nil {
		t.Fatal(err)
	}
}

// nsDialer dials from inside n.
func nsDialer(t *testing.T, n *netns) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		inNetns(t, n, func() {
			var d net.Dialer
			c, err = d.DialContext(ctx, network, addr)
		})
		return c, err
	}
}

type ctxDialer func(ctx context.Context, network, addr string) (net.Conn, error)

func (d ctxDialer) Dial(network, addr string) (net.Conn, error) {
	return d(context.Background(), network, addr)
}

// proxyTarget is the server side: an HTTP server, a UDP echo and a DNS
// server answering web.test, listening in ns behind a wireguard-go peer.
type proxyTarget struct {
	big, small       []byte
	bigSum, smallSum [32]byte
}

func startProxyTarget(t *testing.T, n *netns, tunAddr netip.Addr) *proxyTarget {
	pt := &proxyTarget{big: make([]byte, 8<<20), small: make([]byte, 64<<10)}
	rand.Read(pt.big)
	rand.Read(pt.small)
	pt.bigSum, pt.smallSum = sha256.Sum256(pt.big), sha256.Sum256(pt.small)
	var ln net.Listener
	var udp, dns net.PacketConn
	var err1, err2, err3 error
	inNetns(t, n, func() {
		ln, err1 = net.Listen("tcp", ":8080")
		udp, err2 = net.ListenPacket("udp", ":9000")
		dns, err3 = net.ListenPacket("udp", ":53")
	})
	for _, err := range []error{err1, err2, err3} {
		if err != nil {
			t.Fatal(err)
		}
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/small" {
			w.Write(pt.small)
			return
		}
		w.Write(pt.big)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close(); udp.Close(); dns.Close() })
	go func() {
		buf := make([]byte, 2000)
		for {
			k, from, err := udp.ReadFrom(buf)
			if err != nil {
				return
			}
			udp.WriteTo(bytes.ToUpper(buf[:k]), from)
		}
	}()
	go func() {
		buf := make([]byte, 2000)
		for {
			k, from, err := dns.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := dnsAnswer(buf[:k], tunAddr); resp != nil {
				dns.WriteTo(resp, from)
			}
		}
	}()
	return pt
}

// dnsAnswer answers an A query for web.test with addr, anything else
// with NXDOMAIN or no records.
func dnsAnswer(q []byte, addr netip.Addr) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil
	}
	qu, err := p.Question()
	if err != nil {
		return nil
	}
	known := strings.EqualFold(qu.Name.String(), "web.test.")
	rh := dnsmessage.Header{ID: h.ID, Response: true, RecursionAvailable: true}
	if !known {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.StartQuestions()
	b.Question(qu)
	b.StartAnswers()
	if known && qu.Type == dnsmessage.TypeA {
		b.AResource(dnsmessage.ResourceHeader{Name: qu.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: addr.As4()})
	}
	out, _ := b.Finish()
	return out
}

// TestProxy runs `gotatun proxy` as user nobody in a namespace with no
// TUN device and reaches servers behind a wireguard-go peer through its
// SOCKS5 and HTTP proxies and its forwards.
func TestProxy(t *testing.T) {
	need(t, "setpriv")
	na, nb := newNetns(t), newNetns(t)
	v := connect(t, na, nb, 71)
	wgo := startIface(t, nb, wireguardGo)
	proxyKey := newKey(t)
	clientAddr, serverAddr := netip.MustParseAddr("10.71.0.1"), netip.MustParseAddr("10.71.0.2")
	wgo.conf("setconf", wgo.confText(51871, peerConf{pub: proxyKey.PublicKey(), allowedIPs: []string{clientAddr.String() + "/32"}}))
	wgo.up(1420, serverAddr.String()+"/24")
	pt := startProxyTarget(t, nb, serverAddr)

	// The config file, readable by user nobody.
	dir, err := os.MkdirTemp("", "gotatun-proxy-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	conf := filepath.Join(dir, "wg0.conf")
	text := fmt.Sprintf("[Interface]\nPrivateKey = %s\nAddress = %s/32\nDNS = %s\nMTU = 1420\n\n[Peer]\nPublicKey = %s\nEndpoint = %s\nAllowedIPs = 10.71.0.0/24\n",
		proxyKey.Base64(), clientAddr, serverAddr, wgo.pub, netip.AddrPortFrom(v.v4B, 51871))
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := na.command(ctx, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
		gotatunBin(), "proxy", "--socks5", "127.0.0.1:0", "--socks5-auth", "alice:s3cret", "--http", "127.0.0.1:0",
		"--forward", "tcp:127.0.0.1:0=web.test:8080", "--forward", "udp:127.0.0.1:0="+serverAddr.String()+":9000",
		"--dial-timeout", "2s", conf)
	cmd.Env = append(os.Environ(), "LOG_LEVEL=error")
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	addrs := make(map[string]string)
	go func() {
		sc := bufio.NewScanner(stdout)
		ready := false
		for sc.Scan() {
			if ready {
				continue
			}
			l := sc.Text()
			if l == "ready" {
				ready = true
				exited <- nil
				continue
			}
			if i := strings.LastIndexByte(l, ' '); i > 0 {
				addrs[l[:i]] = l[i+1:]
			}
		}
		exited <- cmd.Wait()
	}()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("gotatun proxy exited: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("gotatun proxy not ready\n%s", stderr.String())
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("gotatun proxy: %v\n%s", err, stderr.String())
			}
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			t.Errorf("gotatun proxy did not stop on SIGTERM\n%s", stderr.String())
		}
	}()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil || !strings.Contains(string(status), "\nUid:\t65534\t65534\t65534\t65534\n") {
		t.Fatalf("gotatun proxy is not running as nobody: %v\n%s", err, status)
	}
	t.Logf("listeners: %v", addrs)

	dial := nsDialer(t, na)
	get := func(t *testing.T, client *http.Client, u string, want [32]byte) {
		t.Helper()
		resp, err := client.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(h.Sum(nil), want[:]) {
			t.Fatalf("GET %s: status %d, %d bytes, %v, checksum matches %v", u, resp.StatusCode, n, err, bytes.Equal(h.Sum(nil), want[:]))
		}
	}
	socks, err := xproxy.SOCKS5("tcp", addrs["socks5"], &xproxy.Auth{User: "alice", Password: "s3cret"}, ctxDialer(dial))
	if err != nil {
		t.Fatal(err)
	}
	socksClient := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: socks.(xproxy.ContextDialer).DialContext, MaxIdleConnsPerHost: 64}}
	defer socksClient.CloseIdleConnections()

	t.Run("socks5", func(t *testing.T) {
		get(t, socksClient, "http://web.test:8080/", pt.bigSum)
		get(t, socksClient, "http://10.71.0.2:8080/", pt.bigSum)
		bad, _ := xproxy.SOCKS5("tcp", addrs["socks5"], &xproxy.Auth{User: "alice", Password: "wrong"}, ctxDialer(dial))
		if _, err := bad.Dial("tcp", "10.71.0.2:8080"); err == nil {
			t.Error("wrong password accepted")
		}
	})
	t.Run("socks5-errors", func(t *testing.T) {
		for _, c := range []struct {
			target string
			want   string
		}{
			{"10.71.0.2:1", "connection refused"},
			{"10.71.0.99:80", "TTL expired"},
			{"nothing.test:80", "host unreachable"},
		} {
			start := time.Now()
			_, err := socks.Dial("tcp", c.target)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: %v, want %q", c.target, err, c.want)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("%s: answered after %v", c.target, d)
			}
		}
	})
	t.Run("http", func(t *testing.T) {
		pu, _ := url.Parse("http://" + addrs["http"])
		client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(pu), DialContext: dial}}
		defer client.CloseIdleConnections()
		get(t, client, "http://web.test:8080/", pt.bigSum)
		for target, want := range map[string]int{"10.71.0.2:1": 502, "10.71.0.99:80": 504} {
			resp, err := client.Get("http://" + target + "/")
			if err != nil || resp.StatusCode != want {
				t.Errorf("GET %s: %v %v, want %d", target, resp, err, want)
			} else {
				resp.Body.Close()
			}
		}
		// CONNECT, then a request inside the tunnel.
		c, err := dial(context.Background(), "tcp", addrs["http"])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "CONNECT web.test:8080 HTTP/1.1\r\nHost: web.test:8080\r\n\r\nGET /small HTTP/1.1\r\nHost: web.test\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("CONNECT: %v %v", resp, err)
		}
		resp, err = http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if sha256.Sum256(body) != pt.smallSum {
			t.Errorf("CONNECT: body of %d bytes differs", len(body))
		}
	})
	t.Run("forward-tcp", func(t *testing.T) {
		client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: dial}}
		defer client.CloseIdleConnections()
		get(t, client, "http://"+addrs["forward tcp:web.test:8080"]+"/", pt.bigSum)
	})
	t.Run("forward-udp", func(t *testing.T) {
		c, err := dial(context.Background(), "udp", addrs["forward udp:10.71.0.2:9000"])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		udpRoundTrip(t, c, nil)
	})
	t.Run("socks5-udp-associate", func(t *testing.T) {
		ctl, err := dial(context.Background(), "tcp", addrs["socks5"])
		if err != nil {
			t.Fatal(err)
		}
		defer ctl.Close()
		ctl.SetDeadline(time.Now().Add(10 * time.Second))
		req := []byte{5, 1, 2, 1, 5, 'a', 'l', 'i', 'c', 'e', 6, 's', '3', 'c', 'r', 'e', 't', 5, 3, 0, 1, 0, 0, 0, 0, 0, 0}
		ctl.Write(req)
		var rep [2 + 2 + 10]byte
		if _, err := io.ReadFull(ctl, rep[:]); err != nil || rep[1] != 2 || rep[3] != 0 || rep[5] != 0 || rep[7] != 1 {
			t.Fatalf("UDP ASSOCIATE: %v %v", rep, err)
		}
		relay := netip.AddrPortFrom(netip.AddrFrom4([4]byte(rep[8:12])), binary.BigEndian.Uint16(rep[12:]))
		c, err := dial(context.Background(), "udp", relay.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		hdr := []byte{0, 0, 0, 3, byte(len("web.test"))}
		hdr = append(hdr, "web.test"...)
		hdr = binary.BigEndian.AppendUint16(hdr, 9000)
		udpRoundTrip(t, c, hdr)
	})
	t.Run("concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		for range 64 {
			wg.Go(func() { get(t, socksClient, "http://10.71.0.2:8080/small", pt.smallSum) })
		}
		wg.Wait()
	})
}

// udpRoundTrip sends datagrams prefixed with hdr until one comes back
// upper-cased (with the reply header naming 10.71.0.2:9000 if hdr is set).
func udpRoundTrip(t *testing.T, c net.Conn, hdr []byte) {
	t.Helper()
	buf := make([]byte, 2000)
	for i := 0; ; i++ {
		msg := fmt.Sprintf("datagram %d", i)
		c.Write(append(append([]byte{}, hdr...), msg...))
		c.SetReadDeadline(time.Now().Add(time.Second))
		n, err := c.Read(buf)
		if err == nil {
			got := buf[:n]
			if hdr != nil {
				want := []byte{0, 0, 0, 1, 10, 71, 0, 2, 9000 >> 8, 9000 & 0xff}
				if !bytes.HasPrefix(got, want) {
					t.Fatalf("reply header % x, want % x", got[:min(len(got), 10)], want)
				}
				got = got[len(want):]
			}
			if string(got) != strings.ToUpper(msg) {
				t.Fatalf("got %q for %q", got, msg)
			}
			return
		}
		if i == 10 {
			t.Fatalf("no answer: %v", err)
		}
	}
}
