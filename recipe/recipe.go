// Package recipe holds the training recipes of the project, the work behind
// `latentlm train`, `latentlm vae train` and `latentlm classifier train`,
// for Go programs to run without the command: LatentLM trains LatentLM (or
// the DiT baseline) on the latents of a tokenizer, Tokenizer trains the
// σ-VAE (or a plain VAE or autoencoder), and Classifier trains the CNN that
// the evaluation scores images with.
//
// Each recipe writes a checkpoint folder as its command does, saving every
// SaveEvery steps and at the end, and continues a saved run exactly with
// Resume. Cancelling the context (Ctrl-C in the command) saves the last
// step and returns a *train.InterruptedError. The options mirror the
// command's flags, and their defaults are the command's.
//
// Besides MNIST and Fashion-MNIST, Tokenizer and Classifier train on the
// 56×56 captioned canvases of package canvas ("mnist-canvas",
// "fashion-canvas"): they take the image size (and the classifier its
// classes, the 240 scenes) from the data set, and DefaultTokenizerModel
// and DefaultClassifierModel give the geometry that suits each. Tokenizer
// also trains on colour: the Twemoji set ("emoji") and any folder of PNG
// and JPEG pictures, brought to one square size (LoadImages, ImageSet;
// docs/DESIGN.md §2).
package recipe

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/gomlx/compute"

	"github.com/latentlm/latentlm/backend"
	"github.com/latentlm/latentlm/canvas"
	"github.com/latentlm/latentlm/data"
	"github.com/latentlm/latentlm/internal/atomicfile"
	"github.com/latentlm/latentlm/internal/deps"
	"github.com/latentlm/latentlm/plot"
	"github.com/latentlm/latentlm/train"
)

// Options are the settings every recipe shares.
type Options struct {
	// Backend names the compute backend: "onnx", "go" or "xla" ("": the
	// one $LATENTLM_BACKEND names, else onnx).
	Backend string
	// Data is the data set: "mnist", "fashion", or the captioned canvases
	// "mnist-canvas" or "fashion-canvas" (package canvas).
	Data string
	// Out is the checkpoint folder ("": a folder under runs/ named after
	// the recipe and the data set).
	Out string
	// Steps is the length of the run; a resumed run continues to it.
	Steps int64
	// Deadline, when set, is when the run must be done (`--time`
	// counts it from the command's start, so data preparation spends
	// it too): the run stops at the step that fits, with its cosine
	// schedule refitted to end there as the pace is measured
	// (train.Loop.Deadline), and Steps is the most it may take.
	Deadline time.Time
	// SaveEvery is the checkpoint period in steps; 0 saves only at the end.
	SaveEvery int64
	// Batch is the number of training items per step.
	Batch int
	// LR is the peak learning rate of the cosine schedule.
	LR float64
	// Seed seeds the initialisation, the data order and the noise. A
	// resumed run keeps the seed it was started with.
	Seed uint64
	// Resume continues the run saved in Out; without it a folder that
	// already holds a checkpoint is refused (train.ErrCheckpointExists).
	Resume bool
	// Quiet hides the progress bar, which is drawn on stderr.
	Quiet bool
	// MemoryLimit is the memory in bytes the run may plan to use; a run
	// estimated to need more is refused before it starts. 0: the default
	// of guard.MemoryLimit ($LATENTLM_MAX_MEMORY, else half of the RAM).
	MemoryLimit float64
	// Log receives the recipe's messages (what it is doing, what it
	// saved); nil: none.
	Log io.Writer
}

// Result is what a finished recipe produced.
type Result struct {
	Dir     string        // the checkpoint folder
	History []train.Point // the loss history of the whole run
	// TestAccuracy is the classifier's accuracy on the test split
	// (Classifier only).
	TestAccuracy float64
}

// OptionError is an option whose value the recipe can only refuse once it
// has read its data, such as a batch larger than the training set.
type OptionError struct {
	Option  string // the option, spelt as the command's flag: "batch"
	Problem string // what is wrong with its value
}

func (e *OptionError) Error() string { return e.Option + " " + e.Problem }

// DataNames lists the data sets the recipes train on: those of package
// data, then the canvas sets of package canvas.
func DataNames() []string {
	return append(slices.Clip(data.Names), canvas.DataNames...)
}

// CheckData validates a data-set name.
func CheckData(name string) error {
	if slices.Contains(DataNames(), name) {
		return nil
	}
	return fmt.Errorf("unknown data set %q: want mnist, fashion, mnist-canvas or fashion-canvas", name)
}

