//go:build linux

// Package e2e runs gotatun as a real daemon in Linux network namespaces,
// configured with the real wg(8) and wg-quick(8), against itself and
// against wireguard-go. It needs root, /dev/net/tun, ip(8), wg(8),
// wg-quick(8) and ping(8): a missing prerequisite skips the tests with the
// reason, or fails them when CI=true.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gotatun/gotatun/noise"
)

var (
	// binDir holds the gotatun and wireguard-go binaries built for the run.
	binDir string
	// prereqErr says why the tests cannot run here.
	prereqErr error
	// buildErr is a failure to build the binaries: always a test failure.
	buildErr error
	// seq makes names unique within the run.
	seq atomic.Int64
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	prereqErr = checkPrereqs()
	if prereqErr == nil {
		binDir, buildErr = buildBinaries()
	}
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func checkPrereqs() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces, TUN devices)")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return fmt.Errorf("no /dev/net/tun: %w", err)
	}
	for _, tool := range []string{"ip", "wg", "ping", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found in PATH", tool)
		}
	}
	name := fmt.Sprintf("gtprobe%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return fmt.Errorf("cannot create network namespaces: %v: %s", err, out)
	}
	exec.Command("ip", "netns", "del", name).Run()
	return nil
}

// buildBinaries builds gotatun from this module and wireguard-go from the
// version pinned in go.mod.
func buildBinaries() (string, error) {
	dir, err := os.MkdirTemp("", "gotatun-e2e-")
	if err != nil {
		return "", err
	}
	// Other users run the binaries too (the test of running without root).
	if err := os.Chmod(dir, 0o755); err != nil {
		return dir, err
	}
	for _, b := range []struct{ out, pkg string }{
		{"gotatun", "github.com/gotatun/gotatun/cmd/gotatun"},
		{"wireguard-go", "golang.zx2c4.com/wireguard"},
	} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b.out), b.pkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			return dir, fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
		}
	}
	return dir, nil
}

// need stops the test when it cannot run here.
func need(t *testing.T, tools ...string) {
	t.Helper()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	err := prereqErr
	for _, tool := range tools {
		if err != nil {
			break
		}
		if _, lerr := exec.LookPath(tool); lerr != nil {
			err = fmt.Errorf("%s not found in PATH", tool)
		}
	}
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("prerequisite missing: %v", err)
	}
	t.Skipf("skipping: %v", err)
}

// uniq returns a short name unique to this process and call, usable as an
// interface name (at most 15 bytes).
func uniq(prefix string) string {
	return fmt.Sprintf("%s%d_%d", prefix, os.Getpid()%100000, seq.Add(1))
}

// netns is a network namespace that lives as long as the test.
type netns struct {
	t    *testing.T
	name string
}

func newNetns(t *testing.T) *netns {
	t.Helper()
	n := &netns{t: t, name: uniq("gte")}
	mustRun(t, "ip", "netns", "add", n.name)
	t.Cleanup(func() {
		// Whatever still runs in the namespace was started by this test.
		out, _ := exec.Command("ip", "netns", "pids", n.name).Output()
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		exec.Command("ip", "netns", "del", n.name).Run()
	})
	n.run("ip", "link", "set", "lo", "up")
	return n
}

// command returns cmd to be run inside the namespace.
func (n *netns) command(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.name}, args...)...)
}

// try runs a command in the namespace and returns its combined output.
func (n *netns) try(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := n.command(ctx, args...).CombinedOutput()
	return string(out), err
}

// run runs a command in the namespace and fails the test if it fails.
func (n *netns) run(args ...string) string {
	n.t.Helper()
	out, err := n.try(args...)
	if err != nil {
		n.t.Fatalf("[%s] %s: %v\n%s", n.name, strings.Join(args, " "), err, out)
	}
	return out
}

