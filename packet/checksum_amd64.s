#include "textflag.h"

// SUM_LANES adds the eight 32-bit lanes of Y0 and of Y1 into AX: first
// into four 32-bit lanes, widened then to four 64-bit ones.
#define SUM_LANES \
	VPADDD       Y1, Y0, Y0; \
	VEXTRACTI128 $1, Y0, X1; \
	VPADDD       X1, X0, X0; \
	VPMOVZXDQ    X0, Y0;     \
	VEXTRACTI128 $1, Y0, X1; \
	VPADDQ       X1, X0, X0; \
	VPSHUFD      $0x4e, X0, X1; \
	VPADDQ       X1, X0, X0; \
	MOVQ         X0, AX;     \
	VZEROUPPER

// func sumWordsAVX2(b []byte) uint64
TEXT ·sumWordsAVX2(SB), NOSPLIT, $0-32
	MOVQ b_base+0(FP), SI
	MOVQ b_len+8(FP), CX
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	SHRQ $5, CX
	JZ   done

loop:
	VPMOVZXWD (SI), Y2
	VPMOVZXWD 16(SI), Y3
	VPADDD    Y2, Y0, Y0
	VPADDD    Y3, Y1, Y1
	ADDQ      $32, SI
	DECQ      CX
	JNZ       loop

done:
	SUM_LANES
	MOVQ AX, ret+24(FP)
	RET

// func copySumWordsAVX2(dst, src []byte) uint64
// Like sumWordsAVX2 over src, and stores each 32 bytes it loads to dst.
TEXT ·copySumWordsAVX2(SB), NOSPLIT, $0-56
	MOVQ dst_base+0(FP), DI
	MOVQ src_base+24(FP), SI
	MOVQ src_len+32(FP), CX
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	SHRQ $5, CX
	JZ   cdone

cloop:
	VMOVDQU      (SI), Y4
	VMOVDQU      Y4, (DI)
	VPMOVZXWD    X4, Y2
	VEXTRACTI128 $1, Y4, X5
	VPMOVZXWD    X5, Y3
	VPADDD       Y2, Y0, Y0
	VPADDD       Y3, Y1, Y1
	ADDQ         $32, SI
	ADDQ         $32, DI
	DECQ         CX
	JNZ          cloop

cdone:
	SUM_LANES
	MOVQ AX, ret+48(FP)
	RET
