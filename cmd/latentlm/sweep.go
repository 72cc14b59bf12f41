package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/latentlm/latentlm/evaluate"
	"github.com/latentlm/latentlm/internal/guard"
)

func init() {
	register("sweep", "score models over guidance scales, solver steps or training snapshots, and plot the result", runSweep)
}

const sweepSynopsis = `sweep --over cfg|steps|train [--values LIST] --json OUT.json --out PLOT.png NAME=MODEL ...
       latentlm sweep --from OUT.json --out PLOT.png [--y METRIC] [--x step|gflop]
       latentlm sweep --over train --task multimodal ... (see sweep --task multimodal --help)

Evaluates every NAME=MODEL (a checkpoint folder, or for --over train a
training run written with --snapshot-every) with the eval command's scores,
one row per (model, value), and plots one line per model:

  --over cfg     the guidance scale takes each of --values (1,2,3,4,6)
  --over steps   DPM-Solver++ takes each of --values steps (5,10,20,50,250);
                 0 is DDPM over all 1000 steps, plotted at x = 1000 as its
                 own series
  --over train   every snapshot step-NNNNNN of the run; x is its training
                 step, or with --x gflop the training GFLOP spent so far

The JSON is rewritten after every row, so a long sweep that stops keeps
what it measured. --from replots a saved sweep (another --y, say) without
generating anything. Metrics for --y: fd, accuracy, is, precision, recall,
seconds_per_image.`

func runSweep(args []string) error {
	switch t := taskOf(args); t {
	case "", "class":
	case "multimodal":
		return runSweepMultimodal(withoutTask(args))
	default:
		return fmt.Errorf("unknown --task %q: want class (the default) or multimodal", t)
	}
	args = withoutTask(args)
	fs := newFlags("sweep", sweepSynopsis).takesArgs()
	backendName := fs.String("backend", "", "compute backend: onnx, go or xla")
	dataName := fs.String("data", "mnist", "data set: mnist or fashion")
	sf := addSampleFlags(fs, "not used: give NAME=MODEL arguments", "tokenizer (default: each model's own)", 100)
	clfDir := fs.String("classifier", "", "classifier checkpoint (default: the shipped weights/classifier-<data>)")
	over := fs.String("over", "", "cfg, steps or train")
	values := fs.String("values", "", "comma-separated values (defaults: cfg 1,2,3,4,6; steps 5,10,20,50,250,0)")
	n := fs.Int("n", 500, "images generated and scored per point")
	jsonOut := fs.String("json", "", "where to write the rows (JSON)")
	from := fs.String("from", "", "replot this saved sweep instead of evaluating")
	plotOut := fs.String("out", "", "PNG plot to write")
	yName := fs.String("y", "fd", "metric on the Y axis")
	xName := fs.String("x", "step", "--over train: X is the training step or gflop")
	title := fs.String("title", "", "plot title (default: the metric and the sweep)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *plotOut == "" {
		return errors.New("--out PLOT.png is required")
	}
	if !slices.Contains(evaluate.SweepMetrics, *yName) {
		return fmt.Errorf("--y %q: want one of %s", *yName, strings.Join(evaluate.SweepMetrics, ", "))
	}
	if *xName != "step" && *xName != "gflop" {
		return fmt.Errorf("--x %q: want step or gflop", *xName)
	}
	if err := guard.CheckOutputFormat(*plotOut, ".png", *from, *jsonOut); err != nil {
		return err
	}
	if *from != "" {
		rows, err := evaluate.ReadSweep(*from)
		if err != nil {
			return err
		}
		if err := plotSweep(*plotOut, *title, rows, *yName, *xName); err != nil {
			return fmt.Errorf("--from %s: %w", *from, err)
		}
		return nil
	}
	if *jsonOut == "" {
		return errors.New("--json OUT.json is required (or --from to replot)")
	}
	if err := checkDataName(*dataName); err != nil {
		return err
	}
	if *n <= prK || *sf.batch < 1 {
		return fmt.Errorf("--n must exceed %d and --batch be ≥ 1", prK)
	}
	if fs.NArg() == 0 || fs.isSet("model") {
		return errors.New("give the models as NAME=MODEL arguments (at least one)")
	}
	if err := guard.CheckOutput(*jsonOut, *plotOut); err != nil {
		return err
	}
	points, err := sweepPoints(*over, *values, fs.Args(), *sf.steps, *sf.cfg, *xName)
	if err != nil {
		return err
	}
	// Every point runs in this process: each model is closed (its compiled
	// graphs and ONNX Runtime buffers freed) before the next is loaded, and
	// the test statistics are computed once for the whole sweep.
	b, _, err := openBackend(*backendName)
	if err != nil {
		return err
	}
	ec, err := newEvalContext(b, *clfDir, *dataName)
	if err != nil {
		return err
	}
	if err := fs.checkMemory(fmt.Sprintf("scoring %d images", *n), ec.MemoryEstimate(*n)); err != nil {
		return err
	}
	if err := ec.Prepare(*n); err != nil {
		return err
	}
	m := evalModel(*backendName, sf)
	var rows []evaluate.SweepRow
	for i, p := range points {
		fmt.Fprintf(os.Stderr, "[%d/%d] %s x=%g (%s, %d steps, CFG %g)...", i+1, len(points), p.Series, p.X, p.Model, p.Steps, p.CFG)
		r, err := ec.SweepPoint(context.Background(), p, m)
		if err != nil {
			fmt.Fprintln(os.Stderr)
			// As eval would say it, after the model it concerns.
			return fmt.Errorf("%s: %s", p.Model, strings.TrimPrefix(err.Error(), "latentlm: "))
		}
		fmt.Fprintf(os.Stderr, " FD %.2f, %.4f s/image\n", r.FD, r.SecondsPerImage)
		rows = append(rows, *r)
		if err := evaluate.WriteSweep(*jsonOut, rows); err != nil {
			return err
		}
	}
	return plotSweep(*plotOut, *title, rows, *yName, *xName)
}

