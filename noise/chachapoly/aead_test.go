//go:build amd64 && !purego

package chachapoly

import (
	"bytes"
	"crypto/cipher"
	"math/rand/v2"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// forEachPath runs f with each combination of our code that this machine
// can run: both ChaCha20 and Poly1305 in assembly, and the assembly
// ChaCha20 with only the Go Poly1305 (which the IFMA path uses for
// additional data and short messages).
func forEachPath(t *testing.T, f func(t *testing.T)) {
	for _, p := range []struct {
		name string
		ifma bool
	}{
		{"avx512-ifma", true},
		{"avx512-generic-mac", false},
	} {
		t.Run(p.name, func(t *testing.T) {
			requireAVX512(t)
			if p.ifma && !ifmaDetected {
				t.Skip("this CPU lacks AVX-512 IFMA: the IFMA assembly cannot run here")
			}
			defer setIFMA(p.ifma)()
			f(t)
		})
	}
}

func TestAEADMatchesXCrypto(t *testing.T)   { forEachPath(t, testAEADMatchesXCrypto) }
func TestAEADInPlace(t *testing.T)          { forEachPath(t, testAEADInPlace) }
func TestAEADRejectsTampering(t *testing.T) { forEachPath(t, testAEADRejectsTampering) }
func TestAEADRFC8439(t *testing.T)          { forEachPath(t, testAEADRFC8439) }
func TestAEADOverlapPanics(t *testing.T)    { forEachPath(t, testAEADOverlapPanics) }
func TestAEADNoAllocations(t *testing.T)    { forEachPath(t, testAEADNoAllocations) }

// TestAEADMatchesXCrypto seals with both implementations and opens each
// other's output, for every plaintext length to 2,100 bytes and several
// additional-data lengths.
func testAEADMatchesXCrypto(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	key, nonce := make([]byte, 32), make([]byte, 12)
	for n := 0; n <= 2100; n++ {
		for _, adLen := range []int{0, 1, 13, 16, 32} {
			fillRandom(rng, key)
			fillRandom(rng, nonce)
			plain, ad := randomBytes(rng, n), randomBytes(rng, adLen)
			ours, ref := newAEAD(key), mustXCrypto(t, key)
			got := ours.Seal(nil, nonce, plain, ad)
			want := ref.Seal(nil, nonce, plain, ad)
			if !bytes.Equal(got, want) {
				t.Fatalf("len %d, ad %d: Seal differs from x/crypto", n, adLen)
			}
			opened, err := ours.Open(nil, nonce, want, ad)
			if err != nil || !bytes.Equal(opened, plain) {
				t.Fatalf("len %d, ad %d: Open of x/crypto's message: %v", n, adLen, err)
			}
		}
	}
}

// TestAEADInPlace seals and opens in place with a prefix in dst, the way
// the transport messages use it.
func testAEADInPlace(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	key, nonce := randomBytes(rng, 32), randomBytes(rng, 12)
	a, ref := newAEAD(key), mustXCrypto(t, key)
	for _, n := range []int{0, 1, 63, 64, 65, 1420, 1440, 65519} {
		plain := randomBytes(rng, n)
		buf := make([]byte, 16+n+16)
		copy(buf[16:], plain)
		sealed := a.Seal(buf[16:16], nonce, buf[16:16+n], nil)
		if &sealed[0] != &buf[16] {
			t.Fatal("Seal did not use dst's capacity")
		}
		if want := ref.Seal(nil, nonce, plain, nil); !bytes.Equal(sealed, want) {
			t.Fatalf("len %d: in-place Seal differs from x/crypto", n)
		}
		opened, err := a.Open(buf[16:16], nonce, buf[16:], nil)
		if err != nil || !bytes.Equal(opened, plain) {
			t.Fatalf("len %d: in-place Open: %v", n, err)
		}
	}
}

// TestAEADRejectsTampering flips every bit of a short message (and some
// of a long one) and checks Open fails and leaves no plaintext behind.
func testAEADRejectsTampering(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	key, nonce, ad := randomBytes(rng, 32), randomBytes(rng, 12), randomBytes(rng, 5)
	a := newAEAD(key)
	for _, n := range []int{0, 20, 1420} {
		sealed := a.Seal(nil, nonce, randomBytes(rng, n), ad)
		for bit := 0; bit < 8*len(sealed); bit += 1 + bit/64 {
			bad := bytes.Clone(sealed)
			bad[bit/8] ^= 1 << (bit % 8)
			dst := make([]byte, 0, len(sealed))
			if out, err := a.Open(dst, nonce, bad, ad); err == nil || out != nil {
				t.Fatalf("len %d: flipping bit %d was not detected", n, bit)
			}
			if full := dst[:cap(dst)]; !bytes.Equal(full[:n], make([]byte, n)) {
				t.Fatalf("len %d: a failed Open left plaintext in dst", n)
			}
		}
		inPlace := bytes.Clone(sealed)
		inPlace[len(inPlace)-1] ^= 0x40
		if out, err := a.Open(inPlace[:0], nonce, inPlace, ad); err == nil || out != nil {
			t.Fatalf("len %d: a changed tag was accepted in place", n)
		}
		if !bytes.Equal(inPlace[:n], make([]byte, n)) {
			t.Fatalf("len %d: a failed in-place Open left data behind", n)
		}
		badAD := bytes.Clone(ad)
		badAD[0] ^= 1
		if _, err := a.Open(nil, nonce, sealed, badAD); err == nil {
			t.Fatal("changed additional data was not detected")
		}
		badNonce := bytes.Clone(nonce)
		badNonce[11] ^= 0x80
		if _, err := a.Open(nil, badNonce, sealed, ad); err == nil {
			t.Fatal("a different nonce was not detected")
		}
	}
	if _, err := a.Open(nil, nonce, make([]byte, 15), nil); err == nil {
		t.Fatal("a message shorter than the tag was accepted")
	}
}

// TestAEADRFC8439 is the AEAD test vector of RFC 8439 2.8.2 (its tag).
func testAEADRFC8439(t *testing.T) {
	key := make([]byte, 32)
	for i := range key {
		key[i] = 0x80 + byte(i)
	}
	nonce := []byte{0x07, 0, 0, 0, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47}
	ad := []byte{0x50, 0x51, 0x52, 0x53, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7}
	plain := []byte("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.")
	sealed := newAEAD(key).Seal(nil, nonce, plain, ad)
	tag := []byte{0x1a, 0xe1, 0x0b, 0x59, 0x4f, 0x09, 0xe2, 0x6a, 0x7e, 0x90, 0x2e, 0xcb, 0xd0, 0x60, 0x06, 0x91}
	if !bytes.Equal(sealed[len(plain):], tag) {
		t.Fatalf("tag %x, want %x", sealed[len(plain):], tag)
	}
	if !bytes.Equal(sealed[:4], []byte{0xd3, 0x1a, 0x8d, 0x34}) {
		t.Fatalf("ciphertext starts %x", sealed[:4])
	}
}

func testAEADOverlapPanics(t *testing.T) {
	a := newAEAD(make([]byte, 32))
	buf := make([]byte, 200)
	defer func() {
		if recover() == nil {
			t.Fatal("a shifted overlap did not panic")
		}
	}()
	a.Seal(buf[1:1], make([]byte, 12), buf[:100], nil)
}

func testAEADNoAllocations(t *testing.T) {
	a := newAEAD(make([]byte, 32))
	nonce := make([]byte, 12)
	buf := make([]byte, 1420+16)
	allocs := testing.AllocsPerRun(100, func() {
		sealed := a.Seal(buf[:0], nonce, buf[:1420], nil)
		if _, err := a.Open(sealed[:0], nonce, sealed, nil); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per Seal+Open", allocs)
	}
}

func TestNewKeySize(t *testing.T) {
	if _, err := New(make([]byte, 31)); err == nil {
		t.Fatal("a 31-byte key was accepted")
	}
	a, err := New(make([]byte, 32))
	if err != nil || a.NonceSize() != NonceSize || a.Overhead() != Overhead {
		t.Fatalf("New: %v", err)
	}
}

// FuzzAEAD compares Seal with x/crypto's and opens arbitrary input with
// both: they must agree on acceptance and plaintext.
func FuzzAEAD(f *testing.F) {
	f.Add(make([]byte, 32), make([]byte, 12), []byte("plain"), []byte("ad"))
	f.Add(bytes.Repeat([]byte{0xff}, 32), bytes.Repeat([]byte{0xff}, 12), bytes.Repeat([]byte{0xff}, 1420), []byte{})
	f.Fuzz(func(t *testing.T, key, nonce, data, ad []byte) {
		if len(key) != 32 || len(nonce) != 12 {
			return
		}
		ours, ref := newAEAD(key), mustXCrypto(t, key)
		sealed := ref.Seal(nil, nonce, data, ad)
		want, errRef := ref.Open(nil, nonce, data, ad)
		if !avx512Detected {
			return
		}
		for _, ifma := range []bool{true, false} {
			if ifma && !ifmaDetected {
				continue
			}
			restore := setIFMA(ifma)
			gotSealed := ours.Seal(nil, nonce, data, ad)
			got, errOurs := ours.Open(nil, nonce, data, ad)
			restore()
			if !bytes.Equal(gotSealed, sealed) {
				t.Fatalf("IFMA %v: Seal differs from x/crypto", ifma)
			}
			if (errOurs == nil) != (errRef == nil) || !bytes.Equal(got, want) {
				t.Fatalf("IFMA %v: Open disagrees with x/crypto: %v vs %v", ifma, errOurs, errRef)
			}
		}
	})
}

func mustXCrypto(t testing.TB, key []byte) cipher.AEAD {
	a, err := chacha20poly1305.New(key)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func BenchmarkAEAD(b *testing.B) {
	for _, impl := range []string{"chachapoly", "generic-mac", "x-crypto"} {
		for _, n := range []int{64, 1420, 8192} {
			b.Run(impl+"/seal-"+itoa(n), func(b *testing.B) { benchAEAD(b, impl, n, false) })
			b.Run(impl+"/open-"+itoa(n), func(b *testing.B) { benchAEAD(b, impl, n, true) })
			b.Run(impl+"/open-in-place-"+itoa(n), func(b *testing.B) { benchOpenInPlace(b, impl, n) })
		}
	}
}

func benchCipher(b *testing.B, impl string) cipher.AEAD {
	key := make([]byte, 32)
	switch impl {
	case "chachapoly":
		if !avx512Detected || !ifmaDetected {
			b.Skip("this CPU lacks AVX-512 or IFMA")
		}
		return newAEAD(key)
	case "generic-mac":
		if !avx512Detected {
			b.Skip("this CPU lacks AVX-512")
		}
		b.Cleanup(setIFMA(false))
		return newAEAD(key)
	}
	return mustXCrypto(b, key)
}

func benchOpenInPlace(b *testing.B, impl string, n int) {
	a := benchCipher(b, impl)
	nonce := make([]byte, 12)
	sealed := a.Seal(nil, nonce, make([]byte, n), nil)
	buf := make([]byte, len(sealed))
	b.SetBytes(int64(n))
	for b.Loop() {
		// Opening in place leaves plaintext behind: put the message back
		// (the copy is part of the measured time for both).
		copy(buf, sealed)
		if _, err := a.Open(buf[:0], nonce, buf, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func benchAEAD(b *testing.B, impl string, n int, open bool) {
	a := benchCipher(b, impl)
	nonce := make([]byte, 12)
	buf := make([]byte, n+16)
	sealed := a.Seal(nil, nonce, buf[:n], nil)
	b.SetBytes(int64(n))
	for b.Loop() {
		if open {
			if _, err := a.Open(buf[:0], nonce, sealed, nil); err != nil {
				b.Fatal(err)
			}
		} else {
			a.Seal(buf[:0], nonce, buf[:n], nil)
		}
	}
}
