package dit

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/train"
)

func tinyConfig() Config {
	return Config{Dim: 32, Depth: 2, Heads: 4, MLPRatio: 2, Latent: 4, Grid: 3, Classes: 3, Target: "eps"}
}

// randomStore initialises every weight, the zero-initialised ones included,
// from N(0, std), so that every path of the model is exercised.
func randomStore(t *testing.T, cfg Config, std float64, dtype dtypes.DType) *model.Store {
	t.Helper()
	specs := cfg.Specs()
	for i := range specs {
		specs[i].Std = std
	}
	store := model.NewStore()
	if err := nn.Init(store, specs, 3, dtype); err != nil {
		t.Fatal(err)
	}
	return store
}

func forward(t *testing.T, b compute.Backend, store *model.Store, cfg Config, xt []float32, ts []float32, labels []int32) []float32 {
	t.Helper()
	batch := len(labels)
	out, err := model.CallOnce(b, store, func(scope *model.Scope, x, tt, l *Node) *Node {
		return cfg.Forward(nn.WeightsOf(scope.Store(), x.Graph()), x, tt, l)
	}, tensors.FromFlatDataAndDimensions(xt, batch, cfg.Items(), cfg.Latent),
		tensors.FromFlatDataAndDimensions(ts, batch),
		tensors.FromFlatDataAndDimensions(labels, batch))
	if err != nil {
		t.Fatal(err)
	}
	return tensors.MustCopyFlatData[float32](out)
}

