package lm

import (
	"math"
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

func goldenGet(t *testing.T, f *safetensors.File, name string) []float32 {
	x, ok := f.Get(name)
	if !ok {
		t.Fatalf("missing %s", name)
	}
	v, err := x.Float32()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func goldenDiff(a, b []float32) (float64, float64) {
	d, m := 0.0, 0.0
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
		m = math.Max(m, math.Abs(float64(b[i])))
	}
	return d, m
}

// TestPyTorchGolden compares the shipped MNIST model with the outputs of
// scripts/pytorch/latentlm_reference.py, an independent PyTorch restatement
// of the public LatentLM code (microsoft/unilm LatentLM/models/Transformer.py
// and DiT.py, schedule/dpm_solver.py), run on the same weights and inputs
// in our sequence layout: the backbone's normed hidden states and the
// conditions, the diffusion head, and 20-step DPM-Solver++ sampling with
// CFG 4 from fixed noise over four latents. Tolerances follow from float32:
// 1e-4 of the largest value for the forward pass, 1e-3 for sampling chains.
// The reference files are committed, so this runs without Python.
func TestPyTorchGolden(t *testing.T) {
	b := testutil.Backend(t, "")
	cfg, store, _, err := Load("../weights/latentlm-mnist")
	if err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Load("../testdata/pytorch/latentlm_reference.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	C, d := cfg.Latent, cfg.Dim
	labels := []int{3, 7}
	z := goldenGet(t, f, "backbone.latents")
	L := 5
	cond := func(labs []int, zs []float32, k int) ([]float32, []float32) {
		n := len(labs)
		L := 2 + k
		ids := make([]int32, n*L)
		lat := make([]float32, n*L*C)
		isl := make([]float32, n*L)
		for i, l := range labs {
			ids[i*L] = int32(l)
			ids[i*L+1] = int32(cfg.Vocab.BOL())
			for j := 0; j < k; j++ {
				isl[i*L+2+j] = 1
				copy(lat[(i*L+2+j)*C:(i*L+3+j)*C], zs[(i*k+j)*C:(i*k+j+1)*C])
			}
		}
		run := func(which int) []float32 {
			out, err := model.CallOnce(b, store, func(scope *model.Scope, idsN, latN, islN *Node) *Node {
				w := nn.WeightsOf(scope.Store(), idsN.Graph())
				h, _ := cfg.Backbone(w, Items{idsN, latN, islN}, Positions(idsN.Graph(), dtypes.Float32, 0, L), nil)
				if which == 0 {
					return h
				}
				return cfg.Condition(w, h)
			}, tensors.FromFlatDataAndDimensions(ids, n, L), tensors.FromFlatDataAndDimensions(lat, n, L, C), tensors.FromFlatDataAndDimensions(isl, n, L))
			if err != nil {
				t.Fatal(err)
			}
			return tensors.MustCopyFlatData[float32](out)
		}
		return run(0), run(1)
	}
	h, c := cond(labels, z, L-2)
	dh, mh := goldenDiff(h, goldenGet(t, f, "backbone.hidden_normed"))
	dc, mc := goldenDiff(c, goldenGet(t, f, "backbone.conditions"))
	t.Logf("backbone hidden_normed max|diff| %.3g (max %.3g); conditions %.3g (max %.3g)", dh, mh, dc, mc)
	if dh > 1e-4*mh || dc > 1e-4*mc {
		t.Errorf("backbone differs from PyTorch: hidden %.3g of %.3g, conditions %.3g of %.3g (tolerance 1e-4 relative)", dh, mh, dc, mc)
	}

	xt, ht, hc := goldenGet(t, f, "head.xt"), goldenGet(t, f, "head.t"), goldenGet(t, f, "head.cond")
	out, err := model.CallOnce(b, store, func(scope *model.Scope, x, tt, cc *Node) *Node {
		return cfg.Head(nn.WeightsOf(scope.Store(), x.Graph()), x, tt, cc)
	}, tensors.FromFlatDataAndDimensions(xt, 4, C), tensors.FromFlatDataAndDimensions(ht, 4), tensors.FromFlatDataAndDimensions(hc, 4, d))
	if err != nil {
		t.Fatal(err)
	}
	dho, mho := goldenDiff(tensors.MustCopyFlatData[float32](out), goldenGet(t, f, "head.out"))
	t.Logf("head out max|diff| %.3g (max %.3g)", dho, mho)
	if dho > 1e-4*mho {
		t.Errorf("diffusion head differs from PyTorch: %.3g of %.3g (tolerance 1e-4 relative)", dho, mho)
	}

	sched := diffusion.Cosine(1000)
	goPlan, _ := sched.DPMSolverPP(20, diffusion.LambdaMinClipped)
	refPlanT, _ := f.Get("dpm20.plan")
	rp, _ := refPlanT.Float64()
	refPlan := make(diffusion.Plan, 20)
	worst := 0.0
	for i := range refPlan {
		refPlan[i] = diffusion.Step{T: int(rp[4*i]), A: rp[4*i+1], B: rp[4*i+2], C: rp[4*i+3]}
		g := goPlan[i]
		same := func(j int) bool { return j < 0 || j >= 20 || goPlan[j].T == int(rp[4*j]) }
		if !same(i-1) || !same(i+1) {
			continue
		}
		if g.T != refPlan[i].T {
			t.Errorf("plan step %d: t=%d, diffusers has %d", i, g.T, refPlan[i].T)
			continue
		}
		for _, p := range [][2]float64{{g.A, refPlan[i].A}, {g.B, refPlan[i].B}, {g.C, refPlan[i].C}} {
			worst = math.Max(worst, math.Abs(p[0]-p[1]))
		}
	}
	t.Logf("plan coefficients max|diff|: %.3g", worst)
	if worst > 1e-12 {
		t.Errorf("solver coefficients differ from diffusers' by %.3g", worst)
	}

	noise := goldenGet(t, f, "sample.noise")
	want := goldenGet(t, f, "sample.latents")
	K := 4
	for _, pc := range []struct {
		name string
		plan diffusion.Plan
	}{{"reference timesteps", refPlan}, {"go DPMSolverPP timesteps", goPlan}} {
		zs := make([]float32, 0)
		gen := make([][]float32, 2)
		for k := 0; k < K; k++ {
			both := []int{labels[0], labels[1], cfg.Vocab.Null(), cfg.Vocab.Null()}
			prefix := make([]float32, 0)
			for s := 0; s < 4; s++ {
				prefix = append(prefix, zs[(s%2)*k*C:(s%2+1)*k*C]...)
			}
			_, cc := cond(both, prefix, k)
			L := 2 + k
			last := make([]float32, 4*d)
			for s := 0; s < 4; s++ {
				copy(last[s*d:(s+1)*d], cc[(s*L+L-1)*d:(s*L+L)*d])
			}
			x0 := make([]float32, 2*C)
			for i := 0; i < 2; i++ {
				copy(x0[i*C:(i+1)*C], noise[(i*K+k)*C:(i*K+k+1)*C])
			}
			res, err := model.CallOnce(b, store, func(scope *model.Scope, x, cn *Node) *Node {
				w := nn.WeightsOf(scope.Store(), x.Graph())
				den := diffusion.Guided(func(xx, tt *Node) *Node { return cfg.Head(w, xx, tt, cn) }, 4)
				return sched.Run(pc.plan, x, diffusion.Epsilon, den, nil)
			}, tensors.FromFlatDataAndDimensions(x0, 2, C), tensors.FromFlatDataAndDimensions(last, 4, d))
			if err != nil {
				t.Fatal(err)
			}
			r := tensors.MustCopyFlatData[float32](res)
			for i := 0; i < 2; i++ {
				gen[i] = append(gen[i], r[i*C:(i+1)*C]...)
			}
			zs = append(append([]float32{}, gen[0]...), gen[1]...)
		}
		for k := 0; k < K; k++ {
			var a, w []float32
			for i := 0; i < 2; i++ {
				a = append(a, zs[(i*K+k)*C:(i*K+k+1)*C]...)
				w = append(w, want[(i*K+k)*C:(i*K+k+1)*C]...)
			}
			ds, ms := goldenDiff(a, w)
			t.Logf("sampling (%s) z%d: max|diff| %.3g (max %.3g)", pc.name, k, ds, ms)
			if ds > 1e-3*ms {
				t.Errorf("sampling with %s, latent %d, differs from PyTorch: %.3g of %.3g (tolerance 1e-3 relative)", pc.name, k, ds, ms)
			}
		}
	}
}
