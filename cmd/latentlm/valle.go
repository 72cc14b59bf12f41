package main

import (
	"context"
	"errors"

	"github.com/latentlm/latentlm/recipe"
)

// runTrainVALLE is `train --task valle`: the VALL-E-style discrete
// baseline of issue 18 (package valle) on the codes of a residual-VQ
// speech codec.
func runTrainVALLE(args []string) error {
	o := recipe.DefaultVALLEOptions()
	fs := newFlags("train", "train --task valle --codec DIR [--set numbers|sentences|both] [--reading characters|phonemes] [--data DIR] [--out DIR] [--steps N] [flags]")
	addTrainFlags(fs, &o.Options, &o.Limit, "checkpoint folder (default runs/valle-<set>)")
	fs.Lookup("data").Usage = "speech data cache (default .deps/speech, built by: latentlm speech data)"
	fs.Lookup("limit").Usage = "use only the first N training utterances of each voice (0: all)"
	fs.StringVar(&o.Set, "set", o.Set, "text set: numbers, sentences or both")
	addReadingFlag(fs, &o.Reading)
	fs.StringVar(&o.Codec, "codec", "", "residual-VQ speech codec (required; latentlm speech-vae train --kind rvq)")
	fs.Float64Var(&o.PromptSeconds, "prompt-seconds", o.PromptSeconds, "crop each voice prompt to a random window of this length (0: whole utterances)")
	fs.IntVar(&o.SeqLen, "seq-len", 0, "sequence length (max_len; 0: the longest sequence of the data)")
	fs.Float64Var(&o.EMA, "ema", o.EMA, "EMA decay of the weights (generation uses the EMA)")
	fs.IntVar(&o.Dim, "dim", o.Dim, "width of each of the AR and NAR")
	fs.IntVar(&o.Depth, "depth", o.Depth, "blocks of each of the AR and NAR")
	fs.IntVar(&o.Heads, "heads", o.Heads, "attention heads")
	addTrainGFLOPFlag(fs, &o.TrainGFLOP)
	fs.Float64Var(&o.Align, "align", o.Align, "weight of the AR's guided attention loss, as train --task tts --align (0: none)")
	fs.bound("align", 0, 1e6, false)
	fs.bound("prompt-seconds", 0, 60, false)
	fs.bound("seq-len", 0, 1<<16, false)
	fs.bound("ema", 0, 1, false)
	fs.bound("dim", 2, 1<<14, false)
	fs.bound("depth", 1, 1024, false)
	fs.bound("heads", 1, 1024, false)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkTrainGFLOP(fs); err != nil {
		return err
	}
	if o.Codec == "" {
		return errors.New("--codec is required: a residual-VQ speech codec (latentlm speech-vae train --kind rvq)")
	}
	return runSpeechTask(fs, &o.Options, "valle", args, func(ctx context.Context) error {
		_, err := recipe.VALLE(ctx, o)
		return err
	})
}
