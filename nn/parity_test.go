package nn_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/nn"
)

// input is one test input: float values, or integer ids when ints is set.
type input struct {
	dims []int
	vals []float64
	ints []int32
}

func randInput(rng *rand.Rand, dims ...int) input {
	n := 1
	for _, d := range dims {
		n *= d
	}
	v := make([]float64, n)
	for i := range v {
		v[i] = rng.NormFloat64()
	}
	return input{dims: dims, vals: v}
}

type parityCase struct {
	name   string
	specs  []nn.Spec
	inputs func(rng *rand.Rand) []input
	fn     func(w nn.Weights, in []*Node) *Node
}

// evaluate runs a case on backend b in dtype and returns the output followed
// by the gradients of a fixed projection of it (weights sin(1.3·i+0.1)) with
// respect to every float input and every weight, each flattened to float64.
func evaluate(t *testing.T, b compute.Backend, dtype dtypes.DType, c parityCase, seed uint64) [][]float64 {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	ins := c.inputs(rng)
	store := model.NewStore()
	if err := nn.Init(store, c.specs, seed, dtype); err != nil {
		t.Fatal(err)
	}
	args := make([]any, 0, len(ins))
	for _, in := range ins {
		if in.ints != nil {
			args = append(args, tensors.FromFlatDataAndDimensions(append([]int32(nil), in.ints...), in.dims...))
		} else {
			args = append(args, nn.Tensor(in.vals, dtype, in.dims...))
		}
	}
	exec, err := model.NewExec(b, store, func(scope *model.Scope, nodes []*Node) []*Node {
		g := nodes[0].Graph()
		w := nn.WeightsOf(scope.Store(), g)
		out := c.fn(w, nodes)
		proj := Const(g, nn.Tensor(projection(out.Shape().Size()), dtype, out.Shape().Dimensions...))
		loss := ReduceAllSum(Mul(out, proj))
		var wrt []*Node
		for i, in := range ins {
			if in.ints == nil {
				wrt = append(wrt, nodes[i])
			}
		}
		for _, s := range c.specs {
			wrt = append(wrt, w.Get("%s", s.Name))
		}
		return append([]*Node{out}, Gradient(loss, wrt...)...)
	})
	if err != nil {
		t.Fatal(err)
	}
	outs, err := exec.Call(args...)
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	res := make([][]float64, len(outs))
	for i, o := range outs {
		res[i] = toFloat64(o)
	}
	return res
}

// projection is a fixed, non-trivial weighting of the outputs, computed in
// float64 on the host so that both dtypes see the same values.
func projection(n int) []float64 {
	p := make([]float64, n)
	for i := range p {
		p[i] = math.Sin(1.3*float64(i) + 0.1)
	}
	return p
}

func toFloat64(t *tensors.Tensor) []float64 {
	switch t.DType() {
	case dtypes.Float64:
		return tensors.MustCopyFlatData[float64](t)
	case dtypes.Float32:
		f := tensors.MustCopyFlatData[float32](t)
		r := make([]float64, len(f))
		for i, v := range f {
			r[i] = float64(v)
		}
		return r
	}
	panic(fmt.Sprintf("unexpected dtype %s", t.DType()))
}

