package lm

import (
	"fmt"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/nn"
)

// Items is a batch of mixed sequences as graph nodes: Ids [B, L] (int32,
// ignored where latent), Latents [B, L, C] (ignored where not latent) and
// IsLatent [B, L] (1 where the item is a latent vector, else 0).
type Items struct {
	Ids, Latents, IsLatent *Node
}

// Slice returns items [from, to) along the sequence axis.
func (it Items) Slice(from, to int) Items {
	return Items{
		Ids:      SliceAxis(it.Ids, 1, AxisRange(from, to)),
		Latents:  SliceAxis(it.Latents, 1, AxisRange(from, to)),
		IsLatent: SliceAxis(it.IsLatent, 1, AxisRange(from, to)),
	}
}

// Embed maps each item to the backbone width: tokens through the embedding
// table, latents through x_embedder.
func (c Config) Embed(w nn.Weights, it Items) *Node {
	tok := nn.Embed(w.Get("tok_embeddings.weight"), it.Ids)
	lat := nn.Linear(it.Latents, w.Get("x_embedder.weight"))
	isLat := InsertAxes(it.IsLatent, -1)
	return Add(Mul(lat, isLat), Mul(tok, OneMinus(isLat)))
}

// Backbone runs the causal Transformer over items at positions pos [T] and
// returns the normalised hidden states RMSNorm(h) [B, T, d]. With caches (one
// per layer) it decodes incrementally and returns the updated caches.
func (c Config) Backbone(w nn.Weights, it Items, pos *Node, caches []*nn.KV) (*Node, []*nn.KV) {
	return c.backbone(w, it, pos, caches, nil)
}

// GuidedHead is the query head whose attention LossOptions.Guide guides,
// in each layer of the upper half of the backbone (GuidedLayer). The lower
// layers are left free: they see the items and their positions alone, and
// where the speech has got to in the text is something a layer can only
// find from what the layers below it have read.
const GuidedHead = 0

// GuidedLayer reports whether LossOptions.Guide guides layer i.
func (c Config) GuidedLayer(i int) bool { return i >= c.Depth/2 }

// GuidedLayers is the number of layers LossOptions.Guide guides: Losses.Align
// divided by it is the mean penalty of a guided layer.
func (c Config) GuidedLayers() int { return c.Depth - c.Depth/2 }

// backbone is Backbone that hands each layer's attention probabilities
// [B, H, T, S] to onProbs (when set): the guided attention penalty of the
// objective and Engine.Attention's picture read them there. Every layer
// computes them anyway, so the graph is Backbone's either way.
func (c Config) backbone(w nn.Weights, it Items, pos *Node, caches []*nn.KV, onProbs func(layer int, probs *Node)) (*Node, []*nn.KV) {
	x := c.Embed(w, it)
	b := c.block()
	var newCaches []*nn.KV
	for i := range c.Depth {
		var cache *nn.KV
		if caches != nil {
			cache = caches[i]
		}
		var kv *nn.KV
		var probs *Node
		x, kv, probs = b.ForwardProbs(w, fmt.Sprintf("blocks.%d", i), x, nn.AttentionOptions{Pos: pos, RoPE: pos != nil, Causal: true, Cache: cache})
		if onProbs != nil {
			onProbs(i, probs)
		}
		newCaches = append(newCaches, kv)
	}
	if caches == nil {
		newCaches = nil
	}
	return nn.RMSNorm(x), newCaches
}

// GuidedBackbone is Backbone without caches that also returns the guided
// attention penalty of guide [B, L, L] (L ≥ T, the items of it; its first
// T queries and keys are read, so a teacher-forced pass over items 0…L−2
// takes the whole sequence's guide): Σ p·guide of GuidedHead's attention
// probabilities p over the guided layers (GuidedLayer; nn.GuidePenalty).
// With guide nil it is Backbone, and the penalty is nil. LossWith and the
// VALL-E-style baseline's AR (multimodal.CodeLosses) read it.
func (c Config) GuidedBackbone(w nn.Weights, it Items, pos, guide *Node) (h, align *Node) {
	var onProbs func(int, *Node)
	if guide != nil {
		t := it.Ids.Shape().Dimensions[1]
		guide = Slice(guide, AxisRange(), AxisRange(0, t), AxisRange(0, t))
		onProbs = func(layer int, probs *Node) { // Σ over the guided layers
			if !c.GuidedLayer(layer) {
				return
			}
			p := nn.GuidePenalty(probs, guide, GuidedHead)
			if align != nil {
				p = Add(align, p)
			}
			align = p
		}
	}
	h, _ = c.backbone(w, it, pos, nil, onProbs)
	return h, align
}

// Logits is the softmax head over the discrete vocabulary.
func (c Config) Logits(w nn.Weights, h *Node) *Node {
	return nn.Linear(h, w.Get("lm_head.weight"))
}

