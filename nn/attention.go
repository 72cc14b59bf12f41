package nn

import (
	"errors"
	"fmt"
	"math"

	"github.com/gomlx/gomlx/core/tensors"

	. "github.com/gomlx/gomlx/core/graph"
)

// Attention describes a multi-head attention layer with grouped-query
// attention: KVHeads ≤ Heads, and each group of Heads/KVHeads query heads
// shares one key and value head.
type Attention struct {
	Dim, Heads, KVHeads int
}

// HeadDim is the width of one head.
func (a Attention) HeadDim() int { return a.Dim / a.Heads }

// Specs declares the fused qkv projection (rows: all q heads, then k heads,
// then v heads, as in the public code) and the output projection.
func (a Attention) Specs(prefix string) []Spec {
	hd := a.HeadDim()
	return []Spec{
		{prefix + ".qkv.weight", []int{a.Dim + 2*a.KVHeads*hd, a.Dim}, InitStd},
		{prefix + ".proj.weight", []int{a.Dim, a.Dim}, InitStd},
	}
}

// KV is a fixed-length key/value cache of one layer, [B, MaxLen, KVHeads, HeadDim]
// each. Its length never changes, so decoding compiles one graph; positions
// not yet written are masked out by the causal mask.
type KV struct{ K, V *Node }

// AttentionOptions says how Attention.Forward relates the items of x to
// each other. The zero value is plain bidirectional attention over the T
// items of x, for inputs that already carry their positions (DiT's fixed
// embeddings).
type AttentionOptions struct {
	// Pos holds the absolute positions [T] (float) of the items of x, or
	// [B, T] when each sequence is at its own position (continuous
	// batching, where a sequence joins the batch at position 0 while the
	// others are mid-way). RoPE, Causal and Cache need it.
	Pos *Node
	// RoPE rotates queries and keys by Pos (rotary position embeddings).
	RoPE bool
	// Causal lets item t see only keys at positions ≤ Pos[t].
	Causal bool
	// Visible [B, T] (float), when set with Causal or Cache, moves each
	// item's bound: item t of sequence b sees the keys at positions
	// ≤ Visible[b, t] instead of ≤ Pos[t]. A block of items that all see
	// up to the block's last position attends bidirectionally inside
	// itself and causally to what precedes it: the mask of Transfusion
	// (Zhou et al., 2024, arXiv 2408.11039, §3), where the latents of
	// one image see each other and everything before the image.
	Visible *Node
	// Cache, when set, is the layer's fixed-length key/value cache: the
	// new keys and values are written into it at Pos, attention runs over
	// the whole cache (slots after Pos masked out, as if Causal), and
	// Forward returns the updated cache.
	Cache *KV
}

// Forward runs attention over x [B, T, Dim] as opts says. It returns the
// output [B, T, Dim] and, with opts.Cache, the updated cache (else nil).
func (a Attention) Forward(w Weights, prefix string, x *Node, opts AttentionOptions) (*Node, *KV) {
	out, cache, _ := a.ForwardProbs(w, prefix, x, opts)
	return out, cache
}

