//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gotatun/gotatun/noise"
)

// The test network: two namespaces joined by a veth pair (the underlay), and
// a WireGuard interface in each, run by the implementation under test.
const (
	nsPrefix   = "gtbench-"
	underlayA  = "10.101.0.1"
	underlayB  = "10.101.0.2"
	tunnelA    = "10.102.0.1"
	tunnelB    = "10.102.0.2"
	listenPort = 51820
	tunnelMTU  = 1420
	iperfPort  = 5201
	socketDir  = "/var/run/wireguard"
)

// runCmd runs a command and returns its standard output; the error carries
// standard error.
func runCmd(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return stdout.Bytes(), ctx.Err()
		}
		return stdout.Bytes(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// nsExec runs a command inside namespace ns.
func nsExec(ctx context.Context, ns string, name string, args ...string) ([]byte, error) {
	return runCmd(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

var topoSeq atomic.Uint32

// topology is one instance of the test network. Names embed the process id,
// so concurrent runs do not collide and leftovers of dead runs can be found.
type topology struct {
	id       string
	nsA, nsB string
	vethA    string
	vethB    string
}

func newTopology() *topology {
	id := strconv.FormatInt(int64(os.Getpid()), 16) + strconv.FormatUint(uint64(topoSeq.Add(1)%16), 16)
	return &topology{
		id:    id,
		nsA:   fmt.Sprintf("%s%d-%s-a", nsPrefix, os.Getpid(), id),
		nsB:   fmt.Sprintf("%s%d-%s-b", nsPrefix, os.Getpid(), id),
		vethA: "gtv" + id + "a",
		vethB: "gtv" + id + "b",
	}
}

// tunName is the WireGuard interface name for one daemon start: unique per
// implementation, round and side, at most 15 bytes.
func (t *topology) tunName(implTag byte, round int, side byte) string {
	return fmt.Sprintf("gt%s%c%d%c", t.id, implTag, round%100, side)
}

// setup creates the namespaces and the veth underlay.
func (t *topology) setup(ctx context.Context) error {
	steps := [][]string{
		{"netns", "add", t.nsA},
		{"netns", "add", t.nsB},
		{"link", "add", t.vethA, "type", "veth", "peer", "name", t.vethB},
		{"link", "set", t.vethA, "netns", t.nsA},
		{"link", "set", t.vethB, "netns", t.nsB},
		{"-n", t.nsA, "addr", "add", underlayA + "/24", "dev", t.vethA},
		{"-n", t.nsB, "addr", "add", underlayB + "/24", "dev", t.vethB},
		{"-n", t.nsA, "link", "set", "lo", "up"},
		{"-n", t.nsB, "link", "set", "lo", "up"},
		{"-n", t.nsA, "link", "set", t.vethA, "up"},
		{"-n", t.nsB, "link", "set", t.vethB, "up"},
	}
	for _, s := range steps {
		if _, err := runCmd(ctx, "ip", s...); err != nil {
			return fmt.Errorf("creating the test network: %w", err)
		}
	}
	return nil
}

// teardown deletes whatever setup created; it ignores parts that are gone.
// It uses its own context so it still runs after an interrupt.
func (t *topology) teardown() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, ns := range []string{t.nsA, t.nsB} {
		_, _ = runCmd(ctx, "ip", "netns", "del", ns) // absent is fine
	}
	_, _ = runCmd(ctx, "ip", "link", "del", t.vethA) // normally gone with its namespace
}

// cleanStale deletes namespaces left by bench runs whose process is gone
// (killed before they could clean up).
func cleanStale(ctx context.Context, logf func(string, ...any)) {
	out, err := runCmd(ctx, "ip", "netns", "list")
	if err != nil {
		return
	}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], nsPrefix) {
			continue
		}
		rest := strings.TrimPrefix(f[0], nsPrefix)
		pidStr, _, ok := strings.Cut(rest, "-")
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid <= 0 {
			continue
		}
		if pid == os.Getpid() || syscall.Kill(pid, 0) == nil || errors.Is(syscall.Kill(pid, 0), syscall.EPERM) {
			continue
		}
		logf("removing namespace %s left by dead run %d", f[0], pid)
		_, _ = runCmd(ctx, "ip", "netns", "del", f[0]) // best effort
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > b.max {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-b.max:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// proc is a long-running child process (a tunnel daemon or iperf3 server).
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *tailBuffer
	done chan struct{}
	err  error // valid after done is closed
}

// startProc starts a command in namespace ns in its own process group, so
// an interrupt of the terminal reaches the bench, which then stops it.
func startProc(ns, name string, args ...string) (*proc, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
	out := &tailBuffer{max: 16 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), "LOG_LEVEL=error")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: filepath.Base(name), cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// pid is the process id; `ip netns exec` execs the command, so it is the
// command's own.
func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends the process: SIGTERM, then SIGKILL after a grace period.
func (p *proc) stop() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM) // may have just exited
	select {
	case <-p.done:
		return
	case <-time.After(3 * time.Second):
	}
	_ = p.cmd.Process.Kill() // may have just exited
	<-p.done
}

// cpuTicks returns the process's utime+stime in clock ticks.
func (p *proc) cpuTicks() (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid()))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", p.name, err)
	}
	return parseProcStat(data)
}

// peakRSS returns the process's VmHWM in bytes.
func (p *proc) peakRSS() (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid()))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", p.name, err)
	}
	return parseVmHWM(data)
}

