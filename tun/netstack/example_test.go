package netstack_test

import (
	"fmt"
	"io"
	"net/netip"

	"github.com/gotatun/gotatun/device"
	"github.com/gotatun/gotatun/noise"
	"github.com/gotatun/gotatun/transport"
	"github.com/gotatun/gotatun/tun/netstack"
)

// A rootless tunnel: two devices in one process, each on a userspace
// TCP/IP stack instead of a TUN. The client dials a TCP server that
// listens on the other stack, and the connection goes through WireGuard.
func Example() {
	network := transport.NewNetwork()
	start := func(bindAddr, tunnelAddr string) (*device.Device, *netstack.Stack, noise.PrivateKey) {
		st, err := netstack.New(netstack.Config{Addresses: []netip.Prefix{netip.MustParsePrefix(tunnelAddr)}})
		if err != nil {
			panic(err)
		}
		key, _ := noise.GeneratePrivateKey(nil)
		d, err := device.New(device.Options{TUN: st, Bind: network.NewBind(netip.MustParseAddr(bindAddr))})
		if err != nil {
			panic(err)
		}
		port := uint16(51820)
		if err := d.Apply(device.Config{PrivateKey: &key, ListenPort: &port}); err != nil {
			panic(err)
		}
		return d, st, key
	}
	client, clientNet, clientKey := start("192.0.2.1", "10.0.0.1/32")
	defer client.Close()
	server, serverNet, serverKey := start("192.0.2.2", "10.0.0.2/32")
	defer server.Close()

	serverEndpoint := netip.MustParseAddrPort("192.0.2.2:51820")
	if err := client.Apply(device.Config{Peers: []device.PeerConfig{{
		PublicKey: serverKey.PublicKey(), Endpoint: &serverEndpoint,
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.2/32")},
	}}}); err != nil {
		panic(err)
	}
	if err := server.Apply(device.Config{Peers: []device.PeerConfig{{
		PublicKey:  clientKey.PublicKey(),
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")},
	}}}); err != nil {
		panic(err)
	}

	ln, err := serverNet.Listen("tcp", "10.0.0.2:80")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "hello from 10.0.0.2")
	}()

	conn, err := clientNet.Dial("tcp", "10.0.0.2:80")
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	reply, err := io.ReadAll(conn)
	if err != nil {
		panic(err)
	}
	local, _ := netip.ParseAddrPort(conn.LocalAddr().String())
	fmt.Printf("%s, to %v\n", reply, local.Addr())
	// Output: hello from 10.0.0.2, to 10.0.0.1
}
