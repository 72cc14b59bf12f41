package speech

import (
	"fmt"
	"math"
	"math/bits"
	"math/cmplx"
)

// STFTOptions are the settings of a short-time Fourier transform. The
// defaults (DefaultSTFT) are the usual speech front end at 16 kHz: 25 ms
// Hann windows every 10 ms in FFTs of 512 points.
type STFTOptions struct {
	FFT    int // FFT size, a power of two
	Window int // Hann window length in samples, at most FFT
	Hop    int // samples between frame starts
}

// DefaultSTFT is the STFT of spectrograms and mel features at 16 kHz.
var DefaultSTFT = STFTOptions{FFT: 512, Window: 400, Hop: 160}

func (o STFTOptions) check() error {
	if o.FFT < 2 || o.FFT > 1<<16 || bits.OnesCount(uint(o.FFT)) != 1 {
		return fmt.Errorf("FFT size %d is not a power of two within 2…65536", o.FFT)
	}
	if o.Window < 1 || o.Window > o.FFT {
		return fmt.Errorf("window of %d samples, want 1…%d (the FFT size)", o.Window, o.FFT)
	}
	if o.Hop < 1 {
		return fmt.Errorf("hop of %d samples, want at least 1", o.Hop)
	}
	return nil
}

// Frames is the number of STFT frames of n samples: one per hop, the frame
// t centred on sample t·Hop, so that frame times do not depend on the
// window length.
func (o STFTOptions) Frames(n int) int {
	if n <= 0 {
		return 0
	}
	return (n-1)/o.Hop + 1
}

// PowerSpectrogram returns |STFT|² of x: Frames(len(x)) rows of FFT/2+1
// bins, bin k at k·rate/FFT Hz. Frame t is the periodic Hann window,
// centred on sample t·Hop (the signal is taken as zero outside), zero
// padded to the FFT size.
func PowerSpectrogram(x []float32, o STFTOptions) ([][]float64, error) {
	spec, err := STFT(x, o)
	if err != nil {
		return nil, err
	}
	out := make([][]float64, len(spec))
	for t, row := range spec {
		out[t] = make([]float64, len(row))
		for k, c := range row {
			out[t][k] = real(c)*real(c) + imag(c)*imag(c)
		}
	}
	return out, nil
}

// hann is the periodic Hann window of n samples, the one whose shifted
// copies at a hop of n/2 or n/4 sum to a constant.
func hann(n int) []float64 {
	w := make([]float64, n)
	for i := range w {
		w[i] = 0.5 - 0.5*math.Cos(2*math.Pi*float64(i)/float64(n))
	}
	return w
}

// fft transforms x in place (radix-2, decimation in time); len(x) must be
// a power of two. X[k] = Σ x[n]·e^{−2πikn/N}.
func fft(x []complex128) {
	n := len(x)
	shift := 64 - bits.TrailingZeros(uint(n))
	for i := range x {
		if j := int(bits.Reverse64(uint64(i)) >> shift); j > i {
			x[i], x[j] = x[j], x[i]
		}
	}
	for size := 2; size <= n; size *= 2 {
		step := cmplx.Exp(complex(0, -2*math.Pi/float64(size)))
		for start := 0; start < n; start += size {
			w := complex(1, 0)
			for k := range size / 2 {
				a, b := x[start+k], w*x[start+k+size/2]
				x[start+k], x[start+k+size/2] = a+b, a-b
				w *= step
			}
		}
	}
}

// MelOptions are the settings of a mel filterbank.
type MelOptions struct {
	Rate      int     // sample rate in Hz
	FFT       int     // FFT size of the spectrogram it applies to
	Mels      int     // number of filters
	Low, High float64 // band edges in Hz; High 0 means Rate/2
}

// DefaultMel is the 80-band filterbank over 0–8 kHz used for features and
// spectrogram pictures at 16 kHz.
var DefaultMel = MelOptions{Rate: Rate, FFT: DefaultSTFT.FFT, Mels: 80}

// HzToMel is the HTK mel scale, 2595·log10(1 + f/700): close to linear below
// 1 kHz and logarithmic above, as pitch perception is.
func HzToMel(f float64) float64 { return 2595 * math.Log10(1+f/700) }

