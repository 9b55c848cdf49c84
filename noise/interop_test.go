package noise

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/blake2s"
	wgconn "golang.zx2c4.com/wireguard/conn"
	wgdevice "golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/tuntest"
)

// This file checks the protocol against wireguard-go at the message level:
// its Device runs over an in-memory TUN and a fake UDP bind, handshake
// messages are exchanged through its exported handshake functions as wire
// bytes, and transport messages go through its real data path.

type fakeEndpoint struct{ ap netip.AddrPort }

func (e fakeEndpoint) ClearSrc()           {}
func (e fakeEndpoint) SrcToString() string { return "" }
func (e fakeEndpoint) DstToString() string { return e.ap.String() }
func (e fakeEndpoint) DstToBytes() []byte  { b, _ := e.ap.MarshalBinary(); return b }
func (e fakeEndpoint) DstIP() netip.Addr   { return e.ap.Addr() }
func (e fakeEndpoint) SrcIP() netip.Addr   { return netip.Addr{} }

// fakeBind is a conn.Bind whose received datagrams come from in and whose
// sent datagrams go to out.
type fakeBind struct {
	in   chan []byte
	out  chan []byte
	from fakeEndpoint

	mu     sync.Mutex
	closed chan struct{}
}

func newFakeBind() *fakeBind {
	return &fakeBind{
		in:   make(chan []byte, 16),
		out:  make(chan []byte, 64),
		from: fakeEndpoint{netip.MustParseAddrPort("192.0.2.2:51820")},
	}
}

func (b *fakeBind) Open(port uint16) ([]wgconn.ReceiveFunc, uint16, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	closed := make(chan struct{})
	b.closed = closed
	recv := func(packets [][]byte, sizes []int, eps []wgconn.Endpoint) (int, error) {
		select {
		case <-closed:
			return 0, net.ErrClosed
		case d := <-b.in:
			sizes[0] = copy(packets[0], d)
			eps[0] = b.from
			return 1, nil
		}
	}
	return []wgconn.ReceiveFunc{recv}, 51820, nil
}

func (b *fakeBind) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed != nil {
		close(b.closed)
		b.closed = nil
	}
	return nil
}

func (b *fakeBind) SetMark(uint32) error { return nil }

func (b *fakeBind) Send(bufs [][]byte, ep wgconn.Endpoint) error {
	for _, buf := range bufs {
		select {
		case b.out <- append([]byte(nil), buf...):
		default:
		}
	}
	return nil
}

func (b *fakeBind) ParseEndpoint(s string) (wgconn.Endpoint, error) {
	ap, err := netip.ParseAddrPort(s)
	return fakeEndpoint{ap}, err
}

func (b *fakeBind) BatchSize() int { return 1 }

var (
	theirAddr = netip.MustParseAddr("10.0.0.1")
	ourAddr   = netip.MustParseAddr("10.0.0.2")
)

// wgPeer is a running wireguard-go device that has us as its only peer.
type wgPeer struct {
	dev  *wgdevice.Device
	tun  *tuntest.ChannelTUN
	bind *fakeBind
	peer *wgdevice.Peer
	pub  PublicKey
}

func newWGPeer(t *testing.T, their PrivateKey, our PublicKey, psk PresharedKey) *wgPeer {
	t.Helper()
	w := &wgPeer{tun: tuntest.NewChannelTUN(), bind: newFakeBind(), pub: their.PublicKey()}
	w.dev = wgdevice.NewDevice(w.tun.TUN(), w.bind, wgdevice.NewLogger(wgdevice.LogLevelSilent, ""))
	t.Cleanup(w.dev.Close)
	cfg := fmt.Sprintf("private_key=%s\npublic_key=%s\npreshared_key=%s\nendpoint=%s\nallowed_ip=%s/32\n",
		their.Hex(), our.Hex(), psk.Hex(), w.bind.from.ap, ourAddr)
	if err := w.dev.IpcSet(cfg); err != nil {
		t.Fatalf("IpcSet: %v", err)
	}
	if err := w.dev.Up(); err != nil {
		t.Fatalf("Up: %v", err)
	}
	w.peer = w.dev.LookupPeer(wgdevice.NoisePublicKey(our))
	if w.peer == nil {
		t.Fatal("LookupPeer found nothing")
	}
	return w
}

