//go:build !amd64

package packet

// simdMin is the length from which sum would use SIMD code; there is none
// for this architecture.
const simdMin = 1 << 30

func sumSIMD(b []byte, acc uint64) uint64 { return sumScalar(b, acc) }

func copySumSIMD(dst, src []byte, acc uint64) uint64 {
	copy(dst, src)
	return sumScalar(src, acc)
}
