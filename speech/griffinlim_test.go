package speech

import (
	"math"
	"math/cmplx"
	"testing"
)

// chirp is a test signal with a moving pitch, so that no single phase
// pattern fits every frame.
func chirp(n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		t := float64(i) / Rate
		x[i] = float32(0.4*math.Sin(2*math.Pi*(200*t+400*t*t)) + 0.1*math.Sin(2*math.Pi*1300*t))
	}
	return x
}

// TestSTFTAgainstDFT: each frame of STFT is the float64 DFT of the
// windowed, centred frame, computed from the definition.
func TestSTFTAgainstDFT(t *testing.T) {
	x := chirp(1000)
	o := VocoderSTFT
	spec, err := STFT(x, o)
	if err != nil {
		t.Fatal(err)
	}
	win := hann(o.Window)
	for _, tf := range []int{0, 3, len(spec) - 1} {
		for _, k := range []int{0, 7, 100, o.FFT / 2} {
			var want complex128
			for i, w := range win {
				if s := tf*o.Hop - o.Window/2 + i; s >= 0 && s < len(x) {
					want += complex(w*float64(x[s]), 0) * cmplx.Exp(complex(0, -2*math.Pi*float64(k*i)/float64(o.FFT)))
				}
			}
			if d := cmplx.Abs(spec[tf][k] - want); d > 1e-9*(1+cmplx.Abs(want)) {
				t.Errorf("frame %d bin %d: %v, DFT %v", tf, k, spec[tf][k], want)
			}
		}
	}
}

// TestISTFTInvertsSTFT: the least-squares inverse gives back the signal.
func TestISTFTInvertsSTFT(t *testing.T) {
	for _, n := range []int{640, 1001, 4000} {
		x := chirp(n)
		spec, err := STFT(x, VocoderSTFT)
		if err != nil {
			t.Fatal(err)
		}
		y, err := ISTFT(spec, VocoderSTFT, n)
		if err != nil {
			t.Fatal(err)
		}
		var worst float64
		for i := range x {
			worst = math.Max(worst, math.Abs(float64(x[i]-y[i])))
		}
		if worst > 1e-5 {
			t.Errorf("n=%d: inverse STFT is off by up to %g", n, worst)
		}
	}
	if _, err := ISTFT(make([][]complex128, 3), VocoderSTFT, 10000); err == nil {
		t.Error("ISTFT accepted a frame count that does not fit the length")
	}
}

// spectralConvergence is ‖|X| − |Y|‖_F/‖|X|‖_F between two magnitude sets.
func spectralConvergence(a, b [][]float32) float64 {
	var num, den float64
	for t := range a {
		for k := range a[t] {
			d := float64(a[t][k] - b[t][k])
			num += d * d
			den += float64(a[t][k]) * float64(a[t][k])
		}
	}
	return math.Sqrt(num / den)
}

// TestGriffinLimRecoversMagnitudes: from magnitudes alone, the signal
// Griffin-Lim returns has nearly those magnitudes, far closer than with
// the random starting phases (no iterations).
func TestGriffinLimRecoversMagnitudes(t *testing.T) {
	x := chirp(8000)
	mag, err := Magnitudes(x, VocoderSTFT)
	if err != nil {
		t.Fatal(err)
	}
	sc := func(iters int) float64 {
		y, err := GriffinLim(mag, VocoderSTFT, len(x), iters, 1)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Magnitudes(y, VocoderSTFT)
		if err != nil {
			t.Fatal(err)
		}
		return spectralConvergence(mag, got)
	}
	start, after := sc(0), sc(32)
	t.Logf("spectral convergence: random phase %.3f, 32 iterations %.3f", start, after)
	if !(after < 0.1 && after < start/4) {
		t.Errorf("Griffin-Lim: spectral convergence %.3f after 32 iterations (%.3f at the start), want < 0.1 and a quarter of the start", after, start)
	}
	// Seeded: the same seed gives the same samples.
	a, _ := GriffinLim(mag, VocoderSTFT, len(x), 2, 7)
	b, _ := GriffinLim(mag, VocoderSTFT, len(x), 2, 7)
	for i := range a {
		if a[i] != b[i] {
			t.Fatal("Griffin-Lim with one seed gave two results")
		}
	}
}
