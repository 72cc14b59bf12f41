// Package dit is the baseline LatentLM is measured against (docs/DESIGN.md
// §8), as in the image-generation comparison of the LatentLM paper
// (https://arxiv.org/abs/2412.08635): a Diffusion Transformer (Peebles &
// Xie, 2023, https://arxiv.org/abs/2212.09748) that denoises the whole latent
// grid at once with a bidirectional Transformer, patch size 1, conditioned on
// timestep plus class through adaLN-Zero, with fixed 2-D sin-cos position
// embeddings.
//
// It is built from LatentLM's own parts — RMSNorm without gain, SwiGLU, no
// biases, N(0, 0.02) init, the same schedule, solver and guidance — so that
// a comparison isolates what differs: DiT runs the full Transformer over
// every item at each solver step, where LatentLM runs its causal backbone
// once per item (with a KV cache) and only a light head per step.
package dit

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
)

// Kind is the checkpoint kind of a DiT model.
const Kind = "dit"

// Config is the architecture, saved as JSON beside the weights.
type Config struct {
	Dim      int              `json:"dim"`
	Depth    int              `json:"depth"`
	Heads    int              `json:"heads"`
	MLPRatio float64          `json:"mlp_ratio"`
	Latent   int              `json:"latent_channels"`
	Grid     int              `json:"grid"` // the latent grid is Grid×Grid items
	Classes  int              `json:"classes"`
	Target   diffusion.Target `json:"target"` // "eps" or "v" in config.json
}

// FromLM is the DiT of the same width, depth, heads, MLP ratio and target as
// a LatentLM config, for a grid×grid latent image.
func FromLM(c lm.Config, grid int) Config {
	return Config{Dim: c.Dim, Depth: c.Depth, Heads: c.Heads, MLPRatio: c.MLPRatio, Latent: c.Latent,
		Grid: grid, Classes: c.Vocab.Classes, Target: c.Target}
}

// Items is the number of latent vectors per image.
func (c Config) Items() int { return c.Grid * c.Grid }

// Null is the class id of the unconditional stream (the last table row).
func (c Config) Null() int { return c.Classes }

// Validate reports an inconsistent configuration.
func (c Config) Validate() error {
	if err := nn.CheckSizes("dit config", nn.Size{Name: "dim", Value: c.Dim}, nn.Size{Name: "depth", Value: c.Depth, Depth: true},
		nn.Size{Name: "heads", Value: c.Heads}, nn.Size{Name: "latent_channels", Value: c.Latent}, nn.Size{Name: "grid", Value: c.Grid},
		nn.Size{Name: "classes", Value: c.Classes}); err != nil {
		return err
	}
	switch {
	case !(c.MLPRatio <= 64):
		return fmt.Errorf("dit config: mlp_ratio %g out of range (0, 64]", c.MLPRatio)
	case c.Dim <= 0 || c.Depth <= 0 || c.Heads <= 0 || c.Latent <= 0 || c.Grid <= 0 || c.Classes <= 0 || c.MLPRatio <= 0:
		return fmt.Errorf("dit config: sizes must be positive: %+v", c)
	case c.Dim%c.Heads != 0:
		return fmt.Errorf("dit config: dim %d must split into %d heads", c.Dim, c.Heads)
	case c.Dim%4 != 0:
		return fmt.Errorf("dit config: dim %d must be a multiple of 4 (2-D sin-cos embeddings)", c.Dim)
	}
	return c.Target.Valid()
}

// JSON encodes the config.
func (c Config) JSON() []byte {
	b, _ := json.MarshalIndent(c, "", "  ")
	return b
}

func (c Config) attention() nn.Attention {
	return nn.Attention{Dim: c.Dim, Heads: c.Heads, KVHeads: c.Heads}
}

