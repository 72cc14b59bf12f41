package main

import (
	"errors"
	"os"
	"slices"

	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/recipe"
)

func classifierTrain(args []string) error {
	o := recipe.DefaultClassifierOptions()
	fs := newFlags("classifier train", "classifier train --data mnist|fashion|mnist-canvas|fashion-canvas [--out DIR] [--steps N] [--resume]")
	addTrainFlags(fs, &o.Options, &o.Limit, "checkpoint folder (default runs/classifier-<data>)")
	w1 := fs.Int("width1", o.Model.Widths[0], "channels of the first convolution")
	w2 := fs.Int("width2", o.Model.Widths[1], "channels of the second convolution")
	// A canvas (56×56) judge has a third stage by default, so that three
	// poolings bring it to the 7×7 grid of a digit's two
	// (recipe.DefaultClassifierModel).
	fs.bound("width3", 0, nn.MaxWidth, false)
	w3 := fs.Int("width3", 0, "channels of a third convolution, 0 for none (canvases: 64)")
	features := fs.Int("features", o.Model.Features, "width of the feature (penultimate) layer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkDataName(o.Data); err != nil {
		return err
	}
	// The defaults suit the data set; the flags given override them.
	o.Model = recipe.DefaultClassifierModel(o.Data)
	widths := slices.Clone(o.Model.Widths)
	if fs.isSet("width1") {
		widths[0] = *w1
	}
	if fs.isSet("width2") {
		widths[1] = *w2
	}
	if fs.isSet("width3") {
		widths = append(widths[:2], *w3)
		if *w3 == 0 {
			widths = widths[:2]
		}
	}
	o.Model.Widths = widths
	if fs.isSet("features") {
		o.Model.Features = *features
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
