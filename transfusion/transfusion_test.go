package transfusion

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/internal/flopcount"
	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/multimodal"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/text"
	"github.com/latentlm/latentlm/vae"
)

var corpus = []string{
	"the digit 3 is at the top left of the image",
	"the digit 7 is to the left of the digit 2",
	"which digit is on the left? 7",
	"A fool and his money are soon parted.",
}

// tinySetup is a small model over a 300-id tokenizer and images of 5
// latents of 4 channels; std > 0 draws every weight (the zero-initialised
// output layer too) from N(0, std²).
func tinySetup(t *testing.T, std float64) (Config, multimodal.Format, *model.Store, *text.Tokenizer) {
	t.Helper()
	tok, err := text.Train(corpus, 300)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Dim: 32, Depth: 2, Heads: 4, KVHeads: 2, MLPRatio: 2, Latent: 4, MaxLen: 64,
		Target: diffusion.Velocity, Vocab: lm.Vocab{Extra: tok.Size()}}
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
	return cfg, multimodal.Format{Vocab: cfg.Vocab, EOT: tok.EOT(), Items: 5, Channels: 4}, store, tok
}

func randomLatents(rng *rand.Rand, n int) []float32 {
	z := make([]float32, n)
	for i := range z {
		z[i] = float32(rng.NormFloat64())
	}
	return z
}

// twoImages is <|endoftext|> caption <BOL> z… <EOL> question <BOL> z… <EOL>
// answer <|endoftext|>, and the index of each image's first latent.
func twoImages(f multimodal.Format, tok *text.Tokenizer, rng *rand.Rand) (multimodal.Row, [2]int) {
	var r multimodal.Row
	var at [2]int
	r.EOT(f)
	r.Text(f, tok.Encode(corpus[1]))
	at[0] = len(r.Items) + 1
	r.Image(f, randomLatents(rng, f.Items*f.Channels), nil)
	r.Text(f, tok.Encode(corpus[2]))
	at[1] = len(r.Items) + 1
	r.Image(f, randomLatents(rng, f.Items*f.Channels), nil)
	r.Text(f, tok.Encode(corpus[3]))
	r.EOT(f)
	return r, at
}

func isLatentFlags(r multimodal.Row) []bool {
	out := make([]bool, len(r.Items))
	for i, it := range r.Items {
		out[i] = it.IsLatent()
	}
	return out
}

