package transfusion

import (
	"fmt"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/multimodal"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/vae"
)

// Visible is the attention mask of Transfusion (§3, "Transfusion
// Attention") for one sequence whose first item sits at position from: the
// last position each item may attend to. A token sees up to itself (causal); a latent sees up
// to the last latent of its image, a maximal run of latents (an image is
// always bracketed by <BOL> and <EOL>, so two images never touch). Hence
// the latents of one image attend to each other in both directions and to
// everything before the image, and nothing before an image sees into it.
// nn.AttentionOptions.Visible takes it per item.
func Visible(isLatent []bool, from int) []float32 {
	vis := make([]float32, len(isLatent))
	for i := 0; i < len(isLatent); {
		if !isLatent[i] {
			vis[i] = float32(from + i)
			i++
			continue
		}
		end := i
		for end+1 < len(isLatent) && isLatent[end+1] {
			end++
		}
		for j := i; j <= end; j++ {
			vis[j] = float32(from + end)
		}
		i = end + 1
	}
	return vis
}

// Embed maps items to the backbone width: tokens through the embedding
// table and latents through x_embedder, as LatentLM does (lm.Config.Embed),
// plus, at latents, the embedding of their image's diffusion timestep ts
// [B, T] (float; 0 for a clean image): the sinusoid of docs/DESIGN.md §4
// through DiT's two-layer MLP (Transfusion §3 adds a timestep embedding to
// every patch vector).
func (c Config) Embed(w nn.Weights, it lm.Items, ts *Node) *Node {
	x := c.LM().Embed(w, it)
	dims := ts.Shape().Dimensions
	temb := nn.TimestepEmbedding(Reshape(ts, dims[0]*dims[1]), timestepFeatures)
	temb = nn.Linear(nn.SiLU(nn.Linear(temb, w.Get("t_embedder.mlp.0.weight"))), w.Get("t_embedder.mlp.2.weight"))
	temb = Reshape(temb, dims[0], dims[1], c.Dim)
	return Add(x, Mul(temb, InsertAxes(it.IsLatent, -1)))
}

// Backbone runs the Transformer over items it [B, T] at positions pos [T]
// and returns the normalised hidden states RMSNorm(h) [B, T, d]. Latents
// carry their image's timestep ts [B, T]; item t of sequence b attends to
// the positions ≤ vis[b, t] (Visible). With caches (one per layer) the
// new keys and values are written at pos, attention runs over the whole
// cache, and the updated caches are returned.
func (c Config) Backbone(w nn.Weights, it lm.Items, ts, vis, pos *Node, caches []*nn.KV) (*Node, []*nn.KV) {
	x := c.Embed(w, it, ts)
	b := c.block()
	var newCaches []*nn.KV
	for i := range c.Depth {
		opts := nn.AttentionOptions{Pos: pos, RoPE: true, Causal: true, Visible: vis}
		if caches != nil {
			opts.Cache = caches[i]
		}
		var nc *nn.KV
		x, nc = b.ForwardWith(w, fmt.Sprintf("blocks.%d", i), x, opts)
		newCaches = append(newCaches, nc)
	}
	if caches == nil {
		newCaches = nil
	}
	return nn.RMSNorm(x), newCaches
}

// Output is the denoiser's prediction (ε or v, per Config.Target) of every
// latent from the backbone's output h at its own position: one linear map,
// Transfusion's linear patch decoder (§3). Unlike LatentLM, whose hidden
// state at item i conditions a head that predicts item i+1, the
// prediction is not shifted.
func (c Config) Output(w nn.Weights, h *Node) *Node {
	return nn.Linear(h, w.Get("final_layer.linear.weight"))
}

// Logits is the softmax head over the vocabulary.
func (c Config) Logits(w nn.Weights, h *Node) *Node { return c.LM().Logits(w, h) }

