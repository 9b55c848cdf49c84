//go:build linux

package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// buildCAPITest builds libgotatun with its test hook and the C test
// program against it, into dir.
func buildCAPITest(t *testing.T, dir string) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	lib := filepath.Join(dir, "libgotatun.so")
	build := exec.Command("go", "build", "-tags", "gotatun_debug", "-buildmode=c-shared", "-o", lib, "./capi")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building libgotatun: %v\n%s", err, out)
	}
	prog := filepath.Join(dir, "capi_test")
	cc := exec.Command("gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-I", filepath.Join(root, "capi"),
		"-o", prog, filepath.Join(root, "capi", "test", "capi_test.c"),
		"-L", dir, "-lgotatun", "-Wl,-rpath,"+dir)
	if out, err := cc.CombinedOutput(); err != nil {
		t.Fatalf("building the C test: %v\n%s", err, out)
	}
	return prog
}

// TestCAPI runs the C test program (capi/test/capi_test.c) against
// wireguard-go: it opens its own TUN in a namespace and drives the tunnel
// through libgotatun's C functions only.
func TestCAPI(t *testing.T) {
	need(t, "gcc")
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	prog := buildCAPITest(t, dir)

	na, nb := newNetns(t), newNetns(t)
	link := connect(t, na, nb, 79)
	peer := startIface(t, nb, wireguardGo)
	key := newKey(t)
	const local, remote = "10.201.0.1", "10.201.0.2"
	peer.conf("setconf", peer.confText(portB, peerConf{pub: key.PublicKey(), allowedIPs: []string{local + "/32"}}))
	peer.up(1420, remote+"/24")

	conf := fmt.Sprintf("set=1\nprivate_key=%s\nlisten_port=0\npublic_key=%s\nendpoint=%s\nallowed_ip=%s/32\n",
		key.Hex(), peer.pub.Hex(), netip.AddrPortFrom(link.v4B, portB), remote)
	confFile := filepath.Join(dir, "tunnel.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := na.command(ctx, prog, uniq("gc"), confFile, remote, local+"/24", peer.pub.Hex()).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "\nPASS\n") {
		t.Fatalf("C test: %v\n%s", err, out)
	}
	t.Logf("C test output:\n%s", out)
}