// fullPass runs Backbone without a cache over whole rows (one length) with
// the given timesteps at latents, and returns the hidden states [B][L][d]
// and the outputs [B][L][C].
func fullPass(t *testing.T, cfg Config, store *model.Store, f multimodal.Format, rows []multimodal.Row, ts float32) (h, out [][][]float32) {
	t.Helper()
	l := len(rows[0].Items)
	bt, err := f.Pack(rows, l)
	if err != nil {
		t.Fatal(err)
	}
	var vis, times []float32
	for _, r := range rows {
		vis = append(vis, Visible(isLatentFlags(r), 0)...)
		for _, it := range r.Items {
			times = append(times, map[bool]float32{true: ts}[it.IsLatent()])
		}
	}
	exec, err := model.NewExec(testutil.Backend(t, ""), store, func(scope *model.Scope, ids, lat, isLat, tsN, visN *Node) []*Node {
		w := nn.WeightsOf(scope.Store(), ids.Graph())
		h, _ := cfg.Backbone(w, lm.Items{Ids: ids, Latents: lat, IsLatent: isLat}, tsN, visN, lm.Positions(ids.Graph(), dtypes.Float32, 0, l), nil)
		return []*Node{h, cfg.Output(w, h)}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer exec.Finalize()
	n := len(rows)
	res, err := exec.Call(tensors.FromFlatDataAndDimensions(bt.Ids, n, l), tensors.FromFlatDataAndDimensions(bt.Latents, n, l, f.Channels),
		tensors.FromFlatDataAndDimensions(bt.IsLatent, n, l), tensors.FromFlatDataAndDimensions(times, n, l),
		tensors.FromFlatDataAndDimensions(vis, n, l))
	if err != nil {
		t.Fatal(err)
	}
	split := func(x *tensors.Tensor, width int) [][][]float32 {
		flat := tensors.MustCopyFlatData[float32](x)
		out := make([][][]float32, n)
		for i := range out {
			for j := range l {
				k := (i*l + j) * width
				out[i] = append(out[i], flat[k:k+width])
			}
		}
		return out
	}
	return split(res[0], cfg.Dim), split(res[1], cfg.Latent)
}

func maxDiff(a, b []float32) float64 {
	var m float64
	for i := range a {
		m = max(m, math.Abs(float64(a[i]-b[i])))
	}
	return m
}

// TestVisible: tokens see up to themselves, latents up to the end of their
// own image, at absolute positions.
func TestVisible(t *testing.T) {
	got := Visible([]bool{false, false, true, true, true, false, true, true, false}, 10)
	want := []float32{10, 11, 14, 14, 14, 15, 17, 17, 18}
	if !slices.Equal(got, want) {
		t.Fatalf("Visible = %v, want %v", got, want)
	}
}

// TestMaskPerturbation is the mask test of issue 16: in a row holding two
// images, perturbing one latent of the second image changes the outputs at
// every latent of that image (before it too: attention inside an image is
// bidirectional) and at every item after it (causal), and changes nothing
// before the image — not the first image, not the <BOL> that opens the
// second. Perturbing a latent of the first image changes the second image
// too, which reads it as context.
func TestMaskPerturbation(t *testing.T) {
	cfg, f, store, tok := tinySetup(t, 0.1)
	rng := rand.New(rand.NewPCG(1, 2))
	row, at := twoImages(f, tok, rng)
	for img, first := range at {
		k := first + 2 // the middle latent
		bumped := multimodal.Row{Items: slices.Clone(row.Items), Scales: row.Scales, NotTarget: row.NotTarget}
		z := slices.Clone(row.Items[k].Latent)
		z[1] += 1
		bumped.Items[k] = lm.LatentItem(z)
		h, _ := fullPass(t, cfg, store, f, []multimodal.Row{row, bumped}, 300)
		var changed []int
		for j := range row.Items {
			d := maxDiff(h[0][j], h[1][j])
			switch {
			case d > 1e-4:
				changed = append(changed, j)
			case d > 1e-6:
				t.Errorf("image %d: item %d changed by %.3g, neither nothing nor clearly", img, j, d)
			}
		}
		if want := len(row.Items) - first; len(changed) != want || changed[0] != first {
			t.Fatalf("image %d (latents from %d): perturbing item %d changed items %v, want every item from %d on", img, first, k, changed, first)
		}
	}
}

// TestCachedPassesEqualFullPass: prefilling a row piece by piece through
// the KV cache (text, a whole image, text) gives the hidden state of the
// full pass at the end of each piece; and Denoise over the cached prefix
// <|endoftext|> caption <BOL> predicts, for the noisy image at timestep t,
// what the full pass over the whole row predicts at the image's latents —
// the prefix caching of generation changes nothing.
func TestCachedPassesEqualFullPass(t *testing.T) {
	cfg, f, store, tok := tinySetup(t, 0.1)
	rng := rand.New(rand.NewPCG(3, 4))
	row, at := twoImages(f, tok, rng)
	m, err := New(testutil.Backend(t, ""), store, cfg, f, tok, nil, multimodal.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	full, _ := fullPass(t, cfg, store, f, []multimodal.Row{row}, 0)
	cuts := []int{at[0], at[0] + f.Items, at[1] - 1, at[1] + f.Items + 1, len(row.Items)}
	sess, err := m.prefill([][]lm.Item{row.Items[:cuts[0]]})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.close()
	for i, end := range cuts {
		if i > 0 {
			if err := sess.advance([][]lm.Item{row.Items[cuts[i-1]:end]}); err != nil {
				t.Fatal(err)
			}
		}
		got := tensors.MustCopyFlatData[float32](sess.hidden)
		if d := maxDiff(got, full[0][end-1]); d > 1e-4 {
			t.Errorf("cached hidden state after item %d differs from the full pass by %.3g", end-1, d)
		}
	}

	// Denoise: the prefix up to the first image's <BOL>, then the image's
	// latents as a noisy x at t = 300.
	const ts = 300
	_, want := fullPass(t, cfg, store, f, []multimodal.Row{row}, ts)
	pre, err := m.prefill([][]lm.Item{row.Items[:at[0]]})
	if err != nil {
		t.Fatal(err)
	}
	defer pre.close()
	var x []float32
	for _, it := range row.Items[at[0] : at[0]+f.Items] {
		x = append(x, it.Latent...)
	}
	args := []any{tensors.FromFlatDataAndDimensions(x, 1, f.Items, f.Channels), tensors.FromFlatDataAndDimensions([]float32{ts}, 1), tensors.FromScalar(float32(at[0]))}
	args = append(args, pre.caches...)
	out, err := model.CallOnce(testutil.Backend(t, ""), store, func(scope *model.Scope, in []*Node) *Node {
		w := nn.WeightsOf(scope.Store(), in[0].Graph())
		caches := make([]*nn.KV, cfg.Depth)
		for i := range caches {
			caches[i] = &nn.KV{K: in[3+2*i], V: in[4+2*i]}
		}
		return cfg.Denoise(w, in[0], in[1], caches, in[2])
	}, args...)
	if err != nil {
		t.Fatal(err)
	}
	got := tensors.MustCopyFlatData[float32](out)
	for k := range f.Items {
		if d := maxDiff(got[k*f.Channels:(k+1)*f.Channels], want[0][at[0]+k]); d > 1e-4 {
			t.Errorf("Denoise at latent %d differs from the full pass by %.3g", k, d)
		}
	}
}

// TestLayout: an image that ends its row (caption → image) is noised at
// some t in 0…T−1; one followed by text (image → caption) enters clean
// without a diffusion loss, or with context noise 0.5 is noised at t < T/2.
func TestLayout(t *testing.T) {
	_, f, _, tok := tinySetup(t, 0)
	rng := rand.New(rand.NewPCG(5, 6))
	var t2i, i2t multimodal.Row
	t2i.EOT(f)
	t2i.Text(f, tok.Encode(corpus[0]))
	t2i.Image(f, randomLatents(rng, f.Items*f.Channels), nil)
	t2i.EOT(f)
	i2t.EOT(f)
	i2t.Image(f, randomLatents(rng, f.Items*f.Channels), nil)
	i2t.Text(f, tok.Encode(corpus[0]))
	i2t.EOT(f)
	const l = 30
	bt, err := f.Pack([]multimodal.Row{t2i, i2t}, l)
	if err != nil {
		t.Fatal(err)
	}
	firstT2I := len(t2i.Items) - 1 - f.Items - 1 // <EOL>, <|endoftext|> after the latents
	var noisyT, cleanT []float32
	for trial := range 50 {
		ctx := 0.0
		if trial%2 == 1 {
			ctx = 0.5
		}
		lay, err := NewLayout(bt, f, 1000, ctx, rand.New(rand.NewPCG(uint64(trial), 7)))
		if err != nil {
			t.Fatal(err)
		}
		for k := range f.Items {
			a, b := firstT2I+k, l+2+k // the k-th latent of each row (i2t: after <|endoftext|> <BOL>)
			if lay.Noisy[a] != 1 || lay.Timesteps[a] != lay.Timesteps[firstT2I] {
				t.Fatalf("caption → image latent %d: noisy %v, t %v (first %v)", k, lay.Noisy[a], lay.Timesteps[a], lay.Timesteps[firstT2I])
			}
			switch {
			case ctx == 0 && (lay.Noisy[b] != 0 || lay.Timesteps[b] != 0):
				t.Fatalf("image → caption latent %d: noisy %v, t %v, want clean", k, lay.Noisy[b], lay.Timesteps[b])
			case ctx > 0 && (lay.Noisy[b] != 1 || lay.Timesteps[b] >= 500):
				t.Fatalf("image → caption latent %d with context noise 0.5: noisy %v, t %v", k, lay.Noisy[b], lay.Timesteps[b])
			}
		}
		noisyT = append(noisyT, lay.Timesteps[firstT2I])
		if ctx > 0 {
			cleanT = append(cleanT, lay.Timesteps[l+2])
		}
		for j := range l {
			if bt.IsLatent[j] == 0 && (lay.Noisy[j] != 0 || lay.Visible[j] != float32(j)) {
				t.Fatalf("token %d: noisy %v, visible %v", j, lay.Noisy[j], lay.Visible[j])
			}
		}
	}
	if slices.Max(noisyT) < 500 || slices.Min(noisyT) >= 500 || slices.Max(cleanT) == slices.Min(cleanT) {
		t.Errorf("timesteps do not spread: caption → image %v, context %v", noisyT, cleanT)
	}
	if _, err := NewLayout(bt, f, 1000, 1.5, rng); err == nil {
		t.Error("context noise 1.5 accepted")
	}
}

// TestTinyTrainingLowersBothLosses: a few dozen steps of the Transfusion
// objective on a fixed mix of text, caption → image and image → caption
// rows lower the cross-entropy and the diffusion loss, and the model then
// draws each caption's image (latents around +1 or −1) on the right side.
func TestTinyTrainingLowersBothLosses(t *testing.T) {
	cfg, f, _, tok := tinySetup(t, 0)
	rng := rand.New(rand.NewPCG(5, 6))
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
	var rows []multimodal.Row
	for i := range 12 {
		var r multimodal.Row
		r.EOT(f)
		k := (i / 3) % 2
		switch i % 3 {
		case 0:
			r.Text(f, tok.Encode(corpus[2+k]))
		case 1: // caption → image
			r.Text(f, tok.Encode(corpus[k]))
			r.Image(f, imgs[k], scale)
		case 2: // image → caption
			r.Image(f, imgs[k], scale)
			r.Text(f, tok.Encode(corpus[k]))
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
	store, tr := testutil.TinyTrainer(t, cfg.Specs(), func(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
		return Losses(scope, w, cfg, tc, sched, 1, multimodal.InputsOf(in[:5], false, false), in[5], in[6], in[7])
	})
	n, l := bt.Rows, bt.Len
	var ce, diff []float64
	for step := range 80 {
		lay, err := NewLayout(bt, f, sched.T, 0, rand.New(rand.NewPCG(9, uint64(step))))
		if err != nil {
			t.Fatal(err)
		}
		res, err := tr.Step(append(bt.Inputs(f.Channels, false, false), lay.Inputs(n, l)...)...)
		if err != nil {
			t.Fatal(err)
		}
		ce, diff = append(ce, res.Metrics[0]), append(diff, res.Metrics[1])
	}
	testutil.ExpectFalls(t, "cross-entropy", ce, 10, 0.5)
	testutil.ExpectFalls(t, "diffusion loss", diff, 10, 0.8)

	// The trained model draws, for each caption, latents on the side of
	// its image: training and sampling agree on positions, mask, timestep
	// embedding and target.
	o := multimodal.DefaultOptions()
	o.Steps = 10
	m, err := New(testutil.Backend(t, ""), store, cfg, f, tok, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for k, sign := range []float64{1, -1} {
		var r multimodal.Row
		r.EOT(f)
		r.Text(f, tok.Encode(corpus[k]))
		prefix := append(r.Items, lm.TokenItem(f.Vocab.BOL()))
		lat, err := m.drawImages([][]lm.Item{prefix, prefix, prefix, prefix}, false)
		if err != nil {
			t.Fatal(err)
		}
		var sum float64
		for _, z := range lat {
			for _, v := range z {
				sum += float64(v)
			}
		}
		avg := sum / float64(len(lat)*len(lat[0]))
		t.Logf("caption %d: drawn latents average %.3f (the image's: %+.0f)", k, avg, sign)
		if !(avg*sign > 0.3) {
			t.Errorf("caption %d draws latents averaging %.3f, want near %+.0f", k, avg, sign)
		}
	}
}

// TestContextReadAsMean: an image read as context and marked clean
// (multimodal.Row.ReadClean) enters as its σ-VAE mean μ, whatever its noise
// scale, as Caption and Ask give it: the cross-entropy of the caption after
// it equals that of the noiseless image, and differs when the same image
// enters as its draw.
func TestContextReadAsMean(t *testing.T) {
	cfg, f, store, tok := tinySetup(t, 0.1)
	rng := rand.New(rand.NewPCG(7, 8))
	mu := randomLatents(rng, f.Items*f.Channels)
	row := func(scale float32, clean bool) multimodal.Row {
		sc := make([]float32, len(mu))
		for i := range sc {
			sc[i] = scale
		}
		var r multimodal.Row
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
	sched := diffusion.Cosine(1000)
	exec, err := model.NewExec(testutil.Backend(t, ""), store, func(scope *model.Scope, in []*Node) *Node {
		w := nn.WeightsOf(scope.Store(), in[0].Graph())
		return Losses(scope, w, cfg, vae.DefaultConfig(), sched, 1, multimodal.InputsOf(in[:6], true, false), in[6], in[7], in[8])[1]
	})
	if err != nil {
		t.Fatal(err)
	}
	defer exec.Finalize()
	ce := func(r multimodal.Row) float64 {
		// Eight copies: the σ-VAE scales each example's noise by its own
		// |N(0, 1)| draw (vae.Config.PerExampleNoise), which in one example
		// alone may be too small to move the cross-entropy.
		bt, err := f.Pack(slices.Repeat([]multimodal.Row{r}, copies), l)
		if err != nil {
			t.Fatal(err)
		}
		lay, err := NewLayout(bt, f, sched.T, 0, rand.New(rand.NewPCG(1, 2)))
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Call(append(bt.Inputs(f.Channels, true, false), lay.Inputs(copies, l)...)...)
		if err != nil {
			t.Fatal(err)
		}
		return float64(tensors.MustCopyFlatData[float32](out[0])[0])
	}
	// Each call draws new noise, and a draw's effect on the mean
	// cross-entropy has either sign, so it is the largest of five that
	// must show.
	exact := ce(row(0, false))
	clean := testutil.Farthest(exact, 5, func() float64 { return ce(row(1, true)) })
	noisy := testutil.Farthest(exact, 5, func() float64 { return ce(row(1, false)) })
	if math.Abs(clean-exact) > 1e-6 {
		t.Fatalf("read as μ under noise of scale 1: cross-entropy %g, want that of the noiseless image %g", clean, exact)
	}
	if math.Abs(noisy-exact) < 1e-4 {
		t.Fatalf("read as its draw, the image gave the noiseless cross-entropy %g (%g): the noise did not reach the backbone", noisy, exact)
	}
	t.Logf("caption cross-entropy: noiseless %.5f, as μ under noise %.5f, as the draw %.5f", exact, clean, noisy)
}

// saveTiny saves a tiny random image tokenizer (28×28 gray images, 4
// latents of 3 channels) and a tiny random Transfusion model over it into
// root/vae and root/model.
func saveTiny(t *testing.T, root string) string {
	t.Helper()
	b := testutil.Backend(t, "")
	vc := vae.Config{Kind: vae.Sigma, ImageSize: 28, Patch: 14, Channels: 3, Dim: 16, Depth: 1, Heads: 2, MLPRatio: 2, CSigma: 0.5, KLWeight: 0.01}
	vs := model.NewStore()
	if err := nn.Init(vs, vc.Specs(), 1, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	vm, err := vae.NewModel(b, vc, vs)
	if err != nil {
		t.Fatal(err)
	}
	vdir := filepath.Join(root, "vae")
	err = vm.Save(vdir, nil, false)
	vm.Close()
	if err != nil {
		t.Fatal(err)
	}
	sum, err := checkpoint.FileSHA256(filepath.Join(vdir, checkpoint.WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := text.Train(corpus, 300)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Dim: 32, Depth: 2, Heads: 4, KVHeads: 2, MLPRatio: 2, Latent: vc.Channels, MaxLen: 32,
		Target: diffusion.Velocity, Vocab: lm.Vocab{Extra: tok.Size()}}
	specs := cfg.Specs()
	for i := range specs {
		specs[i].Std = 0.1
	}
	store := model.NewStore()
	if err := nn.Init(store, specs, 2, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	rec := lm.Tokenizer{Path: vdir, SHA256: sum, Kind: vae.Kind, Items: vc.Items(), Channels: vc.Channels, Data: "random"}
	dir := filepath.Join(root, "model")
	if err := Save(dir, cfg, store, rec, tok, map[string]any{"data": "mnist-canvas"}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestSaveLoadGenerate: a saved model loads back as kind "transfusion"
// (info arch "transfusion") and draws images (guided by a caption, and
// unconditionally), captions them and answers questions about them, and
// scores text. The same seed draws the same images; guidance changes them.
func TestSaveLoadGenerate(t *testing.T) {
	dir := saveTiny(t, t.TempDir())
	if kind, err := checkpoint.ReadKind(dir); err != nil || kind != Kind {
		t.Fatalf("kind %q (%v), want %q", kind, err, Kind)
	}
	b := testutil.Backend(t, "")
	opts := multimodal.DefaultOptions()
	opts.Steps, opts.MaxTokens = 4, 5
	load := func(cfg float64) *Model {
		o := opts
		o.CFG = cfg
		m, err := Load(b, dir, "", o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Close)
		return m
	}
	m := load(4)
	if m.Info["arch"] != Arch || !m.Captioned() {
		t.Errorf("info %v: want arch %q and captions", m.Info, Arch)
	}
	ctx := context.Background()
	captions := []string{corpus[0], corpus[0], ""}
	imgs, err := m.ImagesFor(ctx, captions)
	if err != nil {
		t.Fatal(err)
	}
	px := m.Image.Config.Pixels()
	for i, img := range imgs {
		if len(img) != px {
			t.Fatalf("image %d has %d values, want %d", i, len(img), px)
		}
		for _, v := range img {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("image %d has a non-finite pixel", i)
			}
		}
	}
	if maxDiff(imgs[0], imgs[1]) == 0 {
		t.Error("two images of one caption are identical: the noise is not drawn per image")
	}
	again, err := load(4).ImagesFor(ctx, captions)
	if err != nil {
		t.Fatal(err)
	}
	unguided, err := load(1).ImagesFor(ctx, captions)
	if err != nil {
		t.Fatal(err)
	}
	for i := range imgs {
		if d := maxDiff(again[i], imgs[i]); d > 1e-5 {
			t.Errorf("image %d differs by %.3g when drawn again from the same seed", i, d)
		}
	}
	if maxDiff(unguided[0], imgs[0]) < 1e-4 {
		t.Error("guidance 4 draws the image of guidance 1")
	}
	if maxDiff(unguided[2], imgs[2]) > 1e-5 {
		t.Error("the unconditional image depends on the guidance scale")
	}

	caps, err := m.Caption(ctx, imgs)
	if err != nil || len(caps) != len(imgs) {
		t.Fatalf("Caption: %d captions, %v", len(caps), err)
	}
	answers, err := m.Ask(ctx, imgs[:2], "which digit is on the left?")
	if err != nil || len(answers) != 2 {
		t.Fatalf("Ask: %d answers, %v", len(answers), err)
	}
	if _, err := m.Ask(ctx, imgs[:1], strings.Repeat("the digit 3 ", 40)); err == nil || !strings.Contains(err.Error(), "tokens long") {
		t.Errorf("an over-long question: %v", err)
	}
	docs := [][]int{m.Text.Encode(corpus[3]), m.Text.Encode(strings.Repeat(corpus[3]+" ", 3))}
	nats, tokens, err := m.TextNats(docs)
	if err != nil {
		t.Fatal(err)
	}
	if tokens != len(docs[0])+len(docs[1]) || !(nats > 0) || math.IsInf(nats, 0) {
		t.Errorf("TextNats: %v nats over %d tokens, want a positive finite value over %d", nats, tokens, len(docs[0])+len(docs[1]))
	}
	m.Close()
	if _, err := m.ImagesFor(ctx, captions[:1]); err == nil {
		t.Error("ImagesFor after Close succeeded")
	}
}

// TestFLOPs counts the products (flopcount.Matmul) of the graphs the model
// runs and compares the formulas with them: ForwardFLOPs with the
// training loss's graph, SampleFLOPs with the prefill of the prefix and
// the unrolled guided solver over the image block.
func TestFLOPs(t *testing.T) {
	cfg, f, store, tok := tinySetup(t, 0.1)
	b := testutil.Backend(t, "")
	const batch, l = 2, 12
	var counted float64
	zeros := func(dtype dtypes.DType, dims ...int) *tensors.Tensor {
		return tensors.FromShape(nn.Shape(dtype, dims...))
	}
	if _, err := model.CallOnce(b, store, func(scope *model.Scope, in []*Node) *Node {
		w := nn.WeightsOf(scope.Store(), in[0].Graph())
		loss := cfg.Loss(scope, w, lm.Items{Ids: in[0], Latents: in[1], IsLatent: in[2]}, in[3], in[4], in[5], in[6], diffusion.Cosine(1000))
		var err error
		if counted, err = flopcount.Matmul(in[0].Graph()); err != nil {
			panic(err)
		}
		return loss.Total
	}, zeros(dtypes.Int32, batch, l), zeros(dtypes.Float32, batch, l, cfg.Latent), zeros(dtypes.Float32, batch, l),
		zeros(dtypes.Float32, batch, l), zeros(dtypes.Float32, batch, l), zeros(dtypes.Float32, batch, l), zeros(dtypes.Float32, batch, l)); err != nil {
		t.Fatal(err)
	}
	if got := cfg.ForwardFLOPs(batch, l); math.Abs(got-counted) > 1e-9*counted {
		t.Errorf("ForwardFLOPs(%d, %d) = %.9g, the loss graph %.9g", batch, l, got, counted)
	}

	const prefix, steps = 6, 3
	o := multimodal.DefaultOptions()
	o.Steps = steps
	m, err := New(b, store, cfg, f, tok, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	hd := cfg.Dim / cfg.Heads
	var caches []*tensors.Tensor
	for range 2 * cfg.Depth {
		caches = append(caches, zeros(dtypes.Float32, 2, cfg.MaxLen, cfg.KVHeads, hd))
	}
	args := []any{zeros(dtypes.Int32, 2, prefix), zeros(dtypes.Float32, 2, prefix, cfg.Latent), zeros(dtypes.Float32, 2, prefix),
		zeros(dtypes.Float32, 2, prefix), zeros(dtypes.Float32, 2, prefix), zeros(dtypes.Float32, prefix)}
	for _, c := range caches {
		args = append(args, c)
	}
	var prefill, solve float64
	if _, err := model.CallOnce(b, store, func(scope *model.Scope, in []*Node) *Node {
		out := m.stepGraph(scope, in)
		var err error
		if prefill, err = flopcount.Matmul(in[0].Graph()); err != nil {
			panic(err)
		}
		return out[0]
	}, args...); err != nil {
		t.Fatal(err)
	}
	sched := diffusion.Cosine(1000)
	plan, err := sched.PlanFor(steps)
	if err != nil {
		t.Fatal(err)
	}
	args = nil
	for _, c := range caches {
		args = append(args, c)
	}
	args = append(args, tensors.FromScalar(float32(prefix)))
	graphs := m.solverGraphs(true)
	if _, err := model.CallOnce(b, store, func(scope *model.Scope, in []*Node) *Node {
		x := graphs.Noise(scope, in)
		out := sched.Run(plan, x, cfg.Target, graphs.Denoiser(scope, in), func(int) *Node { return scope.RandomNormal(x.Graph(), x.Shape()) })
		var err error
		if solve, err = flopcount.Matmul(x.Graph()); err != nil {
			panic(err)
		}
		return out
	}, args...); err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.SampleFLOPs(prefix, f.Items, steps), prefill+solve; math.Abs(got-want) > 1e-9*want {
		t.Errorf("SampleFLOPs(%d, %d, %d) = %.9g, the graphs %.9g (prefill %.6g, solver %.6g)", prefix, f.Items, steps, got, want, prefill, solve)
	}
}
