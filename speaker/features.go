package speaker

import (
	"fmt"
	"math"
	"slices"

	"github.com/latentlm/latentlm/internal/parallel"
	"github.com/latentlm/latentlm/speech"
)

// clipFeatures are the frames of one clip as the network sees them.
type clipFeatures struct {
	x      []float32 // frames × Mels, level-relative (then normalised by the statistics)
	speech []float32 // per frame: 1 for speech, 0 for silence
	frames int
}

// dbToNats converts a power ratio in dB to the natural log of log-mel
// features.
func dbToNats(db float64) float64 { return db * math.Ln10 / 10 }

// features computes the front end of one clip of 16 kHz samples:
//
//  1. the log-mel spectrogram of speech.LogMel with speech.DefaultSTFT and
//     speech.DefaultMel (Mels bands, 100 frames a second);
//  2. the clip's reference level R, the 95th percentile of its frames'
//     mel power (a percentile, so that one click does not set it);
//  3. every value clipped at FloorDB below R, then R subtracted;
//  4. a frame is speech if its power is within SpeechDB of R.
//
// Steps 2–4 keep the judge on the voice. Subtracting R removes the gain,
// which says nothing about who speaks. The floor and the speech mask
// remove the silences, whose level is an artefact of each synthesiser —
// festival's diphone voices pause in digital zeros (ln 1e-10 = −23 in
// every band), flite's about 11 nats below speech — that a model trained
// on them would learn to recognise and that generated speech would not
// reproduce.
func (c Config) features(clip []float32) (clipFeatures, error) {
	for _, s := range clip {
		if math.IsNaN(float64(s)) || math.IsInf(float64(s), 0) {
			return clipFeatures{}, fmt.Errorf("non-finite sample")
		}
	}
	if len(clip) == 0 {
		return clipFeatures{}, fmt.Errorf("no samples")
	}
	mel := speech.DefaultMel
	mel.Mels = c.Mels
	lm, err := speech.LogMel(clip, speech.DefaultSTFT, mel)
	if err != nil {
		return clipFeatures{}, err
	}
	n := len(lm)
	level := make([]float64, n)
	for t, row := range lm {
		top := float64(slices.Max(row))
		var s float64
		for _, v := range row {
			s += math.Exp(float64(v) - top)
		}
		level[t] = top + math.Log(s/float64(len(row)))
	}
	sorted := slices.Clone(level)
	slices.Sort(sorted)
	ref := sorted[(95*(n-1))/100]
	floor, speechLevel := ref-dbToNats(c.FloorDB), ref-dbToNats(c.SpeechDB)
	f := clipFeatures{x: make([]float32, n*c.Mels), speech: make([]float32, n), frames: n}
	for t, row := range lm {
		for k, v := range row {
			f.x[t*c.Mels+k] = float32(math.Max(float64(v), floor) - ref)
		}
		if level[t] >= speechLevel {
			f.speech[t] = 1
		}
	}
	return f, nil
}

// Stats are the per-band mean and standard deviation of the training
// features (speech frames only), stored with the weights: the network
// sees (x − Mean)/Std.
type Stats struct {
	Mean, Std []float32
}

// computeStats measures Stats over the speech frames of fs (all frames if
// none is speech).
func computeStats(fs []clipFeatures, mels int) Stats {
	sum, sq := make([]float64, mels), make([]float64, mels)
	count := 0
	for _, all := range []bool{false, true} {
		for _, f := range fs {
			for t := range f.frames {
				if !all && f.speech[t] == 0 {
					continue
				}
				for k, v := range f.x[t*mels : (t+1)*mels] {
					sum[k] += float64(v)
					sq[k] += float64(v) * float64(v)
				}
				count++
			}
		}
		if count > 0 {
			break
		}
	}
	st := Stats{Mean: make([]float32, mels), Std: make([]float32, mels)}
	for k := range sum {
		mean := sum[k] / float64(max(count, 1))
		st.Mean[k] = float32(mean)
		st.Std[k] = float32(math.Sqrt(math.Max(sq[k]/float64(max(count, 1))-mean*mean, 1e-6)))
	}
	return st
}

// normalise applies the statistics to f in place.
func (s Stats) normalise(f *clipFeatures) {
	m := len(s.Mean)
	for i := range f.x {
		k := i % m
		f.x[i] = (f.x[i] - s.Mean[k]) / s.Std[k]
	}
}

// check reports statistics that cannot normalise Mels bands.
func (s Stats) check(mels int) error {
	if len(s.Mean) != mels || len(s.Std) != mels {
		return fmt.Errorf("feature statistics of %d and %d bands, want %d", len(s.Mean), len(s.Std), mels)
	}
	for k := range s.Mean {
		if !(s.Std[k] > 0) || math.IsInf(float64(s.Std[k]), 0) || math.IsNaN(float64(s.Mean[k])) || math.IsInf(float64(s.Mean[k]), 0) {
			return fmt.Errorf("feature statistics of band %d: mean %v, std %v", k, s.Mean[k], s.Std[k])
		}
	}
	return nil
}

// allFeatures computes the features of every clip, on all CPUs; errors
// name the clip with name(i).
func (c Config) allFeatures(clips [][]float32, name func(i int) string) ([]clipFeatures, error) {
	out := make([]clipFeatures, len(clips))
	err := parallel.For(len(clips), func(i int) error {
		f, err := c.features(clips[i])
		if err != nil {
			return fmt.Errorf("speaker: %s: %w", name(i), err)
		}
		out[i] = f
		return nil
	})
	return out, err
}

// span is a window of a clip: n frames from start (n ≤ Frames; the rest
// of the window is padding).
type span struct{ start, n int }

// spans tiles a clip of n frames with windows of Frames: one padded
// window if it is shorter; else windows every Frames frames, the last one
// ending at the clip's end (overlapping its neighbour), so that every
// window is full, as in training.
func (c Config) spans(n int) []span {
	if n <= c.Frames {
		return []span{{0, n}}
	}
	var out []span
	for s := 0; s+c.Frames <= n; s += c.Frames {
		out = append(out, span{s, c.Frames})
	}
	if last := out[len(out)-1]; last.start+c.Frames < n {
		out = append(out, span{n - c.Frames, c.Frames})
	}
	return out
}

// fill copies the frames of sp from f into one window of x (Frames×Mels)
// and mask (Frames), zeroing the padding. It returns the window's speech
// frames.
func (c Config) fill(x, mask []float32, f clipFeatures, sp span) int {
	clear(x)
	clear(mask)
	copy(x, f.x[sp.start*c.Mels:(sp.start+sp.n)*c.Mels])
	copy(mask, f.speech[sp.start:sp.start+sp.n])
	speechFrames := 0
	for _, v := range mask[:sp.n] {
		speechFrames += int(v)
	}
	return speechFrames
}
