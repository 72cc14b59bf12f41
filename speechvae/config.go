// Package speechvae is the speech tokenizer (docs/DESIGN.md §2 and §12):
// the σ-VAE of LatentLM's §2.3 (https://arxiv.org/abs/2412.08635) between
// 16 kHz audio and a sequence of latent frames at 25 Hz (12.5 Hz as a
// variant), the continuous tokens that text-to-speech generates by
// next-token diffusion.
//
// The encoder and decoder are Transformers over latent frames with rotary
// positions only, so one model takes audio of any length. The noise law
// (σ-VAE, VAE or AE) and the latent normalisation are those of the image
// tokenizer (vae.SampleLatent, vae.Regulariser). Kind vq (`speech-vae
// train --kind rvq`) puts a residual vector quantiser there instead, the
// codec of the discrete text-to-speech baseline (rvq.go, package valle).
//
// Two domains share that trunk:
//
//   - spectrum (the default): each latent frame reads and writes the log
//     magnitudes of five STFT frames (512-point windows every 128 samples,
//     speech.VocoderSTFT), and Griffin-Lim (speech.GriffinLim) turns the
//     decoded magnitudes into a waveform. This is the mel-domain
//     fallback, on linear magnitudes, which Griffin-Lim needs.
//   - wave: each latent frame reads 640 samples of the waveform and the
//     decoder writes the real and imaginary parts of five STFT frames, which
//     a fixed inverse DFT and overlap-add turn into the waveform: waveform
//     in, waveform out, as in the paper, with the phase learned.
//
// Both train on the same losses, computed from magnitudes: spectral
// convergence, log-magnitude L1 and log-mel L1 (for wave, over three STFT
// resolutions). There are no strided convolutions: ONNX Runtime cannot
// differentiate them (docs/DESIGN.md §10), so audio is cut into frames by
// reshape.
package speechvae

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"

	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/speech"
	"github.com/latentlm/latentlm/vae"
)

// Kind is the checkpoint kind of a speech tokenizer.
const Kind = "speech-vae"

// The domains of Config.Domain.
const (
	Spectrum = "spectrum"
	Wave     = "wave"
)