// ForwardProbs is Forward that also returns the attention probabilities
// [B, H, T, S] (S the keys: T, or the cache's length), for a loss on where
// heads look (GuidePenalty) or a picture of it.
func (a Attention) ForwardProbs(w Weights, prefix string, x *Node, opts AttentionOptions) (*Node, *KV, *Node) {
	if opts.Pos == nil && (opts.RoPE || opts.Causal || opts.Cache != nil) {
		// An error, not a string: GoMLX turns only error panics of a graph
		// function into an error of the call.
		panic(errors.New("nn.Attention: rotary embeddings, causal attention and caches need positions (AttentionOptions.Pos)"))
	}
	batch, seqLen := x.Shape().Dimensions[0], x.Shape().Dimensions[1]
	hd := a.HeadDim()
	// The fused qkv weight is split by rows and applied as three products:
	// splitting the weight is a cheap gather, splitting the activations
	// would put a large scatter in the backward pass.
	qkv := w.Get("%s.qkv.weight", prefix)
	kvDim := a.KVHeads * hd
	q := Reshape(Linear(x, Rows(qkv, 0, a.Dim)), batch, seqLen, a.Heads, hd)
	k := Reshape(Linear(x, Rows(qkv, a.Dim, a.Dim+kvDim)), batch, seqLen, a.KVHeads, hd)
	v := Reshape(Linear(x, Rows(qkv, a.Dim+kvDim, a.Dim+2*kvDim)), batch, seqLen, a.KVHeads, hd)
	pos, cache := opts.Pos, opts.Cache
	if opts.RoPE {
		q = RoPE(q, pos)
		k = RoPE(k, pos)
	}

	keyPos := pos
	var newCache *KV
	if cache != nil {
		maxLen := cache.K.Shape().Dimensions[1]
		var update func(c, n *Node) *Node
		if pos.Rank() == 1 {
			// write[t, s] = 1 where item t goes into slot s. A product with
			// this one-hot matrix writes the cache without
			// DynamicUpdateSlice, which neither CPU backend implements.
			slots := Iota(x.Graph(), Shape(x.DType(), 1, maxLen), 1)
			write := ConvertDType(Equal(InsertAxes(pos, -1), slots), x.DType()) // [T, S]
			keep := OneMinus(ReduceSum(write, 0))                               // [S]
			update = func(c, n *Node) *Node {
				written := DotGeneral(write, []int{0}, nil, n, []int{1}, nil) // [S, B, KV, hd]
				written = TransposeAllAxes(written, 1, 0, 2, 3)
				return Add(Mul(c, Reshape(keep, 1, maxLen, 1, 1)), written)
			}
		} else {
			// Per sequence: write[b, t, s] = 1 where item t of sequence b
			// goes into slot s, and the same one-hot product batched over
			// b. A scatter at the positions would do too, but this keeps
			// to the ops the [T] form already needs of every backend. A
			// product with one 1 and zeros is exact, so where every
			// sequence shares a position it writes the same values as the
			// [T] form.
			slots := Iota(x.Graph(), Shape(x.DType(), 1, 1, maxLen), 2)
			write := ConvertDType(Equal(InsertAxes(pos, -1), slots), x.DType()) // [B, T, S]
			keep := OneMinus(ReduceSum(write, 1))                               // [B, S]
			update = func(c, n *Node) *Node {
				written := DotGeneral(write, []int{1}, []int{0}, n, []int{1}, []int{0}) // [B, S, KV, hd]
				return Add(Mul(c, Reshape(keep, batch, maxLen, 1, 1)), written)
			}
		}
		newCache = &KV{K: update(cache.K, k), V: update(cache.V, v)}
		k, v = newCache.K, newCache.V
		keyPos = Iota(x.Graph(), Shape(x.DType(), maxLen), 0)
	}
	queryPos := pos
	if opts.Visible != nil {
		queryPos = opts.Visible
	}
	out, probs := attend(q, k, v, queryPos, keyPos, opts.Causal || cache != nil)
	out = Reshape(out, batch, seqLen, a.Dim)
	return Linear(out, w.Get("%s.proj.weight", prefix)), newCache, probs
}

// attend computes softmax(q·kᵀ/√hd)·v with q [B,T,H,hd], k and v [B,S,KV,hd];
// with causal, query t (of sequence b) sees the keys at keyPos [S] (or
// [B, S]) up to queryPos [T] (or [B, T]). It returns the output and the
// probabilities [B, H, T, S].
func attend(q, k, v, queryPos, keyPos *Node, causal bool) (*Node, *Node) {
	dims := q.Shape().Dimensions
	batch, seqLen, heads, hd := dims[0], dims[1], dims[2], dims[3]
	kvLen, kvHeads := k.Shape().Dimensions[1], k.Shape().Dimensions[2]
	if group := heads / kvHeads; group > 1 {
		expand := func(x *Node) *Node {
			x = BroadcastToDims(InsertAxes(x, 3), batch, kvLen, kvHeads, group, hd)
			return Reshape(x, batch, kvLen, heads, hd)
		}
		k, v = expand(k), expand(v)
	}
	scores := DotGeneral(q, []int{3}, []int{0, 2}, k, []int{3}, []int{0, 2}) // [B, H, T, S]
	scores = MulScalar(scores, 1/math.Sqrt(float64(hd)))
	if causal {
		var allowed *Node
		if queryPos.Rank() == 2 || keyPos.Rank() == 2 { // per sequence: [B, 1, T, S]
			kb, qb := 1, 1 // leading dimensions of the two
			if keyPos.Rank() == 2 {
				kb = batch
			}
			if queryPos.Rank() == 2 {
				qb = batch
			}
			allowed = LessOrEqual(Reshape(keyPos, kb, 1, 1, kvLen), Reshape(queryPos, qb, 1, seqLen, 1))
		} else {
			allowed = LessOrEqual(InsertAxes(keyPos, 0), InsertAxes(queryPos, -1)) // [T, S]
			allowed = Reshape(allowed, 1, 1, seqLen, kvLen)
		}
		allowed = BroadcastToDims(allowed, batch, heads, seqLen, kvLen)
		scores = Where(allowed, scores, BroadcastToDims(Scalar(q.Graph(), q.DType(), -1e9), batch, heads, seqLen, kvLen))
	}
	probs := Softmax(scores, -1)
	out := DotGeneral(probs, []int{3}, []int{0, 1}, v, []int{1}, []int{0, 2}) // [B, H, T, hd]
	return TransposeAllAxes(out, 0, 2, 1, 3), probs
}

