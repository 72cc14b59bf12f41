// Package vae is the image tokenizer (docs/DESIGN.md §2): the σ-VAE of
// LatentLM's §2.3 (https://arxiv.org/abs/2412.08635), a small ViT encoder and
// decoder between square images of C channels (28×28 grayscale digits by
// default, 32×32 RGB for colour folders) and a grid of latent vectors, one
// per p×p patch.
//
// Four kinds share the architecture so that comparisons are fair:
//
//   - sigma (σ-VAE, the default): the encoder gives μ and the latent is
//     z = μ + σ·ε with one σ per example, σ = |N(0,1)|·C_σ, never learned. The
//     fixed, sampled variance keeps the latent space from collapsing, which the
//     paper shows is what autoregressive generation needs.
//   - vae: a learned log-variance and the usual KL term.
//   - ae: deterministic, z = μ.
//   - vq: the VQ-VAE of van den Oord et al. 2017 (“Neural Discrete
//     Representation Learning”, https://arxiv.org/abs/1711.00937), the
//     discrete baseline of issue 16: z = μ replaced by its nearest entry of
//     a learned codebook (Quantize), the encoder trained through the
//     straight-through estimator with the commitment loss, the codebook by
//     the codebook loss (VQLoss) or, with Config.CodebookDecay, by moving
//     averages with dead codes restarted from the batch (CodebookEMA,
//     RestartDead; vq.go says why); its code indices (Model.Codes) are
//     what a VQ-MLLM predicts with a softmax, and `vae eval` reports its
//     codebook usage (docs/DESIGN.md §9).
//
// There are no strided convolutions: ONNX Runtime cannot differentiate them
// (docs/DESIGN.md §10), so images are patchified by reshape (space-to-depth).
//
// # Pixels
//
// An image is Size×Size×C values in [0, 1], row-major with the channels
// interleaved (H×W×C, channels last), the layout of package imagefolder;
// with one channel this is the h×w layout of MNIST (package data). A patch
// is the p×p×C block it covers, flattened in (row, column, channel) order,
// so the grayscale tokenizers are exactly what they were before colour was
// added and their shipped weights load unchanged (Config.InChannels).
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
// deterministic autoencoder, or a vector-quantised autoencoder (VQ-VAE, van
// den Oord et al. 2017). config.json spells them "sigma", "vae", "ae", "vq".
type Variant int

// The tokenizer variants.
const (
	Sigma Variant = iota // σ-VAE: fixed-scale noise, the paper's tokenizer
	VAE                  // VAE: learned variance, KL regulariser
	AE                   // autoencoder: no noise
	VQ                   // VQ-VAE: nearest codebook entry, straight-through gradients
)

var variantNames = [...]string{Sigma: "sigma", VAE: "vae", AE: "ae", VQ: "vq"}

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

// UnmarshalText reads "sigma", "vae", "ae" or "vq".
func (v *Variant) UnmarshalText(b []byte) error {
	for i, n := range variantNames {
		if string(b) == n {
			*v = Variant(i)
			return nil
		}
	}
	return fmt.Errorf("unknown tokenizer kind %q: want sigma, vae, ae or vq", b)
}

// Set makes a Variant a command-line flag (flag.Value).
func (v *Variant) Set(s string) error { return v.UnmarshalText([]byte(s)) }

