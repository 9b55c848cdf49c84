//go:build amd64 && !purego

package chachapoly

// useIFMA selects the IFMA kernel for long inputs; without it macAEAD
// runs polyBlocksGeneric only. New picks this package only on CPUs with
// IFMA; tests turn it off to check polyBlocksGeneric on every length.
var useIFMA = cpuFeatures.AVX512IFMA

// ifmaState is shared with the assembly; both fields are in radix 2^44
// (limbs of 44, 44 and 42 bits).
type ifmaState struct {
	h [3]uint64 // in: accumulator; out: lane sums, each below 2^58
	r [3]uint64 // clamped r
}

// polyBlocksIFMA absorbs chunks 128-byte chunks of full blocks: inPlace
// of them at msg, the rest from tail. The last chunk holds only its first
// lastLanes (1 to 8) blocks; it comes from tail, zero beyond them, unless
// lastLanes is 8. chunks must be at least 1.
//
//go:noescape
func polyBlocksIFMA(st *ifmaState, msg *byte, inPlace int, tail *byte, chunks, lastLanes int)

// polyBlocksVector absorbs the full blocks of msg (its length a multiple
// of 128) followed by the first nTail (at most 16) blocks of tail, which
// must be zero beyond them, with the IFMA code, converting the accumulator
// to and from radix 2^44. There must be at least one block.
func polyBlocksVector(st *polyState, msg []byte, tail *[256]byte, nTail int) {
	const m44, m42 = 1<<44 - 1, 1<<42 - 1
	var v ifmaState
	// h < 2^130 + 2^128, so the top limb stays below 2^43.
	v.h[0] = st.h0 & m44
	v.h[1] = (st.h0>>44 | st.h1<<20) & m44
	v.h[2] = st.h1>>24 | st.h2<<40
	v.r[0] = st.r0 & m44
	v.r[1] = (st.r0>>44 | st.r1<<20) & m44
	v.r[2] = st.r1 >> 24

	inPlace := len(msg) / 128
	tailChunks := (nTail + 7) / 8
	lastLanes := 8
	if tailChunks > 0 {
		lastLanes = nTail - 8*(tailChunks-1)
	}
	p := &tail[0]
	if inPlace > 0 {
		p = &msg[0]
	}
	polyBlocksIFMA(&v, p, inPlace, &tail[0], inPlace+tailChunks, lastLanes)

	// Carry twice around so that h ends below 2^130 + 2^89 (h2 ≤ 4), as
	// polyBlocksGeneric and finish expect.
	l0, l1, l2 := v.h[0], v.h[1], v.h[2]
	l1 += l0 >> 44
	l0 &= m44
	l2 += l1 >> 44
	l1 &= m44
	l0 += (l2 >> 42) * 5
	l2 &= m42
	l1 += l0 >> 44
	l0 &= m44
	l2 += l1 >> 44
	l1 &= m44
	st.h0 = l0 | l1<<44
	st.h1 = l1>>20 | l2<<24
	st.h2 = l2 >> 40
	v = ifmaState{} // r
}
