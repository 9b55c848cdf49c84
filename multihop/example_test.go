package multihop_test

import (
	"crypto/rand"
	"encoding/binary"
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

// The pipe alone: what the exit device sends comes out of the entry
// device's TUN side as an IP/UDP packet from the entry-tunnel address,
// and a reply written there comes back as a datagram.
func ExamplePipe() {
	p, err := multihop.NewPipe(multihop.PipeConfig{Addrs: []netip.Addr{netip.MustParseAddr("10.64.0.2")}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()
	recv, port, _ := p.Bind().Open(40000) // the exit device does this
	exitRelay := netip.MustParseAddrPort("203.0.113.2:51820")

	// The exit device sends a datagram...
	p.Bind().Send([][]byte{[]byte("hello")}, transport.Endpoint{Dst: exitRelay})
	// ...and the entry device reads it from its TUN.
	bufs, sizes := [][]byte{make([]byte, 1500)}, []int{0}
	p.TUN().Read(bufs, sizes, 0)
	pkt := bufs[0][:sizes[0]]
	fmt.Printf("IPv%d %d bytes, %v → %v, UDP %d → %d\n", pkt[0]>>4, len(pkt),
		netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20])),
		binary.BigEndian.Uint16(pkt[20:]), binary.BigEndian.Uint16(pkt[22:]))

	// The reply, as the entry device decrypts it: the same packet with
	// addresses and ports swapped (checksums are not needed on this side).
	reply := append([]byte(nil), pkt...)
	copy(reply[12:16], pkt[16:20])
	copy(reply[16:20], pkt[12:16])
	copy(reply[20:22], pkt[22:24])
	copy(reply[22:24], pkt[20:22])
	p.TUN().Write([][]byte{reply}, 0)
	eps := []transport.Endpoint{{}}
	n, _ := recv[0](bufs, sizes, eps)
	fmt.Printf("%d datagram %q from %v to port %d\n", n, bufs[0][:sizes[0]], eps[0].Dst, port)
	// Output:
	// IPv4 33 bytes, 10.64.0.2 → 203.0.113.2, UDP 40000 → 51820
	// 1 datagram "hello" from 203.0.113.2:51820 to port 40000
}
