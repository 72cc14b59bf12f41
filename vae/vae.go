// Package vae is the image tokenizer (docs/DESIGN.md §2): the σ-VAE of
// LatentLM's §2.3 (https://arxiv.org/abs/2412.08635), a small ViT encoder and
// decoder between 28×28 images and a 7×7 grid of latent vectors.
//
// Three kinds share the architecture so that comparisons are fair:
//
//   - sigma (σ-VAE, the default): the encoder gives μ and the latent is
//     z = μ + σ·ε with one σ per example, σ = |N(0,1)|·C_σ, never learned. The
//     fixed, sampled variance keeps the latent space from collapsing, which the
//     paper shows is what autoregressive generation needs.
//   - vae: a learned log-variance and the usual KL term.
//   - ae: deterministic, z = μ.
//
// There are no strided convolutions: ONNX Runtime cannot differentiate them
// (docs/DESIGN.md §10), so images are patchified by reshape (space-to-depth).
package vae

import (
	"encoding/json"
	"fmt"
	"math"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/nn"
)

// Variant is how a tokenizer treats its latents (docs/DESIGN.md §2): the
// σ-VAE of the paper (§2.3, z = μ + σ·ε with σ = |N(0,1)|·C_σ drawn per
// example), a plain VAE (a learned variance and a KL to N(0, I)), or a
// deterministic autoencoder. config.json spells them "sigma", "vae", "ae".
type Variant int

// The tokenizer variants.
const (
	Sigma Variant = iota // σ-VAE: fixed-scale noise, the paper's tokenizer
	VAE                  // VAE: learned variance, KL regulariser
	AE                   // autoencoder: no noise
)

var variantNames = [...]string{Sigma: "sigma", VAE: "vae", AE: "ae"}

func (v Variant) String() string {
	if v < 0 || int(v) >= len(variantNames) {
		return fmt.Sprintf("Variant(%d)", int(v))
	}
	return variantNames[v]
}

// MarshalText writes the config.json name.
func (v Variant) MarshalText() ([]byte, error) {
	if v < 0 || int(v) >= len(variantNames) {
		return nil, fmt.Errorf("invalid tokenizer kind %d", int(v))
	}
	return []byte(variantNames[v]), nil
}

// UnmarshalText reads "sigma", "vae" or "ae".
func (v *Variant) UnmarshalText(b []byte) error {
	for i, n := range variantNames {
		if string(b) == n {
			*v = Variant(i)
			return nil
		}
	}
	return fmt.Errorf("unknown tokenizer kind %q: want sigma, vae or ae", b)
}

// Set makes a Variant a command-line flag (flag.Value).
func (v *Variant) Set(s string) error { return v.UnmarshalText([]byte(s)) }

// Config is the tokenizer's architecture and objective, saved beside its weights.
type Config struct {
	Kind      Variant `json:"kind"`
	ImageSize int     `json:"image_size"`
	Patch     int     `json:"patch"`
	Channels  int     `json:"latent_channels"`
	Dim       int     `json:"dim"`
	Depth     int     `json:"depth"` // blocks in each of encoder and decoder
	Heads     int     `json:"heads"`
	MLPRatio  float64 `json:"mlp_ratio"`
	CSigma    float64 `json:"c_sigma"`   // σ-VAE noise scale C_σ
	KLWeight  float64 `json:"kl_weight"` // weight of mean(μ²) (sigma, ae) or of the KL (vae)
}

// DefaultConfig is the σ-VAE of the MNIST demo.
func DefaultConfig() Config {
	return Config{Kind: Sigma, ImageSize: 28, Patch: 4, Channels: 8, Dim: 64, Depth: 2, Heads: 4,
		MLPRatio: 3, CSigma: 0.9375, KLWeight: 0.01}
}

