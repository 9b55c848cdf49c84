package noise

import (
	"bytes"
	"encoding/hex"
	"math/rand/v2"
	"testing"

	"golang.org/x/crypto/curve25519"

	"github.com/gotatun/gotatun/internal/cryptoimpl"
)

func mustHex32(t testing.TB, s string) *[32]byte {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		t.Fatalf("bad test vector %q", s)
	}
	return (*[32]byte)(b)
}

// TestX25519RFC7748 runs the test vectors of RFC 7748 section 5.2,
// including the iterated one to 1,000.
func TestX25519RFC7748(t *testing.T) {
	for _, v := range []struct{ scalar, u, out string }{
		{"a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
			"e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
			"c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"},
		// The u here has its top bit set, which must be ignored.
		{"4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
			"e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
			"95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"},
	} {
		var got [32]byte
		x25519Ladder(&got, mustHex32(t, v.scalar), mustHex32(t, v.u))
		if want := mustHex32(t, v.out); got != *want {
			t.Errorf("X25519(%s, %s) = %x, want %x", v.scalar, v.u, got, *want)
		}
	}

	k, u := [32]byte{9}, [32]byte{9}
	for i := 1; i <= 1000; i++ {
		var next [32]byte
		x25519Ladder(&next, &k, &u)
		u, k = k, next
		switch i {
		case 1:
			if want := mustHex32(t, "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079"); k != *want {
				t.Fatalf("after one iteration %x, want %x", k, *want)
			}
		case 1000:
			if want := mustHex32(t, "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51"); k != *want {
				t.Fatalf("after 1,000 iterations %x, want %x", k, *want)
			}
		}
	}
}

// TestX25519MatchesXCrypto compares both multiplications with x/crypto's
// for random scalars and points, among them points with the top bit set
// and non-canonical ones (p and above).
func TestX25519MatchesXCrypto(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	random32 := func() *[32]byte {
		var b [32]byte
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return &b
	}
	for i := range 300 {
		k := random32()
		var pub, want [32]byte
		x25519Edwards(&pub, k)
		curve25519.ScalarBaseMult(&want, k)
		if pub != want {
			t.Fatalf("base point: %x, want %x", pub, want)
		}

		u := random32()
		switch i % 4 {
		case 1:
			u[31] |= 0x80
		case 2: // p + small, encoded without reduction
			*u = [32]byte{0xed + byte(i%18)}
			for j := 1; j < 31; j++ {
				u[j] = 0xff
			}
			u[31] = 0x7f
		}
		var got [32]byte
		x25519Ladder(&got, k, u)
		ref, err := curve25519.X25519(k[:], u[:])
		if err != nil {
			if !isZero(got[:]) {
				t.Fatalf("x/crypto rejects u=%x but the ladder gave %x", *u, got)
			}
			continue
		}
		if !bytes.Equal(got[:], ref) {
			t.Fatalf("X25519(%x, %x) = %x, want %x", *k, *u, got, ref)
		}
	}
}

// TestDHRejectsLowOrderPoints feeds the points whose multiples are all
// zero (the order-1, 2, 4 and 8 points and their non-canonical forms).
func TestDHRejectsLowOrderPoints(t *testing.T) {
	priv := testKey(t, 1)
	for _, u := range []string{
		"0000000000000000000000000000000000000000000000000000000000000000",
		"0100000000000000000000000000000000000000000000000000000000000000",
		"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
		"5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	} {
		if _, err := dh(priv, PublicKey(*mustHex32(t, u))); err != ErrInvalidKey {
			t.Errorf("dh with low-order u=%s: error %v, want ErrInvalidKey", u, err)
		}
	}
}

func TestDHNoAllocations(t *testing.T) {
	if cryptoimpl.XCrypto() {
		t.Skip("x/crypto is forced, and its X25519 (crypto/ecdh) allocates; the claim is for our ladder")
	}
	a, b := testKey(t, 1), testKey(t, 2)
	pub := b.PublicKey()
	if n := testing.AllocsPerRun(20, func() {
		if _, err := dh(a, pub); err != nil {
			t.Fatal(err)
		}
		_ = a.PublicKey()
	}); n != 0 {
		t.Fatalf("%v allocations per DH and public key, want 0", n)
	}
}

func testKey(t testing.TB, seed uint64) PrivateKey {
	k, err := GeneratePrivateKey(rand.NewChaCha8([32]byte{byte(seed)}))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// FuzzX25519 compares the ladder and the base-point multiplication with
// x/crypto's X25519 for arbitrary scalars and points.
func FuzzX25519(f *testing.F) {
	f.Add(make([]byte, 32), make([]byte, 32))
	f.Add(bytes.Repeat([]byte{0xff}, 32), bytes.Repeat([]byte{0xff}, 32))
	f.Fuzz(func(t *testing.T, scalar, point []byte) {
		if len(scalar) != 32 || len(point) != 32 {
			return
		}
		k, u := (*[32]byte)(scalar), (*[32]byte)(point)
		var got, pub, wantPub [32]byte
		x25519Ladder(&got, k, u)
		ref, err := curve25519.X25519(scalar, point)
		if err != nil && !isZero(got[:]) || err == nil && !bytes.Equal(got[:], ref) {
			t.Fatalf("X25519(%x, %x) = %x, x/crypto %x (%v)", scalar, point, got, ref, err)
		}
		x25519Edwards(&pub, k)
		curve25519.ScalarBaseMult(&wantPub, k)
		if pub != wantPub {
			t.Fatalf("base point: %x, want %x", pub, wantPub)
		}
	})
}

func BenchmarkX25519(b *testing.B) {
	a, c := testKey(b, 1), testKey(b, 2)
	pub := c.PublicKey()
	b.Run("dh", func(b *testing.B) {
		for b.Loop() {
			if _, err := dh(a, pub); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("public-key", func(b *testing.B) {
		for b.Loop() {
			_ = a.PublicKey()
		}
	})
	b.Run("x-crypto-dh", func(b *testing.B) {
		for b.Loop() {
			if _, err := curve25519.X25519(a[:], pub[:]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("x-crypto-public-key", func(b *testing.B) {
		var out [32]byte
		for b.Loop() {
			curve25519.ScalarBaseMult(&out, (*[32]byte)(&a))
		}
	})
}
