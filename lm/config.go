// Package lm is LatentLM itself, the model of "Multimodal Latent Language
// Modeling with Next-Token Diffusion" (Sun et al., 2024,
// https://arxiv.org/abs/2412.08635): one causal Transformer over sequences
// that mix discrete tokens and continuous latent vectors, a softmax head for
// the tokens and a next-token diffusion head (the paper's §2.1) for the
// latents. docs/DESIGN.md §1 and §3–§7 describe it.
//
// A sequence is a list of items. Item i is either a token id or a latent
// vector; the hidden state at item i predicts item i+1, through the softmax
// head if that item is a token and through the diffusion head if it is a
// latent. Latent segments are delimited by <BOL> and <EOL>, so the model
// itself can say where a segment ends (Segment.StopAtEOL, given a softmax
// head trained to). Class-conditional images are laid out as
// [class] <BOL> z₀ … <EOL> or, as the public PyTorch code does, [class] z₀ …
// (Config.Layout, docs/WEIGHTS.md); ToPyTorch and FromPyTorch exchange the
// weights of the latter with that code.
//
// The objective (Config.Loss, docs/DESIGN.md §5.3) is cross-entropy where the
// next item is a token plus the diffusion loss where it is a latent, with
// batch_mul noise draws per latent. Config.LossWith can also train the
// softmax head where the next item is a latent (LossOptions.LatentTokens),
// which a segment that ends itself at <EOL> needs (package tts).
//
// Engine generates any mix of tokens and latents with a KV cache: prefill of
// a prefix, a decoding step per new item, a latent solve with the diffusion
// head (DPM-Solver++, https://arxiv.org/abs/2211.01095, or DDPM) under
// classifier-free guidance by a second stream, and latent segments of fixed
// length or ended by the softmax head's <EOL> (docs/DESIGN.md §7). Sampler
// decodes class-conditional images on it.
package lm

import (
	"encoding/json"
	"fmt"

	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/nn"
)

// Config is the architecture, saved as JSON beside the weights.
type Config struct {
	Dim       int              `json:"dim"`
	Depth     int              `json:"depth"`
	Heads     int              `json:"heads"`
	KVHeads   int              `json:"kv_heads"`
	MLPRatio  float64          `json:"mlp_ratio"`
	HeadDepth int              `json:"head_depth"` // adaLN blocks of the diffusion head
	HeadDim   int              `json:"head_dim"`   // width of the diffusion head
	Latent    int              `json:"latent_channels"`
	MaxLen    int              `json:"max_len"`
	Target    diffusion.Target `json:"target"` // "eps" or "v" in config.json
	Vocab     Vocab            `json:"vocab"`
	// Layout is the class-conditional sequence layout, "bol" or "public"
	// in config.json; a config without it is "bol" (every checkpoint
	// written before the field existed).
	Layout Layout `json:"layout"`
}

// Vocab lays out the discrete ids: Classes class tokens 0…Classes−1, then
// the null class (classifier-free guidance), <BOL>, <EOL>, and Extra further
// tokens (text) from id Classes+3 on. The first Classes+1 rows are the public
// code's y_embedder table.
type Vocab struct {
	Classes int `json:"classes"`
	Extra   int `json:"extra"`
}

// Null is the null-class id.
func (v Vocab) Null() int { return v.Classes }

// BOL is the begin-of-latent id.
func (v Vocab) BOL() int { return v.Classes + 1 }

// EOL is the end-of-latent id.
func (v Vocab) EOL() int { return v.Classes + 2 }

// Size is the number of discrete ids.
func (v Vocab) Size() int { return v.Classes + 3 + v.Extra }

// Text is the model id of the text tokenizer's id t: text ids follow the
// control tokens, from Classes+3 on (docs/DESIGN.md §11).
func (v Vocab) Text(t int) int { return v.Classes + 3 + t }

// TextOf is the text tokenizer's id of the model id, and whether id is a
// text token at all.
func (v Vocab) TextOf(id int) (int, bool) {
	t := id - v.Classes - 3
	return t, t >= 0 && t < v.Extra
}

