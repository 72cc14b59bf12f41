package vae

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/data"
	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/train"
)

func tinyConfig(kind string) Config {
	c := DefaultConfig()
	if err := c.Kind.Set(kind); err != nil {
		panic(err)
	}
	c.Dim, c.Depth, c.Heads = 32, 1, 2
	return c
}

func mnistImages(t *testing.T, n int) [][]float32 {
	t.Helper()
	d, err := data.Load("mnist", "test")
	if err != nil {
		t.Fatal(err)
	}
	imgs := make([][]float32, n)
	for i := range imgs {
		imgs[i] = make([]float32, 784)
		d.Float32(i, imgs[i])
	}
	return imgs
}

func newModel(t *testing.T, cfg Config) *Model {
	t.Helper()
	store := model.NewStore()
	if err := nn.Init(store, cfg.Specs(), 1, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	if err := store.SetRNGStateFromSeed(3); err != nil {
		t.Fatal(err)
	}
	m, err := NewModel(testutil.Backend(t, ""), cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRoundTripShapes: 28×28 images → 49 latents of C channels → 28×28.
func TestRoundTripShapes(t *testing.T) {
	for _, kind := range []string{"sigma", "vae", "ae"} {
		m := newModel(t, tinyConfig(kind))
		z, err := m.Encode(mnistImages(t, 3), true)
		if err != nil {
			t.Fatal(err)
		}
		if len(z) != 3 || len(z[0]) != 49*8 {
			t.Fatalf("%s: latents %d×%d, want 3×%d", kind, len(z), len(z[0]), 49*8)
		}
		img, err := m.Decode(z)
		if err != nil {
			t.Fatal(err)
		}
		if len(img) != 3 || len(img[0]) != 784 {
			t.Fatalf("%s: decoded %d×%d", kind, len(img), len(img[0]))
		}
	}
}

// TestSigmaNoise: z − μ has, per example, std σ_b = |N(0,1)|·C_σ, so over
// many examples E[(z−μ)²] = C_σ² (since E[n²] = 1) and the per-example std
// follows the half-normal law: its mean is C_σ·√(2/π).
func TestSigmaNoise(t *testing.T) {
	cfg := tinyConfig("sigma")
	m := newModel(t, cfg)
	imgs := mnistImages(t, 400)
	mu, err := m.Encode(imgs, false)
	if err != nil {
		t.Fatal(err)
	}
	z, err := m.Encode(imgs, true)
	if err != nil {
		t.Fatal(err)
	}
	var sq, stdSum float64
	for i := range z {
		var s float64
		for k := range z[i] {
			d := float64(z[i][k]-mu[i][k]) * float64(m.Std[k%cfg.Channels]) // back to raw units
			s += d * d
		}
		sq += s
		stdSum += math.Sqrt(s / float64(len(z[i])))
	}
	n := float64(len(z) * len(z[0]))
	meanSq, meanStd := sq/n, stdSum/float64(len(z))
	wantSq, wantStd := cfg.CSigma*cfg.CSigma, cfg.CSigma*math.Sqrt(2/math.Pi)
	t.Logf("E[(z−μ)²] = %.4f (want %.4f), mean per-example std %.4f (want %.4f)", meanSq, wantSq, meanStd, wantStd)
	// 400 examples: standard errors of about 7% and 3% of the targets.
	if math.Abs(meanSq-wantSq) > 0.2*wantSq || math.Abs(meanStd-wantStd) > 0.1*wantStd {
		t.Errorf("σ noise statistics off")
	}
}

// TestDeterministicReturnsMu: the ae kind, and any kind without sampling,
// returns μ exactly, twice the same.
func TestDeterministicReturnsMu(t *testing.T) {
	for _, kind := range []string{"ae", "sigma"} {
		m := newModel(t, tinyConfig(kind))
		imgs := mnistImages(t, 4)
		a, _ := m.Encode(imgs, false)
		b, _ := m.Encode(imgs, kind == "ae") // ae ignores sampling
		for i := range a {
			for k := range a[i] {
				if a[i][k] != b[i][k] {
					t.Fatalf("%s: deterministic encodings differ", kind)
				}
			}
		}
	}
}

func TestStatsRoundTripThroughCheckpoint(t *testing.T) {
	cfg := tinyConfig("sigma")
	m := newModel(t, cfg)
	// 2000 images: σ_b is one |N(0,1)| draw per example, so with a few
	// hundred the latent variance of two independent draws differs by ~20%.
	imgs := mnistImages(t, 2000)
	if err := m.ComputeStats(func(yield func([][]float32) error) error { return yield(imgs) }); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "vae")
	if err := m.Save(dir, nil, false); err != nil {
		t.Fatal(err)
	}
	back, err := Load(testutil.Backend(t, ""), dir)
	if err != nil {
		t.Fatal(err)
	}
	for k := range m.Mean {
		if back.Mean[k] != m.Mean[k] || back.Std[k] != m.Std[k] || m.Std[k] <= 0 {
			t.Fatalf("channel %d: saved %v/%v, loaded %v/%v", k, m.Mean[k], m.Std[k], back.Mean[k], back.Std[k])
		}
	}
	// Normalised latents of the data have mean ≈ 0 and std ≈ 1 per channel.
	z, _ := back.Encode(imgs, true)
	for c := range cfg.Channels {
		var s, sq float64
		var n float64
		for i := range z {
			for k := c; k < len(z[i]); k += cfg.Channels {
				s += float64(z[i][k])
				sq += float64(z[i][k]) * float64(z[i][k])
				n++
			}
		}
		mean := s / n
		std := math.Sqrt(sq/n - mean*mean)
		if math.Abs(mean) > 0.15 || math.Abs(std-1) > 0.15 {
			t.Errorf("channel %d: normalised mean %.3f std %.3f", c, mean, std)
		}
	}
}

func TestTrainingReducesLoss(t *testing.T) {
	cfg := tinyConfig("sigma")
	store := model.NewStore()
	if err := nn.Init(store, cfg.Specs(), 1, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	store.SetRNGStateFromSeed(1)
	tc := train.DefaultConfig()
	tc.LR, tc.WarmupSteps, tc.TotalSteps = 3e-3, 5, 40
	tr, err := train.New(testutil.Backend(t, ""), store, tc, func(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
		return []*Node{cfg.Loss(scope, w, in[0]).Total}
	})
	if err != nil {
		t.Fatal(err)
	}
	imgs := mnistImages(t, 256)
	var flat []float32
	for _, im := range imgs {
		flat = append(flat, im...)
	}
	testutil.ExpectLossFalls(t, 40, 4, 0.6, func(step int) float64 {
		b := (step % 8) * 32
		res, err := tr.Step(tensors.FromFlatDataAndDimensions(flat[b*784:(b+32)*784], 32, 28, 28))
		if err != nil {
			t.Fatal(err)
		}
		return res.Loss
	})
}

func TestBadInputs(t *testing.T) {
	m := newModel(t, tinyConfig("sigma"))
	if _, err := m.Encode([][]float32{make([]float32, 100)}, false); err == nil || !strings.Contains(err.Error(), "pixels") {
		t.Errorf("wrong image size: %v", err)
	}
	if _, err := m.Decode([][]float32{make([]float32, 7)}); err == nil || !strings.Contains(err.Error(), "values") {
		t.Errorf("wrong latent size: %v", err)
	}
	if _, err := Load(testutil.Backend(t, ""), t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a checkpoint") {
		t.Errorf("empty folder: %v", err)
	}
	bad := tinyConfig("sigma")
	bad.Kind = VQ + 1
	if err := bad.Validate(); err == nil {
		t.Error("unknown kind accepted")
	}
	var v Variant
	if err := v.UnmarshalText([]byte("vqvae")); err == nil || !strings.Contains(err.Error(), "want sigma, vae, ae or vq") {
		t.Errorf("kind vqvae: %v", err)
	}
	for _, k := range []Variant{Sigma, VAE, AE, VQ} {
		var back Variant
		text, err := k.MarshalText()
		if err != nil || back.UnmarshalText(text) != nil || back != k {
			t.Errorf("%v does not survive its text form %q (%v)", k, text, err)
		}
	}
}