// Validate reports an inconsistent configuration.
func (c Config) Validate() error {
	if err := nn.CheckSizes("vae config", nn.Size{Name: "image_size", Value: c.ImageSize}, nn.Size{Name: "patch", Value: c.Patch},
		nn.Size{Name: "channels", Value: c.Channels}, nn.Size{Name: "dim", Value: c.Dim}, nn.Size{Name: "depth", Value: c.Depth, Depth: true},
		nn.Size{Name: "heads", Value: c.Heads}); err != nil {
		return err
	}
	switch {
	case !(c.MLPRatio > 0 && c.MLPRatio <= 64):
		return fmt.Errorf("vae config: mlp_ratio %g out of range (0, 64]", c.MLPRatio)
	case !(c.CSigma >= 0 && c.CSigma <= 100) || !(c.KLWeight >= 0 && c.KLWeight <= 1e6):
		return fmt.Errorf("vae config: c_sigma %g and kl_weight %g must be finite and ≥ 0", c.CSigma, c.KLWeight)
	case c.ImageSize > 4096:
		return fmt.Errorf("vae config: image_size %d out of range (1…4096)", c.ImageSize)
	case c.Kind < Sigma || c.Kind > AE:
		return fmt.Errorf("vae config: unknown kind %v: want sigma, vae or ae", c.Kind)
	case c.Patch <= 0 || c.ImageSize%c.Patch != 0:
		return fmt.Errorf("vae config: patch %d must divide image size %d", c.Patch, c.ImageSize)
	case c.Channels <= 0 || c.Dim <= 0 || c.Depth <= 0 || c.Heads <= 0 || c.Dim%c.Heads != 0 || (c.Dim/c.Heads)%2 != 0:
		return fmt.Errorf("vae config: bad sizes %+v", c)
	}
	return nil
}

// JSON encodes the config.
func (c Config) JSON() []byte {
	b, _ := json.MarshalIndent(c, "", "  ")
	return b
}

// Grid is the side of the latent grid (7 for 28/4).
func (c Config) Grid() int { return c.ImageSize / c.Patch }

// Items is the number of latent vectors per image.
func (c Config) Items() int { return c.Grid() * c.Grid() }

func (c Config) block() nn.Block {
	return nn.Block{Attn: nn.Attention{Dim: c.Dim, Heads: c.Heads, KVHeads: c.Heads}, Hidden: nn.SwiGLUHidden(c.Dim, c.MLPRatio)}
}

// Specs declares the weights.
func (c Config) Specs() []nn.Spec {
	pp, n, d := c.Patch*c.Patch, c.Items(), c.Dim
	encOut := c.Channels
	if c.Kind == VAE {
		encOut = 2 * c.Channels
	}
	specs := []nn.Spec{
		{Name: "encoder.patch_embed.weight", Shape: []int{d, pp}, Std: nn.InitStd},
		{Name: "encoder.pos_embed", Shape: []int{n, d}, Std: nn.InitStd},
		{Name: "decoder.latent_embed.weight", Shape: []int{d, c.Channels}, Std: nn.InitStd},
		{Name: "decoder.pos_embed", Shape: []int{n, d}, Std: nn.InitStd},
	}
	b := c.block()
	for i := range c.Depth {
		specs = append(specs, b.Specs(fmt.Sprintf("encoder.blocks.%d", i))...)
		specs = append(specs, b.Specs(fmt.Sprintf("decoder.blocks.%d", i))...)
	}
	return append(specs,
		nn.Spec{Name: "encoder.out.weight", Shape: []int{encOut, d}, Std: nn.InitStd},
		nn.Spec{Name: "decoder.out.weight", Shape: []int{pp, d}, Std: nn.InitStd},
	)
}

func (c Config) trunk(w nn.Weights, prefix string, x *Node) *Node {
	x = Add(x, InsertAxes(w.Get("%s.pos_embed", prefix), 0))
	pos := Iota(x.Graph(), nn.Shape(x.DType(), c.Items()), 0)
	b := c.block()
	for i := range c.Depth {
		x, _ = b.Forward(w, fmt.Sprintf("%s.blocks.%d", prefix, i), x, pos, false, nil)
	}
	return nn.RMSNorm(x)
}