// Config is the speech tokenizer's architecture and objective, saved
// beside its weights.
type Config struct {
	Kind   vae.Variant `json:"kind"`
	Domain string      `json:"domain"` // Spectrum or Wave
	// FFT and Hop are the STFT of the spectrum domain, of the decoder's
	// frames in the wave domain, and of the losses' first resolution.
	FFT int `json:"fft"`
	Hop int `json:"hop"`
	// FramesPerLatent STFT frames make one latent frame: 5 × 128 samples
	// is 25 Hz at 16 kHz, 10 is 12.5 Hz.
	FramesPerLatent int `json:"frames_per_latent"`
	Channels        int `json:"latent_channels"`
	Dim             int `json:"dim"`
	Depth           int `json:"depth"` // blocks of the encoder, and of the decoder unless DecoderDepth says otherwise
	// DecoderDepth, when above 0, is the decoder's number of blocks in
	// place of Depth: a decoder-only run may grow the decoder of a
	// tokenizer whose latents it keeps (GrownDecoderOutputs), since the
	// decoder alone sets how well the latents sound.
	DecoderDepth int `json:"decoder_depth,omitempty"`
	// FrameDim and FrameDepth, when FrameDepth > 0, add FrameDepth blocks
	// of width FrameDim at the STFT frame rate on each side of the trunk:
	// the encoder embeds each STFT frame before the trunk reads a latent
	// frame's FramesPerLatent of them, and the decoder expands each latent
	// frame into FramesPerLatent frame vectors that write one STFT frame
	// each. Without them a latent frame's five STFT frames are one linear
	// map of one Dim-wide vector (rank Dim for 5·Bins outputs), which
	// may be too coarse for the quick changes of consonants. Measured at
	// the shipped recipe's budget (2500 steps, FrameDim 128, FrameDepth
	// 2) they reconstruct worse, not better (docs/RESULTS.md, "Speech"), so
	// the default has none.
	FrameDim   int     `json:"frame_dim,omitempty"`
	FrameDepth int     `json:"frame_depth,omitempty"`
	Heads      int     `json:"heads"`
	MLPRatio   float64 `json:"mlp_ratio"`
	CSigma     float64 `json:"c_sigma"`
	KLWeight   float64 `json:"kl_weight"`
	// LossFloor, when above 0, is the magnitude under which the log
	// losses stop counting: both sides are raised to it first, so a
	// decoder that writes anything below it where the target is below it
	// loses nothing. Without it half of all STFT bins of the shipped data
	// lie more than 70 dB under an utterance's loudest one (in silences
	// and spectral valleys), and their log errors, inaudible, weigh as
	// much as the formants'. 0 compares the values as they are, down to
	// the input's floor magFloor (111 dB under the median utterance's
	// loudest bin): a floor of 0.01 measured no better (docs/RESULTS.md,
	// "Speech").
	LossFloor float64 `json:"loss_floor,omitempty"`
	// AdvWeight, when above 0, adds the adversarial term of
	// adversarial.go with this weight, and the discriminator's weights
	// (saved with the tokenizer, unused by encode and decode).
	AdvWeight float64 `json:"adv_weight,omitempty"`
	// Codebooks and CodebookSize make kind vq a residual vector quantiser
	// (rvq.go): Codebooks stages of CodebookSize entries each, every stage
	// quantising what the previous ones left. Both are required for vq
	// and 0 (saved without the fields) for the other kinds.
	Codebooks    int `json:"codebooks,omitempty"`
	CodebookSize int `json:"codebook_size,omitempty"`
	// CommitWeight is the weight β of the commitment loss of kind vq; 0
	// means vae.DefaultCommitWeight.
	CommitWeight float64 `json:"commit_weight,omitempty"`
	// CodebookDecay is the decay γ of the moving averages every codebook
	// of kind vq follows, in (0, 1): the speech quantiser has no
	// gradient-trained codebooks (the image study, docs/RESULTS.md, saw
	// them collapse).
	CodebookDecay float64 `json:"codebook_decay,omitempty"`
	// RestartBelow is the moving count (encoder outputs per batch) under
	// which a code is dead and restarted from the batch; 0 restarts none.
	RestartBelow float64 `json:"restart_below,omitempty"`
}

// DefaultConfig is the shipped tokenizer's shape: 25 Hz frames of 32
// channels (the paper's 15 Hz × 32 channels at 24 kHz is 1600×; this is
// 640×), in the spectrum domain.
func DefaultConfig() Config {
	return Config{Kind: vae.Sigma, Domain: Spectrum, FFT: 512, Hop: 128, FramesPerLatent: 5, Channels: 32,
		Dim: 256, Depth: 4, Heads: 4, MLPRatio: 3, CSigma: 0.9375, KLWeight: 0.01}
}

