package speech

import (
	"fmt"
	"math"
	"math/cmplx"
	"math/rand/v2"
)

// VocoderSTFT is the STFT of the speech tokenizer's magnitude spectra and
// of Griffin-Lim: 512-point Hann windows every 128 samples (125 frames/s at
// 16 kHz). Windows four times longer than the hop overlap enough that a
// magnitude-only spectrogram pins down a consistent phase (Griffin & Lim
// 1984 need redundancy to converge), and five frames make one 25 Hz latent.
var VocoderSTFT = STFTOptions{FFT: 512, Window: 512, Hop: 128}

// STFT returns the complex short-time Fourier transform of x with the
// framing of PowerSpectrogram: Frames(len(x)) rows of FFT/2+1 bins, frame t
// the periodic Hann window centred on sample t·Hop.
func STFT(x []float32, o STFTOptions) ([][]complex128, error) {
	if err := o.check(); err != nil {
		return nil, fmt.Errorf("speech: STFT: %w", err)
	}
	win := hann(o.Window)
	out := make([][]complex128, o.Frames(len(x)))
	buf := make([]complex128, o.FFT)
	for t := range out {
		start := t*o.Hop - o.Window/2
		clear(buf)
		for i, w := range win {
			if k := start + i; k >= 0 && k < len(x) {
				buf[i] = complex(w*float64(x[k]), 0)
			}
		}
		fft(buf)
		out[t] = append([]complex128(nil), buf[:o.FFT/2+1]...)
	}
	return out, nil
}

// ISTFT inverts STFT for a signal of n samples: each frame's inverse FFT is
// windowed again and overlap-added, divided by the summed squared window
// (the least-squares inverse of Griffin & Lim 1984, eq. 6). For a spectrum
// that is the STFT of some signal it returns that signal exactly; for any
// other it returns the signal whose STFT is nearest in the squared error.
func ISTFT(spec [][]complex128, o STFTOptions, n int) ([]float32, error) {
	if err := o.check(); err != nil {
		return nil, fmt.Errorf("speech: inverse STFT: %w", err)
	}
	if len(spec) != o.Frames(n) {
		return nil, fmt.Errorf("speech: inverse STFT: %d frames for %d samples, want %d", len(spec), n, o.Frames(n))
	}
	win := hann(o.Window)
	acc := make([]float64, n)
	norm := make([]float64, n)
	buf := make([]complex128, o.FFT)
	for t, row := range spec {
		if len(row) != o.FFT/2+1 {
			return nil, fmt.Errorf("speech: inverse STFT: frame %d has %d bins, want %d", t, len(row), o.FFT/2+1)
		}
		inverseRealFFT(row, buf)
		start := t*o.Hop - o.Window/2
		for i, w := range win {
			if k := start + i; k >= 0 && k < n {
				acc[k] += w * real(buf[i])
				norm[k] += w * w
			}
		}
	}
	out := make([]float32, n)
	for k := range out {
		if norm[k] > 1e-8 {
			out[k] = float32(acc[k] / norm[k])
		}
	}
	return out, nil
}

// inverseRealFFT writes into buf (length FFT) the inverse FFT of the
// Hermitian spectrum whose first FFT/2+1 bins are half; the imaginary parts
// of the DC and Nyquist bins are ignored, as they are for a real signal.
func inverseRealFFT(half []complex128, buf []complex128) {
	n := len(buf)
	for k := range buf {
		var v complex128
		if k <= n/2 {
			v = half[k]
		} else {
			v = cmplx.Conj(half[n-k])
		}
		buf[k] = cmplx.Conj(v) // ifft(x) = conj(fft(conj(x)))/n
	}
	buf[0] = complex(real(half[0]), 0)
	buf[n/2] = complex(real(half[n/2]), 0)
	fft(buf)
	for k := range buf {
		buf[k] = cmplx.Conj(buf[k]) / complex(float64(n), 0)
	}
}

// GriffinLim turns a magnitude spectrogram (rows of FFT/2+1 |STFT| values)
// back into n samples by the fast Griffin-Lim algorithm (Perraudin,
// Balazs & Søndergaard 2013): alternate projections onto the spectrograms
// with the given magnitudes and onto consistent spectrograms (those of
// some signal), with momentum 0.99 on the second, from random phases drawn
// from seed. It is the vocoder of the spectral speech tokenizer: the
// tokenizer models magnitudes, and phase is not worth latent channels.
func GriffinLim(mag [][]float32, o STFTOptions, n, iters int, seed uint64) ([]float32, error) {
	if len(mag) != o.Frames(n) {
		return nil, fmt.Errorf("speech: Griffin-Lim: %d frames for %d samples, want %d", len(mag), n, o.Frames(n))
	}
	const momentum = 0.99
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	spec := make([][]complex128, len(mag))
	for t, row := range mag {
		if len(row) != o.FFT/2+1 {
			return nil, fmt.Errorf("speech: Griffin-Lim: frame %d has %d bins, want %d", t, len(row), o.FFT/2+1)
		}
		spec[t] = make([]complex128, len(row))
		for k, m := range row {
			spec[t][k] = cmplx.Rect(math.Max(float64(m), 0), 2*math.Pi*rng.Float64())
		}
	}
	var prev [][]complex128
	for range iters {
		x, err := ISTFT(spec, o, n)
		if err != nil {
			return nil, err
		}
		proj, err := STFT(x, o) // the nearest consistent spectrogram
		if err != nil {
			return nil, err
		}
		for t, row := range proj {
			for k, c := range row {
				acc := c
				if prev != nil {
					acc = c + momentum*(c-prev[t][k])
				}
				// Keep the phase, impose the magnitude.
				if a := cmplx.Abs(acc); a > 0 {
					spec[t][k] = acc * complex(math.Max(float64(mag[t][k]), 0)/a, 0)
				} else {
					spec[t][k] = complex(math.Max(float64(mag[t][k]), 0), 0)
				}
			}
		}
		prev = proj
	}
	return ISTFT(spec, o, n)
}

// Magnitudes returns |STFT(x)|: the input of the spectral tokenizer.
func Magnitudes(x []float32, o STFTOptions) ([][]float32, error) {
	spec, err := STFT(x, o)
	if err != nil {
		return nil, err
	}
	out := make([][]float32, len(spec))
	for t, row := range spec {
		out[t] = make([]float32, len(row))
		for k, c := range row {
			out[t][k] = float32(cmplx.Abs(c))
		}
	}
	return out, nil
}