// sweepPoints expands the models and values into evaluations.
func sweepPoints(over, values string, models []string, steps int, cfg float64, xName string) ([]evaluate.Point, error) {
	sw := evaluate.Sweep{Over: over, Steps: steps, CFG: cfg, ByGFLOP: xName == "gflop"}
	switch over {
	case evaluate.OverCFG:
		if values == "" {
			values = "1,2,3,4,6"
		}
	case evaluate.OverSteps:
		if values == "" {
			values = "5,10,20,50,250,0"
		}
	case evaluate.OverTrain:
		if values != "" {
			return nil, errors.New("--over train takes no --values: it uses every snapshot of the run")
		}
	default:
		return nil, fmt.Errorf("--over %q: want cfg, steps or train", over)
	}
	if values != "" {
		for _, f := range strings.Split(values, ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			// Both bounds are those of eval's --cfg and --steps.
			if err != nil || v < 0 || v > 1000 || (over == evaluate.OverSteps && v != float64(int(v))) {
				return nil, fmt.Errorf("--values: %q is not a valid %s value", f, over)
			}
			sw.Values = append(sw.Values, v)
		}
	}
	var points []evaluate.Point
	for _, arg := range models {
		name, dir, ok := strings.Cut(arg, "=")
		if !ok || name == "" || dir == "" {
			return nil, fmt.Errorf("argument %q: want NAME=MODEL", arg)
		}
		ps, err := sw.Points(name, dir)
		if err != nil {
			return nil, err
		}
		points = append(points, ps...)
	}
	return points, nil
}

// plotSweep draws one line per series of rows and says so.
func plotSweep(out, title string, rows []evaluate.SweepRow, yName, xName string) error {
	if err := evaluate.PlotSweep(out, title, rows, yName, xName == "gflop"); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s (%d rows) at %s\n", out, len(rows), time.Now().Format(time.TimeOnly))
	return nil
}
