package multimodal

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/text"
	"github.com/latentlm/latentlm/vae"
)

var corpus = []string{
	"the digit 3 is at the top left of the image",
	"the digit 7 is to the left of the digit 2",
	"which digit is on the left? 7",
	"A fool and his money are soon parted.",
	"Q: How many programmers does it take to change a light bulb?",
}

func tinyTokenizer(t *testing.T) *text.Tokenizer {
	t.Helper()
	tok, err := text.Train(corpus, 300)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// tinySetup is a small random model over a 300-id tokenizer and images of
// 5 latents of 4 channels.
func tinySetup(t *testing.T, std float64) (lm.Config, Format, *model.Store, *text.Tokenizer) {
	t.Helper()
	tok := tinyTokenizer(t)
	cfg := lm.Config{Dim: 32, Depth: 2, Heads: 4, KVHeads: 2, MLPRatio: 2, HeadDepth: 2, HeadDim: 24,
		Latent: 4, MaxLen: 48, Target: diffusion.Velocity, Vocab: lm.Vocab{Extra: tok.Size()}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	specs := cfg.Specs()
	if std > 0 {
		for i := range specs {
			specs[i].Std = std
		}
	}
	store := model.NewStore()
	if err := nn.Init(store, specs, 3, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	return cfg, Format{Vocab: cfg.Vocab, EOT: tok.EOT(), Items: 5, Channels: 4}, store, tok
}

func randomLatents(rng *rand.Rand, n int) []float32 {
	z := make([]float32, n)
	for i := range z {
		z[i] = float32(rng.NormFloat64())
	}
	return z
}

// mixedRow is <|endoftext|> caption <BOL> z₀…z₄ <EOL> question answer
// <|endoftext|>: text → image → text.
func mixedRow(f Format, tok *text.Tokenizer, rng *rand.Rand) Row {
	var r Row
	r.EOT(f)
	r.Text(f, tok.Encode(corpus[1]))
	r.Image(f, randomLatents(rng, f.Items*f.Channels), nil)
	r.Text(f, tok.Encode(corpus[2]))
	r.EOT(f)
	return r
}

// fullHidden runs the backbone over whole rows at once (no cache) and
// returns the hidden states [B][L][d].
func fullHidden(t *testing.T, cfg lm.Config, store *model.Store, f Format, rows []Row) [][][]float32 {
	t.Helper()
	l := len(rows[0].Items)
	bt, err := f.Pack(rows, l)
	if err != nil {
		t.Fatal(err)
	}
	b := testutil.Backend(t, "")
	exec, err := model.NewExec(b, store, func(scope *model.Scope, ids, lat, isLat *Node) *Node {
		w := nn.WeightsOf(scope.Store(), ids.Graph())
		h, _ := cfg.Backbone(w, lm.Items{Ids: ids, Latents: lat, IsLatent: isLat}, lm.Positions(ids.Graph(), dtypes.Float32, 0, l), nil)
		return h
	})
	if err != nil {
		t.Fatal(err)
	}
	defer exec.Finalize()
	out, err := exec.Call(tensors.FromFlatDataAndDimensions(bt.Ids, len(rows), l),
		tensors.FromFlatDataAndDimensions(bt.Latents, len(rows), l, f.Channels),
		tensors.FromFlatDataAndDimensions(bt.IsLatent, len(rows), l))
	if err != nil {
		t.Fatal(err)
	}
	flat := tensors.MustCopyFlatData[float32](out[0])
	h := make([][][]float32, len(rows))
	for i := range h {
		for j := range l {
			k := (i*l + j) * cfg.Dim
			h[i] = append(h[i], flat[k:k+cfg.Dim])
		}
	}
	return h
}

func maxDiff(a, b []float32) float64 {
	var m float64
	for i := range a {
		m = max(m, math.Abs(float64(a[i]-b[i])))
	}
	return m
}

// TestCachedDecodingEqualsFullForward: decoding a text → image → text
// sequence item by item with the KV cache gives, at every position, the
// hidden state of one full causal pass — across both switches.
func TestCachedDecodingEqualsFullForward(t *testing.T) {
	cfg, f, store, tok := tinySetup(t, 0.1)
	rng := rand.New(rand.NewPCG(1, 2))
	rows := []Row{mixedRow(f, tok, rng), mixedRow(f, tok, rng)}
	// Same length by construction; the latents differ.
	full := fullHidden(t, cfg, store, f, rows)
	e, err := lm.NewEngine(testutil.Backend(t, ""), store, cfg, lm.DefaultSampleOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	sess, err := e.Prefill([][]lm.Item{rows[0].Items[:1], rows[1].Items[:1]}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	var worst float64
	for j := range rows[0].Items {
		if j > 0 {
			if err := sess.Step([]lm.Item{rows[0].Items[j], rows[1].Items[j]}); err != nil {
				t.Fatal(err)
			}
		}
		h, err := sess.Hidden()
		if err != nil {
			t.Fatal(err)
		}
		for i := range rows {
			worst = max(worst, maxDiff(h[i], full[i][j]))
		}
	}
	if worst > 1e-4 {
		t.Fatalf("cached decoding differs from the full pass by %g", worst)
	}
	t.Logf("%d items (text, image, text): cached vs full max |Δh| = %.2g", len(rows[0].Items), worst)
}

// TestCausalAcrossSegments: changing one latent inside the image changes
// no hidden state before it and every one from it on, and changing the
// caption changes the image's conditions.
func TestCausalAcrossSegments(t *testing.T) {
	cfg, f, store, tok := tinySetup(t, 0.1)
	rng := rand.New(rand.NewPCG(3, 4))
	a := mixedRow(f, tok, rng)
	b := Row{Items: append([]lm.Item(nil), a.Items...), Scales: a.Scales, NotTarget: a.NotTarget}
	k := 1 + len(tok.Encode(corpus[1])) + 1 + 2 // the third latent
	if !b.Items[k].IsLatent() {
		t.Fatalf("item %d is not a latent", k)
	}
	b.Items[k] = lm.LatentItem(randomLatents(rng, f.Channels))
	h := fullHidden(t, cfg, store, f, []Row{a, b})
	for j := range a.Items {
		d := maxDiff(h[0][j], h[1][j])
		if j < k && d != 0 {
			t.Fatalf("position %d before the changed latent %d moved by %g", j, k, d)
		}
		if j >= k && d < 1e-6 {
			t.Fatalf("position %d after the changed latent %d did not move (%g)", j, k, d)
		}
	}
}

// TestPack checks the masks: padding and null tokens are not targets, and
// the counts.
func TestPack(t *testing.T) {
	_, f, _, tok := tinySetup(t, 0)
	var a, b Row
	a.EOT(f)
	a.Null(f, 3)
	mu := make([]float32, f.Items*f.Channels)
	sc := make([]float32, f.Items*f.Channels)
	for i := range sc {
		mu[i], sc[i] = float32(i), 0.5
	}
	a.Image(f, mu, sc)
	a.EOT(f)
	b.EOT(f)
	b.Text(f, tok.Encode("hello"))
	bt, err := f.Pack([]Row{a, b}, 14)
	if err != nil {
		t.Fatal(err)
	}
	l := 14
	for j := 1; j <= 3; j++ {
		if bt.Valid[j] != 0 || bt.Ids[j] != int32(f.Vocab.Null()) {
			t.Fatalf("null token %d: valid %v id %d", j, bt.Valid[j], bt.Ids[j])
		}
	}
	if bt.Ids[4] != int32(f.Vocab.BOL()) || bt.IsLatent[5] != 1 || bt.Latents[5*4+1] != 1 || bt.Scales[5*4] != 0.5 || bt.Ids[10] != int32(f.Vocab.EOL()) {
		t.Fatalf("image laid out wrong: ids %v isLatent %v", bt.Ids[:l], bt.IsLatent[:l])
	}
	if n := len(tok.Encode("hello")); bt.Valid[l+1+n] != 0 || bt.Valid[l+n] != 1 {
		t.Fatal("padding is a target")
	}
	// Targets: row a: BOL, EOL, EOT (tokens) and 5 latents; row b: "hello".
	if want := 3 + len(tok.Encode("hello")); bt.Tokens != want || bt.LatentItems != 5 {
		t.Fatalf("counted %d tokens and %d latents, want %d and 5", bt.Tokens, bt.LatentItems, want)
	}
	// The head runs where the next item is a latent target: row a's
	// positions 4…8 (the <BOL> and the first four latents) predict its
	// latents 5…9, in rows b·(l−1)+t; the rest only pad to the bucket.
	if want := []int32{4, 5, 6, 7, 8}; len(bt.HeadRows) < len(want) || !slices.Equal(bt.HeadRows[:len(want)], want) ||
		len(bt.HeadRowWeights) != len(bt.HeadRows) || sum(bt.HeadRowWeights) != float32(len(want)) || bt.HeadRowWeights[len(want)-1] != 1 {
		t.Fatalf("head rows %v, weights %v: want %v, weighing 1 each, then padding", bt.HeadRows, bt.HeadRowWeights, want)
	}
	if _, err := f.Pack([]Row{a}, 5); err == nil {
		t.Fatal("a row longer than the length was packed")
	}
	// An image read as context is an input only: neither its latents nor
	// its <BOL> and <EOL> count as targets (nor are they Valid).
	a.AsContext(4, 11)
	bt, err = f.Pack([]Row{a, b}, l)
	if err != nil {
		t.Fatal(err)
	}
	if want := 1 + len(tok.Encode("hello")); bt.Tokens != want || bt.LatentItems != 0 || bt.Valid[5] != 0 {
		t.Fatalf("with the image as context: counted %d tokens and %d latents (valid %v), want %d and 0", bt.Tokens, bt.LatentItems, bt.Valid[5], want)
	}
	if w := sum(bt.HeadRowWeights); w != 0 {
		t.Fatalf("with the image as context the head still runs on %g targets", w)
	}
}

func sum(xs []float32) (s float32) {
	for _, x := range xs {
		s += x
	}
	return s
}

// TestTinyTrainingLowersBothLosses: a few dozen steps of the multimodal
// objective on a fixed mix of text and caption → image rows lower the
// cross-entropy and the diffusion loss.
func TestTinyTrainingLowersBothLosses(t *testing.T) {
	cfg, f, _, tok := tinySetup(t, 0)
	rng := rand.New(rand.NewPCG(5, 6))
	// Two "images", each tied to its caption: latents around ±1.
	img := func(sign float32) []float32 {
		z := randomLatents(rng, f.Items*f.Channels)
		for i := range z {
			z[i] = sign + 0.1*z[i]
		}
		return z
	}
	imgs := [][]float32{img(1), img(-1)}
	scale := make([]float32, f.Items*f.Channels)
	for i := range scale {
		scale[i] = 0.05
	}
	var rows []Row
	for i := range 8 {
		var r Row
		r.EOT(f)
		if i%2 == 0 {
			r.Text(f, tok.Encode(corpus[i%len(corpus)]))
		} else {
			r.Text(f, tok.Encode(corpus[(i/2)%2]))
			r.Image(f, imgs[(i/2)%2], scale)
		}
		r.EOT(f)
		rows = append(rows, r)
	}
	bt, err := f.Pack(rows, cfg.MaxLen)
	if err != nil {
		t.Fatal(err)
	}
	sched := diffusion.Cosine(1000)
	tc := vae.DefaultConfig()
	_, tr := testutil.TinyTrainer(t, cfg.Specs(), func(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
		return Losses(scope, w, cfg, tc, sched, 4, 1, InputsOf(in, false, true))
	})
	inputs := bt.Inputs(f.Channels, false, true) // the head on the latent targets alone, as training runs it
	var ce, diff []float64
	for range 80 {
		res, err := tr.Step(inputs...)
		if err != nil {
			t.Fatal(err)
		}
		ce, diff = append(ce, res.Metrics[0]), append(diff, res.Metrics[1])
	}
	testutil.ExpectFalls(t, "cross-entropy", ce, 10, 0.5)
	testutil.ExpectFalls(t, "diffusion loss", diff, 10, 0.8)
}

// TestBadPrompts: an empty prompt, one over the context and invalid UTF-8
// are one-line errors naming the problem.
func TestBadPrompts(t *testing.T) {
	cfg, f, _, tok := tinySetup(t, 0)
	m := &Model{Config: cfg, Format: f, Text: tok}
	cases := []struct{ prompt, want string }{
		{"", "is empty"},
		{" \t\n", "is empty"},
		{strings.Repeat("zq ", 100), "tokens long"},
		{"caf\xe9 au lait", "not valid UTF-8 (byte 3)"},
	}
	for _, c := range cases {
		_, err := m.encodePrompt("the prompt", c.prompt, 2)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("prompt %q: error %v, want one line containing %q", c.prompt, err, c.want)
		}
	}
	if ids, err := m.encodePrompt("the prompt", corpus[0], 2); err != nil || len(ids) == 0 {
		t.Fatalf("a good prompt was refused: %v", err)
	}
}

// TestPickToken: greedy picks the best allowed token, <BOL> only when
// images are allowed, and top-p keeps only the nucleus.
func TestPickToken(t *testing.T) {
	v := lm.Vocab{Extra: 4} // ids: 0 null, 1 BOL, 2 EOL, 3…6 text
	rng := rand.New(rand.NewPCG(1, 1))
	logits := []float32{9, 8, 7, 1, 2, 3, 0}
	if got := pickToken(logits, Format{Vocab: v}, false, 0, 1, rng); got != 5 {
		t.Fatalf("greedy without images picked %d, want 5", got)
	}
	if got := pickToken(logits, Format{Vocab: v}, true, 0, 1, rng); got != 1 {
		t.Fatalf("greedy with images picked %d, want <BOL> (1)", got)
	}
	// With top-p 0.5 only the likeliest text token (5) survives.
	for range 50 {
		if got := pickToken([]float32{0, 0, 0, 0, 0, 5, 0}, Format{Vocab: v}, false, 1, 0.5, rng); got != 5 {
			t.Fatalf("top-p 0.5 drew %d outside the nucleus", got)
		}
	}
	seen := map[int]bool{}
	for range 200 {
		seen[pickToken([]float32{0, 0, 0, 0, 0, 0, 0}, Format{Vocab: v}, false, 1, 1, rng)] = true
	}
	if len(seen) != 4 || seen[0] || seen[1] || seen[2] {
		t.Fatalf("uniform draw over text reached %v, want exactly the 4 text ids", seen)
	}
}

// TestWholeRunes: streaming holds back only an unfinished character at
// the end, never the text after an invalid byte.
func TestWholeRunes(t *testing.T) {
	cases := []struct {
		in   string
		want int
	}{
		{"", 0}, {"abc", 3}, {"caf\xc3", 3}, {"caf\xc3\xa9", 5}, {"\xe4\xb8", 0}, {"a\xe4\xb8", 1},
		{"\xc3 two", 5}, {"x\xff", 2}, {"👍", 4}, {"a\xf0\x9f\x91", 1},
	}
	for _, c := range cases {
		if got := wholeRunes([]byte(c.in)); got != c.want {
			t.Errorf("wholeRunes(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

// TestReadClean: an image marked ReadClean enters the backbone as its mean
// μ, whatever its noise scale: the cross-entropy of the caption after it
// is the same as with no noise at all, and differs when the same image is
// read as its noisy draw.
func TestReadClean(t *testing.T) {
	cfg, f, store, tok := tinySetup(t, 0.1)
	rng := rand.New(rand.NewPCG(7, 8))
	mu := randomLatents(rng, f.Items*f.Channels)
	row := func(scale float32, clean bool) Row {
		sc := make([]float32, len(mu))
		for i := range sc {
			sc[i] = scale
		}
		var r Row
		r.EOT(f)
		r.Image(f, mu, sc)
		if clean {
			r.ReadClean(2, 2+f.Items)
		}
		r.Text(f, tok.Encode(corpus[1]))
		r.EOT(f)
		return r
	}
	l, copies := len(row(0, false).Items), 8
	b := testutil.Backend(t, "")
	exec, err := model.NewExec(b, store, func(scope *model.Scope, ids, mu, scale, isLat, valid, clean *Node) *Node {
		w := nn.WeightsOf(scope.Store(), ids.Graph())
		return Losses(scope, w, cfg, vae.DefaultConfig(), diffusion.Cosine(1000), 1, 1, Inputs{Ids: ids, Mu: mu, Scale: scale, IsLatent: isLat, Valid: valid, Clean: clean})[1]
	})
	if err != nil {
		t.Fatal(err)
	}
	defer exec.Finalize()
	ce := func(r Row) float64 {
		// Eight copies: the σ-VAE scales each example's noise by its own
		// |N(0, 1)| draw (vae.Config.PerExampleNoise), which in one example
		// alone may be too small to move the cross-entropy.
		bt, err := f.Pack(slices.Repeat([]Row{r}, copies), l)
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Call(bt.Inputs(f.Channels, true, false)...)
		if err != nil {
			t.Fatal(err)
		}
		return float64(tensors.MustCopyFlatData[float32](out[0])[0])
	}
	if bt, _ := f.Pack([]Row{row(1, true)}, l); bt.Clean[1] != 0 || bt.Clean[2] != 1 || bt.Clean[1+f.Items] != 1 || bt.Clean[2+f.Items] != 0 {
		t.Fatalf("Clean packed as %v, want 1 at the image's latents (items 2…%d) only", bt.Clean, 1+f.Items)
	}
	// Each call draws new noise, and a draw's effect on the mean
	// cross-entropy has either sign, so it is the largest of five that
	// must show.
	exact := ce(row(0, false))
	clean := testutil.Farthest(exact, 5, func() float64 { return ce(row(1, true)) })
	noisy := testutil.Farthest(exact, 5, func() float64 { return ce(row(1, false)) })
	if math.Abs(clean-exact) > 1e-6 {
		t.Fatalf("read clean under noise of scale 1: cross-entropy %g, want that of the noiseless image %g", clean, exact)
	}
	if math.Abs(noisy-exact) < 1e-4 {
		t.Fatalf("read as its draw, the image gave the noiseless cross-entropy %g (%g): the noise did not reach the backbone", noisy, exact)
	}
	t.Logf("caption cross-entropy: noiseless %.5f, clean under noise %.5f, noisy %.5f", exact, clean, noisy)
}
