package device

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	wgconn "golang.zx2c4.com/wireguard/conn"
	wgdevice "golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/tuntest"

	"github.com/gotatun/gotatun/noise"
	"github.com/gotatun/gotatun/transport"
	"github.com/gotatun/gotatun/tun"
)

// interop is one of our devices ("g", 10.1.0.1, fd01::1) and a
// wireguard-go device ("w", 10.1.0.2, fd01::2) talking over loopback UDP.
type interop struct {
	t      *testing.T
	clock  *FakeClock
	g      *Device
	gTUN   *tun.Memory
	gPriv  noise.PrivateKey
	gPort  uint16
	w      *wgdevice.Device
	wTUN   *tuntest.ChannelTUN
	wPriv  noise.PrivateKey
	wPort  uint16
	psk    noise.PresharedKey
	closed bool
}

func newInterop(t *testing.T, psk noise.PresharedKey, gKnowsEndpoint bool) *interop {
	t.Helper()
	it := &interop{t: t, clock: NewFakeClock(time.Now()), psk: psk}
	var err error
	if it.gPriv, err = noise.GeneratePrivateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	if it.wPriv, err = noise.GeneratePrivateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}

	it.wTUN = tuntest.NewChannelTUN()
	it.w = wgdevice.NewDevice(it.wTUN.TUN(), wgconn.NewStdNetBind(), wgdevice.NewLogger(wgdevice.LogLevelError, "wireguard-go: "))
	t.Cleanup(it.close)

	it.gTUN = tun.NewMemory("wg-interop", 1420, 1024)
	opts := Options{TUN: it.gTUN, Bind: transport.NewStdBind(), Clock: it.clock}
	if os.Getenv("DEVICE_TEST_LOG") != "" {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	it.g, err = New(opts)
	if err != nil {
		t.Fatal(err)
	}
	it.gPort = it.g.LocalPort()

	wcfg := fmt.Sprintf("private_key=%s\nlisten_port=0\nreplace_peers=true\npublic_key=%s\n", it.wPriv.Hex(), it.gPriv.PublicKey().Hex())
	if !psk.IsZero() {
		wcfg += "preshared_key=" + psk.Hex() + "\n"
	}
	wcfg += fmt.Sprintf("endpoint=127.0.0.1:%d\nallowed_ip=10.1.0.1/32\nallowed_ip=fd01::1/128\n", it.gPort)
	if err := it.w.IpcSet(wcfg); err != nil {
		t.Fatal(err)
	}
	if err := it.w.Up(); err != nil {
		t.Fatal(err)
	}
	it.wPort = it.wgListenPort()

	pc := PeerConfig{PublicKey: it.wPriv.PublicKey(), AllowedIPs: prefixes("10.1.0.2/32", "fd01::2/128")}
	if !psk.IsZero() {
		pc.PresharedKey = &psk
	}
	if gKnowsEndpoint {
		ep := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), it.wPort)
		pc.Endpoint = &ep
	}
	if err := it.g.Apply(Config{PrivateKey: &it.gPriv, Peers: []PeerConfig{pc}}); err != nil {
		t.Fatal(err)
	}
	return it
}

func (it *interop) close() {
	if it.closed {
		return
	}
	it.closed = true
	it.g.Close()
	it.w.Close()
}

func (it *interop) wgListenPort() uint16 {
	it.t.Helper()
	s, err := it.w.IpcGet()
	if err != nil {
		it.t.Fatal(err)
	}
	for _, line := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(line, "listen_port="); ok {
			p, err := strconv.Atoi(v)
			if err != nil {
				it.t.Fatal(err)
			}
			return uint16(p)
		}
	}
	it.t.Fatal("wireguard-go reports no listen port")
	return 0
}

func (it *interop) peer() *Peer {
	return it.g.peer(it.wPriv.PublicKey())
}

// toW sends a packet from our side and checks wireguard-go delivers it.
func (it *interop) toW(pkt []byte) {
	it.t.Helper()
	if err := it.gTUN.Inject(pkt); err != nil {
		it.t.Fatal(err)
	}
	it.expectAtW(pkt)
}

