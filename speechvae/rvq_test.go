package speechvae

import (
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/train"
	"github.com/latentlm/latentlm/vae"
)

// TestResidualQuantizeStages: each stage takes the nearest entry of its
// codebook to what the stages before it left (vae.Quantize), the sum of
// the entries is the quantised latent, and the straight-through estimator
// hands the decoder's gradient to z unchanged.
func TestResidualQuantizeStages(t *testing.T) {
	z := []float32{3.9, 0.2, 0.1, 3.2, -0.3, 0.4}              // three 2-d latents
	book0 := []float32{0, 0, 4, 0, 0, 4}                       // origin, x-axis, y-axis
	book1 := []float32{0, 0, 0.5, 0, -0.5, 0, 0, 0.5, 0, -0.5} // origin and half-steps
	weight := []float32{1, 2, 3, 4, 5, 6}
	e, err := NewExec(testutil.Backend(t, ""), func(g *Graph) []*Node {
		zn := Const(g, tensors.FromFlatDataAndDimensions(z, 1, 3, 2))
		q := ResidualQuantize(zn, []*Node{Const(g, tensors.FromFlatDataAndDimensions(book0, 3, 2)),
			Const(g, tensors.FromFlatDataAndDimensions(book1, 5, 2))})
		out := ReduceAllSum(Mul(vae.StraightThrough(zn, q.Sum), Const(g, tensors.FromFlatDataAndDimensions(weight, 1, 3, 2))))
		grad := Gradient(out, zn)[0]
		return []*Node{q.Codes[0], q.Codes[1], q.Sum, Sub(q.Inputs[1], q.Entries[1]), grad}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Finalize()
	out, err := e.Call()
	if err != nil {
		t.Fatal(err)
	}
	// (3.9, 0.2) → (4, 0), residual (−0.1, 0.2) → origin; (0.1, 3.2) → (0, 4),
	// residual (0.1, −0.8) → (0, −0.5); (−0.3, 0.4) → origin, then (0, 0.5).
	if got := tensors.MustCopyFlatData[int32](out[0]); !reflect.DeepEqual(got, []int32{1, 2, 0}) {
		t.Errorf("first-stage codes %v, want [1 2 0]", got)
	}
	if got := tensors.MustCopyFlatData[int32](out[1]); !reflect.DeepEqual(got, []int32{0, 4, 3}) {
		t.Errorf("second-stage codes %v, want [0 4 3]", got)
	}
	wantSum := []float32{4, 0, 0, 3.5, 0, 0.5}
	wantLeft := []float32{-0.1, 0.2, 0.1, -0.3, -0.3, -0.1}
	for i, got := range tensors.MustCopyFlatData[float32](out[2]) {
		if math.Abs(float64(got-wantSum[i])) > 1e-6 {
			t.Fatalf("quantised sum %v, want %v", tensors.MustCopyFlatData[float32](out[2]), wantSum)
		}
	}
	for i, got := range tensors.MustCopyFlatData[float32](out[3]) {
		if math.Abs(float64(got-wantLeft[i])) > 1e-6 {
			t.Fatalf("final residual %v, want %v", tensors.MustCopyFlatData[float32](out[3]), wantLeft)
		}
	}
	if got := tensors.MustCopyFlatData[float32](out[4]); !reflect.DeepEqual(got, weight) {
		t.Errorf("straight-through gradient %v, want the upstream gradient %v", got, weight)
	}
}

func tinyRVQ() Config { return tinyConfig(Spectrum, vae.Sigma).RVQ(4, 16) }

// trainRVQ trains a tiny rvq tokenizer on toy voices for steps steps and
// returns it with its per-step losses.
func trainRVQ(t *testing.T, steps int) (*Model, []float64, []train.Result) {
	t.Helper()
	c := tinyRVQ()
	l := 8
	var x []float32
	for _, f0 := range []float64{110, 160, 220, 300} {
		in, err := c.Inputs(voiced(l*c.SamplesPerLatent(), f0))
		if err != nil {
			t.Fatal(err)
		}
		x = append(x, in...)
	}
	store := model.NewStore()
	if err := nn.Init(store, c.Specs(), 1, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	if err := store.SetRNGStateFromSeed(1); err != nil {
		t.Fatal(err)
	}
	if err := c.PrepareTraining(store); err != nil {
		t.Fatal(err)
	}
	tc := train.DefaultConfig()
	tc.LR, tc.WarmupSteps, tc.TotalSteps = 3e-3, 5, steps
	tr, err := train.New(testutil.Backend(t, ""), store, tc, func(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
		l := c.Loss(scope, w, in[0], nil)
		return append([]*Node{l.Total}, c.TrainingOutputs(scope, l)...)
	})
	if err != nil {
		t.Fatal(err)
	}
	var losses []float64
	var results []train.Result
	for range steps {
		in := tensors.FromFlatDataAndDimensions(x, 4, l, c.InputWidth())
		r, err := tr.Step(in)
		if err != nil {
			t.Fatal(err)
		}
		losses, results = append(losses, r.Loss), append(results, r)
	}
	m, err := NewModel(testutil.Backend(t, ""), c, store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m, losses, results
}

// TestRVQCodec trains a tiny residual-VQ codec once and checks what the
// issue asks of it: the loss falls, the codebooks are seeded and used,
// the residual shrinks with every codebook, codes decode as the quantised
// latents do, and a saved codec loads back with the same codes.
func TestRVQCodec(t *testing.T) {
	m, losses, results := trainRVQ(t, 40)
	c := m.Config
	testutil.ExpectFalls(t, "loss", losses, 5, 0.8)
	t.Logf("step 1: %v restarts, last: ppl1 %.1f, mean ppl %.1f", results[0].Metrics[2], results[len(results)-1].Metrics[0], results[len(results)-1].Metrics[1])
	// Every code starts dead, so the first step restarts most of them.
	if r := results[0].Metrics[2]; r < float64(c.Codebooks*c.CodebookSize/2) {
		t.Errorf("first step restarted %v codes of %d: the codebooks were not seeded from the batch", r, c.Codebooks*c.CodebookSize)
	}
	if ppl := results[len(results)-1].Metrics[1]; !(ppl > 2) {
		t.Errorf("mean code perplexity %.2f at the end: the codebooks collapsed", ppl)
	}
	if err := m.ComputeStats([][]float32{voiced(6000, 140), voiced(9000, 250)}); err != nil {
		t.Fatal(err)
	}
	x := voiced(7000, 190) // not a training clip, nor a whole number of frames

	t.Run("residual shrinks with each codebook", func(t *testing.T) {
		q, err := m.Quantize(x)
		if err != nil {
			t.Fatal(err)
		}
		if len(q.Codes) != c.Latents(len(x)) || len(q.Codes[0]) != c.Codebooks || len(q.ResidualRMS) != c.Codebooks+1 {
			t.Fatalf("%d frames × %d codes, %d residuals; want %d × %d, %d", len(q.Codes), len(q.Codes[0]), len(q.ResidualRMS), c.Latents(len(x)), c.Codebooks, c.Codebooks+1)
		}
		t.Logf("residual RMS by codebooks used: %.4f", q.ResidualRMS)
		for i := 1; i < len(q.ResidualRMS); i++ {
			if !(q.ResidualRMS[i] < q.ResidualRMS[i-1]) {
				t.Errorf("residual after %d codebooks %.4g, not below %.4g after %d", i, q.ResidualRMS[i], q.ResidualRMS[i-1], i-1)
			}
		}
	})

	t.Run("codes decode as the quantised latents", func(t *testing.T) {
		z, err := m.Encode(x, true)
		if err != nil {
			t.Fatal(err)
		}
		codes, err := m.Codes(x)
		if err != nil {
			t.Fatal(err)
		}
		fromCodes, err := m.CodeLatents(codes)
		if err != nil {
			t.Fatal(err)
		}
		for i := range z {
			for k := range z[i] {
				if d := math.Abs(float64(z[i][k] - fromCodes[i][k])); d > 1e-4*(1+math.Abs(float64(z[i][k]))) {
					t.Fatalf("frame %d channel %d: Encode %g, CodeLatents %g", i, k, z[i][k], fromCodes[i][k])
				}
			}
		}
		a, err := m.Decode(z, len(x), 3)
		if err != nil {
			t.Fatal(err)
		}
		b, err := m.Decode(fromCodes, len(x), 3)
		if err != nil {
			t.Fatal(err)
		}
		for i := range a {
			if math.Abs(float64(a[i]-b[i])) > 1e-3 {
				t.Fatalf("sample %d: %g decoded from the latents, %g from the codes", i, a[i], b[i])
			}
		}
		// The first codebooks alone give a coarser latent, not an error.
		coarse := make([][]int32, len(codes))
		for i, row := range codes {
			coarse[i] = row[:1]
		}
		if _, err := m.CodeLatents(coarse); err != nil {
			t.Errorf("first-codebook latents: %v", err)
		}
		bad := [][]int32{{0, int32(c.CodebookSize), 0, 0}}
		if _, err := m.CodeLatents(bad); err == nil || !strings.Contains(err.Error(), "codebook 1") {
			t.Errorf("code outside the codebook: %v", err)
		}
	})

	t.Run("save and load", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "rvq")
		if err := m.Save(dir, map[string]any{"steps": 40}); err != nil {
			t.Fatal(err)
		}
		back, err := Load(testutil.Backend(t, ""), dir)
		if err != nil {
			t.Fatal(err)
		}
		defer back.Close()
		if back.Config != c {
			t.Fatalf("config %+v came back as %+v", c, back.Config)
		}
		want, err := m.Codebooks()
		if err != nil {
			t.Fatal(err)
		}
		got, err := back.Codebooks()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Error("codebooks differ after a save and load")
		}
		c1, err := m.Codes(x)
		if err != nil {
			t.Fatal(err)
		}
		c2, err := back.Codes(x)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(c1, c2) {
			t.Error("codes differ after a save and load")
		}
		if !reflect.DeepEqual(back.Mean, m.Mean) || !reflect.DeepEqual(back.Std, m.Std) {
			t.Error("latent statistics differ after a save and load")
		}
	})
}

// TestRVQConfig: the quantiser's fields belong to kind rvq only, and bad
// values are refused by name.
func TestRVQConfig(t *testing.T) {
	if err := DefaultConfig().RVQ(DefaultCodebooks, DefaultCodebookSize).Validate(); err != nil {
		t.Fatalf("default rvq config: %v", err)
	}
	for name, tc := range map[string]struct {
		edit func(*Config)
		want string
	}{
		"no codebooks":        {func(c *Config) { c.Codebooks = 0 }, "codebooks"},
		"codebook of one":     {func(c *Config) { c.CodebookSize = 1 }, "entries"},
		"gradient codebooks":  {func(c *Config) { c.CodebookDecay = 0 }, "codebook_decay"},
		"negative restarts":   {func(c *Config) { c.RestartBelow = -1 }, "restart_below"},
		"codebooks on sigma":  {func(c *Config) { c.Kind = vae.Sigma }, "for kind rvq"},
		"NaN commitment":      {func(c *Config) { c.CommitWeight = math.NaN() }, "commit_weight"},
		"too many codebooks":  {func(c *Config) { c.Codebooks = MaxCodebooks + 1 }, "codebooks"},
		"huge codebook sizes": {func(c *Config) { c.CodebookSize = vae.MaxCodebook + 1 }, "entries"},
	} {
		c := DefaultConfig().RVQ(8, 256)
		tc.edit(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error about %s", name, err, tc.want)
		}
	}
	if n := len(DefaultConfig().RVQ(3, 64).Specs()) - len(DefaultConfig().Specs()); n != 3 {
		t.Errorf("3 codebooks add %d weights", n)
	}
	m := newModel(t, tinyConfig(Spectrum, vae.Sigma))
	if _, err := m.Codes(voiced(2000, 150)); err == nil || !strings.Contains(err.Error(), "no codes") {
		t.Errorf("codes of a σ-VAE: %v", err)
	}
}

// TestManyLengths: a process encodes, quantises and decodes audio of more
// padded lengths than GoMLX compiles for one executable by default (32),
// as the VALL-E-style baseline's training does over the sentence set with
// a 62.5 Hz codec (49 buckets); every length gives its own frames back.
func TestManyLengths(t *testing.T) {
	c := tinyConfig(Spectrum, vae.VQ).RVQ(2, 8)
	c.Dim, c.Channels = 16, 4
	m := newModel(t, c)
	if c.lengthShapes() < 188 { // a minute of 0.32 s buckets at 25 Hz
		t.Errorf("%d shapes kept compiled, want a minute's worth at %g Hz", c.lengthShapes(), c.FrameRate())
	}
	const lengths = 34
	for k := 1; k <= lengths; k++ {
		n := k * Bucket * c.SamplesPerLatent()
		codes, err := m.Codes(voiced(n, 150))
		if err != nil {
			t.Fatalf("length %d of %d: %v", k, lengths, err)
		}
		z, err := m.Encode(voiced(n, 150), false)
		if err != nil {
			t.Fatalf("length %d of %d: %v", k, lengths, err)
		}
		y, err := m.Decode(z, n, 1)
		if err != nil {
			t.Fatalf("length %d of %d: %v", k, lengths, err)
		}
		if want := k * Bucket; len(codes) != want || len(z) != want || len(y) != n {
			t.Fatalf("length %d: %d codes, %d latents, %d samples; want %d, %d, %d", k, len(codes), len(z), len(y), want, want, n)
		}
	}
}
