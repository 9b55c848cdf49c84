//go:build amd64 && !purego

#include "textflag.h"
#include "zero_amd64.h"

// Poly1305 with AVX-512 IFMA in radix 2^44 (limbs of 44, 44, 42 bits).
//
// Two sets of eight lanes, A and B, one zmm per limb. The 128-byte chunks
// alternate between them: A takes chunks 0, 2, 4, ..., B takes 1, 3, 5, ...,
// and lane j of a chunk holds its block j. Each set does acc = acc·r^16 + m
// per chunk, so its dependency chain advances 16 blocks per multiplication
// and the two chains overlap. (With three chunks or more, A takes chunks
// 0 and 1 as acc = (h + m0)·r^8 + m1 while r^16 is being computed, and the
// alternation starts from chunk 2 with B; the bookkeeping is the same.) At the end, lane j of the set holding the last
// chunk is multiplied by r^(8-j) and lane j of the other by r^(16-j); the
// sum of all lanes is then the sequential Poly1305 accumulator over these
// blocks. The caller's accumulator enters in lane 0 of A.
//
// The last chunk may hold only k < 8 blocks (it then comes from the
// caller's zero-padded tail buffer): its 2^128 bits and its update of the
// accumulators are masked to lanes below k, and the final powers rotate
// by k: lane j of the set holding it takes r^(k-j), or r^(16+k-j) for
// j ≥ k, and lane j of the other set r^(8+k-j). With the powers laid out
// as T = [r^16 .. r^9, r^8 .. r^1] that is T[(j-k) mod 16], respectively
// T[(j-k+8) mod 16].
//
// h·a with a = (a0, a1, a2), s1 = 20·a1, s2 = 20·a2 (2^132 ≡ 20 mod p):
//   d0 = h0·a0 + h1·s2 + h2·s1
//   d1 = h0·a1 + h1·a0 + h2·s2
//   d2 = h0·a2 + h1·a1 + h2·a0
// VPMADD52LUQ/HUQ add the low/high 52 bits of each product. A high half
// weighs 2^52 = 2^8·2^44 relative to its limb: it goes to the next limb
// times 2^8, and off the top (2^140 ≡ 5·2^10) to limb 0 times 5120. Those
// scalings are VPMADD52LUQ by constants too, exact as the products stay
// below 2^52. The next chunk's message limbs seed the low accumulators, so
// the message costs no separate additions.
//
// Bounds (TestIFMABounds recomputes every figure here from the steps of
// the code and fails if one is exceeded). VPMADD52LUQ/HUQ read only the low
// 52 bits of each multiplicand and add the low/high 52 bits of the 104-bit
// product to a 64-bit lane. The result is exact if (1) every multiplicand
// is below 2^52, (2) every fold by 2^8 or 5·2^10, itself a VPMADD52LUQ,
// has a product below 2^52, and (3) no lane reaches 2^64. Then:
//
// - r, clamped, has limbs below 2^44, 2^44, 2^36. Every power of r is the
//   carried product of two earlier ones (or of r and 1); a carried product
//   of such values has limbs below 2^44 + 2^14, 2^44 + 2^10, 2^42 + 2^10,
//   so all powers do, and s1 = 20·a1 < 2^48.33, s2 = 20·a2 < 2^46.33.
// - The h multiplicands are the caller's h (limbs below 2^44, 2^44 and
//   2^42 + 2^40, as h2 ≤ 4) plus a block split with normalized limbs
//   (SPLITN: below 2^44, 2^44, 2^41 with the 2^128 bit); or such a block
//   alone; or an accumulator after ABSORB's carry. All are below 2^45,
//   2^45, 2^43: (1) holds, and no product reaches 2^45·2^46.33 = 2^91.33.
// - ABSORB: the message seeds the low lanes with limbs below 2^44, 2^52
//   (bits 44 to 95 of the block, not normalized) and 2^41 (bits 96 to 127
//   shifted by 8, and the 2^128 bit). Three products add at most 2^52 each
//   to a low lane and 2^39.33 each to a high lane: the high sums stay below
//   2^40.4, 2^38.7, 2^37.6, so their folds are below 2^48.4, 2^46.7 and
//   (times 5120) 2^49.9, which is (2). The low lanes stay below 2^54.1 (3).
// - CARRY, one parallel pass: limb k keeps its low 44 (44, 42) bits and
//   takes the bits above from limb k-1, the top limb's times 5 into limb 0
//   (5·(d2 >> 42) < 2^15, exact). The result is below 2^44 + 2^14,
//   2^44 + 2^10, 2^42 + 2^11, inside the multiplicand bound above, so the
//   loop can go on forever.
// - The end: two MULTERMS into one set of lanes, not carried. The high
//   sums are below 2^41.4, 2^39.7, 2^38.6; the top one times 5120 is below
//   2^50.9, the smallest margin of (2). Each lane is then below 2^54.7 and
//   the sum of eight lanes below 2^57.7: under the 2^58 that
//   polyBlocksVector's two carry passes assume, and (3).

