//go:build !amd64 || purego

package chachapoly

// useAVX512 is always false without the amd64 assembly.
var useAVX512 = false

// x/crypto's AEAD allocates on every call without its amd64 assembly; the
// portable path here does not.
const xcryptoIsFaster = false

func xorKeyStreamAVX512(state *[16]uint32, dst1, src1 *byte, n1 int, dst2, src2 *byte, n2 int) {
	panic("chachapoly: no AVX-512 ChaCha20 on this platform")
}
