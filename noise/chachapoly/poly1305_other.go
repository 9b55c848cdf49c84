//go:build !amd64 || purego

package chachapoly

// useIFMA is always false without the amd64 assembly.
var useIFMA = false

// polyBlocksVector is never reached while useIFMA is false; it stays
// correct anyway.
func polyBlocksVector(st *polyState, msg []byte, tail *[256]byte, nTail int) {
	polyBlocksGeneric(st, msg)
	polyBlocksGeneric(st, tail[:16*nTail])
}