// LoadSplit loads a split of the named data set ("train" or "test"; a
// canvas set also has "judge", see package canvas), or its first limit
// images when limit > 0 (for quick runs).
func LoadSplit(name, split string, limit int) (*data.Dataset, error) {
	if err := CheckData(name); err != nil {
		return nil, err
	}
	var ds *data.Dataset
	var err error
	if canvas.IsCanvas(name) {
		ds, err = canvas.Load(name, split)
	} else {
		ds, err = data.Load(name, split)
	}
	if err != nil || limit <= 0 || limit >= ds.N {
		return ds, err
	}
	idx := make([]int, limit)
	for i := range idx {
		idx[i] = i
	}
	return ds.Subset(idx), nil
}

// LoadTrainingSet loads the training split of the named data set, or its
// first limit images when limit > 0 (for quick runs).
func LoadTrainingSet(name string, limit int) (*data.Dataset, error) {
	return LoadSplit(name, "train", limit)
}

// imageSize is the side of the images of a valid data set: 56 for the
// canvases, 28 for the others.
func imageSize(name string) int {
	if canvas.IsCanvas(name) {
		return canvas.Size
	}
	return 28
}

// classes is the number of labels of a valid data set: the 240 scenes of
// the canvases, the 10 classes of the others.
func classes(name string) int {
	if canvas.IsCanvas(name) {
		return canvas.NumScenes
	}
	return data.Classes
}

// Batches yields the images of d in order, n at a time (the last batch may
// be smaller), scaled to [0, 1]; only the first limit images when limit > 0.
// It is ImageSet.Batches of ImageSetOf(d).
func Batches(d *data.Dataset, n int, limit int) func(yield func([][]float32) error) error {
	s, err := ImageSetOf(d)
	if err != nil {
		return func(func([][]float32) error) error { return err }
	}
	return s.Batches(n, limit)
}

// openBackend opens the named backend and returns it with its resolved name.
func openBackend(name string) (compute.Backend, string, error) {
	name = backend.Resolve(name)
	b, err := backend.Open(name)
	return b, name, err
}

// shippedWeights is the folder of the weights shipped under weights/<name>
// in the repository (found like .deps).
func shippedWeights(name string) (string, error) { return deps.Weights(name) }

// logf writes a message to w, if any.
func logf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format, args...)
	}
}

// maxBudgetSteps bounds the steps a FLOP budget may set: past it the
// budget is a mistake (a GFLOP figure given in FLOP, say) rather than a
// run anyone means to start.
const maxBudgetSteps = 10_000_000

// budgetSteps is the number of steps whose counted work, the sum of
// stepGFLOP over steps 0, 1, …, is nearest budget GFLOP (at least one
// step): how `--train-gflop` sets the length of a run, so that two
// systems compared at equal training compute (the paper's Tables 3 and 4)
// are trained to the same "train_gflop" their checkpoints record. The
// work of a step may vary with the data the step draws (a text-to-speech
// batch's speech frames), so it is summed step by step rather than
// divided out.
func budgetSteps(budget float64, stepGFLOP func(step int64) float64) (int64, error) {
	var done float64
	for step := int64(0); step < maxBudgetSteps; step++ {
		next := done + stepGFLOP(step)
		if next >= budget {
			if step > 0 && budget-done < next-budget {
				return step, nil
			}
			return step + 1, nil
		}
		done = next
	}
	return 0, fmt.Errorf("a budget of %g GFLOP is more than %d training steps of this model", budget, maxBudgetSteps)
}

// writeLossPlot draws a run's loss history; a run too short to have one
// gets no plot rather than an error after its training is done.
func writeLossPlot(path, title string, h []train.Point) error {
	if len(h) == 0 {
		return nil
	}
	s := plot.Series{Name: "loss"}
	for _, p := range h {
		s.X = append(s.X, float64(p.Step))
		s.Y = append(s.Y, p.Loss)
	}
	return plot.Write(path, title, "step", "loss", []plot.Series{s}, plot.Axes{LogY: true})
}

// keepSnapshot also keeps the weights of a run's step in out/step-NNNNNN,
// written by write, so that its steps can be compared afterwards (latentlm
// sweep --over train, or one evaluation per folder on the validation
// split). A snapshot folder appears whole or not at all; one left by a run
// that was killed before its next save is replaced.
func keepSnapshot(out string, step int64, write func(dir string) error) error {
	snap := filepath.Join(out, fmt.Sprintf("step-%06d", step))
	if err := os.RemoveAll(snap); err != nil {
		return err
	}
	return atomicfile.WriteDir(snap, write)
}

// snapshotDue says whether a run of steps steps that keeps a snapshot
// every every steps (0: never) keeps one at step: at each multiple and at
// the last.
func snapshotDue(every, step, steps int64) bool {
	return every > 0 && (step%every == 0 || step == steps)
}

// hookEvery is the period of a training loop's hook that saves every save
// steps and keeps a snapshot every snapshot steps (0: none).
func hookEvery(save, snapshot int64) int64 {
	if snapshot > 0 {
		return gcd(save, snapshot)
	}
	return save
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
