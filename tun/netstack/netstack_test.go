package netstack_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/gotatun/gotatun/device"
	"github.com/gotatun/gotatun/noise"
	"github.com/gotatun/gotatun/transport"
	"github.com/gotatun/gotatun/tun/netstack"
)

// pair is two devices joined by an in-memory UDP network, each with a
// netstack TUN: the client at 10.7.0.1/fd07::1, the server at
// 10.7.0.2/fd07::2, which also answers DNS for "server.test".
type pair struct {
	client, server *netstack.Stack
}

func newPair(t *testing.T) *pair {
	t.Helper()
	nw := transport.NewNetwork()
	p := &pair{}
	cst, err := netstack.New(netstack.Config{
		Addresses: []netip.Prefix{netip.MustParsePrefix("10.7.0.1/32"), netip.MustParsePrefix("fd07::1/128")},
		DNS:       []netip.Addr{netip.MustParseAddr("10.7.0.2")},
	})
	if err != nil {
		t.Fatal(err)
	}
	sst, err := netstack.New(netstack.Config{
		Addresses: []netip.Prefix{netip.MustParsePrefix("10.7.0.2/32"), netip.MustParsePrefix("fd07::2/128")},
	})
	if err != nil {
		t.Fatal(err)
	}
	p.client, p.server = cst, sst
	cpriv, _ := noise.GeneratePrivateKey(rand.Reader)
	spriv, _ := noise.GeneratePrivateKey(rand.Reader)
	cdev, err := device.New(device.Options{TUN: cst, Bind: nw.NewBind(netip.MustParseAddr("192.0.2.1"))})
	if err != nil {
		t.Fatal(err)
	}
	sdev, err := device.New(device.Options{TUN: sst, Bind: nw.NewBind(netip.MustParseAddr("192.0.2.2"))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cdev.Close()
		sdev.Close()
	})
	sport := uint16(51820)
	if err := sdev.Apply(device.Config{PrivateKey: &spriv, ListenPort: &sport, Peers: []device.PeerConfig{{
		PublicKey:  cpriv.PublicKey(),
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.7.0.1/32"), netip.MustParsePrefix("fd07::1/128")},
	}}}); err != nil {
		t.Fatal(err)
	}
	ep := netip.MustParseAddrPort("192.0.2.2:51820")
	if err := cdev.Apply(device.Config{PrivateKey: &cpriv, Peers: []device.PeerConfig{{
		PublicKey:  spriv.PublicKey(),
		Endpoint:   &ep,
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.7.0.0/24"), netip.MustParsePrefix("fd07::/64")},
	}}}); err != nil {
		t.Fatal(err)
	}
	pc, err := sst.ListenPacket("udp", ":53")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go serveDNS(pc)
	return p
}

// serveDNS answers A and AAAA queries for server.test and NXDOMAIN for
// every other name.
func serveDNS(pc net.PacketConn) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		var p dnsmessage.Parser
		h, err := p.Start(buf[:n])
		if err != nil {
			continue
		}
		q, err := p.Question()
		if err != nil {
			continue
		}
		rh := dnsmessage.Header{ID: h.ID, Response: true, RecursionAvailable: true}
		known := strings.EqualFold(q.Name.String(), "server.test.")
		if !known {
			rh.RCode = dnsmessage.RCodeNameError
		}
		b := dnsmessage.NewBuilder(nil, rh)
		b.StartQuestions()
		b.Question(q)
		b.StartAnswers()
		hdr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}
		if known && q.Type == dnsmessage.TypeA {
			b.AResource(hdr, dnsmessage.AResource{A: [4]byte{10, 7, 0, 2}})
		}
		if known && q.Type == dnsmessage.TypeAAAA {
			b.AAAAResource(hdr, dnsmessage.AAAAResource{AAAA: netip.MustParseAddr("fd07::2").As16()})
		}
		out, err := b.Finish()
		if err != nil {
			continue
		}
		pc.WriteTo(out, from)
	}
}

func TestTCP(t *testing.T) {
	p := newPair(t)
	ln, err := p.server.Listen("tcp", ":8080")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	payload := make([]byte, 4<<20)
	rand.Read(payload)
	want := sha256.Sum256(payload)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write(payload)
	}()
	for _, addr := range []string{"10.7.0.2:8080"} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		c, err := p.client.DialContext(ctx, "tcp", addr)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		n, err := io.Copy(h, c)
		c.Close()
		if err != nil || n != int64(len(payload)) || !bytes.Equal(h.Sum(nil), want[:]) {
			t.Fatalf("read %d bytes, err %v, checksum matches %v", n, err, bytes.Equal(h.Sum(nil), want[:]))
		}
	}
}

