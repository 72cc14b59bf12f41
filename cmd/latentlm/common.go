package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/gomlx/compute"

	"github.com/latentlm/latentlm/backend"
	"github.com/latentlm/latentlm/internal/deps"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/recipe"
	"github.com/latentlm/latentlm/train"
	"github.com/latentlm/latentlm/tts"
)

// openBackend opens the backend named by the flag or the environment.
func openBackend(flagValue string) (compute.Backend, string, error) {
	name := backend.Resolve(flagValue)
	b, err := backend.Open(name)
	return b, name, err
}

// signalContext is cancelled by Ctrl-C or SIGTERM, so that training loops
// can save before they stop.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// weightsDir is where the shipped weights live: weights/<name> in the
// repository (found like .deps, from the working directory or the binary).
func weightsDir(name string) (string, error) { return deps.Weights(name) }

// checkDataName validates a --data flag.
func checkDataName(name string) error { return recipe.CheckData(name) }

// runRecipe runs a training recipe with the memory limit of fs, and turns
// its error into what the user needs (see trainError); command is the
// command line, for the resume hint.
func runRecipe(fs *flags, o *recipe.Options, command []string, run func() error) error {
	var err error
	if o.MemoryLimit, err = fs.memoryLimit(); err != nil {
		return err
	}
	return trainError(run(), command)
}

// trainError turns a training recipe's error into what the user needs: for
// a folder that already holds a checkpoint, the flags that continue or
// avoid it; for an option refused, its flag; for an interrupted run, what
// was saved and the exact command that resumes it.
func trainError(err error, args []string) error {
	var oe *recipe.OptionError
	if errors.As(err, &oe) {
		return fmt.Errorf("--%s %s", oe.Option, oe.Problem)
	}
	if errors.Is(err, train.ErrCheckpointExists) {
		return fmt.Errorf("%w: pass --resume to continue it or choose another --out", err)
	}
	var ie *train.InterruptedError
	if !errors.As(err, &ie) {
		return err
	}
	resume := []string{"latentlm"}
	hasResume := false
	for _, a := range args {
		hasResume = hasResume || a == "--resume" || a == "-resume"
	}
	resume = append(resume, args...)
	if !hasResume {
		resume = append(resume, "--resume")
	}
	if !slices.ContainsFunc(args, func(a string) bool {
		return a == "--out" || a == "-out" || strings.HasPrefix(a, "--out=") || strings.HasPrefix(a, "-out=")
	}) {
		resume = append(resume, "--out", ie.Dir)
	}
	return fmt.Errorf("interrupted: checkpoint saved in %s; resume with: %s", ie.Dir, strings.Join(resume, " "))
}

// addTrainFlags declares the flags every training command shares into o
// and limit, whose values are the command's defaults.
func addTrainFlags(fs *flags, o *recipe.Options, limit *int, outHelp string) {
	fs.StringVar(&o.Backend, "backend", o.Backend, "compute backend: onnx, go or xla")
	fs.StringVar(&o.Data, "data", o.Data, "data set: mnist, fashion, mnist-canvas or fashion-canvas")
	fs.StringVar(&o.Out, "out", o.Out, outHelp)
	fs.Int64Var(&o.Steps, "steps", o.Steps, "training steps")
	addTimeFlag(fs, &o.Deadline)
	fs.IntVar(&o.Batch, "batch", o.Batch, "batch size")
	fs.Float64Var(&o.LR, "lr", o.LR, "peak learning rate")
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "seed of initialisation, data order and noise")
	fs.IntVar(limit, "limit", *limit, "use only the first N training images (0: all)")
	// vae train and classifier train read their data before they know the
	// run's folder, so they keep the run's learning rates only, and their
	// own help says so.
	fs.BoolVar(&o.Resume, "resume", o.Resume, "continue the run saved in --out on its own data and options, at its own learning rates")
	fs.Int64Var(&o.SaveEvery, "save-every", o.SaveEvery, "checkpoint period in steps")
	fs.BoolVar(&o.Quiet, "quiet", o.Quiet, "no progress bar")
}

// addReadingFlag is --reading of the text-to-speech models (train --task
// tts and valle): how the model reads its text.
func addReadingFlag(fs *flags, reading *string) {
	fs.StringVar(reading, "reading", tts.ReadCharacters, "how the model reads the text: characters, or phonemes (spelt by the installed CMU pronouncing dictionary, festival for other words)")
}

// addTrainGFLOPFlag declares --train-gflop, a training run's length given
// as its counted work (the checkpoint's "train_gflop") instead of steps:
// how two systems are trained at equal compute for the paper's
// comparisons. checkTrainGFLOP refuses it beside --steps after parsing.
func addTrainGFLOPFlag(fs *flags, gflop *float64) {
	fs.Float64Var(gflop, "train-gflop", 0, "train for the steps whose counted work is this many GFLOP, instead of --steps (the budget of a comparison at equal compute)")
	fs.bound("train-gflop", 0, 1e15, false)
}

func checkTrainGFLOP(fs *flags) error {
	if fs.isSet("train-gflop") && fs.isSet("steps") {
		return errors.New("--train-gflop sets the steps: give it or --steps, not both")
	}
	return nil
}

// addTimeFlag declares --time, a training run's time budget, as the
// deadline it sets (recipe.Options.Deadline): counted from when the flags
// are parsed, the command's start, so data preparation spends it too.
func addTimeFlag(fs *flags, deadline *time.Time) {
	fs.Var(deadlineFlag{deadline}, "time", "`duration` of the whole command, such as 30m: training stops at the step that fits, with the cosine schedule fitted to end there (--steps: the most it may take)")
}

// deadlineFlag is a duration flag that stores now plus the duration.
type deadlineFlag struct{ t *time.Time }

func (f deadlineFlag) String() string {
	if f.t == nil || f.t.IsZero() {
		return ""
	}
	return time.Until(*f.t).Round(time.Second).String()
}

func (f deadlineFlag) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return fmt.Errorf("want a duration above 0, such as 30m or 1h30m")
	}
	*f.t = time.Now().Add(d)
	return nil
}

// sampleFlags are the generation flags shared by sample and eval.
type sampleFlags struct {
	model, vae       *string
	steps, batch     *int
	cfg, temperature *float64
	seed             *int64
}

// addSampleFlags declares the generation flags; modelHelp and vaeHelp say
// what the command falls back on.
func addSampleFlags(fs *flags, modelHelp, vaeHelp string, batch int) sampleFlags {
	fs.bound("steps", 0, 1000, false) // the schedule has 1000 steps
	return sampleFlags{
		model:       fs.String("model", "", modelHelp),
		vae:         fs.String("vae", "", vaeHelp),
		steps:       fs.Int("steps", 20, "DPM-Solver++ steps, at most 1000 (0: DDPM over all 1000 steps)"),
		cfg:         fs.Float64("cfg", 4, "classifier-free guidance scale"),
		temperature: fs.Float64("temperature", 1, "scale of the initial noise"),
		seed:        fs.Int64("seed", 1, "random seed"),
		batch:       fs.Int("batch", batch, "images generated at once"),
	}
}

// options are the sampler options the flags select.
func (f sampleFlags) options() lm.SampleOptions {
	return lm.SampleOptions{Steps: *f.steps, CFG: *f.cfg, Temperature: *f.temperature, Seed: *f.seed}
}

// printJSON writes v to standard output as indented JSON, the --json output
// of every command.
func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
