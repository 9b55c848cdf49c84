//go:build linux

package e2e

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// moveLink moves the interface name from one namespace to another and
// gives it its tunnel addresses there (a move drops them).
func moveLink(t *testing.T, from, to *netns, name string, addrs ...string) {
	t.Helper()
	from.run("ip", "link", "set", name, "netns", to.name)
	for _, a := range addrs {
		args := []string{"ip", "addr", "add", a, "dev", name}
		if strings.Contains(a, ":") {
			args = append(args, "nodad")
		}
		to.run(args...)
	}
	to.run("ip", "link", "set", name, "mtu", "1420", "up")
}

// TestNetnsMove is WireGuard's namespace integration: gotatun's interface
// is created in one namespace, where its UDP socket and configuration
// socket stay, and moved into another (a container), from which the
// tunnel carries its traffic; it can move on and back, and the daemon
// ends only when the interface is deleted, wherever it is then.
func TestNetnsMove(t *testing.T) {
	need(t)
	for _, peer := range []string{gotatun, wireguardGo} {
		t.Run("peer="+peer, func(t *testing.T) {
			p := newPair(t, pairOpts{implA: gotatun, implB: peer})
			ping(t, p.nb, innerA4, 3)
			name := p.a.name
			addrs := []string{innerA4.String() + "/24", innerA6.String() + "/64"}

			// Into a container namespace.
			c := newNetns(t)
			moveLink(t, p.na, c, name, addrs...)
			ping(t, c, innerB4, 3)
			ping(t, c, innerB6, 3)
			ping(t, p.nb, innerA4, 3)
			if _, err := p.na.try("ip", "link", "show", name); err == nil {
				t.Fatal("interface still in the namespace it left")
			}
			// wg(8) in the birth namespace still configures it, and the
			// UDP socket stayed there.
			if got := strings.TrimSpace(p.a.wg("show", name, "listen-port")); got != "51820" {
				t.Fatalf("listen-port %q", got)
			}
			if out := p.na.run("ss", "-Hunl", "sport", "= :51820"); !strings.Contains(out, "51820") {
				t.Fatalf("no UDP socket on 51820 in the birth namespace:\n%s", out)
			}
			if out, _ := c.try("ss", "-Hunl", "sport", "= :51820"); strings.Contains(out, "51820") {
				t.Fatalf("UDP socket in the container:\n%s", out)
			}
			p.a.wg("set", name, "peer", p.b.pub.String(), "persistent-keepalive", "25")
			if got := p.a.peer(p.b.pub).keepalive; got != "25" {
				t.Fatalf("keepalive %q", got)
			}

			// On to another, then back to where it was born.
			c2 := newNetns(t)
			moveLink(t, c, c2, name, addrs...)
			ping(t, c2, innerB4, 3)
			moveLink(t, c2, p.na, name, addrs...)
			ping(t, p.na, innerB4, 3)
			ping(t, p.nb, innerA6, 3)

			// Deleted in the container: the daemon ends cleanly and
			// removes its socket.
			moveLink(t, p.na, c, name)
			select {
			case <-p.a.exited:
				t.Fatalf("daemon exited after a move: %v\n%s", p.a.err, p.a.out.String())
			case <-time.After(200 * time.Millisecond):
			}
			c.run("ip", "link", "del", name)
			select {
			case <-p.a.exited:
			case <-time.After(10 * time.Second):
				t.Fatalf("daemon still running after its interface was deleted\n%s", p.a.out.String())
			}
			if p.a.err != nil {
				t.Fatalf("daemon exit: %v\n%s", p.a.err, p.a.out.String())
			}
			if _, err := os.Lstat(socketPath(name)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("socket left behind: %v", err)
			}
		})
	}
}
