package nn

import (
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
)

// Block is one pre-norm Transformer block of docs/DESIGN.md §3:
// x += Attn(RMSNorm(x)); x += SwiGLU(RMSNorm(x)).
type Block struct {
	Attn   Attention
	Hidden int // SwiGLU hidden width
}

// Specs declares the block's weights under prefix, e.g. "blocks.3".
func (b Block) Specs(prefix string) []Spec {
	return append(b.Attn.Specs(prefix+".attn"), SwiGLUSpecs(prefix+".mlp", b.Attn.Dim, b.Hidden)...)
}

// Forward applies the block with attention as AttentionOptions describes:
// items at positions pos (rotary embeddings; nil for none), causal or not,
// with an optional cache.
func (b Block) Forward(w Weights, prefix string, x, pos *Node, causal bool, cache *KV) (*Node, *KV) {
	return b.ForwardWith(w, prefix, x, AttentionOptions{Pos: pos, RoPE: pos != nil, Causal: causal, Cache: cache})
}

// ForwardWith applies the block with attention exactly as opts says (RoPE,
// masks, cache), for masks Forward cannot express.
func (b Block) ForwardWith(w Weights, prefix string, x *Node, opts AttentionOptions) (*Node, *KV) {
	h, newCache := b.Attn.Forward(w, prefix+".attn", RMSNorm(x), opts)
	return b.finish(w, prefix, x, h), newCache
}

// ForwardProbs is ForwardWith that also returns the attention
// probabilities [B, H, T, S] (Attention.ForwardProbs).
func (b Block) ForwardProbs(w Weights, prefix string, x *Node, opts AttentionOptions) (*Node, *KV, *Node) {
	h, newCache, probs := b.Attn.ForwardProbs(w, prefix+".attn", RMSNorm(x), opts)
	return b.finish(w, prefix, x, h), newCache, probs
}

// finish adds the attention output h to the residual x and applies the MLP.
func (b Block) finish(w Weights, prefix string, x, h *Node) *Node {
	x = Add(x, h)
	return Add(x, SwiGLU(w, prefix+".mlp", RMSNorm(x)))
}

// Embed looks up rows of table [V, d] for integer ids of any shape.
func Embed(table, ids *Node) *Node {
	// int64 indices: ONNX Runtime's ScatterND, the gradient, rejects int32.
	return Gather(table, InsertAxes(ConvertDType(ids, dtypes.Int64), -1))
}

// CrossEntropy is the mean softmax cross-entropy of logits [..., V] against
// integer labels [...], weighted by mask [...] (1 counts, 0 ignores); it
// returns the weighted mean over counted items.
func CrossEntropy(logits, labels, mask *Node) *Node {
	logp := LogSoftmax(logits, -1)
	oneHot := OneHot(labels, logits.Shape().Dimensions[logits.Rank()-1], logits.DType())
	nll := Neg(ReduceSum(Mul(logp, oneHot), -1))
	if mask == nil {
		return ReduceAllMean(nll)
	}
	return Div(ReduceAllSum(Mul(nll, mask)), MaxScalar(ReduceAllSum(mask), 1))
}

// Conv2D is a stride-1, same-padded convolution of x [B, H, W, Cin] with
// kernel [k, k, Cin, Cout]. Only stride 1: ONNX Runtime cannot differentiate
// strided convolutions (docs/DESIGN.md §10), so resolution changes go through
// SpaceToDepth and Upsample instead.
func Conv2D(x, kernel *Node) *Node {
	return Convolve(x, kernel).PadSame().Done()
}

// SpaceToDepth folds each f×f block of x [B, H, W, C] into channels,
// giving [B, H/f, W/f, f·f·C] — a downsampling with an exact inverse.
func SpaceToDepth(x *Node, f int) *Node {
	d := x.Shape().Dimensions
	b, h, w, c := d[0], d[1], d[2], d[3]
	x = Reshape(x, b, h/f, f, w/f, f, c)
	x = TransposeAllAxes(x, 0, 1, 3, 2, 4, 5)
	return Reshape(x, b, h/f, w/f, f*f*c)
}

// DepthToSpace inverts SpaceToDepth.
func DepthToSpace(x *Node, f int) *Node {
	d := x.Shape().Dimensions
	b, h, w, c := d[0], d[1], d[2], d[3]/(f*f)
	x = Reshape(x, b, h, w, f, f, c)
	x = TransposeAllAxes(x, 0, 1, 3, 2, 4, 5)
	return Reshape(x, b, h*f, w*f, c)
}

// Upsample repeats each pixel of x [B, H, W, C] f×f times (nearest
// neighbour), by broadcasting rather than a transposed convolution.
func Upsample(x *Node, f int) *Node {
	d := x.Shape().Dimensions
	b, h, w, c := d[0], d[1], d[2], d[3]
	x = BroadcastToDims(Reshape(x, b, h, 1, w, 1, c), b, h, f, w, f, c)
	return Reshape(x, b, h*f, w*f, c)
}

// BlockMeanPool averages each f×f block of x [B, H, W, C], by reshape: pooling
// without a strided window op.
func BlockMeanPool(x *Node, f int) *Node {
	d := x.Shape().Dimensions
	b, h, w, c := d[0], d[1], d[2], d[3]
	return ReduceMean(Reshape(x, b, h/f, f, w/f, f, c), 2, 4)
}
