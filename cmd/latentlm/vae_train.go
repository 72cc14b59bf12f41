package main

import (
	"os"

	"github.com/latentlm/latentlm/recipe"
)

func vaeTrain(args []string) error {
	o := recipe.DefaultTokenizerOptions()
	fs := newFlags("vae train", "vae train [--data mnist|fashion] [--kind sigma|vae|ae] [--out DIR] [flags]")
	addTrainFlags(fs, &o.Options, &o.Limit, "checkpoint folder (default runs/vae-<kind>-<data>)")
	fs.Var(&o.Model.Kind, "kind", "tokenizer kind: sigma, vae or ae (default sigma)")
	fs.IntVar(&o.Model.Channels, "channels", o.Model.Channels, "latent channels per 4×4 patch")
	fs.IntVar(&o.Model.Dim, "dim", o.Model.Dim, "transformer width")
	fs.IntVar(&o.Model.Depth, "depth", o.Model.Depth, "blocks in each of encoder and decoder")
	fs.Float64Var(&o.Model.CSigma, "c-sigma", o.Model.CSigma, "σ-VAE noise scale C_σ")
	fs.Float64Var(&o.Model.KLWeight, "kl-weight", o.Model.KLWeight, "weight of the KL (vae) or mean(μ²) (sigma, ae) term")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.Log = os.Stdout
	ctx, cancel := signalContext()
	defer cancel()
	return runRecipe(fs, &o.Options, append([]string{"vae", "train"}, args...), func() error {
		_, err := recipe.Tokenizer(ctx, o)
		return err
	})
}
