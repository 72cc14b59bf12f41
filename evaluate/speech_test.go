package evaluate

import (
	"context"
	"math"
	"testing"

	"github.com/latentlm/latentlm/internal/testspeech"
	"github.com/latentlm/latentlm/speech"
)

// TestSpeechTokenizerCodebooks: the evaluation of a residual-VQ tokenizer
// reports every codebook's use over all frames of the split and the
// residual norms stage by stage; a σ-VAE's report has neither.
func TestSpeechTokenizerCodebooks(t *testing.T) {
	tone := func(n int, f float64) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(0.2 * math.Sin(2*math.Pi*f*float64(i)/speech.Rate))
		}
		return x
	}
	clips := [][]float32{tone(3000, 150), tone(5000, 300)} // 5 + 8 frames
	utts := []speech.Utterance{{Voice: "a", Set: speech.SetNumbers, File: "a.wav"}, {Voice: "b", Set: speech.SetNumbers, File: "b.wav"}}
	for _, codebooks := range []int{0, 3} {
		rvq := codebooks > 0
		m := testspeech.Tokenizer(t, codebooks)
		m.GriffinLimIterations = 2
		rep, err := SpeechTokenizer(context.Background(), m, SpeechTokenizerOptions{Utterances: utts, Clips: clips, NoiseN: 1, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		if !rvq {
			if rep.Codebooks != nil || rep.ResidualRMS != nil || rep.Kind != "sigma" {
				t.Errorf("σ-VAE report: kind %s, codebooks %v, residuals %v", rep.Kind, rep.Codebooks, rep.ResidualRMS)
			}
			continue
		}
		if rep.Kind != "rvq" || len(rep.Codebooks) != 3 || len(rep.ResidualRMS) != 4 {
			t.Fatalf("rvq report: kind %s, %d codebooks, %d residual norms", rep.Kind, len(rep.Codebooks), len(rep.ResidualRMS))
		}
		for i, u := range rep.Codebooks {
			if u.Codes != 13 || u.Size != 8 || u.Used+u.Dead != 8 || u.Used < 1 || !(u.Perplexity >= 1) {
				t.Errorf("codebook %d: %+v, want 13 codes among 8 entries", i+1, u)
			}
		}
		if !(rep.ResidualRMS[0] > 0) {
			t.Errorf("residual norms %v: the encoder output has no norm", rep.ResidualRMS)
		}
	}
}
