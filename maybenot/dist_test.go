package maybenot

import (
	"math"
	"testing"
	"time"
)

func TestDistValidate(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	cases := []struct {
		d  Dist
		ok bool
	}{
		{Dist{Type: DistUniform, Param1: 1, Param2: 1}, true},
		{Dist{Type: DistUniform, Param1: 2, Param2: 1}, false},
		{Dist{Type: DistUniform, Param1: nan, Param2: 1}, false},
		{Dist{Type: DistUniform, Param1: 0, Param2: inf}, false},
		{Dist{Type: DistUniform, Param1: -math.MaxFloat64, Param2: math.MaxFloat64}, false},
		{Dist{Type: DistNormal, Param1: nan, Param2: -1}, true},
		{Dist{Type: DistNormal, Param1: 0, Param2: inf}, false},
		{Dist{Type: DistLogNormal, Param1: inf, Param2: 1}, true},
		{Dist{Type: DistLogNormal, Param1: 0, Param2: nan}, false},
		{Dist{Type: DistSkewNormal, Param1: nan, Param2: 1, Param3: 2}, true},
		{Dist{Type: DistSkewNormal, Param1: 0, Param2: 0, Param3: 2}, false},
		{Dist{Type: DistSkewNormal, Param1: 0, Param2: 1, Param3: inf}, false},
		{Dist{Type: DistBinomial, Trials: 10, Param1: 0}, true},
		{Dist{Type: DistBinomial, Trials: 10, Param1: 1}, true},
		{Dist{Type: DistBinomial, Trials: 10, Param1: 1e-10}, false},
		{Dist{Type: DistBinomial, Trials: 2e9, Param1: 0.5}, false},
		{Dist{Type: DistBinomial, Trials: 10, Param1: nan}, false},
		{Dist{Type: DistBinomial, Trials: 10, Param1: 1.1}, false},
		{Dist{Type: DistGeometric, Param1: 0}, true},
		{Dist{Type: DistGeometric, Param1: 1e-12}, false},
		{Dist{Type: DistGeometric, Param1: 1.5}, false},
		{Dist{Type: DistPareto, Param1: inf, Param2: 1}, true},
		{Dist{Type: DistPareto, Param1: 1, Param2: 0}, false},
		{Dist{Type: DistPareto, Param1: -1, Param2: 1}, false},
		{Dist{Type: DistPoisson, Param1: 3}, true},
		{Dist{Type: DistPoisson, Param1: 0}, false},
		{Dist{Type: DistPoisson, Param1: 1e20}, false},
		{Dist{Type: DistPoisson, Param1: inf}, false},
		{Dist{Type: DistWeibull, Param1: 1, Param2: 1}, true},
		{Dist{Type: DistWeibull, Param1: -1, Param2: 1}, false},
		{Dist{Type: DistGamma, Param1: 1, Param2: 0}, false},
		{Dist{Type: DistGamma, Param1: nan, Param2: 1}, false},
		{Dist{Type: DistBeta, Param1: 0, Param2: 1}, false},
		{Dist{Type: DistBeta, Param1: 1, Param2: nan}, false},
		{Dist{Type: DistBeta, Param1: 2, Param2: 5}, true},
		{Dist{Type: 11}, false},
	}
	for _, c := range cases {
		err := c.d.Validate()
		if (err == nil) != c.ok {
			t.Errorf("%v: got %v, want ok=%t", c.d, err, c.ok)
		}
	}
}

// validDists covers every type with typical parameters.
var validDists = []Dist{
	{Type: DistUniform, Param1: 0, Param2: 10},
	{Type: DistUniform, Param1: -5, Param2: 5},
	{Type: DistNormal, Param1: 100, Param2: 10},
	{Type: DistNormal, Param1: 0, Param2: 1e300},
	{Type: DistSkewNormal, Param1: 0, Param2: 1, Param3: 3},
	{Type: DistSkewNormal, Param1: 50, Param2: 5, Param3: -1},
	{Type: DistLogNormal, Param1: 3, Param2: 0.5},
	{Type: DistLogNormal, Param1: 700, Param2: 5},
	{Type: DistBinomial, Trials: 300, Param1: 0.5},
	{Type: DistBinomial, Trials: 1_000_000_000, Param1: 1e-9},
	{Type: DistBinomial, Trials: 1_000_000_000, Param1: 0.999},
	{Type: DistGeometric, Param1: 0.25},
	{Type: DistGeometric, Param1: 1e-9},
	{Type: DistGeometric, Param1: 0},
	{Type: DistPareto, Param1: 1, Param2: 3},
	{Type: DistPareto, Param1: 1, Param2: 1e-3},
	{Type: DistPoisson, Param1: 4},
	{Type: DistPoisson, Param1: 1.8e19},
	{Type: DistWeibull, Param1: 3, Param2: 0.5},
	{Type: DistGamma, Param1: 2, Param2: 1.5},
	{Type: DistGamma, Param1: 2, Param2: 0.01},
	{Type: DistBeta, Param1: 2, Param2: 5},
	{Type: DistBeta, Param1: 1e-3, Param2: 1e-3},
}

func TestSampleBoundsAndClamping(t *testing.T) {
	r := NewRand(NewSeededSource(3))
	for _, base := range validDists {
		if err := base.Validate(); err != nil {
			t.Fatalf("%v: %v", base, err)
		}
		for _, sm := range []struct{ start, max float64 }{{0, 0}, {1000, 0}, {-1e9, 0}, {0, 7}, {5, 6}, {1e300, 1e300}} {
			d := base
			d.Start, d.Max = sm.start, sm.max
			for i := 0; i < 2000; i++ {
				x := d.Sample(r)
				if math.IsNaN(x) || math.IsInf(x, 0) || x < 0 {
					t.Fatalf("%v: sample %v", d, x)
				}
				if d.Max > 0 && x > d.Max {
					t.Fatalf("%v: sample %v above max", d, x)
				}
				switch d.Type {
				case DistBinomial, DistGeometric, DistPoisson:
					if x-d.Start != math.Trunc(x-d.Start) && d.Max == 0 && x > 0 {
						t.Fatalf("%v: non-integer sample %v", d, x)
					}
				}
				if d.Type == DistBinomial && d.Max == 0 && d.Start == 0 && x > float64(d.Trials) {
					t.Fatalf("%v: %v successes", d, x)
				}
			}
		}
	}
	// Constant distributions, start shift and clamps, without randomness.
	c := Dist{Type: DistUniform, Param1: 4, Param2: 4, Start: 3}
	if x := c.Sample(r); x != 7 {
		t.Errorf("Uniform(4,4)+3 = %v", x)
	}
	c.Max = 5
	if x := c.Sample(r); x != 5 {
		t.Errorf("clamp to max: %v", x)
	}
	c.Start = -10
	if x := c.Sample(r); x != 0 {
		t.Errorf("negative: %v", x)
	}
	c = Dist{Type: DistNormal, Param1: math.NaN(), Param2: 1}
	if x := c.Sample(r); x != 0 {
		t.Errorf("NaN mean: %v", x)
	}
	c = Dist{Type: DistPareto, Param1: math.Inf(1), Param2: 1}
	if x := c.Sample(r); x != 0 {
		t.Errorf("infinite Pareto: %v", x)
	}
	c = Dist{Type: DistPareto, Param1: math.Inf(1), Param2: 1, Max: 9}
	if x := c.Sample(r); x != 0 {
		t.Errorf("infinite Pareto with max: %v", x)
	}
	// Sampled parameters: one-day cap, rounding, saturation.
	huge := Dist{Type: DistUniform, Param1: 1e300, Param2: 1e300}
	if got := sampleMicros(&huge, r, MaxSampledTimeout); got != 24*time.Hour {
		t.Errorf("timeout cap: %v", got)
	}
	half := Dist{Type: DistUniform, Param1: 2.5, Param2: 2.5}
	if got := sampleMicros(&half, r, MaxSampledTimeout); got != 3*time.Microsecond {
		t.Errorf("round half away from zero: %v", got)
	}
	if roundToU64(1e300) != math.MaxUint64 || truncToU64(1e300) != math.MaxUint64 || roundToU64(-3) != 0 || truncToU64(2.9) != 2 {
		t.Error("saturating conversions")
	}
}

