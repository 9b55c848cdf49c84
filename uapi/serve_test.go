package uapi

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gotatun/gotatun/device"
)

// fakeDevice is a Configurable that keeps a small configuration: enough to
// see that a set reached it, whole or not at all.
type fakeDevice struct {
	mu      sync.Mutex
	state   device.State
	applied []device.Config
	fail    error // returned by Apply when set
}

func (d *fakeDevice) Apply(c device.Config) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail != nil {
		return d.fail
	}
	d.applied = append(d.applied, c)
	s := &d.state
	if c.PrivateKey != nil {
		s.PrivateKey = *c.PrivateKey
		s.PublicKey = c.PrivateKey.PublicKey()
	}
	if c.ListenPort != nil {
		s.ListenPort = *c.ListenPort
	}
	if c.FirewallMark != nil {
		s.FirewallMark = *c.FirewallMark
	}
	if c.ReplacePeers {
		s.Peers = nil
	}
	for _, pc := range c.Peers {
		i := slices.IndexFunc(s.Peers, func(p device.PeerState) bool { return p.PublicKey == pc.PublicKey })
		if pc.Remove {
			if i >= 0 {
				s.Peers = slices.Delete(s.Peers, i, i+1)
			}
			continue
		}
		if i < 0 {
			if pc.UpdateOnly {
				continue
			}
			s.Peers = append(s.Peers, device.PeerState{PublicKey: pc.PublicKey, ProtocolVersion: 1})
			i = len(s.Peers) - 1
		}
		p := &s.Peers[i]
		if pc.PresharedKey != nil {
			p.PresharedKey = *pc.PresharedKey
		}
		if pc.Endpoint != nil {
			p.Endpoint = *pc.Endpoint
		}
		if pc.PersistentKeepalive != nil {
			p.PersistentKeepalive = *pc.PersistentKeepalive
		}
		if pc.ReplaceAllowedIPs {
			p.AllowedIPs = nil
		}
		p.AllowedIPs = append(p.AllowedIPs, pc.AllowedIPs...)
	}
	return nil
}

func (d *fakeDevice) State() device.State {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.state
	s.Peers = slices.Clone(s.Peers)
	return s
}

func (d *fakeDevice) applies() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.applied)
}

// logBuffer collects log output safely across goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startServer serves dev on a Unix socket in a temporary directory and
// returns its path. The server is stopped, and checked to have stopped,
// at the end of the test.
func startServer(t *testing.T, dev Configurable) (string, *logBuffer) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	done := make(chan error, 1)
	go func() { done <- Serve(l, dev, log) }()
	t.Cleanup(func() {
		l.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after its listener closed")
		}
	})
	return path, logs
}

type client struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, path string) *client {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &client{t: t, c: c, br: bufio.NewReader(c)}
}

// do sends a request and reads one answer, up to and including its blank
// line.
func (c *client) do(req string) string {
	c.t.Helper()
	if _, err := io.WriteString(c.c, req); err != nil {
		c.t.Fatal(err)
	}
	var sb strings.Builder
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			c.t.Fatalf("reading answer after %q: %v", sb.String(), err)
		}
		sb.WriteString(line)
		if line == "\n" {
			return sb.String()
		}
	}
}

func TestServeSetThenGet(t *testing.T) {
	dev := &fakeDevice{}
	path, _ := startServer(t, dev)
	c := dial(t, path)
	set := "set=1\nprivate_key=" + hexPriv + "\nlisten_port=12912\n" +
		"public_key=" + hexPub1 + "\npreshared_key=" + hexPSK + "\nendpoint=[abcd:23::33%2]:51820\n" +
		"persistent_keepalive_interval=111\nallowed_ip=192.168.4.4/32\n\n"
	if got := c.do(set); got != "errno=0\n\n" {
		t.Fatalf("set answered %q", got)
	}
	// Several transactions on one connection, as wg(8) sends them.
	got := c.do("get=1\n\n")
	want := "private_key=" + hexPriv + "\nlisten_port=12912\n" +
		"public_key=" + hexPub1 + "\npreshared_key=" + hexPSK + "\nprotocol_version=1\n" +
		"endpoint=[abcd:23::33%2]:51820\nlast_handshake_time_sec=0\nlast_handshake_time_nsec=0\n" +
		"tx_bytes=0\nrx_bytes=0\npersistent_keepalive_interval=111\nallowed_ip=192.168.4.4/32\n" +
		"errno=0\n\n"
	if got != want {
		t.Fatalf("get:\n%s\nwant:\n%s", got, want)
	}
	if got := c.do("set=1\nreplace_peers=true\n\n"); got != "errno=0\n\n" {
		t.Fatalf("second set answered %q", got)
	}
	if got := c.do("get=1\n\n"); strings.Contains(got, "public_key") {
		t.Fatalf("peer still there: %q", got)
	}
}

