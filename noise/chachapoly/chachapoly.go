// Package chachapoly is the ChaCha20-Poly1305 AEAD of RFC 8439 for the
// transport keys. On amd64 CPUs with AVX-512 (F, BW, VL), BMI2 and
// AVX-512 IFMA, New returns our own code: AVX-512 assembly for ChaCha20
// and IFMA assembly for Poly1305. Everywhere else, and whenever
// internal/cryptoimpl forces it (-tags purego, GOTATUN_CRYPTO=xcrypto,
// device.Options.XCrypto), New returns golang.org/x/crypto's AEAD: on
// other amd64 CPUs its AVX2 assembly is the faster one, and on other
// architectures a second home-made Go path is not worth its upkeep. (x/crypto
// allocates once per Seal and per Open there, having no assembly for the
// whole AEAD; on amd64 it does not.)
package chachapoly

import (
	"crypto/cipher"
	"errors"

	"github.com/gotatun/gotatun/internal/cryptoimpl"
	"golang.org/x/crypto/chacha20poly1305"
)

const (
	KeySize   = 32
	NonceSize = 12
	Overhead  = 16
)

// The implementations New can return.
const (
	ImplAVX512  = "avx512-ifma"
	ImplXCrypto = "x/crypto"
)

// Features are the CPU features our assembly needs.
type Features struct {
	AVX512F, AVX512BW, AVX512VL, AVX512IFMA, BMI2 bool
}

// choose names the implementation New uses when the assembly is built
// (amd64 without -tags purego) or not, on a CPU with features f, with
// x/crypto forced or not.
func choose(asmBuilt bool, f Features, forced bool) string {
	if asmBuilt && !forced && f.AVX512F && f.AVX512BW && f.AVX512VL && f.AVX512IFMA && f.BMI2 {
		return ImplAVX512
	}
	return ImplXCrypto
}

// Implementation names the implementation New returns now.
func Implementation() string {
	return choose(asmBuilt, cpuFeatures, cryptoimpl.XCrypto())
}

// New returns a ChaCha20-Poly1305 AEAD for a 32-byte key.
func New(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, errors.New("chachapoly: the key must be 32 bytes")
	}
	if Implementation() == ImplAVX512 {
		return newAsm(key), nil
	}
	return chacha20poly1305.New(key)
}
