package main

import (
	"bytes"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/safetensors"
)

// The files of testdata/pytorch that scripts/pytorch/latentlm_reference.py
// --public reads and writes (see its docstring):
//
//	public_tiny.safetensors      `latentlm export --format pytorch` of a tiny
//	                             public-layout ε model we trained (60 steps)
//	public_tiny_config.json      its config.json
//	public_init.safetensors      a state dict made by the PyTorch restatement
//	                             of the public Transformer (torch seed 0)
//	public_tiny_reference.*      both models' conditions and head outputs,
//	                             computed in PyTorch in the public layout
const (
	pubTiny   = "testdata/pytorch/public_tiny.safetensors"
	pubInit   = "testdata/pytorch/public_init.safetensors"
	pubConfig = "testdata/pytorch/public_tiny_config.json"
	pubRef    = "testdata/pytorch/public_tiny_reference.safetensors"
)

func refFloats(t *testing.T, f *safetensors.File, name string) []float32 {
	t.Helper()
	x, ok := f.Get(name)
	if !ok {
		t.Fatalf("%s: no tensor %s", pubRef, name)
	}
	v, err := x.Float32()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// maxDiff is max|a−b| and max|b|.
func maxDiff(t *testing.T, a, b []float32) (float64, float64) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%d values, reference has %d", len(a), len(b))
	}
	d, m := 0.0, 0.0
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
		m = math.Max(m, math.Abs(float64(b[i])))
	}
	return d, m
}

