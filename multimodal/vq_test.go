package multimodal

import (
	"context"
	"encoding/json"
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
	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/text"
	"github.com/latentlm/latentlm/train"
	"github.com/latentlm/latentlm/vae"
)

const tinyCodes = 16

// tinyVQConfig is a small VQ-MLLM over tok with tinyCodes image codes.
func tinyVQConfig(t *testing.T, tok *text.Tokenizer) Config {
	t.Helper()
	c := Config{LM: lm.Config{Dim: 32, Depth: 2, Heads: 4, KVHeads: 2, MLPRatio: 2, HeadDepth: 2, HeadDim: 24,
		Latent: 1, MaxLen: 40, Target: diffusion.Velocity, Vocab: lm.Vocab{Extra: tok.Size() + tinyCodes}}, Arch: VQ, Codes: tinyCodes}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestConfigJSON: a LatentLM config is written exactly as its lm.Config
// (every existing checkpoint reads and writes unchanged) and reads back
// as arch latentlm even over a vq config; a VQ-MLLM's records its arch and
// codes, and its weights have no diffusion head.
func TestConfigJSON(t *testing.T) {
	tok := tinyTokenizer(t)
	vq := tinyVQConfig(t, tok)
	plain := Config{LM: vq.LM}
	plain.LM.Vocab.Extra, plain.LM.Latent = tok.Size(), 4
	if got, want := string(plain.JSON()), string(plain.LM.JSON()); got != want {
		t.Errorf("latentlm config.json differs from lm's:\n%s\nwant\n%s", got, want)
	}
	b := vq.JSON()
	if !strings.Contains(string(b), `"arch": "vq"`) || !strings.Contains(string(b), `"codes": 16`) {
		t.Errorf("vq config.json lacks its arch or codes:\n%s", b)
	}
	var back Config
	if err := json.Unmarshal(b, &back); err != nil || back != vq {
		t.Fatalf("vq round trip: %+v, %v; want %+v", back, err, vq)
	}
	if err := json.Unmarshal(plain.JSON(), &back); err != nil || back != plain {
		t.Fatalf("a latentlm config read over a vq one: %+v, %v", back, err)
	}
	names := map[string]bool{}
	for _, s := range vq.Specs() {
		names[s.Name] = true
	}
	if !names["lm_head.weight"] || !names["tok_embeddings.weight"] || names["final_layer.linear.weight"] || names["condition_layer.linear.weight"] || names["diffusion_blocks.0.mlp.fc1.weight"] {
		t.Errorf("vq weights: %v", names)
	}
	if len(vq.Specs()) >= len(vq.LM.Specs()) {
		t.Error("the vq model has the diffusion head's weights")
	}
	if vq.ForwardFLOPs(2, 40, 4) >= vq.LM.ForwardFLOPs(2, 40, 4) {
		t.Error("vq FLOPs count the diffusion head")
	}
	bad := plain
	bad.Codes = 3
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "only arch vq") {
		t.Errorf("latentlm with codes: %v", err)
	}
	if err := new(Arch).Set("diffusion"); err == nil {
		t.Error("unknown arch accepted")
	}
}

// TestGuideAndSampleCode: guidance on logits is uncond + s·(cond − uncond)
// (s = 1 the conditional logits, s = 0 the unconditional ones) and can
// change the likeliest code; codes are drawn among the code ids only
// (never a text id, however likely), top-k 1 is the likeliest code and
// top-k 2 draws both of the two best and nothing else.
func TestGuideAndSampleCode(t *testing.T) {
	cond, uncond := []float32{1, 2, -1}, []float32{0, 3, 2}
	for _, c := range []struct {
		s    float64
		want []float32
	}{{1, cond}, {0, uncond}, {4, []float32{4, -1, -10}}} {
		if got := Guide(cond, uncond, c.s); !slices.Equal(got, c.want) {
			t.Errorf("Guide at %v = %v, want %v", c.s, got, c.want)
		}
	}
	// Ids: 0 null, 1 BOL, 2 EOL, 3…4 text, 5…7 codes 0…2.
	f := Format{Vocab: lm.Vocab{Extra: 5}, Codes: 3}
	if f.Code(0) != 5 {
		t.Fatalf("code 0 is id %d, want 5", f.Code(0))
	}
	if _, ok := f.TextOf(5); ok {
		t.Error("a code reads as text")
	}
	if k, ok := f.CodeOf(7); !ok || k != 2 {
		t.Errorf("CodeOf(7) = %d %v", k, ok)
	}
	rng := rand.New(rand.NewPCG(2, 3))
	full := func(codes []float32) []float32 { return append([]float32{0, 50, 50, 50, 50}, codes...) }
	if k := SampleCode(full(cond), f, 1, 1, rng); k != 1 {
		t.Errorf("top-1 of the conditional logits: code %d, want 1", k)
	}
	if k := SampleCode(full(Guide(cond, uncond, 4)), f, 1, 1, rng); k != 0 {
		t.Errorf("top-1 under guidance 4: code %d, want 0", k)
	}
	seen := map[int]int{}
	for range 400 {
		seen[SampleCode(full([]float32{1, 1.5, -20}), f, 1, 2, rng)]++
	}
	if len(seen) != 2 || seen[0] == 0 || seen[1] == 0 || seen[0] > seen[1] {
		t.Errorf("top-2 draws %v: want codes 0 and 1, 1 more often", seen)
	}
}

