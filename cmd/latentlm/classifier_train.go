package main

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/recipe"
)

func classifierTrain(args []string) error {
	o := recipe.DefaultClassifierOptions()
	fs := newFlags("classifier train", `classifier train --data mnist|fashion|mnist-canvas|fashion-canvas [--out DIR] [--steps N] [--resume]
       latentlm classifier train --data emoji --target subcategory|tone [flags]

The emoji judges name an emoji's subcategory (99 of emoji.json) or its skin
tone (none, the five tones, or two different ones), from 32×32 colour
images of the emoji's train split; their accuracy on the test split, and
on its held-out emoji/skin-tone combinations alone, is printed and saved.`)
	addTrainFlags(fs, &o.Options, &o.Limit, "checkpoint folder (default runs/classifier-<data>, runs/classifier-emoji-<target> for the emoji)")
	fs.Lookup("data").Usage = "data set: mnist, fashion, mnist-canvas, fashion-canvas or emoji"
	fs.Lookup("resume").Usage = "continue the run saved in --out, at its own learning rates (give it the run's --data and options)"
	fs.StringVar(&o.Target, "target", "", "what an emoji judge names: subcategory or tone (emoji only)")
	fs.bound("shift", 0, 64, false)
	shift := fs.Int("shift", recipe.DefaultClassifierShift, "random shift of each training image, in pixels along each axis (emoji only; the named sets take none)")
	img := addImageFlags(fs, false)
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
	if o.Data == recipe.EmojiData {
		if o.Target == "" {
			return errors.New("--target is needed for the emoji: subcategory or tone")
		}
		if !slices.Contains(recipe.Targets, o.Target) {
			return fmt.Errorf("--target %q: want subcategory or tone", o.Target)
		}
		o.Shift = *shift
		var err error
		if o.Images, err = img.options(fs, o.Data, recipe.ImageOptions{}); err != nil {
			return err
		}
	} else {
		if err := checkDataName(o.Data); err != nil {
			return err
		}
		for _, f := range []string{"target", "shift", "size", "fit", "background"} {
			if fs.isSet(f) {
				return fmt.Errorf("--%s is for the emoji judges; %s has classes of its own", f, o.Data)
			}
		}
	}
	// The defaults suit the data set; the flags given override them.
	o.Model = recipe.DefaultClassifierModel(o.Data)
	if o.Data == recipe.EmojiData {
		o.Model.ImageSize = cmp.Or(o.Images.Size, recipe.DefaultImageSize)
	}
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
