//go:build amd64 && !purego

package chachapoly

// xorKeyStreamAVX512 XORs the ChaCha20 keystream that starts at block
// state[12] into two consecutive streams: n1 bytes from src1 to dst1, then
// n2 bytes from src2 to dst2, the second starting on the block after the
// first one's last. n1 must be positive. Each dst is either its src or
// does not overlap it.
//
//go:noescape
func xorKeyStreamAVX512(state *[16]uint32, dst1, src1 *byte, n1 int, dst2, src2 *byte, n2 int)

// xorKeyStream XORs the ChaCha20 keystream from block state[12] into
// src1 (to dst1) and then, from the next whole block on, into src2 (to
// dst2). src1 must not be empty.
func xorKeyStream(state *[16]uint32, dst1, src1, dst2, src2 []byte) {
	if len(src2) == 0 {
		xorKeyStreamAVX512(state, &dst1[0], &src1[0], len(src1), nil, nil, 0)
		return
	}
	xorKeyStreamAVX512(state, &dst1[0], &src1[0], len(src1), &dst2[0], &src2[0], len(src2))
}