func TestTCPManyAndIPv6(t *testing.T) {
	p := newPair(t)
	ln, err := p.server.Listen("tcp6", "[fd07::2]:7")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Go(func() {
			c, err := p.client.Dial("tcp", "[fd07::2]:7")
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			msg := bytes.Repeat([]byte{byte(i)}, 10000+i)
			go c.Write(msg)
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
				errs <- errors.New("echo mismatch")
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestUDP(t *testing.T) {
	p := newPair(t)
	srv, err := p.server.ListenPacket("udp4", "10.7.0.2:9000")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go func() {
		buf := make([]byte, 2000)
		for {
			n, from, err := srv.ReadFrom(buf)
			if err != nil {
				return
			}
			srv.WriteTo(append([]byte("echo:"), buf[:n]...), from)
		}
	}()
	c, err := p.client.Dial("udp", "10.7.0.2:9000")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The first datagrams may race the handshake: resend until answered.
	buf := make([]byte, 2000)
	for i := 0; ; i++ {
		c.Write([]byte("hello"))
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := c.Read(buf)
		if err == nil {
			if string(buf[:n]) != "echo:hello" {
				t.Fatalf("got %q", buf[:n])
			}
			break
		}
		if i == 20 {
			t.Fatal(err)
		}
	}
	// An unconnected socket on the client side.
	pc, err := p.client.ListenPacket("udp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	to := net.UDPAddrFromAddrPort(netip.MustParseAddrPort("10.7.0.2:9000"))
	if _, err := pc.WriteTo([]byte("x"), to); err != nil {
		t.Fatal(err)
	}
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := pc.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "echo:x" || from.String() != "10.7.0.2:9000" {
		t.Fatalf("ReadFrom: %q from %v, %v", buf[:n], from, err)
	}
}

func TestResolver(t *testing.T) {
	p := newPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	addrs, err := p.client.LookupContextHost(ctx, "server.test")
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != 2 || addrs[0] != "10.7.0.2" || addrs[1] != "fd07::2" {
		t.Errorf("server.test: %q", addrs)
	}
	v6, err := p.client.LookupNetIP(ctx, "ip6", "SERVER.test.")
	if err != nil || len(v6) != 1 || v6[0] != netip.MustParseAddr("fd07::2") {
		t.Errorf("ip6: %v %v", v6, err)
	}
	_, err = p.client.LookupHost("nothing.test")
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Errorf("nothing.test: %v", err)
	}
	if a, err := p.client.LookupHost("192.0.2.9"); err != nil || len(a) != 1 || a[0] != "192.0.2.9" {
		t.Errorf("literal: %v %v", a, err)
	}
	if _, err := p.client.LookupHost("bad name!"); err == nil {
		t.Error("bad name resolved")
	}

	// Dial by name goes through the resolver.
	ln, err := p.server.Listen("tcp4", ":81")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Write([]byte("hi"))
			c.Close()
		}
	}()
	c, err := p.client.DialContext(ctx, "tcp4", "server.test:81")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	c.Close()
	if string(b) != "hi" || err != nil {
		t.Errorf("read %q, %v", b, err)
	}
}

func TestDialErrors(t *testing.T) {
	p := newPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Warm the tunnel up so the refusal is not a handshake timeout.
	if _, err := p.client.LookupContextHost(ctx, "server.test"); err != nil {
		t.Fatal(err)
	}
	_, err := p.client.DialContext(ctx, "tcp", "10.7.0.2:1")
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("closed port: %v", err)
	}
	// No peer has 10.99.0.0/16: the SYN goes nowhere.
	short, cancel2 := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel2()
	_, err = p.client.DialContext(short, "tcp", "10.99.0.1:80")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("unroutable: %v", err)
	}
	for _, tc := range []struct{ network, addr string }{
		{"ip", "10.7.0.2:1"}, {"tcp", "10.7.0.2"}, {"tcp", "10.7.0.2:99999"}, {"tcp4", "[fd07::2]:80"},
	} {
		if _, err := p.client.DialContext(ctx, tc.network, tc.addr); err == nil {
			t.Errorf("Dial(%q, %q) succeeded", tc.network, tc.addr)
		}
	}
	if _, err := p.client.Listen("udp", ":1"); err == nil {
		t.Error("Listen udp succeeded")
	}
	if _, err := p.client.ListenPacket("tcp", ":1"); err == nil {
		t.Error("ListenPacket tcp succeeded")
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	st, err := netstack.New(netstack.Config{Addresses: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		bufs := [][]byte{make([]byte, 1500)}
		_, err := st.Read(bufs, []int{0}, 0)
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	st.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Read after Close returned no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still blocked after Close")
	}
	if _, err := netstack.New(netstack.Config{}); err == nil {
		t.Error("New with no address succeeded")
	}
}

// TestNoLeak checks that closing the devices stops every goroutine of
// the stacks, their connections and the devices.
func TestNoLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("pair", func(t *testing.T) {
		p := newPair(t)
		ln, err := p.server.Listen("tcp", ":80")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			c, err := ln.Accept()
			if err == nil {
				c.Write([]byte("x"))
			}
		}()
		c, err := p.client.Dial("tcp", "10.7.0.2:80")
		if err != nil {
			t.Fatal(err)
		}
		c.Read(make([]byte, 1))
		// Left open on purpose: Close of the stack ends them.
	})
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReadOversize checks that a packet larger than the reader's buffer
// is dropped and counted, and the next one that fits is returned.
func TestReadOversize(t *testing.T) {
	st, err := netstack.New(netstack.Config{Addresses: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := st.Dial("udp", "10.0.0.2:9")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(make([]byte, 1000))
	c.Write([]byte("small"))
	bufs := [][]byte{make([]byte, 16+200)}
	sizes := []int{0}
	n, err := st.Read(bufs, sizes, 16)
	if err != nil || n != 1 || sizes[0] != 20+8+5 {
		t.Fatalf("Read: %d packets, size %d, %v", n, sizes[0], err)
	}
	if got := st.Stats().DropsOversize; got != 1 {
		t.Errorf("DropsOversize %d, want 1", got)
	}
	// A buffer shorter than the offset holds nothing and does not panic.
	c.Write([]byte("x"))
	done := make(chan struct{})
	go func() {
		defer close(done)
		st.Read([][]byte{make([]byte, 8)}, sizes, 16)
	}()
	time.Sleep(50 * time.Millisecond)
	st.Close()
	<-done
	if got := st.Stats().DropsOversize; got != 2 {
		t.Errorf("DropsOversize %d, want 2", got)
	}
}