func (it *interop) expectAtW(pkt []byte) {
	it.t.Helper()
	select {
	case got := <-it.wTUN.Inbound:
		if !bytes.Equal(got, pkt) {
			it.t.Fatalf("wireguard-go got %x, want %x", got, pkt)
		}
	case <-time.After(waitTimeout):
		it.t.Fatal("wireguard-go received nothing")
	}
}

// toG sends a packet from wireguard-go and checks our side delivers it.
func (it *interop) toG(pkt []byte) {
	it.t.Helper()
	select {
	case it.wTUN.Outbound <- pkt:
	case <-time.After(waitTimeout):
		it.t.Fatal("wireguard-go does not read its TUN")
	}
	select {
	case got := <-it.gTUN.Outbound():
		if !bytes.Equal(got, pkt) {
			it.t.Fatalf("we got %x, want %x", got, pkt)
		}
	case <-time.After(waitTimeout):
		it.t.Fatal("we received nothing from wireguard-go")
	}
}

func (it *interop) exchange(tag string) {
	it.t.Helper()
	it.toW(ipv4Packet("10.1.0.1", "10.1.0.2", []byte("g to w "+tag)))
	it.toG(ipv4Packet("10.1.0.2", "10.1.0.1", []byte("w to g "+tag)))
	big := bytes.Repeat([]byte(tag), 1300/len(tag))
	it.toW(ipv6Packet("fd01::1", "fd01::2", big))
	it.toG(ipv6Packet("fd01::2", "fd01::1", big))
}

func TestInteropWeInitiate(t *testing.T) {
	it := newInterop(t, noise.PresharedKey{}, true)
	it.exchange("ours")
	if !it.peer().keypairs.Current().IsInitiator {
		t.Fatal("we should be the initiator")
	}
	for i := range 50 {
		it.toW(ipv4Packet("10.1.0.1", "10.1.0.2", []byte(fmt.Sprintf("burst %d", i))))
	}
}

func TestInteropTheyInitiate(t *testing.T) {
	it := newInterop(t, noise.PresharedKey{}, false)
	it.toG(ipv4Packet("10.1.0.2", "10.1.0.1", []byte("first from wireguard-go")))
	it.exchange("theirs")
	if it.peer().keypairs.Current().IsInitiator {
		t.Fatal("wireguard-go should be the initiator")
	}
	if got := it.g.endpointOf(it.wPriv.PublicKey()); got.Port() != it.wPort {
		t.Fatalf("learned endpoint %v, want port %d", got, it.wPort)
	}
}

func TestInteropPresharedKey(t *testing.T) {
	psk := noise.PresharedKey{}
	rand.Read(psk[:])
	it := newInterop(t, psk, true)
	it.exchange("psk")
}

func TestInteropRoaming(t *testing.T) {
	it := newInterop(t, noise.PresharedKey{}, true)
	it.exchange("before")
	// wireguard-go re-creates its sockets on a new port.
	if err := it.w.IpcSet("listen_port=0\n"); err != nil {
		t.Fatal(err)
	}
	old := it.wPort
	it.wPort = it.wgListenPort()
	if it.wPort == old {
		// listen_port=0 may pick the same port; force another.
		if err := it.w.IpcSet(fmt.Sprintf("listen_port=%d\n", old+1)); err != nil {
			t.Skipf("cannot move wireguard-go to another port: %v", err)
		}
		it.wPort = it.wgListenPort()
	}
	it.toG(ipv4Packet("10.1.0.2", "10.1.0.1", []byte("from a new port")))
	if got := it.g.endpointOf(it.wPriv.PublicKey()); got.Port() != it.wPort {
		t.Fatalf("endpoint %v, want port %d", got, it.wPort)
	}
	it.toW(ipv4Packet("10.1.0.1", "10.1.0.2", []byte("to the new port")))
}

