//go:build amd64 && !purego

package chachapoly

import (
	"encoding/binary"
	"math/bits"
)

// Poly1305 (RFC 8439) as used by the ChaCha20-Poly1305 AEAD.
//
// The portable code keeps the accumulator in radix 2^64:
// h = h0 + h1·2^64 + h2·2^128. After every block h < 2^130 + 2^127.4,
// so h2 ≤ 4 between blocks and h2 ≤ 7 after a message block is added,
// which keeps h2·r0 and h2·r1 below 2^63. Everything is branch-free and
// table-free with respect to key and data; the only branches depend on
// lengths.

const (
	// Clamping of r (RFC 8439, section 2.5.1), split in two 64-bit halves.
	rClamp0 = 0x0ffffffc0fffffff
	rClamp1 = 0x0ffffffc0ffffffc

	// The vector path is worth its per-key setup (about 60 ns) only from
	// this many bytes of whole blocks on (measured on Sapphire Rapids).
	ifmaMinBytes = 144
)

type polyState struct {
	h0, h1, h2 uint64 // accumulator
	r0, r1     uint64 // clamped r
}

// macAEAD computes the RFC 8439 ChaCha20-Poly1305 tag: Poly1305 under the
// one-time key over ad || zeros to a multiple of 16 || ct || zeros to a
// multiple of 16 || le64(len(ad)) || le64(len(ct)).
func macAEAD(tag *[16]byte, key *[32]byte, ad, ct []byte) {
	st := polyState{
		r0: binary.LittleEndian.Uint64(key[0:8]) & rClamp0,
		r1: binary.LittleEndian.Uint64(key[8:16]) & rClamp1,
	}
	st.updatePadded(ad)

	// ct's whole blocks are read in place; its partial block (zero-padded)
	// and the length block are gathered in tail, for the vector path
	// together with the whole blocks after the last 128-byte chunk.
	var tail [256]byte
	full := len(ct) &^ 15
	if !useIFMA || full < ifmaMinBytes {
		st.updateBlocks(ct[:full])
		n := copy(tail[:], ct[full:])
		n = (n + 15) &^ 15
		binary.LittleEndian.PutUint64(tail[n:], uint64(len(ad)))
		binary.LittleEndian.PutUint64(tail[n+8:], uint64(len(ct)))
		polyBlocksGeneric(&st, tail[:n+16])
	} else {
		chunks := len(ct) &^ 127
		n := copy(tail[:], ct[chunks:])
		n = (n + 15) &^ 15
		binary.LittleEndian.PutUint64(tail[n:], uint64(len(ad)))
		binary.LittleEndian.PutUint64(tail[n+8:], uint64(len(ct)))
		polyBlocksVector(&st, ct[:chunks], &tail, n/16+1)
	}

	st.finish(tag, key)
	st = polyState{} // r
}

// updatePadded feeds msg followed by zeros up to a multiple of 16 bytes.
func (st *polyState) updatePadded(msg []byte) {
	full := len(msg) &^ 15
	st.updateBlocks(msg[:full])
	if full < len(msg) {
		var buf [16]byte
		copy(buf[:], msg[full:])
		polyBlocksGeneric(st, buf[:])
	}
}

// updateBlocks feeds whole 16-byte blocks; len(msg) must be a multiple of 16.
func (st *polyState) updateBlocks(msg []byte) {
	if useIFMA && len(msg) >= ifmaMinBytes {
		n := len(msg) &^ 127
		polyBlocksVector(st, msg[:n], &[256]byte{}, 0)
		msg = msg[n:]
	}
	polyBlocksGeneric(st, msg)
}

// polyBlocksGeneric absorbs len(msg)/16 full blocks (each with the 2^128
// bit set): h = (h + m)·r mod 2^130-5, partially reduced.
func polyBlocksGeneric(st *polyState, msg []byte) {
	h0, h1, h2 := st.h0, st.h1, st.h2
	r0, r1 := st.r0, st.r1
	for len(msg) >= 16 {
		var c uint64
		h0, c = bits.Add64(h0, binary.LittleEndian.Uint64(msg[0:8]), 0)
		h1, c = bits.Add64(h1, binary.LittleEndian.Uint64(msg[8:16]), c)
		h2 += c + 1

		// t = h·r as four 64-bit words. r0, r1 < 2^60, so each high
		// product word is below 2^60 and the column sums below cannot
		// overflow except where the carry is propagated.
		p00h, p00l := bits.Mul64(h0, r0)
		p01h, p01l := bits.Mul64(h0, r1)
		p10h, p10l := bits.Mul64(h1, r0)
		p11h, p11l := bits.Mul64(h1, r1)

		t0 := p00l
		t1, c := bits.Add64(p01l, p10l, 0)
		t2, _ := bits.Add64(p01h, p10h, c) // < 2^61 + 1
		t1, c = bits.Add64(t1, p00h, 0)
		t2, c = bits.Add64(t2, p11l, c)
		t3 := p11h + c
		t2, c = bits.Add64(t2, h2*r0, 0)
		t3 += h2*r1 + c

		// t = low + 2^130·high with low = t mod 2^130, and
		// 2^130 ≡ 5, so h = low + 4·high + high. 4·high is simply
		// t with its low 130 bits cleared, shifted down by 128.
		h0, h1, h2 = t0, t1, t2&3
		cc0, cc1 := t2&^3, t3
		h0, c = bits.Add64(h0, cc0, 0)
		h1, c = bits.Add64(h1, cc1, c)
		h2 += c
		cc0 = cc0>>2 | cc1<<62
		cc1 >>= 2
		h0, c = bits.Add64(h0, cc0, 0)
		h1, c = bits.Add64(h1, cc1, c)
		h2 += c

		msg = msg[16:]
	}
	st.h0, st.h1, st.h2 = h0, h1, h2
}

// finish writes (h mod p + s) mod 2^128 to tag, s being key[16:32].
func (st *polyState) finish(tag *[16]byte, key *[32]byte) {
	h0, h1, h2 := st.h0, st.h1, st.h2

	// h < 2^130 + 2^127.4 < 2p, so one conditional subtraction of p
	// reduces it fully: h - p = h + 5 - 2^130.
	g0, c := bits.Add64(h0, 5, 0)
	g1, c := bits.Add64(h1, 0, c)
	g2 := h2 + c
	mask := -(g2 >> 2) // all ones iff h+5 ≥ 2^130, i.e. h ≥ p
	h0 ^= (h0 ^ g0) & mask
	h1 ^= (h1 ^ g1) & mask

	h0, c = bits.Add64(h0, binary.LittleEndian.Uint64(key[16:24]), 0)
	h1, _ = bits.Add64(h1, binary.LittleEndian.Uint64(key[24:32]), c)
	binary.LittleEndian.PutUint64(tag[0:8], h0)
	binary.LittleEndian.PutUint64(tag[8:16], h1)
}