// VPERMI2Q indices: the low and the high qwords of the eight blocks held
// by two consecutive 64-byte loads.
DATA idxLo<>+0x00(SB)/8, $0
DATA idxLo<>+0x08(SB)/8, $2
DATA idxLo<>+0x10(SB)/8, $4
DATA idxLo<>+0x18(SB)/8, $6
DATA idxLo<>+0x20(SB)/8, $8
DATA idxLo<>+0x28(SB)/8, $10
DATA idxLo<>+0x30(SB)/8, $12
DATA idxLo<>+0x38(SB)/8, $14
GLOBL idxLo<>(SB), RODATA|NOPTR, $64

DATA idxHi<>+0x00(SB)/8, $1
DATA idxHi<>+0x08(SB)/8, $3
DATA idxHi<>+0x10(SB)/8, $5
DATA idxHi<>+0x18(SB)/8, $7
DATA idxHi<>+0x20(SB)/8, $9
DATA idxHi<>+0x28(SB)/8, $11
DATA idxHi<>+0x30(SB)/8, $13
DATA idxHi<>+0x38(SB)/8, $15
GLOBL idxHi<>(SB), RODATA|NOPTR, $64

// VPSHUFB control: each qword x becomes (x >> 32) << 8.
DATA shufHi<>+0x00(SB)/8, $0x8080800706050480
DATA shufHi<>+0x08(SB)/8, $0x8080800f0e0d0c80
DATA shufHi<>+0x10(SB)/8, $0x8080800706050480
DATA shufHi<>+0x18(SB)/8, $0x8080800f0e0d0c80
DATA shufHi<>+0x20(SB)/8, $0x8080800706050480
DATA shufHi<>+0x28(SB)/8, $0x8080800f0e0d0c80
DATA shufHi<>+0x30(SB)/8, $0x8080800706050480
DATA shufHi<>+0x38(SB)/8, $0x8080800f0e0d0c80
GLOBL shufHi<>(SB), RODATA|NOPTR, $64

// The number 1 (limb 0) in lanes 4-7.
DATA oneHi<>+0x00(SB)/8, $0
DATA oneHi<>+0x08(SB)/8, $0
DATA oneHi<>+0x10(SB)/8, $0
DATA oneHi<>+0x18(SB)/8, $0
DATA oneHi<>+0x20(SB)/8, $1
DATA oneHi<>+0x28(SB)/8, $1
DATA oneHi<>+0x30(SB)/8, $1
DATA oneHi<>+0x38(SB)/8, $1
GLOBL oneHi<>(SB), RODATA|NOPTR, $64

DATA iota<>+0x00(SB)/8, $0
DATA iota<>+0x08(SB)/8, $1
DATA iota<>+0x10(SB)/8, $2
DATA iota<>+0x18(SB)/8, $3
DATA iota<>+0x20(SB)/8, $4
DATA iota<>+0x28(SB)/8, $5
DATA iota<>+0x30(SB)/8, $6
DATA iota<>+0x38(SB)/8, $7
GLOBL iota<>(SB), RODATA|NOPTR, $64