// clockTicksPerSecond is USER_HZ, the unit of /proc/PID/stat times. The
// kernel reports these times in USER_HZ, which is 100 on every Linux
// architecture Go supports.
const clockTicksPerSecond = 100

// tunnel is a running pair of daemons of one implementation.
type tunnel struct {
	impl     *impl
	a, b     *proc
	ifA, ifB string
}

// startTunnel starts the implementation's daemon in each namespace,
// configures both with wg(8) and ip(8), and waits until a ping crosses.
func startTunnel(ctx context.Context, t *topology, im *impl, round int, workDir string) (tun *tunnel, err error) {
	tun = &tunnel{impl: im, ifA: t.tunName(im.tag, round, 'a'), ifB: t.tunName(im.tag, round, 'b')}
	defer func() {
		if err != nil {
			tun.stop()
			tun = nil
		}
	}()
	privA, err := noise.GeneratePrivateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	privB, err := noise.GeneratePrivateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	keyA := filepath.Join(workDir, tun.ifA+".key")
	keyB := filepath.Join(workDir, tun.ifB+".key")
	if err := os.WriteFile(keyA, []byte(privA.Base64()+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(keyB, []byte(privB.Base64()+"\n"), 0o600); err != nil {
		return nil, err
	}
	for _, f := range []string{tun.ifA, tun.ifB} {
		_ = os.Remove(filepath.Join(socketDir, f+".sock")) // stale socket of a dead run, usually absent
	}
	if tun.a, err = startProc(t.nsA, im.bin, "-f", tun.ifA); err != nil {
		return nil, err
	}
	if tun.b, err = startProc(t.nsB, im.bin, "-f", tun.ifB); err != nil {
		return nil, err
	}
	for _, side := range []struct {
		p      *proc
		ifname string
	}{{tun.a, tun.ifA}, {tun.b, tun.ifB}} {
		if err := waitSocket(ctx, side.p, side.ifname); err != nil {
			return nil, fmt.Errorf("%s: %w", im.name, err)
		}
	}
	type side struct {
		ns, ifname, key, local, peerPub, peerTunnel, peerUnderlay string
	}
	for _, s := range []side{
		{t.nsA, tun.ifA, keyA, tunnelA, privB.PublicKey().String(), tunnelB, underlayB},
		{t.nsB, tun.ifB, keyB, tunnelB, privA.PublicKey().String(), tunnelA, underlayA},
	} {
		if _, err := nsExec(ctx, s.ns, "wg", "set", s.ifname,
			"private-key", s.key, "listen-port", strconv.Itoa(listenPort),
			"peer", s.peerPub, "allowed-ips", s.peerTunnel+"/32",
			"endpoint", s.peerUnderlay+":"+strconv.Itoa(listenPort)); err != nil {
			return nil, fmt.Errorf("%s: configuring %s: %w", im.name, s.ifname, err)
		}
		for _, args := range [][]string{
			{"-n", s.ns, "addr", "add", s.local + "/24", "dev", s.ifname},
			{"-n", s.ns, "link", "set", s.ifname, "mtu", strconv.Itoa(tunnelMTU), "up"},
		} {
			if _, err := runCmd(ctx, "ip", args...); err != nil {
				return nil, fmt.Errorf("%s: %w", im.name, err)
			}
		}
	}
	if err := waitPing(ctx, t.nsA, tunnelB, 10*time.Second); err != nil {
		return nil, fmt.Errorf("%s: no traffic through the tunnel: %w\n--- daemon A output ---\n%s--- daemon B output ---\n%s",
			im.name, err, tun.a.out.String(), tun.b.out.String())
	}
	return tun, nil
}

// waitSocket waits for the daemon's UAPI socket, the sign it is ready.
func waitSocket(ctx context.Context, p *proc, ifname string) error {
	path := filepath.Join(socketDir, ifname+".sock")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("daemon for %s exited before it was ready (%v):\n%s", ifname, p.err, p.out.String())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("daemon for %s: no UAPI socket %s after 10s:\n%s", ifname, path, p.out.String())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitPing pings dst from ns until a reply arrives or the time runs out.
func waitPing(ctx context.Context, ns, dst string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		_, err := nsExec(ctx, ns, "ping", "-n", "-c", "1", "-W", "1", dst)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		last = err
	}
	return last
}

func (tun *tunnel) procs() []*proc { return []*proc{tun.a, tun.b} }

// alive reports an error if a daemon has died.
func (tun *tunnel) alive() error {
	for _, p := range tun.procs() {
		if p.exited() {
			return fmt.Errorf("%s daemon exited during the test (%v):\n%s", tun.impl.name, p.err, p.out.String())
		}
	}
	return nil
}

// cpuTicks is the sum of both daemons' CPU time.
func (tun *tunnel) cpuTicks() (uint64, error) {
	var sum uint64
	for _, p := range tun.procs() {
		v, err := p.cpuTicks()
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

// peakRSS is the larger of the two daemons' peak resident set sizes.
func (tun *tunnel) peakRSS() (uint64, error) {
	var m uint64
	for _, p := range tun.procs() {
		v, err := p.peakRSS()
		if err != nil {
			return 0, err
		}
		m = max(m, v)
	}
	return m, nil
}

func (tun *tunnel) stop() {
	for _, p := range []*proc{tun.a, tun.b} {
		if p != nil {
			p.stop()
		}
	}
	for _, f := range []string{tun.ifA, tun.ifB} {
		_ = os.Remove(filepath.Join(socketDir, f+".sock")) // normally removed by the daemon
	}
}
