package packet

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// The SIMD sum (where the CPU has one) agrees with the portable one for
// every length, alignment, initial value and extreme contents.
func TestSumSIMDMatchesScalar(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 3<<20)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	ones := bytes.Repeat([]byte{0xff}, 3<<20)
	check := func(b []byte, acc uint64) {
		t.Helper()
		if got, want := fold(sumSIMD(b, acc)), fold(sumScalar(b, acc)); got != want {
			t.Fatalf("len %d acc %#x: SIMD %#04x, scalar %#04x", len(b), acc, got, want)
		}
		if got, want := fold(sum(b, acc)), fold(sumScalar(b, acc)); got != want {
			t.Fatalf("len %d acc %#x: sum %#04x, scalar %#04x", len(b), acc, got, want)
		}
	}
	for n := 0; n <= 2100; n++ {
		off := r.IntN(64)
		check(buf[off:off+n], 0)
		check(buf[off:off+n], r.Uint64()>>16)
		check(ones[:n], 0)
		check(make([]byte, n), 0)
	}
	for _, n := range []int{65535, 65536, 1<<20 - 1, 1 << 20, 1<<20 + 33, 3 << 20} {
		check(buf[:n], 0)
		check(ones[:n], 0xffff)
	}
}

// copySum copies exactly its source, leaves the rest of the destination
// alone and returns the same sum as sum.
func TestCopySumMatchesSum(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	src := make([]byte, 1<<20+100)
	for i := range src {
		src[i] = byte(r.Uint32())
	}
	check := func(n, soff, doff int, acc uint64) {
		t.Helper()
		dst := bytes.Repeat([]byte{0xa5}, doff+n+64)
		s := src[soff : soff+n]
		got := copySum(dst[doff:], s, acc)
		if want := sumScalar(s, acc); fold(got) != fold(want) {
			t.Fatalf("len %d: copySum %#04x, sum %#04x", n, fold(got), fold(want))
		}
		if got := fold(copySumSIMD(dst[doff:], s, acc)); got != fold(sumScalar(s, acc)) {
			t.Fatalf("len %d: copySumSIMD %#04x", n, got)
		}
		if !bytes.Equal(dst[doff:doff+n], s) {
			t.Fatalf("len %d: copy differs", n)
		}
		for i, c := range dst {
			if (i < doff || i >= doff+n) && c != 0xa5 {
				t.Fatalf("len %d: byte %d outside the copy written", n, i)
			}
		}
	}
	for n := 0; n <= 2100; n++ {
		check(n, r.IntN(64), r.IntN(64), r.Uint64()>>16)
	}
	for _, n := range []int{1<<18 - 1, 1 << 18, 1<<18 + 33, 1<<20 + 100} {
		check(n, 0, r.IntN(64), 0)
	}
}

func BenchmarkChecksum64K(b *testing.B) {
	p := make([]byte, 65535)
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		Checksum(p, 0)
	}
}

func TestCopyChecksum(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{0, 1, 7, 63, 64, 1372, 1373, 9000} {
		src := make([]byte, n)
		for i := range src {
			src[i] = byte(r.Uint32())
		}
		dst := make([]byte, n)
		init := r.Uint64() >> 20
		if got, want := CopyChecksum(dst, src, init), Checksum(src, init); got != want {
			t.Fatalf("len %d: CopyChecksum %#04x, Checksum %#04x", n, got, want)
		}
		if !bytes.Equal(dst, src) {
			t.Fatalf("len %d: copy differs", n)
		}
	}
}