DATA c15<>+0x00(SB)/8, $15
GLOBL c15<>(SB), RODATA|NOPTR, $8
DATA c8<>+0x00(SB)/8, $8
GLOBL c8<>(SB), RODATA|NOPTR, $8
DATA mask44<>+0x00(SB)/8, $0x00000fffffffffff
GLOBL mask44<>(SB), RODATA|NOPTR, $8
DATA mask42<>+0x00(SB)/8, $0x000003ffffffffff
GLOBL mask42<>(SB), RODATA|NOPTR, $8
// The 2^128 bit of a block, in limb 2.
DATA bit40<>+0x00(SB)/8, $0x0000010000000000
GLOBL bit40<>(SB), RODATA|NOPTR, $8
DATA c2p20<>+0x00(SB)/8, $0x100000
GLOBL c2p20<>(SB), RODATA|NOPTR, $8
DATA c256<>+0x00(SB)/8, $256
GLOBL c256<>(SB), RODATA|NOPTR, $8
DATA c5120<>+0x00(SB)/8, $5120
GLOBL c5120<>(SB), RODATA|NOPTR, $8
DATA c5<>+0x00(SB)/8, $5
GLOBL c5<>(SB), RODATA|NOPTR, $8
DATA one<>+0x00(SB)/8, $1
GLOBL one<>(SB), RODATA|NOPTR, $8

// Registers: Z0-Z2 set A, Z3-Z5 set B, Z6-Z8 low accumulators (d0-d2),
// Z9-Z11 high accumulators, Z12-Z13 and Z31 temporaries,
// Z14-Z18 r^16 in every lane (a0, a1, a2, s1, s2),
// Z19-Z23 r^(8-j) in lane j, Z24-Z28 r^(16-j) in lane j,
// Z29 mask44, Z30 mask42.

// s = 20·a. Clobbers Z31.
#define MUL20(a, s) \
	VPSLLQ $2, a, s; \
	VPSLLQ $4, a, Z31; \
	VPADDQ Z31, s, s

#define ZEROACC \
	VPXORQ Z6, Z6, Z6; \
	VPXORQ Z7, Z7, Z7; \
	VPXORQ Z8, Z8, Z8; \
	VPXORQ Z9, Z9, Z9; \
	VPXORQ Z10, Z10, Z10; \
	VPXORQ Z11, Z11, Z11

// Accumulate the 18 partial products of h·a into Z6-Z11.
#define MULTERMS(h0, h1, h2, a0, a1, a2, s1, s2) \
	VPMADD52LUQ a0, h0, Z6; \
	VPMADD52LUQ a1, h0, Z7; \
	VPMADD52LUQ a2, h0, Z8; \
	VPMADD52HUQ a0, h0, Z9; \
	VPMADD52HUQ a1, h0, Z10; \
	VPMADD52HUQ a2, h0, Z11; \
	VPMADD52LUQ s2, h1, Z6; \
	VPMADD52LUQ a0, h1, Z7; \
	VPMADD52LUQ a1, h1, Z8; \
	VPMADD52HUQ s2, h1, Z9; \
	VPMADD52HUQ a0, h1, Z10; \
	VPMADD52HUQ a1, h1, Z11; \
	VPMADD52LUQ s1, h2, Z6; \
	VPMADD52LUQ s2, h2, Z7; \
	VPMADD52LUQ a0, h2, Z8; \
	VPMADD52HUQ s1, h2, Z9; \
	VPMADD52HUQ s2, h2, Z10; \
	VPMADD52HUQ a0, h2, Z11

// Fold the high accumulators into the low ones (see above).
#define COMBINE \
	VPMADD52LUQ.BCST c5120<>(SB), Z11, Z6; \
	VPMADD52LUQ.BCST c256<>(SB), Z9, Z7; \
	VPMADD52LUQ.BCST c256<>(SB), Z10, Z8

// One parallel carry pass from Z6-Z8 into the lanes of h selected by
// mask k. Clobbers Z9-Z11.
#define CARRY(k, h0, h1, h2) \
	VPSRLQ $44, Z6, Z9; \
	VPSRLQ $44, Z7, Z10; \
	VPSRLQ $42, Z8, Z11; \
	VPANDQ Z29, Z6, k, h0; \
	VPANDQ Z29, Z7, k, h1; \
	VPANDQ Z30, Z8, k, h2; \
	VPADDQ Z9, h1, k, h1; \
	VPADDQ Z10, h2, k, h2; \
	VPMADD52LUQ.BCST c5<>(SB), Z11, k, h0

