package recipe

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/canvas"
	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/classifier"
	"github.com/latentlm/latentlm/data"
	"github.com/latentlm/latentlm/evaluate"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/train"
)

// ClassifierOptions are the settings of Classifier, the options of
// `latentlm classifier train`.
type ClassifierOptions struct {
	Options
	// Limit trains on the first Limit training images only (0: all).
	Limit int
	// Model is the classifier; a resumed run uses the saved one. Its
	// ImageSize and Classes are replaced by those of the data set (see
	// DefaultClassifierModel for the stages that suit each).
	Model classifier.Config
}

// DefaultClassifierModel is the classifier of `latentlm classifier train`
// for a data set: classifier.DefaultConfig for mnist and fashion; for the
// 56×56 canvases, the judge that names their 240 scenes, with a third
// stage of 64 channels so that three poolings bring the canvas down to the
// same 7×7 grid.
func DefaultClassifierModel(dataName string) classifier.Config {
	c := classifier.DefaultConfig()
	c.ImageSize, c.Classes = imageSize(dataName), classes(dataName)
	if canvas.IsCanvas(dataName) {
		c.Widths = []int{16, 32, 64}
	}
	return c
}

// ClassifierSplit is the split a classifier of the data set trains on:
// "train", or the "judge" split of a canvas set, which holds the held-out
// scenes that the judge must recognise (see package canvas).
func ClassifierSplit(dataName string) string {
	if canvas.IsCanvas(dataName) {
		return "judge"
	}
	return "train"
}

// DefaultClassifierOptions are the defaults of `latentlm classifier train`.
func DefaultClassifierOptions() ClassifierOptions {
	return ClassifierOptions{
		Options: Options{Data: "mnist", Steps: 1200, SaveEvery: 500, Batch: 128, LR: 2e-3, Seed: 1},
		Model:   classifier.DefaultConfig(),
	}
}

// Classifier trains the CNN that scores generated images into o.Out
// (default runs/classifier-<data>), then measures the saved (EMA) weights'
// accuracy on the test split and records it in the checkpoint. It trains
// on the split ClassifierSplit names; o.Limit limits that split.
func Classifier(ctx context.Context, o ClassifierOptions) (*Result, error) {
	if err := CheckData(o.Data); err != nil {
		return nil, err
	}
	cfg := o.Model
	cfg.ImageSize, cfg.Classes = imageSize(o.Data), classes(o.Data)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if o.Steps < 1 || o.Batch < 1 {
		return nil, errors.New("steps and batch must be at least 1")
	}
	if o.Out == "" {
		o.Out = filepath.Join("runs", "classifier-"+o.Data)
	}
	b, bname, err := openBackend(o.Backend)
	if err != nil {
		return nil, err
	}
	ds, err := LoadSplit(o.Data, ClassifierSplit(o.Data), o.Limit)
	if err != nil {
		return nil, err
	}
	if o.Batch > ds.N {
		return nil, &OptionError{Option: "batch", Problem: fmt.Sprintf("%d is larger than the %d training images", o.Batch, ds.N)}
	}
	run, err := train.StartRun(o.Out, classifier.Kind, &cfg, o.Seed, o.Resume, o.MemoryLimit, func() float64 {
		px := float64(ds.Height * ds.Width)
		return nn.MemoryEstimate(cfg.Specs(), 4*float64(o.Batch)*px*float64(cfg.Widths[0]+cfg.Features), true)
	})
	if err != nil {
		return nil, err
	}
	defer run.Finish()
	if err := checkImages(ds, cfg.ImageSize); err != nil {
		return nil, fmt.Errorf("classifier %s takes %d×%d images: %w", o.Out, cfg.ImageSize, cfg.ImageSize, err)
	}
	if want := classes(o.Data); cfg.Classes != want {
		return nil, fmt.Errorf("classifier %s has %d classes, %s has %d", o.Out, cfg.Classes, o.Data, want)
	}
	store := run.Store
	o.Seed = run.Seed
	tc := train.DefaultConfig()
	tc.LR, tc.TotalSteps, tc.WarmupSteps, tc.MinLR = o.LR, int(o.Steps), min(100, int(o.Steps)/10), o.LR/50
	tr, err := train.New(b, store, tc, func(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
		loss, acc := cfg.Loss(scope, w, in[0], in[1])
		return []*Node{loss, acc}
	})
	if err != nil {
		return nil, err
	}
	started := time.Now()
	info := func(step int64) map[string]any {
		return map[string]any{"data": o.Data, "steps": step, "batch": o.Batch, "backend": bname, "seed": o.Seed}
	}
	save := func(step int64, h []train.Point) error {
		return run.Save(func(dir string) error {
			return checkpoint.Save(dir, classifier.Kind, cfg, info(step), store, true, nil)
		}, h, step)
	}
	loop := &train.Loop{
		Trainer: tr, Store: store, Steps: o.Steps, History: run.History, Every: o.SaveEvery, Hook: save,
		Desc: "classifier " + o.Data, Quiet: o.Quiet, RecordEvery: 10,
		Batch: func(step int64) ([]any, int, error) {
			idx := data.BatchIndices(ds.N, o.Batch, step, o.Seed)
			imgs, labels := ds.Batch(idx)
			return []any{tensors.FromFlatDataAndDimensions(imgs, len(idx), ds.Height, ds.Width),
				tensors.FromFlatDataAndDimensions(labels, len(idx))}, len(idx), nil
		},
	}
	if err := run.Train(ctx, loop); err != nil {
		return nil, err
	}
	trainSeconds := time.Since(started).Seconds()
	// Score exactly what was saved (the EMA weights), then record it.
	m, err := classifier.Load(b, o.Out)
	if err != nil {
		return nil, err
	}
	acc, err := evaluate.TestAccuracy(m, o.Data)
	if err != nil {
		return nil, err
	}
	inf := info(o.Steps)
	inf["test_accuracy"] = acc
	inf["train_seconds"] = trainSeconds
	if err := m.Save(o.Out, inf, false); err != nil {
		return nil, err
	}
	if err := writeLossPlot(filepath.Join(o.Out, "loss.png"), "classifier training loss", loop.History); err != nil {
		return nil, err
	}
	logf(o.Log, "saved %s (%d steps in %s): test accuracy %.2f%%\n", o.Out, o.Steps, time.Since(started).Round(time.Second), 100*acc)
	return &Result{Dir: o.Out, History: loop.History, TestAccuracy: acc}, nil
}
