package speaker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/latentlm/latentlm/internal/deps"
	"github.com/latentlm/latentlm/internal/parallel"
	"github.com/latentlm/latentlm/speech"
	"github.com/latentlm/latentlm/wav"
)

// DataDir is the speech cache a flag names, or .deps/speech when flag is
// empty.
func DataDir(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	d, err := deps.Dir()
	if err != nil {
		return "", fmt.Errorf("speaker: no speech data (%v): run `latentlm speech data` first", err)
	}
	return filepath.Join(d, "speech"), nil
}

// loadData reads the cache's manifest and utterances, with an error that
// says how to make the cache when there is none.
func loadData(dir string) (*speech.Manifest, []speech.Utterance, error) {
	if _, err := os.Stat(filepath.Join(dir, speech.ManifestFile)); errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("speaker: no speech data in %s: run `latentlm speech data` first", dir)
	}
	return speech.Load(dir)
}

// readClips reads the WAV files of utts (relative to dir) on all CPUs,
// resampled to 16 kHz where a file is at another rate.
func readClips(dir string, utts []speech.Utterance) ([][]float32, error) {
	clips := make([][]float32, len(utts))
	err := parallel.For(len(utts), func(i int) error {
		path := filepath.Join(dir, filepath.FromSlash(utts[i].File))
		a, err := wav.Read(path)
		if err != nil {
			return err
		}
		if a.Rate != speech.Rate {
			if a.Samples, err = speech.Resample(a.Samples, a.Rate, speech.Rate); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
		}
		clips[i] = a.Samples
		return nil
	})
	return clips, err
}

// VoiceScore is the judge's result on the clips of one voice.
type VoiceScore struct {
	Voice      string  `json:"voice"`
	Utterances int     `json:"utterances"`
	Correct    int     `json:"correct"`
	Accuracy   float64 `json:"accuracy"`
	// SIM is the mean cosine between each clip's embedding and the
	// centroid of the voice's other clips: the speaker similarity of real
	// speech, the reference for that of generated speech.
	SIM float64 `json:"sim"`
	// OtherSIM is the mean, over the clips, of the highest cosine to the
	// centroid of another voice: what SIM is for the wrong speaker.
	OtherSIM float64 `json:"other_sim"`
}

// Report is the judge's result on a set of labelled clips.
type Report struct {
	Split      string       `json:"split,omitempty"`
	Utterances int          `json:"utterances"`
	Correct    int          `json:"correct"`
	Accuracy   float64      `json:"accuracy"`
	SIM        float64      `json:"sim"`       // mean over the clips of VoiceScore.SIM
	OtherSIM   float64      `json:"other_sim"` // mean over the clips of VoiceScore.OtherSIM
	Voices     []VoiceScore `json:"voices"`    // in the model's order, voices without clips left out
	// Confusion counts clips by true voice (rows) and predicted voice
	// (columns), in the order of the model's voices.
	Confusion [][]int `json:"confusion"`
	Seconds   float64 `json:"seconds"`
}

// Score classifies clips (16 kHz samples) whose true voices are given and
// measures accuracy and the real-speech SIM, per voice and over all clips.
func (m *Model) Score(clips [][]float32, voices []string) (*Report, error) {
	start := time.Now()
	if len(clips) != len(voices) {
		return nil, fmt.Errorf("speaker: %d clips but %d voices", len(clips), len(voices))
	}
	if len(clips) == 0 {
		return nil, errors.New("speaker: no clips to score")
	}
	labels := make([]int, len(voices))
	for i, v := range voices {
		if labels[i] = m.VoiceIndex(v); labels[i] < 0 {
			return nil, fmt.Errorf("speaker: clip %d is of voice %q, which the model does not know (it knows %v)", i, v, m.Voices)
		}
	}
	probs, embs, err := m.Predict(clips)
	if err != nil {
		return nil, err
	}
	return m.report(probs, embs, labels, start), nil
}

