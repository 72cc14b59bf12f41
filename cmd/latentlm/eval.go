package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gomlx/compute"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/classifier"
	"github.com/latentlm/latentlm/evaluate"
	"github.com/latentlm/latentlm/internal/guard"
)

func init() {
	register("eval", "score generated images: accuracy-to-class, FD, IS, precision/recall", runEval)
}

// prK is the k of the k-NN manifolds of precision and recall.
const prK = evaluate.K

const evalSynopsis = `eval [--model DIR] [--data mnist] [--n 1000] [--steps 20] [--cfg 4] [--seed 1] [--json]
       latentlm eval --images DIR [--data mnist]
       latentlm eval --reference test|train|recon|noise|all [--data mnist]

Scores a set of n images with the classifier (--classifier, default the
shipped weights/classifier-<data>):

  accuracy   fraction classified as the class they were generated for
  fd         Fréchet distance of the classifier's penultimate features to
             those of the whole test split (lower is better)
  is         exp E[KL(p(y|x) ‖ p(y))] of its predictions (10 at best)
  precision  fraction of images inside the k-NN manifold (k = 3) of n
             class-balanced test images (realism). Real outliers have large
             balls that can hold junk: noise scores high here.
  recall     fraction of those test images inside the images' manifold
  density    mean number of those test images' balls holding each image,
             over k (about 1 for real images; Naeem et al. 2020)
  coverage   fraction of those test images whose own ball holds an image
             (Naeem et al. 2020; unlike recall, immune to outlying images)

Sources:
  (default)       n samples of --model, spread evenly over the classes
  --images DIR    every PNG of DIR. Accuracy only when every file is named
                  <class>_<anything>.png (e.g. 3_0042.png); --save writes
                  samples under such names.
  --reference R   reference rows, comma-separated, or all:
                    test   n other class-balanced test images (the floor:
                           what n real images score)
                    train  n class-balanced training images
                    recon  σ-VAE reconstructions of the test row's images
                           (--vae, default the shipped tokenizer)
                    noise  Gaussian noise with the test pixels' mean and
                           std, clipped to [0, 1] (the ceiling)

With several rows, --json prints an array; with one, an object.`

// newEvalContext opens the classifier of --classifier (default: the
// shipped one of the data set) and the test split.
func newEvalContext(b compute.Backend, clfDir, dataName string) (*evaluate.Context, error) {
	if clfDir == "" {
		var err error
		if clfDir, err = weightsDir("classifier-" + dataName); err != nil {
			return nil, err
		}
	}
	return evaluate.NewContext(b, clfDir, dataName)
}

// evalModel is the model of the sampling flags: --model, --vae, --batch
// and the sampling options, on --backend.
func evalModel(backendName string, sf sampleFlags) evaluate.Model {
	o := sf.options()
	return evaluate.Model{Dir: *sf.model, Tokenizer: *sf.vae, Backend: backendName, Batch: *sf.batch,
		Options: o}
}

