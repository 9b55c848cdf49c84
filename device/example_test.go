package device_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/gotatun/gotatun/device"
	"github.com/gotatun/gotatun/noise"
	"github.com/gotatun/gotatun/packet"
	"github.com/gotatun/gotatun/transport"
	"github.com/gotatun/gotatun/tun"
)

// Two devices in one process, joined by an in-memory UDP network, each on
// an in-memory TUN: a packet written into one comes out of the other.
func Example_memory() {
	network := transport.NewNetwork()
	start := func(addr string) (*device.Device, *tun.Memory, noise.PrivateKey) {
		key, _ := noise.GeneratePrivateKey(nil)
		t := tun.NewMemory("wg-"+addr, 1420, 64)
		d, err := device.New(device.Options{TUN: t, Bind: network.NewBind(netip.MustParseAddr(addr))})
		if err != nil {
			panic(err)
		}
		port := uint16(51820)
		if err := d.Apply(device.Config{PrivateKey: &key, ListenPort: &port}); err != nil {
			panic(err)
		}
		return d, t, key
	}
	a, tunA, keyA := start("192.0.2.1")
	defer a.Close()
	b, tunB, keyB := start("192.0.2.2")
	defer b.Close()

	// A knows where B is; B learns A's address from the handshake.
	endpointB := netip.MustParseAddrPort("192.0.2.2:51820")
	a.Apply(device.Config{Peers: []device.PeerConfig{{
		PublicKey: keyB.PublicKey(), Endpoint: &endpointB,
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.2/32")},
	}}})
	b.Apply(device.Config{Peers: []device.PeerConfig{{
		PublicKey:  keyA.PublicKey(),
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")},
	}}})

	// The first packet starts the handshake and goes out after it.
	// (Waiting for a handshake since before the packet: it may be done
	// before WaitHandshake is called.)
	sent := time.Now()
	tunA.Inject(udpPacket("10.0.0.1", "10.0.0.2", "hello through the tunnel"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.WaitHandshake(ctx, keyB.PublicKey(), sent); err != nil {
		panic(err)
	}
	select {
	case pkt := <-tunB.Outbound():
		src, _ := packet.Src(pkt)
		fmt.Printf("B got %q from %v\n", pkt[28:], src)
	case <-ctx.Done():
		fmt.Println("nothing arrived")
	}
	// Output: B got "hello through the tunnel" from 10.0.0.1
}

// udpPacket builds an IPv4 UDP packet.
func udpPacket(src, dst, payload string) []byte {
	p := make([]byte, 28+len(payload))
	p[0], p[8], p[9] = 0x45, 64, 17 // version and header length, TTL, UDP
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	binary.BigEndian.PutUint16(p[10:], ^packet.Checksum(p[:20], 0))
	binary.BigEndian.PutUint16(p[20:], 40000)
	binary.BigEndian.PutUint16(p[22:], 7)
	binary.BigEndian.PutUint16(p[24:], uint16(8+len(payload)))
	copy(p[28:], payload)
	return p
}