// Condition is what the diffusion head is conditioned on: Linear(RMSNorm(h)).
// h from Backbone is already normalised.
func (c Config) Condition(w nn.Weights, h *Node) *Node {
	return nn.Linear(h, w.Get("condition_layer.linear.weight"))
}

// Head is the diffusion head: it predicts ε (or v) for noisy latents xt [N, C]
// at timesteps t [N] (float) given conditions cond [N, HeadDim].
func (c Config) Head(w nn.Weights, xt, t, cond *Node) *Node {
	temb := nn.TimestepEmbedding(t, timestepFeatures)
	temb = nn.Linear(nn.SiLU(nn.Linear(temb, w.Get("t_embedder.mlp.0.weight"))), w.Get("t_embedder.mlp.2.weight"))
	cvec := nn.SiLU(Add(cond, temb))
	x := nn.Linear(xt, w.Get("noisy_x_embedder.weight"))
	hw := c.HeadDim
	for j := range c.HeadDepth {
		p := fmt.Sprintf("diffusion_blocks.%d", j)
		mod := w.Get("%s.adaLN_modulation.1.weight", p)
		shift, scale, gate := nn.Chunk(cvec, mod, hw, 0), nn.Chunk(cvec, mod, hw, 1), nn.Chunk(cvec, mod, hw, 2)
		x = Add(x, Mul(gate, nn.SwiGLU(w, p+".mlp", nn.Modulate(nn.RMSNorm(x), shift, scale))))
	}
	mod := w.Get("final_layer.adaLN_modulation.1.weight")
	x = nn.Modulate(nn.RMSNorm(x), nn.Chunk(cvec, mod, hw, 0), nn.Chunk(cvec, mod, hw, 1))
	return nn.Linear(x, w.Get("final_layer.linear.weight"))
}

// Positions returns the float positions from, …, from+n−1.
func Positions(g *Graph, dtype dtypes.DType, from, n int) *Node {
	return AddScalar(Iota(g, nn.Shape(dtype, n), 0), float64(from))
}

// Losses are the terms of the training objective.
type Losses struct {
	Total, CE, Diffusion *Node
	// Align is the guided attention penalty (LossOptions.Guide), part of
	// Total; nil without a guide.
	Align *Node
}

// Loss is the teacher-forced objective over items [B, L] with valid [B, L]
// (1 for real items, 0 for padding): cross-entropy where the next item is a
// token, plus the diffusion loss where it is a latent, with batchMul noise
// draws (t, ε) per latent item from the store's RNG. It is LossWith with
// no options.
func (c Config) Loss(scope *model.Scope, w nn.Weights, it Items, valid *Node, sched *diffusion.Schedule, batchMul int) Losses {
	return c.LossWith(scope, w, it, valid, sched, batchMul, LossOptions{})
}

// LossOptions are optional terms of the objective. The zero value is the
// objective of docs/DESIGN.md §5.3, computed by the same graph, so a model
// trained without options is bit for bit what it was before they existed.
type LossOptions struct {
	// LatentTokens [B, L], when set, is 1 at latent items whose entry in
	// Items.Ids (ignored by the embedding there) is also a target of the
	// softmax head: the position before such an item is trained by
	// cross-entropy to predict that id as well as, by the diffusion loss,
	// the latent. Without it the softmax head is never trained where the
	// next item is a latent, so it cannot learn to say "not yet" inside a
	// segment and a segment that ends at <EOL> (Segment.StopAtEOL) stops
	// after its first latent (docs/DESIGN.md §7). Text-to-speech puts a
	// "continue" id there, so that at each speech position the head
	// chooses between going on and <EOL> (the paper's §3.3, where the
	// model decides the length of the speech; package tts).
	LatentTokens *Node
	// HeadRows, when set, [K] int32, are the positions, flattened as
	// b·(L−1)+t over the L−1 predicting positions, where the next item is
	// a latent target (Valid and IsLatent), and HeadRowWeights [K] float32
	// is 1 at each of them and 0 at the entries that only pad K (HeadRows
	// lays both out on the host). The diffusion head then runs on these K
	// rows alone instead of on every position, which is the same objective
	// (the other positions' terms are masked out anyway) for a fraction of
	// the head's work where latents are a small part of the sequence: in
	// text-to-speech the voice prompt, the text and the padding are about
	// four fifths of every row, and the head, batchMul draws a row, is
	// about half of a training step's matmuls.
	HeadRows, HeadRowWeights *Node
	// InputLatents, when set, [B, L, C], are the latents the backbone
	// reads in place of Items.Latents, which stay the diffusion targets:
	// noisier inputs than targets, so that the model cannot lean on the
	// latents before a position alone and must read its condition too
	// (text-to-speech's input noise, package tts; the role of Tacotron's
	// pre-net dropout, Shen et al., 2018).
	InputLatents *Node
	// Guide, when set, [B, L, L], weighs the attention probabilities of
	// GuidedHead in the guided layers (GuidedLayer): Losses.Align, added
	// to Total, is Σ p[b, t, s]·Guide[b, t, s] over the layers, queries t
	// and keys s of the backbone's L−1 positions (the last row and column
	// are unused). It is the guided attention loss of Tachibana et al.
	// (2017, arXiv 1710.08969, §4.1); the host chooses the weights, and so
	// the term's scale (tts.Format.Guide). Text-to-speech uses it to make
	// one head read the text in step with the speech.
	Guide *Node
	// noise, when set, replaces the draws of the diffusion timesteps and
	// noise from the store's RNG (tests compare the gathered head with the
	// full one on the same draws): m draws of [m] int32 and [m, C].
	noise func(g *Graph, m int) (ts, eps *Node)
}

