package maybenot

import (
	crand "crypto/rand"
	"encoding/binary"
	"math/rand/v2"
)

// Rand is the random source used for transition and distribution sampling.
// It wraps a math/rand/v2 Source; the uniform draws follow the bit usage of
// the reference framework (23 bits for a float32, 52 bits for a float64).
// A Rand is not safe for concurrent use.
type Rand struct {
	src rand.Source
	r   *rand.Rand
}

// NewRand wraps src. A nil src selects a ChaCha8 generator seeded from
// crypto/rand, suitable for production (padding timing must not be
// predictable).
func NewRand(src rand.Source) *Rand {
	if src == nil {
		src = NewSecureSource()
	}
	return &Rand{src: src, r: rand.New(src)}
}

// NewSecureSource returns a ChaCha8 generator seeded from crypto/rand.
func NewSecureSource() rand.Source {
	var seed [32]byte
	// crypto/rand.Read never returns an error (it aborts the program if
	// the operating system cannot supply randomness).
	_, _ = crand.Read(seed[:])
	return rand.NewChaCha8(seed)
}

// NewSeededSource returns a deterministic generator for tests and
// reproducible simulations (ChaCha8 with the seed in its first 8 bytes).
func NewSeededSource(seed uint64) rand.Source {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return rand.NewChaCha8(s)
}

// Uint64 returns 64 random bits.
func (r *Rand) Uint64() uint64 { return r.src.Uint64() }

// Float32 returns a uniform float32 in [0, 1) made of 23 random bits taken
// from the top of a 32-bit draw.
func (r *Rand) Float32() float32 {
	u := uint32(r.src.Uint64() >> 32)
	return float32(u>>9) * (1.0 / (1 << 23))
}

// Float64 returns a uniform float64 in [0, 1) made of 52 random bits.
func (r *Rand) Float64() float64 {
	return float64(r.src.Uint64()>>12) * (1.0 / (1 << 52))
}

// openClosed01 returns a uniform float64 in (0, 1].
func (r *Rand) openClosed01() float64 { return 1 - r.Float64() }

// NormFloat64 returns a standard normal draw.
func (r *Rand) NormFloat64() float64 { return r.r.NormFloat64() }

// ExpFloat64 returns an exponential draw with rate 1.
func (r *Rand) ExpFloat64() float64 { return r.r.ExpFloat64() }
