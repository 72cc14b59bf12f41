package speech

import (
	"math"
	"math/cmplx"
	"math/rand/v2"
	"testing"

	"github.com/latentlm/latentlm/wav"
)

func sine(freq, rate float64, n int, amp float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(amp * math.Sin(2*math.Pi*freq*float64(i)/rate))
	}
	return x
}

// rms of x[lo:hi].
func rms(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v * v
	}
	return math.Sqrt(s / float64(len(x)))
}

// TestResampleSine resamples pure tones and compares the result with the
// same sine evaluated analytically at the output times, away from the
// edges, where the input is taken as zero.
func TestResampleSine(t *testing.T) {
	cases := []struct {
		from, to int
		freq     float64
		maxErr   float64
	}{
		{8000, 16000, 1000, 2e-4},
		{8000, 16000, 3500, 2e-3},  // 0.875 of the input's Nyquist, at the pass band's edge
		{32000, 16000, 440, 2e-4},  // the festival HTS voice
		{48000, 16000, 6000, 2e-4}, // a user's recording
		{22050, 16000, 2000, 2e-4}, // 320 phases
		{44101, 16000, 1000, 2e-4}, // coprime: no table
	}
	for _, c := range cases {
		n := c.from / 4 // a quarter of a second
		x := sine(c.freq, float64(c.from), n, 0.5)
		y, err := Resample(x, c.from, c.to)
		if err != nil {
			t.Fatal(err)
		}
		if want := (n*c.to + c.from - 1) / c.from; len(y) != want {
			t.Fatalf("%d→%d: %d samples, want %d", c.from, c.to, len(y), want)
		}
		margin := len(y) / 8
		var worst float64
		for i := margin; i < len(y)-margin; i++ {
			want := 0.5 * math.Sin(2*math.Pi*c.freq*float64(i)/float64(c.to))
			worst = math.Max(worst, math.Abs(float64(y[i])-want))
		}
		if worst > c.maxErr {
			t.Errorf("%d→%d Hz, %g Hz tone: worst error %.2g, want ≤ %.2g", c.from, c.to, c.freq, worst, c.maxErr)
		}
	}
}

// TestResampleRemovesAliases checks that downsampling filters out a tone
// above the new Nyquist frequency instead of folding it into the band.
func TestResampleRemovesAliases(t *testing.T) {
	x := sine(11000, 32000, 8000, 0.5) // would alias to 5 kHz at 16 kHz
	y, err := Resample(x, 32000, 16000)
	if err != nil {
		t.Fatal(err)
	}
	mid := make([]float64, 0, len(y)/2)
	for _, v := range y[len(y)/4 : 3*len(y)/4] {
		mid = append(mid, float64(v))
	}
	if r := rms(mid); r > 0.5/math.Sqrt2*1e-3 {
		t.Errorf("an 11 kHz tone at 16 kHz keeps rms %.2g (%.0f dB), want below −60 dB", r, 20*math.Log10(r/(0.5/math.Sqrt2)))
	}
}

func TestResampleConstantAndErrors(t *testing.T) {
	x := make([]float32, 1000)
	for i := range x {
		x[i] = 0.25
	}
	y, err := Resample(x, 8000, 16000)
	if err != nil {
		t.Fatal(err)
	}
	for i := 80; i < len(y)-80; i++ { // the kernel reaches 34 input samples
		if math.Abs(float64(y[i])-0.25) > 1e-6 {
			t.Fatalf("sample %d of a constant: %v", i, y[i])
		}
	}
	if _, err := Resample(x, 0, 16000); err == nil {
		t.Error("rate 0 accepted")
	}
	same, _ := Resample(x, 16000, 16000)
	same[0] = 9
	if x[0] != 0.25 {
		t.Error("Resample at the same rate returned its input, not a copy")
	}
}

// TestFFTMatchesDFT compares the FFT with a float64 DFT written out.
func TestFFTMatchesDFT(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{2, 8, 64, 512} {
		x := make([]complex128, n)
		for i := range x {
			x[i] = complex(r.NormFloat64(), r.NormFloat64())
		}
		got := append([]complex128(nil), x...)
		fft(got)
		for k := range n {
			var want complex128
			for j, v := range x {
				want += v * cmplx.Exp(complex(0, -2*math.Pi*float64(j*k)/float64(n)))
			}
			if cmplx.Abs(got[k]-want) > 1e-9*float64(n) {
				t.Fatalf("n=%d bin %d: %v, want %v", n, k, got[k], want)
			}
		}
	}
}

