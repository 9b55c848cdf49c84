//go:build amd64 && !purego

#include "textflag.h"
#include "zero_amd64.h"

// ChaCha20 with AVX-512. Each group of four zmm registers holds the four
// rows of four consecutive blocks, one block per 128-bit lane, so a
// quarter round works on all four columns of four blocks at once and
// VPROLD does each rotation in one instruction. One or two groups make
// the passes at the end of a message; before that a pass makes 16 blocks
// with one register per state word (block i in 32-bit lane i), which
// needs no shuffles in the rounds and one transpose at the end.

// Lane i of the fourth row gets block counter + i.
DATA laneCounters<>+0x00(SB)/4, $0
DATA laneCounters<>+0x04(SB)/4, $0
DATA laneCounters<>+0x08(SB)/4, $0
DATA laneCounters<>+0x0c(SB)/4, $0
DATA laneCounters<>+0x10(SB)/4, $1
DATA laneCounters<>+0x14(SB)/4, $0
DATA laneCounters<>+0x18(SB)/4, $0
DATA laneCounters<>+0x1c(SB)/4, $0
DATA laneCounters<>+0x20(SB)/4, $2
DATA laneCounters<>+0x24(SB)/4, $0
DATA laneCounters<>+0x28(SB)/4, $0
DATA laneCounters<>+0x2c(SB)/4, $0
DATA laneCounters<>+0x30(SB)/4, $3
DATA laneCounters<>+0x34(SB)/4, $0
DATA laneCounters<>+0x38(SB)/4, $0
DATA laneCounters<>+0x3c(SB)/4, $0
GLOBL laneCounters<>(SB), RODATA|NOPTR, $64

DATA iota16<>+0x00(SB)/8, $0x0000000100000000
DATA iota16<>+0x08(SB)/8, $0x0000000300000002
DATA iota16<>+0x10(SB)/8, $0x0000000500000004
DATA iota16<>+0x18(SB)/8, $0x0000000700000006
DATA iota16<>+0x20(SB)/8, $0x0000000900000008
DATA iota16<>+0x28(SB)/8, $0x0000000b0000000a
DATA iota16<>+0x30(SB)/8, $0x0000000d0000000c
DATA iota16<>+0x38(SB)/8, $0x0000000f0000000e
GLOBL iota16<>(SB), RODATA|NOPTR, $64

// Added to the fourth row after each group: four blocks further.
DATA groupStep<>+0x00(SB)/4, $4
DATA groupStep<>+0x04(SB)/4, $0
DATA groupStep<>+0x08(SB)/4, $0
DATA groupStep<>+0x0c(SB)/4, $0
GLOBL groupStep<>(SB), RODATA|NOPTR, $16

#define QR(a, b, c, d) \
	VPADDD b, a, a; VPXORD a, d, d; VPROLD $16, d, d; \
	VPADDD d, c, c; VPXORD c, b, b; VPROLD $12, b, b; \
	VPADDD b, a, a; VPXORD a, d, d; VPROLD $8, d, d; \
	VPADDD d, c, c; VPXORD c, b, b; VPROLD $7, b, b

// A column round, then a diagonal round: the shuffles line the diagonals
// up as columns and back.
#define DOUBLEROUND(a, b, c, d) \
	QR(a, b, c, d); \
	VPSHUFD $0x39, b, b; VPSHUFD $0x4e, c, c; VPSHUFD $0x93, d, d; \
	QR(a, b, c, d); \
	VPSHUFD $0x93, b, b; VPSHUFD $0x4e, c, c; VPSHUFD $0x39, d, d

// Starts a group at the current counter (Z19) and saves its fourth row.
#define GROUPINIT(a, b, c, d, save) \
	VMOVDQA64 Z16, a; VMOVDQA64 Z17, b; VMOVDQA64 Z18, c; \
	VPADDD Z20, Z19, d; VMOVDQA64 d, save; VPADDD Z21, Z19, Z19

// Adds the input back and transposes, leaving the group's four 64-byte
// keystream blocks in a, b, c, d in order.
#define GROUPFINISH(a, b, c, d, save) \
	VPADDD Z16, a, a; VPADDD Z17, b, b; VPADDD Z18, c, c; VPADDD save, d, d; \
	LANES4X4(a, b, c, d)

