package maybenot

//lint:file-ignore ST1005 messages start with Maybenot's names of types and fields (Uniform, Cancel.timer).

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

// DistType is the type of a distribution; the values are the serialized
// variant indices.
type DistType uint8

// Distribution types. The parameters of each, in serialized order, are
// stored in Dist.Param1..Param3 (and Dist.Trials for Binomial):
//
//	Uniform     low, high
//	Normal      mean, stdev
//	SkewNormal  location, scale, shape
//	LogNormal   mu, sigma
//	Binomial    Trials (integer), probability in Param1
//	Geometric   probability
//	Pareto      scale, shape
//	Poisson     lambda
//	Weibull     scale, shape
//	Gamma       scale, shape (stored scale first; the mean is scale·shape)
//	Beta        alpha, beta
const (
	DistUniform    DistType = 0
	DistNormal     DistType = 1
	DistSkewNormal DistType = 2
	DistLogNormal  DistType = 3
	DistBinomial   DistType = 4
	DistGeometric  DistType = 5
	DistPareto     DistType = 6
	DistPoisson    DistType = 7
	DistWeibull    DistType = 8
	DistGamma      DistType = 9
	DistBeta       DistType = 10

	distTypeCount = 11
)

var distTypeNames = [distTypeCount]string{
	"Uniform", "Normal", "SkewNormal", "LogNormal", "Binomial", "Geometric",
	"Pareto", "Poisson", "Weibull", "Gamma", "Beta",
}

// distParamNames lists each type's float parameter names in serialized
// order (Binomial's trials is separate).
var distParamNames = [distTypeCount][]string{
	{"low", "high"},
	{"mean", "stdev"},
	{"location", "scale", "shape"},
	{"mu", "sigma"},
	{"probability"},
	{"probability"},
	{"scale", "shape"},
	{"lambda"},
	{"scale", "shape"},
	{"scale", "shape"},
	{"alpha", "beta"},
}

func (t DistType) String() string {
	if int(t) < distTypeCount {
		return distTypeNames[t]
	}
	return "DistType(" + itoa(uint64(t)) + ")"
}

// ParseDistType returns the distribution type with the given name.
func ParseDistType(name string) (DistType, bool) {
	for i, n := range distTypeNames {
		if n == name {
			return DistType(i), true
		}
	}
	return 0, false
}

// Dist is a distribution with an offset and an optional upper clamp. Values
// are microseconds where the distribution gives a time.
type Dist struct {
	Type DistType
	// Param1..Param3 are the float parameters in serialized order (see
	// DistType); unused ones are zero.
	Param1, Param2, Param3 float64
	// Trials is the number of trials of a Binomial distribution.
	Trials uint64
	// Start is added to every sample.
	Start float64
	// Max clamps samples from above when it is > 0.
	Max float64
}

// numParams returns how many float parameters the type has.
func (t DistType) numParams() int {
	if int(t) < distTypeCount {
		return len(distParamNames[t])
	}
	return 0
}

// Param returns float parameter i (0-based) of the distribution.
func (d *Dist) param(i int) float64 {
	switch i {
	case 0:
		return d.Param1
	case 1:
		return d.Param2
	default:
		return d.Param3
	}
}

