//go:build linux

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWgQuick brings an interface up and down with
// WG_QUICK_USERSPACE_IMPLEMENTATION=gotatun wg-quick, gotatun on PATH.
func TestWgQuick(t *testing.T) {
	need(t, "wg-quick")
	na, nb := newNetns(t), newNetns(t)
	link := connect(t, na, nb, 77)
	b := startIface(t, nb, gotatun)

	name := uniq("q")
	priv := newKey(t)
	dir := t.TempDir()
	confPath := filepath.Join(dir, name+".conf")
	conf := fmt.Sprintf(`[Interface]
PrivateKey = %s
Address = %s/24, %s/64
ListenPort = %d
MTU = 1380

[Peer]
PublicKey = %s
AllowedIPs = %s/32, %s/128
Endpoint = %s:%d
`, priv.Base64(), innerA4, innerA6, portA, b.pub, innerB4, innerB6, link.v4B, portB)
	writeFile(t, confPath, conf)
	b.conf("setconf", b.confText(portB, peerConf{pub: priv.PublicKey(), allowedIPs: []string{innerA4.String() + "/32", innerA6.String() + "/128"}}))
	b.up(1420, innerB4.String()+"/24", innerB6.String()+"/64")

	wgQuick := func(verb string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		script := "exec wg-quick " + verb + " " + confPath
		if _, err := os.Stat("/sys/module/wireguard"); err == nil {
			// With WireGuard in the kernel wg-quick would use it: hide it.
			wrap := filepath.Join(dir, "bin")
			os.MkdirAll(wrap, 0o755)
			realIP, _ := exec.LookPath("ip")
			writeFile(t, filepath.Join(wrap, "ip"), "#!/bin/sh\ncase \"$*\" in *type\\ wireguard*) echo 'no kernel WireGuard here' >&2; exit 2;; esac\nexec "+realIP+" \"$@\"")
			os.Chmod(filepath.Join(wrap, "ip"), 0o755)
			script = "mount -t tmpfs none /sys/module && PATH=" + wrap + ":$PATH " + script
		}
		cmd := na.command(ctx, "sh", "-c", script)
		cmd.Env = append(os.Environ(), "PATH="+binDir+":"+os.Getenv("PATH"), "WG_QUICK_USERSPACE_IMPLEMENTATION=gotatun")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("wg-quick %s: %v\n%s", verb, err, out)
		}
		t.Logf("wg-quick %s:\n%s", verb, out)
	}

	wgQuick("up")
	if fi, err := os.Stat(socketPath(name)); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("no gotatun socket for %s: %v", name, err)
	}
	if len(na.pids()) == 0 {
		t.Fatal("no daemon left running after wg-quick up")
	}
	if addrs := na.run("ip", "addr", "show", "dev", name); !strings.Contains(addrs, innerA4.String()+"/24") || !strings.Contains(addrs, "mtu 1380") {
		t.Fatalf("interface not set up:\n%s", addrs)
	}
	ping(t, na, innerB4, 3)
	ping(t, na, innerB6, 3)
	ping(t, nb, innerA4, 3)
	if show := na.run("wg", "show", name); !strings.Contains(show, b.pub.String()) || !strings.Contains(show, "latest handshake") {
		t.Fatalf("wg show:\n%s", show)
	}

	wgQuick("down")
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := os.Lstat(socketPath(name))
		gone := errors.Is(err, os.ErrNotExist) && len(na.pids()) == 0
		if gone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after wg-quick down: socket %v, processes %v", err, na.pids())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := na.try("ip", "link", "show", name); err == nil {
		t.Fatal("interface still there after wg-quick down")
	}
}