// Config is the tokenizer's architecture and objective, saved beside its weights.
type Config struct {
	Kind      Variant `json:"kind"`
	ImageSize int     `json:"image_size"`
	// InChannels is the number of image channels: 1 (grayscale) or 3
	// (RGB), the counts of PNG files and image folders (the graphs take
	// any up to MaxInChannels). 0 means 1, and a grayscale config is saved
	// without the field,
	// so that every config.json written before colour was added (none has
	// it) reads as the grayscale tokenizer it is; use ImageChannels.
	InChannels int     `json:"in_channels,omitempty"`
	Patch      int     `json:"patch"`
	Channels   int     `json:"latent_channels"`
	Dim        int     `json:"dim"`
	Depth      int     `json:"depth"` // blocks in each of encoder and decoder
	Heads      int     `json:"heads"`
	MLPRatio   float64 `json:"mlp_ratio"`
	CSigma     float64 `json:"c_sigma"`   // σ-VAE noise scale C_σ
	KLWeight   float64 `json:"kl_weight"` // weight of mean(μ²) (sigma, ae) or of the KL (vae)
	// SSIMWeight weighs the term 1 − SSIM(reconstruction, image) of the
	// loss (see SSIM); 0, the default and every shipped tokenizer's, leaves
	// the objective of docs/DESIGN.md §2 and is saved without the field.
	SSIMWeight float64 `json:"ssim_weight,omitempty"`
	// Codebook is the number of entries K of the codebook of kind vq (the
	// weight quantizer.codebook, K × Channels); it is required for vq and
	// must be 0 (and is then saved without the field) for the other kinds.
	Codebook int `json:"codebook,omitempty"`
	// CommitWeight is the weight β of the commitment loss of kind vq
	// (VQLoss); 0 means DefaultCommitWeight.
	CommitWeight float64 `json:"commit_weight,omitempty"`
	// CodebookDecay is the decay γ of the moving averages the codebook of
	// kind vq follows (CodebookEMA; van den Oord et al. 2017, appendix
	// A.1), in (0, 1); 0 trains the codebook by the gradient of the
	// codebook loss instead (VQLoss), as the first vq tokenizers did.
	CodebookDecay float64 `json:"codebook_decay,omitempty"`
	// RestartBelow is the threshold τ under which a code's moving count
	// (encoder outputs per batch) makes it dead, to be restarted from an
	// encoder output of the batch (RestartDead; Jukebox's random
	// restarts); 0 restarts nothing. It needs CodebookDecay > 0: the
	// counts are the moving averages'.
	RestartBelow float64 `json:"restart_below,omitempty"`
}

// DefaultCommitWeight is the commitment weight β of van den Oord et al.
// 2017, used when Config.CommitWeight is 0.
const DefaultCommitWeight = 0.25

// MaxCodebook bounds Config.Codebook.
const MaxCodebook = 1 << 16

// Beta is the commitment weight of kind vq: CommitWeight, or
// DefaultCommitWeight when that is 0.
func (c Config) Beta() float64 {
	if c.CommitWeight == 0 {
		return DefaultCommitWeight
	}
	return c.CommitWeight
}

// MaxInChannels bounds Config.InChannels: RGBA would be 4; more is no image.
const MaxInChannels = 4

// ImageChannels is the number of channels of the images (InChannels, with
// 0 read as 1).
func (c Config) ImageChannels() int { return max(c.InChannels, 1) }

// Pixels is the number of values of one image: ImageSize²·ImageChannels.
func (c Config) Pixels() int { return c.ImageSize * c.ImageSize * c.ImageChannels() }

// PatchValues is the number of values of one patch, Patch²·ImageChannels:
// what one latent vector encodes.
func (c Config) PatchValues() int { return c.Patch * c.Patch * c.ImageChannels() }

