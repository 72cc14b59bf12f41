package recipe

import (
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
	// ImageSize is replaced by the side of the data set's images (see
	// DefaultTokenizerModel for the patch and channels that suit each).
	Model vae.Config
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
func DefaultTokenizerModel(dataName string) vae.Config {
	c := vae.DefaultConfig()
	c.ImageSize = imageSize(dataName)
	if canvas.IsCanvas(dataName) {
		c.Patch, c.Channels = 8, 16
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

// Tokenizer trains the image tokenizer (the σ-VAE, or a plain VAE or
// autoencoder, as o.Model.Kind says) into o.Out (default
// runs/vae-<kind>-<data>), then records the statistics of its latents over
// the training set, which the language model normalises them with. A
// canvas set trains on its "train" split, which holds no held-out scene.
func Tokenizer(ctx context.Context, o TokenizerOptions) (*Result, error) {
	if err := CheckData(o.Data); err != nil {
		return nil, err
	}
	cfg := o.Model
	cfg.ImageSize = imageSize(o.Data)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if o.Out == "" {
		o.Out = filepath.Join("runs", fmt.Sprintf("vae-%s-%s", cfg.Kind, o.Data))
	}
	b, bname, err := openBackend(o.Backend)
	if err != nil {
		return nil, err
	}
	ds, err := LoadTrainingSet(o.Data, o.Limit)
	if err != nil {
		return nil, err
	}
	px := ds.Height * ds.Width
	run, err := train.StartRun(o.Out, vae.Kind, &cfg, o.Seed, o.Resume, o.MemoryLimit, func() float64 {
		tokens := float64(o.Batch) * float64(cfg.Items()) * 2 // encoder and decoder
		act := 2 * tokens * float64(cfg.Dim) * float64(cfg.Depth) * (12 + 4*cfg.MLPRatio)
		return nn.MemoryEstimate(cfg.Specs(), act+float64(o.Batch*px*16), true)
	})
	if err != nil {
		return nil, err
	}
	defer run.Finish()
	if err := checkImages(ds, cfg.ImageSize); err != nil {
		return nil, fmt.Errorf("tokenizer %s takes %d×%d images: %w", o.Out, cfg.ImageSize, cfg.ImageSize, err)
	}
	store := run.Store
	o.Seed = run.Seed
	tc := train.DefaultConfig()
	tc.LR, tc.TotalSteps, tc.WarmupSteps, tc.MinLR = o.LR, int(o.Steps), 100, o.LR/20
	// The tokenizer ships its live weights, so an EMA would be updated every
	// step for nothing.
	tc.EMADecay = 0
	tr, err := train.New(b, store, tc, func(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
		l := cfg.Loss(scope, w, in[0])
		return []*Node{l.Total, l.Recon, l.Reg}
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
		info := map[string]any{"data": o.Data, "steps": step, "backend": bname, "seed": o.Seed}
		return run.Save(func(dir string) error { return m.Save(dir, info, false) }, h, step)
	}
	loop := &train.Loop{
		Trainer: tr, Store: store, Steps: o.Steps, History: run.History, Every: o.SaveEvery, Hook: save,
		Desc: fmt.Sprintf("vae %s/%s", cfg.Kind, o.Data), Quiet: o.Quiet, RecordEvery: 20,
		Batch: func(step int64) ([]any, int, error) {
			idx := data.BatchIndices(ds.N, o.Batch, step, o.Seed)
			imgs, _ := ds.Batch(idx)
			return []any{tensors.FromFlatDataAndDimensions(imgs, len(idx), ds.Height, ds.Width)}, len(idx) * px / (cfg.Patch * cfg.Patch), nil
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
	if err := m.ComputeStats(Batches(ds, 500, 20000)); err != nil {
		return nil, err
	}
	info := map[string]any{"data": o.Data, "steps": o.Steps, "backend": bname, "seed": o.Seed,
		"train_seconds": time.Since(started).Seconds()}
	if err := m.Save(o.Out, info, false); err != nil {
		return nil, err
	}
	if err := writeLossPlot(filepath.Join(o.Out, "loss.png"), "tokenizer training loss", loop.History); err != nil {
		return nil, err
	}
	logf(o.Log, "saved %s (%d steps in %s)\n", o.Out, o.Steps, time.Since(started).Round(time.Second))
	return &Result{Dir: o.Out, History: loop.History}, nil
}
