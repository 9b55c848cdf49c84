package noise

import (
	"encoding/binary"
	"math/bits"

	"github.com/gotatun/gotatun/internal/cryptoimpl"
	"golang.org/x/crypto/blake2s"
)

// Keyed BLAKE2s-128 (RFC 7693) for mac1, mac2 and cookies, computed on the
// stack. golang.org/x/crypto/blake2s only offers keyed hashing through a
// heap-allocated hash.Hash, and a device under a handshake flood computes
// three of these MACs per cookie reply. Checked against RFC 7693's
// self-test and x/crypto (blake2smac_test.go); when x/crypto is forced
// (GOTATUN_CRYPTO=xcrypto, device.Options.XCrypto, -tags purego) every MAC
// goes through x/crypto instead.

var blake2sIV = [8]uint32{
	0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
	0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
}

var blake2sSigma = [10][16]byte{
	{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
	{14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
	{11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
	{7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
	{9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
	{2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
	{12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
	{13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
	{6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
	{10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
}

const blake2sBlock = 64

// macKey is the BLAKE2s-128 state after absorbing a key block, so that a
// fixed key (mac1's) is processed once rather than per message. It keeps
// the key too, for x/crypto when that is forced (internal/cryptoimpl).
type macKey struct {
	h   [8]uint32
	key [32]byte
	n   uint8 // key length
}

// newMACKey prepares key (1 to 32 bytes) for keyed BLAKE2s-128.
func newMACKey(key []byte) macKey {
	if len(key) == 0 || len(key) > 32 {
		panic("noise: blake2s MAC key of invalid size")
	}
	k := macKey{n: uint8(len(key))}
	copy(k.key[:], key)
	k.h, _ = blake2sStart(key, macSize)
	return k
}

// sum writes the MAC of data under k to dst.
func (k *macKey) sum(dst *[macSize]byte, data []byte) {
	if cryptoimpl.XCrypto() {
		xcryptoMAC(dst, k.key[:k.n], data)
		return
	}
	if len(data) == 0 {
		blake2sSum(dst[:], k.key[:k.n], nil) // the key block is the last
		return
	}
	blake2sFinish(dst[:], k.h, blake2sBlock, data)
}

// macWith computes the keyed BLAKE2s-128 of data under key (16 or 32 bytes).
func macWith(dst *[macSize]byte, key []byte, data []byte) {
	if cryptoimpl.XCrypto() {
		xcryptoMAC(dst, key, data)
		return
	}
	blake2sSum(dst[:], key, data)
}

// blake2sSum writes the BLAKE2s digest of data under key (none, or 1 to 32
// bytes) to dst (1 to 32 bytes: the digest length).
func blake2sSum(dst, key, data []byte) {
	if len(key) > 0 && len(data) == 0 {
		// RFC 7693 3.3: the padded key is then the only, and last, block.
		h := blake2sIV
		h[0] ^= 0x01010000 ^ uint32(len(key))<<8 ^ uint32(len(dst))
		var block [blake2sBlock]byte
		copy(block[:], key)
		blake2sCompress(&h, &block, blake2sBlock, true)
		clear(block[:])
		blake2sOutput(dst, &h)
		return
	}
	h, t := blake2sStart(key, len(dst))
	blake2sFinish(dst, h, t, data)
}

// xcryptoMAC is macWith on golang.org/x/crypto/blake2s, which allocates.
func xcryptoMAC(dst *[macSize]byte, key []byte, data []byte) {
	// Copies of key, data and the digest, so that handing them to x/crypto's hash does
	// not move the callers' stack buffers to the heap on the fast path.
	m, err := blake2s.New128(append([]byte(nil), key...))
	if err != nil {
		panic("noise: blake2s MAC key of invalid size: " + err.Error())
	}
	m.Write(append([]byte(nil), data...))
	copy(dst[:], m.Sum(nil))
}

// blake2sStart returns the BLAKE2s state for a digest of outLen bytes (1
// to 32) under key (none, or 1 to 32 bytes), with the key block absorbed,
// and the byte count so far.
func blake2sStart(key []byte, outLen int) (h [8]uint32, t uint64) {
	h = blake2sIV
	h[0] ^= 0x01010000 ^ uint32(len(key))<<8 ^ uint32(outLen)
	if len(key) == 0 {
		return h, 0
	}
	var block [blake2sBlock]byte
	copy(block[:], key)
	blake2sCompress(&h, &block, blake2sBlock, false)
	clear(block[:])
	return h, blake2sBlock
}

// blake2sFinish absorbs data into h (t bytes so far) and writes the first
// len(dst) bytes of the digest to dst. After a key block, data must not be
// empty (blake2sSum handles that case).
func blake2sFinish(dst []byte, h [8]uint32, t uint64, data []byte) {
	var block [blake2sBlock]byte
	for len(data) > blake2sBlock {
		t += blake2sBlock
		blake2sCompress(&h, (*[blake2sBlock]byte)(data), t, false)
		data = data[blake2sBlock:]
	}
	n := copy(block[:], data)
	t += uint64(n)
	blake2sCompress(&h, &block, t, true)
	clear(block[:])
	blake2sOutput(dst, &h)
}

// blake2sOutput writes the first len(dst) bytes of the digest in h to dst
// and clears h.
func blake2sOutput(dst []byte, h *[8]uint32) {
	var out [32]byte
	for i := range h {
		binary.LittleEndian.PutUint32(out[4*i:], h[i])
	}
	copy(dst, out[:])
	clear(out[:])
	clear(h[:])
}

func blake2sCompress(h *[8]uint32, block *[blake2sBlock]byte, t uint64, last bool) {
	var m [16]uint32
	for i := range m {
		m[i] = binary.LittleEndian.Uint32(block[4*i:])
	}
	v0, v1, v2, v3, v4, v5, v6, v7 := h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]
	v8, v9, v10, v11 := blake2sIV[0], blake2sIV[1], blake2sIV[2], blake2sIV[3]
	v12 := blake2sIV[4] ^ uint32(t)
	v13 := blake2sIV[5] ^ uint32(t>>32)
	v14, v15 := blake2sIV[6], blake2sIV[7]
	if last {
		v14 = ^v14
	}
	for r := range blake2sSigma {
		s := &blake2sSigma[r]
		v0, v4, v8, v12 = g(v0, v4, v8, v12, m[s[0]], m[s[1]])
		v1, v5, v9, v13 = g(v1, v5, v9, v13, m[s[2]], m[s[3]])
		v2, v6, v10, v14 = g(v2, v6, v10, v14, m[s[4]], m[s[5]])
		v3, v7, v11, v15 = g(v3, v7, v11, v15, m[s[6]], m[s[7]])
		v0, v5, v10, v15 = g(v0, v5, v10, v15, m[s[8]], m[s[9]])
		v1, v6, v11, v12 = g(v1, v6, v11, v12, m[s[10]], m[s[11]])
		v2, v7, v8, v13 = g(v2, v7, v8, v13, m[s[12]], m[s[13]])
		v3, v4, v9, v14 = g(v3, v4, v9, v14, m[s[14]], m[s[15]])
	}
	h[0] ^= v0 ^ v8
	h[1] ^= v1 ^ v9
	h[2] ^= v2 ^ v10
	h[3] ^= v3 ^ v11
	h[4] ^= v4 ^ v12
	h[5] ^= v5 ^ v13
	h[6] ^= v6 ^ v14
	h[7] ^= v7 ^ v15
	clear(m[:])
}

func g(a, b, c, d, x, y uint32) (uint32, uint32, uint32, uint32) {
	a += b + x
	d = bits.RotateLeft32(d^a, -16)
	c += d
	b = bits.RotateLeft32(b^c, -12)
	a += b + y
	d = bits.RotateLeft32(d^a, -8)
	c += d
	b = bits.RotateLeft32(b^c, -7)
	return a, b, c, d
}
