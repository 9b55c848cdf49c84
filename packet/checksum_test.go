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

func BenchmarkChecksum64K(b *testing.B) {
	p := make([]byte, 65535)
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		Checksum(p, 0)
	}
}
