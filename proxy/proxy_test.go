package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	xproxy "golang.org/x/net/proxy"
)

// loopNet is a Network on the host's loopback, with names resolved from
// a fixed table and the address 192.0.2.1 (TEST-NET) never answering.
type loopNet struct{}

var names = map[string]netip.Addr{"target.test": netip.MustParseAddr("127.0.0.1")}

var blackhole = netip.MustParseAddr("192.0.2.1")

func (loopNet) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if a, ok := names[host]; ok {
		return []netip.Addr{a}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func (n loopNet) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	if a, ok := names[host]; ok {
		host = a.String()
	} else if _, err := netip.ParseAddr(host); err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}}
	}
	if host == blackhole.String() {
		<-ctx.Done()
		return nil, &net.OpError{Op: "dial", Net: network, Err: ctx.Err()}
	}
	var d net.Dialer
	return d.DialContext(ctx, network, net.JoinHostPort(host, port))
}

func (loopNet) ListenPacket(network, address string) (net.PacketConn, error) {
	if network == "udp6" {
		return net.ListenPacket(network, "[::1]:0")
	}
	return net.ListenPacket(network, "127.0.0.1:0")
}

func newServer(t *testing.T, opts Options) *Server {
	opts.Net = loopNet{}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 300 * time.Millisecond
	}
	s := New(opts)
	t.Cleanup(func() { s.Close() })
	return s
}

// listen starts serve on a loopback listener and returns its address.
func listen(t *testing.T, serve func(net.Listener) error) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go serve(ln)
	return ln.Addr().String()
}

// payloadServer serves n random bytes to each connection (or, over
// HTTP, for GET /), and returns its port and the bytes' checksum.
func payloadServer(t *testing.T, n int) (port string, sum [32]byte) {
	payload := make([]byte, n)
	rand.Read(payload)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(payload) })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	return port, sha256.Sum256(payload)
}

func checkBody(t *testing.T, resp *http.Response, err error, want [32]byte) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	io.Copy(h, resp.Body)
	if resp.StatusCode != 200 || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("status %d, checksum matches: %v", resp.StatusCode, bytes.Equal(h.Sum(nil), want[:]))
	}
}

func TestSOCKS5Connect(t *testing.T) {
	port, sum := payloadServer(t, 1<<20)
	for _, auth := range []*xproxy.Auth{nil, {User: "u", Password: "p"}} {
		opts := Options{}
		if auth != nil {
			opts.SOCKS5User, opts.SOCKS5Password = auth.User, auth.Password
		}
		s := newServer(t, opts)
		addr := listen(t, s.ServeSOCKS5)
		d, err := xproxy.SOCKS5("tcp", addr, auth, xproxy.Direct)
		if err != nil {
			t.Fatal(err)
		}
		client := &http.Client{Transport: &http.Transport{DialContext: d.(xproxy.ContextDialer).DialContext}}
		for _, host := range []string{"127.0.0.1", "target.test"} {
			resp, err := client.Get("http://" + net.JoinHostPort(host, port) + "/")
			checkBody(t, resp, err, sum)
		}
		client.CloseIdleConnections()
		if auth != nil {
			bad, _ := xproxy.SOCKS5("tcp", addr, &xproxy.Auth{User: "u", Password: "x"}, xproxy.Direct)
			if _, err := bad.Dial("tcp", "127.0.0.1:"+port); err == nil {
				t.Error("wrong password accepted")
			}
			none, _ := xproxy.SOCKS5("tcp", addr, nil, xproxy.Direct)
			if _, err := none.Dial("tcp", "127.0.0.1:"+port); err == nil {
				t.Error("no authentication accepted")
			}
		}
	}
}

// socksConnect sends a CONNECT for host:port by hand and returns the
// reply code.
func socksConnect(t *testing.T, addr, host string, port uint16) byte {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	req := []byte{5, 1, 0, 5, 1, 0, atypDomain, byte(len(host))}
	req = append(req, host...)
	req = binary.BigEndian.AppendUint16(req, port)
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	var rep [2 + 4 + 4 + 2]byte
	if _, err := io.ReadFull(c, rep[:]); err != nil {
		t.Fatalf("reading reply: %v", err)
	}
	return rep[3]
}

func TestSOCKS5Errors(t *testing.T) {
	s := newServer(t, Options{})
	addr := listen(t, s.ServeSOCKS5)
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	_, cport, _ := net.SplitHostPort(closed.Addr().String())
	closed.Close()
	var p uint16
	fmt.Sscan(cport, &p)
	for _, tc := range []struct {
		host string
		want byte
	}{
		{"127.0.0.1", repConnectionRefused},
		{"nothing.test", repHostUnreachable},
		{blackhole.String(), repTTLExpired},
	} {
		if got := socksConnect(t, addr, tc.host, p); got != tc.want {
			t.Errorf("%s: reply %d, want %d", tc.host, got, tc.want)
		}
	}
	// BIND is not supported.
	c, _ := net.Dial("tcp", addr)
	defer c.Close()
	c.Write([]byte{5, 1, 0, 5, cmdBind, 0, atypIPv4, 127, 0, 0, 1, 0, 80})
	var rep [12]byte
	if _, err := io.ReadFull(c, rep[:]); err != nil || rep[3] != repCommandNotSupported {
		t.Errorf("BIND: %v %v", rep, err)
	}
}