func parityCases() []parityCase {
	const d, heads, kvHeads, seq, batch = 32, 4, 2, 6, 2
	attn := nn.Attention{Dim: d, Heads: heads, KVHeads: kvHeads}
	block := nn.Block{Attn: attn, Hidden: 64}
	pos := func(in []*Node) *Node { return Iota(in[0].Graph(), nn.Shape(in[0].DType(), seq), 0) }
	return []parityCase{
		{
			name:   "dense",
			specs:  []nn.Spec{{"w", []int{24, d}, 0.2}},
			inputs: func(r *rand.Rand) []input { return []input{randInput(r, batch, seq, d)} },
			fn:     func(w nn.Weights, in []*Node) *Node { return nn.Linear(in[0], w.Get("w")) },
		},
		{
			name:   "rmsnorm",
			inputs: func(r *rand.Rand) []input { return []input{randInput(r, batch, seq, d)} },
			fn:     func(_ nn.Weights, in []*Node) *Node { return nn.RMSNorm(in[0]) },
		},
		{
			name:   "swiglu",
			specs:  nn.SwiGLUSpecs("mlp", d, 64),
			inputs: func(r *rand.Rand) []input { return []input{randInput(r, batch, seq, d)} },
			fn:     func(w nn.Weights, in []*Node) *Node { return nn.SwiGLU(w, "mlp", in[0]) },
		},
		{
			name:   "rope",
			inputs: func(r *rand.Rand) []input { return []input{randInput(r, batch, seq, heads, d/heads)} },
			fn:     func(_ nn.Weights, in []*Node) *Node { return nn.RoPE(in[0], pos(in)) },
		},
		{
			name:   "causal_attention_gqa_rope",
			specs:  scaled(attn.Specs("attn"), 10),
			inputs: func(r *rand.Rand) []input { return []input{randInput(r, batch, seq, d)} },
			fn: func(w nn.Weights, in []*Node) *Node {
				out, _ := attn.Forward(w, "attn", in[0], nn.AttentionOptions{Pos: pos(in), RoPE: true, Causal: true})
				return out
			},
		},
		{
			name:   "transformer_block",
			specs:  scaled(block.Specs("blocks.0"), 10),
			inputs: func(r *rand.Rand) []input { return []input{randInput(r, batch, seq, d)} },
			fn: func(w nn.Weights, in []*Node) *Node {
				out, _ := block.Forward(w, "blocks.0", in[0], pos(in), true, nil)
				return out
			},
		},
		{
			name:   "conv2d_stride1",
			specs:  []nn.Spec{{"k", []int{3, 3, 3, 5}, 0.3}},
			inputs: func(r *rand.Rand) []input { return []input{randInput(r, batch, 8, 8, 3)} },
			fn:     func(w nn.Weights, in []*Node) *Node { return nn.Conv2D(in[0], w.Get("k")) },
		},
		{
			name:   "space_to_depth",
			inputs: func(r *rand.Rand) []input { return []input{randInput(r, batch, 8, 8, 3)} },
			fn:     func(_ nn.Weights, in []*Node) *Node { return nn.SpaceToDepth(in[0], 2) },
		},
		{
			name:   "upsample",
			inputs: func(r *rand.Rand) []input { return []input{randInput(r, batch, 4, 4, 3)} },
			fn:     func(_ nn.Weights, in []*Node) *Node { return nn.Upsample(in[0], 2) },
		},
		{
			name:   "take",
			inputs: func(r *rand.Rand) []input { return []input{randInput(r, batch, seq, 12)} },
			fn:     func(_ nn.Weights, in []*Node) *Node { return nn.Take(in[0], 2, 3, 9) },
		},
		{
			name:  "embedding",
			specs: []nn.Spec{{"table", []int{11, d}, 1}},
			inputs: func(r *rand.Rand) []input {
				ids := make([]int32, batch*seq)
				for i := range ids {
					ids[i] = int32(r.IntN(11))
				}
				return []input{{dims: []int{batch, seq}, ints: ids}}
			},
			fn: func(w nn.Weights, in []*Node) *Node { return nn.Embed(w.Get("table"), in[0]) },
		},
		{
			name: "softmax_cross_entropy",
			inputs: func(r *rand.Rand) []input {
				ids := make([]int32, batch*seq)
				for i := range ids {
					ids[i] = int32(r.IntN(11))
				}
				return []input{randInput(r, batch, seq, 11), {dims: []int{batch, seq}, ints: ids}}
			},
			fn: func(_ nn.Weights, in []*Node) *Node { return nn.CrossEntropy(in[0], in[1], nil) },
		},
		{
			name:   "timestep_embedding",
			inputs: func(r *rand.Rand) []input { return []input{randInput(r, 7)} },
			fn: func(_ nn.Weights, in []*Node) *Node {
				return nn.TimestepEmbedding(MulScalar(in[0], 300), 256)
			},
		},
	}
}