func TestInteropRekey(t *testing.T) {
	it := newInterop(t, noise.PresharedKey{}, true)
	it.exchange("before")
	p := it.peer()
	old := p.keypairs.Current()
	inits := it.g.stats.initiationsSent.Load()
	it.clock.Advance(noise.RekeyAfterTime)
	// Sending on a keypair this old makes us start a new handshake with
	// the real wireguard-go; the packet still goes out on the old one.
	it.toW(ipv4Packet("10.1.0.1", "10.1.0.2", []byte("old keys")))
	// wireguard-go refuses initiations from one peer less than 20 ms
	// (real time) apart; then our retransmission after Rekey-Timeout
	// (fake time) gets through, as it would in real life.
	it.waitSession(old)
	if it.g.stats.initiationsSent.Load() <= inits {
		t.Fatal("no new initiation")
	}
	it.exchange("after")
	// Well past Reject-After-Time only the new session is used.
	it.clock.Advance(noise.RejectAfterTime - noise.RekeyAfterTime + time.Second)
	it.exchange("rejected old")
}

// waitSession waits for a session other than old, retransmitting our
// initiation now and then.
func (it *interop) waitSession(old *noise.Keypair) {
	it.t.Helper()
	p := it.peer()
	deadline := time.Now().Add(2 * waitTimeout)
	for p.keypairs.Current() == old {
		if time.Now().After(deadline) {
			it.t.Fatal("no new session with wireguard-go")
		}
		for range 100 {
			if p.keypairs.Current() != old {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		it.clock.Advance(noise.RekeyTimeout + maxJitter)
	}
}

func TestInteropCookieFromUs(t *testing.T) {
	it := newInterop(t, noise.PresharedKey{}, false)
	it.g.forceUnderLoad.Store(true)
	// wireguard-go initiates, gets our cookie reply and retransmits with
	// mac2 after its Rekey-Timeout (real time, about 5 s).
	it.toG(ipv4Packet("10.1.0.2", "10.1.0.1", []byte("via cookie")))
	if it.g.stats.cookiesSent.Load() == 0 {
		t.Fatal("no cookie reply was sent")
	}
	it.exchange("after cookie")
}

func TestInteropCookieFromThem(t *testing.T) {
	it := newInterop(t, noise.PresharedKey{}, true)
	// Flood wireguard-go from 127.0.0.2 (another rate-limit bucket than
	// ours) with initiations carrying a valid mac1, so its handshake queue
	// fills and it demands cookies.
	fc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Skipf("cannot bind 127.0.0.2: %v", err)
	}
	defer fc.Close()
	wAddr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(it.wPort)}
	gen := noise.NewCookieGenerator(it.wPriv.PublicKey())
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		msgs := make([][]byte, 200)
		for i := range msgs {
			msgs[i] = floodInitiation(it.wPriv.PublicKey(), gen, time.Now())
		}
		// Bursts: enough to push the queue past an eighth (wireguard-go
		// then stays under load for a second), not enough to fill it, so
		// our own initiations are not dropped.
		for {
			for _, m := range msgs {
				if _, err := fc.WriteToUDP(m, wAddr); err != nil && !errors.Is(err, net.ErrClosed) {
					t.Log("flood:", err)
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	eventually(t, "wireguard-go under load", it.w.IsUnderLoad)

	pkt := ipv4Packet("10.1.0.1", "10.1.0.2", []byte("via their cookie"))
	if err := it.gTUN.Inject(pkt); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case got := <-it.wTUN.Inbound:
			if !bytes.Equal(got, pkt) {
				t.Fatalf("wireguard-go got %x", got)
			}
			if it.g.stats.cookiesReceived.Load() == 0 {
				t.Fatal("handshake completed without a cookie: wireguard-go was not under load")
			}
			close(stop)
			wg.Wait()
			stop = make(chan struct{})
			it.exchange("after their cookie")
			return
		case <-time.After(2 * time.Second):
		}
		if time.Now().After(deadline) {
			st := &it.g.stats
			t.Fatalf("no handshake through wireguard-go's cookie (cookies received %d, datagrams %d, unknown index %d, initiations %d, bad %d, handshake drops %d)",
				st.cookiesReceived.Load(), st.rxDatagrams.Load(), st.unknownIndex.Load(), st.initiationsSent.Load(), st.badInbound.Load(), st.handshakeDropped.Load())
		}
		// Try again (with mac2 once we hold a cookie): wireguard-go drops
		// what does not fit in its full queue. A fresh attempt rather than
		// a retransmission, so that we never give up.
		it.clock.Advance(noise.RekeyTimeout)
		it.peer().initiate(false)
	}
}
