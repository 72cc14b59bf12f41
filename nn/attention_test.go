package nn_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/nn"
)

const attnDim, attnSeq, attnBatch = 16, 5, 2

var testAttn = nn.Attention{Dim: attnDim, Heads: 4, KVHeads: 2}

func attnStore(t *testing.T) *model.Store {
	t.Helper()
	store := model.NewStore()
	if err := nn.Init(store, scaled(testAttn.Specs("attn"), 10), 5, dtypes.Float64); err != nil {
		t.Fatal(err)
	}
	return store
}

func attnInput(seed uint64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 3))
	x := make([]float64, attnBatch*attnSeq*attnDim)
	for i := range x {
		x[i] = rng.NormFloat64()
	}
	return x
}

// attention runs Forward over x [attnBatch, attnSeq, attnDim] with opts
// made from the item positions 0…attnSeq−1.
func attention(t *testing.T, store *model.Store, x []float64, opts func(pos *Node) nn.AttentionOptions) ([]float64, error) {
	t.Helper()
	out, err := model.CallOnce(testutil.Backend(t, "go"), store, func(scope *model.Scope, xN *Node) *Node {
		pos := Iota(xN.Graph(), nn.Shape(dtypes.Float64, attnSeq), 0)
		y, _ := testAttn.Forward(nn.WeightsOf(scope.Store(), xN.Graph()), "attn", xN, opts(pos))
		return y
	}, tensors.FromFlatDataAndDimensions(x, attnBatch, attnSeq, attnDim))
	if err != nil {
		return nil, err
	}
	return tensors.MustCopyFlatData[float64](out), nil
}

// item returns item i of sequence b of a [attnBatch, attnSeq, attnDim] array.
func item(x []float64, b, i int) []float64 {
	k := (b*attnSeq + i) * attnDim
	return x[k : k+attnDim]
}

// TestAttentionOptions checks what each option does. Without RoPE,
// bidirectional attention is equivariant under a permutation of the items;
// with RoPE the positions break that. Causal attention, rotated or not,
// leaves item t unchanged by items after it. Options that need positions
// fail without them.
func TestAttentionOptions(t *testing.T) {
	store := attnStore(t)
	x := attnInput(1)
	perm := []int{3, 0, 4, 1, 2}
	permuted := make([]float64, len(x))
	for b := range attnBatch {
		for i, p := range perm {
			copy(item(permuted, b, i), item(x, b, p))
		}
	}
	equivariant := func(opts func(*Node) nn.AttentionOptions) float64 {
		a, err := attention(t, store, x, opts)
		if err != nil {
			t.Fatal(err)
		}
		p, err := attention(t, store, permuted, opts)
		if err != nil {
			t.Fatal(err)
		}
		var worst float64
		for b := range attnBatch {
			for i, q := range perm {
				worst = max(worst, testutil.RelErr(item(p, b, i), item(a, b, q)))
			}
		}
		return worst
	}
	if e := equivariant(func(*Node) nn.AttentionOptions { return nn.AttentionOptions{} }); e > 1e-12 {
		t.Errorf("attention without positions is not permutation-equivariant: %.3g", e)
	}
	rope := func(pos *Node) nn.AttentionOptions { return nn.AttentionOptions{Pos: pos, RoPE: true} }
	if e := equivariant(rope); e < 1e-3 {
		t.Errorf("RoPE left attention permutation-equivariant (%.3g)", e)
	}

	const j = 3
	changed := append([]float64(nil), x...)
	for b := range attnBatch {
		for c := range item(changed, b, j) {
			item(changed, b, j)[c] += 2
		}
	}
	for _, rot := range []bool{false, true} {
		opts := func(pos *Node) nn.AttentionOptions { return nn.AttentionOptions{Pos: pos, RoPE: rot, Causal: true} }
		a, err := attention(t, store, x, opts)
		if err != nil {
			t.Fatal(err)
		}
		c, err := attention(t, store, changed, opts)
		if err != nil {
			t.Fatal(err)
		}
		for b := range attnBatch {
			for i := range attnSeq {
				e := testutil.RelErr(item(c, b, i), item(a, b, i))
				if i < j && e != 0 {
					t.Errorf("RoPE %v: item %d changed by %.3g when item %d changed", rot, i, e, j)
				}
				if i >= j && e < 1e-6 {
					t.Errorf("RoPE %v: item %d unchanged by item %d", rot, i, j)
				}
			}
		}
	}

	for name, opts := range map[string]nn.AttentionOptions{
		"rope":   {RoPE: true},
		"causal": {Causal: true},
		"cache":  {Cache: &nn.KV{}},
	} {
		if _, err := attention(t, store, x, func(*Node) nn.AttentionOptions { return opts }); err == nil {
			t.Errorf("%s without positions accepted", name)
		}
	}
}