// report scores predictions against labels.
func (m *Model) report(probs, embs [][]float32, labels []int, start time.Time) *Report {
	nv := len(m.Voices)
	r := &Report{Utterances: len(labels), Confusion: make([][]int, nv)}
	for i := range r.Confusion {
		r.Confusion[i] = make([]int, nv)
	}
	byVoice := make([][]int, nv)
	for i, l := range labels {
		byVoice[l] = append(byVoice[l], i)
	}
	// Sums of the (unit-RMS) embeddings of each voice: a centroid without
	// clip i is its voice's sum minus clip i, and cosines ignore scale.
	sums := make([][]float32, nv)
	for v, idx := range byVoice {
		sums[v] = make([]float32, m.Config.Embedding)
		for _, i := range idx {
			for k, x := range embs[i] {
				sums[v][k] += x
			}
		}
	}
	var simSum, otherSum float64
	simN := 0
	for v, idx := range byVoice {
		if len(idx) == 0 {
			continue
		}
		vs := VoiceScore{Voice: m.Voices[v], Utterances: len(idx)}
		var sim, other float64
		n := 0
		for _, i := range idx {
			pred := argmax(probs[i])
			r.Confusion[v][pred]++
			if pred == v {
				vs.Correct++
			}
			best := -1.0
			for u := range nv {
				if u != v && len(byVoice[u]) > 0 {
					best = max(best, Similarity(embs[i], sums[u]))
				}
			}
			if best > -1 {
				other += best
			}
			if len(idx) > 1 {
				rest := slices.Clone(sums[v])
				for k, x := range embs[i] {
					rest[k] -= x
				}
				sim += Similarity(embs[i], rest)
				n++
			}
		}
		vs.Accuracy = float64(vs.Correct) / float64(len(idx))
		if n > 0 {
			vs.SIM = sim / float64(n)
		}
		vs.OtherSIM = other / float64(len(idx))
		r.Correct += vs.Correct
		simSum += sim
		simN += n
		otherSum += other
		r.Voices = append(r.Voices, vs)
	}
	r.Accuracy = float64(r.Correct) / float64(r.Utterances)
	if simN > 0 {
		r.SIM = simSum / float64(simN)
	}
	r.OtherSIM = otherSum / float64(r.Utterances)
	r.Seconds = time.Since(start).Seconds()
	return r
}

func argmax(p []float32) int {
	best := 0
	for i, v := range p {
		if v > p[best] {
			best = i
		}
	}
	return best
}

// Accuracy is the share of clips whose most probable voice is the given
// one.
func (m *Model) Accuracy(clips [][]float32, voices []string) (float64, error) {
	r, err := m.Score(clips, voices)
	if err != nil {
		return 0, err
	}
	return r.Accuracy, nil
}

// Evaluate scores the model on every utterance of a split ("train",
// "valid" or "test") of the speech cache in dataDir, in the voices it
// knows; a voice of the cache it does not know is an error.
func Evaluate(m *Model, dataDir, split string) (*Report, error) {
	start := time.Now()
	if !slices.Contains(speech.Splits, split) {
		return nil, fmt.Errorf("speaker: split %q: want train, valid or test", split)
	}
	_, utts, err := loadData(dataDir)
	if err != nil {
		return nil, err
	}
	var sel []speech.Utterance
	var voices []string
	for _, u := range utts {
		if u.Split == split {
			sel = append(sel, u)
			voices = append(voices, u.Voice)
		}
	}
	if len(sel) == 0 {
		return nil, fmt.Errorf("speaker: no utterances of split %s in %s", split, dataDir)
	}
	clips, err := readClips(dataDir, sel)
	if err != nil {
		return nil, err
	}
	r, err := m.Score(clips, voices)
	if err != nil {
		return nil, err
	}
	r.Split = split
	r.Seconds = time.Since(start).Seconds()
	return r, nil
}