// scaled multiplies the init std of specs, so that attention logits are far
// from uniform and the test exercises the softmax.
func scaled(specs []nn.Spec, f float64) []nn.Spec {
	out := append([]nn.Spec(nil), specs...)
	for i := range out {
		out[i].Std *= f
	}
	return out
}

// TestBackendParity runs every op and layer the models use on onnx and on go,
// forward and backward, on fresh random inputs, and requires them to agree to
// 1e-5 normwise relative error. Both are also checked against a float64 run,
// the independent reference, to float32 accuracy.
func TestBackendParity(t *testing.T) {
	onnx := testutil.Backend(t, "onnx")
	gob := testutil.Backend(t, "go")
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	for _, c := range parityCases() {
		t.Run(c.name, func(t *testing.T) {
			a := evaluate(t, onnx, dtypes.Float32, c, seed)
			b := evaluate(t, gob, dtypes.Float32, c, seed)
			ref := evaluate(t, gob, dtypes.Float64, c, seed)
			for i := range a {
				what := "output"
				if i > 0 {
					what = fmt.Sprintf("gradient %d", i-1)
				}
				if e := testutil.RelErr(a[i], b[i]); e > 1e-5 || math.IsNaN(e) {
					t.Errorf("%s: onnx vs go relative error %.3g > 1e-5", what, e)
				}
				// float32 against float64: rounding of float32 itself is the
				// floor here (sinusoids of t up to 300 lose ~1e-5), so 1e-4.
				if e := testutil.RelErr(a[i], ref[i]); e > 1e-4 || math.IsNaN(e) {
					t.Errorf("%s: onnx vs float64 relative error %.3g > 1e-4", what, e)
				}
			}
		})
	}
}

// TestNormalSampling checks the in-graph normal generator on each backend:
// mean, variance and kurtosis of 2¹⁸ draws within 5 standard errors.
func TestNormalSampling(t *testing.T) {
	for _, name := range []string{"onnx", "go"} {
		t.Run(name, func(t *testing.T) {
			b := testutil.Backend(t, name)
			store := model.NewStore()
			if err := store.SetRNGStateFromSeed(int64(rand.Uint32())); err != nil {
				t.Fatal(err)
			}
			const n = 1 << 18
			out, err := model.CallOnce(b, store, func(scope *model.Scope, g *Graph) *Node {
				return scope.RandomNormal(g, nn.Shape(dtypes.Float32, n))
			})
			if err != nil {
				t.Fatal(err)
			}
			x := toFloat64(out)
			var m1, m2, m4 float64
			for _, v := range x {
				m1 += v
			}
			m1 /= n
			for _, v := range x {
				d := v - m1
				m2 += d * d
				m4 += d * d * d * d
			}
			m2 /= n
			m4 /= n
			kurt := m4 / (m2 * m2)
			// Standard errors for N(0,1): mean 1/√n, variance √(2/n), kurtosis √(24/n).
			if math.Abs(m1) > 5/math.Sqrt(n) {
				t.Errorf("mean %.4g, want 0 ± %.3g", m1, 5/math.Sqrt(n))
			}
			if math.Abs(m2-1) > 5*math.Sqrt(2.0/n) {
				t.Errorf("variance %.4g, want 1 ± %.3g", m2, 5*math.Sqrt(2.0/n))
			}
			if math.Abs(kurt-3) > 5*math.Sqrt(24.0/n) {
				t.Errorf("kurtosis %.4g, want 3 ± %.3g", kurt, 5*math.Sqrt(24.0/n))
			}
		})
	}
}