// h = h·a, carried.
#define MUL(h0, h1, h2, a0, a1, a2, s1, s2) \
	ZEROACC; \
	MULTERMS(h0, h1, h2, a0, a1, a2, s1, s2); \
	COMBINE; \
	CARRY(K7, h0, h1, h2)

// Load the eight blocks at SI: Z6 = low qwords, Z12 = high qwords.
#define LOAD \
	VMOVDQU64 idxLo<>(SB), Z6; \
	VMOVDQU64 (SI), Z13; \
	VPERMI2Q  64(SI), Z13, Z6; \
	VMOVDQU64 idxHi<>(SB), Z12; \
	VPERMI2Q  64(SI), Z13, Z12

// Z6-Z8 = the blocks at SI as normalized limbs (44, 44, 41 bits), the
// 2^128 bit in the lanes of K6.
#define SPLITN \
	LOAD; \
	VPSRLQ     $44, Z6, Z7; \
	VPSLLQ     $20, Z12, Z13; \
	VPTERNLOGQ $0xa8, Z29, Z13, Z7; \
	VPANDQ     Z29, Z6, Z6; \
	VPSRLQ     $24, Z12, Z8; \
	VPORQ.BCST bit40<>(SB), Z8, K6, Z8

// Z6-Z8 = the blocks at SI as limbs of weight 2^0, 2^44, 2^88 that
// are not normalized: the middle one takes the high qword's low 32 bits
// (at most 2^52 + 2^20), the top one the rest; 2^128 bits in the lanes of
// K6. Z9-Z11 = 0.
#define SPLIT \
	LOAD; \
	VPXORQ      Z9, Z9, Z9; \
	VPXORQ      Z10, Z10, Z10; \
	VPXORQ      Z11, Z11, Z11; \
	VPSRLQ      $44, Z6, Z7; \
	VPANDQ      Z29, Z6, Z6; \
	VPMADD52LUQ.BCST c2p20<>(SB), Z12, Z7; \
	VPSHUFB     shufHi<>(SB), Z12, Z8; \
	VPORQ.BCST  bit40<>(SB), Z8, K6, Z8

// h = h·r^16 + the blocks at SI, in the lanes of K6.
#define ABSORB(h0, h1, h2) \
	SPLIT; \
	MULTERMS(h0, h1, h2, Z14, Z15, Z16, Z17, Z18); \
	COMBINE; \
	CARRY(K6, h0, h1, h2)

// Next chunk: SI += 128, switching to the tail buffer (R8) once BX chunks
// have been read in place.
#define ADVANCE \
	ADDQ    $128, SI; \
	DECQ    BX; \
	CMOVQEQ R8, SI

// Z14-Z18 = the powers T[idx], T = [Z24-Z28 lanes, Z19-Z23 lanes].
#define POWERS(idx) \
	VMOVDQA64 Z24, Z14; \
	VMOVDQA64 Z25, Z15; \
	VMOVDQA64 Z26, Z16; \
	VMOVDQA64 Z27, Z17; \
	VMOVDQA64 Z28, Z18; \
	VPERMT2Q  Z19, idx, Z14; \
	VPERMT2Q  Z20, idx, Z15; \
	VPERMT2Q  Z21, idx, Z16; \
	VPERMT2Q  Z22, idx, Z17; \
	VPERMT2Q  Z23, idx, Z18

// Lane sum of a zmm (z, with its y and x names) stored to dst. Clobbers Z13.
#define HSUM(z, y, x, dst) \
	VEXTRACTI64X4 $1, z, Y13; \
	VPADDQ        Y13, y, y; \
	VEXTRACTI128  $1, y, X13; \
	VPADDQ        X13, x, x; \
	VPSHUFD       $0x4e, x, X13; \
	VPADDQ        X13, x, x; \
	VMOVQ         x, dst

