//go:build amd64 && !purego

package chachapoly

import (
	"crypto/cipher"
	"encoding/binary"
	"math/big"
	"testing"
)

// ourPaths are the assembly ChaCha20 with the IFMA Poly1305 (what New
// returns on CPUs with both) and with only the Go Poly1305.
func ourPaths() []aeadPath {
	skipAVX512 := ""
	if !avx512Detected {
		skipAVX512 = "this CPU lacks AVX-512 (F, BW, VL) or BMI2: the assembly cannot run here"
	}
	skipIFMA := skipAVX512
	if skipIFMA == "" && !ifmaDetected {
		skipIFMA = "this CPU lacks AVX-512 IFMA: the IFMA assembly cannot run here"
	}
	path := func(name, skip string, ifma bool) aeadPath {
		return aeadPath{
			name:  name,
			skip:  skip,
			setup: func() func() { return setIFMA(ifma) },
			aead:  func(key []byte) cipher.AEAD { return newAEAD(key) },
			xor: func(t *testing.T, key, nonce []byte, ctr uint32, dst, src []byte) {
				st := testState(key, nonce, ctr)
				xorKeyStream(&st, dst, src, nil, nil)
			},
			mac: rawMAC,
		}
	}
	return []aeadPath{
		path("avx512-ifma", skipIFMA, true),
		path("avx512-generic-mac", skipAVX512, false),
	}
}

// rawMAC is the plain Poly1305 of msg with our code: whole blocks through
// updateBlocks (the IFMA kernel when it is on and there are enough), the
// last partial block, which the AEAD never has (it pads with zeros), in
// big.Int arithmetic, then finish.
func rawMAC(key *[32]byte, msg []byte) (tag [16]byte) {
	st := polyState{
		r0: binary.LittleEndian.Uint64(key[0:8]) & rClamp0,
		r1: binary.LittleEndian.Uint64(key[8:16]) & rClamp1,
	}
	full := len(msg) &^ 15
	st.updateBlocks(msg[:full])
	if rest := msg[full:]; len(rest) > 0 {
		le := func(b []byte) *big.Int { return new(big.Int).SetBytes(reverse(b)) }
		var w [24]byte
		binary.LittleEndian.PutUint64(w[0:], st.h0)
		binary.LittleEndian.PutUint64(w[8:], st.h1)
		binary.LittleEndian.PutUint64(w[16:], st.h2)
		var r [16]byte
		binary.LittleEndian.PutUint64(r[0:], st.r0)
		binary.LittleEndian.PutUint64(r[8:], st.r1)
		var block [17]byte
		copy(block[:], rest)
		block[len(rest)] = 1
		p := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 130), big.NewInt(5))
		h := le(w[:])
		h.Add(h, le(block[:]))
		h.Mul(h, le(r[:]))
		h.Mod(h, p)
		out := make([]byte, 24)
		h.FillBytes(out)
		out = reverse(out)
		st.h0 = binary.LittleEndian.Uint64(out[0:])
		st.h1 = binary.LittleEndian.Uint64(out[8:])
		st.h2 = binary.LittleEndian.Uint64(out[16:])
	}
	st.finish(&tag, key)
	return tag
}

func reverse(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		out[len(b)-1-i] = c
	}
	return out
}
