//go:build amd64 && !purego

package chachapoly

import (
	"bytes"
	"testing"
	"unsafe"
)

// TestKeyStreamWipesFrame checks that xorKeyStreamAVX512 leaves none of
// the keystream it spilled in its stack frame, which lies below the
// caller's frame once it has returned.
func TestKeyStreamWipesFrame(t *testing.T) {
	requireAVX512(t)
	key, nonce := bytes.Repeat([]byte{7}, 32), bytes.Repeat([]byte{9}, 12)
	// 16 blocks of keystream; a 64-byte first stream (as for the Poly1305
	// key) and a 100-byte second one leave 14 blocks unused in the spill.
	stream := make([]byte, 16*64)
	referenceXOR(t, key, nonce, 0, stream, make([]byte, len(stream)))
	for _, n2 := range []int{0, 100, 1000} {
		if found := spillAfterCall(key, nonce, n2, stream); found >= 0 {
			t.Errorf("second stream of %d bytes: block %d of the keystream is still on the stack", n2, found)
		}
	}
}

// spillAfterCall makes one call and then looks for the first 32 bytes of
// any block of stream in the 2.5 KiB below its own frame, which the callee's
// frame occupied (the callee checked that the stack has room for it).
//
//go:noinline
func spillAfterCall(key, nonce []byte, n2 int, stream []byte) int {
	var marker [8]byte
	st := testState(key, nonce, 0)
	var src1, dst1 [64]byte
	src2, dst2 := make([]byte, max(n2, 1)), make([]byte, max(n2, 1))
	if n2 == 0 {
		xorKeyStreamAVX512(&st, &dst1[0], &src1[0], 64, nil, nil, 0)
	} else {
		xorKeyStreamAVX512(&st, &dst1[0], &src1[0], 64, &dst2[0], &src2[0], n2)
	}
	const below = 2560
	mem := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(&marker[0]), -below)), below)
	for b := 0; b < len(stream)/64; b++ {
		if bytes.Contains(mem, stream[64*b:64*b+32]) {
			return b
		}
	}
	return -1
}