// Encode maps images [B, H, W] in [0, 1] to μ [B, N, C] and, for kind vae,
// the log-variance (nil otherwise).
func (c Config) Encode(w nn.Weights, images *Node) (mu, logvar *Node) {
	b := images.Shape().Dimensions[0]
	patches := Reshape(nn.SpaceToDepth(InsertAxes(images, -1), c.Patch), b, c.Items(), c.Patch*c.Patch)
	h := c.trunk(w, "encoder", nn.Linear(AddScalar(patches, -0.5), w.Get("encoder.patch_embed.weight")))
	out := nn.Linear(h, w.Get("encoder.out.weight"))
	if c.Kind != VAE {
		return out, nil
	}
	return nn.Take(out, 2, 0, c.Channels), nn.Take(out, 2, c.Channels, 2*c.Channels)
}

// Decode maps latents [B, N, C] to images [B, H, W] in [0, 1].
func (c Config) Decode(w nn.Weights, z *Node) *Node {
	b := z.Shape().Dimensions[0]
	h := c.trunk(w, "decoder", nn.Linear(z, w.Get("decoder.latent_embed.weight")))
	patches := Sigmoid(nn.Linear(h, w.Get("decoder.out.weight")))
	g := c.Grid()
	img := nn.DepthToSpace(Reshape(patches, b, g, g, c.Patch*c.Patch), c.Patch)
	return Reshape(img, b, c.ImageSize, c.ImageSize)
}

// Sample draws the latent of a kind from the encoder's outputs (SampleLatent).
func (c Config) Sample(scope *model.Scope, mu, logvar *Node) *Node {
	return SampleLatent(scope, c.Kind, c.CSigma, mu, logvar)
}

// SampleLatent draws the latent of a tokenizer of kind from its encoder's
// outputs: μ + σ·ε with σ_b = |N(0,1)|·cSigma per example (sigma, the
// paper's §2.3 noise law; b is the first axis of mu, whatever its rank),
// μ + exp(½·logvar)·ε (vae), or μ (ae). The image and speech tokenizers
// share it, so that their σ-VAEs are the same σ-VAE.
func SampleLatent(scope *model.Scope, kind Variant, cSigma float64, mu, logvar *Node) *Node {
	g := mu.Graph()
	switch kind {
	case Sigma:
		dims := make([]int, mu.Rank())
		for i := range dims {
			dims[i] = 1
		}
		dims[0] = mu.Shape().Dimensions[0]
		sigma := MulScalar(Abs(scope.RandomNormal(g, nn.Shape(mu.DType(), dims...))), cSigma)
		return Add(mu, Mul(sigma, scope.RandomNormal(g, mu.Shape())))
	case VAE:
		return Add(mu, Mul(Exp(MulScalar(logvar, 0.5)), scope.RandomNormal(g, mu.Shape())))
	}
	return mu
}

// Regulariser is the latent term of a tokenizer's objective: mean(μ²) for
// sigma and ae (with the variance fixed, the KL to N(0, I) reduces to this
// pull on μ) or the mean KL to N(0, I) for vae.
func Regulariser(kind Variant, mu, logvar *Node) *Node {
	if kind == VAE {
		return MulScalar(ReduceAllMean(Sub(Add(Square(mu), Exp(logvar)), OnePlus(logvar))), 0.5)
	}
	return ReduceAllMean(Square(mu))
}

// Losses are the terms of the tokenizer objective.
type Losses struct {
	Total, Recon, Reg *Node
}

// Loss is reconstruction MSE plus KLWeight times mean(μ²) (sigma, ae: with
// the variance fixed the KL reduces to this pull on μ) or the mean KL to
// N(0, I) (vae).
func (c Config) Loss(scope *model.Scope, w nn.Weights, images *Node) Losses {
	mu, logvar := c.Encode(w, images)
	recon := ReduceAllMean(Square(Sub(c.Decode(w, c.Sample(scope, mu, logvar)), images)))
	reg := Regulariser(c.Kind, mu, logvar)
	return Losses{Total: Add(recon, MulScalar(reg, c.KLWeight)), Recon: recon, Reg: reg}
}

// PSNR in dB of a mean squared error on [0, 1] images.
func PSNR(mse float64) float64 { return 10 * math.Log10(1/mse) }
