package lm

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/safetensors"
)

func publicConfig() Config {
	cfg := tinyConfig()
	cfg.Layout = LayoutPublic
	return cfg
}

// TestLayoutJSON: a config without "layout" (every checkpoint written before
// the field) is "bol"; "public" round-trips; anything else is refused.
func TestLayoutJSON(t *testing.T) {
	var c Config
	if err := json.Unmarshal([]byte(`{"dim": 8}`), &c); err != nil || c.Layout != LayoutBOL {
		t.Fatalf("missing layout: %v, %v", c.Layout, err)
	}
	p := publicConfig()
	if err := json.Unmarshal([]byte(`{"dim": 8}`), &p); err != nil || p.Layout != LayoutBOL || p.Depth != tinyConfig().Depth {
		t.Fatalf("missing layout over a public config: %+v, %v", p, err)
	}
	p = publicConfig()
	if !strings.Contains(string(p.JSON()), `"layout": "public"`) {
		t.Fatalf("config JSON %s lacks the layout", p.JSON())
	}
	var back Config
	if err := json.Unmarshal(p.JSON(), &back); err != nil || back != p {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	if !strings.Contains(string(tinyConfig().JSON()), `"layout": "bol"`) {
		t.Fatal("bol layout not written")
	}
	if err := json.Unmarshal([]byte(`{"layout": "eol"}`), &back); err == nil {
		t.Fatal("unknown layout accepted")
	}
	bad := tinyConfig()
	bad.Layout = 7
	if err := bad.Validate(); err == nil {
		t.Fatal("invalid layout validated")
	}
}

// publicBatch is labels [B] and latents [B, N, C] drawn from rng.
func publicBatch(cfg Config, batch, n int, rng *rand.Rand) ([]int32, []float32) {
	labels := make([]int32, batch)
	lat := make([]float32, batch*n*cfg.Latent)
	for i := range labels {
		labels[i] = int32(rng.IntN(cfg.Vocab.Classes))
	}
	for i := range lat {
		lat[i] = float32(rng.NormFloat64())
	}
	return labels, lat
}

// TestPublicLayoutForward: in the public layout the parallel forward pass
// over ClassItems is Transformer.forward_parallel: items [class] z₀ … z_{N−2}
// at positions 0 … N−1, and the condition for z_k is the one at position k,
// which equals the backbone run by hand over the prefix [class] z₀ … z_{k−1}
// (so z₀ is conditioned on the class token alone). The loss is the diffusion
// loss of z_k under that condition, with no cross-entropy.
func TestPublicLayoutForward(t *testing.T) {
	cfg := publicConfig()
	b := testutil.Backend(t, "")
	store := randomStore(t, cfg, 0.05, dtypes.Float32)
	const batch, n = 2, 5
	C := cfg.Latent
	labels, lat := publicBatch(cfg, batch, n, rand.New(rand.NewPCG(5, 5)))

	out, err := model.CallOnceN(b, store, func(scope *model.Scope, in []*Node) []*Node {
		l, z := in[0], in[1]
		w := nn.WeightsOf(scope.Store(), l.Graph())
		it := cfg.ClassItems(l, z)
		h, _ := cfg.Backbone(w, it, Positions(l.Graph(), dtypes.Float32, 0, n), nil)
		return []*Node{it.Ids, it.Latents, it.IsLatent, cfg.Condition(w, h)}
	}, tensors.FromFlatDataAndDimensions(labels, batch), tensors.FromFlatDataAndDimensions(lat, batch, n, C))
	if err != nil {
		t.Fatal(err)
	}
	ids, items, isLat := tensors.MustCopyFlatData[int32](out[0]), tensors.MustCopyFlatData[float32](out[1]), tensors.MustCopyFlatData[float32](out[2])
	conds := tensors.MustCopyFlatData[float32](out[3])
	if got := out[0].Shape().Dimensions; len(got) != 2 || got[1] != n {
		t.Fatalf("public items of shape %v, want [%d %d]", got, batch, n)
	}
	for i := range batch {
		if ids[i*n] != labels[i] || isLat[i*n] != 0 {
			t.Fatalf("sequence %d does not start with its class token", i)
		}
		for k := 1; k < n; k++ {
			if isLat[i*n+k] != 1 {
				t.Fatalf("sequence %d item %d is not a latent", i, k)
			}
			for c := range C {
				if items[(i*n+k)*C+c] != lat[(i*n+k-1)*C+c] {
					t.Fatalf("sequence %d item %d is not z%d", i, k, k-1)
				}
			}
		}
	}

	hw := cfg.HeadDim
	worst := 0.0
	for k := range n {
		L := k + 1
		pids := make([]int32, batch*L)
		plat := make([]float32, batch*L*C)
		pisl := make([]float32, batch*L)
		for i := range batch {
			pids[i*L] = labels[i]
			for j := range k {
				pisl[i*L+1+j] = 1
				copy(plat[(i*L+1+j)*C:(i*L+2+j)*C], lat[(i*n+j)*C:(i*n+j+1)*C])
			}
		}
		hand := conditionsFull(t, b, store, cfg, batch, L, pids, plat, pisl)
		for i := range batch {
			for c := range hw {
				worst = math.Max(worst, math.Abs(float64(hand[(i*L+k)*hw+c]-conds[(i*n+k)*hw+c])))
			}
		}
	}
	t.Logf("max |parallel − prefix-by-hand| over the conditions: %.3g", worst)
	if worst > 1e-5 {
		t.Fatalf("the condition of z_k at position k differs from the prefix run by hand: %.3g", worst)
	}

	// The loss: ClassLoss is diffusionLoss over the hand-built items, with
	// the same noise draws from the same seed, and no CE term.
	loss := func(byHand bool) []float32 {
		if err := store.SetRNGStateFromSeed(9); err != nil {
			t.Fatal(err)
		}
		out, err := model.CallOnceN(b, store, func(scope *model.Scope, in []*Node) []*Node {
			l, z := in[0], in[1]
			g := l.Graph()
			w := nn.WeightsOf(scope.Store(), g)
			sched := diffusion.Cosine(1000)
			if !byHand {
				ls := cfg.ClassLoss(scope, w, l, z, sched, 2, 0)
				return []*Node{ls.Total, ls.CE}
			}
			ids := make([]int32, batch*n)
			for i := range batch {
				ids[i*n] = labels[i]
			}
			it := Items{Ids: Const(g, tensors.FromFlatDataAndDimensions(ids, batch, n)),
				Latents: Const(g, tensors.FromFlatDataAndDimensions(items, batch, n, C)), IsLatent: Const(g, tensors.FromFlatDataAndDimensions(isLat, batch, n))}
			h, _ := cfg.Backbone(w, it, Positions(g, dtypes.Float32, 0, n), nil)
			d := cfg.diffusionLoss(scope, w, h, z, Ones(g, nn.Shape(dtypes.Float32, batch, n)), sched, 2, LossOptions{})
			return []*Node{d, ScalarZero(g, dtypes.Float32)}
		}, tensors.FromFlatDataAndDimensions(labels, batch), tensors.FromFlatDataAndDimensions(lat, batch, n, C))
		if err != nil {
			t.Fatal(err)
		}
		return []float32{out[0].Value().(float32), out[1].Value().(float32)}
	}
	got, want := loss(false), loss(true)
	if got[1] != 0 || math.Abs(float64(got[0]-want[0])) > 1e-6*math.Abs(float64(want[0])) {
		t.Fatalf("public ClassLoss (total %v, CE %v), by hand %v", got[0], got[1], want[0])
	}
}

// TestPublicLayoutFirstCondition: on the shipped MNIST weights the first
// public condition (the class token at position 0, which conditions z₀ in
// the public code) is the PyTorch restatement's
// (testdata/pytorch/latentlm_reference.json, public_layout_note: it equals
// the condition at position 0 of our layout, stored as backbone.conditions).
func TestPublicLayoutFirstCondition(t *testing.T) {
	b := testutil.Backend(t, "")
	cfg, store, _, err := Load("../weights/latentlm-mnist")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Layout = LayoutPublic
	f, err := safetensors.Load("../testdata/pytorch/latentlm_reference.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	z := goldenGet(t, f, "backbone.latents") // [2, 3, C]
	ref := goldenGet(t, f, "backbone.conditions")
	const n = 3
	out, err := model.CallOnce(b, store, func(scope *model.Scope, l, zz *Node) *Node {
		w := nn.WeightsOf(scope.Store(), l.Graph())
		h, _ := cfg.Backbone(w, cfg.ClassItems(l, zz), Positions(l.Graph(), dtypes.Float32, 0, n), nil)
		return cfg.Condition(w, h)
	}, tensors.FromFlatDataAndDimensions([]int32{3, 7}, 2), tensors.FromFlatDataAndDimensions(z, 2, n, cfg.Latent))
	if err != nil {
		t.Fatal(err)
	}
	got := tensors.MustCopyFlatData[float32](out)
	hw, refLen := cfg.HeadDim, len(ref)/(2*cfg.HeadDim)
	for i := range 2 {
		d, m := goldenDiff(got[i*n*hw:i*n*hw+hw], ref[i*refLen*hw:i*refLen*hw+hw])
		if d > 1e-4*m {
			t.Errorf("image %d: first public condition differs from PyTorch by %.3g of %.3g", i, d, m)
		}
	}
}

// TestPublicLayoutTrainsAndSamples trains a tiny public-layout model for a
// few steps (the loss falls) and samples from it: Sample is Prefill of
// [class] (guidance [null]) then solve and step, max_len needs one item
// beyond the latents.
func TestPublicLayoutTrainsAndSamples(t *testing.T) {
	cfg := publicConfig()
	const items, batch = 5, 16
	cfg.MaxLen = items + cfg.Layout.Overhead()
	sched := diffusion.Cosine(1000)
	store, tr := testutil.TinyTrainer(t, cfg.Specs(), func(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
		l := cfg.ClassLoss(scope, w, in[0], in[1], sched, 4, 0.1)
		return []*Node{l.Total, l.CE, l.Diffusion}
	})
	b := testutil.Backend(t, "")
	rng := rand.New(rand.NewPCG(2, 2))
	testutil.ExpectLossFalls(t, 60, 5, 0.7, func(int) float64 {
		labels := make([]int32, batch)
		lat := make([]float32, batch*items*cfg.Latent)
		for i := range labels {
			labels[i] = int32(rng.IntN(cfg.Vocab.Classes))
			for k := range items * cfg.Latent {
				lat[i*items*cfg.Latent+k] = float32(labels[i]) - 1 + 0.1*float32(rng.NormFloat64())
			}
		}
		res, err := tr.Step(tensors.FromFlatDataAndDimensions(labels, batch), tensors.FromFlatDataAndDimensions(lat, batch, items, cfg.Latent))
		if err != nil {
			t.Fatal(err)
		}
		return res.Loss
	})

	opts := SampleOptions{Steps: 6, CFG: 3, Temperature: 1, Seed: 11}
	s, err := NewSampler(b, store, cfg, items, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	labels := []int{2, 0}
	want, err := s.Sample(labels)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range flat(want) {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatal("non-finite latent")
		}
	}
	e, err := NewEngine(b, store, cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	sess, err := e.Prefill([][]Item{{TokenItem(2)}, {TokenItem(0)}}, [][]Item{{TokenItem(cfg.Vocab.Null())}, {TokenItem(cfg.Vocab.Null())}})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	got := make([][]float32, len(labels))
	for k := range items {
		z, err := sess.Solve()
		if err != nil {
			t.Fatal(err)
		}
		for i := range z {
			got[i] = append(got[i], z[i]...)
		}
		if k < items-1 {
			if err := sess.Step([]Item{LatentItem(z[0]), LatentItem(z[1])}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if sess.Len() != items {
		t.Errorf("session holds %d items, want %d", sess.Len(), items)
	}
	g, w := flat(got), flat(want)
	for i := range w {
		if g[i] != w[i] {
			t.Fatalf("value %d: engine %v, Sample %v", i, g[i], w[i])
		}
	}
	if _, err := NewSampler(b, store, cfg, items+1, opts); err == nil {
		t.Error("an image longer than max_len − 1 accepted")
	}
}