// codeRow is <|endoftext|> caption <BOL> codes <EOL> <|endoftext|> (t2i)
// or <|endoftext|> <BOL> codes <EOL> caption <|endoftext|> (i2t).
func codeRow(f Format, caption []int, codes []int32, t2i bool) Row {
	var r Row
	r.EOT(f)
	if t2i {
		r.Text(f, caption)
		r.ImageCodes(f, codes)
	} else {
		r.ImageCodes(f, codes)
		r.Text(f, caption)
	}
	r.EOT(f)
	return r
}

// trainVQ trains a tiny VQ-MLLM on rows for steps steps and returns its
// store and the cross-entropy of every step.
func trainVQ(t *testing.T, cfg Config, f Format, rows []Row, steps int) (*model.Store, []float64) {
	t.Helper()
	bt, err := f.Pack(rows, cfg.LM.MaxLen)
	if err != nil {
		t.Fatal(err)
	}
	if bt.LatentItems != 0 {
		t.Fatalf("a VQ-MLLM batch holds %d latents", bt.LatentItems)
	}
	store := model.NewStore()
	if err := nn.Init(store, cfg.Specs(), 1, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	// No weight EMA: the checkpoint (which holds the EMA when there is
	// one) must be the trained weights themselves.
	tc := train.DefaultConfig()
	tc.LR, tc.WarmupSteps, tc.TotalSteps, tc.MinLR, tc.EMADecay = 3e-3, 5, steps, 3e-4, 0
	tr, err := train.New(testutil.Backend(t, ""), store, tc, func(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
		return CodeLosses(w, cfg.LM, in[0], in[1], nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	in := []any{tensors.FromFlatDataAndDimensions(bt.Ids, bt.Rows, bt.Len), tensors.FromFlatDataAndDimensions(bt.Valid, bt.Rows, bt.Len)}
	var ce []float64
	for range steps {
		res, err := tr.Step(in...)
		if err != nil {
			t.Fatal(err)
		}
		ce = append(ce, res.Metrics[0])
	}
	return store, ce
}

// TestVQTinyTrainingLowersLoss: a VQ-MLLM's cross-entropy, over text and
// image codes alike, falls to a fraction of its start on a fixed batch.
func TestVQTinyTrainingLowersLoss(t *testing.T) {
	tok := tinyTokenizer(t)
	cfg := tinyVQConfig(t, tok)
	f := Format{Vocab: cfg.LM.Vocab, EOT: tok.EOT(), Items: 6, Codes: tinyCodes}
	var rows []Row
	for i := range 8 {
		codes := []int32{int32(i % 16), 3, int32(7 * i % 16), 1, 0, int32((5 + i) % 16)}
		rows = append(rows, codeRow(f, tok.Encode(corpus[i%2]), codes, i%3 != 0))
	}
	_, ce := trainVQ(t, cfg, f, rows, 60)
	testutil.ExpectFalls(t, "cross-entropy", ce, 3, 0.5)
}

// TestVQRoundTrip: a tiny VQ-MLLM trained to draw two images' codes from
// their captions and to caption them is saved with its vq tokenizer,
// loaded through Load (which reads its arch), and then draws, greedily
// (top-k 1), exactly the trained codes' image for each caption, and
// captions the two images with their captions; Ask and Complete run, and
// a σ-VAE given as its tokenizer is refused.
func TestVQRoundTrip(t *testing.T) {
	b := testutil.Backend(t, "")
	root := t.TempDir()
	// A tiny vq tokenizer of 8×8 images: 4 codes per image.
	vc := vae.Config{Kind: vae.VQ, ImageSize: 8, Patch: 4, Channels: 4, Dim: 16, Depth: 1, Heads: 2, MLPRatio: 2, Codebook: tinyCodes}
	vstore := model.NewStore()
	if err := nn.Init(vstore, vc.Specs(), 5, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	img, err := vae.NewModel(b, vc, vstore)
	if err != nil {
		t.Fatal(err)
	}
	vdir := filepath.Join(root, "vq")
	if err := img.Save(vdir, nil, false); err != nil {
		t.Fatal(err)
	}
	// Two images with different codes.
	var imgs [][]float32
	var codes [][]int32
	for k := 0; len(imgs) < 2 && k < 20; k++ {
		px := make([]float32, vc.Pixels())
		for i := range px {
			px[i] = float32((i*(k+1))%7) / 6
		}
		c, err := img.Codes([][]float32{px})
		if err != nil {
			t.Fatal(err)
		}
		if len(codes) == 0 || !slices.Equal(codes[0], c[0]) {
			imgs, codes = append(imgs, px), append(codes, c[0])
		}
	}
	img.Close()
	if len(imgs) < 2 {
		t.Fatal("no two images with different codes")
	}
	tok := tinyTokenizer(t)
	cfg := tinyVQConfig(t, tok)
	f := Format{Vocab: cfg.LM.Vocab, EOT: tok.EOT(), Items: vc.Items(), Codes: tinyCodes}
	var rows []Row
	for range 2 {
		for i := range 2 {
			rows = append(rows, codeRow(f, tok.Encode(corpus[i]), codes[i], true), codeRow(f, tok.Encode(corpus[i]), codes[i], false))
		}
	}
	store, ce := trainVQ(t, cfg, f, rows, 100)
	t.Logf("cross-entropy %.3f → %.3f", ce[0], ce[len(ce)-1])
	sum, err := checkpoint.FileSHA256(filepath.Join(vdir, checkpoint.WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "mm")
	rec := lm.Tokenizer{Path: vdir, SHA256: sum, Kind: "vq", Items: vc.Items(), Channels: vc.Channels}
	if err := SaveConfig(dir, cfg, store, rec, tok, nil); err != nil {
		t.Fatal(err)
	}
	opts := DefaultOptions()
	opts.CFG, opts.TopK, opts.TextTemperature = 1, 1, 0
	m, err := Load(b, dir, "", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Arch != VQ || m.Format.Codes != tinyCodes || m.Text.Size() != tok.Size() {
		t.Fatalf("loaded arch %v, %d codes, %d text ids", m.Arch, m.Format.Codes, m.Text.Size())
	}
	ctx := context.Background()
	for i := range 2 {
		got, err := m.Images(ctx, corpus[i], 2)
		if err != nil {
			t.Fatal(err)
		}
		want, err := m.decodeCodes([][]int32{codes[i]})
		if err != nil {
			t.Fatal(err)
		}
		for j := range got {
			if d := maxDiff(got[j], want[0]); d > 1e-6 || len(got[j]) != vc.Pixels() {
				t.Errorf("caption %d image %d: %d pixels, %g from the trained codes' image", i, j, len(got[j]), d)
			}
		}
	}
	caps, err := m.Caption(ctx, imgs)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range caps {
		if c != corpus[i] {
			t.Errorf("caption of image %d: %q, want %q", i, c, corpus[i])
		}
	}
	if _, err := m.Ask(ctx, imgs, "which digit is on the left?"); err != nil {
		t.Fatal(err)
	}
	var pieces int
	if err := m.Complete(ctx, "the digit", func(Piece) error { pieces++; return nil }); err != nil || pieces == 0 {
		t.Fatalf("Complete: %d pieces, %v", pieces, err)
	}
	// The model's vq tokenizer is required: a σ-VAE of the same grid is not it.
	sc := vc
	sc.Kind, sc.Codebook = vae.Sigma, 0
	sstore := model.NewStore()
	if err := nn.Init(sstore, sc.Specs(), 5, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	sm, err := vae.NewModel(b, sc, sstore)
	if err != nil {
		t.Fatal(err)
	}
	sdir := filepath.Join(root, "sigma")
	if err := sm.Save(sdir, nil, false); err != nil {
		t.Fatal(err)
	}
	sm.Close()
	// Saved without a tokenizer record, the model takes the one it is
	// given, which must still be a vq tokenizer of its codebook.
	bare := filepath.Join(root, "bare")
	if err := SaveConfig(bare, cfg, store, lm.Tokenizer{}, tok, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(b, bare, sdir, opts); err == nil || !strings.Contains(err.Error(), "needs a vq tokenizer of") {
		t.Errorf("a σ-VAE as a VQ-MLLM's tokenizer: %v", err)
	}
}
