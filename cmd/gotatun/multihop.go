package main

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/gotatun/gotatun/multihop"
)

// Bounds of --entry-mtu: the exit interface gets the entry MTU less one
// hop's worst-case overhead, and needs IPv4's minimum of 576 at least.
const (
	minEntryMTU = 576 + multihop.Overhead6
	maxEntryMTU = 65535
)

// entryArgs are the multihop flags: --entry, --entry-address and
// --entry-mtu.
type entryArgs struct {
	name  string
	addrs [2]netip.Addr // IPv4, IPv6; invalid if not given
	mtu   int
}

// define adds the multihop flags to fs.
func (e *entryArgs) define(fs *flag.FlagSet) {
	fs.StringVar(&e.name, "entry", "", "multihop: run IFNAME inside the entry device `ENTRYNAME`")
	fs.Func("entry-address", "multihop: the client's `ADDR[,ADDR6]` in the entry tunnel", e.setAddrs)
	fs.Func("entry-mtu", "multihop: the entry device's `MTU` (1420); IFNAME gets 80 less", e.setMTU)
}

func (e *entryArgs) setAddrs(s string) error {
	e.addrs = [2]netip.Addr{}
	for _, f := range strings.Split(s, ",") {
		a, err := netip.ParseAddr(strings.TrimSpace(f))
		if err != nil {
			return fmt.Errorf("%q is not an IP address", f)
		}
		a = a.Unmap()
		if a.IsUnspecified() || a.IsMulticast() || a.Zone() != "" {
			return fmt.Errorf("%v is not a unicast address", a)
		}
		i := 0
		if a.Is6() {
			i = 1
		}
		if e.addrs[i].IsValid() {
			return fmt.Errorf("two addresses of one family: %v and %v", e.addrs[i], a)
		}
		e.addrs[i] = a
	}
	return nil
}

func (e *entryArgs) setMTU(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < minEntryMTU || n > maxEntryMTU {
		return fmt.Errorf("%q: want a number from %d to %d", s, minEntryMTU, maxEntryMTU)
	}
	e.mtu = n
	return nil
}

// check validates the multihop flags against the interface name.
func (e *entryArgs) check(ifname string) error {
	if e.name == "" {
		if e.addrs != [2]netip.Addr{} || e.mtu != 0 {
			return errors.New("--entry-address and --entry-mtu need --entry")
		}
		return nil
	}
	if e.name == ifname {
		return fmt.Errorf("--entry %s: the entry device needs a name of its own", e.name)
	}
	if err := checkIfname(e.name); err != nil {
		return fmt.Errorf("--entry: %w", err)
	}
	if e.addrs == [2]netip.Addr{} {
		return errors.New("--entry needs --entry-address, the client's address inside the entry tunnel")
	}
	return nil
}

// list returns the entry-tunnel addresses given.
func (e *entryArgs) list() []netip.Addr {
	var l []netip.Addr
	for _, a := range e.addrs {
		if a.IsValid() {
			l = append(l, a)
		}
	}
	return l
}

// exitMTU is the MTU the exit interface starts with.
func (e *entryArgs) exitMTU() int {
	mtu := e.mtu
	if mtu == 0 {
		mtu = multihop.DefaultMTU
	}
	return multihop.ExitMTU(mtu)
}

const multihopHelp = `Multihop: with --entry ENTRYNAME --entry-address ADDR[,ADDR6], IFNAME is the
exit hop and its UDP traffic runs inside a second device, ENTRYNAME, which
has no interface and owns the real UDP sockets. Both are plain WireGuard
devices configured with wg(8) through their own sockets:
  gotatun --entry wg0-entry --entry-address 10.64.0.2 wg0
  wg set wg0-entry private-key KEY peer ENTRY_RELAY_KEY \
      endpoint relay1.example:51820 allowed-ips EXIT_RELAY_IP/32
  wg set wg0 private-key KEY peer EXIT_RELAY_KEY \
      endpoint EXIT_RELAY_IP:51820 allowed-ips 0.0.0.0/0
The entry relay sees who but not what; the exit relay what but not who.
Deleting IFNAME, SIGINT or SIGTERM stops both and removes both sockets.
`