func TestSOCKS5UDPAssociate(t *testing.T) {
	echo, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		buf := make([]byte, 2000)
		for {
			n, from, err := echo.ReadFrom(buf)
			if err != nil {
				return
			}
			echo.WriteTo(bytes.ToUpper(buf[:n]), from)
		}
	}()
	echoAddr := echo.LocalAddr().(*net.UDPAddr).AddrPort()

	s := newServer(t, Options{})
	addr := listen(t, s.ServeSOCKS5)
	ctl, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	ctl.SetDeadline(time.Now().Add(10 * time.Second))
	ctl.Write([]byte{5, 1, 0, 5, cmdUDPAssociate, 0, atypIPv4, 0, 0, 0, 0, 0, 0})
	var rep [2 + 10]byte
	if _, err := io.ReadFull(ctl, rep[:]); err != nil {
		t.Fatal(err)
	}
	if rep[3] != repSuccess {
		t.Fatalf("reply %d", rep[3])
	}
	relay, _, err := parseSocksAddr(rep[5:])
	if err != nil {
		t.Fatal(err)
	}
	uc, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(relay.ip, relay.port)))
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	for _, target := range []string{"ip", "name"} {
		msg := []byte{0, 0, 0}
		if target == "ip" {
			msg = appendSocksAddr(msg, echoAddr)
		} else {
			msg = append(msg, atypDomain, byte(len("target.test")))
			msg = append(msg, "target.test"...)
			msg = binary.BigEndian.AppendUint16(msg, echoAddr.Port())
		}
		msg = append(msg, "ping "+target...)
		buf := make([]byte, 2000)
		uc.Write(msg)
		uc.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := uc.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		src, data, err := parseSocksAddr(buf[3:n])
		if err != nil || netip.AddrPortFrom(src.ip, src.port) != echoAddr || string(data) != strings.ToUpper("ping "+target) {
			t.Fatalf("reply from %v: %q, %v", src, data, err)
		}
	}
	// Closing the control connection ends the association.
	ctl.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		n := len(s.closers)
		s.mu.Unlock()
		if n == 1 { // the listener
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d objects still open", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHTTPProxy(t *testing.T) {
	port, sum := payloadServer(t, 1<<20)
	s := newServer(t, Options{})
	addr := listen(t, s.ServeHTTPProxy)
	pu, _ := url.Parse("http://" + addr)
	// Plain requests.
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	resp, err := client.Get("http://target.test:" + port + "/")
	checkBody(t, resp, err, sum)
	// CONNECT: a transport that tunnels even plain HTTP, through a
	// hand-made CONNECT.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "CONNECT target.test:%s HTTP/1.1\r\nHost: target.test:%s\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", port, port)
	br := bufioReader(conn)
	resp, err = http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	resp, err = http.ReadResponse(br, nil)
	checkBody(t, resp, err, sum)
	conn.Close()

	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	caddr := closed.Addr().String()
	closed.Close()
	for _, tc := range []struct {
		target string
		want   int
	}{
		{caddr, http.StatusBadGateway},
		{"nothing.test:80", http.StatusBadGateway},
		{net.JoinHostPort(blackhole.String(), "80"), http.StatusGatewayTimeout},
	} {
		resp, err := client.Get("http://" + tc.target + "/")
		if err != nil || resp.StatusCode != tc.want {
			t.Errorf("GET %s: %v %v, want %d", tc.target, resp, err, tc.want)
		} else {
			resp.Body.Close()
		}
		c, _ := net.Dial("tcp", addr)
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", tc.target, tc.target)
		resp, err = http.ReadResponse(bufioReader(c), nil)
		if err != nil || resp.StatusCode != tc.want {
			t.Errorf("CONNECT %s: %v %v, want %d", tc.target, resp, err, tc.want)
		}
		c.Close()
	}
	client.CloseIdleConnections()
}

func TestForwards(t *testing.T) {
	port, sum := payloadServer(t, 1<<20)
	s := newServer(t, Options{UDPIdleTimeout: 200 * time.Millisecond})
	addr := listen(t, func(ln net.Listener) error { return s.ForwardTCP(ln, "target.test:"+port) })
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			resp, err := client.Get("http://" + addr + "/")
			checkBody(t, resp, err, sum)
		})
	}
	wg.Wait()

	echo, _ := net.ListenPacket("udp", "127.0.0.1:0")
	defer echo.Close()
	go func() {
		buf := make([]byte, 2000)
		for {
			n, from, err := echo.ReadFrom(buf)
			if err != nil {
				return
			}
			echo.WriteTo(bytes.ToUpper(buf[:n]), from)
		}
	}()
	pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	go s.ForwardUDP(pc, echo.LocalAddr().String())
	for i := range 2 {
		uc, err := net.Dial("udp", pc.LocalAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		msg := fmt.Sprintf("hello %d", i)
		uc.Write([]byte(msg))
		uc.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 100)
		n, err := uc.Read(buf)
		if err != nil || string(buf[:n]) != strings.ToUpper(msg) {
			t.Fatalf("UDP forward: %q %v", buf[:n], err)
		}
		uc.Close()
	}
}

func TestCloseStopsEverything(t *testing.T) {
	s := New(Options{Net: loopNet{}})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	done := make(chan error, 1)
	go func() { done <- s.ServeSOCKS5(ln) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(20 * time.Millisecond)
	s.Close()
	if err := <-done; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve returned %v", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, net.ErrClosed) {
		t.Errorf("client connection still open: %v", err)
	}
}

func FuzzParseSocksAddr(f *testing.F) {
	f.Add([]byte{atypIPv4, 1, 2, 3, 4, 0, 80, 'x'})
	f.Add([]byte{atypDomain, 3, 'a', '.', 'b', 0, 80})
	f.Add([]byte{atypIPv6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 53})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, rest, err := parseSocksAddr(b)
		if err != nil {
			return
		}
		if len(rest) > len(b) || (a.name == "" && !a.ip.IsValid()) {
			t.Fatalf("%v %q", a, rest)
		}
	})
}

func bufioReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }
