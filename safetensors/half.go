package safetensors

import (
	"fmt"
	"math"
	"slices"
)

// FromFloat32AsF16 makes an F16 tensor (IEEE 754 binary16) of v, each
// value rounded to the nearest half, ties to even. Halves keep 11
// significant bits: a relative rounding error of at most 2⁻¹¹ ≈ 4.9·10⁻⁴
// between 6.1·10⁻⁵ and 65504, half the bytes of F32. A value whose
// magnitude rounds beyond 65504, or that is not finite, is an error
// naming its index: it would come back as an infinity.
func FromFloat32AsF16(name string, shape []int, v []float32) (Tensor, error) {
	data := make([]byte, 2*len(v))
	for i, x := range v {
		h := halfFromFloat32(x)
		if h&0x7c00 == 0x7c00 {
			return Tensor{}, fmt.Errorf("tensor %s: value %d (%v) does not fit a half-precision float", name, i, x)
		}
		data[2*i], data[2*i+1] = byte(h), byte(h>>8)
	}
	return Tensor{Name: name, DType: F16, Shape: slices.Clone(shape), Data: data}, nil
}

// Float16 decodes an F16 tensor to float32, which holds every half
// exactly.
func (t Tensor) Float16() ([]float32, error) {
	if t.DType != F16 {
		return nil, fmt.Errorf("tensor %s: dtype %s, want %s", t.Name, t.DType, F16)
	}
	if err := t.validate(); err != nil {
		return nil, err
	}
	v := make([]float32, len(t.Data)/2)
	for i := range v {
		v[i] = float32FromHalf(uint16(t.Data[2*i]) | uint16(t.Data[2*i+1])<<8)
	}
	return v, nil
}

// float32FromHalf widens a binary16 bit pattern: sign, 5 exponent bits
// (bias 15) and 10 fraction bits; exponent 0 holds the subnormals
// fraction·2⁻²⁴, exponent 31 the infinities and NaNs.
func float32FromHalf(h uint16) float32 {
	sign := float32(1)
	if h&0x8000 != 0 {
		sign = -1
	}
	exp, frac := int(h>>10&0x1f), float64(h&0x3ff)
	switch exp {
	case 0:
		return sign * float32(math.Ldexp(frac, -24))
	case 31:
		if frac != 0 {
			return float32(math.NaN())
		}
		return sign * float32(math.Inf(1))
	}
	return sign * float32(math.Ldexp(1024+frac, exp-25))
}

// halfFromFloat32 rounds x to the nearest binary16, ties to even: x's
// magnitude is scaled so that one unit in the last place of the half
// becomes 1, rounded there by math.RoundToEven (exact, since every
// float32 is a float64 and the scaling is by a power of two), and the
// integer split back into exponent and fraction. Magnitudes that round
// to 2¹⁶ − 2⁵ = 65536 or more become infinities; NaN stays NaN.
func halfFromFloat32(x float32) uint16 {
	var sign uint16
	if math.Signbit(float64(x)) {
		sign = 0x8000
	}
	a := math.Abs(float64(x))
	switch {
	case math.IsNaN(a):
		return 0x7e00
	case a >= 65520: // halfway between 65504 and 2¹⁶ rounds up to it: ∞
		return sign | 0x7c00
	}
	_, e := math.Frexp(a) // a = m·2^e, m in [0.5, 1)
	e = max(e-1, -14)     // a's binary exponent; the subnormals share -14's ulp
	q := uint32(math.RoundToEven(math.Ldexp(a, 10-e)))
	if q == 0 {
		return sign
	}
	if e == -14 && q < 1024 { // subnormal: the fraction is the count of 2⁻²⁴
		return sign | uint16(q)
	}
	if q == 2048 { // rounding carried into the next binade
		q, e = 1024, e+1
	}
	return sign | uint16(e+15)<<10 | uint16(q-1024)
}