// Validate reports an inconsistent configuration.
func (c Config) Validate() error {
	if err := nn.CheckSizes("speech-vae config", nn.Size{Name: "fft", Value: c.FFT}, nn.Size{Name: "hop", Value: c.Hop},
		nn.Size{Name: "frames_per_latent", Value: c.FramesPerLatent}, nn.Size{Name: "channels", Value: c.Channels},
		nn.Size{Name: "dim", Value: c.Dim}, nn.Size{Name: "depth", Value: c.Depth, Depth: true}, nn.Size{Name: "heads", Value: c.Heads}); err != nil {
		return err
	}
	switch {
	case c.Domain != Spectrum && c.Domain != Wave:
		return fmt.Errorf("speech-vae config: domain %q: want %s or %s", c.Domain, Spectrum, Wave)
	case c.Kind < vae.Sigma || c.Kind > vae.VQ:
		return fmt.Errorf("speech-vae config: unknown kind %v: want sigma, vae, ae or vq (rvq)", c.Kind)
	case c.FFT < 16 || c.FFT > 4096 || c.FFT&(c.FFT-1) != 0:
		return fmt.Errorf("speech-vae config: fft %d: want a power of two in 16…4096", c.FFT)
	case c.FFT != 4*c.Hop:
		return fmt.Errorf("speech-vae config: hop %d: want a quarter of the FFT size %d", c.Hop, c.FFT)
	case c.FramesPerLatent <= 0 || c.FramesPerLatent > 64:
		return fmt.Errorf("speech-vae config: frames_per_latent %d out of range 1…64", c.FramesPerLatent)
	case !(c.MLPRatio > 0 && c.MLPRatio <= 64):
		return fmt.Errorf("speech-vae config: mlp_ratio %g out of range (0, 64]", c.MLPRatio)
	case !(c.LossFloor >= 0 && c.LossFloor <= 1):
		return fmt.Errorf("speech-vae config: loss_floor %g out of range [0, 1]", c.LossFloor)
	case !(c.AdvWeight >= 0 && c.AdvWeight <= 100):
		return fmt.Errorf("speech-vae config: adv_weight %g out of range [0, 100]", c.AdvWeight)
	case !(c.CSigma >= 0 && c.CSigma <= 100) || !(c.KLWeight >= 0 && c.KLWeight <= 1e6):
		return fmt.Errorf("speech-vae config: c_sigma %g and kl_weight %g must be finite and ≥ 0", c.CSigma, c.KLWeight)
	case c.Dim%c.Heads != 0 || (c.Dim/c.Heads)%2 != 0:
		return fmt.Errorf("speech-vae config: dim %d must split into %d heads of even size", c.Dim, c.Heads)
	case c.DecoderDepth < 0 || c.DecoderDepth > 64:
		return fmt.Errorf("speech-vae config: decoder_depth %d out of range 0…64 (0: depth)", c.DecoderDepth)
	case c.FrameDepth < 0 || c.FrameDepth > 64 || c.FrameDim < 0 || c.FrameDim > 1<<14:
		return fmt.Errorf("speech-vae config: frame_depth %d and frame_dim %d out of range 0…64 and 0…16384", c.FrameDepth, c.FrameDim)
	case (c.FrameDepth > 0) != (c.FrameDim > 0):
		return fmt.Errorf("speech-vae config: frame_depth %d and frame_dim %d: give both or neither", c.FrameDepth, c.FrameDim)
	case c.FrameDepth > 0 && (c.FrameDim%c.Heads != 0 || (c.FrameDim/c.Heads)%2 != 0):
		return fmt.Errorf("speech-vae config: frame_dim %d must split into %d heads of even size", c.FrameDim, c.Heads)
	}
	return c.validateVQ()
}

// JSON encodes the config.
func (c Config) JSON() []byte {
	b, _ := json.MarshalIndent(c, "", "  ")
	return b
}

// STFT is the tokenizer's analysis: Hann windows of FFT samples every Hop.
func (c Config) STFT() speech.STFTOptions {
	return speech.STFTOptions{FFT: c.FFT, Window: c.FFT, Hop: c.Hop}
}

// Bins is the number of STFT bins, FFT/2+1.
func (c Config) Bins() int { return c.FFT/2 + 1 }

// SamplesPerLatent is the hop between latent frames, in samples.
func (c Config) SamplesPerLatent() int { return c.Hop * c.FramesPerLatent }

// FrameRate is latent frames per second at speech.Rate.
func (c Config) FrameRate() float64 { return float64(speech.Rate) / float64(c.SamplesPerLatent()) }

// InputWidth is the number of values the encoder reads per latent frame.
func (c Config) InputWidth() int {
	if c.Domain == Wave {
		return c.SamplesPerLatent()
	}
	return c.FramesPerLatent * c.Bins()
}

// outputWidth is what the decoder writes per latent frame: log magnitudes
// (spectrum) or real and imaginary parts (wave) of FramesPerLatent frames.
func (c Config) outputWidth() int {
	if c.Domain == Wave {
		return 2 * c.FramesPerLatent * c.Bins()
	}
	return c.FramesPerLatent * c.Bins()
}

func (c Config) block() nn.Block { return c.blockOf(c.Dim) }

// frameBlock is a block of the STFT-frame-rate stages.
func (c Config) frameBlock() nn.Block { return c.blockOf(c.FrameDim) }

func (c Config) blockOf(dim int) nn.Block {
	return nn.Block{Attn: nn.Attention{Dim: dim, Heads: c.Heads, KVHeads: c.Heads}, Hidden: nn.SwiGLUHidden(dim, c.MLPRatio)}
}

