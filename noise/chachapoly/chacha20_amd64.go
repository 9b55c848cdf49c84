//go:build amd64 && !purego

package chachapoly

import "golang.org/x/sys/cpu"

// xorKeyStreamAVX512 XORs the ChaCha20 keystream that starts at block
// state[12] into two consecutive streams: n1 bytes from src1 to dst1, then
// n2 bytes from src2 to dst2, the second starting on the block after the
// first one's last. n1 must be positive. Each dst is either its src or
// does not overlap it.
//
//go:noescape
func xorKeyStreamAVX512(state *[16]uint32, dst1, src1 *byte, n1 int, dst2, src2 *byte, n2 int)

// useAVX512 selects the AVX-512 ChaCha20. Tests flip it.
var useAVX512 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL && cpu.X86.HasBMI2

// Without both AVX-512 paths, x/crypto's AVX2 assembly for the whole AEAD
// is faster than ours.
const xcryptoIsFaster = true
