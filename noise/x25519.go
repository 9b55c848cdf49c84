package noise

import (
	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
	"golang.org/x/crypto/curve25519"

	"github.com/gotatun/gotatun/internal/cryptoimpl"
)

// X25519 (RFC 7748). golang.org/x/crypto's X25519 goes through
// crypto/ecdh, whose NewPrivateKey derives the public key as well: two
// scalar multiplications for every Diffie-Hellman. A handshake does six,
// so the ladder here, which does one, halves its cost; public keys come
// from the fixed-base multiplication on the birationally equivalent
// Edwards curve, which uses precomputed tables and is faster still.

// x25519 sets dst to X25519(scalar, point): all zeros for a low-order
// point. The point's top bit is ignored and non-canonical values are
// accepted, as RFC 7748 asks. With x/crypto forced (internal/cryptoimpl)
// it is x/crypto's; otherwise our ladder.
func x25519(dst, scalar, point *[32]byte) {
	if cryptoimpl.XCrypto() {
		xcryptoX25519(dst, scalar[:], point[:])
		return
	}
	x25519Ladder(dst, scalar, point)
}

// x25519Base sets dst to X25519(scalar, 9), the public key of scalar.
func x25519Base(dst, scalar *[32]byte) {
	if cryptoimpl.XCrypto() {
		xcryptoX25519(dst, scalar[:], curve25519.Basepoint)
		return
	}
	x25519Edwards(dst, scalar)
}

// xcryptoX25519 is x25519 with x/crypto, which reports a zero result as
// an error: dst is then all zeros.
func xcryptoX25519(dst *[32]byte, scalar, point []byte) {
	out, err := curve25519.X25519(scalar, point)
	if err != nil {
		clear(dst[:])
		return
	}
	copy(dst[:], out)
	clear(out)
}

// x25519Ladder sets dst to X25519(scalar, point) with the Montgomery
// ladder in constant time. The scalar is clamped here.
func x25519Ladder(dst, scalar, point *[32]byte) {
	k := PrivateKey(*scalar)
	k.clamp()

	var x1, x2, z2, x3, z3 field.Element
	if _, err := x1.SetBytes(point[:]); err != nil {
		panic("noise: field.SetBytes of 32 bytes cannot fail: " + err.Error())
	}
	x2.One()
	z2.Zero()
	x3.Set(&x1)
	z3.One()

	var a, aa, b, bb, e, c, d, da, cb field.Element
	swap := 0
	for t := 254; t >= 0; t-- {
		bit := int(k[t/8]>>(t%8)) & 1
		swap ^= bit
		x2.Swap(&x3, swap)
		z2.Swap(&z3, swap)
		swap = bit

		a.Add(&x2, &z2)
		aa.Square(&a)
		b.Subtract(&x2, &z2)
		bb.Square(&b)
		e.Subtract(&aa, &bb)
		c.Add(&x3, &z3)
		d.Subtract(&x3, &z3)
		da.Multiply(&d, &a)
		cb.Multiply(&c, &b)

		x3.Add(&da, &cb)
		x3.Square(&x3)
		z3.Subtract(&da, &cb)
		z3.Square(&z3)
		z3.Multiply(&z3, &x1)
		x2.Multiply(&aa, &bb)
		// z2 = E·(AA + a24·E) with a24 = (486662-2)/4 = 121665.
		z2.Mult32(&e, 121665)
		z2.Add(&z2, &aa)
		z2.Multiply(&z2, &e)
	}
	x2.Swap(&x3, swap)
	z2.Swap(&z3, swap)

	z2.Invert(&z2)
	x2.Multiply(&x2, &z2)
	copy(dst[:], x2.Bytes())

	// The ladder's state reveals the scalar: zero it (best effort, see
	// keywipe.go).
	clear(k[:])
	swap = 0
	for _, v := range []*field.Element{&x1, &x2, &z2, &x3, &z3, &a, &aa, &b, &bb, &e, &c, &d, &da, &cb} {
		*v = field.Element{}
	}
}

// x25519Edwards sets dst to X25519(scalar, 9): the scalar, clamped and
// reduced modulo the group order (the base point's order, so the result
// is the same), times the Edwards base point, mapped to its Montgomery u.
func x25519Edwards(dst, scalar *[32]byte) {
	s, err := edwards25519.NewScalar().SetBytesWithClamping(scalar[:])
	if err != nil {
		panic("noise: clamping 32 bytes cannot fail: " + err.Error())
	}
	var p edwards25519.Point
	copy(dst[:], p.ScalarBaseMult(s).BytesMontgomery())
	// Zero the scalar and the point, which reveal the private key.
	s.Set(edwards25519.NewScalar())
	p.Set(edwards25519.NewIdentityPoint())
}