// Specs declares every weight under the public DiT code's module names
// (x_embedder.proj is a 1×1 convolution there, a [dim, channels] matrix
// here). adaLN modulations and the final projection start at zero.
func (c Config) Specs() []nn.Spec {
	d, std := c.Dim, nn.InitStd
	specs := []nn.Spec{
		{Name: "x_embedder.proj.weight", Shape: []int{d, c.Latent}, Std: std},
		{Name: "t_embedder.mlp.0.weight", Shape: []int{d, timestepFeatures}, Std: std},
		{Name: "t_embedder.mlp.2.weight", Shape: []int{d, d}, Std: std},
		{Name: "y_embedder.embedding_table.weight", Shape: []int{c.Classes + 1, d}, Std: std},
	}
	hidden := nn.SwiGLUHidden(d, c.MLPRatio)
	for i := range c.Depth {
		p := fmt.Sprintf("blocks.%d", i)
		specs = append(specs, c.attention().Specs(p+".attn")...)
		specs = append(specs, nn.SwiGLUSpecs(p+".mlp", d, hidden)...)
		specs = append(specs, nn.Spec{Name: p + ".adaLN_modulation.1.weight", Shape: []int{6 * d, d}})
	}
	return append(specs,
		nn.Spec{Name: "final_layer.adaLN_modulation.1.weight", Shape: []int{2 * d, d}},
		nn.Spec{Name: "final_layer.linear.weight", Shape: []int{c.Latent, d}},
	)
}

const timestepFeatures = 256

// PosEmbed is the fixed 2-D sin-cos embedding [Grid², Dim] of item
// r·Grid+col: the first half of the features encodes the row r, the second
// the column, each as [sin(p·ω_k), cos(p·ω_k)] with ω_k = 10000^(−k/(Dim/4)).
func (c Config) PosEmbed() []float64 {
	d, q := c.Dim, c.Dim/4
	out := make([]float64, c.Items()*d)
	for r := range c.Grid {
		for col := range c.Grid {
			row := out[(r*c.Grid+col)*d:]
			for half, p := range []float64{float64(r), float64(col)} {
				for k := range q {
					w := math.Pow(10000, -float64(k)/float64(q))
					row[half*2*q+k] = math.Sin(p * w)
					row[half*2*q+q+k] = math.Cos(p * w)
				}
			}
		}
	}
	return out
}

// Forward predicts ε (or v) for noisy grids xt [B, N, C] at timesteps t [B]
// (float) for class ids labels [B] (int32; Null for the unconditional
// stream).
func (c Config) Forward(w nn.Weights, xt, t, labels *Node) *Node {
	g := xt.Graph()
	dims := xt.Shape().Dimensions
	batch, n, d := dims[0], dims[1], c.Dim
	pos := Const(g, nn.Tensor(c.PosEmbed(), xt.DType(), 1, n, d))
	x := Add(nn.Linear(xt, w.Get("x_embedder.proj.weight")), BroadcastToDims(pos, batch, n, d))

	temb := nn.TimestepEmbedding(t, timestepFeatures)
	temb = nn.Linear(nn.SiLU(nn.Linear(temb, w.Get("t_embedder.mlp.0.weight"))), w.Get("t_embedder.mlp.2.weight"))
	cvec := nn.SiLU(Add(temb, nn.Embed(w.Get("y_embedder.embedding_table.weight"), labels)))
	// part k of a modulation, broadcast over the items.
	part := func(mod *Node, k int) *Node {
		return BroadcastToDims(InsertAxes(nn.Chunk(cvec, mod, d, k), 1), batch, n, d)
	}
	attn := c.attention()
	for i := range c.Depth {
		p := fmt.Sprintf("blocks.%d", i)
		mod := w.Get("%s.adaLN_modulation.1.weight", p)
		h, _ := attn.Forward(w, p+".attn", nn.Modulate(nn.RMSNorm(x), part(mod, 0), part(mod, 1)), nn.AttentionOptions{})
		x = Add(x, Mul(part(mod, 2), h))
		h = nn.SwiGLU(w, p+".mlp", nn.Modulate(nn.RMSNorm(x), part(mod, 3), part(mod, 4)))
		x = Add(x, Mul(part(mod, 5), h))
	}
	mod := w.Get("final_layer.adaLN_modulation.1.weight")
	x = nn.Modulate(nn.RMSNorm(x), part(mod, 0), part(mod, 1))
	return nn.Linear(x, w.Get("final_layer.linear.weight"))
}