func runEval(args []string) error {
	if t := taskOf(args); t == "tts" {
		return runEvalTTS(withoutTask(args))
	} else if t != "" && t != "class" {
		return runEvalMultimodal(t, withoutTask(args))
	}
	args = withoutTask(args)
	fs := newFlags("eval", evalSynopsis)
	backendName := fs.String("backend", "", "compute backend: onnx, go or xla")
	dataName := fs.String("data", "mnist", "data set: mnist or fashion")
	sf := addSampleFlags(fs, "model checkpoint (default: the shipped weights/latentlm-<data>)", "tokenizer (default: the model's own; for --reference recon the shipped vae-<data>)", 100)
	steps, seed, batch := sf.steps, sf.seed, sf.batch
	clfDir := fs.String("classifier", "", "classifier checkpoint (default: the shipped weights/classifier-<data>)")
	n := fs.Int("n", 1000, "images to generate and score")
	imagesDir := fs.String("images", "", "score the PNGs of this folder instead of generating")
	reference := fs.String("reference", "", "reference rows instead: test, train, recon, noise (comma-separated) or all")
	saveDir := fs.String("save", "", "also write the generated images here as <class>_<index>.png")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := modelData(*sf.model, dataName, fs.isSet("data")); err != nil {
		return err
	}
	if err := checkDataName(*dataName); err != nil {
		return err
	}
	if *imagesDir != "" && *reference != "" {
		return errors.New("--images and --reference exclude each other")
	}
	if *n <= prK {
		return fmt.Errorf("--n %d: need more than %d images for precision/recall", *n, prK)
	}
	if *steps < 0 || *batch < 1 {
		return errors.New("--steps must be ≥ 0 and --batch ≥ 1")
	}
	var refs []string
	if *reference != "" {
		for _, r := range strings.Split(*reference, ",") {
			switch r = strings.TrimSpace(r); r {
			case "all":
				refs = append(refs, evaluate.References...)
			case "test", "train", "recon", "noise":
				if slices.Contains(refs, r) {
					return fmt.Errorf("--reference %s: %s is given twice", *reference, r)
				}
				refs = append(refs, r)
			default:
				return fmt.Errorf("--reference %q: want test, train, recon, noise or all", r)
			}
		}
	}
	b, _, err := openBackend(*backendName)
	if err != nil {
		return err
	}
	t0 := time.Now()
	ec, err := newEvalContext(b, *clfDir, *dataName)
	if err != nil {
		return err
	}
	var images [][]float32
	var imageLabels []int
	if *imagesDir != "" {
		// Read before the long work: a bad folder fails at once.
		if images, imageLabels, err = ec.ReadImages(*imagesDir); err != nil {
			return err
		}
		*n = len(images)
	}
	if err := fs.checkMemory(fmt.Sprintf("scoring %d images", *n), ec.MemoryEstimate(*n)); err != nil {
		return err
	}
	if *saveDir != "" {
		if err := guard.CheckOutputDir(*saveDir); err != nil {
			return err
		}
	}
	// Precision/recall compare with as many real images as are scored.
	if err := ec.Prepare(*n); err != nil {
		return err
	}
	setup := time.Since(t0)
	var rows []evaluate.Row
	switch {
	case *imagesDir != "":
		row, err := ec.Images(*imagesDir, images, imageLabels)
		if err != nil {
			return err
		}
		rows = append(rows, *row)
	case len(refs) > 0:
		for _, r := range refs {
			vaeDir := *sf.vae
			if r == "recon" && vaeDir == "" {
				if vaeDir, err = weightsDir("vae-" + *dataName); err != nil {
					return fmt.Errorf("reference %s: %w", r, err)
				}
			}
			row, err := ec.Reference(r, vaeDir, uint64(*seed))
			if err != nil {
				return fmt.Errorf("reference %s: %w", r, err)
			}
			rows = append(rows, *row)
		}
	default:
		m := evalModel(*backendName, sf)
		if m.Dir == "" {
			if m.Dir, err = weightsDir("latentlm-" + *dataName); err != nil {
				return err
			}
		}
		m.SaveDir = *saveDir
		row, err := ec.Generated(context.Background(), m)
		if err != nil {
			return err
		}
		rows = append(rows, *row)
	}
	if *asJSON {
		if len(rows) == 1 {
			return printJSON(rows[0])
		}
		return printJSON(rows)
	}
	fmt.Printf("%s: %s, classifier %s; FD against the %d test images, k-NN scores (k=%d) against %d of them (setup %s)\n",
		*dataName, plural(len(rows), "row"), ec.ClassifierPath, ec.Test.N, prK, ec.ReferenceSize(), setup.Round(time.Millisecond))
	fmt.Printf("  %-16s %6s %9s %9s %7s %9s %7s %8s %8s %8s\n", "source", "n", "accuracy", "FD", "IS", "precision", "recall", "density", "coverage", "seconds")
	for _, r := range rows {
		acc := "—"
		if r.Accuracy != nil {
			acc = fmt.Sprintf("%.2f%%", 100**r.Accuracy)
		}
		fmt.Printf("  %-16s %6d %9s %9.3f %7.3f %9.3f %7.3f %8.3f %8.3f %8.1f\n", r.Source, r.N, acc, r.FD, r.IS, r.Precision, r.Recall, r.Density, r.Coverage, r.Seconds)
	}
	if *imagesDir != "" && imageLabels == nil {
		fmt.Printf("  (no accuracy: not every file is named <class>_<anything>.png with a class from 0 to %d, %s for one)\n",
			ec.Classifier.Config.Classes-1, firstUnlabelled(*imagesDir, ec.Classifier.Config.Classes))
	}
	return nil
}

// firstUnlabelled is the first file of dir, in name order, whose name
// gives no class below classes: the one to rename for an accuracy.
func firstUnlabelled(dir string, classes int) string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return dir
	}
	for _, e := range entries {
		if _, ok := classifier.LabelFromName(e.Name(), classes); !ok {
			return filepath.Join(dir, e.Name())
		}
	}
	return dir
}

func plural(n int, s string) string {
	if n == 1 {
		return "1 " + s
	}
	return fmt.Sprintf("%d %ss", n, s)
}

// modelData makes *data the data set the model in dir was trained on (its
// config.json's info entry "data"), so that a Fashion-MNIST model is scored
// by the Fashion-MNIST judge without --data fashion; an explicit --data
// (set) that differs is refused, since the scores would mean nothing.
// Without a model, or with one that records no data, *data stays.
func modelData(dir string, data *string, set bool) error {
	if dir == "" {
		return nil
	}
	info, err := checkpoint.RecordedInfo(dir)
	if err != nil {
		return fmt.Errorf("--model: %w", err)
	}
	recorded, _ := info["data"].(string)
	switch {
	case recorded == "" || recorded == *data:
	case !set:
		*data = recorded
	default:
		return fmt.Errorf("--data %s: the model %s was trained on %s, so its images would be judged against the wrong data set (leave --data out)", *data, dir, recorded)
	}
	return nil
}
