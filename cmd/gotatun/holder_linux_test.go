package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestTunHolders(t *testing.T) {
	proc := t.TempDir()
	mk := func(pid int, comm string, fds map[string]string) {
		dir := filepath.Join(proc, strconv.Itoa(pid))
		for _, sub := range []string{"fd", "fdinfo"} {
			if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if comm != "" {
			os.WriteFile(filepath.Join(dir, "comm"), []byte(comm+"\n"), 0o644)
		}
		for fd, iff := range fds {
			target := "/dev/net/tun"
			if iff == "" {
				target = "socket:[1234]"
			}
			if err := os.Symlink(target, filepath.Join(dir, "fd", fd)); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, "fdinfo", fd), []byte("pos:\t0\nflags:\t02\nmnt_id:\t25\nino:\t1\niff:\t"+iff+"\n"), 0o644)
		}
	}
	mk(100, "gotatun", map[string]string{"3": "", "7": "wg0"})
	mk(200, "", map[string]string{"5": "wg0"})
	mk(300, "wireguard-go", map[string]string{"5": "wg1"})
	mk(os.Getpid(), "self", map[string]string{"9": "wg0"})
	os.MkdirAll(filepath.Join(proc, "self"), 0o755)
	got := strings.Join(tunHolders("wg0", proc), ", ")
	if got != "gotatun (pid 100), pid 200" {
		t.Errorf("holders of wg0: %q", got)
	}
	if got := tunHolders("wg9", proc); len(got) != 0 {
		t.Errorf("holders of wg9: %q", got)
	}
	if got := tunHolders("wg0", filepath.Join(proc, "missing")); len(got) != 0 {
		t.Errorf("holders without proc: %q", got)
	}
}

func TestSocketHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wgx.sock")
	if h := socketHolder(path); h != "" {
		t.Errorf("no socket: %q", h)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	want := fmt.Sprintf("(pid %d), which serves %s", os.Getpid(), path)
	if h := socketHolder(path); !strings.Contains(h, want) {
		t.Errorf("got %q, want %q", h, want)
	}
	if h := holderHint("wgx", syscall.EPERM); h != "" {
		t.Errorf("EPERM: %q", h)
	}
}
