package multihop

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/gotatun/gotatun/device"
	"github.com/gotatun/gotatun/noise"
	"github.com/gotatun/gotatun/packet"
	"github.com/gotatun/gotatun/transport"
	"github.com/gotatun/gotatun/tun"
)

// world is a client, an entry relay and an exit relay on an in-memory
// network. The entry relay forwards what its tunnel delivers to the exit
// relay from its own address (source NAT), as a real relay does.
type world struct {
	client           *Client
	clientTUN        *tun.Memory
	entry, exit      *device.Device
	entryTUN, exTUN  *tun.Memory
	clientKey        noise.PrivateKey
	exitEndpoint     netip.AddrPort // exit relay, as the client addresses it
	natAddr          netip.AddrPort // entry relay's forwarding address
	inner, innerPeer netip.Addr     // client and far end inside the exit tunnel
	nw               *transport.Network
	entryPub         noise.PublicKey
	exitPub          noise.PublicKey
	clientOuter      netip.Addr // the client entry device's address
}

func key(t testing.TB, seed byte) noise.PrivateKey {
	k, err := noise.GeneratePrivateKey(newRand(seed))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func apply(t *testing.T, d *device.Device, priv noise.PrivateKey, port uint16, peer noise.PublicKey, ep netip.AddrPort, allowed ...string) {
	t.Helper()
	pc := device.PeerConfig{PublicKey: peer}
	if ep.IsValid() {
		pc.Endpoint = &ep
	}
	for _, a := range allowed {
		pc.AllowedIPs = append(pc.AllowedIPs, netip.MustParsePrefix(a))
	}
	cfg := device.Config{PrivateKey: &priv, Peers: []device.PeerConfig{pc}}
	if port != 0 {
		cfg.ListenPort = &port
	}
	if err := d.Apply(cfg); err != nil {
		t.Fatal(err)
	}
}

// newWorld builds the three parties; v6 selects IPv6 for the exit hop's
// outer packets and inside the exit tunnel.
func newWorld(t *testing.T, v6 bool) *world {
	nw := transport.NewNetwork()
	w := &world{clientKey: key(t, 1), nw: nw, clientOuter: netip.MustParseAddr("198.51.100.2")}
	entryKey, exitKey := key(t, 2), key(t, 3)
	w.entryPub, w.exitPub = entryKey.PublicKey(), exitKey.PublicKey()
	entryPublic := netip.MustParseAddrPort("192.0.2.1:51820")
	tunAddr := client4
	w.exitEndpoint, w.natAddr = relay4, netip.MustParseAddrPort("203.0.113.1:40000")
	w.inner, w.innerPeer = netip.MustParseAddr("10.65.0.2"), netip.MustParseAddr("10.65.0.1")
	if v6 {
		tunAddr = client6
		w.exitEndpoint, w.natAddr = relay6, netip.MustParseAddrPort("[2001:db8::1]:40000")
		w.inner, w.innerPeer = netip.MustParseAddr("fd00::2"), netip.MustParseAddr("fd00::1")
	}

	var err error
	w.entryTUN = tun.NewMemory("entry-relay", 1500, 1024)
	if w.entry, err = device.New(device.Options{TUN: w.entryTUN, Bind: nw.NewBind(entryPublic.Addr())}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.entry.Close() })
	w.exTUN = tun.NewMemory("exit-relay", 1500, 1024)
	if w.exit, err = device.New(device.Options{TUN: w.exTUN, Bind: nw.NewBind(w.exitEndpoint.Addr())}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.exit.Close() })

	w.clientTUN = tun.NewMemory("client", ExitMTU(0), 1024)
	w.client, err = New(Config{
		Entry: device.Options{Bind: nw.NewBind(w.clientOuter)},
		Exit:  device.Options{TUN: w.clientTUN},
		Addrs: []netip.Addr{client4, client6},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.client.Close() })

	cpub := w.clientKey.PublicKey()
	apply(t, w.entry, entryKey, entryPublic.Port(), cpub, netip.AddrPort{}, netip.PrefixFrom(tunAddr, tunAddr.BitLen()).String())
	apply(t, w.exit, exitKey, w.exitEndpoint.Port(), cpub, netip.AddrPort{}, netip.PrefixFrom(w.inner, w.inner.BitLen()).String())
	exitRelayPrefix := netip.PrefixFrom(w.exitEndpoint.Addr(), w.exitEndpoint.Addr().BitLen()).String()
	apply(t, w.client.Entry, w.clientKey, 0, entryKey.PublicKey(), entryPublic, exitRelayPrefix)
	apply(t, w.client.Exit, w.clientKey, 0, exitKey.PublicKey(), w.exitEndpoint, "0.0.0.0/0", "::/0")

	nat := nw.NewBind(w.natAddr.Addr())
	fns, _, err := nat.Open(w.natAddr.Port())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nat.Close() })
	clientSide := make(chan netip.AddrPort, 1)
	go forwardOut(w.entryTUN, nat, clientSide)
	go forwardBack(t, fns[0], w.entryTUN, clientSide)
	return w
}