// Transposes the 128-bit lanes of a, b, c, d (lane i of the results is
// lane 0..3 of input i), using Z24..Z27.
#define LANES4X4(a, b, c, d) \
	VSHUFI32X4 $0x44, b, a, Z24; VSHUFI32X4 $0xee, b, a, Z25; \
	VSHUFI32X4 $0x44, d, c, Z26; VSHUFI32X4 $0xee, d, c, Z27; \
	VSHUFI32X4 $0x88, Z26, Z24, a; VSHUFI32X4 $0xdd, Z26, Z24, b; \
	VSHUFI32X4 $0x88, Z27, Z25, c; VSHUFI32X4 $0xdd, Z27, Z25, d

// Interleaves the 32-bit words of x and y within each 128-bit lane:
// lo gets words 0 and 1 of both, hi words 2 and 3.
#define INTERLEAVE32(x, y, lo, hi) \
	VPUNPCKLDQ y, x, lo; VPUNPCKHDQ y, x, hi

// From the interleaved pairs of words w, w+1 (l0 blocks 0-1, h0 blocks
// 2-3 of each lane) and w+2, w+3 (l1, h1), makes words w..w+3 of blocks
// 0, 1, 2, 3 of each lane.
#define INTERLEAVE64(l0, h0, l1, h1, b0, b1, b2, b3) \
	VPUNPCKLQDQ l1, l0, b0; VPUNPCKHQDQ l1, l0, b1; \
	VPUNPCKLQDQ h1, h0, b2; VPUNPCKHQDQ h1, h0, b3

#define XORSTORE(z, off) \
	VPXORD off(SI), z, z; VMOVDQU64 z, off(DI)

#define SPILL(z, off) \
	VMOVDQU64 z, off(SP)

// R14 = max(R14, R9): how much of the frame holds keystream.
#define SPILLED \
	CMPQ    R9, R14; \
	CMOVQHI R9, R14

// func xorKeyStreamAVX512(state *[16]uint32, dst1, src1 *byte, n1 int, dst2, src2 *byte, n2 int)
TEXT ·xorKeyStreamAVX512(SB), 0, $1024-56
	MOVQ state+0(FP), AX
	MOVQ dst1+8(FP), DI
	MOVQ src1+16(FP), SI
	MOVQ n1+24(FP), CX
	MOVQ dst2+32(FP), R10
	MOVQ src2+40(FP), R11
	MOVQ n2+48(FP), R12

	MOVL 48(AX), R13 // block counter
	XORQ R14, R14    // bytes of keystream spilled to the stack, to wipe
	MOVQ $0x1111, BX
	KMOVW BX, K2     // the counter word of each row-3 lane

pass:
	MOVQ CX, BX
	ADDQ R12, BX
	CMPQ BX, $512
	JA   pass16

	// The row registers for the one- and two-group passes.
	VBROADCASTI32X4 0(AX), Z16
	VBROADCASTI32X4 16(AX), Z17
	VBROADCASTI32X4 32(AX), Z18
	VBROADCASTI32X4 48(AX), Z19
	VPBROADCASTD    R13, Z22
	VPBLENDMD       Z22, Z19, K2, Z19
	VMOVDQU64       laneCounters<>(SB), Z20
	VBROADCASTI32X4 groupStep<>(SB), Z21
	CMPQ BX, $256
	JA   pass2

	// One group: up to 256 bytes left.
	GROUPINIT(Z0, Z1, Z2, Z3, Z28)
	MOVQ $10, DX

rounds1:
	DOUBLEROUND(Z0, Z1, Z2, Z3)
	DECQ DX
	JNZ  rounds1
	GROUPFINISH(Z0, Z1, Z2, Z3, Z28)
	ADDQ $4, R13
	SPILL(Z0, 0)
	SPILL(Z1, 64)
	SPILL(Z2, 128)
	SPILL(Z3, 192)
	MOVQ $256, R9
	SPILLED
	XORQ R8, R8
	JMP  emit

pass2:
	GROUPINIT(Z0, Z1, Z2, Z3, Z28)
	GROUPINIT(Z4, Z5, Z6, Z7, Z29)
	MOVQ $10, DX