// LossWith is Loss with optional terms (LossOptions).
func (c Config) LossWith(scope *model.Scope, w nn.Weights, it Items, valid *Node, sched *diffusion.Schedule, batchMul int, opts LossOptions) Losses {
	g := valid.Graph()
	length := it.Ids.Shape().Dimensions[1]
	in := it
	if opts.InputLatents != nil {
		in.Latents = opts.InputLatents
	}
	h, align := c.GuidedBackbone(w, in.Slice(0, length-1), Positions(g, dtypes.Float32, 0, length-1), opts.Guide)
	next := it.Slice(1, length)
	nextValid := SliceAxis(valid, 1, AxisRange(1, length))

	tokenMask := Mul(OneMinus(next.IsLatent), nextValid)
	if opts.LatentTokens != nil {
		nextTok := SliceAxis(opts.LatentTokens, 1, AxisRange(1, length))
		tokenMask = Add(tokenMask, Mul(Mul(next.IsLatent, nextTok), nextValid))
	}
	ce := nn.CrossEntropy(c.Logits(w, h), next.Ids, tokenMask)

	diff := c.diffusionLoss(scope, w, h, next.Latents, Mul(next.IsLatent, nextValid), sched, batchMul, opts)
	l := Losses{Total: Add(ce, diff), CE: ce, Diffusion: diff, Align: align}
	if align != nil {
		l.Total = Add(l.Total, align)
	}
	return l
}

// diffusionLoss is the diffusion term of the objective: the hidden states h
// [B, T, d] condition the clean latents x0 [B, T, C] where mask [B, T] is 1,
// with batchMul noise draws (t, ε) per item from the store's RNG; it is the
// mean over the masked draws of the squared error of the head's target.
// With opts.HeadRows only those rows of h, x0 and mask are kept (gathered)
// before the head runs.
func (c Config) diffusionLoss(scope *model.Scope, w nn.Weights, h, x0, mask *Node, sched *diffusion.Schedule, batchMul int, opts LossOptions) *Node {
	g := h.Graph()
	dims := h.Shape().Dimensions
	n := dims[0] * dims[1]
	x0 = Reshape(x0, n, c.Latent)
	latMask := Reshape(mask, n)
	var cond *Node
	if opts.HeadRows == nil {
		cond = Reshape(c.Condition(w, h), n, c.HeadDim)
	} else {
		rows := InsertAxes(ConvertDType(opts.HeadRows, dtypes.Int64), -1) // ONNX Runtime scatters (Gather's gradient) with int64 indices only
		cond = c.Condition(w, Gather(Reshape(h, n, dims[2]), rows))
		x0 = Gather(x0, rows)
		latMask = Mul(Gather(latMask, rows), opts.HeadRowWeights)
		n = opts.HeadRows.Shape().Dimensions[0]
	}
	tile := func(x *Node) *Node { // [n, …] → [batchMul·n, …]
		d := append([]int{batchMul}, x.Shape().Dimensions...)
		return Reshape(BroadcastToDims(InsertAxes(x, 0), d...), append([]int{batchMul * n}, x.Shape().Dimensions[1:]...)...)
	}
	cond, x0, latMask = tile(cond), tile(x0), tile(latMask)
	var ts, eps *Node
	if opts.noise != nil {
		ts, eps = opts.noise(g, batchMul*n)
	} else {
		ts = scope.RandomIntN(g, int32(sched.T), nn.Shape(dtypes.Int32, batchMul*n))
		eps = scope.RandomNormal(g, nn.Shape(dtypes.Float32, batchMul*n, c.Latent))
	}
	xt, want := sched.AddNoise(x0, eps, ts, c.Target)
	pred := c.Head(w, xt, ConvertDType(ts, dtypes.Float32), cond)
	perItem := ReduceMean(Square(Sub(pred, want)), -1)
	return Div(ReduceAllSum(Mul(perItem, latMask)), MaxScalar(ReduceAllSum(latMask), 1))
}