// framed reports whether the model has the STFT-frame-rate stages.
func (c Config) framed() bool { return c.FrameDepth > 0 }

// DecoderBlocks is the number of latent-rate blocks of the decoder:
// DecoderDepth, or Depth when that is 0.
func (c Config) DecoderBlocks() int {
	if c.DecoderDepth > 0 {
		return c.DecoderDepth
	}
	return c.Depth
}

// GrownDecoderOutputs lists the weights that must start at zero for the
// decoder of c, grown from one of fromBlocks blocks, to decode exactly as
// the smaller one did: each new block's attention projection and MLP
// output. A pre-norm block adds those two to its residual stream, so with
// both zero it passes its input through unchanged, the zero-initialised
// residual branches of Goyal et al. (2017) and Fixup (Zhang et al.,
// 2019). The new blocks are appended after the old ones, before the final
// norm; their other weights keep their random start, so the first step's
// gradients reach the zeroed ones and training moves the rest from there.
func (c Config) GrownDecoderOutputs(fromBlocks int) []string {
	var names []string
	for i := fromBlocks; i < c.DecoderBlocks(); i++ {
		names = append(names, fmt.Sprintf("decoder.blocks.%d.attn.proj.weight", i), fmt.Sprintf("decoder.blocks.%d.mlp.fc2.weight", i))
	}
	return names
}

// IsEncoderWeight reports whether the weight named name (one of Specs) is
// the encoder's: those, with the latent statistics, are what the latents
// depend on, and what a decoder-only run keeps.
func IsEncoderWeight(name string) bool { return strings.HasPrefix(name, "encoder.") }

// Specs declares the weights (for kind vq, the codebooks too, CodebookName).
func (c Config) Specs() []nn.Spec {
	d := c.Dim
	encOut := c.Channels
	if c.Kind == vae.VAE {
		encOut = 2 * c.Channels
	}
	// What the trunk's ends read and write per latent frame: the raw
	// frame, or FramesPerLatent vectors of the frame-rate stages.
	trunkIn, outIn, outWidth := c.InputWidth(), d, c.outputWidth()
	if c.framed() {
		f, fd := c.FramesPerLatent, c.FrameDim
		trunkIn, outIn, outWidth = f*fd, fd, c.outputWidth()/f
	}
	specs := []nn.Spec{
		{Name: "encoder.frame_embed.weight", Shape: []int{d, trunkIn}, Std: nn.InitStd},
		{Name: "decoder.latent_embed.weight", Shape: []int{d, c.Channels}, Std: nn.InitStd},
	}
	b := c.block()
	for i := range max(c.Depth, c.DecoderBlocks()) {
		if i < c.Depth {
			specs = append(specs, b.Specs(fmt.Sprintf("encoder.blocks.%d", i))...)
		}
		if i < c.DecoderBlocks() {
			specs = append(specs, b.Specs(fmt.Sprintf("decoder.blocks.%d", i))...)
		}
	}
	if c.framed() {
		f, fd := c.FramesPerLatent, c.FrameDim
		specs = append(specs,
			nn.Spec{Name: "encoder.frames.embed.weight", Shape: []int{fd, c.InputWidth() / f}, Std: nn.InitStd},
			nn.Spec{Name: "decoder.frames.expand.weight", Shape: []int{f * fd, d}, Std: nn.InitStd})
		fb := c.frameBlock()
		for i := range c.FrameDepth {
			specs = append(specs, fb.Specs(fmt.Sprintf("encoder.frames.blocks.%d", i))...)
			specs = append(specs, fb.Specs(fmt.Sprintf("decoder.frames.blocks.%d", i))...)
		}
	}
	specs = append(specs,
		nn.Spec{Name: "encoder.out.weight", Shape: []int{encOut, d}, Std: nn.InitStd},
		nn.Spec{Name: "decoder.out.weight", Shape: []int{outWidth, outIn}, Std: nn.InitStd},
	)
	if c.Kind == vae.VQ {
		// The initial entries matter little: PrepareTraining starts every
		// code dead, so the first step seeds them from the batch.
		for i := range c.Codebooks {
			specs = append(specs, nn.Spec{Name: CodebookName(i), Shape: []int{c.CodebookSize, c.Channels}, Std: nn.InitStd})
		}
	}
	return append(specs, c.discSpecs()...)
}

