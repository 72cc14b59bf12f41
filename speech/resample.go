package speech

import (
	"fmt"
	"math"

	"github.com/latentlm/latentlm/wav"
)

// Rate is the sample rate of all speech data here: 16 kHz, the rate of the
// synthesisers' voices and the one pocketsphinx's acoustic model expects.
const Rate = 16000

// Resampler parameters. sincZeros zero crossings of the sinc on each side
// and a Kaiser window of β = 8.6 give a stopband below −80 dB and a
// transition band about 8% of the lower Nyquist frequency wide; the
// cut-off sits at 0.94 of it, so that the pass band is flat to about 0.9
// of Nyquist (7.2 kHz at 16 kHz) and the stop band begins near Nyquist.
const (
	sincZeros   = 32
	kaiserBeta  = 8.6
	cutoffRatio = 0.94
	// maxPhases bounds the polyphase table; rates whose ratio needs more
	// phases (coprime rates) compute the kernel for each output sample.
	maxPhases = 4096
)

// Resample converts x from rate `from` to rate `to` with a windowed-sinc
// (Kaiser) low-pass interpolator, the textbook band-limited resampler:
// each output sample at time t is Σ x[k]·h(t−k) over the input samples
// within sincZeros zero crossings, where h is a sinc whose cut-off is the
// lower of the two Nyquist frequencies (so downsampling also filters out
// what would alias). Each phase of the kernel is normalised to unit sum,
// so a constant signal stays exactly constant. Outside the signal the input
// is taken as zero. The output holds ⌈len(x)·to/from⌉ samples.
//
// Rates whose ratio reduces to p/q with q ≤ maxPhases use a precomputed
// polyphase table; others compute the kernel per sample, which is slower
// but exact.
func Resample(x []float32, from, to int) ([]float32, error) {
	if from < 1 || to < 1 || from > wav.MaxRate || to > wav.MaxRate {
		return nil, fmt.Errorf("speech: resampling from %d Hz to %d Hz: rates must be within 1…%d", from, to, wav.MaxRate)
	}
	if from == to {
		return append([]float32(nil), x...), nil
	}
	g := gcd(from, to)
	up, down := to/g, from/g // output n sits at input position n·down/up
	n := int((int64(len(x))*int64(to) + int64(from) - 1) / int64(from))
	out := make([]float32, n)
	fc := cutoffRatio * math.Min(1, float64(to)/float64(from)) // cut-off, in cycles per input sample × 2
	half := int(math.Ceil(sincZeros / fc))                     // kernel half-width in input samples
	var table [][]float64
	if up <= maxPhases {
		table = make([][]float64, up)
		for p := range table {
			table[p] = kernel(float64(p)/float64(up), half, fc)
		}
	}
	for i := range out {
		pos := int64(i) * int64(down)
		k0 := int(pos / int64(up)) // the input sample at or before the output time
		phase := int(pos % int64(up))
		var h []float64
		if table != nil {
			h = table[phase]
		} else {
			h = kernel(float64(phase)/float64(up), half, fc)
		}
		var s float64
		for j, w := range h {
			k := k0 - half + 1 + j
			if k >= 0 && k < len(x) {
				s += w * float64(x[k])
			}
		}
		out[i] = float32(s)
	}
	return out, nil
}

// kernel returns the 2·half taps for an output frac (in [0, 1)) input
// samples after input sample k0; tap j weighs input k0−half+1+j.
func kernel(frac float64, half int, fc float64) []float64 {
	h := make([]float64, 2*half)
	var sum float64
	for j := range h {
		d := float64(j-half+1) - frac // distance of the input sample from the output time
		if math.Abs(d) >= float64(half) {
			continue
		}
		v := fc * sinc(fc*d) * kaiser(d/float64(half), kaiserBeta)
		h[j] = v
		sum += v
	}
	for j := range h {
		h[j] /= sum
	}
	return h
}

func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	return math.Sin(math.Pi*x) / (math.Pi * x)
}

// kaiser is the Kaiser window at t ∈ [−1, 1].
func kaiser(t, beta float64) float64 {
	if t <= -1 || t >= 1 {
		return 0
	}
	return besselI0(beta*math.Sqrt(1-t*t)) / besselI0(beta)
}

// besselI0 is the modified Bessel function of the first kind, order 0, by
// its power series (which converges quickly for the β used here).
func besselI0(x float64) float64 {
	sum, term := 1.0, 1.0
	for k := 1; k < 100; k++ {
		term *= (x / (2 * float64(k))) * (x / (2 * float64(k)))
		sum += term
		if term < sum*1e-17 {
			break
		}
	}
	return sum
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// To16k returns a at Rate (16 kHz), resampling when it is not.
func To16k(a wav.Audio) (wav.Audio, error) {
	if a.Rate == Rate {
		return a, nil
	}
	s, err := Resample(a.Samples, a.Rate, Rate)
	if err != nil {
		return wav.Audio{}, err
	}
	return wav.Audio{Rate: Rate, Samples: s, Channels: a.Channels}, nil
}
