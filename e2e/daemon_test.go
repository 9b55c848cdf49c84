//go:build linux

package e2e

import (
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func gotatunBin() string { return filepath.Join(binDir, "gotatun") }

// runGotatun runs gotatun in n (or in this namespace if n is nil) and
// returns its exit code and output.
func runGotatun(t *testing.T, n *netns, env []string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var cmd *exec.Cmd
	if n != nil {
		cmd = n.command(ctx, append([]string{gotatunBin()}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, gotatunBin(), args...)
	}
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// waitGone waits until the namespace runs no process and the socket of
// ifname is gone.
func waitGone(t *testing.T, n *netns, ifname string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := os.Lstat(socketPath(ifname))
		if errors.Is(err, os.ErrNotExist) && len(n.pids()) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon for %s still there: socket %v, processes %v", ifname, err, n.pids())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDaemon(t *testing.T) {
	need(t)

	t.Run("detaches-and-stops-when-link-deleted", func(t *testing.T) {
		n := newNetns(t)
		name := uniq("g")
		start := time.Now()
		code, out := runGotatun(t, n, nil, name)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, out)
		}
		if out != "" {
			t.Errorf("printed %q", out)
		}
		if len(n.pids()) != 1 {
			t.Fatalf("processes in namespace: %v", n.pids())
		}
		n.run("wg", "set", name, "listen-port", "5555")
		if got := n.run("wg", "show", name, "listen-port"); strings.TrimSpace(got) != "5555" {
			t.Fatalf("listen-port %q", got)
		}
		// The daemon is in its own session, away from our terminal.
		pid := n.pids()[0]
		stat, _ := os.ReadFile("/proc/" + pid + "/stat")
		if f := strings.Fields(string(stat)); len(f) < 6 || f[5] != pid {
			t.Errorf("daemon %s is not a session leader: %s", pid, stat)
		}
		n.run("ip", "link", "del", name)
		waitGone(t, n, name)
		t.Logf("detached start and stop in %v", time.Since(start))
	})

	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run("foreground-stops-on-"+sig.String(), func(t *testing.T) {
			n := newNetns(t)
			i := startIface(t, n, gotatun)
			i.cmd.Process.Signal(sig)
			select {
			case <-i.exited:
			case <-time.After(10 * time.Second):
				t.Fatalf("no exit on %v", sig)
			}
			if i.err != nil {
				t.Fatalf("exit: %v\n%s", i.err, i.out.String())
			}
			waitGone(t, n, i.name)
			if _, err := n.try("ip", "link", "show", i.name); err == nil {
				t.Fatal("interface still there")
			}
		})
	}

	t.Run("detached-stops-on-SIGTERM", func(t *testing.T) {
		n := newNetns(t)
		name := uniq("g")
		if code, out := runGotatun(t, n, nil, name); code != 0 {
			t.Fatalf("exit %d: %s", code, out)
		}
		pids := n.pids()
		if len(pids) != 1 {
			t.Fatalf("processes in namespace: %v", pids)
		}
		pid, _ := strconv.Atoi(pids[0])
		syscall.Kill(pid, syscall.SIGTERM)
		waitGone(t, n, name)
		if _, err := n.try("ip", "link", "show", name); err == nil {
			t.Fatal("interface still there")
		}
	})

	t.Run("foreground-exits-0-when-link-deleted", func(t *testing.T) {
		n := newNetns(t)
		i := startIface(t, n, gotatun)
		n.run("ip", "link", "del", i.name)
		select {
		case <-i.exited:
		case <-time.After(10 * time.Second):
			t.Fatal("no exit after the interface was deleted")
		}
		if i.err != nil {
			t.Fatalf("exit: %v\n%s", i.err, i.out.String())
		}
		waitGone(t, n, i.name)
	})

	t.Run("two-daemons-one-namespace", func(t *testing.T) {
		n := newNetns(t)
		a, b := startIface(t, n, gotatun), startIface(t, n, gotatun)
		a.wg("set", a.name, "listen-port", "7001")
		b.wg("set", b.name, "listen-port", "7002")
		if got := strings.TrimSpace(a.wg("show", a.name, "listen-port")); got != "7001" {
			t.Fatalf("%s listen-port %q", a.name, got)
		}
		if got := strings.TrimSpace(b.wg("show", b.name, "listen-port")); got != "7002" {
			t.Fatalf("%s listen-port %q", b.name, got)
		}
		// Ending one leaves the other alone.
		n.run("ip", "link", "del", a.name)
		select {
		case <-a.exited:
		case <-time.After(10 * time.Second):
			t.Fatal("no exit after the interface was deleted")
		}
		select {
		case <-b.exited:
			t.Fatalf("%s exited with %s", b.name, a.name)
		default:
		}
		if got := strings.TrimSpace(b.wg("show", b.name, "listen-port")); got != "7002" {
			t.Fatalf("%s listen-port %q", b.name, got)
		}
		n.run("ip", "link", "show", b.name)
	})

	t.Run("refuses-second-daemon", func(t *testing.T) {
		n := newNetns(t)
		i := startIface(t, n, gotatun)
		// ip netns exec runs gotatun in its own process.
		holder := fmt.Sprintf("held by gotatun (pid %d), which serves %s", i.cmd.Process.Pid, socketPath(i.name))
		for _, args := range [][]string{{i.name}, {"-f", i.name}} {
			code, out := runGotatun(t, n, nil, args...)
			if code != 1 || !strings.Contains(out, "cannot create interface "+i.name) || !strings.Contains(out, holder) {
				t.Errorf("%q: exit %d, %q; want %q", args, code, out, holder)
			}
		}
		// The first one still serves.
		i.wg("show", i.name)
	})

	t.Run("refuses-name-of-other-interface", func(t *testing.T) {
		n := newNetns(t)
		name := uniq("v")
		n.run("ip", "link", "add", name, "type", "veth", "peer", "name", uniq("v"))
		code, out := runGotatun(t, n, nil, "-f", name)
		if code != 1 || !strings.Contains(out, "exists and is not a TUN interface") {
			t.Fatalf("exit %d, %q", code, out)
		}
		if _, err := os.Lstat(socketPath(name)); err == nil {
			t.Fatal("socket created")
		}
	})

	t.Run("refuses-live-socket", func(t *testing.T) {
		n := newNetns(t)
		name := uniq("g")
		os.MkdirAll("/var/run/wireguard", 0o755)
		l, err := net.Listen("unix", socketPath(name))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		code, out := runGotatun(t, n, nil, name)
		holder := fmt.Sprintf("(pid %d), which serves %s", os.Getpid(), socketPath(name))
		if code != 1 || !strings.Contains(out, "socket in use") || !strings.Contains(out, holder) {
			t.Fatalf("exit %d, %q; want %q", code, out, holder)
		}
		if _, err := os.Lstat(socketPath(name)); err != nil {
			t.Fatalf("other socket touched: %v", err)
		}
		if _, err := n.try("ip", "link", "show", name); err == nil {
			t.Fatal("interface left behind")
		}
		waitGoneProcs(t, n)
	})

	t.Run("replaces-stale-socket", func(t *testing.T) {
		n := newNetns(t)
		name := uniq("g")
		os.MkdirAll("/var/run/wireguard", 0o755)
		ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: socketPath(name), Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		ul.SetUnlinkOnClose(false)
		ul.Close()
		code, out := runGotatun(t, n, nil, name)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, out)
		}
		n.run("wg", "show", name)
		n.run("ip", "link", "del", name)
		waitGone(t, n, name)
	})

	t.Run("errors", func(t *testing.T) {
		n := newNetns(t)
		for _, c := range []struct {
			args []string
			code int
			want string
		}{
			{[]string{"bad/name"}, 1, `cannot create interface bad/name`},
			{[]string{"-f", "bad/name"}, 1, `cannot create interface bad/name`},
			{[]string{"waytoolongname1234"}, 1, `cannot create interface waytoolongname1234`},
			{[]string{"--bogus", "wg0"}, 2, "gotatun [-f|--foreground] [flags] IFNAME"},
			{[]string{"a", "b"}, 2, "Usage:"},
		} {
			code, out := runGotatun(t, n, nil, c.args...)
			if code != c.code || !strings.Contains(out, c.want) {
				t.Errorf("%q: exit %d, %q; want %d and %q", c.args, code, out, c.code, c.want)
			}
		}
		if len(n.pids()) != 0 {
			t.Fatalf("processes left: %v", n.pids())
		}
	})

	t.Run("not-root", func(t *testing.T) {
		name := uniq("g")
		for _, args := range [][]string{{name}, {"-f", name}} {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			cmd := exec.CommandContext(ctx, gotatunBin(), args...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			out, err := cmd.CombinedOutput()
			cancel()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "cannot create interface "+name) ||
				!(strings.Contains(string(out), "not permitted") || strings.Contains(string(out), "permission denied")) ||
				!strings.Contains(string(out), "needs root or CAP_NET_ADMIN, read and write access to /dev/net/tun") {
				t.Errorf("%q as nobody: %v, %q", args, err, out)
			}
		}
	})

	t.Run("unknown-log-level", func(t *testing.T) {
		n := newNetns(t)
		name := uniq("g")
		for _, args := range [][]string{{name}, {"-f", name}} {
			code, out := runGotatun(t, n, []string{"LOG_LEVEL=loud"}, args...)
			if code != 2 || !strings.Contains(out, `LOG_LEVEL="loud"`) {
				t.Errorf("%q: exit %d, %q", args, code, out)
			}
		}
		if _, err := n.try("ip", "link", "show", name); err == nil {
			t.Fatal("interface created")
		}
	})

	t.Run("mistyped-command", func(t *testing.T) {
		n := newNetns(t)
		for _, args := range [][]string{{"dmeo"}, {"-f", "daiat"}, {"Demo"}} {
			code, out := runGotatun(t, n, nil, args...)
			if code != 2 || !strings.Contains(out, "did you mean") {
				t.Errorf("%q: exit %d, %q", args, code, out)
			}
			name := args[len(args)-1]
			if _, err := n.try("ip", "link", "show", name); err == nil {
				t.Errorf("%q: interface %s created", args, name)
			}
			if _, err := os.Lstat(socketPath(name)); err == nil {
				t.Errorf("%q: socket %s created", args, socketPath(name))
			}
		}
		if len(n.pids()) != 0 {
			t.Fatalf("processes left: %v", n.pids())
		}
	})

	t.Run("help-and-version", func(t *testing.T) {
		for _, args := range [][]string{{"--help"}, {"-f", "--help"}} {
			code, out := runGotatun(t, nil, nil, args...)
			if code != 0 {
				t.Errorf("%q: exit %d", args, code)
			}
			for _, want := range []string{"LOG_LEVEL", "WG_PROCESS_FOREGROUND", "WG_TUN_FD", "WG_UAPI_FD", "GOMAXPROCS"} {
				if !strings.Contains(out, want) {
					t.Errorf("%q: help lacks %s", args, want)
				}
			}
		}
		code, out := runGotatun(t, nil, nil, "--version")
		if code != 0 || !strings.HasPrefix(out, "gotatun v") {
			t.Fatalf("--version: exit %d, %q", code, out)
		}
		// Built from a checkout (when the build stamps it), the revision
		// is shown.
		info, err := buildinfo.ReadFile(gotatunBin())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && !strings.Contains(out, "revision "+s.Value) {
				t.Errorf("--version %q lacks revision %s", out, s.Value)
			}
		}
	})

	t.Run("log-levels", func(t *testing.T) {
		n := newNetns(t)
		for _, c := range []struct {
			level   string
			visible bool
		}{{"verbose", true}, {"error", false}} {
			ctx, cancel := context.WithCancel(context.Background())
			name := uniq("g")
			cmd := n.command(ctx, gotatunBin(), "-f", name)
			cmd.Env = append(os.Environ(), "LOG_LEVEL="+c.level)
			out := &syncBuffer{}
			cmd.Stdout, cmd.Stderr = out, out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waitSocket(t, n, name)
			cmd.Process.Signal(syscall.SIGTERM)
			err := cmd.Wait()
			cancel()
			if err != nil {
				t.Fatalf("%s: %v", c.level, err)
			}
			if got := strings.Contains(out.String(), "device started"); got != c.visible {
				t.Errorf("LOG_LEVEL=%s: output %q", c.level, out.String())
			}
			// The log names the socket wg(8) uses, not the name it was
			// made under.
			if c.visible && (!strings.Contains(out.String(), "socket="+socketPath(name)) || strings.Contains(out.String(), ".tmp")) {
				t.Errorf("LOG_LEVEL=%s: start-up log does not name %s: %q", c.level, socketPath(name), out.String())
			}
		}
	})

	for _, fg := range []bool{true, false} {
		t.Run(fmt.Sprintf("inherited-descriptors/foreground=%v", fg), func(t *testing.T) {
			n := newNetns(t)
			name := uniq("g")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cmd := n.command(ctx, os.Args[0])
			cmd.Env = append(os.Environ(), helperEnv+"=fdexec", helperAddr+"="+name, "GOTATUN_E2E_BIN="+gotatunBin(),
				fmt.Sprintf("GOTATUN_E2E_FG=%v", fg))
			out := &syncBuffer{}
			cmd.Stdout, cmd.Stderr = out, out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer os.Remove(socketPath(name))
			if !fg {
				// The launcher returns once the daemon it detached is ready.
				if err := cmd.Wait(); err != nil {
					t.Fatalf("launcher: %v\n%s", err, out.String())
				}
			}
			waitSocket(t, n, name)
			n.run("wg", "set", name, "listen-port", "6000")
			if got := n.run("wg", "show", name, "listen-port"); strings.TrimSpace(got) != "6000" {
				t.Fatalf("listen-port %q", got)
			}
			n.run("ip", "link", "show", name)
			if fg {
				cmd.Process.Signal(syscall.SIGTERM)
				if err := cmd.Wait(); err != nil {
					t.Fatalf("exit: %v\n%s", err, out.String())
				}
			} else {
				n.run("ip", "link", "del", name)
				waitGoneProcs(t, n)
			}
		})
	}
}