func TestSampleMeans(t *testing.T) {
	r := NewRand(NewSeededSource(11))
	skew := 3 / math.Sqrt(10)
	cases := []struct {
		d        Dist
		mean, sd float64 // expected mean and standard deviation
	}{
		{Dist{Type: DistUniform, Param1: 0, Param2: 10}, 5, 10 / math.Sqrt(12)},
		{Dist{Type: DistNormal, Param1: 100, Param2: 10}, 100, 10},
		{Dist{Type: DistSkewNormal, Param1: 0, Param2: 1, Param3: 3}, math.Sqrt(2/math.Pi) * skew, math.Sqrt(1 - 2*skew*skew/math.Pi)},
		{Dist{Type: DistLogNormal, Param1: 0, Param2: 0.5}, math.Exp(0.125), math.Sqrt((math.Exp(0.25) - 1) * math.Exp(0.25))},
		{Dist{Type: DistBinomial, Trials: 20, Param1: 0.1}, 2, math.Sqrt(1.8)},
		{Dist{Type: DistBinomial, Trials: 300, Param1: 0.5}, 150, math.Sqrt(75)},
		{Dist{Type: DistBinomial, Trials: 1_000_000, Param1: 0.7}, 700000, math.Sqrt(210000)},
		{Dist{Type: DistGeometric, Param1: 0.25}, 3, math.Sqrt(0.75) / 0.25},
		{Dist{Type: DistPareto, Param1: 1, Param2: 5}, 1.25, math.Sqrt(5.0 / (16 * 3))},
		{Dist{Type: DistPoisson, Param1: 4}, 4, 2},
		{Dist{Type: DistPoisson, Param1: 400}, 400, 20},
		{Dist{Type: DistWeibull, Param1: 3, Param2: 1}, 3, 3},
		{Dist{Type: DistGamma, Param1: 2, Param2: 1.5}, 3, math.Sqrt(6)},
		{Dist{Type: DistGamma, Param1: 2, Param2: 0.5}, 1, math.Sqrt(2)},
		{Dist{Type: DistGamma, Param1: 2, Param2: 1}, 2, 2},
		{Dist{Type: DistBeta, Param1: 2, Param2: 5}, 2.0 / 7, math.Sqrt(10.0 / (49 * 8))},
	}
	const n = 20000
	for _, c := range cases {
		var sum, sq float64
		for i := 0; i < n; i++ {
			x := c.d.draw(r)
			sum += x
			sq += x * x
		}
		mean := sum / n
		sd := math.Sqrt(sq/n - mean*mean)
		// Six standard errors: a deterministic seed, so this cannot flake.
		if math.Abs(mean-c.mean) > 6*c.sd/math.Sqrt(n) {
			t.Errorf("%v: mean %v, want %v", c.d, mean, c.mean)
		}
		if math.Abs(sd-c.sd) > 0.1*c.sd {
			t.Errorf("%v: stdev %v, want %v", c.d, sd, c.sd)
		}
	}
}

func TestFloat32DrawBits(t *testing.T) {
	r := NewRand(NewSeededSource(5))
	for i := 0; i < 100000; i++ {
		x := r.Float32()
		if x < 0 || x >= 1 || x*(1<<23) != float32(math.Trunc(float64(x)*(1<<23))) {
			t.Fatalf("bad float32 %v", x)
		}
		y := r.Float64()
		if y < 0 || y >= 1 {
			t.Fatalf("bad float64 %v", y)
		}
	}
}
