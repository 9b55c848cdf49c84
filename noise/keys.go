// Package noise implements the WireGuard protocol: Noise_IKpsk2 handshakes,
// cookies, transport keypairs and replay protection. It is pure: time and
// randomness come from the caller, and nothing here starts a goroutine or
// touches a socket.
//
// A device holds one Identity (its static key pair) and, per peer, a
// Handshake, a CookieGenerator and a Keypairs. It allocates the 32-bit
// local indices and maps them to peers and keypairs.
//
// Initiator: Handshake.CreateInitiation, MarshalTo, CookieGenerator.AddMACs,
// send; on the response (mac1 checked by the device's CookieChecker):
// Unmarshal, Handshake.ConsumeResponse, Handshake.BeginSession,
// Keypairs.Install.
//
// Responder: CookieChecker.CheckMAC1 (and CheckMAC2 or CreateReply under
// load), Unmarshal, ConsumeInitiation, Handshake.CreateResponse, MarshalTo,
// AddMACs, send, then BeginSession and Keypairs.Install (the keypair waits
// as "next" until the initiator's first packet arrives on it).
//
// Transport: Keypair.NextCounter and SealTransport to send; for a received
// message, find the keypair by its receiver index (ParseTransportHeader),
// then OpenTransport, AcceptCounter and Keypairs.Received, in that order.
//
// Each lock in this package guards one object and none is held while
// taking another, so there is no lock order to respect.
package noise

import (
	cryptorand "crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// KeySize is the size of every WireGuard key.
const KeySize = 32

type (
	// PrivateKey is a Curve25519 private key, clamped.
	PrivateKey [KeySize]byte
	// PublicKey is a Curve25519 public key.
	PublicKey [KeySize]byte
	// PresharedKey is the optional symmetric key mixed into the handshake.
	PresharedKey [KeySize]byte
)

// ErrKeyFormat reports a key that is not 32 bytes of hex or base64.
var ErrKeyFormat = errors.New("noise: key must be 32 bytes in hex (64 characters) or base64 (44 characters)")

// GeneratePrivateKey reads a new private key from rand and clamps it. A
// nil rand means crypto/rand.
func GeneratePrivateKey(rand io.Reader) (PrivateKey, error) {
	if rand == nil {
		rand = cryptorand.Reader
	}
	var k PrivateKey
	if _, err := io.ReadFull(rand, k[:]); err != nil {
		return PrivateKey{}, fmt.Errorf("noise: generating private key: %w", err)
	}
	k.clamp()
	return k, nil
}

func (k *PrivateKey) clamp() {
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
}

// PublicKey derives the public key of k.
func (k PrivateKey) PublicKey() PublicKey {
	var pub PublicKey
	c := k
	c.clamp()
	x25519Base((*[32]byte)(&pub), (*[32]byte)(&c))
	setZero(c[:])
	setZero(k[:])
	return pub
}

// IsZero reports whether k is all zeros (the "unset" key).
func (k PrivateKey) IsZero() bool { return isZero(k[:]) }

// IsZero reports whether k is all zeros.
func (k PublicKey) IsZero() bool { return isZero(k[:]) }

// IsZero reports whether k is all zeros (no preshared key).
func (k PresharedKey) IsZero() bool { return isZero(k[:]) }

// Equal compares in constant time.
func (k PublicKey) Equal(o PublicKey) bool { return subtle.ConstantTimeCompare(k[:], o[:]) == 1 }

func isZero(b []byte) bool {
	var acc byte
	for _, x := range b {
		acc |= x
	}
	return acc == 0
}

// String returns the public key in standard base64, as wg(8) shows it.
func (k PublicKey) String() string { return k.Base64() }

// Base64 returns the key in standard base64, the form of wg(8) and
// configuration files. For the secret keys it is the only way, with Hex,
// to get the key as text: String and the fmt verbs redact it.
func (k PrivateKey) Base64() string   { return base64.StdEncoding.EncodeToString(k[:]) }
func (k PublicKey) Base64() string    { return base64.StdEncoding.EncodeToString(k[:]) }
func (k PresharedKey) Base64() string { return base64.StdEncoding.EncodeToString(k[:]) }

// Hex returns the lowercase hex form used by the configuration protocol.
func (k PrivateKey) Hex() string   { return hex.EncodeToString(k[:]) }
func (k PublicKey) Hex() string    { return hex.EncodeToString(k[:]) }
func (k PresharedKey) Hex() string { return hex.EncodeToString(k[:]) }

// ParseKey decodes a 32-byte key written in hex (64 characters) or
// standard base64 (44 characters).
func ParseKey(s string) ([KeySize]byte, error) {
	var out [KeySize]byte
	switch len(s) {
	case 2 * KeySize:
		if _, err := hex.Decode(out[:], []byte(s)); err != nil {
			// Not hex's error: it quotes the bad character, a piece of a
			// secret key.
			return out, fmt.Errorf("%w: bad hex", ErrKeyFormat)
		}
		return out, nil
	case base64.StdEncoding.EncodedLen(KeySize):
		// 44 characters without padding decode to 33 bytes: decode
		// into room for them, or Decode writes past out.
		var tmp [KeySize + 1]byte
		n, err := base64.StdEncoding.Decode(tmp[:], []byte(s))
		if err != nil || n != KeySize {
			return out, fmt.Errorf("%w: bad base64", ErrKeyFormat)
		}
		copy(out[:], tmp[:KeySize])
		return out, nil
	}
	return out, fmt.Errorf("%w: got %d characters", ErrKeyFormat, len(s))
}

// ParsePrivateKey parses a private key (hex or base64). It is not clamped
// here, so the all-zero "remove the key" value survives; X25519 clamps on use.
func ParsePrivateKey(s string) (PrivateKey, error) {
	b, err := ParseKey(s)
	return PrivateKey(b), err
}

// ParsePublicKey parses a public key (hex or base64).
func ParsePublicKey(s string) (PublicKey, error) {
	b, err := ParseKey(s)
	return PublicKey(b), err
}

// ParsePresharedKey parses a preshared key (hex or base64).
func ParsePresharedKey(s string) (PresharedKey, error) {
	b, err := ParseKey(s)
	return PresharedKey(b), err
}