// stack runs depth blocks b over [B, L, width] with rotary positions
// 0…L−1 and no absolute embedding, so that any length works.
func stack(w nn.Weights, prefix string, b nn.Block, depth int, x *Node) *Node {
	pos := Iota(x.Graph(), nn.Shape(x.DType(), x.Shape().Dimensions[1]), 0)
	for i := range depth {
		x, _ = b.Forward(w, fmt.Sprintf("%s.blocks.%d", prefix, i), x, pos, false, nil)
	}
	return nn.RMSNorm(x)
}

// Encode maps encoder inputs [B, L, InputWidth] (see Inputs) to μ
// [B, L, Channels] and, for kind vae, the log-variance (nil otherwise).
func (c Config) Encode(w nn.Weights, x *Node) (mu, logvar *Node) {
	if c.framed() {
		// Each STFT frame (or its Hop samples) on its own, then the
		// latent frame's FramesPerLatent results side by side.
		b, l, f := x.Shape().Dimensions[0], x.Shape().Dimensions[1], c.FramesPerLatent
		frames := Reshape(x, b, l*f, c.InputWidth()/f)
		h := stack(w, "encoder.frames", c.frameBlock(), c.FrameDepth, nn.Linear(frames, w.Get("encoder.frames.embed.weight")))
		x = Reshape(h, b, l, f*c.FrameDim)
	}
	h := stack(w, "encoder", c.block(), c.Depth, nn.Linear(x, w.Get("encoder.frame_embed.weight")))
	out := nn.Linear(h, w.Get("encoder.out.weight"))
	if c.Kind != vae.VAE {
		return out, nil
	}
	return nn.Take(out, 2, 0, c.Channels), nn.Take(out, 2, c.Channels, 2*c.Channels)
}

// Decode maps latents [B, L, Channels] to the decoder's raw output
// [B, L, outputWidth]; Magnitudes and Waveform interpret it.
func (c Config) Decode(w nn.Weights, z *Node) *Node {
	h := stack(w, "decoder", c.block(), c.DecoderBlocks(), nn.Linear(z, w.Get("decoder.latent_embed.weight")))
	if !c.framed() {
		return nn.Linear(h, w.Get("decoder.out.weight"))
	}
	b, l, f := h.Shape().Dimensions[0], h.Shape().Dimensions[1], c.FramesPerLatent
	frames := Reshape(nn.Linear(h, w.Get("decoder.frames.expand.weight")), b, l*f, c.FrameDim)
	frames = stack(w, "decoder.frames", c.frameBlock(), c.FrameDepth, frames)
	return Reshape(nn.Linear(frames, w.Get("decoder.out.weight")), b, l, c.outputWidth())
}

// The spectrum domain reads log magnitudes as (ln max(|X|, magFloor) −
// logOffset)/logScale: about −1.7 for digital silence and 2 for loud
// vowels, the range a Transformer's linear layers start at ease in.
const (
	magFloor  = 1e-4
	logOffset = -4.0
	logScale  = 3.0
)

// EncodeLogMagnitude is the spectrum domain's input value of a magnitude.
func EncodeLogMagnitude(m float32) float32 {
	return float32((math.Log(math.Max(float64(m), magFloor)) - logOffset) / logScale)
}

// logMagnitudes turns the decoder's spectrum-domain output [B, L, F·Bins]
// into ln|X| [B, L·F, Bins].
func (c Config) logMagnitudes(out *Node) *Node {
	b, l := out.Shape().Dimensions[0], out.Shape().Dimensions[1]
	return AddScalar(MulScalar(Reshape(out, b, l*c.FramesPerLatent, c.Bins()), logScale), logOffset)
}