// func polyBlocksIFMA(st *ifmaState, msg *byte, inPlace int, tail *byte, chunks, lastLanes int)
TEXT ·polyBlocksIFMA(SB), NOSPLIT, $0-48
	MOVQ st+0(FP), DI
	MOVQ msg+8(FP), SI
	MOVQ inPlace+16(FP), BX
	MOVQ tail+24(FP), R8
	MOVQ chunks+32(FP), CX
	MOVQ lastLanes+40(FP), DX

	VPBROADCASTQ mask44<>(SB), Z29
	VPBROADCASTQ mask42<>(SB), Z30

	// K5 = the lanes of the last chunk (0xff >> (8-k)), K6 = the lanes
	// of the current one, K7 = all.
	MOVQ  CX, R9
	MOVL  $8, CX
	SUBL  DX, CX
	MOVL  $0xff, AX
	KMOVW AX, K6
	KMOVW AX, K7
	SHRL  CX, AX
	KMOVW AX, K5
	MOVQ  R9, CX

	// Powers of r, three dependent multiplications up to r^8:
	// r^2 = r·r;
	// [r^4 x5, r^3, r^2, r] = [r^2 x6, r, r]·[r^2 x5, r, r, 1];
	// [r^8 .. r^1] = that times its own lanes 4-7 moved down over 1s;
	// then [r^16 .. r^9] = that times r^8 (its lane 0), further below.
	VPBROADCASTQ 24(DI), Z14
	VPBROADCASTQ 32(DI), Z15
	VPBROADCASTQ 40(DI), Z16
	MUL20(Z15, Z17)
	MUL20(Z16, Z18)
	VMOVDQA64 Z14, Z0
	VMOVDQA64 Z15, Z1
	VMOVDQA64 Z16, Z2
	MUL(Z0, Z1, Z2, Z14, Z15, Z16, Z17, Z18)

	MOVL  $0xc0, AX
	KMOVW AX, K1
	MOVL  $0x60, AX
	KMOVW AX, K2
	MOVL  $0x7f, AX
	KMOVW AX, K3
	MOVL  $0x80, AX
	KMOVW AX, K4

	// Z3-Z5 = [r^2 x6, r, r]
	VMOVDQA64 Z0, Z3
	VMOVDQA64 Z1, Z4
	VMOVDQA64 Z2, Z5
	VMOVDQA64 Z14, K1, Z3
	VMOVDQA64 Z15, K1, Z4
	VMOVDQA64 Z16, K1, Z5

	// Z19-Z23 = [r^2 x5, r, r, 1] and its s1, s2
	VMOVDQA64.Z  Z0, K3, Z19
	VMOVDQA64.Z  Z1, K3, Z20
	VMOVDQA64.Z  Z2, K3, Z21
	VMOVDQA64    Z14, K2, Z19
	VMOVDQA64    Z15, K2, Z20
	VMOVDQA64    Z16, K2, Z21
	VPBROADCASTQ one<>(SB), K4, Z19
	MUL20(Z20, Z22)
	MUL20(Z21, Z23)
	MUL(Z3, Z4, Z5, Z19, Z20, Z21, Z22, Z23)

	// Z0-Z2 = [r^4, r^3, r^2, r, 1, 1, 1, 1], times Z3-Z5 into Z19-Z23.
	VEXTRACTI64X4 $1, Z3, Y0
	VEXTRACTI64X4 $1, Z4, Y1
	VEXTRACTI64X4 $1, Z5, Y2
	VPORQ         oneHi<>(SB), Z0, Z0
	MUL20(Z4, Z12)
	MUL20(Z5, Z13)
	MUL(Z0, Z1, Z2, Z3, Z4, Z5, Z12, Z13)
	VMOVDQA64     Z0, Z19
	VMOVDQA64     Z1, Z20
	VMOVDQA64     Z2, Z21
	MUL20(Z20, Z22)
	MUL20(Z21, Z23)

	// Z14-Z18 = r^8 everywhere.
	VPBROADCASTQ X19, Z14
	VPBROADCASTQ X20, Z15
	VPBROADCASTQ X21, Z16
	VPBROADCASTQ X22, Z17
	VPBROADCASTQ X23, Z18

	// A = caller's h (lane 0; VMOVQ clears the rest) + chunk 0.
	VMOVQ 0(DI), X0
	VMOVQ 8(DI), X1
	VMOVQ 16(DI), X2
	CMPQ  CX, $1
	JNE   first
	KMOVW K5, K6