// ImageDims are the dimensions of a batch of n images as the graphs take
// them: [n, H, W] for one channel (the layout of the grayscale tokenizers,
// kept so that their graphs are unchanged), [n, H, W, C] otherwise.
func (c Config) ImageDims(n int) []int {
	if c.ImageChannels() == 1 {
		return []int{n, c.ImageSize, c.ImageSize}
	}
	return []int{n, c.ImageSize, c.ImageSize, c.ImageChannels()}
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
	case c.Kind < Sigma || c.Kind > VQ:
		return fmt.Errorf("vae config: unknown kind %v: want sigma, vae, ae or vq", c.Kind)
	case c.Kind == VQ && (c.Codebook <= 0 || c.Codebook > MaxCodebook):
		return fmt.Errorf("vae config: kind vq needs a codebook of 1…%d entries, not %d", MaxCodebook, c.Codebook)
	case c.Kind != VQ && c.Codebook != 0:
		return fmt.Errorf("vae config: codebook %d given to kind %v: only kind vq has a codebook", c.Codebook, c.Kind)
	case !(c.CommitWeight >= 0 && c.CommitWeight <= 1e6):
		return fmt.Errorf("vae config: commit_weight %g must be finite and in [0, 1e6]", c.CommitWeight)
	case c.Kind != VQ && c.CommitWeight != 0:
		return fmt.Errorf("vae config: commit_weight given to kind %v: only kind vq has a commitment loss", c.Kind)
	case !(c.CodebookDecay >= 0 && c.CodebookDecay < 1):
		return fmt.Errorf("vae config: codebook_decay %g out of range [0, 1)", c.CodebookDecay)
	case c.Kind != VQ && c.CodebookDecay != 0:
		return fmt.Errorf("vae config: codebook_decay given to kind %v: only kind vq has a codebook", c.Kind)
	case !(c.RestartBelow >= 0 && c.RestartBelow <= 1e6):
		return fmt.Errorf("vae config: restart_below %g must be finite and in [0, 1e6]", c.RestartBelow)
	case c.RestartBelow > 0 && !c.CodebookEMAEnabled():
		return fmt.Errorf("vae config: restart_below needs kind vq with codebook_decay > 0 (dead codes are found from the moving counts)")
	case c.Patch <= 0 || c.ImageSize%c.Patch != 0:
		return fmt.Errorf("vae config: patch %d must divide image size %d", c.Patch, c.ImageSize)
	case c.InChannels < 0 || c.InChannels > MaxInChannels:
		return fmt.Errorf("vae config: in_channels %d out of range (0…%d; 0 is 1)", c.InChannels, MaxInChannels)
	case !(c.SSIMWeight >= 0 && c.SSIMWeight <= 1e6):
		return fmt.Errorf("vae config: ssim_weight %g must be finite and in [0, 1e6]", c.SSIMWeight)
	case c.SSIMWeight > 0 && c.ImageSize < SSIMWindow:
		return fmt.Errorf("vae config: ssim_weight needs images of at least %d×%d pixels (the SSIM window), not %d×%d", SSIMWindow, SSIMWindow, c.ImageSize, c.ImageSize)
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
	pp, n, d := c.PatchValues(), c.Items(), c.Dim
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
	specs = append(specs,
		nn.Spec{Name: "encoder.out.weight", Shape: []int{encOut, d}, Std: nn.InitStd},
		nn.Spec{Name: "decoder.out.weight", Shape: []int{pp, d}, Std: nn.InitStd},
	)
	if c.Kind == VQ {
		// The encoder's outputs start with a std of about InitStd·√Dim
		// (unit-RMS features through encoder.out): the codes start there.
		specs = append(specs, nn.Spec{Name: CodebookWeight, Shape: []int{c.Codebook, c.Channels}, Std: nn.InitStd * math.Sqrt(float64(d))})
	}
	return specs
}

// CodebookWeight is the name of the codebook of kind vq, K × Channels.
const CodebookWeight = "quantizer.codebook"

func (c Config) trunk(w nn.Weights, prefix string, x *Node) *Node {
	x = Add(x, InsertAxes(w.Get("%s.pos_embed", prefix), 0))
	pos := Iota(x.Graph(), nn.Shape(x.DType(), c.Items()), 0)
	b := c.block()
	for i := range c.Depth {
		x, _ = b.Forward(w, fmt.Sprintf("%s.blocks.%d", prefix, i), x, pos, false, nil)
	}
	return nn.RMSNorm(x)
}

// Encode maps images [B, H, W, C] (or [B, H, W] with one channel) in
// [0, 1] to μ [B, N, C] and, for kind vae, the log-variance (nil
// otherwise). The patches are the p×p×C blocks of space-to-depth.
func (c Config) Encode(w nn.Weights, images *Node) (mu, logvar *Node) {
	h := c.trunk(w, "encoder", nn.Linear(AddScalar(c.patchify(images), -0.5), w.Get("encoder.patch_embed.weight")))
	out := nn.Linear(h, w.Get("encoder.out.weight"))
	if c.Kind != VAE {
		return out, nil
	}
	return nn.Take(out, 2, 0, c.Channels), nn.Take(out, 2, c.Channels, 2*c.Channels)
}