// Loss is the Transfusion objective (§3, "Training Objective"),
// 𝓛_LM + λ·𝓛_DDPM with λ = 1 (the caller weighs the terms), over items
// it [B, L] whose latents are the clean x₀, with valid [B, L] (1 for
// training targets), each latent's image timestep ts [B, L] (integer
// values in floats), the mask vis [B, L] (Visible), and noisy [B, L], 1
// at the latents that are noised and carry the diffusion loss (NewLayout):
//
//   - the latents where noisy is 1 enter as x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε
//     with one fresh ε per latent from the store's RNG, the others as x₀;
//   - cross-entropy: the output at item i predicts item i+1 wherever that
//     is a valid token, as in LatentLM (text, <BOL>, <EOL>);
//   - diffusion: the output at each noisy latent predicts its own target
//     (ε or v): the mean squared error over the noisy latents.
//
// The next-item labels are shifted on the inputs, not the outputs: the
// gradient of a slice is a Pad, which ONNX Runtime lacks (nn.Take).
func (c Config) Loss(scope *model.Scope, w nn.Weights, it lm.Items, valid, ts, vis, noisy *Node, sched *diffusion.Schedule) lm.Losses {
	g := valid.Graph()
	dims := it.Ids.Shape().Dimensions
	b, l := dims[0], dims[1]
	n := b * l
	x0 := Reshape(it.Latents, n, c.Latent)
	eps := scope.RandomNormal(g, nn.Shape(dtypes.Float32, n, c.Latent))
	xt, want := sched.AddNoise(x0, eps, Reshape(ConvertDType(ts, dtypes.Int32), n), c.Target)
	mask := Reshape(noisy, n, 1)
	in := Reshape(Add(Mul(xt, mask), Mul(x0, OneMinus(mask))), b, l, c.Latent)

	h, _ := c.Backbone(w, lm.Items{Ids: it.Ids, Latents: in, IsLatent: it.IsLatent}, ts, vis, lm.Positions(g, dtypes.Float32, 0, l), nil)

	// Next-item labels: item i+1 at i, nothing at the last item.
	shift := func(x *Node) *Node {
		return Concatenate([]*Node{SliceAxis(x, 1, AxisRange(1, l)), ZerosLike(SliceAxis(x, 1, AxisRange(0, 1)))}, 1)
	}
	tokenMask := Mul(OneMinus(shift(it.IsLatent)), shift(valid))
	ce := nn.CrossEntropy(c.Logits(w, h), shift(it.Ids), tokenMask)

	pred := Reshape(c.Output(w, h), n, c.Latent)
	perItem := ReduceMean(Square(Sub(pred, want)), -1)
	flat := Reshape(noisy, n)
	diff := Div(ReduceAllSum(Mul(perItem, flat)), MaxScalar(ReduceAllSum(flat), 1))
	return lm.Losses{Total: Add(ce, diff), CE: ce, Diffusion: diff}
}

// Losses is the multimodal objective of one batch, the counterpart of
// multimodal.Losses: the latents are drawn anew from their σ-VAE moments
// (vae.Config.Redraw), then 𝓛_CE + λ·𝓛_diff (Loss). in holds the batch as
// multimodal.Batch.Inputs lays it out without HeadRows (the diffusion loss
// of Transfusion is on whole noised images; it is ignored). in.Clean,
// where set, is 1 at the latents of the images read as context
// (multimodal.Row.ReadClean): those are their σ-VAE mean μ, not a draw
// (multimodal.Inputs.Read), since Caption and Ask give the model μ in use
// and the model never generates an image it reads as context (NewLayout:
// it enters clean, or with a context noise is denoised back to its μ), so
// the draw would only hide the image from the text after it. ts, vis and noisy are the three tensors of a
// Layout. It returns the total, then the two terms, the order
// train.Loop.Metrics names them.
func Losses(scope *model.Scope, w nn.Weights, cfg Config, tok vae.Config, sched *diffusion.Schedule, lambda float64,
	in multimodal.Inputs, ts, vis, noisy *Node) []*Node {
	lat := in.Read(tok.Redraw(scope, in.Mu, in.Scale))
	l := cfg.Loss(scope, w, lm.Items{Ids: in.Ids, Latents: lat, IsLatent: in.IsLatent}, in.Valid, ts, vis, noisy, sched)
	return []*Node{Add(l.CE, MulScalar(l.Diffusion, lambda)), l.CE, l.Diffusion}
}
