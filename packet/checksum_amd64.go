package packet

import (
	"encoding/binary"
	"math/bits"

	"golang.org/x/sys/cpu"
)

// simdMin is the length from which sum uses AVX2, where the CPU has it.
const simdMin = 256

var haveAVX2 = cpu.X86.HasAVX2

// sumWordsAVX2 adds the little-endian 16-bit words of b, whose length is a
// multiple of 32 and at most maxAVX2Chunk, into 32-bit lanes and returns
// their total. It is in checksum_amd64.s.
//
//go:noescape
func sumWordsAVX2(b []byte) uint64

// maxAVX2Chunk keeps the 32-bit lanes of sumWordsAVX2 from overflowing: a
// lane adds one 16-bit word per 32 bytes, and the final reduction adds
// four lanes before widening (4 × 2^13 × 0xffff < 2^32).
const maxAVX2Chunk = 1 << 18

// copySumWordsAVX2 copies src, whose length is a multiple of 32 and at
// most maxAVX2Chunk, to dst and returns what sumWordsAVX2(src) would. It is
// in checksum_amd64.s.
//
//go:noescape
func copySumWordsAVX2(dst, src []byte) uint64

// sumSIMD is sum with AVX2. The one's-complement sum does not depend on
// byte order (RFC 1071), so the words are summed little-endian, folded,
// and swapped to the big-endian sum.
func sumSIMD(b []byte, acc uint64) uint64 {
	if !haveAVX2 {
		return sumScalar(b, acc)
	}
	var le uint64
	for len(b) >= 32 {
		n := min(len(b), maxAVX2Chunk) &^ 31
		le += sumWordsAVX2(b[:n])
		b = b[n:]
	}
	return addLE(b, le, acc)
}

// copySumSIMD is copySum with AVX2: the sum comes from the registers the
// copy loads, so the data is read once.
func copySumSIMD(dst, src []byte, acc uint64) uint64 {
	if !haveAVX2 {
		copy(dst, src)
		return sumScalar(src, acc)
	}
	dst = dst[:len(src)]
	var le uint64
	for len(src) >= 32 {
		n := min(len(src), maxAVX2Chunk) &^ 31
		le += copySumWordsAVX2(dst[:n], src[:n])
		dst, src = dst[n:], src[n:]
	}
	copy(dst, src)
	return addLE(src, le, acc)
}

// addLE adds the tail b (under 32 bytes, at an even offset) to the
// little-endian partial sum le, and le, folded and swapped to big-endian,
// to acc.
func addLE(b []byte, le, acc uint64) uint64 {
	for len(b) >= 2 {
		le += uint64(binary.LittleEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		le += uint64(b[0]) // the high byte of a big-endian word padded with zero
	}
	acc, c := bits.Add64(acc, uint64(bits.ReverseBytes16(fold(le))), 0)
	return acc + c
}
