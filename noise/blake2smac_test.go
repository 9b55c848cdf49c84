package noise

import (
	"bytes"
	"crypto/rand"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/gotatun/gotatun/internal/cryptoimpl"
	"golang.org/x/crypto/blake2s"
)

func refMAC(key, data []byte) []byte {
	h, err := blake2s.New128(key)
	if err != nil {
		panic(err)
	}
	h.Write(data)
	return h.Sum(nil)
}

func TestMACMatchesBLAKE2s(t *testing.T) {
	data := make([]byte, 300)
	for i := range data {
		data[i] = byte(i * 13)
	}
	for _, keyLen := range []int{16, 32} {
		key := make([]byte, keyLen)
		for i := range key {
			key[i] = byte(200 - i)
		}
		for n := 0; n <= len(data); n++ {
			var got [macSize]byte
			mac(&got, key, data[:n])
			if want := refMAC(key, data[:n]); !bytes.Equal(got[:], want) {
				t.Fatalf("key %d bytes, data %d bytes: %x, want %x", keyLen, n, got, want)
			}
		}
	}
}

func FuzzMAC(f *testing.F) {
	f.Add(make([]byte, 32), []byte("message"))
	f.Add(make([]byte, 16), make([]byte, 64))
	f.Fuzz(func(t *testing.T, key, data []byte) {
		if len(key) != 16 && len(key) != 32 {
			return
		}
		var got [macSize]byte
		mac(&got, key, data)
		if want := refMAC(key, data); !bytes.Equal(got[:], want) {
			t.Fatalf("%x, want %x", got, want)
		}
	})
}

// TestCookieCheckerConcurrent checks and answers messages from several
// goroutines at once across secret rotations (run with -race).
func TestCookieCheckerConcurrent(t *testing.T) {
	priv, err := GeneratePrivateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c := NewCookieChecker(priv.PublicKey(), rand.Reader)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gen := NewCookieGenerator(priv.PublicKey())
			src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(g)}), 1000)
			for i := range 200 {
				now := epoch.Add(time.Duration(i) * time.Second) // rotates every 120 steps
				m := testInitiationBytes(byte(i))
				gen.AddMACs(m, now)
				if !c.CheckMAC1(m) {
					t.Error("mac1 refused")
					return
				}
				if c.CheckMAC2(m, src, now) {
					continue
				}
				var out [MessageCookieReplySize]byte
				if err := c.WriteReply(&out, m, src, now); err != nil {
					t.Error(err)
					return
				}
				var r MessageCookieReply
				if err := r.Unmarshal(out[:]); err != nil {
					t.Error(err)
					return
				}
				if err := gen.ConsumeReply(&r, now); err != nil {
					t.Error(err)
					return
				}
				m = testInitiationBytes(byte(i))
				gen.AddMACs(m, now)
				// Another goroutine may have rotated the secret since, so
				// the result is not checked: this is for the race detector.
				_ = c.CheckMAC2(m, src, now)
			}
		}()
	}
	wg.Wait()
}

func TestWriteReplyMatchesCreateReply(t *testing.T) {
	priv, _ := GeneratePrivateKey(rand.Reader)
	c := NewCookieChecker(priv.PublicKey(), rand.Reader)
	gen := NewCookieGenerator(priv.PublicKey())
	m := testInitiationBytes(5)
	m[4], m[5], m[6], m[7] = 0x78, 0x56, 0x34, 0x12
	gen.AddMACs(m, epoch)
	src := netip.MustParseAddrPort("[2001:db8::1]:51820")
	var out [MessageCookieReplySize]byte
	if err := c.WriteReply(&out, m, src, epoch); err != nil {
		t.Fatal(err)
	}
	var r MessageCookieReply
	if err := r.Unmarshal(out[:]); err != nil {
		t.Fatal(err)
	}
	if r.Receiver != 0x12345678 {
		t.Fatalf("reply to %#x, want the sender index 0x12345678", r.Receiver)
	}
	if err := gen.ConsumeReply(&r, epoch); err != nil {
		t.Fatal(err)
	}
	m2 := testInitiationBytes(6)
	gen.AddMACs(m2, epoch)
	if !c.CheckMAC2(m2, src, epoch) {
		t.Fatal("mac2 from a WriteReply cookie refused")
	}
	if err := c.WriteReply(&out, m[:7], src, epoch); err == nil {
		t.Fatal("WriteReply accepted a 7-byte message")
	}
}

