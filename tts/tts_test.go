package tts

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/internal/testspeech"
	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/speechvae"
	"github.com/latentlm/latentlm/train"
	"github.com/latentlm/latentlm/vae"
)

const (
	testChannels = 4
	testRate     = 25.0
)

func testFormat(t testing.TB) Format {
	t.Helper()
	f, err := NewFormat(Alphabet, testChannels, testRate)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func tinyConfig(f Format, maxLen int) lm.Config {
	return lm.Config{Dim: 32, Depth: 2, Heads: 4, KVHeads: 2, MLPRatio: 2, HeadDepth: 2, HeadDim: 32,
		Latent: f.Channels, MaxLen: maxLen, Target: Target, Vocab: f.Vocab, Layout: lm.LayoutBOL}
}

func randomStore(t *testing.T, cfg lm.Config, std float64) *model.Store {
	t.Helper()
	specs := cfg.Specs()
	for i := range specs {
		specs[i].Std = std
	}
	store := model.NewStore()
	if err := nn.Init(store, specs, 3, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	return store
}

func frames(n, c int, fn func(k, j int) float32) [][]float32 {
	out := make([][]float32, n)
	for k := range out {
		out[k] = make([]float32, c)
		for j := range out[k] {
			out[k][j] = fn(k, j)
		}
	}
	return out
}

func encode(t testing.TB, f Format, s string) []int {
	t.Helper()
	ids, err := f.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestEncodeText: text is normalised (case, apostrophes, spaces) and
// spelt in characters; empty text and characters outside the alphabet are
// refused with one-line errors.
func TestEncodeText(t *testing.T) {
	f := testFormat(t)
	ids := encode(t, f, "  Twenty-One  O’Clock,\tplease! ")
	if got := f.Decode(ids); got != "twenty-one o'clock, please!" {
		t.Errorf("decoded %q", got)
	}
	for _, id := range ids {
		if j, ok := f.Vocab.TextOf(id); !ok || j >= len(f.Alphabet) {
			t.Fatalf("id %d is not a character", id)
		}
	}
	if f.Continue() != f.Vocab.Size()-1 || f.Continue() == f.Vocab.EOL() || f.Continue() == f.Vocab.BOL() {
		t.Errorf("Continue is %d in a vocabulary of %d", f.Continue(), f.Vocab.Size())
	}
	for _, c := range []struct{ text, want string }{
		{"", "empty"}, {" \t\n", "empty"}, {"room 101", "spell numbers out"}, {"naïve", "'ï'"}, {"\xff", "UTF-8"},
	} {
		_, err := f.Encode(c.text)
		var te *TextError
		if !errors.As(err, &te) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Encode(%q): %v, want a one-line TextError with %q", c.text, err, c.want)
		}
	}
}

// TestEncodePhonemes: a model that reads phonemes spells each word with
// the installed dictionary (festival for others), one unit per phoneme,
// spaces and punctuation kept; its record gives back the same format, and
// text it cannot read is a one-line TextError.
func TestEncodePhonemes(t *testing.T) {
	f, err := NewReadingFormat(ReadPhonemes, 4, 25)
	if err != nil {
		t.Fatal(err)
	}
	if f.Reading != ReadPhonemes || f.Vocab.Extra != len([]rune(PhonemeAlphabet))+1 {
		t.Fatalf("reading %q, vocabulary %+v", f.Reading, f.Vocab)
	}
	ids := encode(t, f, "Though, THROUGH tough-blorp!")
	if got := f.Decode(ids); got != "ðo, θɹu tʌfblɔɹp!" {
		t.Errorf("decoded %q", got)
	}
	if len(ids) != len([]rune("ðo, θɹu tʌfblɔɹp!")) {
		t.Errorf("%d ids", len(ids))
	}
	chars, err := NewReadingFormat("", 4, 25)
	if err != nil || chars.Reading != ReadCharacters || chars.AlphabetString() != Alphabet {
		t.Fatalf("the default reading: %+v, %v", chars, err)
	}
	for _, c := range []struct {
		rec  Record
		want string
	}{
		{Record{Alphabet: PhonemeAlphabet, Reading: ReadPhonemes, FrameRate: 25}, ReadPhonemes},
		{Record{Alphabet: Alphabet, FrameRate: 25}, ReadCharacters}, // a checkpoint from before phonemes
		{Record{Alphabet: "abc ", FrameRate: 25}, ReadCharacters},
	} {
		g, err := c.rec.Format(4)
		if err != nil || g.Reading != c.want || g.AlphabetString() != c.rec.Alphabet {
			t.Errorf("%+v: format %q %q (%v)", c.rec, g.Reading, g.AlphabetString(), err)
		}
	}
	if _, err := (Record{Alphabet: "xyz", Reading: ReadPhonemes, FrameRate: 25}).Format(4); err == nil {
		t.Error("a phoneme model with other phonemes than this build's was read")
	}
	if _, err := NewReadingFormat("runes", 4, 25); err == nil {
		t.Error("an unknown reading was accepted")
	}
	for _, c := range []struct{ text, want string }{
		{"", "empty"}, {"room 101", "spell numbers out"}, {"naïve", "not a word of letters"}, {"hello , there", "punctuation without a word"},
	} {
		_, err := f.Encode(c.text)
		var te *TextError
		if !errors.As(err, &te) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Encode(%q): %v, want a one-line TextError with %q", c.text, err, c.want)
		}
	}
}

// TestTrainingRowAndPack: <BOL> prompt <EOL> text <BOL> speech <EOL>, with
// only the speech and its <EOL> as targets, Continue at every speech frame
// after the first, and a dropped text as null tokens.
func TestTrainingRowAndPack(t *testing.T) {
	f := testFormat(t)
	prompt := frames(2, testChannels, func(k, j int) float32 { return float32(k + j) })
	speech := frames(3, testChannels, func(k, j int) float32 { return float32(10 + k) })
	scale := []float32{0.5, 0.5, 0.5, 0.5}
	text := encode(t, f, "ab")
	r := f.TrainingRow(prompt, text, speech, scale, false)
	if len(r.Items) != RowLen(2, 2, 3) || len(r.Items) != 11 {
		t.Fatalf("%d items, want 11", len(r.Items))
	}
	const l = 13
	b, err := f.Pack([]Row{r, f.TrainingRow(prompt, text, speech, scale, true)}, l)
	if err != nil {
		t.Fatal(err)
	}
	V := f.Vocab
	a, bb := int32(V.Text(1)), int32(V.Text(2))
	wantIDs := []int32{int32(V.BOL()), 0, 0, int32(V.EOL()), a, bb, int32(V.BOL()), 0, int32(f.Continue()), int32(f.Continue()), int32(V.EOL()), 0, 0}
	wantLat := []float32{0, 1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0}
	wantValid := []float32{0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0}
	wantCont := []float32{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0}
	for j := range l {
		if b.Ids[j] != wantIDs[j] || b.IsLatent[j] != wantLat[j] || b.Valid[j] != wantValid[j] || b.LatentTokens[j] != wantCont[j] {
			t.Errorf("item %d: id %d latent %v valid %v continue %v; want %d %v %v %v", j,
				b.Ids[j], b.IsLatent[j], b.Valid[j], b.LatentTokens[j], wantIDs[j], wantLat[j], wantValid[j], wantCont[j])
		}
	}
	// The dropped text is null tokens, the rest the same.
	if b.Ids[l+4] != int32(V.Null()) || b.Ids[l+5] != int32(V.Null()) || b.Ids[l+8] != int32(f.Continue()) {
		t.Errorf("dropped text row: %v", b.Ids[l:2*l])
	}
	// The voice prompt's latents are inputs, not targets: 3 speech latents a row.
	if b.Continues != 4 || b.Tokens != 2 || b.LatentItems != 6 {
		t.Errorf("%d Continue, %d token and %d latent targets counted; want 4, 2 and 6", b.Continues, b.Tokens, b.LatentItems)
	}
	if b.Latents[8*testChannels] != 11 || b.Scales[8*testChannels] != 0.5 || b.Scales[0] != 0 {
		t.Errorf("latents or scales misplaced: %v %v", b.Latents[8*testChannels], b.Scales[8*testChannels])
	}
	if _, err := f.Pack([]Row{r}, 10); err == nil {
		t.Error("a row longer than the length packed")
	}
	// The prefix of generation is the row's first items.
	p := f.Prefix(prompt, text, false)
	if len(p) != PrefixLen(2, 2) || p[len(p)-1].Token != V.BOL() || !p[1].IsLatent() || p[4].Token != int(a) {
		t.Errorf("prefix %v", p)
	}
	if g := f.Prefix(prompt, text, true); g[4].Token != V.Null() || g[5].Token != V.Null() || len(g) != len(p) {
		t.Errorf("guidance prefix %v", g)
	}
}

// TestCachedDecodingMatchesFullForward: the engine's prefill of <BOL>
// prompt <EOL> text <BOL> and its steps through the speech frames, or its
// steps item by item through all three segments, give the hidden states
// and softmax logits of the parallel forward pass over the whole sequence
// at every position, with and without a guidance stream.
func TestCachedDecodingMatchesFullForward(t *testing.T) {
	f := testFormat(t)
	rng := rand.New(rand.NewPCG(1, 1))
	gauss := func(int, int) float32 { return float32(rng.NormFloat64()) }
	prompt, speech := frames(3, testChannels, gauss), frames(4, testChannels, gauss)
	text := encode(t, f, "to be")
	row := f.TrainingRow(prompt, text, speech, nil, false)
	l := len(row.Items)
	cfg := tinyConfig(f, l+2)
	store := randomStore(t, cfg, 0.1)
	b := testutil.Backend(t, "")
	bt, err := f.Pack([]Row{row}, l)
	if err != nil {
		t.Fatal(err)
	}
	outs, err := model.CallOnceN(b, store, func(scope *model.Scope, ids, lat, isLat *Node) []*Node {
		w := nn.WeightsOf(scope.Store(), ids.Graph())
		h, _ := cfg.Backbone(w, lm.Items{Ids: ids, Latents: lat, IsLatent: isLat}, lm.Positions(ids.Graph(), dtypes.Float32, 0, l), nil)
		return []*Node{h, cfg.Logits(w, h)}
	}, tensors.FromFlatDataAndDimensions(bt.Ids, 1, l), tensors.FromFlatDataAndDimensions(bt.Latents, 1, l, cfg.Latent),
		tensors.FromFlatDataAndDimensions(bt.IsLatent, 1, l))
	if err != nil {
		t.Fatal(err)
	}
	fullH, fullL := tensors.MustCopyFlatData[float32](outs[0]), tensors.MustCopyFlatData[float32](outs[1])
	d, v := cfg.Dim, cfg.Vocab.Size()
	e, err := lm.NewEngine(b, store, cfg, lm.SampleOptions{Steps: 3, CFG: 2, Temperature: 1, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	// Prefilled to the first speech frame, or item by item from <BOL>
	// through the prompt, the text and the speech; with and without the
	// guidance stream (the text as null tokens).
	for _, c := range []struct {
		prefill int
		guided  bool
	}{{PrefixLen(len(prompt), len(text)), false}, {PrefixLen(len(prompt), len(text)), true}, {1, false}, {1, true}} {
		prefix := f.Prefix(prompt, text, false)[:c.prefill]
		var guide [][]lm.Item
		if c.guided {
			guide = [][]lm.Item{f.Prefix(prompt, text, true)[:c.prefill]}
		}
		sess, err := e.Prefill([][]lm.Item{prefix}, guide)
		if err != nil {
			t.Fatal(err)
		}
		var worst float64
		for pos := c.prefill - 1; pos < l; pos++ {
			if pos >= c.prefill {
				if err := sess.Step([]lm.Item{row.Items[pos]}); err != nil {
					t.Fatal(err)
				}
			}
			h, err := sess.Hidden()
			if err != nil {
				t.Fatal(err)
			}
			lg, err := sess.Logits()
			if err != nil {
				t.Fatal(err)
			}
			worst = math.Max(worst, relErr(h[0], fullH[pos*d:(pos+1)*d]))
			worst = math.Max(worst, relErr(lg[0], fullL[pos*v:(pos+1)*v]))
		}
		sess.Close()
		t.Logf("prefill of %d items, guided %v: worst relative error of cached decoding %.3g over %d positions", c.prefill, c.guided, worst, l-c.prefill+1)
		if worst > 1e-4 {
			t.Errorf("prefill of %d items, guided %v: KV-cache decoding differs from the full forward pass by %.3g", c.prefill, c.guided, worst)
		}
	}
}

func relErr(a, b []float32) float64 {
	x, y := make([]float64, len(a)), make([]float64, len(b))
	for i := range a {
		x[i] = float64(a[i])
	}
	for i := range b {
		y[i] = float64(b[i])
	}
	return testutil.RelErr(x, y)
}

// overfitData is three utterances of one voice whose lengths differ: the
// text says how many frames the speech has.
var overfitData = []struct {
	text   string
	frames int
}{{"hi", 3}, {"hello", 6}, {"hey you", 9}}

func overfitFrame(k, j int) float32 { return float32(0.8 * math.Cos(0.7*float64(k)+float64(j))) }

// trainOverfit trains a tiny model on overfitData for steps steps
// (continue targets on or off) and returns it on its engine.
func trainOverfit(t *testing.T, steps int, withContinue bool, opts Options) *Model {
	t.Helper()
	m, _ := trainOverfitGuided(t, steps, withContinue, 0, opts)
	return m
}

// trainOverfitGuided is trainOverfit with the guided attention term of
// weight align (none at 0); it also returns the term's mean over the first
// and the last ten steps.
func trainOverfitGuided(t *testing.T, steps int, withContinue bool, align float64, opts Options) (*Model, [2]float64) {
	t.Helper()
	f := testFormat(t)
	prompt := frames(2, testChannels, func(k, j int) float32 { return float32(0.5 * math.Sin(float64(k+2*j))) })
	cfg := tinyConfig(f, 24)
	store := model.NewStore()
	if err := nn.Init(store, cfg.Specs(), 1, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	if err := store.SetRNGStateFromSeed(1); err != nil {
		t.Fatal(err)
	}
	sched := diffusion.Cosine(1000)
	tc := train.DefaultConfig()
	tc.LR, tc.WarmupSteps, tc.TotalSteps, tc.EMADecay = 3e-3, 10, steps, 0
	b := testutil.Backend(t, "")
	tr, err := train.New(b, store, tc, func(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
		if !withContinue {
			in[5] = ZerosLike(in[5])
		}
		var guide *Node
		if align > 0 {
			guide = in[8]
		}
		return Losses(scope, w, cfg, vae.Sigma, sched, 4, 1, 0, align, in[0], in[1], in[2], in[3], in[4], in[5], in[6], in[7], guide)
	})
	if err != nil {
		t.Fatal(err)
	}
	const batch = 12
	rng := rand.New(rand.NewPCG(5, 5))
	scale := make([]float32, testChannels) // no σ-VAE noise: exact targets
	var first, last float64
	var alignTerm [2]float64
	for step := range steps {
		rows := make([]Row, batch)
		for i := range rows {
			d := overfitData[i%len(overfitData)]
			rows[i] = f.TrainingRow(prompt, encode(t, f, d.text), frames(d.frames, testChannels, overfitFrame), scale, rng.Float64() < 0.1)
		}
		bt, err := f.Pack(rows, cfg.MaxLen)
		if err != nil {
			t.Fatal(err)
		}
		if align > 0 {
			bt.Guide = f.Guide(rows, cfg.MaxLen)
		}
		res, err := tr.Step(bt.Inputs(f.Channels)...)
		if err != nil {
			t.Fatal(err)
		}
		if align > 0 {
			switch {
			case step < 10:
				alignTerm[0] += res.Metrics[2] / 10
			case step >= steps-10:
				alignTerm[1] += res.Metrics[2] / 10
			}
		}
		if step == 0 {
			first = res.Loss
		}
		last = res.Loss
	}
	t.Logf("continue %v: loss %.3f → %.3f in %d steps", withContinue, first, last, steps)
	m, err := New(b, cfg, store, f, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m, alignTerm
}

func overfitRequests(m *Model) []Request {
	prompt := frames(2, testChannels, func(k, j int) float32 { return float32(0.5 * math.Sin(float64(k+2*j))) })
	reqs := make([]Request, len(overfitData))
	for i, d := range overfitData {
		reqs[i] = Request{Text: d.text, Prompt: prompt}
	}
	return reqs
}

// TestOverfitStopsAtEOL: a tiny model trained on three utterances ends
// each at its own length by itself (the softmax head's <EOL>, trained
// with the Continue targets), under guidance, alone or in batches;
// MaxSeconds cuts the longer ones. Trained without the
// Continue targets, the same model stops after its first frame (the
// limitation of docs/DESIGN.md §7 that the targets remove).
func TestOverfitStopsAtEOL(t *testing.T) {
	opts := DefaultOptions()
	opts.CFG, opts.Steps, opts.EqualisePrompts = 2, 5, true
	m := trainOverfit(t, 500, true, opts)
	ctx := context.Background()
	var streamed [3][][]float32
	res, err := m.Generate(ctx, overfitRequests(m), func(i, k int, z []float32) error {
		if k != len(streamed[i]) {
			t.Errorf("request %d: frame %d arrived after %d frames", i, k, len(streamed[i]))
		}
		streamed[i] = append(streamed[i], append([]float32(nil), z...))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range overfitData {
		r := res[i]
		var mse float64
		for k, z := range r.Frames {
			for j, v := range z {
				mse += math.Pow(float64(v-overfitFrame(k, j)), 2) / float64(len(r.Frames)*testChannels)
			}
		}
		t.Logf("%q: %d frames (want %d), stopped %v, mean squared error %.4f", d.text, len(r.Frames), d.frames, r.Stopped, mse)
		if len(r.Frames) != d.frames || !r.Stopped {
			t.Errorf("%q: %d frames, stopped %v; want %d frames ended by <EOL>", d.text, len(r.Frames), r.Stopped, d.frames)
		}
		if len(streamed[i]) != len(r.Frames) {
			t.Errorf("%q: %d frames streamed, %d returned", d.text, len(streamed[i]), len(r.Frames))
		}
		for k := range min(len(streamed[i]), len(r.Frames)) {
			for j := range testChannels {
				if streamed[i][k][j] != r.Frames[k][j] {
					t.Fatalf("%q: streamed frame %d differs from the result", d.text, k)
				}
			}
		}
	}
	// One at a time: the same lengths.
	for i, req := range overfitRequests(m) {
		r, err := m.Generate(ctx, []Request{req}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(r[0].Frames) != overfitData[i].frames {
			t.Errorf("%q alone: %d frames, want %d", req.Text, len(r[0].Frames), overfitData[i].frames)
		}
	}
	// Batches of equal lengths: three "hello" and two "hi" in two batches.
	batch := overfitRequests(m)
	batch = []Request{batch[1], batch[0], batch[1], batch[0], batch[1]}
	res, err = m.Generate(ctx, batch, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if want := map[string]int{"hi": 3, "hello": 6}[batch[i].Text]; len(r.Frames) != want {
			t.Errorf("batched %q: %d frames, want %d", batch[i].Text, len(r.Frames), want)
		}
	}
	// MaxSeconds: 5 frames at 25 Hz.
	cut := opts
	cut.MaxSeconds = 5 / testRate
	mc, err := New(testutil.Backend(t, ""), m.Config, storeOf(m), m.Format, nil, cut)
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	res, err = mc.Generate(ctx, overfitRequests(mc), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range overfitData {
		want, stop := min(d.frames, 5), d.frames < 5
		if len(res[i].Frames) != want || res[i].Stopped != stop {
			t.Errorf("MaxSeconds %.2f: %q has %d frames, stopped %v; want %d, %v", cut.MaxSeconds, d.text, len(res[i].Frames), res[i].Stopped, want, stop)
		}
	}

	// Without the Continue targets the head only ever learnt <EOL>.
	plain := trainOverfit(t, 60, false, opts)
	res, err = plain.Generate(ctx, overfitRequests(plain), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range overfitData {
		if len(res[i].Frames) != 1 {
			t.Errorf("without Continue targets %q has %d frames; the head should stop after the first", d.text, len(res[i].Frames))
		}
	}
}

// storeOf is the model's weights (tests share them between models).
func storeOf(m *Model) *model.Store { return m.store }

// neverEnds is a random model whose softmax head is zero: every logit is 0,
// so the most likely token is id 0 (null), never <EOL>.
func neverEnds(t *testing.T, maxLen int, sp *speechvae.Model, opts Options) *Model {
	t.Helper()
	return neverEndsIn(t, testFormat(t), maxLen, sp, opts)
}

// neverEndsIn is neverEnds with the format f.
func neverEndsIn(t *testing.T, f Format, maxLen int, sp *speechvae.Model, opts Options) *Model {
	t.Helper()
	cfg := tinyConfig(f, maxLen)
	store := randomStore(t, cfg, 0.1)
	v := store.GetVariable(nn.WeightsScope + "/lm_head.weight")
	if err := v.SetValue(nn.Tensor(make([]float64, cfg.Vocab.Size()*cfg.Dim), dtypes.Float32, cfg.Vocab.Size(), cfg.Dim)); err != nil {
		t.Fatal(err)
	}
	m, err := New(testutil.Backend(t, ""), cfg, store, f, sp, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// TestMaxSecondsBoundsRunaway: a model that never predicts <EOL> stops at
// MaxSeconds, or where max_len leaves no room, and says it did not stop
// by itself; prompts and texts too long for max_len are cut or refused.
func TestMaxSecondsBoundsRunaway(t *testing.T) {
	opts := DefaultOptions()
	opts.MaxSeconds = 0.2 // 5 frames at 25 Hz
	m := neverEnds(t, 40, nil, opts)
	ctx := context.Background()
	prompt := frames(4, testChannels, func(k, j int) float32 { return 0.1 * float32(k-j) })
	res, err := m.Generate(ctx, []Request{{Text: "seven", Prompt: prompt}, {Text: "eight", Prompt: prompt}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if len(r.Frames) != 5 || r.Stopped || r.PromptFrames != 4 {
			t.Errorf("%d frames, stopped %v, prompt %d; want 5 frames cut by MaxSeconds, prompt 4", len(r.Frames), r.Stopped, r.PromptFrames)
		}
	}
	// max_len bounds it first: 40 − (4 + 26 + 3) = 7 frames of room.
	opts.MaxSeconds = 10
	m = neverEnds(t, 40, nil, opts)
	res, err = m.Generate(ctx, []Request{{Text: "twenty-six characters long", Prompt: prompt}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res[0].Frames) != 7 || res[0].Stopped {
		t.Errorf("%d frames, stopped %v; want the 7 that max_len leaves", len(res[0].Frames), res[0].Stopped)
	}
	// A long prompt gives way to the text, down to a second of it.
	m = neverEnds(t, 44, nil, opts)
	long := frames(30, testChannels, func(k, j int) float32 { return 0 })
	res, err = m.Generate(ctx, []Request{{Text: "a short text", Prompt: long}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := 44 - PrefixLen(0, 12) - 1; res[0].PromptFrames != want || len(res[0].Frames) != 1 {
		t.Errorf("a 30-frame prompt with 12 characters in max_len 44 kept %d frames and left %d for speech, want %d and 1", res[0].PromptFrames, len(res[0].Frames), want)
	}
	_, err = m.Generate(ctx, []Request{{Text: strings.Repeat("a", 20), Prompt: long}}, nil)
	if te := (*TextError)(nil); !errors.As(err, &te) || !strings.Contains(err.Error(), "at most") {
		t.Errorf("a text that leaves no room for a second of prompt: %v", err)
	}
	if _, err := m.Generate(ctx, []Request{{Text: "hi"}}, nil); err == nil {
		t.Error("a request without a prompt accepted")
	}
	if _, err := m.Generate(ctx, []Request{{Text: "hi", Prompt: [][]float32{{1}}}}, nil); err == nil {
		t.Error("a prompt of the wrong width accepted")
	}
	if err := (Options{SampleOptions: opts.SampleOptions, MaxSeconds: 0, Batch: 1}).Validate(); err == nil {
		t.Error("MaxSeconds 0 accepted")
	}
}

// tone is a second of a 220 Hz sine at 16 kHz, a voice prompt for tests
// that speak through the speech tokenizer.
func tone() []float32 {
	audio := make([]float32, 16000)
	for i := range audio {
		audio[i] = float32(0.3 * math.Sin(2*math.Pi*220*float64(i)/16000))
	}
	return audio
}

// TestSpeakStreams: Speak turns a voice prompt and text into audio through
// the speech tokenizer, a whole number of frames long; streamed, its chunks
// arrive while frames are drawn and end to end are the result.
func TestSpeakStreams(t *testing.T) {
	sp := testspeech.Tokenizer(t, 0)
	sc := sp.Config
	sp.GriffinLimIterations = 2
	opts := DefaultOptions()
	opts.MaxSeconds = 0.8 // 20 frames
	m := neverEnds(t, 64, sp, opts)
	audio := tone()
	ctx := context.Background()
	s, err := m.Speak(ctx, "hello", audio, nil)
	if err != nil {
		t.Fatal(err)
	}
	spl := sc.SamplesPerLatent()
	if len(s.Frames) != 20 || len(s.Samples) != 20*spl || s.PromptFrames != 25 {
		t.Errorf("%d frames, %d samples, prompt of %d frames; want 20, %d, 25", len(s.Frames), len(s.Samples), s.PromptFrames, 20*spl)
	}
	var chunks [][]float32
	s, err = m.Speak(ctx, "hello", audio, func(y []float32) error {
		chunks = append(chunks, append([]float32(nil), y...))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var joined []float32
	for _, c := range chunks {
		joined = append(joined, c...)
	}
	if len(chunks) != (20+DefaultChunk-1)/DefaultChunk || len(joined) != len(s.Samples) || len(joined) != 20*spl {
		t.Errorf("%d chunks of %d samples in all, result %d; want %d chunks of %d", len(chunks), len(joined), len(s.Samples), (20+DefaultChunk-1)/DefaultChunk, 20*spl)
	}
	if _, err := m.Speak(ctx, "", audio, nil); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty text: %v", err)
	}
	if _, err := m.Speak(ctx, "hi", nil, nil); err == nil || !strings.Contains(err.Error(), "no audio") {
		t.Errorf("empty prompt: %v", err)
	}
}

// TestGroupBatches: requests share a batch only when their prompts and
// texts are as long together, or, with EqualisePrompts, when cutting the
// longer prompts to the batch's length leaves each at least a second (or
// its whole prompt); Batch bounds the batches.
func TestGroupBatches(t *testing.T) {
	f := testFormat(t)
	mk := func(prompt, text int) prepared {
		return prepared{prompt: frames(prompt, testChannels, func(int, int) float32 { return 0 }), text: make([]int, text)}
	}
	for _, c := range []struct {
		equalise bool
		batch    int
		want     [][]int
		prompts  []int
	}{
		{false, 16, [][]int{{1, 3}, {0, 4}, {2}}, []int{40, 30, 70, 30, 30}},
		// Cut to 40 items: request 4 would keep 20 frames, under a second.
		{true, 16, [][]int{{1, 3, 0}, {4, 2}}, []int{30, 30, 48, 30, 30}},
		{true, 2, [][]int{{1, 3}, {0, 4}, {2}}, []int{40, 30, 70, 30, 30}},
	} {
		m := &Model{Format: f, opts: Options{Batch: c.batch, EqualisePrompts: c.equalise}}
		ps := []prepared{mk(40, 10), mk(30, 10), mk(70, 2), mk(30, 10), mk(30, 20)}
		got := m.group(ps)
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("equalise %v, batch %d: groups %v, want %v", c.equalise, c.batch, got, c.want)
		}
		var lens []int
		for _, p := range ps {
			lens = append(lens, len(p.prompt))
		}
		if fmt.Sprint(lens) != fmt.Sprint(c.prompts) {
			t.Errorf("equalise %v, batch %d: prompts of %v frames, want %v", c.equalise, c.batch, lens, c.prompts)
		}
	}
}
