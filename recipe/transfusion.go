package recipe

import (
	"context"
	"fmt"
	"math/rand/v2"

	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/imageio"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/multimodal"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/text"
	"github.com/latentlm/latentlm/train"
	"github.com/latentlm/latentlm/transfusion"
	"github.com/latentlm/latentlm/vae"
)

// TransfusionOptions turn Multimodal into the training of the Transfusion
// baseline (package transfusion, issue 16): the same data, tokenizers,
// backbone, mixture, caption dropout and optimiser, with Transfusion's
// handling of images (bidirectional attention inside each image, one
// timestep per image, the whole Transformer as the denoiser).
type TransfusionOptions struct {
	// On trains Transfusion instead of LatentLM (MultimodalOptions.Arch
	// must then be multimodal.Latent: the σ-VAE latents).
	On bool
	// ContextNoise is the fraction of the schedule over which images read
	// as context (image → caption, questions) are noised and denoised in
	// training: DefaultMultimodalOptions gives the paper's t < 500
	// (transfusion.PaperContextNoise), and 0 gives them clean and without
	// a diffusion loss, as they are given in use (transfusion.NewLayout
	// says why that reads worse). Either way such an image is its σ-VAE
	// mean μ, as in use, not a draw (transfusion.Losses). A resumed run
	// keeps its own.
	ContextNoise float64
}

// transfusionRun is what a Transfusion run of Multimodal does differently
// from LatentLM: its config and checkpoint kind, its loss, the layout
// tensors of each batch and its checkpoint.
type transfusionRun struct {
	cfg  transfusion.Config
	o    TransfusionOptions
	seed uint64
}

// newTransfusionRun checks the options of a Transfusion run and starts its
// config from the LatentLM backbone of the options (nil when o is not a
// Transfusion run).
func newTransfusionRun(o MultimodalOptions) (*transfusionRun, error) {
	if !o.Transfusion.On {
		return nil, nil
	}
	if o.Arch != multimodal.Latent {
		return nil, fmt.Errorf("the Transfusion baseline draws σ-VAE latents, not the images of arch %v", o.Arch)
	}
	if c := o.Transfusion.ContextNoise; !(c >= 0 && c <= 1) {
		return nil, &OptionError{Option: "context-noise", Problem: fmt.Sprintf("%v: want a fraction of the schedule in [0, 1]", c)}
	}
	return &transfusionRun{cfg: transfusion.FromLM(o.Model), o: o.Transfusion, seed: o.Seed}, nil
}

// loss is the Transfusion objective of a batch: the inputs of
// multimodal.Losses with Clean (every image read as context is read as
// its mean: MultimodalOptions.contextClean), then the three layout tensors
// (inputs).
func (t *transfusionRun) loss(tok vae.Config, sched *diffusion.Schedule, lambda float64) train.LossFn {
	cfg := t.cfg
	return func(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
		return transfusion.Losses(scope, w, cfg, tok, sched, lambda, multimodal.InputsOf(in[:6], true, false), in[6], in[7], in[8])
	}
}

// inputs are the layout tensors of the batch of a step (timesteps,
// visibility, noisy): one timestep per image from a generator of (seed,
// step) alone, so that a resumed run draws what the run it resumes would
// have.
func (t *transfusionRun) inputs(bt *multimodal.Batch, f multimodal.Format, step int64) ([]any, error) {
	rng := rand.New(rand.NewPCG(t.seed^0x7472616e73667573, uint64(step)))
	lay, err := transfusion.NewLayout(bt, f, diffusion.Cosine(1000).T, t.o.ContextNoise, rng)
	if err != nil {
		return nil, err
	}
	return lay.Inputs(bt.Rows, bt.Len), nil
}

// save writes the checkpoint, recording the context noise beside the
// other training settings.
func (t *transfusionRun) save(dir string, store *model.Store, rec lm.Tokenizer, tok *text.Tokenizer, info map[string]any, batch, seqLen int, step int64) error {
	info["context_noise"] = t.o.ContextNoise
	// Every image read as context enters as its σ-VAE mean (runs before
	// 2026-12-07 read it as a draw, and record no "context_mean");
	// LatentLM's share of them (context_clean) does not apply.
	info["context_mean"] = true
	delete(info, "context_clean")
	info["train_gflop"] = 3 * t.cfg.ForwardFLOPs(batch, seqLen) * float64(step) / 1e9
	return transfusion.Save(dir, t.cfg, store, rec, tok, info)
}

// transfusionGrid is CaptionGrid for a Transfusion checkpoint: it draws
// all (perCaption images of each caption, in rows) with the model in dir,
// and reports false, doing nothing, when dir holds another kind.
func transfusionGrid(ctx context.Context, backendName, dir, out string, all []string, perCaption int) (bool, error) {
	if kind, err := checkpoint.ReadKind(dir); err != nil || kind != transfusion.Kind {
		return false, nil
	}
	b, _, err := openBackend(backendName)
	if err != nil {
		return true, err
	}
	m, err := transfusion.Load(b, dir, "", multimodal.DefaultOptions())
	if err != nil {
		return true, err
	}
	defer m.Close()
	imgs, err := m.ImagesFor(ctx, all)
	if err != nil {
		return true, err
	}
	size := m.Image.Config.ImageSize
	return true, imageio.WriteGridOpts(out, imgs, size, size, perCaption, imageio.GridOptions{Channels: m.Image.Config.ImageChannels()})
}
