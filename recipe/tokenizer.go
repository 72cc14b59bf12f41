package recipe

import (
	"cmp"
	"context"
	"fmt"
	"path/filepath"
	"time"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/canvas"
	"github.com/latentlm/latentlm/data"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/train"
	"github.com/latentlm/latentlm/vae"
)

// TokenizerOptions are the settings of Tokenizer, the options of
// `latentlm vae train`.
type TokenizerOptions struct {
	Options
	// Limit trains on the first Limit training images only (0: all).
	Limit int
	// Model is the tokenizer; a resumed run uses the saved one. Its
	// ImageSize and InChannels are replaced by the side and the channels
	// of the data's images (see DefaultTokenizerModel for the patch and
	// channels that suit each).
	Model vae.Config
	// Images say how the pictures of a folder or the emoji become square
	// images (size, fit, background; see LoadImages). The named sets take
	// their own size.
	Images ImageOptions
}

// DefaultTokenizerModel is the tokenizer of `latentlm vae train` for a
// data set. For mnist and fashion it is vae.DefaultConfig: 28×28 images in
// 4×4 patches, a 7×7 grid of latents. For the 56×56 canvases it keeps that
// 7×7 grid by taking 8×8 patches, with 16 channels: the 49 latents of a
// canvas are as many as those of a digit, so that LatentLM's sequences,
// and their cost, stay those of the demo, and the 3136 pixels of a canvas
// go into 49·16 = 784 numbers, a 4× compression like that of a 4-channel
// 28×28 tokenizer (the shipped 8-channel ones compress 2×): a canvas has
// four times the pixels of a digit, mostly background.
//
// For the colour sets (emoji and folders, DefaultImageSize pixels) it is
// DefaultTokenizerModelFor at that size.
func DefaultTokenizerModel(dataName string) vae.Config {
	return DefaultTokenizerModelFor(dataName, 0)
}

// DefaultTokenizerModelFor is DefaultTokenizerModel for images of side size
// (0: DefaultImageSize), which only the colour sets (emoji and folders)
// take; the named sets ignore it. A colour tokenizer takes RGB
// (InChannels 3; Tokenizer sets 1 for a folder of gray pictures) and keeps
// an 8×8 grid of 64 latents of 16 channels whatever the size, in patches
// of size/8 pixels (4 at 32 pixels, 4 also for a size that 8 does not
// divide), so that LatentLM's sequences stay as short as a digit's: at 32
// pixels a latent holds a 4×4×3 patch of 48 values in 16 numbers, the 3×
// compression of the canvases' tokenizer (docs/DESIGN.md §2).
func DefaultTokenizerModelFor(dataName string, size int) vae.Config {
	c := vae.DefaultConfig()
	if !IsImageFolder(dataName) && dataName != EmojiData {
		c.ImageSize = imageSize(dataName)
		if canvas.IsCanvas(dataName) {
			c.Patch, c.Channels = 8, 16
		}
		return c
	}
	if size <= 0 {
		size = DefaultImageSize
	}
	c.ImageSize, c.InChannels, c.Channels, c.Patch = size, 3, 16, 4
	if size%8 == 0 {
		c.Patch = size / 8
	}
	return c
}

// DefaultTokenizerOptions are the defaults of `latentlm vae train`.
func DefaultTokenizerOptions() TokenizerOptions {
	return TokenizerOptions{
		Options: Options{Data: "mnist", Steps: 1500, SaveEvery: 500, Batch: 64, LR: 2e-3, Seed: 1},
		Model:   vae.DefaultConfig(),
	}
}

