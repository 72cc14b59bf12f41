package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/latentlm/latentlm/dit"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/recipe"
)

func init() {
	register("train", "train LatentLM: class → image on mnist or fashion (or the DiT baseline), or --task multimodal on text and canvases", runTrain)
}

// defaultLMTrainOptions are the defaults of `train`, also used by
// `demo --train`.
func defaultLMTrainOptions() recipe.LatentLMOptions { return recipe.DefaultLatentLMOptions() }

func runTrain(args []string) error {
	switch t := taskOf(args); t {
	case "multimodal":
		return runTrainMultimodal(withoutTask(args))
	case "tts":
		return runTrainTTS(withoutTask(args))
	case "valle":
		return runTrainVALLE(withoutTask(args))
	case "", "class":
		args = withoutTask(args)
	default:
		return fmt.Errorf("unknown --task %q: want class (class → image, the default), multimodal, tts or valle", t)
	}
	o := defaultLMTrainOptions()
	fs := newFlags("train", "train [--arch latentlm|dit] [--data mnist|fashion] [--vae DIR] [--out DIR] [--steps N] [--resume] [flags]")
	fs.StringVar(&o.Arch, "arch", o.Arch, "latentlm, or dit: the DiT baseline (bidirectional, whole grid per step) of the same --dim, --depth, --heads")
	fs.StringVar(&o.Backend, "backend", "", "compute backend: onnx, go or xla")
	fs.StringVar(&o.Data, "data", o.Data, "data set: mnist or fashion")
	fs.StringVar(&o.Tokenizer, "vae", "", "tokenizer checkpoint (default: the shipped one for --data)")
	fs.StringVar(&o.Out, "out", "", "checkpoint folder (default runs/latentlm-<data>)")
	fs.Int64Var(&o.Steps, "steps", o.Steps, "training steps")
	addTimeFlag(fs, &o.Deadline)
	fs.IntVar(&o.Batch, "batch", o.Batch, "sequences per step")
	fs.IntVar(&o.BatchMul, "batch-mul", o.BatchMul, "noise draws per latent item (batch_mul; for dit, per image, default 1)")
	fs.Float64Var(&o.LR, "lr", o.LR, "peak learning rate (cosine schedule with warm-up)")
	fs.Float64Var(&o.LabelDropout, "label-dropout", o.LabelDropout, "probability of replacing the class by the null class")
	fs.Float64Var(&o.EMA, "ema", o.EMA, "EMA decay of the weights (sampling uses the EMA)")
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "seed of initialisation, data order and noise")
	fs.Int64Var(&o.SaveEvery, "save-every", o.SaveEvery, "checkpoint period in steps")
	fs.Int64Var(&o.SampleEvery, "sample-every", o.SampleEvery, "sample-grid period in steps (0: never)")
	fs.Int64Var(&o.SnapshotEvery, "snapshot-every", 0, "also keep the weights every N steps in --out/step-NNNNNN (for latentlm sweep --over train)")
	fs.BoolVar(&o.Resume, "resume", false, "continue the run saved in --out exactly where it stopped, on its own data and options, at its own learning rates")
	fs.BoolVar(&o.Quiet, "quiet", false, "no progress bar")
	addBackboneFlags(fs, &o.Model, " (latentlm only)", "diffusion target: eps or v")
	fs.Var(&o.Model.Layout, "layout", "class-conditional sequence layout: public ([class] z0 … z47, the public PyTorch code's; the default) or bol ([class] <BOL> z0 … z48 <EOL>, the layout of the shipped weights)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.Arch == dit.Kind && !fs.isSet("batch-mul") {
		o.BatchMul = 1
	}
	ctx, cancel := signalContext()
	defer cancel()
	_, err := trainLM(ctx, fs, o, append([]string{"train"}, args...))
	return err
}

// trainLM runs the LatentLM recipe until ctx is cancelled, with its
// messages on stderr unless quiet, and returns the checkpoint folder;
// command is the command line, for the resume hint.
func trainLM(ctx context.Context, fs *flags, o recipe.LatentLMOptions, command []string) (dir string, err error) {
	if err := checkDataName(o.Data); err != nil {
		return "", err
	}
	if o.Arch != lm.Kind && o.Arch != dit.Kind {
		return "", fmt.Errorf("unknown --arch %q: want %s or %s", o.Arch, lm.Kind, dit.Kind)
	}
	if o.Batch < 1 || o.BatchMul < 1 {
		return "", errors.New("--batch and --batch-mul must be at least 1")
	}
	if !o.Quiet {
		o.Log = os.Stderr
	}
	err = runRecipe(fs, &o.Options, command, func() error {
		res, err := recipe.LatentLM(ctx, o)
		if err == nil {
			dir = res.Dir
		}
		return err
	})
	return dir, err
}

// addBackboneFlags adds the flags that size the sequence engine (package
// lm), which every task training one shares: the Transformer's width,
// depth and heads, the diffusion head's, and its target. headNote follows
// the flags that only a model with a diffusion head uses.
func addBackboneFlags(fs *flags, c *lm.Config, headNote, targetUsage string) {
	fs.IntVar(&c.Dim, "dim", c.Dim, "backbone width")
	fs.IntVar(&c.Depth, "depth", c.Depth, "backbone blocks")
	fs.IntVar(&c.Heads, "heads", c.Heads, "attention heads")
	fs.IntVar(&c.KVHeads, "kv-heads", c.KVHeads, "key/value heads (grouped-query attention)"+headNote)
	fs.IntVar(&c.HeadDim, "head-dim", c.HeadDim, "diffusion head width"+headNote)
	fs.IntVar(&c.HeadDepth, "head-depth", c.HeadDepth, "diffusion head blocks"+headNote)
	fs.Var(&c.Target, "target", targetUsage)
}
