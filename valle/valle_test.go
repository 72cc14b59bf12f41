package valle

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/speechvae"
	"github.com/latentlm/latentlm/train"
	"github.com/latentlm/latentlm/tts"
)

func tinyConfig() Config {
	return NewConfig(speechvae.DefaultConfig().RVQ(3, 8), 32, 1, 2, 48)
}

// toyUtterance speaks text as two frames per character, the first code
// following the character and each later codebook's code the first's
// shifted, after a two-frame prompt.
func toyUtterance(t *testing.T, f Format, text string) Utterance {
	t.Helper()
	ids, err := f.Text.Encode(text)
	if err != nil {
		t.Fatal(err)
	}
	u := Utterance{Text: ids, Prompt: [][]int32{{1, 2, 3}, {4, 5, 6}}}
	for _, id := range ids {
		for k := range 2 {
			c0 := int32((3*id + k) % f.Codes)
			u.Speech = append(u.Speech, []int32{c0, (c0 + 1) % int32(f.Codes), (c0 + 5) % int32(f.Codes)})
		}
	}
	return u
}

// trainer builds the baseline's training graph over a store of cfg and
// returns a step function on utterances (stages drawn from rng).
func trainer(t *testing.T, cfg Config, lr float64, steps int) (*model.Store, func(utts []Utterance, rng *rand.Rand) float64) {
	t.Helper()
	f, err := cfg.Format()
	if err != nil {
		t.Fatal(err)
	}
	store := model.NewStore()
	if err := nn.Init(store, cfg.Specs(), 1, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	if err := store.SetRNGStateFromSeed(1); err != nil {
		t.Fatal(err)
	}
	tc := train.DefaultConfig()
	tc.LR, tc.WarmupSteps, tc.TotalSteps, tc.EMADecay = lr, 5, steps, 0
	tr, err := train.New(testutil.Backend(t, ""), store, tc, func(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
		return cfg.TrainingLosses(w, in, 0)
	})
	if err != nil {
		t.Fatal(err)
	}
	const l = 32
	return store, func(utts []Utterance, rng *rand.Rand) float64 {
		ar, err := f.PackAR(utts, l)
		if err != nil {
			t.Fatal(err)
		}
		stages := make([]int, len(utts))
		for i := range stages {
			stages[i] = 1 + rng.IntN(cfg.Codebooks-1)
		}
		nb, err := f.PackNAR(utts, stages, l)
		if err != nil {
			t.Fatal(err)
		}
		r, err := tr.Step(TrainingInputs(ar, nb, nil)...)
		if err != nil {
			t.Fatal(err)
		}
		return r.Loss
	}
}

// TestFormat: the AR row is the TTS layout with first-codebook codes for
// latents and targets from the first speech code to <EOL>; the NAR input
// at a stage shows every codebook of the prompt and the codebooks before
// the stage of the speech, and targets the stage's codes.
func TestFormat(t *testing.T) {
	cfg := tinyConfig()
	f, err := cfg.Format()
	if err != nil {
		t.Fatal(err)
	}
	u := toyUtterance(t, f, "ab")
	ids, target := f.ARRow(u)
	want := []int{f.Vocab.BOL(), f.Code(1), f.Code(4), f.Vocab.EOL(), u.Text[0], u.Text[1], f.Vocab.BOL()}
	for _, row := range u.Speech {
		want = append(want, f.Code(int(row[0])))
	}
	want = append(want, f.Vocab.EOL())
	if !reflect.DeepEqual(ids, want) {
		t.Fatalf("AR row %v, want %v", ids, want)
	}
	for j, tg := range target {
		if tg != (j >= 7) {
			t.Fatalf("AR targets %v: want the 4 speech codes and <EOL> only", target)
		}
	}
	nb, err := f.PackNAR([]Utterance{u}, []int{2}, 16)
	if err != nil {
		t.Fatal(err)
	}
	n := cfg.Codebooks
	if nb.Last[0] != 11 || nb.Stage[0] != 2 || nb.TargetsNum != 4 {
		t.Errorf("last %v, stage %v, %d targets; want 11, 2, 4", nb.Last[0], nb.Stage[0], nb.TargetsNum)
	}
	if got := nb.Use[1*n : 2*n]; !reflect.DeepEqual(got, []float32{1, 1, 1}) {
		t.Errorf("prompt frame uses codebooks %v, want all", got)
	}
	if got := nb.Use[7*n : 8*n]; !reflect.DeepEqual(got, []float32{1, 1, 0}) {
		t.Errorf("speech frame at stage 2 uses codebooks %v, want the first two", got)
	}
	if nb.Targets[8] != u.Speech[1][2] || nb.Mask[8] != 1 || nb.Mask[11] != 0 || nb.IsFrame[4] != 0 || nb.IsFrame[2] != 1 {
		t.Errorf("targets %v, mask %v, frames %v", nb.Targets, nb.Mask, nb.IsFrame)
	}
	if _, err := f.PackNAR([]Utterance{u}, []int{0}, 16); err == nil {
		t.Error("stage 0 (the AR's codebook) accepted by the NAR")
	}
	bad := u
	bad.Speech = [][]int32{{0, 9, 0}}
	if err := f.Check(bad); err == nil || !strings.Contains(err.Error(), "codebook 2") {
		t.Errorf("code 9 of 8: %v", err)
	}
	if err := f.Check(Utterance{Prompt: u.Prompt}); err == nil {
		t.Error("empty text accepted")
	}
	if _, err := f.PackAR([]Utterance{u}, 8); err == nil {
		t.Error("a 12-item row packed into 8")
	}
}

// TestConfig: the vocabulary must be characters then codes, and the NAR
// needs a second codebook.
func TestConfig(t *testing.T) {
	c := tinyConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	one := c
	one.Codebooks = 1
	if err := one.Validate(); err == nil || !strings.Contains(err.Error(), "codebooks") {
		t.Errorf("one codebook: %v", err)
	}
	vocab := c
	vocab.LM.Vocab.Extra++
	if err := vocab.Validate(); err == nil || !strings.Contains(err.Error(), "vocab") {
		t.Errorf("vocabulary of the wrong size: %v", err)
	}
	for _, s := range c.Specs() {
		if strings.HasPrefix(s.Name, "diffusion_blocks.") || strings.HasPrefix(s.Name, "final_layer.") {
			t.Errorf("the baseline has a diffusion head weight %s", s.Name)
		}
	}
}

// TestReadingAs: a baseline that reads phonemes has the phoneme units
// between the control tokens and the codes, spells its text as LatentLM's
// phoneme models do, keeps its reading through its saved config (a config
// from before phonemes reads characters) and learns on phoneme texts; a
// config whose phonemes are not this build's, or an unknown reading, is
// refused.
func TestReadingAs(t *testing.T) {
	c := tinyConfig()
	if c.Reading != tts.ReadCharacters {
		t.Errorf("a new config reads %q, want characters", c.Reading)
	}
	ph, err := c.ReadingAs(tts.ReadPhonemes)
	if err != nil {
		t.Fatal(err)
	}
	if err := ph.Validate(); err != nil {
		t.Fatal(err)
	}
	units := len([]rune(tts.PhonemeAlphabet))
	if ph.Reading != tts.ReadPhonemes || ph.Alphabet != tts.PhonemeAlphabet || ph.LM.Vocab.Extra != units+c.CodebookSize {
		t.Fatalf("reading %q, alphabet %q, vocabulary %+v", ph.Reading, ph.Alphabet, ph.LM.Vocab)
	}
	var saved Config
	if err := json.Unmarshal(ph.JSON(), &saved); err != nil {
		t.Fatal(err)
	}
	f, err := saved.Format()
	if err != nil {
		t.Fatal(err)
	}
	latent, err := tts.NewReadingFormat(tts.ReadPhonemes, 1, 25)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := f.Text.Encode("seven two")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := latent.Encode("seven two")
	if f.Text.Reading != tts.ReadPhonemes || !reflect.DeepEqual(ids, want) || f.Text.Decode(ids) != "sɛvʌn tu" {
		t.Errorf("the saved config reads %q, spelling %v (%q), LatentLM's phoneme model %v", f.Text.Reading, ids, f.Text.Decode(ids), want)
	}
	if f.Code(0) != f.Vocab.Text(units) || slices.Max(ids) >= f.Code(0) {
		t.Errorf("the first code is id %d after %d units; the text ids reach %d", f.Code(0), units, slices.Max(ids))
	}
	old := c
	old.Reading = ""
	if g, err := old.Format(); err != nil || g.Text.Reading != tts.ReadCharacters {
		t.Errorf("a config from before phonemes: reading %q (%v)", g.Text.Reading, err)
	}
	other := ph
	other.Alphabet = strings.Replace(ph.Alphabet, "ʌ", "x", 1)
	if err := other.Validate(); err == nil || !strings.Contains(err.Error(), "not this build's") {
		t.Errorf("a phoneme config with other units than this build's: %v", err)
	}
	if _, err := c.ReadingAs("runes"); err == nil {
		t.Error("an unknown reading was accepted")
	}
	utts := []Utterance{toyUtterance(t, f, "one"), toyUtterance(t, f, "two three"), toyUtterance(t, f, "nine"), toyUtterance(t, f, "four")}
	_, step := trainer(t, ph, 3e-3, 40)
	rng := rand.New(rand.NewPCG(1, 2))
	testutil.ExpectLossFalls(t, 40, 5, 0.8, func(int) float64 { return step(utts, rng) })
}

// TestTinyTrainingLowersLoss: a few steps on toy utterances lower the
// AR and NAR cross-entropy together.
func TestTinyTrainingLowersLoss(t *testing.T) {
	cfg := tinyConfig()
	f, _ := cfg.Format()
	utts := []Utterance{toyUtterance(t, f, "ab"), toyUtterance(t, f, "bca"), toyUtterance(t, f, "c"), toyUtterance(t, f, "aab")}
	_, step := trainer(t, cfg, 3e-3, 40)
	rng := rand.New(rand.NewPCG(1, 2))
	testutil.ExpectLossFalls(t, 40, 5, 0.8, func(int) float64 { return step(utts, rng) })
}

// TestOverfitDecoding trains a tiny baseline on two utterances until it
// knows them, then checks decoding: the AR stops at <EOL> by itself with
// the right first codes, the NAR fills the other codebooks, the steps are
// counted, MaxSeconds bounds the speech, the KV-cache engine's logits
// equal the full forward pass across the prompt, text and speech, and a
// saved model decodes the same.
func TestOverfitDecoding(t *testing.T) {
	cfg := tinyConfig()
	f, _ := cfg.Format()
	utts := []Utterance{toyUtterance(t, f, "ab"), toyUtterance(t, f, "cab")}
	const steps = 150
	store, step := trainer(t, cfg, 1e-2, steps)
	rng := rand.New(rand.NewPCG(1, 2))
	var loss float64
	for range steps {
		loss = step(utts, rng)
	}
	t.Logf("loss after %d steps: %.4f", steps, loss)
	m, err := New(testutil.Backend(t, ""), cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	greedy := Options{Temperature: 0, MaxSeconds: 10, Seed: 1}
	for _, u := range utts {
		s, err := m.Generate(ctx, u.Text, u.Prompt, greedy)
		if err != nil {
			t.Fatal(err)
		}
		if !s.Stopped || !reflect.DeepEqual(s.Codes, u.Speech) {
			t.Fatalf("%q: stopped %v, codes %v; want <EOL> after %v", f.Text.Decode(u.Text), s.Stopped, s.Codes, u.Speech)
		}
		if s.ARSteps != len(u.Speech)+1 || s.NARPasses != cfg.Codebooks-1 {
			t.Errorf("%d AR steps and %d NAR passes for %d frames, want %d and %d", s.ARSteps, s.NARPasses, len(u.Speech), len(u.Speech)+1, cfg.Codebooks-1)
		}
		secs := float64(len(u.Speech)) / cfg.FrameRate
		if want := float64(len(u.Speech)+1+cfg.Codebooks-1) / secs; math.Abs(s.StepsPerSecond()-want) > 1e-9 || math.Abs(s.Seconds-secs) > 1e-12 {
			t.Errorf("%.2f steps per second over %.2f s, want %.2f over %.2f", s.StepsPerSecond(), s.Seconds, want, secs)
		}
	}

	t.Run("max seconds", func(t *testing.T) {
		o := greedy
		o.MaxSeconds = 2 / cfg.FrameRate
		s, err := m.Generate(ctx, utts[1].Text, utts[1].Prompt, o)
		if err != nil {
			t.Fatal(err)
		}
		if s.Stopped || len(s.Codes) != 2 {
			t.Errorf("MaxSeconds of 2 frames: %d frames, stopped %v", len(s.Codes), s.Stopped)
		}
	})

	t.Run("a batch speaks as one at a time", func(t *testing.T) {
		o := DefaultOptions() // sampled hot, from each utterance's own generator
		o.Batch, o.Temperature = 3, 5
		var reqs []Request
		for range 2 {
			for _, u := range utts {
				reqs = append(reqs, Request{Text: u.Text, Prompt: u.Prompt})
			}
		}
		got, err := m.GenerateBatch(ctx, reqs, o)
		if err != nil {
			t.Fatal(err)
		}
		o.Batch = 1
		for i, r := range reqs {
			want, err := m.Generate(ctx, r.Text, r.Prompt, o)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got[i], want) {
				t.Errorf("request %d: in a batch of 3 %+v, alone %+v", i, *got[i], *want)
			}
		}
		reqs[2].Prompt = [][]int32{{0}}
		if _, err := m.GenerateBatch(ctx, reqs, o); err == nil || !strings.Contains(err.Error(), "request 2: valle: prompt frame 0") {
			t.Errorf("a bad third request: %v", err)
		}
	})

	t.Run("KV cache matches the full forward pass", func(t *testing.T) {
		ids, _ := f.ARRow(utts[1])
		full := arLogits(t, m, ids)
		items := make([]lm.Item, len(ids))
		for i, id := range ids {
			items[i] = lm.TokenItem(id)
		}
		sess, err := m.engine.Prefill([][]lm.Item{items[:1]}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		v := cfg.LM.Vocab.Size()
		for p := range len(ids) - 1 {
			if p > 0 {
				if err := sess.Step(items[p : p+1]); err != nil {
					t.Fatal(err)
				}
			}
			got, err := sess.Logits()
			if err != nil {
				t.Fatal(err)
			}
			for k := range v {
				if d := math.Abs(float64(got[0][k] - full[p*v+k])); d > 1e-3*(1+math.Abs(float64(full[p*v+k]))) {
					t.Fatalf("position %d (item %d), id %d: cached %g, full %g", p, ids[p], k, got[0][k], full[p*v+k])
				}
			}
		}
	})

	t.Run("save and load", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "valle")
		if err := Save(dir, cfg, store, map[string]any{"steps": steps}); err != nil {
			t.Fatal(err)
		}
		back, err := Load(testutil.Backend(t, ""), dir)
		if err != nil {
			t.Fatal(err)
		}
		defer back.Close()
		s, err := back.Generate(ctx, utts[0].Text, utts[0].Prompt, greedy)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(s.Codes, utts[0].Speech) || back.Config != cfg {
			t.Errorf("loaded model decodes %v, want %v", s.Codes, utts[0].Speech)
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		if _, err := m.Generate(ctx, utts[0].Text, [][]int32{{0, 1}}, greedy); err == nil || !strings.Contains(err.Error(), "prompt frame 0") {
			t.Errorf("a prompt frame of 2 codes: %v", err)
		}
		var te *tts.TextError
		if _, err := m.Generate(ctx, nil, utts[0].Prompt, greedy); !errors.As(err, &te) {
			t.Errorf("empty text: %v", err)
		}
		if _, err := m.Generate(ctx, utts[0].Text, utts[0].Prompt, Options{MaxSeconds: 0}); err == nil {
			t.Error("MaxSeconds 0 accepted")
		}
	})
}

// arLogits runs the AR's full teacher-forced forward pass over ids.
func arLogits(t *testing.T, m *Model, ids []int) []float32 {
	t.Helper()
	flat := make([]int32, len(ids))
	for i, id := range ids {
		flat[i] = int32(id)
	}
	e, err := model.NewExec(testutil.Backend(t, ""), m.store, func(scope *model.Scope, x *Node) *Node {
		return m.Config.ARLogits(nn.WeightsOf(scope.Store(), x.Graph()), x)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Finalize()
	out, err := e.Call(tensors.FromFlatDataAndDimensions(flat, 1, len(ids)))
	if err != nil {
		t.Fatal(err)
	}
	return tensors.MustCopyFlatData[float32](out[0])
}

// TestNARIgnoresPadding: a row's NAR logits are the same alone at its own
// length and padded in a batch beside a longer row: attention never sees
// the padding, in both directions.
func TestNARIgnoresPadding(t *testing.T) {
	cfg := tinyConfig()
	f, _ := cfg.Format()
	store := model.NewStore()
	if err := nn.Init(store, cfg.Specs(), 1, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	m, err := New(testutil.Backend(t, ""), cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	short, long := toyUtterance(t, f, "a"), toyUtterance(t, f, "abcab")
	alone, err := f.PackNAR([]Utterance{short}, []int{1}, RowLen(2, 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	both, err := f.PackNAR([]Utterance{short, long}, []int{1, 2}, 32)
	if err != nil {
		t.Fatal(err)
	}
	a, err := m.narLogits(alone)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.narLogits(both)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range a {
		if math.Abs(float64(v-b[i])) > 1e-4 {
			t.Fatalf("logit %d: %g alone, %g padded beside a longer row", i, v, b[i])
		}
	}
}

// TestGuide: the AR's guided attention term. GuideSpan finds the text and
// the speech's <BOL> where ARRow put them; ARGuide weighs exactly the
// queries that predict the speech (its <BOL> and every frame); and in
// Losses an all-zero guide leaves the objective as without one (penalty
// 0), while a guide of 1/Q on every key of every query row gives a mean
// penalty of exactly 1 (each row's probabilities sum to 1), added to the
// total with the align weight.
func TestGuide(t *testing.T) {
	cfg := tinyConfig()
	f, err := cfg.Format()
	if err != nil {
		t.Fatal(err)
	}
	utts := []Utterance{toyUtterance(t, f, "ab"), toyUtterance(t, f, "b")}
	const l = 32
	for i, u := range utts {
		ids, _ := f.ARRow(u)
		s := f.GuideSpan(u)
		if !reflect.DeepEqual(ids[s.TextStart:s.TextEnd], u.Text) || ids[s.TextStart-1] != f.Vocab.EOL() || ids[s.SpeechBOL] != f.Vocab.BOL() ||
			s.Frames != len(u.Speech) || s.SpeechBOL+s.Frames+2 != len(ids) {
			t.Errorf("utterance %d: span %+v does not fit its AR row %v", i, s, ids)
		}
	}
	guide := f.ARGuide(utts, l)
	queries := 0
	for _, u := range utts {
		queries += len(u.Speech) + 1
	}
	for b, u := range utts {
		s := f.GuideSpan(u)
		for q := range l {
			row := guide[(b*l+q)*l : (b*l+q+1)*l]
			isQuery := q >= s.SpeechBOL && q <= s.SpeechBOL+s.Frames
			for k, w := range row {
				switch {
				case !isQuery && w != 0:
					t.Fatalf("row %d query %d is not one that predicts speech but weighs key %d by %g", b, q, k, w)
				case isQuery && (k < s.TextStart || k >= s.TextEnd) && math.Abs(float64(w)-1/float64(queries)) > 1e-7:
					t.Fatalf("row %d query %d: key %d outside the text weighs %g, want 1/%d", b, q, k, w, queries)
				case isQuery && k >= s.TextStart && k < s.TextEnd && !(w >= 0 && w < 1/float32(queries)):
					t.Fatalf("row %d query %d: text key %d weighs %g, want in [0, 1/%d)", b, q, k, w, queries)
				}
			}
		}
	}

	store := model.NewStore()
	if err := nn.Init(store, cfg.Specs(), 1, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	ar, err := f.PackAR(utts, l)
	if err != nil {
		t.Fatal(err)
	}
	nb, err := f.PackNAR(utts, []int{1, 2}, l)
	if err != nil {
		t.Fatal(err)
	}
	const weight = 0.5
	run := func(guide []float32) []float32 {
		outs, err := model.CallOnceN(testutil.Backend(t, ""), store, func(scope *model.Scope, in []*Node) []*Node {
			return cfg.TrainingLosses(nn.WeightsOf(scope.Store(), in[0].Graph()), in, weight)
		}, TrainingInputs(ar, nb, guide)...)
		if err != nil {
			t.Fatal(err)
		}
		r := make([]float32, len(outs))
		for i := range r {
			r[i] = tensors.ToScalar[float32](outs[i])
		}
		return r
	}
	b := len(utts)
	plain := run(nil)
	zero := run(make([]float32, b*l*l))
	if len(plain) != 3 || len(zero) != 4 || !reflect.DeepEqual(zero[:3], plain) || zero[3] != 0 {
		t.Errorf("an all-zero guide gives %v, want %v and 0", zero, plain)
	}
	flat := make([]float32, b*l*l)
	for i := range flat {
		flat[i] = 1 / float32(b*(l-1)) // the guided queries are the first l−1 of each row
	}
	full := run(flat)
	if math.Abs(float64(full[3])-1) > 1e-4 || math.Abs(float64(full[0]-plain[0])-weight) > 1e-4 || full[1] != plain[1] || full[2] != plain[2] {
		t.Errorf("a guide of 1/Q everywhere gives %v, want penalty 1 and total %g + %g", full, plain[0], weight)
	}
}
