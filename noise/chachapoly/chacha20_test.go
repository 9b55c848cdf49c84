//go:build amd64 && !purego

package chachapoly

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"golang.org/x/crypto/chacha20"
)

// referenceXOR is x/crypto's ChaCha20 from block counter ctr.
func referenceXOR(t testing.TB, key, nonce []byte, ctr uint32, dst, src []byte) {
	c, err := chacha20.NewUnauthenticatedCipher(key, nonce)
	if err != nil {
		t.Fatal(err)
	}
	c.SetCounter(ctr)
	c.XORKeyStream(dst, src)
}

func testState(key, nonce []byte, ctr uint32) [16]uint32 {
	s := newAEAD(key).state(nonce)
	s[12] = ctr
	return s
}

// avx512Detected says whether this CPU runs the AVX-512 ChaCha20.
var avx512Detected = cpuFeatures.AVX512F && cpuFeatures.AVX512BW && cpuFeatures.AVX512VL && cpuFeatures.BMI2

func requireAVX512(t testing.TB) {
	if !avx512Detected {
		t.Skip("this CPU has no AVX-512: the assembly cannot run here")
	}
}

// TestKeyStreamTwoStreams checks both streams of xorKeyStreamAVX512
// against x/crypto for every first-stream length up to 5 blocks and
// second-stream lengths across every pass size, with guard bytes around
// each output that must stay untouched.
func TestKeyStreamTwoStreams(t *testing.T) {
	requireAVX512(t)
	rng := rand.New(rand.NewPCG(1, 2))
	key, nonce := make([]byte, 32), make([]byte, 12)
	var n2s []int
	for n := 0; n <= 2200; n++ {
		if n < 300 || n%7 == 0 || n%64 == 0 || n%64 == 63 || n%64 == 1 {
			n2s = append(n2s, n)
		}
	}
	for n1 := 1; n1 <= 320; n1 += 1 + n1/16 {
		for _, n2 := range n2s {
			fillRandom(rng, key)
			fillRandom(rng, nonce)
			ctr := rng.Uint32() >> 4
			src1, src2 := randomBytes(rng, n1), randomBytes(rng, n2)
			const guard = 65
			buf1, buf2 := randomBytes(rng, n1+2*guard), randomBytes(rng, n2+2*guard)
			keep1, keep2 := bytes.Clone(buf1), bytes.Clone(buf2)
			dst1, dst2 := buf1[guard:guard+n1], buf2[guard:guard+n2]
			st := testState(key, nonce, ctr)
			if n2 > 0 {
				xorKeyStreamAVX512(&st, &dst1[0], &src1[0], n1, &dst2[0], &src2[0], n2)
			} else {
				xorKeyStreamAVX512(&st, &dst1[0], &src1[0], n1, nil, nil, 0)
			}
			want1, want2 := make([]byte, n1), make([]byte, n2)
			referenceXOR(t, key, nonce, ctr, want1, src1)
			referenceXOR(t, key, nonce, ctr+uint32((n1+63)/64), want2, src2)
			if !bytes.Equal(dst1, want1) || !bytes.Equal(dst2, want2) {
				t.Fatalf("n1=%d n2=%d: keystream differs from x/crypto", n1, n2)
			}
			if !bytes.Equal(buf1[:guard], keep1[:guard]) || !bytes.Equal(buf1[guard+n1:], keep1[guard+n1:]) ||
				!bytes.Equal(buf2[:guard], keep2[:guard]) || !bytes.Equal(buf2[guard+n2:], keep2[guard+n2:]) {
				t.Fatalf("n1=%d n2=%d: wrote outside the output", n1, n2)
			}
		}
	}
}

// TestKeyStreamInPlaceLong runs in place over several passes of every
// size, and checks the state it was given is left as it was.
func TestKeyStreamInPlaceLong(t *testing.T) {
	requireAVX512(t)
	rng := rand.New(rand.NewPCG(3, 4))
	key, nonce := randomBytes(rng, 32), randomBytes(rng, 12)
	for _, n := range []int{1023, 1024, 1025, 3*1024 + 511, 64 << 10, 1<<20 + 17} {
		src := randomBytes(rng, n)
		buf := bytes.Clone(src)
		st := testState(key, nonce, 7)
		before := st
		xorKeyStreamAVX512(&st, &buf[0], &buf[0], n, nil, nil, 0)
		if st != before {
			t.Fatal("the state was modified")
		}
		want := make([]byte, n)
		referenceXOR(t, key, nonce, 7, want, src)
		if !bytes.Equal(buf, want) {
			t.Fatalf("n=%d: in-place keystream differs from x/crypto", n)
		}
	}
}

// TestKeyStreamRFC8439 is the keystream test vector of RFC 8439 2.4.2.
func TestKeyStreamRFC8439(t *testing.T) {
	requireAVX512(t)
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	nonce := []byte{0, 0, 0, 0, 0, 0, 0, 0x4a, 0, 0, 0, 0}
	plain := []byte("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.")
	st := testState(key, nonce, 1)
	out := make([]byte, len(plain))
	xorKeyStreamAVX512(&st, &out[0], &plain[0], len(plain), nil, nil, 0)
	want := []byte{0x6e, 0x2e, 0x35, 0x9a, 0x25, 0x68, 0xf9, 0x80, 0x41, 0xba, 0x07, 0x28, 0xdd, 0x0d, 0x69, 0x81}
	if !bytes.Equal(out[:16], want) {
		t.Fatalf("got %x, want %x", out[:16], want)
	}
	if tail := []byte{0xf2, 0x78, 0x5e, 0x42, 0x87, 0x4d}; !bytes.Equal(out[len(out)-len(tail):], tail) {
		t.Fatalf("ends in %x, want %x", out[len(out)-len(tail):], tail)
	}
}

func fillRandom(rng *rand.Rand, b []byte) {
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	fillRandom(rng, b)
	return b
}

func BenchmarkKeyStream(b *testing.B) {
	if !avx512Detected {
		b.Skip("no AVX-512")
	}
	for _, n := range []int{64, 1420, 8192} {
		b.Run(itoa(n), func(b *testing.B) {
			buf := make([]byte, n)
			st := testState(make([]byte, 32), make([]byte, 12), 1)
			b.SetBytes(int64(n))
			for b.Loop() {
				xorKeyStreamAVX512(&st, &buf[0], &buf[0], n, nil, nil, 0)
			}
		})
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}
