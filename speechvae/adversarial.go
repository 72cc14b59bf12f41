package speechvae

import (
	"fmt"
	"math"

	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/ml/layers/activation"

	"github.com/latentlm/latentlm/nn"
)

// The optional adversarial term (Config.AdvWeight; the issue's "small
// adversarial term", off by default). Spectral losses are regression
// losses: where the latent leaves a detail uncertain (a fricative's fine
// structure, a formant's exact track), they pay least for the average of
// the possibilities, a smoothed spectrum that Griffin-Lim renders muffled.
// A discriminator that tells real spectra from decoded ones pays the
// decoder for choosing one sharp possibility instead, as in MelGAN and
// HiFi-GAN (Kong et al. 2020, eq. 1–6).
//
// The discriminator is a small MLP over patches of discPatch STFT frames
// (64 ms at the shipped hop) of log-mel magnitudes (melMatrix's 80 bands,
// fewer for FFTs under 320), one score a patch:
// the losses are least squares (LSGAN, Mao et al. 2017, as HiFi-GAN's eq.
// 1–2), plus HiFi-GAN's feature matching (eq. 3): the L1 distance of the
// discriminator's hidden activations on real and decoded spectra, weighted
// 2 against the adversarial term's 1 (HiFi-GAN's eq. 6 ratio).
//
// Both players train in the one step and the one loss: the decoder's terms
// read the discriminator's weights through StopGradient, and the
// discriminator's term reads the decoded spectrum through StopGradient, so
// each gradient reaches only its own player (TestAdversarialGradients).
// Two things still tie them, as the runs of docs/RESULTS.md were trained:
// the trainer clips one global gradient norm over all weights, so a large
// discriminator gradient shortens the decoder's step too; and the real
// spectra read magnitudes floored at magFloor, the decoded ones are not
// floored, which the discriminator may notice in silent bins.
const (
	discPatch = 8
	discDim   = 256
	// featureMatchWeight is HiFi-GAN's λ_fm against its adversarial
	// term's 1.
	featureMatchWeight = 2
)

// discNames are the discriminator's weights, input layer first.
var discNames = []string{"disc.in.weight", "disc.hidden.weight", "disc.out.weight"}

// discSpecs declares the discriminator's weights, He-initialised for the
// leaky ReLUs.
func (c Config) discSpecs() []nn.Spec {
	if c.AdvWeight == 0 {
		return nil
	}
	in := discPatch * len(melMatrix(c.FFT)[0])
	return []nn.Spec{
		{Name: discNames[0], Shape: []int{discDim, in}, Std: math.Sqrt(2 / float64(in))},
		{Name: discNames[1], Shape: []int{discDim, discDim}, Std: math.Sqrt(2 / float64(discDim))},
		{Name: discNames[2], Shape: []int{1, discDim}, Std: math.Sqrt(1 / float64(discDim))},
	}
}

// CheckCrop reports whether training crops of latentFrames latent frames
// are long enough for the adversarial term's patches (always, without one).
func (c Config) CheckCrop(latentFrames int) error {
	if c.AdvWeight > 0 && latentFrames*c.FramesPerLatent < discPatch {
		return fmt.Errorf("speech-vae: crops of %d latent frames hold %d STFT frames, fewer than the adversarial term's patch of %d",
			latentFrames, latentFrames*c.FramesPerLatent, discPatch)
	}
	return nil
}

// discInput turns ln|X| [B, T, FFT/2+1] into the discriminator's input
// [B, T/discPatch, discPatch·bands]: the log-mel magnitudes of whole
// patches, frames past the last whole patch left out.
func discInput(logMag *Node, fft int) *Node {
	b, t := logMag.Shape().Dimensions[0], logMag.Shape().Dimensions[1]
	patches := t / discPatch
	if patches == 0 {
		panic(fmt.Errorf("speech-vae: %d STFT frames are fewer than the discriminator's patch of %d", t, discPatch))
	}
	fb := ConvertDType(Const(logMag.Graph(), melMatrix(fft)), logMag.DType())
	// ln of mel magnitude (half ln of the power), on the spectrum domain's
	// input scale (about −2…2).
	x := DivScalar(AddScalar(MulScalar(Log(AddScalar(melPower(logMag, fb), 1e-8)), 0.5), -logOffset), logScale)
	return Reshape(nn.Take(x, 1, 0, patches*discPatch), b, patches, discPatch*fb.Shape().Dimensions[1])
}

// discriminate scores the patches of discInput's x: it returns the scores
// [B, patches] and the two hidden activations. weight gives the
// discriminator's weights (frozen or not).
func discriminate(weight func(string) *Node, x *Node) (score *Node, hidden []*Node) {
	b, patches := x.Shape().Dimensions[0], x.Shape().Dimensions[1]
	h1 := activation.LeakyReluWith(nn.Linear(x, weight(discNames[0])), 0.2)
	h2 := activation.LeakyReluWith(nn.Linear(h1, weight(discNames[1])), 0.2)
	return Reshape(nn.Linear(h2, weight(discNames[2])), b, patches), []*Node{h1, h2}
}

// adversarialLosses returns the decoder's adversarial loss (LSGAN plus
// feature matching, already weighted 1 : featureMatchWeight) and the
// discriminator's, for real and decoded ln|X| [B, T, FFT/2+1]; weight
// gives the discriminator's weights by name. Each side's input is made
// once and read by both turns.
func adversarialLosses(weight func(string) *Node, real, fake *Node, fft int) (gen, disc *Node) {
	live := weight
	frozen := func(name string) *Node { return StopGradient(weight(name)) }
	xReal, xFake := StopGradient(discInput(real, fft)), discInput(fake, fft)
	// The discriminator's turn: real patches towards 1, decoded towards 0.
	sReal, hReal := discriminate(live, xReal)
	sFake, _ := discriminate(live, StopGradient(xFake))
	disc = Add(ReduceAllMean(Square(AddScalar(sReal, -1))), ReduceAllMean(Square(sFake)))
	// The decoder's turn, against the frozen discriminator: decoded
	// patches towards 1, and its hidden activations towards the real ones.
	sGen, hGen := discriminate(frozen, xFake)
	gen = ReduceAllMean(Square(AddScalar(sGen, -1)))
	for i := range hGen {
		gen = Add(gen, MulScalar(ReduceAllMean(Abs(Sub(hGen[i], StopGradient(hReal[i])))), featureMatchWeight))
	}
	return gen, disc
}