// TestAttentionCache decodes item by item through the fixed-length cache
// (after a two-item prefill) and compares with causal attention over the
// whole sequence.
func TestAttentionCache(t *testing.T) {
	store := attnStore(t)
	x := attnInput(2)
	full, err := attention(t, store, x, func(pos *Node) nn.AttentionOptions {
		return nn.AttentionOptions{Pos: pos, RoPE: true, Causal: true}
	})
	if err != nil {
		t.Fatal(err)
	}
	const maxLen = attnSeq + 2
	hd := testAttn.HeadDim()
	exec, err := model.NewExec(testutil.Backend(t, "go"), store, func(scope *model.Scope, xN, pos, k, v *Node) (*Node, *Node, *Node) {
		y, kv := testAttn.Forward(nn.WeightsOf(scope.Store(), xN.Graph()), "attn", xN,
			nn.AttentionOptions{Pos: pos, RoPE: true, Cache: &nn.KV{K: k, V: v}})
		return y, kv.K, kv.V
	})
	if err != nil {
		t.Fatal(err)
	}
	defer exec.Finalize()
	var k, v any = tensors.FromShape(nn.Shape(dtypes.Float64, attnBatch, maxLen, testAttn.KVHeads, hd)),
		tensors.FromShape(nn.Shape(dtypes.Float64, attnBatch, maxLen, testAttn.KVHeads, hd))
	for start := 0; start < attnSeq; {
		n := 1
		if start == 0 {
			n = 2
		}
		chunk := make([]float64, 0, attnBatch*n*attnDim)
		pos := make([]float64, n)
		for i := range pos {
			pos[i] = float64(start + i)
		}
		for b := range attnBatch {
			for i := start; i < start+n; i++ {
				chunk = append(chunk, item(x, b, i)...)
			}
		}
		outs, err := exec.Call(tensors.FromFlatDataAndDimensions(chunk, attnBatch, n, attnDim), tensors.FromFlatDataAndDimensions(pos, n), k, v)
		if err != nil {
			t.Fatal(err)
		}
		got := tensors.MustCopyFlatData[float64](outs[0])
		k, v = outs[1], outs[2]
		for b := range attnBatch {
			for i := range n {
				g := got[(b*n+i)*attnDim : (b*n+i+1)*attnDim]
				if e := testutil.RelErr(g, item(full, b, start+i)); e > 1e-12 {
					t.Errorf("item %d of sequence %d: cached and full attention differ by %.3g", start+i, b, e)
				}
			}
		}
		start += n
	}
}

// TestAttentionVisible: with Visible, each sequence's items see the keys up
// to their own bound. Sequence 0 opens a block of items 1…3 (each sees up
// to 3): changing item 2 changes items 1…4 and leaves item 0; sequence 1
// keeps the causal bound, where it leaves items 0 and 1.
func TestAttentionVisible(t *testing.T) {
	store := attnStore(t)
	x := attnInput(3)
	const j = 2
	changed := append([]float64(nil), x...)
	for b := range attnBatch {
		item(changed, b, j)[0] += 2
	}
	opts := func(pos *Node) nn.AttentionOptions {
		vis := Const(pos.Graph(), tensors.FromFlatDataAndDimensions([]float64{0, 3, 3, 3, 4, 0, 1, 2, 3, 4}, attnBatch, attnSeq))
		return nn.AttentionOptions{Pos: pos, RoPE: true, Causal: true, Visible: vis}
	}
	a, err := attention(t, store, x, opts)
	if err != nil {
		t.Fatal(err)
	}
	c, err := attention(t, store, changed, opts)
	if err != nil {
		t.Fatal(err)
	}
	first := []int{1, j} // the first item each sequence's change reaches
	for b := range attnBatch {
		for i := range attnSeq {
			e := testutil.RelErr(item(c, b, i), item(a, b, i))
			if i < first[b] && e != 0 {
				t.Errorf("sequence %d: item %d changed by %.3g when item %d changed", b, i, e, j)
			}
			if i >= first[b] && e < 1e-6 {
				t.Errorf("sequence %d: item %d unchanged by item %d", b, i, j)
			}
		}
	}
}

