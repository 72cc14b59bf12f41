package lm

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/nn"
)

func tinyConfig() Config {
	return Config{Dim: 32, Depth: 2, Heads: 4, KVHeads: 2, MLPRatio: 2, HeadDepth: 2, HeadDim: 24,
		Latent: 4, MaxLen: 10, Target: diffusion.Epsilon, Vocab: Vocab{Classes: 3}}
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

// randomItems is a batch of mixed sequences: a token, then latents, with a
// token in the middle, as host tensors.
func randomItems(cfg Config, batch, length int, rng *rand.Rand) (ids []int32, lat, isLat []float32) {
	ids = make([]int32, batch*length)
	lat = make([]float32, batch*length*cfg.Latent)
	isLat = make([]float32, batch*length)
	for b := range batch {
		for i := range length {
			k := b*length + i
			if i == 0 || i == length/2 {
				ids[k] = int32(rng.IntN(cfg.Vocab.Size()))
				continue
			}
			isLat[k] = 1
			for c := range cfg.Latent {
				lat[k*cfg.Latent+c] = float32(rng.NormFloat64())
			}
		}
	}
	return
}

func conditionsFull(t *testing.T, b compute.Backend, store *model.Store, cfg Config, batch, length int, ids []int32, lat, isLat []float32) []float32 {
	t.Helper()
	out, err := model.CallOnce(b, store, func(scope *model.Scope, idsN, latN, isLatN *Node) *Node {
		w := nn.WeightsOf(scope.Store(), idsN.Graph())
		h, _ := cfg.Backbone(w, Items{idsN, latN, isLatN}, Positions(idsN.Graph(), dtypes.Float32, 0, length), nil)
		return cfg.Condition(w, h)
	}, tensors.FromFlatDataAndDimensions(ids, batch, length),
		tensors.FromFlatDataAndDimensions(lat, batch, length, cfg.Latent),
		tensors.FromFlatDataAndDimensions(isLat, batch, length))
	if err != nil {
		t.Fatal(err)
	}
	return tensors.MustCopyFlatData[float32](out)
}

// TestKVCacheMatchesFullForward decodes a sequence item by item through the
// fixed-length KV cache (after a two-item prefill) and compares every
// condition with the parallel forward pass.
func TestKVCacheMatchesFullForward(t *testing.T) {
	cfg := tinyConfig()
	b := testutil.Backend(t, "")
	const batch, length = 3, 9
	store := randomStore(t, cfg, 0.1, dtypes.Float32)
	ids, lat, isLat := randomItems(cfg, batch, length, rand.New(rand.NewPCG(1, 2)))
	full := conditionsFull(t, b, store, cfg, batch, length, ids, lat, isLat)

	exec, err := model.NewExec(b, store, func(scope *model.Scope, in []*Node) []*Node {
		w := nn.WeightsOf(scope.Store(), in[0].Graph())
		caches := make([]*nn.KV, cfg.Depth)
		for i := range caches {
			caches[i] = &nn.KV{K: in[4+2*i], V: in[5+2*i]}
		}
		h, nc := cfg.Backbone(w, Items{in[0], in[1], in[2]}, in[3], caches)
		out := []*Node{cfg.Condition(w, h)}
		for _, kv := range nc {
			out = append(out, kv.K, kv.V)
		}
		return out
	})
	if err != nil {
		t.Fatal(err)
	}
	hd := cfg.Dim / cfg.Heads
	caches := make([]any, 2*cfg.Depth)
	for i := range caches {
		caches[i] = tensors.FromShape(nn.Shape(dtypes.Float32, batch, cfg.MaxLen, cfg.KVHeads, hd))
	}
	hw := cfg.HeadDim
	var worst float64
	for start := 0; start < length; {
		n := 1
		if start == 0 {
			n = 2 // prefill two items at once
		}
		sub := func(x []int32) []int32 {
			r := make([]int32, 0, batch*n)
			for bb := range batch {
				r = append(r, x[bb*length+start:bb*length+start+n]...)
			}
			return r
		}
		subf := func(x []float32, w int) []float32 {
			r := make([]float32, 0, batch*n*w)
			for bb := range batch {
				r = append(r, x[(bb*length+start)*w:(bb*length+start+n)*w]...)
			}
			return r
		}
		pos := make([]float32, n)
		for i := range pos {
			pos[i] = float32(start + i)
		}
		args := append([]any{
			tensors.FromFlatDataAndDimensions(sub(ids), batch, n),
			tensors.FromFlatDataAndDimensions(subf(lat, cfg.Latent), batch, n, cfg.Latent),
			tensors.FromFlatDataAndDimensions(subf(isLat, 1), batch, n),
			tensors.FromFlatDataAndDimensions(pos, n),
		}, caches...)
		outs, err := exec.Call(args...)
		if err != nil {
			t.Fatal(err)
		}
		for i := range caches {
			caches[i] = outs[1+i]
		}
		got := tensors.MustCopyFlatData[float32](outs[0])
		want := subf(full, hw)
		a, e := make([]float64, len(got)), make([]float64, len(want))
		for i := range got {
			a[i], e[i] = float64(got[i]), float64(want[i])
		}
		worst = math.Max(worst, testutil.RelErr(a, e))
		start += n
	}
	t.Logf("worst relative error, cached vs full: %.3g", worst)
	if worst > 1e-4 {
		t.Errorf("KV-cache decoding differs from the full forward pass: relative error %.3g > 1e-4", worst)
	}
}

// TestCausality changes item j and checks that every output before j is
// unchanged and some output at or after j changes.
func TestCausality(t *testing.T) {
	cfg := tinyConfig()
	b := testutil.Backend(t, "")
	const batch, length, j = 2, 9, 5
	store := randomStore(t, cfg, 0.1, dtypes.Float32)
	ids, lat, isLat := randomItems(cfg, batch, length, rand.New(rand.NewPCG(4, 5)))
	before := conditionsFull(t, b, store, cfg, batch, length, ids, lat, isLat)
	for bb := range batch {
		k := bb*length + j
		isLat[k] = 1
		for c := range cfg.Latent {
			lat[k*cfg.Latent+c] += 3
		}
	}
	after := conditionsFull(t, b, store, cfg, batch, length, ids, lat, isLat)
	hw := cfg.HeadDim
	for bb := range batch {
		for i := range length {
			var diff float64
			for c := range hw {
				k := (bb*length+i)*hw + c
				diff = math.Max(diff, math.Abs(float64(after[k]-before[k])))
			}
			if i < j && diff != 0 {
				t.Errorf("output %d changed by %.3g when item %d changed", i, diff, j)
			}
			if i == j && diff < 1e-3 {
				t.Errorf("output %d did not change (%.3g) when its own item changed", i, diff)
			}
		}
	}
}

// TestGradientFiniteDifference checks the analytic gradients of the
// diffusion head and of the backbone in float64 against central differences.
func TestGradientFiniteDifference(t *testing.T) {
	cfg := tinyConfig()
	cfg.Depth = 1
	b := testutil.Backend(t, "go")
	store := randomStore(t, cfg, 0.3, dtypes.Float64)
	rng := rand.New(rand.NewPCG(9, 9))
	const batch, length = 2, 5
	ids32, lat32, isLat32 := randomItems(cfg, batch, length, rng)
	f64 := func(x []float32) []float64 {
		r := make([]float64, len(x))
		for i, v := range x {
			r[i] = float64(v)
		}
		return r
	}
	lat, isLat := f64(lat32), f64(isLat32)
	xt := make([]float64, batch*length*cfg.Latent)
	for i := range xt {
		xt[i] = rng.NormFloat64()
	}
	proj := make([]float64, batch*length*cfg.Latent)
	for i := range proj {
		proj[i] = rng.NormFloat64()
	}
	// loss = Σ proj ⊙ Head(x_t, t, Condition(Backbone(items))): every weight
	// of the model is on the path.
	lossFn := func(scope *model.Scope, idsN, latN, isLatN, xtN *Node) *Node {
		g := idsN.Graph()
		w := nn.WeightsOf(scope.Store(), g)
		h, _ := cfg.Backbone(w, Items{idsN, latN, isLatN}, Positions(g, dtypes.Float64, 0, length), nil)
		cond := Reshape(cfg.Condition(w, h), batch*length, cfg.HeadDim)
		tt := MulScalar(OnesLike(Reshape(isLatN, batch*length)), 371)
		pred := cfg.Head(w, Reshape(xtN, batch*length, cfg.Latent), tt, cond)
		return ReduceAllSum(Mul(pred, Const(g, nn.Tensor(proj, dtypes.Float64, batch*length, cfg.Latent))))
	}
	args := []any{
		tensors.FromFlatDataAndDimensions(ids32, batch, length),
		tensors.FromFlatDataAndDimensions(lat, batch, length, cfg.Latent),
		tensors.FromFlatDataAndDimensions(isLat, batch, length),
		tensors.FromFlatDataAndDimensions(xt, batch, length, cfg.Latent),
	}
	checked := testutil.CheckGradients(t, b, store, func(scope *model.Scope, in []*Node) *Node {
		return lossFn(scope, in[0], in[1], in[2], in[3])
	}, args, 2, rng)
	t.Logf("checked %d gradient entries", checked)
}

// TestTrainingReducesLoss trains a tiny class-conditional model on latents
// whose mean depends on the class, and requires the loss to fall.
func TestTrainingReducesLoss(t *testing.T) {
	cfg := tinyConfig()
	cfg.MaxLen = 8
	const items, batch = 5, 16
	sched := diffusion.Cosine(1000)
	_, tr := testutil.TinyTrainer(t, cfg.Specs(), func(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
		l := cfg.ClassLoss(scope, w, in[0], in[1], sched, 4, 0.1)
		return []*Node{l.Total, l.CE, l.Diffusion}
	})
	rng := rand.New(rand.NewPCG(2, 2))
	batchData := func() (*tensors.Tensor, *tensors.Tensor) {
		labels := make([]int32, batch)
		lat := make([]float32, batch*items*cfg.Latent)
		for i := range labels {
			labels[i] = int32(rng.IntN(cfg.Vocab.Classes))
			for k := range items * cfg.Latent {
				lat[i*items*cfg.Latent+k] = float32(labels[i]) - 1 + 0.1*float32(rng.NormFloat64())
			}
		}
		return tensors.FromFlatDataAndDimensions(labels, batch), tensors.FromFlatDataAndDimensions(lat, batch, items, cfg.Latent)
	}
	testutil.ExpectLossFalls(t, 60, 5, 0.7, func(int) float64 {
		l, z := batchData()
		res, err := tr.Step(l, z)
		if err != nil {
			t.Fatal(err)
		}
		return res.Loss
	})
}

// TestSamplerModes: the sampler produces finite latents of the right shape,
// reproducibly from its seed, and refuses images longer than max_len. What
// the looped solver (DDPM, 1000 steps as a host loop) and the unrolled one
// draw is checked against a known distribution by
// TestSamplersRecoverGaussian.
func TestSamplerModes(t *testing.T) {
	cfg := tinyConfig()
	b := testutil.Backend(t, "")
	store := randomStore(t, cfg, 0.05, dtypes.Float32)
	const items = 3
	run := func(steps int) [][]float32 {
		s, err := NewSampler(b, store, cfg, items, SampleOptions{Steps: steps, CFG: 2, Temperature: 1, Seed: 4})
		if err != nil {
			t.Fatal(err)
		}
		z, err := s.Sample([]int{0, 2})
		if err != nil {
			t.Fatal(err)
		}
		if len(z) != 2 || len(z[0]) != items*cfg.Latent {
			t.Fatalf("steps %d: latents %d×%d", steps, len(z), len(z[0]))
		}
		for _, v := range z[0] {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("steps %d: non-finite latent", steps)
			}
		}
		return z
	}
	a, again := run(5), run(5)
	for i := range a[0] {
		if a[0][i] != again[0][i] {
			t.Fatal("same seed gave different samples")
		}
	}
	if _, err := NewSampler(b, store, cfg, cfg.MaxLen, SampleOptions{Steps: 5}); err == nil {
		t.Error("more items than max_len accepted")
	}
}
