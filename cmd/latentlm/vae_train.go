package main

import (
	"fmt"
	"path/filepath"
	"time"

	. "github.com/gomlx/gomlx/core/graph"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/latentlm/latentlm/data"
	"github.com/latentlm/latentlm/imageio"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/train"
	"github.com/latentlm/latentlm/vae"
)

func vaeTrain(args []string) error {
	fs := newFlags("vae train", "vae train [--data mnist|fashion] [--kind sigma|vae|ae] [--out DIR] [flags]")
	tf := addTrainFlags(fs, "checkpoint folder (default runs/vae-<kind>-<data>)", 1500, 64, 2e-3)
	backendName, dataName, out, steps, batch, lr := tf.backend, tf.data, tf.out, tf.steps, tf.batch, tf.lr
	seed, limit, resume, saveEvery, quiet := tf.seed, tf.limit, tf.resume, tf.saveEvery, tf.quiet
	def := vae.DefaultConfig()
	kind := fs.String("kind", def.Kind, "tokenizer kind: sigma, vae or ae")
	channels := fs.Int("channels", def.Channels, "latent channels per 4×4 patch")
	dim := fs.Int("dim", def.Dim, "transformer width")
	depth := fs.Int("depth", def.Depth, "blocks in each of encoder and decoder")
	csigma := fs.Float64("c-sigma", def.CSigma, "σ-VAE noise scale C_σ")
	klw := fs.Float64("kl-weight", def.KLWeight, "weight of the KL (vae) or mean(μ²) (sigma, ae) term")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkDataName(*dataName); err != nil {
		return err
	}
	cfg := def
	cfg.Kind, cfg.Channels, cfg.Dim, cfg.Depth, cfg.CSigma, cfg.KLWeight = *kind, *channels, *dim, *depth, *csigma, *klw
	if err := cfg.Validate(); err != nil {
		return err
	}
	if *out == "" {
		*out = filepath.Join("runs", fmt.Sprintf("vae-%s-%s", cfg.Kind, *dataName))
	}
	b, bname, err := openBackend(*backendName)
	if err != nil {
		return err
	}
	ds, err := loadTrainingSet(*dataName, *limit)
	if err != nil {
		return err
	}
	px := ds.Height * ds.Width
	rs, err := startRun(*out, vae.Kind, &cfg, *seed, *resume, fs, func() float64 {
		tokens := float64(*batch) * float64(cfg.Items()) * 2 // encoder and decoder
		act := 2 * tokens * float64(cfg.Dim) * float64(cfg.Depth) * (12 + 4*cfg.MLPRatio)
		return nn.MemoryEstimate(cfg.Specs(), act+float64(*batch*px*16), true)
	})
	if err != nil {
		return err
	}
	defer rs.finish()
	store, history := rs.store, rs.history
	*seed = rs.seed
	tc := train.DefaultConfig()
	tc.LR, tc.TotalSteps, tc.WarmupSteps, tc.MinLR = *lr, int(*steps), 100, *lr/20
	// The tokenizer ships its live weights, so an EMA would be updated every
	// step for nothing.
	tc.EMADecay = 0
	tr, err := train.New(b, store, tc, func(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
		l := cfg.Loss(scope, w, in[0])
		return []*Node{l.Total, l.Recon, l.Reg}
	})
	if err != nil {
		return err
	}
	started := time.Now()
	save := func(step int64, h []train.Point) error {
		m, err := vae.NewModel(b, cfg, store)
		if err != nil {
			return err
		}
		info := map[string]any{"data": *dataName, "steps": step, "backend": bname, "seed": *seed}
		return rs.save(func(dir string) error { return m.Save(dir, info, false) }, h, step)
	}
	loop := &train.Loop{
		Trainer: tr, Store: store, Steps: *steps, History: history, Every: *saveEvery, Hook: save,
		Desc: fmt.Sprintf("vae %s/%s", cfg.Kind, *dataName), Quiet: *quiet, RecordEvery: 20,
		Batch: func(step int64) ([]any, int, error) {
			idx := data.BatchIndices(ds.N, *batch, step, *seed)
			imgs, _ := ds.Batch(idx)
			return []any{tensors.FromFlatDataAndDimensions(imgs, len(idx), ds.Height, ds.Width)}, len(idx) * px / (cfg.Patch * cfg.Patch), nil
		},
	}
	ctx, cancel := signalContext()
	defer cancel()
	if err := loop.Run(ctx); err != nil {
		return interrupted(err, *out, append([]string{"vae", "train"}, args...))
	}
	// Latent statistics over the training set, for the language model.
	m, err := vae.NewModel(b, cfg, store)
	if err != nil {
		return err
	}
	if err := m.ComputeStats(batches(ds, 500, 20000)); err != nil {
		return err
	}
	info := map[string]any{"data": *dataName, "steps": *steps, "backend": bname, "seed": *seed,
		"train_seconds": time.Since(started).Seconds()}
	if err := m.Save(*out, info, false); err != nil {
		return err
	}
	if err := writeLossPlot(filepath.Join(*out, "loss.png"), "tokenizer training loss", loop.History); err != nil {
		return err
	}
	fmt.Printf("saved %s (%d steps in %s)\n", *out, *steps, time.Since(started).Round(time.Second))
	return nil
}

// writeLossPlot draws a run's loss history; a run too short to have one
// gets no plot rather than an error after its training is done.
func writeLossPlot(path, title string, h []train.Point) error {
	if len(h) == 0 {
		return nil
	}
	s := imageio.Series{Name: "loss"}
	for _, p := range h {
		s.X = append(s.X, float64(p.Step))
		s.Y = append(s.Y, p.Loss)
	}
	return imageio.WritePlot(path, title, "step", "loss", []imageio.Series{s}, true)
}
