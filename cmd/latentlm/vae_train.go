package main

import (
	"os"

	"github.com/latentlm/latentlm/recipe"
)

func vaeTrain(args []string) error {
	o := recipe.DefaultTokenizerOptions()
	fs := newFlags("vae train", "vae train [--data mnist|fashion|mnist-canvas|fashion-canvas] [--kind sigma|vae|ae] [--out DIR] [flags]")
	addTrainFlags(fs, &o.Options, &o.Limit, "checkpoint folder (default runs/vae-<kind>-<data>)")
	fs.Var(&o.Model.Kind, "kind", "tokenizer kind: sigma, vae or ae (default sigma)")
	// The image size is the data set's; the patch and channels default to
	// what suits it (recipe.DefaultTokenizerModel): the canvases take 8×8
	// patches of 16 channels, keeping the 7×7 grid of latents of a digit.
	fs.bound("patch", 1, 4096, false)
	fs.IntVar(&o.Model.Patch, "patch", o.Model.Patch, "side in pixels of the square patch each latent encodes; must divide the image size (canvases: 8)")
	fs.IntVar(&o.Model.Channels, "channels", o.Model.Channels, "latent channels per patch (canvases: 16)")
	fs.IntVar(&o.Model.Dim, "dim", o.Model.Dim, "transformer width")
	fs.IntVar(&o.Model.Depth, "depth", o.Model.Depth, "blocks in each of encoder and decoder")
	fs.Float64Var(&o.Model.CSigma, "c-sigma", o.Model.CSigma, "σ-VAE noise scale C_σ")
	fs.Float64Var(&o.Model.KLWeight, "kl-weight", o.Model.KLWeight, "weight of the KL (vae) or mean(μ²) (sigma, ae) term")
	if err := fs.Parse(args); err != nil {
		return err
	}
	def := recipe.DefaultTokenizerModel(o.Data)
	o.Model.ImageSize = def.ImageSize
	if !fs.isSet("patch") {
		o.Model.Patch = def.Patch
	}
	if !fs.isSet("channels") {
		o.Model.Channels = def.Channels
	}
	o.Log = os.Stdout
	ctx, cancel := signalContext()
	defer cancel()
	return runRecipe(fs, &o.Options, append([]string{"vae", "train"}, args...), func() error {
		_, err := recipe.Tokenizer(ctx, o)
		return err
	})
}