// DefaultConfig is the MNIST class-to-image model: 7×7 latents of 8 channels.
func DefaultConfig() Config {
	return Config{Dim: 128, Depth: 4, Heads: 4, KVHeads: 4, MLPRatio: 4, HeadDepth: 3, HeadDim: 128,
		Latent: 8, MaxLen: 52, Target: diffusion.Epsilon, Vocab: Vocab{Classes: 10}}
}

// Validate reports an inconsistent configuration.
func (c Config) Validate() error {
	if err := nn.CheckSizes("lm config", nn.Size{Name: "dim", Value: c.Dim}, nn.Size{Name: "depth", Value: c.Depth, Depth: true},
		nn.Size{Name: "heads", Value: c.Heads}, nn.Size{Name: "kv_heads", Value: c.KVHeads}, nn.Size{Name: "head_depth", Value: c.HeadDepth, Depth: true},
		nn.Size{Name: "head_dim", Value: c.HeadDim}, nn.Size{Name: "latent_channels", Value: c.Latent}, nn.Size{Name: "max_len", Value: c.MaxLen},
		nn.Size{Name: "vocab classes", Value: c.Vocab.Classes + 1}, nn.Size{Name: "vocab extra", Value: c.Vocab.Extra + 1}); err != nil {
		return err
	}
	switch {
	case !(c.MLPRatio > 0 && c.MLPRatio <= 64):
		return fmt.Errorf("lm config: mlp_ratio %g out of range (0, 64]", c.MLPRatio)
	case c.Dim <= 0 || c.Depth <= 0 || c.Heads <= 0 || c.HeadDepth <= 0 || c.HeadDim <= 0 || c.Latent <= 0:
		return fmt.Errorf("lm config: sizes must be positive: %+v", c)
	case c.Dim%c.Heads != 0 || (c.Dim/c.Heads)%2 != 0:
		return fmt.Errorf("lm config: dim %d must split into %d heads of even width", c.Dim, c.Heads)
	case c.KVHeads <= 0 || c.Heads%c.KVHeads != 0:
		return fmt.Errorf("lm config: kv_heads %d must divide heads %d", c.KVHeads, c.Heads)
	case c.MaxLen < 2:
		return fmt.Errorf("lm config: max_len %d too small", c.MaxLen)
	}
	if err := c.Layout.Valid(); err != nil {
		return fmt.Errorf("lm config: %w", err)
	}
	return c.Target.Valid()
}

// UnmarshalJSON decodes a config; a missing "layout" is "bol" even when
// decoding over a config that has another (a resumed run reads its saved
// config over the defaults of new runs).
func (c *Config) UnmarshalJSON(b []byte) error {
	type plain Config
	p := plain(*c)
	p.Layout = LayoutBOL
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*c = Config(p)
	return nil
}

// JSON encodes the config.
func (c Config) JSON() []byte {
	b, _ := json.MarshalIndent(c, "", "  ")
	return b
}

func (c Config) block() nn.Block {
	return nn.Block{Attn: nn.Attention{Dim: c.Dim, Heads: c.Heads, KVHeads: c.KVHeads}, Hidden: nn.SwiGLUHidden(c.Dim, c.MLPRatio)}
}

// Specs declares every weight with its public-code name (docs/WEIGHTS.md).
func (c Config) Specs() []nn.Spec {
	d, hw, std := c.Dim, c.HeadDim, nn.InitStd
	specs := []nn.Spec{
		{Name: "tok_embeddings.weight", Shape: []int{c.Vocab.Size(), d}, Std: std},
		{Name: "x_embedder.weight", Shape: []int{d, c.Latent}, Std: std},
	}
	b := c.block()
	for i := range c.Depth {
		specs = append(specs, b.Specs(fmt.Sprintf("blocks.%d", i))...)
	}
	specs = append(specs,
		nn.Spec{Name: "lm_head.weight", Shape: []int{c.Vocab.Size(), d}, Std: std},
		nn.Spec{Name: "condition_layer.linear.weight", Shape: []int{hw, d}, Std: std},
		nn.Spec{Name: "noisy_x_embedder.weight", Shape: []int{hw, c.Latent}, Std: std},
		nn.Spec{Name: "t_embedder.mlp.0.weight", Shape: []int{hw, timestepFeatures}, Std: std},
		nn.Spec{Name: "t_embedder.mlp.2.weight", Shape: []int{hw, hw}, Std: std},
	)
	headHidden := nn.SwiGLUHidden(hw, c.MLPRatio)
	for j := range c.HeadDepth {
		p := fmt.Sprintf("diffusion_blocks.%d", j)
		specs = append(specs, nn.Spec{Name: p + ".adaLN_modulation.1.weight", Shape: []int{3 * hw, hw}})
		specs = append(specs, nn.SwiGLUSpecs(p+".mlp", hw, headHidden)...)
	}
	return append(specs,
		nn.Spec{Name: "final_layer.adaLN_modulation.1.weight", Shape: []int{2 * hw, hw}},
		nn.Spec{Name: "final_layer.linear.weight", Shape: []int{c.Latent, hw}},
	)
}

