package main

import (
	"os"

	"github.com/latentlm/latentlm/recipe"
	"github.com/latentlm/latentlm/vae"
)

// defaultCodebook is the codebook of `vae train --kind vq`: the 1024
// entries that issue 16 suggests for the VQ-MLLM baseline.
const defaultCodebook = 1024

func vaeTrain(args []string) error {
	o := recipe.DefaultTokenizerOptions()
	fs := newFlags("vae train", "vae train [--data mnist|fashion|mnist-canvas|fashion-canvas|emoji|DIR] [--size 32] [--kind sigma|vae|ae|vq] [--codebook 1024] [--out DIR] [flags]")
	addTrainFlags(fs, &o.Options, &o.Limit, "checkpoint folder (default runs/vae-<kind>-<data>, the folder's name for a folder)")
	fs.Lookup("data").Usage = vaeDataHelp
	fs.Lookup("resume").Usage = "continue the run saved in --out, at its own learning rates (give it the run's --data and options)"
	img := addImageFlags(fs, false)
	fs.Var(&o.Model.Kind, "kind", "tokenizer kind: sigma, vae, ae or vq (VQ-VAE, the discrete baseline; default sigma)")
	fs.bound("codebook", 0, vae.MaxCodebook, false)
	fs.IntVar(&o.Model.Codebook, "codebook", 0, "codebook entries of kind vq (default 1024; only for vq)")
	fs.bound("commit-weight", 0, 1e6, false)
	fs.Float64Var(&o.Model.CommitWeight, "commit-weight", 0, "weight β of the commitment loss of kind vq (0: 0.25, van den Oord et al. 2017)")
	fs.bound("codebook-decay", 0, 0.9999, false)
	fs.Float64Var(&o.Model.CodebookDecay, "codebook-decay", 0, "decay γ of the moving averages the codebook of kind vq follows (default 0.99; 0: the gradient of the codebook loss instead)")
	fs.bound("restart-below", 0, 1e6, false)
	fs.Float64Var(&o.Model.RestartBelow, "restart-below", 0, "restart a vq code whose moving count falls below this many encoder outputs per batch, from an output of the batch (default 1; 0: never; needs --codebook-decay > 0)")
	// The image size is the data set's (or --size for a folder and the
	// emoji); the patch and channels default to what suits it
	// (recipe.DefaultTokenizerModelFor): the canvases take 8×8 patches of
	// 16 channels, keeping the 7×7 grid of latents of a digit, and colour
	// images an 8×8 grid of 16 channels.
	fs.bound("patch", 1, 4096, false)
	fs.IntVar(&o.Model.Patch, "patch", o.Model.Patch, "side in pixels of the square patch each latent encodes; must divide the image size (canvases: 8; folders and emoji: size/8, so 4 at 32 pixels)")
	fs.IntVar(&o.Model.Channels, "channels", o.Model.Channels, "latent channels per patch (canvases, folders and emoji: 16)")
	fs.IntVar(&o.Model.Dim, "dim", o.Model.Dim, "transformer width")
	fs.IntVar(&o.Model.Depth, "depth", o.Model.Depth, "blocks in each of encoder and decoder")
	fs.Float64Var(&o.Model.CSigma, "c-sigma", o.Model.CSigma, "σ-VAE noise scale C_σ")
	fs.Float64Var(&o.Model.KLWeight, "kl-weight", o.Model.KLWeight, "weight of the KL (vae) or mean(μ²) (sigma, ae) term")
	fs.bound("ssim-weight", 0, 1e6, false)
	fs.Float64Var(&o.Model.SSIMWeight, "ssim-weight", 0, "weight of 1 − SSIM (7×7 windows) in the loss; 0: none, the loss of docs/DESIGN.md §2")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := recipe.CheckImageData(o.Data); err != nil {
		return err
	}
	if o.Model.Kind == vae.VQ {
		// A vq tokenizer's codebook follows moving averages with dead-code
		// restarts unless told otherwise: trained by its gradient alone it
		// collapsed onto a few codes (vae/vq.go).
		if !fs.isSet("codebook") {
			o.Model.Codebook = defaultCodebook
		}
		if !fs.isSet("codebook-decay") {
			o.Model.CodebookDecay = vae.DefaultCodebookDecay
		}
		if !fs.isSet("restart-below") && o.Model.CodebookDecay > 0 {
			o.Model.RestartBelow = vae.DefaultRestartBelow
		}
	}
	var err error
	if o.Images, err = img.options(fs, o.Data, recipe.ImageOptions{}); err != nil {
		return err
	}
	def := recipe.DefaultTokenizerModelFor(o.Data, o.Images.Size)
	o.Model.ImageSize, o.Model.InChannels = def.ImageSize, def.InChannels
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