// Waveform turns the wave domain's decoder output [B, L, F·2·Bins] into
// samples [B, L·SamplesPerLatent]: each frame's real and imaginary parts
// through the inverse real DFT, the synthesis window, overlap-add, and the
// division by the summed squared window (the least-squares inverse STFT of
// speech.ISTFT, here in the graph so that losses reach the decoder).
func (c Config) Waveform(out *Node) *Node {
	g := out.Graph()
	b, l := out.Shape().Dimensions[0], out.Shape().Dimensions[1]
	t := l * c.FramesPerLatent
	frames := Reshape(out, b, t, 2*c.Bins())
	basis := Const(g, inverseDFT(c.FFT)) // [2·Bins, FFT], window folded in
	y := Einsum("btk,kn->btn", frames, ConvertDType(basis, out.DType()))
	// Frame j starts at (j−2)·Hop: centred on j·Hop with a window of 4 hops.
	// nn.Take, not Slice: the gradient of a slice is a Pad, which ONNX
	// Runtime lacks.
	chunks := Reshape(y, b, t, 4, c.Hop)
	var sum *Node
	for j := range 4 {
		piece := Reshape(nn.Take(chunks, 2, j, j+1), b, t, c.Hop) // [B, T, Hop]
		piece = padAxis(piece, 1, j, 3-j)
		if sum == nil {
			sum = piece
		} else {
			sum = Add(sum, piece)
		}
	}
	norm := ConvertDType(Const(g, overlapNorm(c.FFT, c.Hop, t)), out.DType()) // [T+3, Hop]
	sig := Mul(sum, InsertAxes(norm, 0))
	sig = nn.Take(sig, 1, 2, 2+t)
	return Reshape(sig, b, t*c.Hop)
}

// padAxis pads x with start and end zeros along axis by concatenation
// (ONNX Runtime's backend has no Pad).
func padAxis(x *Node, axis, start, end int) *Node {
	parts := []*Node{}
	zeros := func(n int) *Node {
		dims := x.Shape().Clone().Dimensions
		dims[axis] = n
		return Zeros(x.Graph(), nn.Shape(x.DType(), dims...))
	}
	if start > 0 {
		parts = append(parts, zeros(start))
	}
	parts = append(parts, x)
	if end > 0 {
		parts = append(parts, zeros(end))
	}
	if len(parts) == 1 {
		return x
	}
	return Concatenate(parts, axis)
}

// inverseDFT is the matrix [2·(N/2+1), N] that maps the real parts then
// the imaginary parts of a half spectrum to the windowed inverse DFT:
// x[n] = w[n]·(1/N)·Σ_k c_k·(Re X_k·cos(2πkn/N) − Im X_k·sin(2πkn/N)),
// c_k = 1 at DC and Nyquist and 2 between.
func inverseDFT(n int) [][]float32 {
	bins := n/2 + 1
	win := hann(n)
	m := make([][]float32, 2*bins)
	for k := range bins {
		ck := 2.0
		if k == 0 || k == n/2 {
			ck = 1
		}
		re, im := make([]float32, n), make([]float32, n)
		for i := range n {
			a := 2 * math.Pi * float64(k) * float64(i) / float64(n)
			re[i] = float32(win[i] * ck * math.Cos(a) / float64(n))
			im[i] = float32(-win[i] * ck * math.Sin(a) / float64(n))
		}
		m[k], m[bins+k] = re, im
	}
	return m
}

// overlapNorm is 1/Σ w² over the overlapping windows at each output
// sample of t frames (0 where no window reaches), as [t+3, hop].
func overlapNorm(n, hop, t int) [][]float32 {
	win := hann(n)
	out := make([][]float32, t+3)
	acc := make([]float64, (t+3)*hop)
	for j := range t {
		for i, w := range win {
			acc[j*hop+i] += w * w
		}
	}
	for r := range out {
		out[r] = make([]float32, hop)
		for i := range hop {
			if a := acc[r*hop+i]; a > 1e-8 {
				out[r][i] = float32(1 / a)
			}
		}
	}
	return out
}

// hann is the periodic Hann window of speech's STFT.
func hann(n int) []float64 {
	w := make([]float64, n)
	for i := range w {
		w[i] = 0.5 - 0.5*math.Cos(2*math.Pi*float64(i)/float64(n))
	}
	return w
}

// Losses are the terms of the speech tokenizer's objective.
type Losses struct {
	Total, Convergence, LogMag, Mel, Reg *Node
	// Quantized is, for kind vq, what the residual quantiser made of the
	// encoder's outputs (nil otherwise): UpdateCodebooks needs it.
	Quantized *Residual
	// AdvGen and AdvDisc are, with an AdvWeight, the decoder's adversarial
	// loss (before the weight) and the discriminator's (nil otherwise).
	// Total holds AdvWeight·AdvGen + AdvDisc: each reaches only its own
	// player's weights. So an adversarial run's Total (its logged loss)
	// does not compare with other runs'; its sc, logmag and mel do.
	AdvGen, AdvDisc *Node
}

