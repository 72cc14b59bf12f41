package main

import (
	"errors"
	"os"

	"github.com/latentlm/latentlm/recipe"
)

func classifierTrain(args []string) error {
	o := recipe.DefaultClassifierOptions()
	fs := newFlags("classifier train", "classifier train --data mnist|fashion [--out DIR] [--steps N] [--resume]")
	addTrainFlags(fs, &o.Options, &o.Limit, "checkpoint folder (default runs/classifier-<data>)")
	w1 := fs.Int("width1", o.Model.Widths[0], "channels of the first convolution")
	w2 := fs.Int("width2", o.Model.Widths[1], "channels of the second convolution")
	fs.IntVar(&o.Model.Features, "features", o.Model.Features, "width of the feature (penultimate) layer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.Model.Widths = []int{*w1, *w2}
	if err := checkDataName(o.Data); err != nil {
		return err
	}
	if err := o.Model.Validate(); err != nil {
		return err
	}
	if o.Steps < 1 || o.Batch < 1 {
		return errors.New("--steps and --batch must be at least 1")
	}
	o.Log = os.Stdout
	ctx, cancel := signalContext()
	defer cancel()
	return runRecipe(fs, &o.Options, append([]string{"classifier", "train"}, args...), func() error {
		_, err := recipe.Classifier(ctx, o)
		return err
	})
}