rounds2:
	DOUBLEROUND(Z0, Z1, Z2, Z3)
	DOUBLEROUND(Z4, Z5, Z6, Z7)
	DECQ DX
	JNZ  rounds2
	GROUPFINISH(Z0, Z1, Z2, Z3, Z28)
	GROUPFINISH(Z4, Z5, Z6, Z7, Z29)
	ADDQ $8, R13
	CMPQ CX, $512
	JB   spill2
	XORSTORE(Z0, 0)
	XORSTORE(Z1, 64)
	XORSTORE(Z2, 128)
	XORSTORE(Z3, 192)
	XORSTORE(Z4, 256)
	XORSTORE(Z5, 320)
	XORSTORE(Z6, 384)
	XORSTORE(Z7, 448)
	ADDQ $512, SI
	ADDQ $512, DI
	SUBQ $512, CX
	JNZ  pass
	XORQ R8, R8
	XORQ R9, R9
	JMP  streamEnd

spill2:
	SPILL(Z0, 0)
	SPILL(Z1, 64)
	SPILL(Z2, 128)
	SPILL(Z3, 192)
	SPILL(Z4, 256)
	SPILL(Z5, 320)
	SPILL(Z6, 384)
	SPILL(Z7, 448)
	MOVQ $512, R9
	SPILLED
	XORQ R8, R8
	JMP  emit

pass16:
	VPBROADCASTD 0(AX), Z0
	VPBROADCASTD 4(AX), Z1
	VPBROADCASTD 8(AX), Z2
	VPBROADCASTD 12(AX), Z3
	VPBROADCASTD 16(AX), Z4
	VPBROADCASTD 20(AX), Z5
	VPBROADCASTD 24(AX), Z6
	VPBROADCASTD 28(AX), Z7
	VPBROADCASTD 32(AX), Z8
	VPBROADCASTD 36(AX), Z9
	VPBROADCASTD 40(AX), Z10
	VPBROADCASTD 44(AX), Z11
	VPBROADCASTD R13, Z12
	VPADDD       iota16<>(SB), Z12, Z12
	VMOVDQA64    Z12, Z16
	VPBROADCASTD 52(AX), Z13
	VPBROADCASTD 56(AX), Z14
	VPBROADCASTD 60(AX), Z15
	MOVQ $10, DX

rounds16:
	QR(Z0, Z4, Z8, Z12)
	QR(Z1, Z5, Z9, Z13)
	QR(Z2, Z6, Z10, Z14)
	QR(Z3, Z7, Z11, Z15)
	QR(Z0, Z5, Z10, Z15)
	QR(Z1, Z6, Z11, Z12)
	QR(Z2, Z7, Z8, Z13)
	QR(Z3, Z4, Z9, Z14)
	DECQ DX
	JNZ  rounds16

	VPADDD.BCST 0(AX), Z0, Z0
	VPADDD.BCST 4(AX), Z1, Z1
	VPADDD.BCST 8(AX), Z2, Z2
	VPADDD.BCST 12(AX), Z3, Z3
	VPADDD.BCST 16(AX), Z4, Z4
	VPADDD.BCST 20(AX), Z5, Z5
	VPADDD.BCST 24(AX), Z6, Z6
	VPADDD.BCST 28(AX), Z7, Z7
	VPADDD.BCST 32(AX), Z8, Z8
	VPADDD.BCST 36(AX), Z9, Z9
	VPADDD.BCST 40(AX), Z10, Z10
	VPADDD.BCST 44(AX), Z11, Z11
	VPADDD      Z16, Z12, Z12
	VPADDD.BCST 52(AX), Z13, Z13
	VPADDD.BCST 56(AX), Z14, Z14
	VPADDD.BCST 60(AX), Z15, Z15
	ADDQ $16, R13

	// Transpose: pairs of words, then quads of words per 128-bit lane,
	// then the 4x4 lane transpose of each group of four registers. Block
	// 4k+b ends up in Z(4b+k).
	INTERLEAVE32(Z0, Z1, Z16, Z17)
	INTERLEAVE32(Z2, Z3, Z18, Z19)
	INTERLEAVE32(Z4, Z5, Z20, Z21)
	INTERLEAVE32(Z6, Z7, Z22, Z23)
	INTERLEAVE32(Z8, Z9, Z24, Z25)
	INTERLEAVE32(Z10, Z11, Z26, Z27)
	INTERLEAVE32(Z12, Z13, Z28, Z29)
	INTERLEAVE32(Z14, Z15, Z30, Z31)
	INTERLEAVE64(Z16, Z17, Z18, Z19, Z0, Z4, Z8, Z12)
	INTERLEAVE64(Z20, Z21, Z22, Z23, Z1, Z5, Z9, Z13)
	INTERLEAVE64(Z24, Z25, Z26, Z27, Z2, Z6, Z10, Z14)
	INTERLEAVE64(Z28, Z29, Z30, Z31, Z3, Z7, Z11, Z15)
	LANES4X4(Z0, Z1, Z2, Z3)
	LANES4X4(Z4, Z5, Z6, Z7)
	LANES4X4(Z8, Z9, Z10, Z11)
	LANES4X4(Z12, Z13, Z14, Z15)
	CMPQ CX, $1024
	JB   spill16
	XORSTORE(Z0, 0)
	XORSTORE(Z4, 64)
	XORSTORE(Z8, 128)
	XORSTORE(Z12, 192)
	XORSTORE(Z1, 256)
	XORSTORE(Z5, 320)
	XORSTORE(Z9, 384)
	XORSTORE(Z13, 448)
	XORSTORE(Z2, 512)
	XORSTORE(Z6, 576)
	XORSTORE(Z10, 640)
	XORSTORE(Z14, 704)
	XORSTORE(Z3, 768)
	XORSTORE(Z7, 832)
	XORSTORE(Z11, 896)
	XORSTORE(Z15, 960)
	ADDQ $1024, SI
	ADDQ $1024, DI
	SUBQ $1024, CX
	JNZ  pass
	XORQ R8, R8
	XORQ R9, R9
	JMP  streamEnd