// forwardOut sends the UDP datagrams the entry relay's tunnel delivers on
// from the NAT address, remembering the client's address and port.
func forwardOut(from *tun.Memory, nat transport.Bind, clientSide chan netip.AddrPort) {
	var last netip.AddrPort
	for pkt := range from.Outbound() {
		var src, dst netip.Addr
		var payload []byte
		if ip, err := packet.ParseIPv4(pkt); err == nil {
			src, dst, payload = ip.Src(), ip.Dst(), ip.Payload()
		} else if ip, err := packet.ParseIPv6(pkt); err == nil {
			src, dst, payload = ip.Src(), ip.Dst(), ip.Payload()
		}
		u, err := packet.ParseUDP(payload)
		if err != nil {
			continue
		}
		if c := netip.AddrPortFrom(src, u.SrcPort()); c != last {
			last = c
			select {
			case <-clientSide:
			default:
			}
			clientSide <- c
		}
		nat.Send([][]byte{u.Payload()}, transport.Endpoint{Dst: netip.AddrPortFrom(dst, u.DstPort())})
		from.Recycle(pkt)
	}
}

// forwardBack wraps what comes back to the NAT address for the client.
func forwardBack(t *testing.T, recv transport.ReceiveFunc, to *tun.Memory, clientSide chan netip.AddrPort) {
	bufs, sizes, eps := [][]byte{make([]byte, 2000)}, []int{0}, []transport.Endpoint{{}}
	var client netip.AddrPort
	for {
		n, err := recv(bufs, sizes, eps)
		if err != nil {
			return
		}
		select {
		case client = <-clientSide:
			clientSide <- client
		default:
		}
		for i := range n {
			if client.IsValid() {
				to.Inject(reply(t, eps[i].Dst, client, bufs[i][:sizes[i]]))
			}
		}
		bufs[0] = make([]byte, 2000)
	}
}

// udpPacket builds an inner UDP packet.
func udpPacket(t testing.TB, src, dst netip.Addr, payload []byte) []byte {
	return reply(t, netip.AddrPortFrom(src, 1111), netip.AddrPortFrom(dst, 2222), payload)
}

func expect(t *testing.T, m *tun.Memory, want []byte) {
	t.Helper()
	select {
	case got := <-m.Outbound():
		if !bytes.Equal(got, want) {
			t.Fatalf("got %x, want %x", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("packet did not arrive")
	}
}

func TestThroughBothRelays(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		name := map[bool]string{false: "IPv4", true: "IPv6"}[v6]
		t.Run(name, func(t *testing.T) {
			w := newWorld(t, v6)
			for i := range 3 {
				out := udpPacket(t, w.inner, w.innerPeer, []byte{'o', byte(i)})
				if err := w.clientTUN.Inject(out); err != nil {
					t.Fatal(err)
				}
				expect(t, w.exTUN, out)
				back := udpPacket(t, w.innerPeer, w.inner, []byte{'b', byte(i)})
				w.exTUN.Inject(back)
				expect(t, w.clientTUN, back)
			}
			// Largest inner packet the exit MTU allows.
			full := udpPacket(t, w.inner, w.innerPeer, make([]byte, ExitMTU(0)-28-20*btoi(v6)))
			if len(full) != ExitMTU(0) {
				t.Fatalf("full packet %d bytes", len(full))
			}
			w.clientTUN.Inject(full)
			expect(t, w.exTUN, full)
			// The exit relay sees the client at the entry relay's NAT
			// address, and the entry relay at its entry-tunnel address.
			st, _ := w.exit.PeerState(w.clientKey.PublicKey())
			if st.Endpoint != w.natAddr {
				t.Fatalf("exit relay sees the client at %v, want %v", st.Endpoint, w.natAddr)
			}
			ps := w.client.Pipe().Stats()
			if ps.Sent == 0 || ps.Received == 0 || ps.SendTooBig != 0 || ps.WrongPort != 0 {
				t.Fatalf("pipe stats %+v", ps)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestClientCloseEitherSide(t *testing.T) {
	for _, which := range []string{"entry", "exit", "client"} {
		t.Run(which, func(t *testing.T) {
			w := newWorld(t, false)
			switch which {
			case "entry":
				w.client.Entry.Close()
			case "exit":
				w.client.Exit.Close()
			default:
				w.client.Close()
			}
			select {
			case <-w.client.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("client did not stop")
			}
			if err := w.client.Pipe().Bind().Send([][]byte{{1}}, transport.Endpoint{Dst: relay4}); err == nil {
				t.Fatal("send to a closed pipe succeeded")
			}
			for range w.clientTUN.Events() { // closed with the exit device
			}
		})
	}
}

func TestClientSuspendResume(t *testing.T) {
	w := newWorld(t, false)
	roundTrip := func(tag byte) {
		t.Helper()
		out := udpPacket(t, w.inner, w.innerPeer, []byte{'o', tag})
		w.clientTUN.Inject(out)
		expect(t, w.exTUN, out)
		back := udpPacket(t, w.innerPeer, w.inner, []byte{'b', tag})
		w.exTUN.Inject(back)
		expect(t, w.clientTUN, back)
	}
	roundTrip(1)
	before, _ := w.client.Exit.PeerState(w.exitPub)
	if err := w.client.Suspend(); err != nil {
		t.Fatal(err)
	}
	if !w.client.Entry.Suspended() || !w.client.Exit.Suspended() {
		t.Fatal("not suspended")
	}
	// Handshake timestamps are whitened to about 17 ms, and the relays
	// take only strictly newer ones.
	time.Sleep(40 * time.Millisecond)
	if err := w.client.Resume(); err != nil {
		t.Fatal(err)
	}
	roundTrip(2)
	after, _ := w.client.Exit.PeerState(w.exitPub)
	if !after.LastHandshake.After(before.LastHandshake) {
		t.Fatalf("no fresh exit handshake after resume: %v, before %v", after.LastHandshake, before.LastHandshake)
	}
	if err := w.client.NetworkChanged(); err != nil {
		t.Fatal(err)
	}
	roundTrip(3)
}