// Loss is the objective on a batch: encoder inputs x [B, L, InputWidth]
// and, in the wave domain, the waveform target [B, L·SamplesPerLatent]
// (nil in the spectrum domain, where x is its own target). Spectral
// convergence ‖|X| − |X̂|‖_F/‖|X|‖_F, the mean absolute difference of
// ln|X| and of log-mel power (the losses of multi-resolution STFT
// training, Yamamoto et al. 2020, eq. 3–5, and of the issue), plus
// KLWeight times the noise law's regulariser. For kind vq the decoder reads
// the residual quantiser's output through the straight-through estimator
// and Reg is β times the commitment losses of all stages (CommitLoss),
// added with weight 1; the training graph must add UpdateCodebooks.
func (c Config) Loss(scope *model.Scope, w nn.Weights, x, target *Node) Losses {
	mu, logvar := c.Encode(w, x)
	var q *Residual
	var z *Node
	if c.Kind == vae.VQ {
		q = c.ResidualQuantize(w, mu)
		z = vae.StraightThrough(mu, q.Sum)
	} else {
		z = vae.SampleLatent(scope, c.Kind, c.CSigma, mu, logvar)
	}
	out := c.Decode(w, z)
	// realLog and fakeLog are ln|X| of the target and the decoded audio
	// at the first resolution, what the adversarial term compares.
	var sc, lm, mel, realLog, fakeLog *Node
	if c.Domain == Wave {
		y := c.Waveform(out)
		for _, fft := range []int{c.FFT / 2, c.FFT, 2 * c.FFT} {
			ref := logMagnitudeGraph(target, fft)
			got := logMagnitudeGraph(y, fft)
			if fft == c.FFT {
				realLog, fakeLog = ref, got
			}
			s, l, m := c.spectralLosses(ref, got, fft)
			sc, lm, mel = addOr(sc, s), addOr(lm, l), addOr(mel, m)
		}
		sc, lm, mel = MulScalar(sc, 1.0/3), MulScalar(lm, 1.0/3), MulScalar(mel, 1.0/3)
	} else {
		b, l := x.Shape().Dimensions[0], x.Shape().Dimensions[1]
		realLog = AddScalar(MulScalar(Reshape(x, b, l*c.FramesPerLatent, c.Bins()), logScale), logOffset)
		fakeLog = c.logMagnitudes(out)
		sc, lm, mel = c.spectralLosses(realLog, fakeLog, c.FFT)
	}
	var l Losses
	if q != nil {
		reg := MulScalar(q.CommitLoss(), c.Beta())
		l = Losses{Total: Add(Add(Add(sc, lm), mel), reg), Convergence: sc, LogMag: lm, Mel: mel, Reg: reg, Quantized: q}
	} else {
		reg := vae.Regulariser(c.Kind, mu, logvar)
		l = Losses{Total: Add(Add(Add(sc, lm), mel), MulScalar(reg, c.KLWeight)), Convergence: sc, LogMag: lm, Mel: mel, Reg: reg}
	}
	if c.AdvWeight > 0 {
		l.AdvGen, l.AdvDisc = adversarialLosses(func(name string) *Node { return w.Get("%s", name) }, realLog, fakeLog, c.FFT)
		l.Total = Add(l.Total, Add(MulScalar(l.AdvGen, c.AdvWeight), l.AdvDisc))
	}
	return l
}

func addOr(a, b *Node) *Node {
	if a == nil {
		return b
	}
	return Add(a, b)
}

