package noise

import (
	"crypto/hmac"
	"hash"

	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/chacha20poly1305"
)

// Protocol names from the WireGuard whitepaper.
const (
	construction = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"
	identifier   = "WireGuard v1 zx2c4 Jason@zx2c4.com"
	labelMAC1    = "mac1----"
	labelCookie  = "cookie--"
)

var (
	// initialChainKey is HASH(CONSTRUCTION).
	initialChainKey [blake2s.Size]byte
	// initialHash is HASH(initialChainKey || IDENTIFIER).
	initialHash [blake2s.Size]byte
)

func init() {
	initialChainKey = blake2s.Sum256([]byte(construction))
	mixHash(&initialHash, &initialChainKey, []byte(identifier))
}

func newBlake2s() hash.Hash {
	h, err := blake2s.New256(nil)
	if err != nil {
		panic("noise: blake2s without a key cannot fail: " + err.Error())
	}
	return h
}

// hashOf computes HASH(a || b) into dst. Short inputs, which are all the
// handshake uses, are hashed from a stack buffer without allocating.
func hashOf(dst *[blake2s.Size]byte, a, b []byte) {
	var buf [128]byte
	if len(a)+len(b) <= len(buf) {
		n := copy(buf[:], a)
		n += copy(buf[n:], b)
		*dst = blake2s.Sum256(buf[:n])
		setZero(buf[:n])
		return
	}
	h := newBlake2s()
	h.Write(a)
	h.Write(b)
	h.Sum(dst[:0])
}

// mixHash sets dst = HASH(h || data). dst may be h.
func mixHash(dst, h *[blake2s.Size]byte, data []byte) {
	hashOf(dst, h[:], data)
}

// mac computes the keyed BLAKE2s-128 of data. key must be 16 or 32 bytes.
func mac(dst *[macSize]byte, key []byte, data []byte) {
	macWith(dst, key, data)
}

// hmacOf computes HMAC-BLAKE2s(key, a || b) into dst (RFC 2104 with
// BLAKE2s-256 and its 64-byte block). The short inputs of the handshake are
// processed on the stack.
func hmacOf(dst *[blake2s.Size]byte, key, a, b []byte) {
	const block = blake2s.BlockSize
	if len(key) > block || len(a)+len(b) > block {
		m := hmac.New(newBlake2s, key)
		m.Write(a)
		m.Write(b)
		m.Sum(dst[:0])
		return
	}
	var buf [block + block]byte
	for i := range block {
		var k byte
		if i < len(key) {
			k = key[i]
		}
		buf[i] = k ^ 0x36
	}
	n := block + copy(buf[block:], a)
	n += copy(buf[n:], b)
	inner := blake2s.Sum256(buf[:n])
	for i := range block {
		var k byte
		if i < len(key) {
			k = key[i]
		}
		buf[i] = k ^ 0x5c
	}
	copy(buf[block:], inner[:])
	*dst = blake2s.Sum256(buf[:block+blake2s.Size])
	setZero(buf[:])
	setZero(inner[:])
}

// kdf is the HKDF of the whitepaper: with T0 = HMAC(key, input),
// out[0] = HMAC(T0, 0x1) and out[i] = HMAC(T0, out[i-1] || i+1).
// The outputs may alias key.
func kdf(key, input []byte, out ...*[blake2s.Size]byte) {
	var prk, prev [blake2s.Size]byte
	hmacOf(&prk, key, input, nil)
	for i, o := range out {
		ctr := [1]byte{byte(i + 1)}
		if i == 0 {
			hmacOf(&prev, prk[:], ctr[:], nil)
		} else {
			hmacOf(&prev, prk[:], prev[:], ctr[:])
		}
		*o = prev
	}
	setZero(prk[:])
	setZero(prev[:])
}

// dh returns X25519(priv, pub) and fails if the result is all zeros, which
// happens for low-order public keys.
func dh(priv PrivateKey, pub PublicKey) ([KeySize]byte, error) {
	var out [KeySize]byte
	x25519(&out, (*[32]byte)(&priv), (*[32]byte)(&pub))
	setZero(priv[:]) // the caller's copy stays; this one is ours
	if isZero(out[:]) {
		return out, ErrInvalidKey
	}
	return out, nil
}

var zeroNonce [chacha20poly1305.NonceSize]byte

// aeadSeal encrypts plaintext with ChaCha20-Poly1305 under key with the
// zero nonce (handshake keys are used once), appending to dst.
func aeadSeal(dst []byte, key *[KeySize]byte, plaintext, ad []byte) []byte {
	a, err := chacha20poly1305.New(key[:])
	if err != nil {
		panic("noise: chacha20poly1305 with a 32-byte key cannot fail: " + err.Error())
	}
	return a.Seal(dst, zeroNonce[:], plaintext, ad)
}

func aeadOpen(dst []byte, key *[KeySize]byte, ciphertext, ad []byte) ([]byte, error) {
	a, err := chacha20poly1305.New(key[:])
	if err != nil {
		panic("noise: chacha20poly1305 with a 32-byte key cannot fail: " + err.Error())
	}
	out, err := a.Open(dst, zeroNonce[:], ciphertext, ad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return out, nil
}

// setZero overwrites b with zeros.
func setZero(b []byte) {
	clear(b)
}