// MelToHz inverts HzToMel.
func MelToHz(m float64) float64 { return 700 * (math.Pow(10, m/2595) - 1) }

// MelFilterbank returns Mels triangular filters over the FFT/2+1 bins,
// their centres evenly spaced on the mel scale between Low and High; filter
// m rises from centre m−1 to 1 at centre m and falls to 0 at centre m+1,
// weights taken at each bin's frequency (HTK style, peak 1, not area
// normalised, so that a tone at a centre has the same energy in any band).
func MelFilterbank(o MelOptions) ([][]float64, error) {
	high := o.High
	if high == 0 {
		high = float64(o.Rate) / 2
	}
	switch {
	case o.Rate < 1:
		return nil, fmt.Errorf("speech: mel filterbank: sample rate %d", o.Rate)
	case o.FFT < 2 || o.FFT > 1<<16 || bits.OnesCount(uint(o.FFT)) != 1:
		return nil, fmt.Errorf("speech: mel filterbank: FFT size %d is not a power of two within 2…65536", o.FFT)
	case o.Mels < 1 || o.Mels > o.FFT/2:
		return nil, fmt.Errorf("speech: mel filterbank: %d bands, want 1…%d (half the FFT size)", o.Mels, o.FFT/2)
	case !(o.Low >= 0 && o.Low < high && high <= float64(o.Rate)/2):
		return nil, fmt.Errorf("speech: mel filterbank: band %g…%g Hz is not within 0…%d Hz", o.Low, high, o.Rate/2)
	}
	lo, hi := HzToMel(o.Low), HzToMel(high)
	edges := make([]float64, o.Mels+2)
	for i := range edges {
		edges[i] = MelToHz(lo + (hi-lo)*float64(i)/float64(o.Mels+1))
	}
	bins := o.FFT/2 + 1
	fb := make([][]float64, o.Mels)
	for m := range fb {
		row := make([]float64, bins)
		l, c, r := edges[m], edges[m+1], edges[m+2]
		for k := range row {
			f := float64(k) * float64(o.Rate) / float64(o.FFT)
			switch {
			case f > l && f <= c:
				row[k] = (f - l) / (c - l)
			case f > c && f < r:
				row[k] = (r - f) / (r - c)
			}
		}
		fb[m] = row
	}
	return fb, nil
}

// MelCentre is the centre frequency of filter m of o, in Hz.
func MelCentre(o MelOptions, m int) float64 {
	high := o.High
	if high == 0 {
		high = float64(o.Rate) / 2
	}
	lo, hi := HzToMel(o.Low), HzToMel(high)
	return MelToHz(lo + (hi-lo)*float64(m+1)/float64(o.Mels+1))
}

// LogMelFloor is the power below which log-mel values are clipped. A frame
// of 16-bit quantisation noise has about 1e-8 per bin (a full-scale sine
// about 1e4), so the floor only clips digital silence, where the log would
// otherwise be −∞.
const LogMelFloor = 1e-10

// LogMel returns the log (natural) mel power spectrogram of x at o.Rate:
// frames × Mels values ln(max(mel power, LogMelFloor)). These are the
// features of the speaker classifier and of mel distances.
func LogMel(x []float32, s STFTOptions, m MelOptions) ([][]float32, error) {
	if m.FFT != s.FFT {
		return nil, fmt.Errorf("speech: log-mel: filterbank for FFT size %d applied to an STFT of %d", m.FFT, s.FFT)
	}
	spec, err := PowerSpectrogram(x, s)
	if err != nil {
		return nil, err
	}
	fb, err := MelFilterbank(m)
	if err != nil {
		return nil, err
	}
	out := make([][]float32, len(spec))
	for t, row := range spec {
		mel := make([]float32, len(fb))
		for j, f := range fb {
			var e float64
			for k, w := range f {
				e += w * row[k]
			}
			mel[j] = float32(math.Log(math.Max(e, LogMelFloor)))
		}
		out[t] = mel
	}
	return out, nil
}
