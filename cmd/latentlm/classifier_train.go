package main

import (
	"fmt"
	"path/filepath"
	"time"

	. "github.com/gomlx/gomlx/core/graph"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/classifier"
	"github.com/latentlm/latentlm/data"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/train"
)

func classifierTrain(args []string) error {
	fs := newFlags("classifier train", "classifier train --data mnist|fashion [--out DIR] [--steps N] [--resume]")
	tf := addTrainFlags(fs, "checkpoint folder (default runs/classifier-<data>)", 1200, 128, 2e-3)
	backendName, dataName, out, steps, batch, lr := tf.backend, tf.data, tf.out, tf.steps, tf.batch, tf.lr
	seed, limit, resume, saveEvery, quiet := tf.seed, tf.limit, tf.resume, tf.saveEvery, tf.quiet
	def := classifier.DefaultConfig()
	w1 := fs.Int("width1", def.Widths[0], "channels of the first convolution")
	w2 := fs.Int("width2", def.Widths[1], "channels of the second convolution")
	features := fs.Int("features", def.Features, "width of the feature (penultimate) layer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkDataName(*dataName); err != nil {
		return err
	}
	cfg := def
	cfg.Widths, cfg.Features = []int{*w1, *w2}, *features
	if err := cfg.Validate(); err != nil {
		return err
	}
	if *steps < 1 || *batch < 1 {
		return fmt.Errorf("--steps and --batch must be at least 1")
	}
	if *out == "" {
		*out = filepath.Join("runs", "classifier-"+*dataName)
	}
	b, bname, err := openBackend(*backendName)
	if err != nil {
		return err
	}
	ds, err := loadTrainingSet(*dataName, *limit)
	if err != nil {
		return err
	}
	if *batch > ds.N {
		return fmt.Errorf("--batch %d is larger than the %d training images", *batch, ds.N)
	}
	rs, err := startRun(*out, classifier.Kind, &cfg, *seed, *resume, fs, func() float64 {
		px := float64(ds.Height * ds.Width)
		return nn.MemoryEstimate(cfg.Specs(), 4*float64(*batch)*px*float64(cfg.Widths[0]+cfg.Features), true)
	})
	if err != nil {
		return err
	}
	defer rs.finish()
	store, history := rs.store, rs.history
	*seed = rs.seed
	tc := train.DefaultConfig()
	tc.LR, tc.TotalSteps, tc.WarmupSteps, tc.MinLR = *lr, int(*steps), min(100, int(*steps)/10), *lr/50
	tr, err := train.New(b, store, tc, func(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
		loss, acc := cfg.Loss(scope, w, in[0], in[1])
		return []*Node{loss, acc}
	})
	if err != nil {
		return err
	}
	started := time.Now()
	info := func(step int64) map[string]any {
		return map[string]any{"data": *dataName, "steps": step, "batch": *batch, "backend": bname, "seed": *seed}
	}
	save := func(step int64, h []train.Point) error {
		return rs.save(func(dir string) error {
			return checkpoint.Save(dir, classifier.Kind, cfg, info(step), store, true, nil)
		}, h, step)
	}
	loop := &train.Loop{
		Trainer: tr, Store: store, Steps: *steps, History: history, Every: *saveEvery, Hook: save,
		Desc: "classifier " + *dataName, Quiet: *quiet, RecordEvery: 10,
		Batch: func(step int64) ([]any, int, error) {
			idx := data.BatchIndices(ds.N, *batch, step, *seed)
			imgs, labels := ds.Batch(idx)
			return []any{tensors.FromFlatDataAndDimensions(imgs, len(idx), ds.Height, ds.Width),
				tensors.FromFlatDataAndDimensions(labels, len(idx))}, len(idx), nil
		},
	}
	ctx, cancel := signalContext()
	defer cancel()
	if err := loop.Run(ctx); err != nil {
		return interrupted(err, *out, append([]string{"classifier", "train"}, args...))
	}
	trainSeconds := time.Since(started).Seconds()
	// Score exactly what was saved (the EMA weights), then record it.
	m, err := classifier.Load(b, *out)
	if err != nil {
		return err
	}
	acc, err := testAccuracy(m, *dataName)
	if err != nil {
		return err
	}
	inf := info(*steps)
	inf["test_accuracy"] = acc
	inf["train_seconds"] = trainSeconds
	if err := m.Save(*out, inf, false); err != nil {
		return err
	}
	if err := writeLossPlot(filepath.Join(*out, "loss.png"), "classifier training loss", loop.History); err != nil {
		return err
	}
	fmt.Printf("saved %s (%d steps in %s): test accuracy %.2f%%\n", *out, *steps, time.Since(started).Round(time.Second), 100*acc)
	return nil
}