func waitGoneProcs(t *testing.T, n *netns) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(n.pids()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("processes left: %v", n.pids())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitSocket waits until wg(8) reaches the interface's daemon.
func waitSocket(t *testing.T, n *netns, name string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := n.try("wg", "show", name); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no daemon answers for %s", name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// helperFDExec creates the TUN interface and the configuration socket
// itself, then becomes gotatun with them as WG_TUN_FD and WG_UAPI_FD: how
// a service manager hands them over.
func helperFDExec(name, bin string, foreground bool) error {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR, 0)
	if err != nil {
		return err
	}
	var ifr [unix.IFNAMSIZ + 64]byte
	copy(ifr[:], name)
	*(*uint16)(unsafe.Pointer(&ifr[unix.IFNAMSIZ])) = unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_VNET_HDR
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&ifr[0]))); errno != 0 {
		return fmt.Errorf("TUNSETIFF: %w", errno)
	}
	os.MkdirAll("/var/run/wireguard", 0o755)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: socketPath(name), Net: "unix"})
	if err != nil {
		return err
	}
	f, err := l.File()
	if err != nil {
		return err
	}
	// Out of the way first, so neither lands on the other's target.
	if err := unix.Dup2(fd, 100); err != nil {
		return err
	}
	if err := unix.Dup2(int(f.Fd()), 101); err != nil {
		return err
	}
	if err := unix.Dup2(100, 3); err != nil {
		return err
	}
	if err := unix.Dup2(101, 4); err != nil {
		return err
	}
	env := append(os.Environ(), "WG_TUN_FD=3", "WG_UAPI_FD=4", helperEnv+"=")
	args := []string{bin, name}
	if foreground {
		args = []string{bin, "-f", name}
	}
	return syscall.Exec(bin, args, env)
}