// pids lists the processes running in the namespace.
func (n *netns) pids() []string {
	out, _ := exec.Command("ip", "netns", "pids", n.name).Output()
	return strings.Fields(string(out))
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// veth joins two namespaces with a veth pair addressed 192.168.N.1/24 and
// fd00:N::1/64 on a's side, .2 and ::2 on b's.
type veth struct {
	nameA, nameB string
	v4A, v4B     netip.Addr
	v6A, v6B     netip.Addr
}

func connect(t *testing.T, a, b *netns, subnet int) *veth {
	t.Helper()
	v := &veth{
		nameA: uniq("va"), nameB: uniq("vb"),
		v4A: netip.MustParseAddr(fmt.Sprintf("192.168.%d.1", subnet)),
		v4B: netip.MustParseAddr(fmt.Sprintf("192.168.%d.2", subnet)),
		v6A: netip.MustParseAddr(fmt.Sprintf("fd00:%d::1", subnet)),
		v6B: netip.MustParseAddr(fmt.Sprintf("fd00:%d::2", subnet)),
	}
	mustRun(t, "ip", "link", "add", v.nameA, "netns", a.name, "type", "veth", "peer", "name", v.nameB, "netns", b.name)
	for _, s := range []struct {
		n      *netns
		dev    string
		v4, v6 netip.Addr
	}{{a, v.nameA, v.v4A, v.v6A}, {b, v.nameB, v.v4B, v.v6B}} {
		s.n.run("ip", "addr", "add", s.v4.String()+"/24", "dev", s.dev)
		s.n.run("ip", "addr", "add", s.v6.String()+"/64", "dev", s.dev, "nodad")
		s.n.run("ip", "link", "set", s.dev, "up")
	}
	return v
}

// Implementations.
const (
	gotatun     = "gotatun"
	wireguardGo = "wireguard-go"
)

// iface is a WireGuard interface run by a daemon in the foreground.
type iface struct {
	t      *testing.T
	ns     *netns
	name   string
	impl   string
	priv   noise.PrivateKey
	pub    noise.PublicKey
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{}
	err    error // exit status, valid once exited is closed
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newKey(t *testing.T) noise.PrivateKey {
	t.Helper()
	k, err := noise.GeneratePrivateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// startIface runs impl in the foreground for a new interface in n and
// waits until wg(8) can talk to it. At the end of the test it sends
// SIGTERM and, for gotatun, checks a clean exit.
func startIface(t *testing.T, n *netns, impl string) *iface {
	t.Helper()
	return startIfaceEnv(t, n, impl)
}

// startIfaceEnv is startIface with extra environment variables.
func startIfaceEnv(t *testing.T, n *netns, impl string, env ...string) *iface {
	t.Helper()
	return startIfaceArgs(t, n, impl, uniq("g"), newKey(t), env)
}

// startIfaceArgs is startIfaceEnv for the interface name with key priv
// (for wg's output; the caller configures it) and args for the daemon
// before the name.
func startIfaceArgs(t *testing.T, n *netns, impl, name string, priv noise.PrivateKey, env []string, args ...string) *iface {
	t.Helper()
	i := &iface{t: t, ns: n, name: name, impl: impl, out: &syncBuffer{}, exited: make(chan struct{})}
	i.priv = priv
	i.pub = i.priv.PublicKey()
	i.cmd = n.command(context.Background(), append(append([]string{filepath.Join(binDir, impl), "-f"}, args...), i.name)...)
	i.cmd.Env = append(append(os.Environ(), "LOG_LEVEL=error"), env...)
	i.cmd.Stdout = i.out
	i.cmd.Stderr = i.out
	if err := i.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		i.err = i.cmd.Wait()
		close(i.exited)
	}()
	t.Cleanup(i.stop)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := n.try("wg", "show", i.name); err == nil {
			break
		}
		select {
		case <-i.exited:
			t.Fatalf("%s %s exited at start: %v\n%s", impl, i.name, i.err, i.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s: wg cannot reach it\n%s", impl, i.name, i.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return i
}

func (i *iface) stop() {
	select {
	case <-i.exited:
	default:
		i.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-i.exited:
		case <-time.After(15 * time.Second):
			i.cmd.Process.Kill()
			<-i.exited
			i.t.Errorf("%s %s did not stop on SIGTERM\n%s", i.impl, i.name, i.out.String())
			return
		}
	}
	if i.impl != gotatun {
		return
	}
	if i.err != nil {
		i.t.Errorf("%s exited with %v\n%s", i.name, i.err, i.out.String())
	}
	if _, err := os.Lstat(socketPath(i.name)); !errors.Is(err, os.ErrNotExist) {
		i.t.Errorf("%s left its socket behind (%v)", i.name, err)
	}
	if i.t.Failed() {
		i.t.Logf("%s %s output:\n%s", i.impl, i.name, i.out.String())
	}
}

func socketPath(ifname string) string { return "/var/run/wireguard/" + ifname + ".sock" }

// wg runs wg(8) in the interface's namespace.
func (i *iface) wg(args ...string) string {
	i.t.Helper()
	return i.ns.run(append([]string{"wg"}, args...)...)
}

// setconf writes conf to a file and applies it with `wg CMD IFACE FILE`
// (setconf, addconf or syncconf).
func (i *iface) conf(cmd, conf string) {
	i.t.Helper()
	f := filepath.Join(i.t.TempDir(), "wg.conf")
	if err := os.WriteFile(f, []byte(conf), 0o600); err != nil {
		i.t.Fatal(err)
	}
	i.wg(cmd, i.name, f)
}

// peerConf is one [Peer] section.
type peerConf struct {
	pub        noise.PublicKey
	endpoint   netip.AddrPort // none if invalid
	allowedIPs []string
	keepalive  int
}

func (i *iface) confText(port int, peers ...peerConf) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[Interface]\nPrivateKey = %s\n", i.priv.Base64())
	if port != 0 {
		fmt.Fprintf(&b, "ListenPort = %d\n", port)
	}
	for _, p := range peers {
		fmt.Fprintf(&b, "\n[Peer]\nPublicKey = %s\nAllowedIPs = %s\n", p.pub, strings.Join(p.allowedIPs, ", "))
		if p.endpoint.IsValid() {
			fmt.Fprintf(&b, "Endpoint = %s\n", p.endpoint)
		}
		if p.keepalive != 0 {
			fmt.Fprintf(&b, "PersistentKeepalive = %d\n", p.keepalive)
		}
	}
	return b.String()
}

// up gives the interface addresses and an MTU and brings it up.
func (i *iface) up(mtu int, addrs ...string) {
	i.t.Helper()
	for _, a := range addrs {
		args := []string{"ip", "addr", "add", a, "dev", i.name}
		if strings.Contains(a, ":") {
			args = append(args, "nodad")
		}
		i.ns.run(args...)
	}
	i.ns.run("ip", "link", "set", i.name, "mtu", strconv.Itoa(mtu), "up")
}

// dumpPeer is one peer line of `wg show IFACE dump`.
type dumpPeer struct {
	pub           string
	psk           string
	endpoint      string
	allowedIPs    string
	lastHandshake int64
	rx, tx        uint64
	keepalive     string
}

// peers parses `wg show IFACE dump`.
func (i *iface) peers() map[string]dumpPeer {
	i.t.Helper()
	out := i.wg("show", i.name, "dump")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	m := make(map[string]dumpPeer)
	for _, l := range lines[1:] {
		f := strings.Split(l, "\t")
		if len(f) != 8 {
			i.t.Fatalf("bad dump line %q", l)
		}
		hs, _ := strconv.ParseInt(f[4], 10, 64)
		rx, _ := strconv.ParseUint(f[5], 10, 64)
		tx, _ := strconv.ParseUint(f[6], 10, 64)
		m[f[0]] = dumpPeer{pub: f[0], psk: f[1], endpoint: f[2], allowedIPs: f[3], lastHandshake: hs, rx: rx, tx: tx, keepalive: f[7]}
	}
	return m
}

func (i *iface) peer(pub noise.PublicKey) dumpPeer {
	i.t.Helper()
	p, ok := i.peers()[pub.String()]
	if !ok {
		i.t.Fatalf("%s has no peer %s", i.name, pub)
	}
	return p
}

// ping pings addr from n until it answers (at most about wait), then
// checks that count more pings all answer.
func ping(t *testing.T, n *netns, addr netip.Addr, count int) {
	t.Helper()
	reach(t, n, addr)
	// One request per ping(8), each answered within -W: a run of several
	// waits only two round trips for the last reply once others came,
	// which a loaded machine overruns (and with -w it keeps sending and
	// counts replies still on their way as lost).
	for i := range count {
		out, err := n.try("ping", "-n", "-q", "-c", "1", "-W", "5", addr.String())
		if err != nil || !strings.Contains(out, " 0% packet loss") {
			t.Fatalf("[%s] ping %s (%d of %d): %v\n%s", n.name, addr, i+1, count, err, out)
		}
	}
}

// reach waits until addr answers a ping from n (at most about 10 s).
// Unlike ping it does not insist on a loss-free run after that.
func reach(t *testing.T, n *netns, addr netip.Addr) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := n.try("ping", "-n", "-c", "1", "-W", "1", addr.String())
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("[%s] no answer from %s: %v\n%s", n.name, addr, err, out)
		}
	}
}

// noPing checks that addr does not answer from n.
func noPing(t *testing.T, n *netns, addr netip.Addr) {
	t.Helper()
	out, err := n.try("ping", "-n", "-c", "2", "-i", "0.2", "-W", "1", addr.String())
	if err == nil {
		t.Fatalf("[%s] %s still answers:\n%s", n.name, addr, out)
	}
}

// lines reads r line by line into ch until EOF.
func lines(r *bufio.Reader, ch chan<- string) {
	defer close(ch)
	for {
		l, err := r.ReadString('\n')
		if l != "" {
			ch <- strings.TrimSpace(l)
		}
		if err != nil {
			return
		}
	}
}