spill16:
	SPILL(Z0, 0)
	SPILL(Z4, 64)
	SPILL(Z8, 128)
	SPILL(Z12, 192)
	SPILL(Z1, 256)
	SPILL(Z5, 320)
	SPILL(Z9, 384)
	SPILL(Z13, 448)
	SPILL(Z2, 512)
	SPILL(Z6, 576)
	SPILL(Z10, 640)
	SPILL(Z14, 704)
	SPILL(Z3, 768)
	SPILL(Z7, 832)
	SPILL(Z11, 896)
	SPILL(Z15, 960)
	MOVQ $1024, R9
	SPILLED
	XORQ R8, R8

	// Hands out the spilled keystream, R8 bytes used of R9, block by
	// block; a stream's last partial block is masked and the rest of that
	// block's keystream skipped, so the second stream starts on a block.
emit:
	CMPQ CX, $64
	JB   emitTail
	VMOVDQU64 (SP)(R8*1), Z22
	VPXORD    (SI), Z22, Z22
	VMOVDQU64 Z22, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	ADDQ $64, R8
	SUBQ $64, CX
	JZ   streamEnd
	CMPQ R8, R9
	JB   emit
	JMP  pass

emitTail:
	MOVQ  $-1, BX
	BZHIQ CX, BX, BX
	KMOVQ BX, K1
	VMOVDQU8.Z (SI), K1, Z23
	VMOVDQU64  (SP)(R8*1), Z22
	VPXORD     Z23, Z22, Z22
	VMOVDQU8   Z22, K1, (DI)
	ADDQ $64, R8
	XORQ CX, CX

streamEnd:
	TESTQ R12, R12
	JZ    done
	MOVQ  R10, DI
	MOVQ  R11, SI
	MOVQ  R12, CX
	XORQ  R12, R12
	CMPQ  R8, R9
	JB    emit
	JMP   pass

done:
	// Zero the keystream spilled to the frame (it holds block 0, the
	// Poly1305 key, when called by the AEAD), then the vector registers.
	VPXORQ Z0, Z0, Z0
	XORQ   R8, R8

wipe:
	CMPQ      R8, R14
	JAE       wiped
	VMOVDQU64 Z0, (SP)(R8*1)
	ADDQ      $64, R8
	JMP       wipe

wiped:
	ZEROVECTORS
	RET
