//go:build amd64 && !purego

package chachapoly

import (
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"unsafe"
)

const (
	// The 32-bit block counter starts at 1 for the message (block 0 makes
	// the Poly1305 key), which bounds one message to 2^32-1 blocks.
	maxPlaintext = (1<<32 - 1) * 64

	// In-place Open of messages up to this size decrypts on the stack
	// before the check (see Open).
	openScratch = 1536
)

var errOpen = errors.New("chachapoly: message authentication failed")

// zeroBlock is the input that turns one keystream block into the
// Poly1305 key.
var zeroBlock [64]byte

// aead is our AEAD. What it leaves behind, best effort as anything in Go:
// the one-time Poly1305 key is cleared after use, as is the Poly1305
// state (r) in macAEAD and polyBlocksVector; the assembly zeroes the
// keystream it spilled to its frame and every vector register before
// returning. Not cleared: the stack copy of a short message opened in
// place (plaintext the caller holds anyway), and key, which lives until
// the AEAD is garbage collected (a concurrent Seal or Open may still be
// reading it when the keypair is dropped).
type aead struct {
	key [8]uint32
}

func newAEAD(key []byte) *aead {
	a := new(aead)
	for i := range a.key {
		a.key[i] = binary.LittleEndian.Uint32(key[4*i:])
	}
	return a
}

func (*aead) NonceSize() int { return NonceSize }
func (*aead) Overhead() int  { return Overhead }

// state returns the ChaCha20 input for nonce at block counter 0.
func (a *aead) state(nonce []byte) [16]uint32 {
	return [16]uint32{
		0x61707865, 0x3320646e, 0x79622d32, 0x6b206574,
		a.key[0], a.key[1], a.key[2], a.key[3],
		a.key[4], a.key[5], a.key[6], a.key[7],
		0,
		binary.LittleEndian.Uint32(nonce[0:4]),
		binary.LittleEndian.Uint32(nonce[4:8]),
		binary.LittleEndian.Uint32(nonce[8:12]),
	}
}

func (a *aead) Seal(dst, nonce, plaintext, ad []byte) []byte {
	if len(nonce) != NonceSize {
		panic("chachapoly: nonce of the wrong length passed to Seal")
	}
	if uint64(len(plaintext)) > maxPlaintext {
		panic("chachapoly: plaintext too long for one message")
	}
	ret, out := sliceForAppend(dst, len(plaintext)+Overhead)
	ct, tagOut := out[:len(plaintext)], out[len(plaintext):]
	if inexactOverlap(ct, plaintext) {
		panic("chachapoly: Seal's output overlaps its input other than in place")
	}
	state := a.state(nonce)
	var polyKey [64]byte
	polyKeyAndXOR(&state, &polyKey, ct, plaintext)
	var tag [16]byte
	macAEAD(&tag, (*[32]byte)(polyKey[:32]), ad, ct)
	clear(polyKey[:])
	copy(tagOut, tag[:])
	return ret
}

func (a *aead) Open(dst, nonce, ciphertext, ad []byte) ([]byte, error) {
	if len(nonce) != NonceSize {
		panic("chachapoly: nonce of the wrong length passed to Open")
	}
	if len(ciphertext) < Overhead || uint64(len(ciphertext)) > maxPlaintext+Overhead {
		return nil, errOpen
	}
	ct, tag := ciphertext[:len(ciphertext)-Overhead], ciphertext[len(ciphertext)-Overhead:]
	ret, out := sliceForAppend(dst, len(ct))
	if inexactOverlap(out, ct) {
		panic("chachapoly: Open's output overlaps its input other than in place")
	}
	state := a.state(nonce)
	var polyKey [64]byte
	// One keystream call for the Poly1305 key and the message is faster
	// than two, but the ciphertext must stay intact until it is
	// authenticated: decrypt straight into out when it is elsewhere, and
	// in place only after the check (openInPlace).
	if len(ct) > 0 && &out[0] == &ct[0] {
		if err := a.openInPlace(&state, out, tag, ad); err != nil {
			return nil, err
		}
		return ret, nil
	}
	polyKeyAndXOR(&state, &polyKey, out, ct)
	var want [16]byte
	macAEAD(&want, (*[32]byte)(polyKey[:32]), ad, ct)
	clear(polyKey[:])
	if subtle.ConstantTimeCompare(want[:], tag) != 1 {
		clear(out)
		return nil, errOpen
	}
	return ret, nil
}

// openInPlace authenticates and decrypts msg in place. A short message is
// decrypted into a stack buffer together with the Poly1305 key and copied
// back after the check; a longer one takes a second keystream call.
func (a *aead) openInPlace(state *[16]uint32, msg, tag, ad []byte) error {
	var polyKey [64]byte
	var scratch [openScratch]byte
	short := len(msg) <= len(scratch)
	if short {
		polyKeyAndXOR(state, &polyKey, scratch[:len(msg)], msg)
	} else {
		polyKeyAndXOR(state, &polyKey, nil, nil)
	}
	var want [16]byte
	macAEAD(&want, (*[32]byte)(polyKey[:32]), ad, msg)
	clear(polyKey[:])
	if subtle.ConstantTimeCompare(want[:], tag) != 1 {
		clear(msg)
		clear(scratch[:])
		return errOpen
	}
	if short {
		copy(msg, scratch[:len(msg)])
	} else {
		state[12] = 1
		xorKeyStream(state, msg, msg, nil, nil)
	}
	return nil
}

// polyKeyAndXOR writes keystream block 0 (the Poly1305 key in its first
// 32 bytes) to polyKey and XORs src into dst from block 1 on, in one call.
func polyKeyAndXOR(state *[16]uint32, polyKey *[64]byte, dst, src []byte) {
	xorKeyStream(state, polyKey[:], zeroBlock[:], dst, src)
}

// sliceForAppend extends in by n bytes, reusing its capacity when it can,
// and returns the whole slice and the new tail.
func sliceForAppend(in []byte, n int) (whole, tail []byte) {
	total := len(in) + n
	if cap(in) >= total {
		whole = in[:total]
	} else {
		whole = make([]byte, total)
		copy(whole, in)
	}
	return whole, whole[len(in):]
}

// inexactOverlap reports whether x and y share memory without starting at
// the same byte: in-place use is fine, a shifted overlap is not.
func inexactOverlap(x, y []byte) bool {
	if len(x) == 0 || len(y) == 0 || &x[0] == &y[0] {
		return false
	}
	xStart, yStart := uintptr(unsafe.Pointer(&x[0])), uintptr(unsafe.Pointer(&y[0]))
	return xStart <= yStart+uintptr(len(y)-1) && yStart <= xStart+uintptr(len(x)-1)
}
