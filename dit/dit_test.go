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
	"github.com/latentlm/latentlm/internal/flopcount"
	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/train"
)

func tinyConfig() Config {
	return Config{Dim: 32, Depth: 2, Heads: 4, MLPRatio: 2, Latent: 4, Grid: 3, Classes: 3, Target: diffusion.Epsilon}
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
	sched := diffusion.Cosine(1000)
	_, tr := testutil.TinyTrainer(t, cfg.Specs(), func(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
		return []*Node{cfg.ClassLoss(scope, w, in[0], in[1], sched, 2, 0.1)}
	})
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
// step must produce the same grids from the same seed. What DDPM (looped)
// draws is checked by TestSamplersRecoverGaussian.
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
	cfg := Config{Dim: 64, Depth: 3, Heads: 4, MLPRatio: 4, Latent: 8, Grid: 7, Classes: 10, Target: diffusion.Epsilon}
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
}

// TestSampleFLOPs counts the products (flopcount.Matmul) of the graph that
// samples one grid — the unrolled solver with guidance — and compares
// SampleFLOPs with it.
func TestSampleFLOPs(t *testing.T) {
	cfg := Config{Dim: 32, Depth: 2, Heads: 4, MLPRatio: 3, Latent: 6, Grid: 3, Classes: 4, Target: diffusion.Epsilon}
	b := testutil.Backend(t, "")
	store := randomStore(t, cfg, 0.05, dtypes.Float32)
	for _, steps := range []int{1, 7} {
		s, err := NewSampler(b, store, cfg, lm.SampleOptions{Steps: steps, CFG: 2, Temperature: 1})
		if err != nil {
			t.Fatal(err)
		}
		graphs := s.graphs(false)
		plan, err := diffusion.Cosine(1000).PlanFor(steps)
		if err != nil {
			t.Fatal(err)
		}
		var counted float64
		if _, err := model.CallOnce(b, store, func(scope *model.Scope, labels *Node) *Node {
			in := []*Node{labels}
			x := graphs.Noise(scope, in)
			out := diffusion.Cosine(1000).Run(plan, x, diffusion.Epsilon, graphs.Denoiser(scope, in), func(int) *Node { return scope.RandomNormal(labels.Graph(), x.Shape()) })
			if counted, err = flopcount.Matmul(labels.Graph()); err != nil {
				panic(err)
			}
			return out
		}, tensors.FromFlatDataAndDimensions([]int32{1, int32(cfg.Null())}, 2)); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if got := cfg.SampleFLOPs(steps); math.Abs(got-counted) > 1e-9*counted {
			t.Errorf("SampleFLOPs(%d) = %.9g, the sampling graph %.9g", steps, got, counted)
		}
	}
}

// TestSamplersRecoverGaussian: at its default initialisation (adaLN-Zero)
// the DiT predicts exactly zero, and with the v target v̂ ≡ 0 is the exact
// denoiser of standard normal data (E[v | x_t] = α·σ·x_t − σ·α·x_t = 0).
// DDPM (1000 steps, looped) and DPM-Solver++ (20 steps, unrolled) must then
// draw N(0, 1) grids.
func TestSamplersRecoverGaussian(t *testing.T) {
	cfg := tinyConfig()
	cfg.Target, cfg.Latent = diffusion.Velocity, 16
	b := testutil.Backend(t, "")
	store := model.NewStore()
	if err := nn.Init(store, cfg.Specs(), 1, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	labels := make([]int, 32)
	for i := range labels {
		labels[i] = i % cfg.Classes
	}
	for _, steps := range []int{0, 20} {
		s, err := NewSampler(b, store, cfg, lm.SampleOptions{Steps: steps, CFG: 3, Temperature: 1, Seed: 2})
		if err != nil {
			t.Fatal(err)
		}
		z, err := s.Sample(labels)
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		var vals []float64
		for _, row := range z {
			if len(row) != cfg.Items()*cfg.Latent {
				t.Fatalf("steps %d: %d values per grid", steps, len(row))
			}
			vals = append(vals, f64(row)...)
		}
		mean, std := testutil.MeanStd(vals)
		// 4608 draws: the standard errors are 0.015 (mean) and 0.010 (std).
		t.Logf("steps %d: mean %.4f std %.4f over %d values", steps, mean, std, len(vals))
		if math.Abs(mean) > 0.06 || math.Abs(std-1) > 0.045 {
			t.Errorf("steps %d: mean %.4f std %.4f, want N(0, 1) within 4 standard errors", steps, mean, std)
		}
	}
}

// TestTrainedSamplesFitData trains a tiny DiT end to end on grids whose
// values sit at class − 1 (±0.1) and samples it: each class's samples must
// be centred on their class (within 0.2) with a spread near the data's, and
// far closer to the data than the sampler's starting noise is — a sampler
// or a guidance that mixed up classes, streams or timesteps fails.
func TestTrainedSamplesFitData(t *testing.T) {
	cfg := tinyConfig()
	cfg.Target = diffusion.Velocity
	const batch = 32
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
	tc.LR, tc.WarmupSteps, tc.TotalSteps, tc.EMADecay = 3e-3, 10, trainedSteps, 0
	tr, err := train.New(b, store, tc, func(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
		return []*Node{cfg.ClassLoss(scope, w, in[0], in[1], sched, 2, 0.1)}
	})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(2, 2))
	per := cfg.Items() * cfg.Latent
	for range trainedSteps {
		labels := make([]int32, batch)
		lat := make([]float32, batch*per)
		for i := range labels {
			labels[i] = int32(rng.IntN(cfg.Classes))
			for k := range per {
				lat[i*per+k] = float32(labels[i]) - 1 + 0.1*float32(rng.NormFloat64())
			}
		}
		if _, err := tr.Step(tensors.FromFlatDataAndDimensions(labels, batch), tensors.FromFlatDataAndDimensions(lat, batch, cfg.Items(), cfg.Latent)); err != nil {
			t.Fatal(err)
		}
	}
	s, err := NewSampler(b, store, cfg, lm.SampleOptions{Steps: 20, CFG: 1, Temperature: 1, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	labels := make([]int, 30)
	for i := range labels {
		labels[i] = i % cfg.Classes
	}
	z, err := s.Sample(labels)
	if err != nil {
		t.Fatal(err)
	}
	var sampleErr, noiseErr float64
	byClass := make([][]float64, cfg.Classes)
	for i, row := range z {
		want := float64(labels[i] - 1)
		for _, v := range row {
			d := float64(v) - want
			sampleErr += d * d
			noiseErr += 1 + want*want // E[(ε − want)²] for the starting noise ε ~ N(0, 1)
			byClass[labels[i]] = append(byClass[labels[i]], float64(v))
		}
	}
	count := float64(len(z) * per)
	t.Logf("mean squared distance to the class value: samples %.4f, noise %.4f", sampleErr/count, noiseErr/count)
	for c, vals := range byClass {
		m, sd := testutil.MeanStd(vals)
		t.Logf("class %d: mean %.3f (data %d), std %.3f (data 0.1)", c, m, c-1, sd)
		if math.Abs(m-float64(c-1)) > 0.2 || sd > 0.4 {
			t.Errorf("class %d: samples have mean %.3f and std %.3f, the data %d and 0.1", c, m, sd, c-1)
		}
	}
	if sampleErr > noiseErr/20 {
		t.Errorf("samples are at %.3g of the noise's squared distance to the data, want below 1/20", sampleErr/noiseErr)
	}
}

// trainedSteps trains TestTrainedSamplesFitData's DiT.
const trainedSteps = 200