// spectralLosses compares log magnitudes [B, T, FFT/2+1]. With a
// LossFloor, both sides of the log terms are raised to it first (a mel
// band's power to its square); without, the log terms read the values as
// they are (mel power plus 1e-8), as the shipped tokenizer was trained.
func (c Config) spectralLosses(ref, got *Node, fft int) (convergence, logMag, mel *Node) {
	g := ref.Graph()
	refMag, gotMag := Exp(ref), Exp(got)
	num := Sqrt(ReduceSum(Square(Sub(refMag, gotMag)), 1, 2))
	den := Sqrt(AddScalar(ReduceSum(Square(refMag), 1, 2), 1e-6))
	convergence = ReduceAllMean(Div(num, den))
	floored := func(logm *Node) *Node { return logm }
	powerLog := func(p *Node) *Node { return Log(AddScalar(p, 1e-8)) }
	if c.LossFloor > 0 {
		logFloor := ConstAsDType(g, ref.DType(), math.Log(c.LossFloor))
		powerFloor := ConstAsDType(g, ref.DType(), c.LossFloor*c.LossFloor)
		floored = func(logm *Node) *Node { return Max(logm, logFloor) }
		powerLog = func(p *Node) *Node { return Log(Max(p, powerFloor)) }
	}
	logMag = ReduceAllMean(Abs(Sub(floored(ref), floored(got))))
	fb := ConvertDType(Const(g, melMatrix(fft)), ref.DType()) // [Bins, Mels]
	melOf := func(logm *Node) *Node { return powerLog(melPower(logm, fb)) }
	mel = ReduceAllMean(Abs(Sub(melOf(ref), melOf(got))))
	return convergence, logMag, mel
}

// melPower is the mel-band power [B, T, Mels] of ln|X| [B, T, Bins] through
// the filterbank fb [Bins, Mels] (melMatrix).
func melPower(logMag, fb *Node) *Node {
	return Einsum("btk,km->btm", Exp(MulScalar(logMag, 2)), fb)
}

// melMatrix is speech's 80-band HTK filterbank for fft, transposed to
// [FFT/2+1, 80] (fewer bands for the smallest FFTs).
func melMatrix(fft int) [][]float32 {
	mels := min(80, fft/4)
	fb, err := speech.MelFilterbank(speech.MelOptions{Rate: speech.Rate, FFT: fft, Mels: mels})
	if err != nil {
		panic(err) // fft is a checked power of two
	}
	out := make([][]float32, fft/2+1)
	for k := range out {
		out[k] = make([]float32, mels)
		for m := range mels {
			out[k][m] = float32(fb[m][k])
		}
	}
	return out
}

// logMagnitudeGraph is ln max(|STFT|, magFloor) of waveforms [B, N] in the
// graph, [B, frames, fft/2+1]: Hann windows of fft samples every fft/4,
// the signal padded by half a window at each end.
func logMagnitudeGraph(x *Node, fft int) *Node {
	g := x.Graph()
	b, n := x.Shape().Dimensions[0], x.Shape().Dimensions[1]
	hop := fft / 4
	padEnd := fft/2 + (hop-(n+fft)%hop)%hop
	x = padAxis(x, 1, fft/2, padEnd)
	chunks := Reshape(x, b, (n+fft/2+padEnd)/hop, hop)
	m := chunks.Shape().Dimensions[1]
	parts := make([]*Node, 4)
	for j := range 4 {
		parts[j] = nn.Take(chunks, 1, j, m-3+j)
	}
	frames := Concatenate(parts, -1) // [B, m−3, fft]
	re, im := forwardDFT(fft)
	fr := Einsum("btn,nk->btk", frames, ConvertDType(Const(g, re), x.DType()))
	fi := Einsum("btn,nk->btk", frames, ConvertDType(Const(g, im), x.DType()))
	power := Add(Square(fr), Square(fi))
	return MulScalar(Log(Max(power, ConstAsDType(g, x.DType(), magFloor*magFloor))), 0.5)
}

// forwardDFT is the windowed real DFT as two [N, N/2+1] matrices.
func forwardDFT(n int) (re, im [][]float32) {
	win := hann(n)
	re, im = make([][]float32, n), make([][]float32, n)
	for i := range n {
		re[i], im[i] = make([]float32, n/2+1), make([]float32, n/2+1)
		for k := range n/2 + 1 {
			a := 2 * math.Pi * float64(k) * float64(i) / float64(n)
			re[i][k] = float32(win[i] * math.Cos(a))
			im[i][k] = float32(-win[i] * math.Sin(a))
		}
	}
	return re, im
}