// GuidePenalty is Σ_{b,t,s} p[b, head, t, s]·guide[b, t, s]: the attention
// probabilities probs [B, H, T, S] of query head `head` weighted by guide
// [B, T, S]. It is the guided attention loss of Tachibana et al. (2017,
// arXiv 1710.08969, §4.1), which makes a text-to-speech model's attention
// find the text it is saying early in training, when guide is small near
// the diagonal of text against speech and large elsewhere
// (tts.Format.Guide).
func GuidePenalty(probs, guide *Node, head int) *Node {
	heads := probs.Shape().Dimensions[1]
	if head < 0 || head >= heads {
		// An error, not a string: GoMLX turns only error panics of a graph
		// function into an error of the call.
		panic(fmt.Errorf("nn.GuidePenalty: head %d of %d", head, heads))
	}
	// One head's probabilities by a one-hot mask over the heads rather than
	// a slice: the gradient of a slice is a Pad, which ONNX Runtime lacks.
	mask := make([]float64, heads)
	mask[head] = 1
	weights := Mul(InsertAxes(guide, 1), Reshape(Const(probs.Graph(), Tensor(mask, probs.DType(), heads)), 1, heads, 1, 1))
	return ReduceAllSum(Mul(probs, weights))
}

// RoPE rotates interleaved pairs (2j, 2j+1) of the last axis of x [B,T,H,hd]
// by pos[t]·f_j (pos [T]; or pos[b, t]·f_j with pos [B, T], each sequence at
// its own positions) with f_j = 10000^(−j/(hd/2−1)), the spacing of the
// public code.
// It is written as x·cos + rot(x)·sin, rot(x₀, x₁) = (−x₁, x₀), with the pair
// swap a product with a constant matrix: slicing would need Pad in the
// gradient, which ONNX Runtime lacks, and Reverse has no gradient in GoMLX.
func RoPE(x, pos *Node) *Node {
	dims := x.Shape().Dimensions
	seqLen, hd := dims[1], dims[3]
	half := hd / 2
	freqs := make([]float64, hd)
	for j := range half {
		e := 0.0
		if half > 1 {
			e = float64(j) / float64(half-1)
		}
		freqs[2*j] = math.Pow(10000, -e)
		freqs[2*j+1] = freqs[2*j]
	}
	g := x.Graph()
	rows := 1
	f := InsertAxes(Const(g, Tensor(freqs, x.DType(), hd)), 0) // [1, hd]
	if pos.Rank() == 2 {
		rows = dims[0]
		f = InsertAxes(f, 0) // [1, 1, hd]
	}
	angles := Mul(InsertAxes(pos, -1), f) // [T, hd] or [B, T, hd]
	cos := Reshape(Cos(angles), rows, seqLen, 1, hd)
	sin := Reshape(Sin(angles), rows, seqLen, 1, hd)
	// rot(x) = x·P with P the [hd, hd] matrix taking each pair (x₀, x₁) to
	// (−x₁, x₀): one small product, which backends run well.
	perm := make([]float64, hd*hd)
	for j := range half {
		perm[(2*j+1)*hd+2*j] = -1 // out[2j] = −x[2j+1]
		perm[(2*j)*hd+2*j+1] = 1  // out[2j+1] = x[2j]
	}
	rot := DotGeneral(x, []int{3}, nil, Const(g, Tensor(perm, x.DType(), hd, hd)), []int{0}, nil)
	return Add(Mul(x, cos), Mul(rot, sin))
}

// Rows returns rows [from, to) of a weight matrix w [out, in], for applying a
// fused weight (qkv, adaLN) piece by piece.
func Rows(w *Node, from, to int) *Node { return Take(w, 0, from, to) }

// Take returns x[..., from:to, ...] along axis. It gathers instead of
// slicing because the gradient of a slice is a Pad, which ONNX Runtime does
// not implement; a gather's gradient is a scatter-add, which it does.
func Take(x *Node, axis, from, to int) *Node {
	if axis < 0 {
		axis += x.Rank()
	}
	perm := make([]int, x.Rank())
	perm[0] = axis
	for i, j := 0, 1; i < x.Rank(); i++ {
		if i != axis {
			perm[j] = i
			j++
		}
	}
	idx := make([]int64, to-from)
	for i := range idx {
		idx[i] = int64(from + i)
	}
	moved := TransposeAllAxes(x, perm...)
	taken := Gather(moved, Const(x.Graph(), tensors.FromFlatDataAndDimensions(idx, len(idx), 1)))
	inv := make([]int, len(perm))
	for i, p := range perm {
		inv[p] = i
	}
	return TransposeAllAxes(taken, inv...)
}
