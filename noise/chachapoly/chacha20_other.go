//go:build !amd64 || purego

package chachapoly

const useAVX512 = false

func xorKeyStreamAVX512(state *[16]uint32, dst1, src1 *byte, n1 int, dst2, src2 *byte, n2 int) {
	panic("chachapoly: no AVX-512 ChaCha20 on this platform")
}
