package safetensors

import (
	"math"
	"testing"
)

// TestHalfRoundTrip: every one of the 65536 bit patterns widens and
// narrows back to itself (NaNs to the quiet NaN), so the pair is exact.
func TestHalfRoundTrip(t *testing.T) {
	for h := range 1 << 16 {
		x := float32FromHalf(uint16(h))
		got := halfFromFloat32(x)
		if math.IsNaN(float64(x)) {
			if h&0x7c00 != 0x7c00 || h&0x3ff == 0 || got != 0x7e00 {
				t.Fatalf("pattern %#04x: NaN handling: got %#04x", h, got)
			}
			continue
		}
		if got != uint16(h) {
			t.Fatalf("pattern %#04x → %v → %#04x", h, x, got)
		}
	}
}

// TestHalfRoundsToNearestEven checks the narrowing against a float64
// reference that searches the sorted finite halves for the nearest one,
// breaking ties by the even fraction, on the points where rounding is
// hardest (every midpoint between neighbouring halves, and a hair either
// side of it) and on pseudo-random values across the range.
func TestHalfRoundsToNearestEven(t *testing.T) {
	var halves []float64 // the non-negative finite halves, ascending; index = bit pattern
	for h := range 0x7c00 {
		halves = append(halves, float64(float32FromHalf(uint16(h))))
	}
	nearest := func(a float64) uint16 {
		// binary search for the first half ≥ a
		lo, hi := 0, len(halves)
		for lo < hi {
			mid := (lo + hi) / 2
			if halves[mid] < a {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		if lo == len(halves) { // above 65504: ∞ from the midpoint to 2¹⁶ on
			if a >= 65520 {
				return 0x7c00
			}
			return 0x7bff
		}
		if lo == 0 || halves[lo] == a {
			return uint16(lo)
		}
		below, above := a-halves[lo-1], halves[lo]-a
		switch {
		case below < above:
			return uint16(lo - 1)
		case above < below:
			return uint16(lo)
		case (lo-1)%2 == 0:
			return uint16(lo - 1)
		}
		return uint16(lo)
	}
	check := func(x float32) {
		t.Helper()
		want := nearest(math.Abs(float64(x)))
		if x < 0 {
			want |= 0x8000
		}
		if got := halfFromFloat32(x); got != want {
			t.Fatalf("%v (%#08x): got half %#04x (%v), want %#04x (%v)", x, math.Float32bits(x), got, float32FromHalf(got), want, float32FromHalf(want))
		}
	}
	for i := 1; i < len(halves); i++ {
		mid := float32((halves[i-1] + halves[i]) / 2) // exact: a half has 11 bits
		for _, x := range []float32{mid, math.Nextafter32(mid, 0), math.Nextafter32(mid, 1e9)} {
			check(x)
			check(-x)
		}
	}
	for _, x := range []float32{65504, 65519.99, 65520, 1e9, 1e-9, 5.9604645e-8, 2.9802322e-8, 2.9802326e-8} {
		check(x)
	}
	seed := uint32(1)
	for range 200_000 {
		seed = seed*1664525 + 1013904223
		x := math.Float32frombits(seed&^(0xff<<23) | uint32(seed%40+100)<<23) // exponents 2⁻²⁷ … 2¹²
		check(x)
	}
}

// TestF16TensorRoundTrip: a tensor written as halves and read back is
// within the rounding bound, survives Encode/Parse, and values that do not
// fit are refused with their index.
func TestF16TensorRoundTrip(t *testing.T) {
	v := []float32{0, 1, -2.5, 3.14159, 1e-3, -7e-6, 60000}
	tn, err := FromFloat32AsF16("z", []int{7}, v)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytesBuffer
	if err := Encode(&buf, []Tensor{tn}, nil); err != nil {
		t.Fatal(err)
	}
	f, err := Parse(buf.b)
	if err != nil {
		t.Fatal(err)
	}
	back, _ := f.Get("z")
	got, err := back.Float16()
	if err != nil {
		t.Fatal(err)
	}
	for i := range v {
		tol := math.Abs(float64(v[i])) * (1.0 / 2048)
		if v[i] != 0 && math.Abs(float64(v[i])) < 6.2e-5 {
			tol = math.Ldexp(1, -25) // subnormal spacing 2⁻²⁴, half of it
		}
		if d := math.Abs(float64(got[i] - v[i])); d > tol {
			t.Errorf("value %d: %v came back as %v (error %g > %g)", i, v[i], got[i], d, tol)
		}
	}
	if _, err := back.Float32(); err == nil {
		t.Error("Float32 of an F16 tensor: no error")
	}
	for _, bad := range []float32{65520, float32(math.Inf(-1)), float32(math.NaN())} {
		if _, err := FromFloat32AsF16("z", []int{2}, []float32{1, bad}); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

type bytesBuffer struct{ b []byte }

func (w *bytesBuffer) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }
