package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/speaker"
	"github.com/latentlm/latentlm/speech"
)

func init() {
	register("speaker", "train and evaluate the speaker classifier that judges voices (accuracy, SIM)", runSpeaker)
}

func runSpeaker(args []string) error {
	return dispatch("speaker", "usage: latentlm speaker train|eval [flags]\n\n"+
		"  train  train the speaker classifier on the speech data (.deps/speech)\n"+
		"  eval   its accuracy and real-speech SIM on a split, per voice",
		map[string]func([]string) error{"train": speakerTrain, "eval": speakerEval}, args)
}

func speakerTrain(args []string) error {
	o := speaker.DefaultTrainOptions()
	fs := newFlags("speaker train", "speaker train [--data DIR] [--out DIR] [--steps N] [--batch N] [--lr X] [--seed N] [--resume]")
	fs.StringVar(&o.Backend, "backend", o.Backend, "compute backend: onnx, go or xla")
	fs.StringVar(&o.Data, "data", "", "speech data cache (default .deps/speech)")
	fs.StringVar(&o.Out, "out", "", "checkpoint folder (default runs/speaker)")
	fs.Int64Var(&o.Steps, "steps", o.Steps, "training steps")
	fs.IntVar(&o.Batch, "batch", o.Batch, "windows per step")
	fs.Float64Var(&o.LR, "lr", o.LR, "peak learning rate")
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "seed of initialisation and crops")
	fs.BoolVar(&o.Resume, "resume", false, "continue the run saved in --out, at its own learning rates")
	fs.Int64Var(&o.SaveEvery, "save-every", 0, "checkpoint period in steps (0: at the end)")
	fs.BoolVar(&o.Quiet, "quiet", false, "no progress bar")
	widths := fs.String("widths", joinInts(o.Model.Widths), "channels of each convolution, comma-separated")
	fs.IntVar(&o.Model.Kernel, "kernel", o.Model.Kernel, "frames (10 ms each) each convolution spans, odd")
	fs.IntVar(&o.Model.Embedding, "embedding", o.Model.Embedding, "width of the speaker embedding")
	fs.IntVar(&o.Model.Frames, "frames", o.Model.Frames, "frames per training crop and scoring window (100 a second)")
	fs.bound("steps", 1, 1<<30, false)
	fs.bound("kernel", 1, 101, false)
	fs.bound("embedding", 1, nn.MaxWidth, false)
	fs.bound("frames", 1, 100_000, false)
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if o.Model.Widths, err = parseInts(*widths); err != nil {
		return fmt.Errorf("--widths %q: %w", *widths, err)
	}
	o.Log = os.Stdout
	o.Command = strings.Join(append([]string{"latentlm", "speaker", "train"}, args...), " ")
	if o.MemoryLimit, err = fs.memoryLimit(); err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	m, err := speaker.Train(ctx, o)
	if err != nil {
		// The recipes' hints (an existing checkpoint, an interrupted run)
		// apply as they are.
		return unprefixed(trainError(err, append([]string{"speaker", "train"}, args...)))
	}
	m.Close()
	return nil
}

func speakerEval(args []string) error {
	fs := newFlags("speaker eval", "speaker eval [--model DIR] [--data DIR] [--split test] [--json]")
	modelDir := fs.String("model", "", "speaker checkpoint (default weights/speaker)")
	dataDir := fs.String("data", "", "speech data cache (default .deps/speech)")
	split := fs.String("split", speech.SplitTest, "split to score: train, valid or test")
	backendName := fs.String("backend", "", "compute backend: onnx, go or xla")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !slices.Contains(speech.Splits, *split) {
		return fmt.Errorf("--split %q: want train, valid or test", *split)
	}
	data, err := speaker.DataDir(*dataDir)
	if err != nil {
		return unprefixed(err)
	}
	if _, err := os.Stat(filepath.Join(data, speech.ManifestFile)); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no speech data in %s: run `latentlm speech data` first", data)
	}
	dir := *modelDir
	if dir == "" {
		if dir, err = weightsDir("speaker"); err != nil {
			return err
		}
	}
	b, _, err := openBackend(*backendName)
	if err != nil {
		return err
	}
	m, err := speaker.Load(b, dir)
	if err != nil {
		return err
	}
	defer m.Close()
	r, err := speaker.Evaluate(m, data, *split)
	if err != nil {
		return unprefixed(err)
	}
	if *asJSON {
		return printJSON(map[string]any{"model": dir, "data": data, "voices": m.Voices, "report": r})
	}
	fmt.Printf("speaker judge %s on the %s split of %s\n", dir, *split, data)
	speaker.WriteReport(os.Stdout, r)
	fmt.Printf("(%.0f s; SIM: cosine to the centroid of the voice's other clips; other SIM: to the nearest other voice's)\n", r.Seconds)
	return nil
}

// prefixedError is an error of package speaker without its "speaker: "
// prefix, which the command's own "latentlm speaker:" already says.
type prefixedError struct{ err error }

func (e prefixedError) Error() string { return strings.TrimPrefix(e.err.Error(), "speaker: ") }
func (e prefixedError) Unwrap() error { return e.err }

func unprefixed(err error) error {
	if err == nil {
		return nil
	}
	return prefixedError{err}
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}