// sameTensors checks that two safetensors files hold the same tensors
// (names, dtypes, shapes, bytes); their metadata may differ.
func sameTensors(t *testing.T, a, b string) {
	t.Helper()
	fa, err := safetensors.Load(a)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := safetensors.Load(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(fa.Tensors) != len(fb.Tensors) {
		t.Errorf("%s holds %d tensors, %s %d", a, len(fa.Tensors), b, len(fb.Tensors))
	}
	for _, x := range fa.Tensors {
		y, ok := fb.Get(x.Name)
		if !ok || x.DType != y.DType || !slices.Equal(x.Shape, y.Shape) || !bytes.Equal(x.Data, y.Data) {
			t.Errorf("%s: %s differs in %s", x.Name, a, b)
		}
	}
}

// TestPyTorchPublicAgreement: our export of a trained public-layout model
// (public_tiny) and a state dict produced by the PyTorch restatement of the
// public Transformer (public_init) both import with `latentlm import
// --format pytorch`, and the imported models give, in the public layout
// ([class] z₀ … z_{K−2} at positions 0 … K−1, our ClassItems, Backbone,
// Condition and Head), the conditions and diffusion-head outputs that the
// public modules compute in PyTorch from the same file, within 1e-4 of the
// largest value (float32 rounding). Importing and re-exporting gives the
// same tensors back bit for bit (and our export the same file).
func TestPyTorchPublicAgreement(t *testing.T) {
	root := repoRoot(t)
	tmp := t.TempDir()
	ref, err := safetensors.Load(filepath.Join(root, pubRef))
	if err != nil {
		t.Fatal(err)
	}
	b := testutil.Backend(t, "")
	labelsT, _ := ref.Get("public.labels")
	labels, err := labelsT.Int32()
	if err != nil {
		t.Fatal(err)
	}
	latents := refFloats(t, ref, "public.latents")
	xt, ht := refFloats(t, ref, "public.head_xt"), refFloats(t, ref, "public.head_t")

	for _, c := range []struct{ name, file string }{{"tiny", pubTiny}, {"init", pubInit}} {
		t.Run(c.name, func(t *testing.T) {
			src := filepath.Join(root, c.file)
			dir := filepath.Join(tmp, c.name)
			if code, _, stderr := cli(t, root, "import", "--format", "pytorch", src, "--config", filepath.Join(root, pubConfig), "--out", dir); code != 0 {
				t.Fatalf("import %s: exit %d: %s", c.file, code, stderr)
			}
			back := filepath.Join(tmp, c.name+".safetensors")
			if code, _, stderr := cli(t, root, "export", "--format", "pytorch", "--model", dir, "--out", back); code != 0 {
				t.Fatalf("export of the import: exit %d: %s", code, stderr)
			}
			sameTensors(t, src, back)
			if c.name == "tiny" { // our own export: the file itself comes back
				if a, b := sha256File(t, src), sha256File(t, back); a != b {
					t.Errorf("import → export changed %s: sha256 %s, then %s", c.file, a, b)
				}
			}

			cfg, store, _, err := lm.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Layout != lm.LayoutPublic {
				t.Fatalf("imported layout %s", cfg.Layout)
			}
			n := len(labels)
			K := len(latents) / (n * cfg.Latent)
			run := func(cond bool) []float32 {
				out, err := model.CallOnce(b, store, func(scope *model.Scope, lab, lat *graph.Node) *graph.Node {
					w := nn.WeightsOf(scope.Store(), lab.Graph())
					h, _ := cfg.Backbone(w, cfg.ClassItems(lab, lat), lm.Positions(lab.Graph(), dtypes.Float32, 0, K), nil)
					if cond {
						return cfg.Condition(w, h)
					}
					return h
				}, tensors.FromFlatDataAndDimensions(labels, n), tensors.FromFlatDataAndDimensions(latents, n, K, cfg.Latent))
				if err != nil {
					t.Fatal(err)
				}
				return tensors.MustCopyFlatData[float32](out)
			}
			dh, mh := maxDiff(t, run(false), refFloats(t, ref, c.name+".hidden_normed"))
			dc, mc := maxDiff(t, run(true), refFloats(t, ref, c.name+".conditions"))
			t.Logf("public layout, %d positions: hidden_normed max|diff| %.3g (max %.3g), conditions max|diff| %.3g (max %.3g)", K, dh, mh, dc, mc)
			if dh > 1e-4*mh || dc > 1e-4*mc {
				t.Errorf("backbone differs from the public code: hidden %.3g of %.3g, conditions %.3g of %.3g (tolerance 1e-4 relative)", dh, mh, dc, mc)
			}

			hc := refFloats(t, ref, c.name+".head_cond")
			rows := len(ht)
			out, err := model.CallOnce(b, store, func(scope *model.Scope, x, tt, cc *graph.Node) *graph.Node {
				return cfg.Head(nn.WeightsOf(scope.Store(), x.Graph()), x, tt, cc)
			}, tensors.FromFlatDataAndDimensions(xt, rows, cfg.Latent), tensors.FromFlatDataAndDimensions(ht, rows), tensors.FromFlatDataAndDimensions(hc, rows, cfg.Dim))
			if err != nil {
				t.Fatal(err)
			}
			dho, mho := maxDiff(t, tensors.MustCopyFlatData[float32](out), refFloats(t, ref, c.name+".head_out"))
			t.Logf("diffusion head, t = %v: max|diff| %.3g (max %.3g)", ht, dho, mho)
			if dho > 1e-4*mho {
				t.Errorf("diffusion head differs from the public code: %.3g of %.3g (tolerance 1e-4 relative)", dho, mho)
			}
		})
	}
}

// TestPyTorchPublicCheckpointSamples: a checkpoint produced by the public
// code's module structure (public_init.safetensors, written by the PyTorch
// restatement, never touched by our code) imports with its config and
// `latentlm sample` draws images from it with the shipped MNIST tokenizer
// (8 latent channels, 7×7 = 49 items; max_len 50 holds [class] z₀ … z₄₇).
func TestPyTorchPublicCheckpointSamples(t *testing.T) {
	root := repoRoot(t)
	tmp := t.TempDir()
	vaeDir := filepath.Join(root, "weights", "vae-mnist")
	for _, c := range []struct{ name, file string }{{"init", pubInit}, {"tiny", pubTiny}} {
		dir := filepath.Join(tmp, c.name)
		if code, _, stderr := cli(t, root, "import", "--format", "pytorch", filepath.Join(root, c.file), "--config", filepath.Join(root, pubConfig), "--vae", vaeDir, "--out", dir); code != 0 {
			t.Fatalf("import %s: exit %d: %s", c.file, code, stderr)
		}
		out := filepath.Join(tmp, c.name+".png")
		code, stdout, stderr := cli(t, root, "sample", "--model", dir, "--vae", vaeDir, "--class", "3", "--n", "2", "--steps", "4", "--out", out)
		if code != 0 {
			t.Fatalf("sample of the imported %s: exit %d: %s %s", c.file, code, stdout, stderr)
		}
		img := testutil.DecodePNG(t, out)
		t.Logf("%s: imported and sampled, %v image", c.file, img.Bounds().Size())
	}
}
