package noise

import (
	"bytes"
	"crypto/rand"
	"net/netip"
	"sync"
	"testing"
	"time"

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
