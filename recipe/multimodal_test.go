package recipe

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/canvas"
	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/data"
	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/multimodal"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/safetensors"
	"github.com/latentlm/latentlm/text"
	"github.com/latentlm/latentlm/vae"
)

const tinyCorpus = `A fool and his money are soon parted.

Q: How many programmers does it take to change a light bulb?
A: None, that's a hardware problem.

You will be married within a year.

Today is the first day of the rest of your life.`

// tinyMultimodal trains a tiny canvas tokenizer and a tiny multimodal
// model for a few steps, and returns the model's options and folder.
func tinyMultimodal(t *testing.T, steps int64) MultimodalOptions {
	t.Helper()
	if _, err := os.Stat(filepath.Join("..", ".deps")); err != nil {
		t.Skip("needs the data sets of make setup")
	}
	root := t.TempDir()
	vo := DefaultTokenizerOptions()
	vo.Data, vo.Out, vo.Steps, vo.Limit, vo.Quiet, vo.SaveEvery = "mnist-canvas", filepath.Join(root, "vae"), 2, 64, true, 0
	vo.Model = DefaultTokenizerModel("mnist-canvas")
	vo.Model.Dim, vo.Model.Depth = 32, 1
	if _, err := Tokenizer(context.Background(), vo); err != nil {
		t.Fatal(err)
	}
	corpus := filepath.Join(root, "corpus.txt")
	if err := os.WriteFile(corpus, []byte(tinyCorpus), 0o644); err != nil {
		t.Fatal(err)
	}
	o := DefaultMultimodalOptions()
	o.Out, o.Tokenizer, o.TextFiles, o.Limit = filepath.Join(root, "mm"), vo.Out, []string{corpus}, 300
	o.Steps, o.Batch, o.Quiet, o.SaveEvery, o.SampleEvery, o.VocabSize, o.LR = steps, 8, true, 0, steps, 300, 3e-3
	o.Model.Dim, o.Model.Depth, o.Model.Heads, o.Model.KVHeads, o.Model.HeadDim, o.Model.HeadDepth = 32, 1, 2, 2, 32, 1
	return o
}