// ClassLoss is the denoising objective of latent grids [B, N, C] with class
// labels [B] (int32): each of batchMul copies of every grid gets its own
// timestep and noise, and labels become Null with probability labelDropout.
func (c Config) ClassLoss(scope *model.Scope, w nn.Weights, labels, latents *Node, sched *diffusion.Schedule, batchMul int, labelDropout float64) *Node {
	g := labels.Graph()
	target := c.Target
	if batchMul > 1 {
		tile := func(x *Node) *Node {
			d := x.Shape().Dimensions
			x = BroadcastToDims(InsertAxes(x, 0), append([]int{batchMul}, d...)...)
			return Reshape(x, append([]int{batchMul * d[0]}, d[1:]...)...)
		}
		labels, latents = tile(labels), tile(latents)
	}
	dims := latents.Shape().Dimensions
	batch, n := dims[0], dims[1]
	if labelDropout > 0 {
		drop := LessThan(scope.RandomUniform(g, nn.Shape(dtypes.Float32, batch)), Scalar(g, dtypes.Float32, labelDropout))
		labels = Where(drop, BroadcastToDims(Scalar(g, dtypes.Int32, c.Null()), batch), labels)
	}
	ts := scope.RandomIntN(g, int32(sched.T), nn.Shape(dtypes.Int32, batch))
	eps := scope.RandomNormal(g, latents.Shape())
	perItem := Reshape(BroadcastToDims(InsertAxes(ts, -1), batch, n), batch*n)
	xt, want := sched.AddNoise(Reshape(latents, batch*n, c.Latent), Reshape(eps, batch*n, c.Latent), perItem, target)
	pred := c.Forward(w, Reshape(xt, batch, n, c.Latent), ConvertDType(ts, dtypes.Float32), labels)
	return ReduceAllMean(Square(Sub(Reshape(pred, batch*n, c.Latent), want)))
}

// ForwardFLOPs counts the matmul FLOPs (2 per multiply-add) of one forward
// pass over batch grids.
func (c Config) ForwardFLOPs(batch int) float64 {
	d, n, lat := float64(c.Dim), float64(c.Items()), float64(c.Latent)
	h := float64(nn.SwiGLUHidden(c.Dim, c.MLPRatio))
	layer := 2*d*3*d + 2*d*d + 2*3*d*h + 2*2*n*d
	perItem := 2*lat*d + float64(c.Depth)*layer + 2*d*lat
	perImage := 2*timestepFeatures*d + 2*d*d + float64(c.Depth)*2*d*6*d + 2*d*2*d
	return float64(batch) * (n*perItem + perImage)
}

// Save writes a checkpoint with the EMA weights (what sampling uses).
func Save(dir string, cfg Config, store *model.Store, tok lm.Tokenizer, info map[string]any) error {
	return lm.SaveKind(dir, Kind, cfg, store, tok, info)
}

// Load reads a checkpoint and the tokenizer record it was saved with.
func Load(dir string) (Config, *model.Store, lm.Tokenizer, error) {
	var cfg Config
	store, tok, _, err := lm.LoadKind(dir, Kind, &cfg)
	return cfg, store, tok, err
}

// SampleFLOPs counts the matmul FLOPs of generating one grid with `steps`
// solver steps under guidance: a full pass per step for each of two streams.
func (c Config) SampleFLOPs(steps int) float64 { return 2 * float64(steps) * c.ForwardFLOPs(1) }