func (d *Dist) setParam(i int, v float64) {
	switch i {
	case 0:
		d.Param1 = v
	case 1:
		d.Param2 = v
	default:
		d.Param3 = v
	}
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// Validate checks the distribution parameters with the same rules as the
// reference framework. Start and Max are never checked.
func (d *Dist) Validate() error {
	p1, p2, p3 := d.Param1, d.Param2, d.Param3
	switch d.Type {
	case DistUniform:
		switch {
		case math.IsNaN(p1) || math.IsNaN(p2):
			return errors.New("Uniform: low or high is NaN")
		case math.IsInf(p1, 0) || math.IsInf(p2, 0):
			return errors.New("Uniform: low or high is infinite")
		case p1 > p2:
			return fmt.Errorf("Uniform: low %v > high %v", p1, p2)
		case math.IsInf(p2-p1, 0):
			return errors.New("Uniform: range high-low overflows")
		}
	case DistNormal:
		if !finite(p2) {
			return errors.New("Normal: stdev is not finite")
		}
	case DistLogNormal:
		if !finite(p2) {
			return errors.New("LogNormal: sigma is not finite")
		}
	case DistSkewNormal:
		switch {
		case !finite(p2) || !(p2 > 0):
			return errors.New("SkewNormal: scale must be finite and > 0")
		case !finite(p3):
			return errors.New("SkewNormal: shape is not finite")
		}
	case DistBinomial:
		switch {
		case p1 != 0 && p1 < DistMinProbability:
			return fmt.Errorf("Binomial: probability %v below %v", p1, DistMinProbability)
		case d.Trials > 1_000_000_000:
			return fmt.Errorf("Binomial: trials %d > 1e9", d.Trials)
		case math.IsNaN(p1) || p1 < 0 || p1 > 1:
			return fmt.Errorf("Binomial: probability %v outside [0, 1]", p1)
		}
	case DistGeometric:
		switch {
		case p1 != 0 && p1 < DistMinProbability:
			return fmt.Errorf("Geometric: probability %v below %v", p1, DistMinProbability)
		case !finite(p1) || p1 < 0 || p1 > 1:
			return fmt.Errorf("Geometric: probability %v outside [0, 1]", p1)
		}
	case DistPareto:
		if !(p1 > 0) {
			return errors.New("Pareto: scale must be > 0")
		}
		if !(p2 > 0) {
			return errors.New("Pareto: shape must be > 0")
		}
	case DistPoisson:
		switch {
		case p1 > 1e42:
			return errors.New("Poisson: lambda too large")
		case !finite(p1):
			return errors.New("Poisson: lambda is not finite")
		case !(p1 > 0):
			return errors.New("Poisson: lambda must be > 0")
		case p1 > 1.844e19:
			return errors.New("Poisson: lambda above 1.844e19")
		}
	case DistWeibull:
		if !(p1 > 0) {
			return errors.New("Weibull: scale must be > 0")
		}
		if !(p2 > 0) {
			return errors.New("Weibull: shape must be > 0")
		}
	case DistGamma:
		if !(p2 > 0) {
			return errors.New("Gamma: shape must be > 0")
		}
		if !(p1 > 0) {
			return errors.New("Gamma: scale must be > 0")
		}
	case DistBeta:
		if !(p1 > 0) {
			return errors.New("Beta: alpha must be > 0")
		}
		if !(p2 > 0) {
			return errors.New("Beta: beta must be > 0")
		}
	default:
		return fmt.Errorf("unknown distribution type %d", d.Type)
	}
	return nil
}

// Sample draws a value: the distribution's draw plus Start, never negative,
// clamped to Max when Max > 0; a non-finite result gives 0. The
// distribution must be valid.
func (d *Dist) Sample(r *Rand) float64 {
	y := d.draw(r) + d.Start
	if !finite(y) {
		return 0
	}
	y = math.Max(0, y)
	if d.Max > 0 {
		y = math.Min(y, d.Max)
		if !finite(y) {
			return 0
		}
	}
	return y
}

func (d *Dist) draw(r *Rand) float64 {
	p1, p2, p3 := d.Param1, d.Param2, d.Param3
	switch d.Type {
	case DistUniform:
		if p1 == p2 {
			return p1
		}
		return p1 + r.Float64()*(p2-p1)
	case DistNormal:
		return p1 + p2*r.NormFloat64()
	case DistLogNormal:
		return math.Exp(p1 + p2*r.NormFloat64())
	case DistSkewNormal:
		return sampleSkewNormal(r, p1, p2, p3)
	case DistBinomial:
		return float64(sampleBinomial(r, d.Trials, p1))
	case DistGeometric:
		return float64(sampleGeometric(r, p1))
	case DistPareto:
		return p1 * math.Pow(r.openClosed01(), -1/p2)
	case DistPoisson:
		return samplePoisson(r, p1)
	case DistWeibull:
		return p1 * math.Pow(-math.Log(r.openClosed01()), 1/p2)
	case DistGamma:
		return sampleGamma(r, p2) * p1
	case DistBeta:
		return sampleBeta(r, p1, p2)
	}
	return 0
}

func sampleSkewNormal(r *Rand, location, scale, shape float64) float64 {
	z1 := r.NormFloat64()
	if shape == 0 {
		return location + scale*z1
	}
	z2 := r.NormFloat64()
	u, v := math.Max(z1, z2), math.Min(z1, z2)
	var w float64
	switch shape {
	case -1:
		w = v
	case 1:
		w = u
	default:
		w = ((1+shape)*u + (1-shape)*v) / (math.Sqrt(1+shape*shape) * math.Sqrt2)
	}
	return location + scale*w
}

// sampleGeometric returns the number of failures before the first success.
func sampleGeometric(r *Rand, p float64) uint64 {
	switch {
	case p >= 1:
		return 0
	case p <= 0:
		return math.MaxUint64
	}
	// Inversion: floor(ln U / ln(1-p)) with U in (0, 1].
	x := math.Floor(math.Log(r.openClosed01()) / math.Log1p(-p))
	if !(x < 18446744073709551615.0) {
		return math.MaxUint64
	}
	return uint64(x)
}

// sampleGamma draws from Gamma(shape, 1).
func sampleGamma(r *Rand, shape float64) float64 {
	if shape == 1 {
		return r.ExpFloat64()
	}
	if shape < 1 {
		// Boost: Gamma(k) = Gamma(k+1) · U^(1/k).
		return sampleGamma(r, shape+1) * math.Pow(r.openClosed01(), 1/shape)
	}
	if math.IsInf(shape, 1) {
		return math.Inf(1)
	}
	// Marsaglia and Tsang (2000).
	d := shape - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		var x, v float64
		for {
			x = r.NormFloat64()
			v = 1 + c*x
			if v > 0 {
				break
			}
		}
		v = v * v * v
		u := r.Float64()
		x2 := x * x
		if u < 1-0.0331*x2*x2 {
			return d * v
		}
		if math.Log(u) < 0.5*x2+d*(1-v+math.Log(v)) {
			return d * v
		}
	}
}