// TestAttentionGuided checks the guided attention penalty against a
// float64 computation on the host: the causal attention probabilities of
// head 3 (whose key head is 1, checking the grouped-query mapping) from
// the store's q and k weights, weighted by a random guide; and the output
// equals Forward's.
func TestAttentionGuided(t *testing.T) {
	store := attnStore(t)
	x := attnInput(4)
	const head = 3
	rng := rand.New(rand.NewPCG(9, 9))
	guide := make([]float64, attnBatch*attnSeq*attnSeq)
	for i := range guide {
		guide[i] = rng.Float64()
	}
	exec, err := model.NewExec(testutil.Backend(t, "go"), store, func(scope *model.Scope, xN, gN *Node) (*Node, *Node) {
		pos := Iota(xN.Graph(), nn.Shape(dtypes.Float64, attnSeq), 0)
		y, _, probs := testAttn.ForwardProbs(nn.WeightsOf(scope.Store(), xN.Graph()), "attn", xN, nn.AttentionOptions{Pos: pos, Causal: true})
		return y, nn.GuidePenalty(probs, gN, head)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer exec.Finalize()
	outs, err := exec.Call(tensors.FromFlatDataAndDimensions(x, attnBatch, attnSeq, attnDim), tensors.FromFlatDataAndDimensions(guide, attnBatch, attnSeq, attnSeq))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := attention(t, store, x, func(pos *Node) nn.AttentionOptions { return nn.AttentionOptions{Pos: pos, Causal: true} })
	if err != nil {
		t.Fatal(err)
	}
	if e := testutil.RelErr(tensors.MustCopyFlatData[float64](outs[0]), plain); e > 1e-12 {
		t.Errorf("guided output differs from Forward's by %.3g", e)
	}

	qkv := tensors.MustCopyFlatData[float64](store.GetVariable(nn.WeightsScope + "/attn.qkv.weight").MustValue())
	hd := testAttn.HeadDim()
	kvHead := head / (testAttn.Heads / testAttn.KVHeads)
	project := func(v []float64, row int) []float64 { // rows row…row+hd of qkv applied to v
		out := make([]float64, hd)
		for r := range hd {
			for c := range attnDim {
				out[r] += qkv[(row+r)*attnDim+c] * v[c]
			}
		}
		return out
	}
	want := 0.0
	for b := range attnBatch {
		for q := range attnSeq {
			qv := project(item(x, b, q), head*hd)
			scores := make([]float64, q+1)
			top := math.Inf(-1)
			for s := 0; s <= q; s++ {
				kv := project(item(x, b, s), attnDim+kvHead*hd)
				for j := range hd {
					scores[s] += qv[j] * kv[j]
				}
				scores[s] /= math.Sqrt(float64(hd))
				top = math.Max(top, scores[s])
			}
			sum := 0.0
			for s := range scores {
				scores[s] = math.Exp(scores[s] - top)
				sum += scores[s]
			}
			for s := range scores {
				want += scores[s] / sum * guide[(b*attnSeq+q)*attnSeq+s]
			}
		}
	}
	got := tensors.ToScalar[float64](outs[1])
	if math.Abs(got-want) > 1e-12*math.Abs(want) {
		t.Errorf("penalty %.15g, host reference %.15g", got, want)
	}
}