func randomGrids(cfg Config, batch int, rng *rand.Rand) []float32 {
	x := make([]float32, batch*cfg.Items()*cfg.Latent)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

// TestPosEmbedIsRelative checks the analytic property of sin-cos
// embeddings: within each half, ⟨PE(p), PE(q)⟩ = Σ_k cos((p−q)·ω_k), so the
// similarity of two items depends only on their offset along each axis.
func TestPosEmbedIsRelative(t *testing.T) {
	cfg := Config{Dim: 16, Grid: 5}
	pe := cfg.PosEmbed()
	d, q := cfg.Dim, cfg.Dim/4
	dot := func(a, b, half int) float64 {
		var s float64
		for k := half * 2 * q; k < (half+1)*2*q; k++ {
			s += pe[a*d+k] * pe[b*d+k]
		}
		return s
	}
	for a := range cfg.Items() {
		for b := range cfg.Items() {
			for half, off := range []int{a/cfg.Grid - b/cfg.Grid, a%cfg.Grid - b%cfg.Grid} {
				var want float64
				for k := range q {
					want += math.Cos(float64(off) * math.Pow(10000, -float64(k)/float64(q)))
				}
				if got := dot(a, b, half); math.Abs(got-want) > 1e-12 {
					t.Fatalf("items %d, %d half %d: ⟨PE, PE⟩ = %.15g, want %.15g", a, b, half, got, want)
				}
			}
		}
	}
}

// TestZeroInitPredictsZero: with adaLN-Zero's zero modulations and final
// projection (the default init), the network is exactly the zero function.
func TestZeroInitPredictsZero(t *testing.T) {
	cfg := tinyConfig()
	store := model.NewStore()
	if err := nn.Init(store, cfg.Specs(), 1, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	out := forward(t, testutil.Backend(t, ""), store, cfg, randomGrids(cfg, 2, rng), []float32{10, 900}, []int32{0, int32(cfg.Null())})
	for i, v := range out {
		if v != 0 {
			t.Fatalf("output %d = %g at init, want 0", i, v)
		}
	}
}

// TestBidirectional changes item j and requires every item's output to
// change — the opposite of LatentLM's causality — and a different class to
// change the output too.
func TestBidirectional(t *testing.T) {
	cfg := tinyConfig()
	b := testutil.Backend(t, "")
	store := randomStore(t, cfg, 0.1, dtypes.Float32)
	rng := rand.New(rand.NewPCG(4, 5))
	x := randomGrids(cfg, 1, rng)
	ts := []float32{500}
	before := forward(t, b, store, cfg, x, ts, []int32{1})
	const j = 5
	for c := range cfg.Latent {
		x[j*cfg.Latent+c] += 3
	}
	after := forward(t, b, store, cfg, x, ts, []int32{1})
	for i := range cfg.Items() {
		var diff float64
		for c := range cfg.Latent {
			k := i*cfg.Latent + c
			diff = math.Max(diff, math.Abs(float64(after[k]-before[k])))
		}
		if diff < 1e-5 {
			t.Errorf("output %d unchanged (%.3g) when item %d changed", i, diff, j)
		}
	}
	other := forward(t, b, store, cfg, x, ts, []int32{2})
	if testutil.RelErr(f64(other), f64(after)) < 1e-4 {
		t.Error("the class does not change the prediction")
	}
}

func f64(x []float32) []float64 {
	r := make([]float64, len(x))
	for i, v := range x {
		r[i] = float64(v)
	}
	return r
}

// TestGradientFiniteDifference checks the analytic gradient of every weight
// in float64 against central differences.
func TestGradientFiniteDifference(t *testing.T) {
	cfg := tinyConfig()
	cfg.Depth = 1
	b := testutil.Backend(t, "go")
	store := randomStore(t, cfg, 0.3, dtypes.Float64)
	rng := rand.New(rand.NewPCG(9, 9))
	const batch = 2
	n := batch * cfg.Items() * cfg.Latent
	xt, proj := make([]float64, n), make([]float64, n)
	for i := range xt {
		xt[i], proj[i] = rng.NormFloat64(), rng.NormFloat64()
	}
	lossFn := func(scope *model.Scope, x, tt, l *Node) *Node {
		g := x.Graph()
		pred := cfg.Forward(nn.WeightsOf(scope.Store(), g), x, tt, l)
		return ReduceAllSum(Mul(pred, Const(g, nn.Tensor(proj, dtypes.Float64, batch, cfg.Items(), cfg.Latent))))
	}
	args := []any{
		tensors.FromFlatDataAndDimensions(xt, batch, cfg.Items(), cfg.Latent),
		tensors.FromFlatDataAndDimensions([]float64{37, 811}, batch),
		tensors.FromFlatDataAndDimensions([]int32{2, int32(cfg.Null())}, batch),
	}
	checked := testutil.CheckGradients(t, b, store, func(scope *model.Scope, in []*Node) *Node {
		return lossFn(scope, in[0], in[1], in[2])
	}, args, 2, rng)
	t.Logf("checked %d gradient entries", checked)
}

// TestTrainingReducesLoss trains a tiny model on grids whose mean depends on
// the class and requires the loss to fall.
func TestTrainingReducesLoss(t *testing.T) {
	cfg := tinyConfig()
	const batch = 16
	b := testutil.Backend(t, "")
	store := model.NewStore()
	if err := nn.Init(store, cfg.Specs(), 1, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	if err := store.SetRNGStateFromSeed(1); err != nil {
		t.Fatal(err)
	}
	sched := diffusion.Cosine(1000)
	tc := train.DefaultConfig()
	tc.LR, tc.WarmupSteps, tc.TotalSteps = 3e-3, 5, 60
	tr, err := train.New(b, store, tc, func(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
		return []*Node{cfg.ClassLoss(scope, w, in[0], in[1], sched, 2, 0.1)}
	})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(2, 2))
	per := cfg.Items() * cfg.Latent
	testutil.ExpectLossFalls(t, 60, 5, 0.7, func(int) float64 {
		labels := make([]int32, batch)
		lat := make([]float32, batch*per)
		for i := range labels {
			labels[i] = int32(rng.IntN(cfg.Classes))
			for k := range per {
				lat[i*per+k] = float32(labels[i]) - 1 + 0.1*float32(rng.NormFloat64())
			}
		}
		res, err := tr.Step(tensors.FromFlatDataAndDimensions(labels, batch), tensors.FromFlatDataAndDimensions(lat, batch, cfg.Items(), cfg.Latent))
		if err != nil {
			t.Fatal(err)
		}
		return res.Loss
	})
}

// TestSamplerUnrolledMatchesLooped: DPM-Solver++ adds no noise after the
// initial draw, so the unrolled graph and the host loop of one compiled
// step must produce the same grids from the same seed; DDPM (looped) must
// give finite grids of the right shape.
func TestSamplerUnrolledMatchesLooped(t *testing.T) {
	cfg := tinyConfig()
	b := testutil.Backend(t, "")
	store := randomStore(t, cfg, 0.05, dtypes.Float32)
	opts := lm.SampleOptions{Steps: 8, CFG: 2.5, Temperature: 1, Seed: 4}
	run := func(opts lm.SampleOptions, unroll bool) [][]float32 {
		s, err := newSampler(b, store, cfg, opts, unroll)
		if err != nil {
			t.Fatal(err)
		}
		z, err := s.Sample([]int{0, 2, 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(z) != 3 || len(z[0]) != cfg.Items()*cfg.Latent {
			t.Fatalf("latents %d×%d", len(z), len(z[0]))
		}
		for _, v := range z[2] {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatal("non-finite latent")
			}
		}
		return z
	}
	unrolled, looped := run(opts, true), run(opts, false)
	for i := range unrolled {
		if e := testutil.RelErr(f64(unrolled[i]), f64(looped[i])); e > 1e-5 {
			t.Errorf("image %d: unrolled and looped samplers differ by %.3g", i, e)
		}
	}
	opts.Steps = 0
	run(opts, true)
	s, err := NewSampler(b, store, cfg, lm.SampleOptions{Steps: 4, CFG: 1, Temperature: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sample([]int{cfg.Classes}); err == nil {
		t.Error("out-of-range class accepted")
	}
}

// TestForwardFLOPs recounts the matmul FLOPs from the weight shapes: every
// weight applied per item (embedding, attention, MLP, final projection),
// the conditioning ones once per image (the class table is a lookup), plus
// the two attention products over all item pairs.
func TestForwardFLOPs(t *testing.T) {
	cfg := Config{Dim: 64, Depth: 3, Heads: 4, MLPRatio: 4, Latent: 8, Grid: 7, Classes: 10, Target: "eps"}
	n := float64(cfg.Items())
	var want float64
	for _, s := range cfg.Specs() {
		switch {
		case s.Name == "y_embedder.embedding_table.weight":
		case strings.HasPrefix(s.Name, "t_embedder") || strings.Contains(s.Name, "adaLN"):
			want += 2 * float64(s.Size())
		default:
			want += 2 * float64(s.Size()) * n
		}
	}
	want += float64(cfg.Depth) * 2 * 2 * n * n * float64(cfg.Dim)
	if got := cfg.ForwardFLOPs(3); math.Abs(got-3*want) > 1e-9*want {
		t.Errorf("ForwardFLOPs(3) = %.6g, recount %.6g", got, 3*want)
	}
	if got := cfg.SampleFLOPs(20); got != 40*cfg.ForwardFLOPs(1) {
		t.Errorf("SampleFLOPs(20) = %.6g, want 40 forward passes", got)
	}
}