// Decode maps latents [B, N, C] to images in [0, 1] of ImageDims(B):
// [B, H, W] for a grayscale tokenizer, [B, H, W, C] otherwise. A sigmoid
// writes each p×p×C patch, and depth-to-space puts it in place.
func (c Config) Decode(w nn.Weights, z *Node) *Node {
	h := c.trunk(w, "decoder", nn.Linear(z, w.Get("decoder.latent_embed.weight")))
	return c.unpatchify(Sigmoid(nn.Linear(h, w.Get("decoder.out.weight"))))
}

// patchify cuts images [B, H, W, C] (or [B, H, W]) into their patches
// [B, N, p·p·C] by space-to-depth: patch n = gy·Grid + gx holds the pixels
// of its p×p block row by row, each pixel's C channels together.
func (c Config) patchify(images *Node) *Node {
	b := images.Shape().Dimensions[0]
	if images.Rank() == 3 {
		images = InsertAxes(images, -1)
	}
	return Reshape(nn.SpaceToDepth(images, c.Patch), b, c.Items(), c.PatchValues())
}

// unpatchify inverts patchify, giving images of ImageDims(B).
func (c Config) unpatchify(patches *Node) *Node {
	b, g := patches.Shape().Dimensions[0], c.Grid()
	img := nn.DepthToSpace(Reshape(patches, b, g, g, c.PatchValues()), c.Patch)
	return Reshape(img, c.ImageDims(b)...)
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
	// SSIM is the mean SSIM of the reconstructions, when SSIMWeight > 0
	// puts it in the objective; nil otherwise.
	SSIM *Node
	// Mu and Codes are, for kind vq, the encoder outputs [B, N, C] and
	// their codes int32 [B, N]: what UpdateCodebook and CodePerplexity
	// read. nil for the other kinds.
	Mu, Codes *Node
}

// Loss is reconstruction MSE plus KLWeight times mean(μ²) (sigma, ae: with
// the variance fixed the KL reduces to this pull on μ) or the mean KL to
// N(0, I) (vae), plus SSIMWeight times 1 − SSIM when SSIMWeight > 0.
// For kind vq the decoder reads the straight-through codes and Reg is
// VQLoss (codebook plus β·commitment), added with weight 1 as in van den
// Oord et al. 2017 (KLWeight is not used); with CodebookDecay > 0 the
// codebook follows moving averages instead of the codebook loss, so Reg is
// β·CommitLoss, and the training graph must add UpdateCodebook.
// images are as Encode takes them, [B, H, W, C] or [B, H, W].
func (c Config) Loss(scope *model.Scope, w nn.Weights, images *Node) Losses {
	mu, logvar := c.Encode(w, images)
	var e, z, codes *Node
	if c.Kind == VQ {
		e, codes = Quantize(mu, w.Get(CodebookWeight))
		z = StraightThrough(mu, e)
	} else {
		z = c.Sample(scope, mu, logvar)
	}
	dec := c.Decode(w, z)
	if !dec.Shape().Equal(images.Shape()) { // [B, H, W, 1] given to a grayscale tokenizer
		dec = Reshape(dec, images.Shape().Dimensions...)
	}
	recon := ReduceAllMean(Square(Sub(dec, images)))
	var l Losses
	if c.Kind == VQ {
		reg := VQLoss(mu, e, c.Beta())
		if c.CodebookEMAEnabled() {
			reg = MulScalar(CommitLoss(mu, e), c.Beta())
		}
		l = Losses{Total: Add(recon, reg), Recon: recon, Reg: reg, Mu: mu, Codes: codes}
	} else {
		reg := Regulariser(c.Kind, mu, logvar)
		l = Losses{Total: Add(recon, MulScalar(reg, c.KLWeight)), Recon: recon, Reg: reg}
	}
	if c.SSIMWeight > 0 {
		l.SSIM = SSIM(dec, images)
		l.Total = Add(l.Total, MulScalar(OneMinus(l.SSIM), c.SSIMWeight))
	}
	return l
}

// PSNR in dB of a mean squared error on [0, 1] images.
func PSNR(mse float64) float64 { return 10 * math.Log10(1/mse) }