// TestMultimodal: a tiny run writes a loadable checkpoint with its
// tokenizer.json, records both loss terms, lowers the cross-entropy, and
// the model it leaves draws, captions and answers.
func TestMultimodal(t *testing.T) {
	if testing.Short() {
		t.Skip("trains two tiny models")
	}
	o := tinyMultimodal(t, 40)
	res, err := Multimodal(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{checkpoint.ConfigFile, checkpoint.WeightsFile, multimodal.TokenizerFile, "loss.png", "samples-000040.png"} {
		if _, err := os.Stat(filepath.Join(res.Dir, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	h := res.History
	if len(h) < 2 || len(h[0].Metrics) != 2 {
		t.Fatalf("history %+v: want points with two terms (ce, diff)", h)
	}
	first, last := h[0], h[len(h)-1]
	t.Logf("ce %.3f → %.3f, diffusion %.3f → %.3f", first.Metrics[0], last.Metrics[0], first.Metrics[1], last.Metrics[1])
	if !(last.Metrics[0] < first.Metrics[0]) {
		t.Errorf("cross-entropy did not fall: %.3f → %.3f", first.Metrics[0], last.Metrics[0])
	}
	// The head ran on the latent targets alone (Batch.HeadRows), and the
	// counted work says so: more than the backbone's, less than the head
	// on every position would have cost.
	var cfg multimodal.Config
	hdr, err := checkpoint.ReadHeader(res.Dir, multimodal.Kind, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	gflop, _ := hdr.Info["train_gflop"].(float64)
	full := 3 * cfg.ForwardFLOPs(o.Batch, o.SeqLen, o.BatchMul) * float64(o.Steps) / 1e9
	bare := 3 * cfg.LM.ForwardFLOPsRows(o.Batch, o.SeqLen, 0, o.BatchMul) * float64(o.Steps) / 1e9
	t.Logf("train_gflop %.2f: %.0f%% of the head on every position's", gflop, 100*gflop/full)
	if !(bare < gflop && gflop < 0.9*full) {
		t.Errorf("train_gflop %g: want between the backbone's %g and 90%% of the head on every position's %g", gflop, bare, full)
	}
	b := testutil.Backend(t, "")
	m, err := multimodal.Load(b, res.Dir, "", multimodal.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	imgs, err := m.Images(ctx, canvas.MNIST.Caption(canvas.Scene{Layout: canvas.TopLeft, A: 3}), 2)
	if err != nil || len(imgs) != 2 || len(imgs[0]) != 56*56 {
		t.Fatalf("Images: %d images, %v", len(imgs), err)
	}
	if _, err := m.Caption(ctx, imgs); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Ask(ctx, imgs, "how many digits are there?"); err != nil {
		t.Fatal(err)
	}
	var pieces int
	if err := m.Complete(ctx, "the digit", func(multimodal.Piece) error { pieces++; return nil }); err != nil {
		t.Fatal(err)
	}
}

// TestMultimodalVQ: --arch vq on a tiny vq tokenizer trains the VQ-MLLM
// (cross-entropy alone, falling), records its arch in config.json, and
// the checkpoint loads through multimodal.Load as a VQ-MLLM that draws and
// captions; a σ-VAE tokenizer, and resuming it as the other arch, are
// refused.
func TestMultimodalVQ(t *testing.T) {
	if testing.Short() {
		t.Skip("trains two tiny models")
	}
	o := tinyMultimodal(t, 0) // the σ-VAE of tinyMultimodal, for the refusal
	o.Arch = multimodal.VQ
	if _, err := Multimodal(context.Background(), o); err == nil || !strings.Contains(err.Error(), "needs a vq one") {
		t.Fatalf("--arch vq with a σ-VAE: %v", err)
	}
	vo := DefaultTokenizerOptions()
	vo.Data, vo.Out, vo.Steps, vo.Limit, vo.Quiet, vo.SaveEvery = "mnist-canvas", filepath.Join(t.TempDir(), "vq"), 2, 64, true, 0
	vo.Model = DefaultTokenizerModel("mnist-canvas")
	vo.Model.Dim, vo.Model.Depth, vo.Model.Kind, vo.Model.Codebook = 32, 1, vae.VQ, 32
	vo.Model.CodebookDecay, vo.Model.RestartBelow = vae.DefaultCodebookDecay, vae.DefaultRestartBelow
	if _, err := Tokenizer(context.Background(), vo); err != nil {
		t.Fatal(err)
	}
	o.Tokenizer, o.Steps, o.SampleEvery = vo.Out, 20, 20
	res, err := Multimodal(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(res.Dir, checkpoint.ConfigFile))
	if err != nil || !strings.Contains(string(raw), `"arch": "vq"`) || !strings.Contains(string(raw), `"codes": 32`) {
		t.Fatalf("config.json does not record the arch: %v\n%s", err, raw)
	}
	if _, err := os.Stat(filepath.Join(res.Dir, "samples-000020.png")); err != nil {
		t.Errorf("no sample grid: %v", err)
	}
	h := res.History
	if len(h) < 2 || len(h[0].Metrics) != 1 {
		t.Fatalf("history %+v: want points with one term (ce)", h)
	}
	first, last := h[0].Metrics[0], h[len(h)-1].Metrics[0]
	t.Logf("ce %.3f → %.3f", first, last)
	if !(last < first) {
		t.Errorf("cross-entropy did not fall: %.3f → %.3f", first, last)
	}
	m, err := multimodal.Load(testutil.Backend(t, ""), res.Dir, "", multimodal.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Arch != multimodal.VQ || m.Format.Codes != 32 {
		t.Fatalf("loaded arch %v with %d codes", m.Arch, m.Format.Codes)
	}
	ctx := context.Background()
	imgs, err := m.Images(ctx, canvas.MNIST.Caption(canvas.Scene{Layout: canvas.TopLeft, A: 3}), 2)
	if err != nil || len(imgs) != 2 || len(imgs[0]) != 56*56 {
		t.Fatalf("Images: %d images, %v", len(imgs), err)
	}
	if _, err := m.Caption(ctx, imgs); err != nil {
		t.Fatal(err)
	}
	o.Arch, o.Resume, o.Steps = multimodal.Latent, true, 21
	if _, err := Multimodal(context.Background(), o); err == nil || !strings.Contains(err.Error(), "arch vq") {
		t.Errorf("resuming a vq run as latentlm: %v", err)
	}
}

// TestHeldOutNeverTrained: no training batch holds a caption, question or
// image of a held-out scene — checked on every text span of 200 batches,
// which must parse to a training scene whenever they parse at all.
func TestHeldOutNeverTrained(t *testing.T) {
	o := tinyMultimodal(t, 1)
	ds, err := LoadSplit(o.Data, "train", 2000)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range ds.Labels {
		if s, _ := canvas.SceneOf(int(l)); s.HeldOut() {
			t.Fatalf("training canvas %d shows held-out scene %v", i, s)
		}
	}
	names := canvas.MNIST
	mix, tok := canvasMixer(t, o, ds)
	f := mix.f
	parsed := 0
	for step := range int64(200) {
		bt, err := mix.batch(step)
		if err != nil {
			t.Fatal(err)
		}
		for r := range bt.Rows {
			var span []int
			check := func() {
				if len(span) == 0 {
					return
				}
				s, err := tok.Decode(span)
				if err != nil {
					t.Fatal(err)
				}
				span = span[:0]
				// Questions end with their answer: parse the caption part.
				if sc, err := names.Parse(strings.TrimSpace(s)); err == nil {
					parsed++
					if sc.HeldOut() {
						t.Fatalf("step %d row %d trains on held-out caption %q", step, r, s)
					}
				}
			}
			for j := range bt.Len {
				id := int(bt.Ids[r*bt.Len+j])
				if tid, ok := f.Vocab.TextOf(id); ok && tid != f.EOT && bt.IsLatent[r*bt.Len+j] == 0 {
					span = append(span, tid)
				} else {
					check()
				}
			}
			check()
		}
	}
	if parsed < 200 {
		t.Fatalf("only %d captions parsed in 200 batches: the check saw too little", parsed)
	}
	t.Logf("%d captions in 200 batches, none of a held-out scene", parsed)
}

// canvasMixer is the training mixer of o over the canvases ds, with a
// small BPE and zero latents of 2 channels.
func canvasMixer(t *testing.T, o MultimodalOptions, ds *data.Dataset) (*mixer, *text.Tokenizer) {
	t.Helper()
	names := canvas.MNIST
	tok, err := text.Train(append(captionTexts(names), tinyCorpus), 400)
	if err != nil {
		t.Fatal(err)
	}
	f := multimodal.Format{Vocab: o.Model.Vocab, EOT: tok.EOT(), Items: 49, Channels: 2}
	f.Vocab.Classes, f.Vocab.Extra = 0, tok.Size()
	mus := make([]float32, ds.N*f.Items*f.Channels)
	return newMixer(o, f, tok, canvasTexts(tok, names, ds.Labels), mus, mus, []string{tinyCorpus}), tok
}

// TestContextImages: by default the latents of every image are diffusion
// targets, read as their noisy draws; with ContextImagesUntrained, those of
// an image that opens its sequence (image → caption, questions) are not
// targets, and with ContextClean 1 they are read as their mean (with ½,
// some of them), as a Transfusion run reads every one of them, while the
// images drawn from a caption are always noisy targets, and <BOL> and
// <EOL> stay targets everywhere.
func TestContextImages(t *testing.T) {
	ds, err := LoadSplit("mnist-canvas", "train", 500)
	if err != nil {
		t.Fatal(err)
	}
	o := tinyMultimodal(t, 1)
	o.Mix, o.CaptionDropout = Mixture{T2I: 1, I2T: 1, VQA: 1}, 0
	mix, _ := canvasMixer(t, o, ds)
	f := mix.f
	for _, c := range []struct {
		untrained   bool
		clean       float64
		transfusion bool
	}{{false, 0, false}, {true, 0, false}, {false, 1, false}, {false, 0.5, false}, {false, 0, true}} {
		mix.o.ContextImagesUntrained, mix.o.ContextClean, mix.o.Transfusion.On = c.untrained, c.clean, c.transfusion
		var context, drawn, cleaned int
		for step := range int64(20) {
			bt, err := mix.batch(step)
			if err != nil {
				t.Fatal(err)
			}
			for r := range bt.Rows {
				row := r * bt.Len
				opens := int(bt.Ids[row+1]) == f.Vocab.BOL() // <|endoftext|> <BOL>: the image is context
				bol := row
				for int(bt.Ids[bol]) != f.Vocab.BOL() || bt.IsLatent[bol] != 0 {
					bol++
				}
				eol := bol + f.Items + 1
				if int(bt.Ids[eol]) != f.Vocab.EOL() || bt.Valid[bol] != 1 || bt.Valid[eol] != 1 {
					t.Fatalf("%+v, step %d row %d: <BOL> at %d and <EOL> at %d are not both targets", c, step, r, bol-row, eol-row)
				}
				want, wantClean := float32(1), float32(0)
				if opens && c.untrained {
					want = 0
				}
				if opens && bt.Clean[bol+1] == 1 {
					cleaned++
					wantClean = 1 // the whole image, or none of it
				}
				for k := bol + 1; k < eol; k++ {
					if bt.IsLatent[k] != 1 || bt.Valid[k] != want || bt.Clean[k] != wantClean {
						t.Fatalf("%+v, step %d row %d item %d: latent %v target %v clean %v, want a latent of target %v clean %v", c, step, r, k-row, bt.IsLatent[k], bt.Valid[k], bt.Clean[k], want, wantClean)
					}
				}
				for k := row; k < row+bt.Len; k++ {
					if bt.IsLatent[k] == 0 && bt.Clean[k] != 0 {
						t.Fatalf("%+v, step %d row %d item %d: a token marked clean", c, step, r, k-row)
					}
				}
				if opens {
					context++
				} else {
					drawn++
				}
			}
		}
		if context == 0 || drawn == 0 {
			t.Fatalf("%+v: %d context and %d drawn images in 20 batches: the check saw too little", c, context, drawn)
		}
		// A share of 0 or 1 reads none or every context image clean; ½
		// about half of them; Transfusion every one.
		share := c.clean
		if c.transfusion {
			share = 1
		}
		expect := share * float64(context)
		exact := share == 0 || share == 1
		if exact && float64(cleaned) != expect || !exact && (float64(cleaned) < 0.6*expect || float64(cleaned) > 1.4*expect) {
			t.Fatalf("%+v: %d of %d context images read clean, want about %g", c, cleaned, context, expect)
		}
		t.Logf("%+v: %d of %d context images read clean", c, cleaned, context)
	}
}

// weightValues returns the values of the weight called name (under
// nn.WeightsScope) in store s, failing the test when s has none.
func weightValues(t *testing.T, s *model.Store, name string) []float32 {
	t.Helper()
	v := s.GetVariable(nn.WeightsScope + "/" + name)
	if v == nil {
		t.Fatalf("no %s", name)
	}
	x, err := v.Value()
	if err != nil {
		t.Fatal(err)
	}
	return tensors.MustCopyFlatData[float32](x)
}

// TestInitFrom: a multimodal store starts from a class-conditional
// checkpoint wherever names and shapes agree — the blocks and the head —
// and keeps its own vocabulary tables.
func TestInitFrom(t *testing.T) {
	cfg := lm.Config{Dim: 32, Depth: 1, Heads: 2, KVHeads: 2, MLPRatio: 2, HeadDepth: 1, HeadDim: 16,
		Latent: 4, MaxLen: 10, Target: diffusion.Velocity, Vocab: lm.Vocab{Classes: 10}}
	src := model.NewStore()
	if err := nn.Init(src, cfg.Specs(), 1, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "class")
	if err := lm.Save(dir, cfg, src, lm.Tokenizer{}, nil); err != nil {
		t.Fatal(err)
	}
	mm := cfg
	mm.Vocab, mm.MaxLen = lm.Vocab{Extra: 300}, 80
	dst := model.NewStore()
	if err := nn.Init(dst, mm.Specs(), 2, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	copied, total, _, err := initFrom(dst, dir, lm.Kind, multimodal.Kind)
	if err != nil {
		t.Fatal(err)
	}
	value := func(s *model.Store, name string) []float32 { return weightValues(t, s, name) }
	if !slices.Equal(value(dst, "x_embedder.weight"), value(src, "x_embedder.weight")) {
		t.Error("a shared weight was not copied")
	}
	if slices.Equal(value(dst, "tok_embeddings.weight")[:32], value(src, "tok_embeddings.weight")[:32]) {
		t.Error("the token table of another vocabulary was copied")
	}
	if copied != total-2 {
		t.Errorf("copied %d of %d weights, want all but the two vocabulary tables", copied, total)
	}
	if _, _, _, err := initFrom(dst, t.TempDir(), lm.Kind); err == nil {
		t.Error("an empty folder was accepted")
	}
	if _, _, _, err := initFrom(dst, dir, multimodal.Kind); err == nil || !strings.Contains(err.Error(), "want multimodal") {
		t.Errorf("a class-conditional checkpoint where only a multimodal one will do: %v", err)
	}
}

// TestMatchParams: MultimodalParams counts what a checkpoint holds (the
// elements of its model.safetensors, counted here independently), and
// MatchParams picks, for each arch, the depth whose count is nearest: the
// count of a depth comes back as that depth, and the baselines matched to
// LatentLM's size land within half a block of it.
func TestMatchParams(t *testing.T) {
	dir, err := shippedWeights("multimodal-mnist")
	if err != nil {
		t.Fatal(err)
	}
	n, err := MultimodalParams(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Load(filepath.Join(dir, checkpoint.WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	held := 0
	for _, x := range f.Tensors {
		held += len(x.Data) / x.DType.Size()
	}
	if n != held {
		t.Errorf("MultimodalParams(%s) = %d, its weights hold %d numbers", dir, n, held)
	}
	if _, err := MultimodalParams(filepath.Join(filepath.Dir(dir), "vae-mnist-canvas")); err == nil || !strings.Contains(err.Error(), "not a multimodal") {
		t.Errorf("a tokenizer's folder: %v, want an error naming its kind", err)
	}

	o := DefaultMultimodalOptions()
	o.Model.Dim, o.Model.Depth, o.Model.MaxLen = 128, 4, 80
	o.Model.Vocab = lm.Vocab{Extra: 2048}
	o.Model.Latent = 16
	latent := paramsOf(o, 0)
	block := paramsOf(withDepth(o, 5), 0) - latent
	for _, arch := range []struct {
		name  string
		o     MultimodalOptions
		codes int
	}{
		{"latentlm", o, 0},
		{"vq", vqOptions(o, 1024), 1024},
		{"transfusion", transfusionOptions(o), 0},
	} {
		for _, depth := range []int{1, 3, 7} {
			a := withDepth(arch.o, depth)
			a.MatchParams = paramsOf(a, arch.codes)
			if got, _ := depthForParams(a, arch.codes); got != depth {
				t.Errorf("%s: the count of depth %d matched depth %d", arch.name, depth, got)
			}
		}
		a := arch.o
		a.MatchParams = latent
		depth, params := depthForParams(a, arch.codes)
		if off := params - latent; 2*max(off, -off) > block {
			t.Errorf("%s matched to LatentLM's %d parameters: depth %d has %d, %+d, over half a block (%d)", arch.name, latent, depth, params, off, block)
		}
		t.Logf("%s: depth %d, %d parameters against LatentLM's %d (%+.1f%%)", arch.name, depth, params, latent, 100*(float64(params)/float64(latent)-1))
	}
}

func withDepth(o MultimodalOptions, depth int) MultimodalOptions {
	o.Model.Depth = depth
	return o
}

func vqOptions(o MultimodalOptions, codes int) MultimodalOptions {
	o.Arch = multimodal.VQ
	o.Model.Vocab.Extra += codes
	o.Model.Latent = 1
	return o
}

func transfusionOptions(o MultimodalOptions) MultimodalOptions {
	o.Transfusion.On = true
	return o
}

// A resumed multimodal run named by --out keeps its own options (batch,
// noise draws, mixture, caption dropout, diffusion weight) whatever the
// resuming command gives, and ends with the weights of the run that was
// not stopped.
func TestMultimodalResumeKeepsOptions(t *testing.T) {
	base := tinyMultimodal(t, 4)
	base.SampleEvery, base.EMA = 0, 0
	resumeIsExact(t, "a multimodal run resumed with other options", t.TempDir(), func(out string, steps int64, resume bool) error {
		o := base
		o.Out, o.Steps = out, steps
		o.Batch, o.BatchMul, o.CaptionDropout, o.DiffusionWeight = 6, 2, 0.3, 2
		o.Mix = Mixture{Text: 1, T2I: 2, I2T: 1, VQA: 0}
		if resume {
			d := DefaultMultimodalOptions()
			o.Batch, o.BatchMul, o.CaptionDropout, o.DiffusionWeight, o.Mix = base.Batch, d.BatchMul, d.CaptionDropout, d.DiffusionWeight, d.Mix
			o.Resume = true
		}
		_, err := Multimodal(context.Background(), o)
		return err
	})
}