const timestepFeatures = 256

// ForwardFLOPs counts the matmul FLOPs (2 per multiply-add) of one teacher-
// forced forward pass over batch sequences of length items: the backbone
// over every item (attention over the whole length, as computed), the
// softmax head (not in LayoutPublic), and the diffusion head batchMul times
// per item.
func (c Config) ForwardFLOPs(batch, length, batchMul int) float64 {
	d, v := float64(c.Dim), float64(c.Vocab.Size())
	perItem := c.backboneItemFLOPs(length)
	if c.Layout == LayoutBOL { // the public layout's loss has no softmax head
		perItem += 2 * d * v
	}
	return float64(batch) * float64(length) * (perItem + float64(batchMul)*c.headFLOPs())
}

// ForwardFLOPsRows is ForwardFLOPs with the condition layer and the
// diffusion head run on headRows gathered rows instead of every item
// (LossOptions.HeadRows).
func (c Config) ForwardFLOPsRows(batch, length, headRows, batchMul int) float64 {
	perRow := 2*float64(c.Dim)*float64(c.HeadDim) + float64(batchMul)*c.headFLOPs()
	return c.ForwardFLOPs(batch, length, batchMul) - float64(batch*length-headRows)*perRow
}

// SampleFLOPs counts the matmul FLOPs of generating one image of `items`
// latents with `steps` solver steps under guidance (two streams): per
// stream, one backbone step per item with the KV cache (attention over the
// whole fixed-length cache, as computed) and the head at every solver step
// of every latent. The backbone's share is independent of steps; a DiT
// pays its full network at every step instead. The condition layer is
// charged to every backbone item, one more per stream than the sampler
// computes in LayoutBOL (the class token's hidden state conditions no
// latent there; in LayoutPublic it conditions z₀).
func (c Config) SampleFLOPs(items, steps int) float64 {
	steps1 := items + 1 // [class] <BOL> z₀ … z_{N−2}
	if c.Layout == LayoutPublic {
		steps1 = items // [class] z₀ … z_{N−2}
	}
	return 2 * (float64(steps1)*c.backboneItemFLOPs(c.MaxLen) + float64(items*steps)*c.headFLOPs())
}

// backboneItemFLOPs is the backbone's work for one item attending over
// `keys` items, including its input embedding and the head's condition.
func (c Config) backboneItemFLOPs(keys int) float64 {
	d, hw := float64(c.Dim), float64(c.HeadDim)
	kv := float64(c.KVHeads) * d / float64(c.Heads)
	h := float64(nn.SwiGLUHidden(c.Dim, c.MLPRatio))
	layer := 2*d*(d+2*kv) + 2*d*d + 2*3*d*h + 2*2*float64(keys)*d
	return 2*float64(c.Latent)*d + float64(c.Depth)*layer + 2*d*hw
}

// headFLOPs is one diffusion-head evaluation for one latent.
func (c Config) headFLOPs() float64 {
	hw, lat := float64(c.HeadDim), float64(c.Latent)
	hh := float64(nn.SwiGLUHidden(c.HeadDim, c.MLPRatio))
	return 2*lat*hw + 2*timestepFeatures*hw + 2*hw*hw +
		float64(c.HeadDepth)*(2*hw*3*hw+2*3*hw*hh) + 2*hw*2*hw + 2*hw*lat
}