func BenchmarkCookieChecker(b *testing.B) {
	priv, _ := GeneratePrivateKey(rand.Reader)
	c := NewCookieChecker(priv.PublicKey(), rand.Reader)
	gen := NewCookieGenerator(priv.PublicKey())
	m := testInitiationBytes(1)
	gen.AddMACs(m, epoch)
	src := netip.MustParseAddrPort("192.0.2.1:1234")
	var out [MessageCookieReplySize]byte
	b.Run("mac1", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c.CheckMAC1(m)
		}
	})
	b.Run("mac2", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c.CheckMAC2(m, src, epoch)
		}
	})
	b.Run("reply", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c.WriteReply(&out, m, src, epoch)
		}
	})
}

// rfc7693Seq is the deterministic byte sequence of RFC 7693 Appendix E
// (a Fibonacci generator seeded with seed).
func rfc7693Seq(n int, seed uint32) []byte {
	out := make([]byte, n)
	a, b := 0xDEAD4BAD*seed, uint32(1)
	for i := range out {
		a, b = b, a+b
		out[i] = byte(b >> 24)
	}
	return out
}

// TestBLAKE2sRFC7693SelfTest runs RFC 7693 Appendix E's BLAKE2s self-test
// on our implementation: unkeyed and keyed digests of 16, 20, 28 and 32
// bytes over inputs of 0 to 1024 bytes, all hashed into one BLAKE2s-256
// digest that must equal the RFC's. (x/crypto offers only 16- and 32-byte
// digests, so it cannot run this; TestMACMatchesBLAKE2s and FuzzMAC compare
// the two.)
func TestBLAKE2sRFC7693SelfTest(t *testing.T) {
	want := []byte{
		0x6a, 0x41, 0x1f, 0x08, 0xce, 0x25, 0xad, 0xcd,
		0xfb, 0x02, 0xab, 0xa6, 0x41, 0x45, 0x1c, 0xec,
		0x53, 0xc5, 0x98, 0xb2, 0x4f, 0x4f, 0xc7, 0x87,
		0xfb, 0xdc, 0x88, 0x79, 0x7f, 0x4c, 0x1d, 0xfe,
	}
	var all []byte
	for _, outLen := range []int{16, 20, 28, 32} {
		for _, inLen := range []int{0, 3, 64, 65, 255, 1024} {
			in := rfc7693Seq(inLen, uint32(inLen))
			md := make([]byte, outLen)
			blake2sSum(md, nil, in)
			all = append(all, md...)
			blake2sSum(md, rfc7693Seq(outLen, uint32(outLen)), in)
			all = append(all, md...)
		}
	}
	got := make([]byte, 32)
	blake2sSum(got, nil, all)
	if !bytes.Equal(got, want) {
		t.Fatalf("grand hash %x, want %x", got, want)
	}
}

// TestMACXCryptoSwitch: with x/crypto forced, the MACs come from x/crypto
// and agree with ours.
func TestMACXCryptoSwitch(t *testing.T) {
	key := rfc7693Seq(32, 7)
	data := rfc7693Seq(150, 9)
	var ours, theirs [macSize]byte
	k := newMACKey(key)
	for _, n := range []int{0, 1, 64, 65, 150} {
		old := cryptoimpl.Set(false)
		k.sum(&ours, data[:n])
		cryptoimpl.Set(true)
		k.sum(&theirs, data[:n])
		allocs := testing.AllocsPerRun(10, func() { k.sum(&theirs, data[:n]) })
		cryptoimpl.Set(old)
		if ours != theirs || !bytes.Equal(ours[:], refMAC(key, data[:n])) {
			t.Fatalf("%d bytes: ours %x, x/crypto %x, want %x", n, ours, theirs, refMAC(key, data[:n]))
		}
		if allocs == 0 {
			t.Fatalf("%d bytes: x/crypto forced but the MAC did not allocate: not x/crypto's", n)
		}
	}
}

// BenchmarkMAC1: mac1 over an initiation with our BLAKE2s (key block
// absorbed once, on the stack) against x/crypto's keyed BLAKE2s-128, the
// gain that keeps our code (crypto policy: README).
func BenchmarkMAC1(b *testing.B) {
	key := rfc7693Seq(32, 1)
	msg := rfc7693Seq(MessageInitiationSize-2*macSize, 2)
	k := newMACKey(key)
	var dst [macSize]byte
	for _, x := range []bool{false, true} {
		name := "ours"
		if x {
			name = "x-crypto"
		}
		b.Run(name, func(b *testing.B) {
			old := cryptoimpl.Set(x)
			defer cryptoimpl.Set(old)
			b.ReportAllocs()
			for b.Loop() {
				k.sum(&dst, msg)
			}
		})
	}
}