// Tokenizer trains the image tokenizer (the σ-VAE, or a plain VAE,
// autoencoder or VQ-VAE, as o.Model.Kind says; a VQ-VAE's latent
// statistics are those of its codebook entries) into o.Out (default
// runs/vae-<kind>-<data>, a folder's last path element for data), then
// records the statistics of its latents over the training set, which the
// language model normalises them with. A canvas set trains on its "train"
// split, which holds no held-out scene; emoji and folders on the train
// split of LoadImages. The checkpoint's info records the data (for a
// folder its absolute path, size, channels, fit and background), so that
// its evaluation reads the same images (ImageDataOf).
func Tokenizer(ctx context.Context, o TokenizerOptions) (*Result, error) {
	if err := CheckImageData(o.Data); err != nil {
		return nil, err
	}
	colour := IsImageFolder(o.Data) || o.Data == EmojiData
	if colour && o.Model.Patch > 0 {
		// Refused before the folder is read: the size is the user's.
		if size := cmp.Or(o.Images.Size, DefaultImageSize); size%o.Model.Patch != 0 {
			return nil, &OptionError{Option: "size", Problem: fmt.Sprintf("%d is not divisible by the patch %d (--patch)", size, o.Model.Patch)}
		}
	}
	b, bname, err := openBackend(o.Backend)
	if err != nil {
		return nil, err
	}
	set, err := LoadImages(o.Data, "train", o.Images, o.Limit, o.Log)
	if err != nil {
		return nil, err
	}
	cfg := o.Model
	cfg.ImageSize, cfg.InChannels = set.Size, inChannels(set.Channels)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if o.Out == "" {
		o.Out = filepath.Join("runs", fmt.Sprintf("vae-%s-%s", cfg.Kind, dataLabel(o.Data)))
	}
	if o.Batch > set.N {
		logf(o.Log, "batch %d is larger than the %d training images: batches of %d\n", o.Batch, set.N, set.N)
		o.Batch = set.N
	}
	run, err := train.StartRun(o.Out, vae.Kind, &cfg, o.Seed, o.Resume, o.MemoryLimit, func() float64 {
		tokens := float64(o.Batch) * float64(cfg.Items()) * 2 // encoder and decoder
		act := 2 * tokens * float64(cfg.Dim) * float64(cfg.Depth) * (12 + 4*cfg.MLPRatio)
		return nn.MemoryEstimate(cfg.Specs(), act+float64(o.Batch*cfg.Pixels()*16), true)
	})
	if err != nil {
		return nil, err
	}
	defer run.Finish()
	// A resumed run has the saved config, which must take these images.
	if cfg.ImageSize != set.Size {
		return nil, fmt.Errorf("tokenizer %s takes %d×%d images: %s %s has %d×%d images", o.Out, cfg.ImageSize, cfg.ImageSize, o.Data, set.Split, set.Size, set.Size)
	}
	if cfg.ImageChannels() != set.Channels {
		return nil, fmt.Errorf("tokenizer %s takes %s, %s has %s", o.Out, channelWords(cfg.ImageChannels()), o.Data, channelWords(set.Channels))
	}
	store := run.Store
	o.Seed = run.Seed
	tc := train.DefaultConfig()
	tc.LR, tc.TotalSteps, tc.WarmupSteps, tc.MinLR = o.LR, int(o.Steps), 100, o.LR/20
	// The tokenizer ships its live weights, so an EMA would be updated every
	// step for nothing.
	tc.EMADecay = 0
	// A codebook that follows moving averages is left out of the
	// optimiser, and its averages are created (or kept, when resumed).
	if err := cfg.PrepareTraining(store); err != nil {
		return nil, err
	}
	tr, err := train.New(b, store, tc, func(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
		l := cfg.Loss(scope, w, in[0])
		outs := []*Node{l.Total, l.Recon, l.Reg}
		if l.SSIM != nil {
			outs = append(outs, l.SSIM)
		}
		if cfg.Kind == vae.VQ {
			// Codebook use in the progress bar: the batch's code
			// perplexity, and the codes restarted this step.
			outs = append(outs, vae.CodePerplexity(l.Codes, cfg.Codebook))
			if cfg.CodebookEMAEnabled() {
				outs = append(outs, cfg.UpdateCodebook(scope, l.Mu, l.Codes))
			}
		}
		return outs
	})
	if err != nil {
		return nil, err
	}
	started := time.Now()
	save := func(step int64, h []train.Point) error {
		m, err := vae.NewModel(b, cfg, store)
		if err != nil {
			return err
		}
		info := set.Info()
		info["steps"], info["backend"], info["seed"] = step, bname, o.Seed
		return run.Save(func(dir string) error { return m.Save(dir, info, false) }, h, step)
	}
	metrics := []string{"recon", "reg"}
	if cfg.Kind == vae.VQ {
		metrics[1] = "vq" // codebook + β·commitment (vae.VQLoss), or β·commitment with an EMA codebook
	}
	if cfg.SSIMWeight > 0 {
		metrics = append(metrics, "ssim")
	}
	if cfg.Kind == vae.VQ {
		metrics = append(metrics, "ppl")
		if cfg.CodebookEMAEnabled() {
			metrics = append(metrics, "restarts")
		}
	}
	loop := &train.Loop{
		Trainer: tr, Store: store, Steps: o.Steps, Deadline: o.Deadline, History: run.History, Every: o.SaveEvery, Hook: save,
		Desc: fmt.Sprintf("vae %s/%s", cfg.Kind, dataLabel(o.Data)), Quiet: o.Quiet, RecordEvery: 20, Metrics: metrics,
		Batch: func(step int64) ([]any, int, error) {
			idx := data.BatchIndices(set.N, o.Batch, step, o.Seed)
			return []any{tensors.FromFlatDataAndDimensions(set.Batch(idx), cfg.ImageDims(len(idx))...)}, len(idx) * cfg.Items(), nil
		},
	}
	if err := run.Train(ctx, loop); err != nil {
		return nil, err
	}
	// Latent statistics over the training set, for the language model.
	m, err := vae.NewModel(b, cfg, store)
	if err != nil {
		return nil, err
	}
	if err := m.ComputeStats(set.Batches(500, 20000)); err != nil {
		return nil, err
	}
	info := set.Info()
	info["steps"], info["backend"], info["seed"], info["train_seconds"] = o.Steps, bname, o.Seed, time.Since(started).Seconds()
	if err := m.Save(o.Out, info, false); err != nil {
		return nil, err
	}
	if err := writeLossPlot(filepath.Join(o.Out, "loss.png"), "tokenizer training loss", loop.History); err != nil {
		return nil, err
	}
	logf(o.Log, "saved %s (%d steps in %s)\n", o.Out, loop.Steps, time.Since(started).Round(time.Second))
	return &Result{Dir: o.Out, History: loop.History}, nil
}

// inChannels is the vae.Config.InChannels of images of c channels: 0 for
// one, so that a grayscale tokenizer's config.json is what it always was.
func inChannels(c int) int {
	if c == 1 {
		return 0
	}
	return c
}

// channelWords says "1-channel (gray) images" or "3-channel (RGB) images".
func channelWords(c int) string {
	switch c {
	case 1:
		return "1-channel (gray) images"
	case 3:
		return "3-channel (RGB) images"
	}
	return fmt.Sprintf("%d-channel images", c)
}
