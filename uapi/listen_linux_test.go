package uapi

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestListenCreatesPrivateSocket(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wireguard")
	l, err := listenIn(dir, "wgtest0")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "wgtest0.sock")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want socket 0600", fi.Mode())
	}
	if got := l.Addr().String(); got != path {
		t.Errorf("Addr %q, want %q", got, path)
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o755 {
		t.Errorf("directory mode %v, want 0755", di.Mode().Perm())
	}

	// A second daemon for the same interface is refused while the first
	// answers.
	if _, err := listenIn(dir, "wgtest0"); !errors.Is(err, ErrInUse) {
		t.Fatalf("second listen: %v, want ErrInUse", err)
	}

	// It serves.
	done := make(chan error, 1)
	go func() { done <- Serve(l, &fakeDevice{}, nil) }()
	c := dial(t, path)
	if got := c.do("set=1\nlisten_port=4\n\n"); got != "errno=0\n\n" {
		t.Fatalf("answer %q", got)
	}

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket file left after Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestListenReplacesStaleSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "wgstale.sock")
	// A socket file nobody listens on, as a killed daemon leaves behind.
	old, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	old.SetUnlinkOnClose(false)
	old.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatal(err)
	}
	l, err := listenIn(dir, "wgstale")
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	defer l.Close()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestListenRefusesNonSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "wgfile.sock")
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := listenIn(dir, "wgfile"); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("got %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "x" {
		t.Fatal("regular file touched")
	}
}

func TestCloseLeavesReplacedSocket(t *testing.T) {
	dir := t.TempDir()
	l, err := listenIn(dir, "wgx")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "wgx.sock")
	// Another daemon took over the name (after deciding ours was stale).
	os.Remove(path)
	l2, err := listenIn(dir, "wgx")
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	l.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("closing the old listener removed the new socket: %v", err)
	}
}

func TestListenBadNames(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"", ".", "..", "a/b", "../etc", "wg 0", "wg:0", "abcdefghijklmnop"} {
		if _, err := listenIn(dir, name); err == nil {
			t.Errorf("name %q accepted", name)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Fatalf("files created: %v", entries)
	}
}

func TestListenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fd.sock")
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	f, err := ul.File()
	if err != nil {
		t.Fatal(err)
	}
	l, err := ListenFile(f)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- Serve(l, &fakeDevice{}, nil) }()
	c := dial(t, path)
	if got := c.do("get=1\n\n"); got != "errno=0\n\n" {
		t.Fatalf("got %q", got)
	}
	l.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Not a socket: an error, not a panic.
	r, w, _ := os.Pipe()
	defer w.Close()
	if _, err := ListenFile(r); err == nil {
		t.Fatal("pipe accepted as listener")
	}
}

// wg(8) deletes a socket that refuses connections. A socket must never be
// seen under its final name before it listens, or a wg(8) run at that
// moment deletes it.
func TestListenSurvivesProbing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "wgprobe.sock")
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			c, err := net.Dial("unix", path)
			if err == nil {
				c.Close()
			} else if errors.Is(err, syscall.ECONNREFUSED) {
				os.Remove(path)
			}
		}
	}()
	defer func() { close(stop); <-done }()
	for range 200 {
		l, err := listenIn(dir, "wgprobe")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(path); err != nil {
			t.Fatalf("socket deleted by a prober: %v", err)
		}
		l.Close()
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
}
