//go:build amd64 && !purego

package chachapoly

import (
	"math/bits"
	"testing"
)

// The bound argument of poly1305_amd64.s, computed: each function below
// takes upper bounds of its inputs' limbs and returns upper bounds of its
// outputs, following the assembly's steps, and fails the test where an
// instruction's input could leave the range in which it is exact.
// VPMADD52LUQ/HUQ read only the low 52 bits of each multiplicand and add
// the low/high 52 bits of the 104-bit product to a 64-bit lane, so:
// multiplicands must stay below 2^52, the folds by 256 and 5120 (done
// with VPMADD52LUQ, which keeps only the low 52 bits of the product) must
// stay below 2^52, and no lane may reach 2^64.

type limbs [3]uint64

const two52 = 1 << 52

type boundChecker struct{ t *testing.T }

// lo52 bounds the low 52 bits of x·y; hi52 is the high part.
func lo52(x, y uint64) uint64 {
	h, l := bits.Mul64(x, y)
	if h != 0 || l >= two52 {
		return two52 - 1
	}
	return l
}

func hi52(x, y uint64) uint64 {
	h, l := bits.Mul64(x, y)
	return h<<12 | l>>52
}

func (c boundChecker) add(a, b uint64, what string) uint64 {
	s, carry := bits.Add64(a, b, 0)
	if carry != 0 {
		c.t.Fatalf("%s: a lane can overflow 64 bits", what)
	}
	return s
}

// multerms is MULTERMS: h·a with s1 = 20·a1, s2 = 20·a2, on top of the
// low accumulators d and high accumulators hs.
func (c boundChecker) multerms(h, a limbs, d, hs *limbs, what string) {
	s1, s2 := 20*a[1], 20*a[2]
	for _, v := range []uint64{h[0], h[1], h[2], a[0], a[1], a[2], s1, s2} {
		if v >= two52 {
			c.t.Fatalf("%s: a multiplicand can reach 2^52", what)
		}
	}
	terms := [3][3][2]uint64{
		{{h[0], a[0]}, {h[1], s2}, {h[2], s1}},
		{{h[0], a[1]}, {h[1], a[0]}, {h[2], s2}},
		{{h[0], a[2]}, {h[1], a[1]}, {h[2], a[0]}},
	}
	for k, row := range terms {
		for _, p := range row {
			d[k] = c.add(d[k], lo52(p[0], p[1]), what)
			hs[k] = c.add(hs[k], hi52(p[0], p[1]), what)
		}
	}
}

// combine is COMBINE: the high sums go one limb up times 2^8, the top
// one to limb 0 times 5·2^10.
func (c boundChecker) combine(d, hs limbs, what string) limbs {
	if hs[0]*256 >= two52 || hs[1]*256 >= two52 || hs[2] >= two52/5120 {
		c.t.Fatalf("%s: a high sum times its fold constant can reach 2^52: %x", what, hs)
	}
	return limbs{c.add(d[0], hs[2]*5120, what), c.add(d[1], hs[0]*256, what), c.add(d[2], hs[1]*256, what)}
}

// carry is CARRY: one parallel pass, the top carry times 5 into limb 0.
func (c boundChecker) carry(d limbs) limbs {
	const m44, m42 = 1<<44 - 1, 1<<42 - 1
	if 5*(d[2]>>42) >= two52 {
		c.t.Fatal("carry: 5·(d2 >> 42) can reach 2^52")
	}
	return limbs{min(d[0], m44) + 5*(d[2]>>42), min(d[1], m44) + d[0]>>44, min(d[2], m42) + d[1]>>44}
}

// mul is MUL (or ABSORB with the message limbs in seed): h·a + seed,
// carried.
func (c boundChecker) mul(h, a, seed limbs, what string) limbs {
	d, hs := seed, limbs{}
	c.multerms(h, a, &d, &hs, what)
	return c.carry(c.combine(d, hs, what))
}

func maxLimbs(a, b limbs) limbs {
	return limbs{max(a[0], b[0]), max(a[1], b[1]), max(a[2], b[2])}
}

func TestIFMABounds(t *testing.T) {
	c := boundChecker{t}
	const m44 = 1<<44 - 1

	// r, clamped, at its largest in every limb at once.
	r0, r1 := uint64(rClamp0), uint64(rClamp1)
	r := limbs{r0 & m44, (r0>>44 | r1<<20) & m44, r1 >> 24}

	// Every power of r is a product of two earlier ones (or of r and 1),
	// carried: P bounds them all once it stops growing.
	p := r
	for {
		next := maxLimbs(p, c.mul(p, p, limbs{}, "powers of r"))
		if next == p {
			break
		}
		p = next
	}

	// Multiplicands of the chunk loop: the caller's h (top limb
	// h1>>24 | h2<<40 with h2 ≤ 4) plus a normalized block (SPLITN), a
	// normalized block alone, or an accumulator after ABSORB's carry,
	// whose seed is a block split without normalizing (SPLIT): limbs
	// below 2^44, 2^52 (bits 44 to 95 of the block) and 2^41 - 2^8
	// (bits 96 to 127, and the 2^128 bit).
	normalized := limbs{m44, m44, 1<<41 - 1}
	callerH := limbs{m44, m44, 1<<40 - 1 + 4<<40}
	seed := limbs{m44, two52 - 1, (1<<32-1)<<8 + 1<<40}
	h := limbs{callerH[0] + normalized[0], callerH[1] + normalized[1], callerH[2] + normalized[2]}
	for {
		next := maxLimbs(h, c.mul(h, p, seed, "chunk loop"))
		if next == h {
			break
		}
		h = next
	}

	// The end: both sets times their powers into one set of
	// accumulators, folded, not carried, then summed over eight lanes.
	var d, hs limbs
	c.multerms(h, p, &d, &hs, "final")
	c.multerms(h, p, &d, &hs, "final")
	lane := c.combine(d, hs, "final")
	var sum limbs
	for k := range sum {
		for range 8 {
			sum[k] = c.add(sum[k], lane[k], "lane sum")
		}
		if sum[k] >= 1<<58 {
			t.Fatalf("lane sum %d can reach 2^58, which polyBlocksVector's carries assume it does not", k)
		}
	}

	// What poly1305_amd64.s states.
	want := []struct {
		name       string
		got, bound limbs
	}{
		{"powers of r", p, limbs{1<<44 + 1<<14, 1<<44 + 1<<10, 1<<42 + 1<<10}},
		{"multiplicands", h, limbs{1 << 45, 1 << 45, 1 << 43}},
		{"final high sums", hs, limbs{1 << 42, 1 << 40, 1 << 39}},
	}
	for _, w := range want {
		for k := range w.got {
			if w.got[k] >= w.bound[k] {
				t.Errorf("%s: limb %d can reach %#x, above the stated bound %#x", w.name, k, w.got[k], w.bound[k])
			}
		}
	}
	t.Logf("powers %#x, multiplicands %#x, final high sums %#x, lane sums %#x", p, h, hs, sum)
}
