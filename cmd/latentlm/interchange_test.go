package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/safetensors"
)

// tinyPublicCheckpoint saves a small public-layout model (random weights)
// for the shipped MNIST tokenizer's latents (8 channels, 7×7 items), with
// no tokenizer record, and returns its folder.
func tinyPublicCheckpoint(t *testing.T, dir string, edit func(*lm.Config)) string {
	t.Helper()
	cfg := lm.Config{Dim: 32, Depth: 1, Heads: 2, KVHeads: 1, MLPRatio: 4, HeadDepth: 1, HeadDim: 32,
		Latent: 8, MaxLen: 50, Target: diffusion.Epsilon, Vocab: lm.Vocab{Classes: 10}, Layout: lm.LayoutPublic}
	if edit != nil {
		edit(&cfg)
	}
	specs := cfg.Specs()
	for i := range specs {
		specs[i].Std = 0.05 // the zero-initialised adaLN weights too, so sampling exercises every path
	}
	store := model.NewStore()
	if err := nn.Init(store, specs, 7, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	if err := lm.Save(dir, cfg, store, lm.Tokenizer{}, nil); err != nil {
		t.Fatal(err)
	}
	return dir
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestExportImportPyTorch: export writes exactly the public model's state
// dict (names, shapes, format=pt), import makes a checkpoint of it that
// samples the same images as the original, and export → import → export is
// bit-exact.
func TestExportImportPyTorch(t *testing.T) {
	tmp := t.TempDir()
	root := repoRoot(t)
	orig := tinyPublicCheckpoint(t, filepath.Join(tmp, "orig"), nil)
	first, second := filepath.Join(tmp, "first.safetensors"), filepath.Join(tmp, "second.safetensors")
	imported := filepath.Join(tmp, "imported")

	if code, _, stderr := cli(t, root, "export", "--format", "pytorch", "--model", orig, "--out", first); code != 0 {
		t.Fatalf("export: %s", stderr)
	}
	f, err := safetensors.Load(first)
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["format"] != "pt" {
		t.Errorf("metadata %v, want format pt", f.Metadata)
	}
	cfg, _, _, err := lm.Load(orig)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Check(cfg.PyTorchSpecs()); err != nil {
		t.Fatalf("exported names or shapes are not the public model's: %v", err)
	}
	if x, _ := f.Get(lm.PyTorchLabelTable); x.Shape[0] != cfg.Vocab.Classes+1 {
		t.Errorf("label table of %d rows, want classes+1 = %d", x.Shape[0], cfg.Vocab.Classes+1)
	}
	for _, name := range []string{"lm_head.weight", "tok_embeddings.weight"} {
		if _, ok := f.Get(name); ok {
			t.Errorf("export holds %s, which the public model lacks", name)
		}
	}

	code, _, stderr := cli(t, root, "import", "--format", "pytorch", first, "--config", filepath.Join(orig, "config.json"), "--out", imported)
	if code != 0 {
		t.Fatalf("import: %s", stderr)
	}
	if code, _, stderr := cli(t, root, "export", "--format", "pytorch", "--model", imported, "--out", second); code != 0 {
		t.Fatalf("second export: %s", stderr)
	}
	if a, b := sha256File(t, first), sha256File(t, second); a != b {
		t.Fatalf("export → import → export changed the file: sha256 %s, then %s", a, b)
	}

	// The imported model records no tokenizer: sampling needs --vae, and
	// then draws what the original draws.
	code, _, stderr = cli(t, root, "sample", "--model", imported, "--class", "3", "--n", "1", "--out", filepath.Join(tmp, "x.png"))
	expectOneLineError(t, code, stderr, "records no tokenizer")
	vaeDir := filepath.Join(root, "weights", "vae-mnist")
	for _, m := range []string{orig, imported} {
		if code, _, stderr := cli(t, root, "sample", "--model", m, "--vae", vaeDir, "--class", "3", "--n", "2", "--steps", "4", "--out", m+".png"); code != 0 {
			t.Fatalf("sample %s: %s", m, stderr)
		}
	}
	if a, b := sha256File(t, orig+".png"), sha256File(t, imported+".png"); a != b {
		t.Error("the imported model samples other images than the original")
	}

	// With --vae the tokenizer is recorded, and sampling finds it.
	withTok := filepath.Join(tmp, "with-tok")
	if code, _, stderr := cli(t, root, "import", "--format", "pytorch", "--vae", vaeDir, "--config", filepath.Join(orig, "config.json"), "--out", withTok, first); code != 0 {
		t.Fatalf("import --vae: %s", stderr)
	}
	if code, _, stderr := cli(t, root, "sample", "--model", withTok, "--class", "3", "--n", "2", "--steps", "4", "--out", withTok+".png"); code != 0 {
		t.Fatalf("sample of an import with a tokenizer: %s", stderr)
	}
	if a, b := sha256File(t, orig+".png"), sha256File(t, withTok+".png"); a != b {
		t.Error("the import with a tokenizer samples other images than the original")
	}

	// A bare config object works as --config too.
	bare := filepath.Join(tmp, "bare.json")
	if err := os.WriteFile(bare, cfg.JSON(), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := cli(t, root, "import", "--format", "pytorch", first, "--config", bare, "--out", filepath.Join(tmp, "bare")); code != 0 {
		t.Fatalf("import with a bare config: %s", stderr)
	}
}

// TestExportImportRefusals: what the public model cannot reproduce, and
// files that are not its weights, are one-line errors that write nothing.
func TestExportImportRefusals(t *testing.T) {
	tmp := t.TempDir()
	root := repoRoot(t)
	out := filepath.Join(tmp, "out.safetensors")
	dit := filepath.Join(tmp, "dit")
	if err := os.MkdirAll(dit, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dit, "config.json"), []byte(`{"kind": "dit", "config": {}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	good := tinyPublicCheckpoint(t, filepath.Join(tmp, "good"), nil)
	exported := filepath.Join(tmp, "good.safetensors")
	if code, _, stderr := cli(t, root, "export", "--model", good, "--out", exported); code != 0 {
		t.Fatal(stderr)
	}
	short := tinyPublicCheckpoint(t, filepath.Join(tmp, "short"), func(c *lm.Config) { c.MaxLen = 20 })
	otherDim := tinyPublicCheckpoint(t, filepath.Join(tmp, "dim64"), func(c *lm.Config) { c.Dim, c.HeadDim = 64, 64 })
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"bol", []string{"export", "--model", filepath.Join(root, "weights", "latentlm-mnist"), "--out", out}, "layout bol"},
		{"head_dim", []string{"export", "--model", tinyPublicCheckpoint(t, filepath.Join(tmp, "hw"), func(c *lm.Config) { c.HeadDim = 48 }), "--out", out}, "head_dim 48 ≠ dim 32"},
		{"target_v", []string{"export", "--model", tinyPublicCheckpoint(t, filepath.Join(tmp, "v"), func(c *lm.Config) { c.Target = diffusion.Velocity }), "--out", out}, "target v"},
		{"extra_tokens", []string{"export", "--model", tinyPublicCheckpoint(t, filepath.Join(tmp, "extra"), func(c *lm.Config) { c.Vocab.Extra = 5 }), "--out", out}, "5 extra tokens"},
		{"swiglu_floor", []string{"export", "--model", tinyPublicCheckpoint(t, filepath.Join(tmp, "narrow"), func(c *lm.Config) { c.MLPRatio = 2 }), "--out", out}, "public SwiGLU would have 0 hidden units"},
		{"dit", []string{"export", "--model", dit, "--out", out}, `holds a "dit" model`},
		{"format", []string{"export", "--format", "onnx", "--model", good, "--out", out}, `--format "onnx"`},
		{"out_in_model", []string{"export", "--model", good, "--out", filepath.Join(good, "x.safetensors")}, "inside the input folder"},
		{"import_bol_config", []string{"import", exported, "--config", filepath.Join(root, "weights", "latentlm-mnist", "config.json"), "--out", filepath.Join(tmp, "i1")}, "layout bol"},
		{"import_wrong_shapes", []string{"import", exported, "--config", filepath.Join(otherDim, "config.json"), "--out", filepath.Join(tmp, "i2")}, "not the public model of this config"},
		{"import_ours", []string{"import", filepath.Join(good, "model.safetensors"), "--config", filepath.Join(good, "config.json"), "--out", filepath.Join(tmp, "i3")}, "lm_head.weight: unexpected tensor"},
		{"import_dit_config", []string{"import", exported, "--config", filepath.Join(dit, "config.json"), "--out", filepath.Join(tmp, "i4")}, `describes a "dit" model`},
		{"import_out_exists", []string{"import", exported, "--config", filepath.Join(good, "config.json"), "--out", good}, "not empty"},
		{"import_two_files", []string{"import", exported, exported, "--config", filepath.Join(good, "config.json"), "--out", filepath.Join(tmp, "i5")}, "want one safetensors file"},
		{"import_vae_fits", []string{"import", exported, "--config", filepath.Join(good, "config.json"), "--vae", filepath.Join(root, "weights", "vae-mnist"), "--out", filepath.Join(tmp, "i6")}, ""},
		{"import_vae_misfit", []string{"import", exported, "--config", filepath.Join(short, "config.json"), "--vae", filepath.Join(root, "weights", "vae-mnist"), "--out", filepath.Join(tmp, "i7")}, "does not fit the model"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := cli(t, root, c.args...)
			if c.want == "" { // a control: this one must work
				if code != 0 {
					t.Fatalf("refused: %s", stderr)
				}
				return
			}
			expectOneLineError(t, code, stderr, c.want)
		})
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a refused export wrote its output")
	}
	for _, d := range []string{"i1", "i2", "i3", "i4", "i5", "i7"} {
		if entries, err := os.ReadDir(filepath.Join(tmp, d)); err == nil && len(entries) > 0 {
			t.Errorf("a refused import wrote %s", d)
		}
	}
}