// toWire marshals one of wireguard-go's message structs.
func toWire(t *testing.T, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := binary.Write(&b, binary.LittleEndian, v); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func fromWire(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := binary.Read(bytes.NewReader(b), binary.LittleEndian, v); err != nil {
		t.Fatal(err)
	}
}

// sendToThem seals payload with k, feeds it to the device and waits for the
// plaintext on its TUN.
func (w *wgPeer) sendToThem(t *testing.T, k *Keypair, payload []byte) {
	t.Helper()
	ctr, ok := k.NextCounter()
	if !ok {
		t.Fatal("NextCounter refused")
	}
	buf := make([]byte, MessageTransportOverhead+len(payload))
	w.bind.in <- k.SealTransport(buf, payload, ctr)
	select {
	case got := <-w.tun.Inbound:
		if !bytes.Equal(got, payload) {
			t.Fatalf("wireguard-go decrypted %x, want %x", got, payload)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("wireguard-go did not deliver our transport message")
	}
}

// receiveFromThem writes payload to the device's TUN and opens the transport
// message it sends.
func (w *wgPeer) receiveFromThem(t *testing.T, k *Keypair, payload []byte) {
	t.Helper()
	w.tun.Outbound <- payload
	deadline := time.After(10 * time.Second)
	for {
		select {
		case msg := <-w.bind.out:
			if typ, _ := MessageType(msg); typ != MessageTransportType {
				continue // a handshake message of its own timers
			}
			pt, ctr, err := k.OpenTransport(nil, msg)
			if err != nil {
				t.Fatalf("opening wireguard-go's transport message: %v", err)
			}
			if !k.AcceptCounter(ctr) {
				t.Fatalf("counter %d refused", ctr)
			}
			if len(pt) == 0 {
				continue // keepalive
			}
			if len(pt) != PaddedLen(len(payload), 1420) || !bytes.Equal(pt[:len(payload)], payload) || !isZero(pt[len(payload):]) {
				t.Fatalf("wireguard-go sent %x, want %x plus zero padding", pt, payload)
			}
			return
		case <-deadline:
			t.Fatal("wireguard-go sent no transport message")
		}
	}
}

func ping(dst, src netip.Addr) []byte { return tuntest.Ping(dst, src) }

func TestInteropWeInitiate(t *testing.T) {
	for _, psk := range []PresharedKey{{}, {7, 7, 7}} {
		t.Run(fmt.Sprintf("psk=%v", !psk.IsZero()), func(t *testing.T) {
			ourKey := mustKey(t, rand.Reader)
			theirKey := mustKey(t, rand.Reader)
			w := newWGPeer(t, theirKey, ourKey.PublicKey(), psk)
			id := NewIdentity(ourKey)
			h, err := NewHandshake(id, w.pub, psk)
			if err != nil {
				t.Fatal(err)
			}
			gen := NewCookieGenerator(w.pub)
			now := time.Now()

			init, err := h.CreateInitiation(now, 0x01020304, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			wire := init.MarshalTo(make([]byte, MessageInitiationSize))
			gen.AddMACs(wire, now)
			var theirChecker wgdevice.CookieChecker
			theirChecker.Init(wgdevice.NoisePublicKey(w.pub))
			if !theirChecker.CheckMAC1(wire) {
				t.Fatal("wireguard-go rejects our initiation's mac1")
			}
			var theirInit wgdevice.MessageInitiation
			fromWire(t, wire, &theirInit)
			if theirInit.Type != MessageInitiationType || theirInit.Sender != 0x01020304 {
				t.Fatalf("wireguard-go reads type %d sender %#x", theirInit.Type, theirInit.Sender)
			}
			if p := w.dev.ConsumeMessageInitiation(&theirInit); p != w.peer {
				t.Fatalf("wireguard-go did not accept our initiation (peer %v)", p)
			}
			theirResp, err := w.dev.CreateMessageResponse(w.peer)
			if err != nil {
				t.Fatal(err)
			}
			respWire := toWire(t, theirResp)
			var theirGen wgdevice.CookieGenerator
			theirGen.Init(wgdevice.NoisePublicKey(ourKey.PublicKey()))
			theirGen.AddMacs(respWire)
			if !id.CheckMAC1(respWire) || !NewCookieChecker(ourKey.PublicKey(), rand.Reader).CheckMAC1(respWire) {
				t.Fatal("we reject wireguard-go's response mac1")
			}
			var resp MessageResponse
			if err := resp.Unmarshal(respWire); err != nil {
				t.Fatal(err)
			}
			if err := h.ConsumeResponse(&resp, now); err != nil {
				t.Fatalf("ConsumeResponse of wireguard-go's response: %v", err)
			}
			if err := w.peer.BeginSymmetricSession(); err != nil {
				t.Fatal(err)
			}
			k, err := h.BeginSession(now)
			if err != nil {
				t.Fatal(err)
			}
			// wireguard-go, as responder, only sends once it received on
			// the new keypair: we go first.
			w.sendToThem(t, k, ping(theirAddr, ourAddr))
			w.receiveFromThem(t, k, ping(ourAddr, theirAddr))
			w.sendToThem(t, k, ping(theirAddr, ourAddr))
		})
	}
}

func TestInteropTheyInitiate(t *testing.T) {
	for _, psk := range []PresharedKey{{}, {9, 9}} {
		t.Run(fmt.Sprintf("psk=%v", !psk.IsZero()), func(t *testing.T) {
			ourKey := mustKey(t, rand.Reader)
			theirKey := mustKey(t, rand.Reader)
			w := newWGPeer(t, theirKey, ourKey.PublicKey(), psk)
			id := NewIdentity(ourKey)
			h, err := NewHandshake(id, w.pub, psk)
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now()

			theirInit, err := w.dev.CreateMessageInitiation(w.peer)
			if err != nil {
				t.Fatal(err)
			}
			wire := toWire(t, theirInit)
			var theirGen wgdevice.CookieGenerator
			theirGen.Init(wgdevice.NoisePublicKey(ourKey.PublicKey()))
			theirGen.AddMacs(wire)
			if !id.CheckMAC1(wire) {
				t.Fatal("we reject wireguard-go's initiation mac1")
			}
			var init MessageInitiation
			if err := init.Unmarshal(wire); err != nil {
				t.Fatal(err)
			}
			got, err := ConsumeInitiation(id, &init, func(pk PublicKey) *Handshake {
				if pk == w.pub {
					return h
				}
				return nil
			}, now)
			if err != nil || got != h {
				t.Fatalf("ConsumeInitiation of wireguard-go's initiation: %v", err)
			}
			resp, err := h.CreateResponse(now, 0x0a0b0c0d, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Receiver != theirInit.Sender {
				t.Fatalf("response receiver %#x, their sender %#x", resp.Receiver, theirInit.Sender)
			}
			respWire := resp.MarshalTo(make([]byte, MessageResponseSize))
			NewCookieGenerator(w.pub).AddMACs(respWire, now)
			var theirChecker wgdevice.CookieChecker
			theirChecker.Init(wgdevice.NoisePublicKey(w.pub))
			if !theirChecker.CheckMAC1(respWire) {
				t.Fatal("wireguard-go rejects our response mac1")
			}
			var theirResp wgdevice.MessageResponse
			fromWire(t, respWire, &theirResp)
			if p := w.dev.ConsumeMessageResponse(&theirResp); p != w.peer {
				t.Fatalf("wireguard-go did not accept our response (peer %v)", p)
			}
			if err := w.peer.BeginSymmetricSession(); err != nil {
				t.Fatal(err)
			}
			k, err := h.BeginSession(now)
			if err != nil {
				t.Fatal(err)
			}
			w.receiveFromThem(t, k, ping(ourAddr, theirAddr))
			w.sendToThem(t, k, ping(theirAddr, ourAddr))
			w.receiveFromThem(t, k, ping(ourAddr, theirAddr))

			// A second handshake initiated by them is accepted after
			// wireguard-go's own 20 ms spacing, and a replay of the first
			// one is not.
			time.Sleep(HandshakeInitiationRate + 5*time.Millisecond)
			theirInit2, err := w.dev.CreateMessageInitiation(w.peer)
			if err != nil {
				t.Fatal(err)
			}
			var init2 MessageInitiation
			if err := init2.Unmarshal(toWire(t, theirInit2)); err != nil {
				t.Fatal(err)
			}
			lookup := func(PublicKey) *Handshake { return h }
			if _, err := ConsumeInitiation(id, &init, lookup, time.Now()); err == nil {
				t.Fatal("replayed wireguard-go initiation accepted")
			}
			if _, err := ConsumeInitiation(id, &init2, lookup, time.Now()); err != nil {
				t.Fatalf("second wireguard-go initiation: %v", err)
			}
		})
	}
}

func TestInteropKDF(t *testing.T) {
	r := testRand(20)
	for i := 0; i < 50; i++ {
		key := make([]byte, 32)
		input := make([]byte, i)
		r.Read(key)
		r.Read(input)
		var a0, a1, a2, b0, b1, b2 [blake2s.Size]byte
		kdf(key, input, &a0, &a1, &a2)
		wgdevice.KDF3(&b0, &b1, &b2, key, input)
		if a0 != b0 || a1 != b1 || a2 != b2 {
			t.Fatalf("KDF3 differs from wireguard-go for input length %d", i)
		}
		kdf(key, input, &a0)
		wgdevice.KDF1(&b0, key, input)
		if a0 != b0 {
			t.Fatal("KDF1 differs")
		}
	}
}

func TestInteropCookies(t *testing.T) {
	ourKey := mustKey(t, rand.Reader)
	theirKey := mustKey(t, rand.Reader)
	ourPub, theirPub := ourKey.PublicKey(), theirKey.PublicKey()
	src := netip.MustParseAddrPort("198.51.100.7:40000")
	srcBytes, _ := src.MarshalBinary()

	msg := func(seed byte) []byte {
		b := make([]byte, MessageInitiationSize)
		testRand(seed).Read(b)
		b[0], b[1], b[2], b[3] = MessageInitiationType, 0, 0, 0
		return b
	}

	t.Run("their reply, our generator", func(t *testing.T) {
		var checker wgdevice.CookieChecker
		checker.Init(wgdevice.NoisePublicKey(theirPub))
		gen := NewCookieGenerator(theirPub)
		now := time.Now()

		m := msg(1)
		gen.AddMACs(m, now)
		if !checker.CheckMAC1(m) {
			t.Fatal("wireguard-go rejects our mac1")
		}
		if checker.CheckMAC2(m, srcBytes) {
			t.Fatal("mac2 valid without a cookie")
		}
		reply, err := checker.CreateReply(m, 77, srcBytes)
		if err != nil {
			t.Fatal(err)
		}
		var r MessageCookieReply
		if err := r.Unmarshal(toWire(t, reply)); err != nil {
			t.Fatal(err)
		}
		if r.Receiver != 77 {
			t.Fatalf("receiver %d", r.Receiver)
		}
		if err := gen.ConsumeReply(&r, now); err != nil {
			t.Fatalf("consuming wireguard-go's cookie reply: %v", err)
		}
		m2 := msg(2)
		gen.AddMACs(m2, now)
		if !checker.CheckMAC1(m2) || !checker.CheckMAC2(m2, srcBytes) {
			t.Fatal("wireguard-go rejects our mac2")
		}
		other, _ := netip.MustParseAddrPort("198.51.100.7:40001").MarshalBinary()
		if checker.CheckMAC2(m2, other) {
			t.Fatal("wireguard-go accepts our mac2 from another source")
		}
	})

	t.Run("our reply, their generator", func(t *testing.T) {
		checker := NewCookieChecker(ourPub, rand.Reader)
		var gen wgdevice.CookieGenerator
		gen.Init(wgdevice.NoisePublicKey(ourPub))
		now := time.Now()

		m := msg(3)
		gen.AddMacs(m)
		if !checker.CheckMAC1(m) {
			t.Fatal("we reject wireguard-go's mac1")
		}
		if checker.CheckMAC2(m, src, now) {
			t.Fatal("mac2 valid without a cookie")
		}
		reply, err := checker.CreateReply(m, 88, src, now)
		if err != nil {
			t.Fatal(err)
		}
		var theirReply wgdevice.MessageCookieReply
		fromWire(t, reply.MarshalTo(make([]byte, MessageCookieReplySize)), &theirReply)
		if theirReply.Type != MessageCookieReplyType || theirReply.Receiver != 88 {
			t.Fatalf("wireguard-go reads type %d receiver %d", theirReply.Type, theirReply.Receiver)
		}
		if !gen.ConsumeReply(&theirReply) {
			t.Fatal("wireguard-go rejects our cookie reply")
		}
		m2 := msg(4)
		gen.AddMacs(m2)
		if !checker.CheckMAC1(m2) || !checker.CheckMAC2(m2, src, now) {
			t.Fatal("we reject wireguard-go's mac2")
		}
		if checker.CheckMAC2(m2, netip.MustParseAddrPort("198.51.100.8:40000"), now) {
			t.Fatal("mac2 accepted from another address")
		}
	})
}