func sampleBeta(r *Rand, alpha, beta float64) float64 {
	x := sampleGamma(r, alpha)
	y := sampleGamma(r, beta)
	return x / (x + y)
}

// sampleBinomial draws the number of successes in n trials of probability
// p. Small means use sequential inversion; large ones reduce the problem
// with the beta order-statistic method (Knuth, TAOCP 3.4.1), which is exact
// and needs O(log n) steps.
func sampleBinomial(r *Rand, n uint64, p float64) uint64 {
	var k uint64
	for {
		if n == 0 || p <= 0 {
			return k
		}
		if p >= 1 {
			return k + n
		}
		q := math.Min(p, 1-p)
		if float64(n)*q < 10 {
			return k + binomialInversion(r, n, p)
		}
		// Split at the a-th order statistic of n uniforms, Beta(a, n+1-a).
		a := 1 + n/2
		b := n + 1 - a
		x := sampleBeta(r, float64(a), float64(b))
		if !(x > 0 && x < 1) {
			// Degenerate draw: fall back to the normal approximation,
			// clamped to [0, n]. Not reached for valid parameters in
			// practice.
			m := float64(n)*p + math.Sqrt(float64(n)*p*(1-p))*r.NormFloat64()
			m = math.Round(math.Min(math.Max(m, 0), float64(n)))
			return k + uint64(m)
		}
		if x >= p {
			// Fewer than a successes: all among the a-1 smaller uniforms.
			n = a - 1
			p = p / x
		} else {
			k += a
			n = b - 1
			p = (p - x) / (1 - x)
		}
	}
}

// binomialInversion is sequential inversion, used when n·min(p,1-p) < 10.
func binomialInversion(r *Rand, n uint64, p float64) uint64 {
	flip := p > 0.5
	if flip {
		p = 1 - p
	}
	q := 1 - p
	s := p / q
	a := float64(n+1) * s
	f := math.Pow(q, float64(n))
	u := r.Float64()
	var x uint64
	for u > f && x < n {
		u -= f
		x++
		f *= a/float64(x) - s
		if f <= 0 {
			break
		}
	}
	if flip {
		return n - x
	}
	return x
}

// samplePoisson returns an integer-valued float drawn from Poisson(lambda).
func samplePoisson(r *Rand, lambda float64) float64 {
	if lambda < 12 {
		// Knuth's multiplication method.
		limit := math.Exp(-lambda)
		k := 0.0
		prod := r.Float64()
		for prod > limit {
			k++
			prod *= r.Float64()
		}
		return k
	}
	// Hörmann's transformed rejection with squeeze (PTRS).
	slam := math.Sqrt(lambda)
	loglam := math.Log(lambda)
	b := 0.931 + 2.53*slam
	a := -0.059 + 0.02483*b
	invalpha := 1.1239 + 1.1328/(b-3.4)
	vr := 0.9277 - 3.6224/(b-2)
	for {
		u := r.Float64() - 0.5
		v := r.Float64()
		us := 0.5 - math.Abs(u)
		k := math.Floor((2*a/us+b)*u + lambda + 0.43)
		if us >= 0.07 && v <= vr {
			return k
		}
		if k < 0 || (us < 0.013 && v > us) {
			continue
		}
		lg, _ := math.Lgamma(k + 1)
		if math.Log(v)+math.Log(invalpha)-math.Log(a/(us*us)+b) <= -lambda+k*loglam-lg {
			return k
		}
	}
}

// roundToU64 rounds half away from zero and saturates to [0, 2^64-1].
func roundToU64(x float64) uint64 {
	x = math.Round(x)
	switch {
	case !(x > 0):
		return 0
	case x >= 18446744073709551615.0:
		return math.MaxUint64
	}
	return uint64(x)
}

// truncToU64 truncates toward zero and saturates to [0, 2^64-1].
func truncToU64(x float64) uint64 {
	switch {
	case !(x > 0):
		return 0
	case x >= 18446744073709551615.0:
		return math.MaxUint64
	}
	return uint64(x)
}

// String prints the distribution readably, e.g.
// "Uniform(low 0, high 10) start 5 max 8"; start and max are shown when
// non-zero.
func (d Dist) String() string {
	if int(d.Type) >= distTypeCount {
		return d.Type.String()
	}
	var b []byte
	b = append(b, d.Type.String()...)
	b = append(b, '(')
	if d.Type == DistBinomial {
		b = append(b, "trials "...)
		b = strconv.AppendUint(b, d.Trials, 10)
		b = append(b, ", "...)
	}
	for i, name := range distParamNames[d.Type] {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, name...)
		b = append(b, ' ')
		b = strconv.AppendFloat(b, d.param(i), 'g', -1, 64)
	}
	b = append(b, ')')
	if d.Start != 0 {
		b = append(b, " start "...)
		b = strconv.AppendFloat(b, d.Start, 'g', -1, 64)
	}
	if d.Max != 0 {
		b = append(b, " max "...)
		b = strconv.AppendFloat(b, d.Max, 'g', -1, 64)
	}
	return string(b)
}
