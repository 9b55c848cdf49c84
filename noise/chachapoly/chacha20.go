package chachapoly

import (
	"encoding/binary"

	"golang.org/x/crypto/chacha20"
)

// xorKeyStream XORs the ChaCha20 keystream from block state[12] into
// src1 (to dst1) and then, from the next whole block on, into src2 (to
// dst2). src1 must not be empty.
func xorKeyStream(state *[16]uint32, dst1, src1, dst2, src2 []byte) {
	if useAVX512 {
		if len(src2) == 0 {
			xorKeyStreamAVX512(state, &dst1[0], &src1[0], len(src1), nil, nil, 0)
		} else {
			xorKeyStreamAVX512(state, &dst1[0], &src1[0], len(src1), &dst2[0], &src2[0], len(src2))
		}
		return
	}
	xorKeyStreamPortable(state, dst1, src1, dst2, src2)
}

// xorKeyStreamPortable is xorKeyStream with x/crypto's ChaCha20 (its own
// assembly on some platforms, Go elsewhere), which stays on the stack.
func xorKeyStreamPortable(state *[16]uint32, dst1, src1, dst2, src2 []byte) {
	var key [32]byte
	var nonce [12]byte
	for i := range 8 {
		binary.LittleEndian.PutUint32(key[4*i:], state[4+i])
	}
	for i := range 3 {
		binary.LittleEndian.PutUint32(nonce[4*i:], state[13+i])
	}
	c, err := chacha20.NewUnauthenticatedCipher(key[:], nonce[:])
	if err != nil {
		panic("chachapoly: ChaCha20 with a 32-byte key and a 12-byte nonce cannot fail: " + err.Error())
	}
	c.SetCounter(state[12])
	c.XORKeyStream(dst1, src1)
	if len(src2) > 0 {
		c.SetCounter(state[12] + uint32((len(src1)+63)/64))
		c.XORKeyStream(dst2, src2)
	}
	clear(key[:])
}