// TestSpectrogramMatchesDFT checks one STFT frame against the DFT of the
// windowed, centred samples computed directly.
func TestSpectrogramMatchesDFT(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	x := make([]float32, 1000)
	for i := range x {
		x[i] = float32(r.NormFloat64() * 0.1)
	}
	o := STFTOptions{FFT: 64, Window: 48, Hop: 16}
	spec, err := PowerSpectrogram(x, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(spec) != o.Frames(len(x)) || len(spec) != 63 || len(spec[0]) != 33 {
		t.Fatalf("got %d frames of %d bins", len(spec), len(spec[0]))
	}
	for _, frame := range []int{0, 10, 62} {
		start := frame*o.Hop - o.Window/2
		for k := range 33 {
			var want complex128
			for i := range o.Window {
				if j := start + i; j >= 0 && j < len(x) {
					w := 0.5 - 0.5*math.Cos(2*math.Pi*float64(i)/float64(o.Window))
					want += complex(w*float64(x[j]), 0) * cmplx.Exp(complex(0, -2*math.Pi*float64(i*k)/64))
				}
			}
			p := real(want)*real(want) + imag(want)*imag(want)
			if math.Abs(spec[frame][k]-p) > 1e-9*(1+p) {
				t.Fatalf("frame %d bin %d: %v, want %v", frame, k, spec[frame][k], p)
			}
		}
	}
}

// TestToneLandsInItsBin: a pure tone peaks in the STFT bin of its frequency
// and in the mel band whose centre is nearest it.
func TestToneLandsInItsBin(t *testing.T) {
	for _, f := range []float64{250, 1000, 3125, 6000} {
		x := sine(f, Rate, Rate/2, 0.5)
		spec, err := PowerSpectrogram(x, DefaultSTFT)
		if err != nil {
			t.Fatal(err)
		}
		row := spec[len(spec)/2]
		best := 0
		for k := range row {
			if row[k] > row[best] {
				best = k
			}
		}
		if want := int(math.Round(f * float64(DefaultSTFT.FFT) / Rate)); best != want {
			t.Errorf("%g Hz: peak in bin %d, want %d", f, best, want)
		}
		mel, err := LogMel(x, DefaultSTFT, DefaultMel)
		if err != nil {
			t.Fatal(err)
		}
		mrow := mel[len(mel)/2]
		bestM, nearest := 0, 0
		for m := range mrow {
			if mrow[m] > mrow[bestM] {
				bestM = m
			}
			if math.Abs(MelCentre(DefaultMel, m)-f) < math.Abs(MelCentre(DefaultMel, nearest)-f) {
				nearest = m
			}
		}
		if bestM != nearest {
			t.Errorf("%g Hz: loudest mel band %d (centre %.0f Hz), want %d (centre %.0f Hz)", f, bestM, MelCentre(DefaultMel, bestM), nearest, MelCentre(DefaultMel, nearest))
		}
	}
}

func TestMelScaleAndFilterbank(t *testing.T) {
	if m := HzToMel(1000); math.Abs(m-1000) > 1 {
		t.Errorf("HzToMel(1000) = %v, want ≈ 1000", m)
	}
	if f := MelToHz(HzToMel(4321)); math.Abs(f-4321) > 1e-9 {
		t.Errorf("MelToHz∘HzToMel(4321) = %v", f)
	}
	fb, err := MelFilterbank(DefaultMel)
	if err != nil {
		t.Fatal(err)
	}
	if len(fb) != 80 || len(fb[0]) != 257 {
		t.Fatalf("filterbank %d×%d", len(fb), len(fb[0]))
	}
	// Inside the band, neighbouring triangles overlap to sum to one at
	// every bin between the first and last centres.
	lo, hi := MelCentre(DefaultMel, 0), MelCentre(DefaultMel, 79)
	for k := range 257 {
		f := float64(k) * Rate / 512
		if f < lo || f > hi {
			continue
		}
		var s float64
		for m := range fb {
			s += fb[m][k]
		}
		if math.Abs(s-1) > 1e-9 {
			t.Fatalf("bin %d (%.0f Hz): weights sum to %v", k, f, s)
		}
	}
	for _, bad := range []MelOptions{{Rate: 16000, FFT: 500, Mels: 80}, {Rate: 16000, FFT: 512, Mels: 0}, {Rate: 16000, FFT: 512, Mels: 10, High: 9000}} {
		if _, err := MelFilterbank(bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestSpectrogramImage(t *testing.T) {
	// A second of a 1 kHz tone at 8 kHz, whose picture has a bright line at
	// the tone's band and is black well away from it.
	a := wav.Audio{Rate: 8000, Samples: sine(1000, 8000, 8000, 0.5)}
	img, h, w, err := SpectrogramImage(a)
	if err != nil {
		t.Fatal(err)
	}
	if h != 80*SpectrogramBandPixels || w != 100*SpectrogramFramePixels || len(img) != h*w {
		t.Fatalf("picture %d×%d with %d values", h, w, len(img))
	}
	nearest := 0
	for m := range 80 {
		if math.Abs(MelCentre(DefaultMel, m)-1000) < math.Abs(MelCentre(DefaultMel, nearest)-1000) {
			nearest = m
		}
	}
	row := (79 - nearest) * SpectrogramBandPixels
	if v := img[row*w+w/2]; v < 0.95 {
		t.Errorf("the tone's band is %v, want near white", v)
	}
	if v := img[0*w+w/2]; v > 0 {
		t.Errorf("the top band (8 kHz) is %v, want black", v)
	}
	if _, _, _, err := SpectrogramImage(wav.Audio{Rate: 16000}); err == nil {
		t.Error("empty audio accepted")
	}
}