func TestServeFailedSetChangesNothing(t *testing.T) {
	dev := &fakeDevice{}
	path, logs := startServer(t, dev)
	c := dial(t, path)
	if got := c.do("set=1\nlisten_port=1000\n\n"); got != "errno=0\n\n" {
		t.Fatal(got)
	}
	before := c.do("get=1\n\n")
	// Valid lines first, a bad one in the middle, valid lines after.
	bad := "set=1\nlisten_port=2000\nreplace_peers=true\npublic_key=" + hexPub1 +
		"\nallowed_ip=10.0.0.0/8\nendpoint=300.1.1.1:5\nallowed_ip=10.1.0.0/16\n\n"
	if got := c.do(bad); got != "errno=-22\n\n" {
		t.Fatalf("bad set answered %q", got)
	}
	if after := c.do("get=1\n\n"); after != before {
		t.Fatalf("failed set changed the device:\n%s\nwas:\n%s", after, before)
	}
	if dev.applies() != 1 {
		t.Fatalf("Apply called %d times, want 1", dev.applies())
	}
	l := logs.String()
	if !strings.Contains(l, "endpoint") || !strings.Contains(l, "300.1.1.1:5") || !strings.Contains(l, "line 5") {
		t.Fatalf("log does not name the bad line: %s", l)
	}
	// The connection is still in step.
	if got := c.do("set=1\nlisten_port=3000\n\n"); got != "errno=0\n\n" {
		t.Fatal(got)
	}
}

func TestServeErrnos(t *testing.T) {
	tests := []struct {
		name, req, want string
	}{
		{"unknown key", "set=1\nfoo=bar\n\n", "errno=-22\n\n"},
		{"not key=value", "set=1\nfoo\n\n", "errno=-71\n\n"},
		{"protocol_version=2", "set=1\npublic_key=" + hexPub1 + "\nprotocol_version=2\n\n", "errno=-22\n\n"},
		{"keepalive too large", "set=1\npublic_key=" + hexPub1 + "\npersistent_keepalive_interval=65536\n\n", "errno=-22\n\n"},
		{"get with trailing data", "get=1\nx\n", "errno=22\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dev := &fakeDevice{}
			path, _ := startServer(t, dev)
			c := dial(t, path)
			if got := c.do(tt.req); got != tt.want {
				t.Fatalf("answered %q, want %q", got, tt.want)
			}
			if dev.applies() != 0 {
				t.Fatal("Apply called")
			}
		})
	}
}

func TestServeApplyError(t *testing.T) {
	dev := &fakeDevice{fail: fmt.Errorf("binding port: %w", syscall.EADDRINUSE)}
	path, logs := startServer(t, dev)
	c := dial(t, path)
	if got := c.do("set=1\nlisten_port=53\n\n"); got != "errno=-98\n\n" {
		t.Fatalf("answered %q", got)
	}
	dev.mu.Lock()
	dev.fail = errors.New("too many peers")
	dev.mu.Unlock()
	if got := c.do("set=1\nlisten_port=53\n\n"); got != "errno=-22\n\n" {
		t.Fatalf("answered %q", got)
	}
	if !strings.Contains(logs.String(), "too many peers") {
		t.Fatalf("log: %s", logs.String())
	}
}

func TestServeUnknownOperationClosesConnection(t *testing.T) {
	dev := &fakeDevice{}
	path, logs := startServer(t, dev)
	c := dial(t, path)
	io.WriteString(c.c, "frob=1\n")
	if _, err := c.br.ReadByte(); err != io.EOF {
		t.Fatalf("connection not closed: %v", err)
	}
	if !strings.Contains(logs.String(), "unknown operation") {
		t.Fatalf("log: %s", logs.String())
	}
}

func TestServeTruncatedSetNotApplied(t *testing.T) {
	dev := &fakeDevice{}
	path, logs := startServer(t, dev)
	c := dial(t, path)
	io.WriteString(c.c, "set=1\nlisten_port=5\n")
	c.c.(*net.UnixConn).CloseWrite()
	if _, err := c.br.ReadByte(); err != io.EOF {
		t.Fatalf("got answer or error %v", err)
	}
	// The handler logs before it closes the connection.
	if dev.applies() != 0 {
		t.Fatal("truncated transaction applied")
	}
	if !strings.Contains(logs.String(), "cut off") {
		t.Fatalf("log: %s", logs.String())
	}
}

func TestServeConcurrentClients(t *testing.T) {
	dev := &fakeDevice{}
	path, _ := startServer(t, dev)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			br := bufio.NewReader(c)
			for j := range 20 {
				fmt.Fprintf(c, "set=1\nlisten_port=%d\n\nget=1\n\n", i*100+j+1)
				for _, want := range []string{"errno=0", "", "listen_port=", "errno=0", ""} {
					line, err := br.ReadString('\n')
					if err != nil {
						t.Error(err)
						return
					}
					if !strings.HasPrefix(line, want) {
						t.Errorf("got %q, want prefix %q", line, want)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if dev.applies() != 160 {
		t.Fatalf("applies = %d", dev.applies())
	}
}

func TestServeClosesConnectionsAndStops(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	done := make(chan error, 1)
	go func() { done <- Serve(l, &fakeDevice{}, nil) }()
	var conns []net.Conn
	for range 3 {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	// Make sure all three are being served.
	for _, c := range conns {
		io.WriteString(c, "get=1\n\n")
		if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadAll(c); err != nil {
			t.Fatalf("connection not closed by server: %v", err)
		}
	}
	// No handler goroutine outlives Serve.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines, %d before Serve", n, before)
	}
}