first:
	SPLITN
	VPADDQ Z6, Z0, Z0
	VPADDQ Z7, Z1, Z1
	VPADDQ Z8, Z2, Z2
	ADVANCE
	CMPQ   CX, $3
	JB     powers16

	// With three chunks or more, chunk 1 is whole and goes straight into
	// A: A = A·r^8 + chunk 1. This multiplication overlaps the one for
	// r^16 below instead of waiting for it.
	SPLIT
	MULTERMS(Z0, Z1, Z2, Z14, Z15, Z16, Z17, Z18)
	COMBINE
	CARRY(K7, Z0, Z1, Z2)
	ADVANCE
	DECQ   CX

powers16:
	// Z24-Z28 = [r^16 .. r^9] = [r^8 .. r^1]·r^8; Z14-Z18 = r^16.
	VMOVDQA64    Z19, Z3
	VMOVDQA64    Z20, Z4
	VMOVDQA64    Z21, Z5
	MUL(Z3, Z4, Z5, Z14, Z15, Z16, Z17, Z18)
	VMOVDQA64    Z3, Z24
	VMOVDQA64    Z4, Z25
	VMOVDQA64    Z5, Z26
	MUL20(Z25, Z27)
	MUL20(Z26, Z28)
	VPBROADCASTQ X24, Z14
	VPBROADCASTQ X25, Z15
	VPBROADCASTQ X26, Z16
	VPBROADCASTQ X27, Z17
	VPBROADCASTQ X28, Z18

	// B = 0, then the next chunk if there is one.
	VPXORQ Z3, Z3, Z3
	VPXORQ Z4, Z4, Z4
	VPXORQ Z5, Z5, Z5
	DECQ   CX
	JZ     lastA
	CMPQ   CX, $1
	JNE    second
	KMOVW  K5, K6

second:
	SPLITN
	VMOVDQA64 Z6, Z3
	VMOVDQA64 Z7, Z4
	VMOVDQA64 Z8, Z5
	ADVANCE
	DECQ      CX
	JZ        lastB

loop:
	CMPQ  CX, $1
	JNE   loopA
	KMOVW K5, K6

loopA:
	ABSORB(Z0, Z1, Z2)
	ADVANCE
	DECQ  CX
	JZ    lastA
	CMPQ  CX, $1
	JNE   loopB
	KMOVW K5, K6

loopB:
	ABSORB(Z3, Z4, Z5)
	ADVANCE
	DECQ  CX
	JNZ   loop

lastB:
	// B holds the last chunk: A takes T[(j-k+8) mod 16], B T[(j-k) mod 16].
	VPBROADCASTQ DX, Z12
	VMOVDQU64    iota<>(SB), Z13
	VPSUBQ       Z12, Z13, Z13
	VPANDQ.BCST  c15<>(SB), Z13, Z13
	VPXORQ.BCST  c8<>(SB), Z13, Z12
	JMP          final

lastA:
	// A holds the last chunk: A takes T[(j-k) mod 16], B T[(j-k+8) mod 16].
	VPBROADCASTQ DX, Z13
	VMOVDQU64    iota<>(SB), Z12
	VPSUBQ       Z13, Z12, Z12
	VPANDQ.BCST  c15<>(SB), Z12, Z12
	VPXORQ.BCST  c8<>(SB), Z12, Z13

final:
	ZEROACC
	POWERS(Z12)
	MULTERMS(Z0, Z1, Z2, Z14, Z15, Z16, Z17, Z18)
	POWERS(Z13)
	MULTERMS(Z3, Z4, Z5, Z14, Z15, Z16, Z17, Z18)
	COMBINE
	HSUM(Z6, Y6, X6, 0(DI))
	HSUM(Z7, Y7, X7, 8(DI))
	HSUM(Z8, Y8, X8, 16(DI))

	// The vector registers hold powers of r and the state.
	ZEROVECTORS
	RET
