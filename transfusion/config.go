// Package transfusion is the Transfusion baseline of the LatentLM paper's
// multimodal comparison (Sun et al., 2024, arXiv 2412.08635, Table 3 and
// Figure 8; docs/DESIGN.md §11): "Transfusion: Predict the Next Token and
// Diffuse Images with One Multi-Modal Model" (Zhou et al., 2024, arXiv
// 2408.11039). It reads and writes the same sequences as package multimodal,
//
//	<|endoftext|> caption <BOL> z₀ … z_{N−1} <EOL> <|endoftext|>
//
// over the same σ-VAE latents, text tokenizer and backbone (package lm's
// blocks, RoPE, RMSNorm, SwiGLU), and differs from LatentLM only in how an
// image is handled:
//
//   - attention is causal across the sequence but bidirectional inside each
//     image: every latent of an image sees all latents of the image and
//     everything before it (Transfusion §3, "Transfusion Attention";
//     Visible);
//   - in training each image is noised at one timestep t (per image, not
//     per latent), t is embedded and added to the image's latent
//     embeddings (Transfusion §3, "Model Architecture": a linear patch
//     encoder, with an embedding of t added to every patch vector), and the
//     Transformer's output at each latent position predicts that latent's
//     noise through a linear layer: the whole Transformer is the denoiser,
//     with no separate diffusion head. The objective is 𝓛_LM + λ·𝓛_DDPM
//     (Transfusion §3, "Training Objective"), cross-entropy on text plus
//     the diffusion loss on image positions (Losses);
//   - an image read as context (captioning, questions) enters clean, at
//     t = 0 and as its σ-VAE mean, in use; in training it is that mean
//     noised at t < 500 of 1000 and denoised, as in the Transfusion paper
//     (PaperContextNoise; NewLayout says which images are context and why,
//     Losses how they are read);
//   - an image is drawn by running the Transformer over the whole image
//     block once per solver step (DPM-Solver++ with classifier-free
//     guidance, package diffusion), with the prefix's keys and values
//     cached (Model.ImagesFor).
//
// Config.ForwardFLOPs and Config.SampleFLOPs count the work as
// lm.Config and dit.Config count theirs, so that the comparison with
// LatentLM can be run at equal training compute.
package transfusion

import (
	"encoding/json"
	"fmt"

	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
)

// Kind is the checkpoint kind of a Transfusion model; the multimodal
// commands (generate, caption, ask, eval) dispatch on it.
const Kind = "transfusion"

// Config is the architecture, saved as JSON beside the weights. Its fields
// are those of lm.Config that a Transfusion model has (no diffusion head).
type Config struct {
	Dim      int              `json:"dim"`
	Depth    int              `json:"depth"`
	Heads    int              `json:"heads"`
	KVHeads  int              `json:"kv_heads"`
	MLPRatio float64          `json:"mlp_ratio"`
	Latent   int              `json:"latent_channels"`
	MaxLen   int              `json:"max_len"`
	Target   diffusion.Target `json:"target"` // "eps" or "v" in config.json
	Vocab    lm.Vocab         `json:"vocab"`
}

// FromLM is the Transfusion model of the same backbone, vocabulary, latent
// width, length and diffusion target as a LatentLM config: the two differ
// only in the handling of images, as in the paper's comparison.
func FromLM(c lm.Config) Config {
	return Config{Dim: c.Dim, Depth: c.Depth, Heads: c.Heads, KVHeads: c.KVHeads, MLPRatio: c.MLPRatio,
		Latent: c.Latent, MaxLen: c.MaxLen, Target: c.Target, Vocab: c.Vocab}
}

// LM is the LatentLM config of the same backbone, whose graph pieces
// (lm.Config.Embed, Logits; multimodal.SequenceNats) read the weights both
// models share under the same names. Its diffusion-head fields are
// placeholders: a Transfusion model has no head.
func (c Config) LM() lm.Config {
	return lm.Config{Dim: c.Dim, Depth: c.Depth, Heads: c.Heads, KVHeads: c.KVHeads, MLPRatio: c.MLPRatio,
		HeadDepth: 1, HeadDim: c.Dim, Latent: c.Latent, MaxLen: c.MaxLen, Target: c.Target, Vocab: c.Vocab,
		Layout: lm.LayoutBOL}
}

// Validate reports an inconsistent configuration.
func (c Config) Validate() error {
	if err := c.LM().Validate(); err != nil {
		return fmt.Errorf("transfusion config: %w", err)
	}
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

// timestepFeatures is the width of the sinusoidal timestep features, as in
// LatentLM's head and DiT (docs/DESIGN.md §4).
const timestepFeatures = 256

// Specs declares every weight. The embeddings, blocks and softmax head
// have LatentLM's names and shapes (docs/WEIGHTS.md), so that
// lm.Config.Embed and Logits read them; the timestep embedder is DiT's
// (t_embedder.mlp, at the backbone's width), and final_layer.linear maps
// each output to a latent's noise (zero-initialised, as DiT's final layer:
// the model starts by predicting 0, the best constant for ε and v).
func (c Config) Specs() []nn.Spec {
	d, std := c.Dim, nn.InitStd
	specs := []nn.Spec{
		{Name: "tok_embeddings.weight", Shape: []int{c.Vocab.Size(), d}, Std: std},
		{Name: "x_embedder.weight", Shape: []int{d, c.Latent}, Std: std},
		{Name: "t_embedder.mlp.0.weight", Shape: []int{d, timestepFeatures}, Std: std},
		{Name: "t_embedder.mlp.2.weight", Shape: []int{d, d}, Std: std},
	}
	b := c.block()
	for i := range c.Depth {
		specs = append(specs, b.Specs(fmt.Sprintf("blocks.%d", i))...)
	}
	return append(specs,
		nn.Spec{Name: "lm_head.weight", Shape: []int{c.Vocab.Size(), d}, Std: std},
		nn.Spec{Name: "final_layer.linear.weight", Shape: []int{c.Latent, d}},
	)
}
