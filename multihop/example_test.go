package multihop_test

import (
	"crypto/rand"
	"fmt"
	"net/netip"

	"github.com/gotatun/gotatun/device"
	"github.com/gotatun/gotatun/multihop"
	"github.com/gotatun/gotatun/noise"
	"github.com/gotatun/gotatun/transport"
	"github.com/gotatun/gotatun/tun"
)

// A multihop client: the exit device on a TUN, its UDP running through
// the entry device, which owns the real sockets. Here the TUN and the
// network are in memory; a program would use tun.CreateTUN and
// transport.NewDefaultBind.
func Example() {
	entryRelay, exitRelay := netip.MustParseAddrPort("192.0.2.1:51820"), netip.MustParseAddrPort("203.0.113.2:51820")
	entryRelayKey, _ := noise.GeneratePrivateKey(rand.Reader)
	exitRelayKey, _ := noise.GeneratePrivateKey(rand.Reader)

	c, err := multihop.New(multihop.Config{
		Entry: device.Options{Bind: transport.NewNetwork().NewBind(netip.MustParseAddr("198.51.100.2"))},
		Exit:  device.Options{TUN: tun.NewMemory("wg0", multihop.ExitMTU(1420), 0)},
		// The client's address inside the entry tunnel.
		Addrs:    []netip.Addr{netip.MustParseAddr("10.64.0.2")},
		EntryMTU: 1420,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	key, _ := noise.GeneratePrivateKey(rand.Reader)
	// The entry relay carries only traffic to the exit relay.
	err = c.Entry.Apply(device.Config{PrivateKey: &key, Peers: []device.PeerConfig{{
		PublicKey:  entryRelayKey.PublicKey(),
		Endpoint:   &entryRelay,
		AllowedIPs: []netip.Prefix{netip.PrefixFrom(exitRelay.Addr(), 32)},
	}}})
	if err != nil {
		fmt.Println(err)
		return
	}
	// The exit relay carries everything.
	err = c.Exit.Apply(device.Config{PrivateKey: &key, Peers: []device.PeerConfig{{
		PublicKey:  exitRelayKey.PublicKey(),
		Endpoint:   &exitRelay,
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")},
	}}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("entry MTU", c.Pipe().MTU(), "exit MTU", multihop.ExitMTU(1420))
	fmt.Println("peers:", len(c.Entry.State().Peers), len(c.Exit.State().Peers))
	// Output:
	// entry MTU 1420 exit MTU 1340
	// peers: 1 1
}
