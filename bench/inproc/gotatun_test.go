package inproc

import (
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/gotatun/gotatun/device"
	"github.com/gotatun/gotatun/device/allowedips"
	"github.com/gotatun/gotatun/noise"
	"github.com/gotatun/gotatun/transport"
	"github.com/gotatun/gotatun/tun"
)

// gotatunPair is an initiator and a responder handshake for each other.
type gotatunPair struct {
	idI, idR *noise.Identity
	hsI, hsR *noise.Handshake
}

func newGotatunPair(tb testing.TB) gotatunPair {
	k := privateKeys(tb, 2)
	var p gotatunPair
	p.idI, p.idR = noise.NewIdentity(k[0]), noise.NewIdentity(k[1])
	var err error
	if p.hsI, err = noise.NewHandshake(p.idI, p.idR.PublicKey(), noise.PresharedKey{}); err != nil {
		tb.Fatal(err)
	}
	if p.hsR, err = noise.NewHandshake(p.idR, p.idI.PublicKey(), noise.PresharedKey{}); err != nil {
		tb.Fatal(err)
	}
	return p
}

// gotatunHandshake runs one full handshake at now and returns both
// sessions.
func (p gotatunPair) handshake(tb testing.TB, now time.Time, r io.Reader) (*noise.Keypair, *noise.Keypair) {
	initMsg, err := p.hsI.CreateInitiation(now, 1, r)
	if err != nil {
		tb.Fatal(err)
	}
	lookup := func(pk noise.PublicKey) *noise.Handshake {
		if pk == p.idI.PublicKey() {
			return p.hsR
		}
		return nil
	}
	if _, err := noise.ConsumeInitiation(p.idR, &initMsg, lookup, now); err != nil {
		tb.Fatal(err)
	}
	resp, err := p.hsR.CreateResponse(now, 2, r)
	if err != nil {
		tb.Fatal(err)
	}
	if err := p.hsI.ConsumeResponse(&resp, now); err != nil {
		tb.Fatal(err)
	}
	kI, err := p.hsI.BeginSession(now)
	if err != nil {
		tb.Fatal(err)
	}
	kR, err := p.hsR.BeginSession(now)
	if err != nil {
		tb.Fatal(err)
	}
	return kI, kR
}

func benchHandshakeGotatun(b *testing.B) {
	p := newGotatunPair(b)
	r := seeded(11)
	// gotatun takes time as an argument: each handshake is 1 s after the
	// last, which satisfies both the timestamp and the flood checks.
	now := time.Unix(1_700_000_000, 0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		now = now.Add(time.Second)
		p.handshake(b, now, r)
	}
}

func gotatunKeypairs(b *testing.B) (*noise.Keypair, *noise.Keypair) {
	p := newGotatunPair(b)
	return p.handshake(b, time.Unix(1_700_000_000, 0), seeded(12))
}

func benchSealGotatun(b *testing.B) {
	kI, _ := gotatunKeypairs(b)
	buf := make([]byte, noise.MessageTransportOverhead+payloadSize)
	pt := buf[noise.MessageTransportHeaderSize : noise.MessageTransportHeaderSize+payloadSize]
	b.SetBytes(payloadSize)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ctr, ok := kI.NextCounter()
		if !ok {
			b.Fatal("send counter exhausted")
		}
		if kI.SealTransport(buf, pt, ctr) == nil {
			b.Fatal("seal failed")
		}
	}
}

func benchOpenGotatun(b *testing.B) {
	kI, kR := gotatunKeypairs(b)
	ctr, _ := kI.NextCounter()
	msg := kI.SealTransport(make([]byte, noise.MessageTransportOverhead+payloadSize), make([]byte, payloadSize), ctr)
	buf := make([]byte, len(msg))
	b.SetBytes(payloadSize)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		copy(buf, msg)
		pt, _, err := kR.OpenTransport(buf[noise.MessageTransportHeaderSize:noise.MessageTransportHeaderSize], buf)
		if err != nil || len(pt) != payloadSize {
			b.Fatalf("open: %v (%d bytes)", err, len(pt))
		}
	}
}

type routePeer struct{ id int }

func benchLookupGotatun(b *testing.B) {
	rs := routes()
	peers := make([]*routePeer, routePeers)
	for i := range peers {
		peers[i] = &routePeer{i}
	}
	t := allowedips.New[*routePeer]()
	for i, p := range rs.prefixes {
		t.Insert(p, peers[rs.owner[i]])
	}
	b.ReportAllocs()
	b.ResetTimer()
	hits := 0
	for i := 0; i < b.N; i++ {
		if _, ok := t.Lookup(rs.addrs[i&(routeAddrs-1)]); ok {
			hits++
		}
	}
	if b.N >= routeAddrs && hits == 0 {
		b.Fatal("no lookup hit")
	}
}

// newGotatunDevice starts a device on in-memory TUN and UDP with a private
// key.
func newGotatunDevice(b *testing.B, key noise.PrivateKey) *device.Device {
	d, err := device.New(device.Options{
		TUN:  tun.NewMemory("bench0", 1420, 64),
		Bind: transport.NewNetwork().NewBind(netip.MustParseAddr("192.0.2.1")),
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Apply(device.Config{PrivateKey: &key}); err != nil {
		d.Close()
		b.Fatal(err)
	}
	return d
}

// gotatunPeerConfigs configures peers [from, to) of n: a key, one /32 and
// an endpoint each, as a typical wg(8) configuration gives.
func gotatunPeerConfigs(pubs []noise.PublicKey, from, to int) []device.PeerConfig {
	pcs := make([]device.PeerConfig, 0, to-from)
	for i := from; i < to; i++ {
		ep := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), 51820)
		pcs = append(pcs, device.PeerConfig{
			PublicKey:  pubs[i],
			Endpoint:   &ep,
			AllowedIPs: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32)},
		})
	}
	return pcs
}

func benchIdleGotatun(b *testing.B) {
	n := *peersFlag
	priv := privateKeys(b, n+1)
	pubs := publicKeys(b, n+1)[1:]
	first := gotatunPeerConfigs(pubs, 0, n/10)
	rest := gotatunPeerConfigs(pubs, n/10, n)
	d := newGotatunDevice(b, priv[0])
	var r idleResult
	r.peers = n
	r.base = snapshot()
	if err := d.Apply(device.Config{Peers: first}); err != nil {
		b.Fatal(err)
	}
	r.tenth = snapshot()
	if err := d.Apply(device.Config{Peers: rest}); err != nil {
		b.Fatal(err)
	}
	r.full = snapshot()
	if got := len(d.State().Peers); got != n {
		b.Fatalf("device has %d peers, want %d", got, n)
	}
	d.Close()
	r.report(b)
}
