package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/imageio"
	"github.com/latentlm/latentlm/internal/atomicfile"
	"github.com/latentlm/latentlm/internal/guard"
)

func init() {
	register("sweep", "score models over guidance scales, solver steps or training snapshots, and plot the result", runSweep)
}

const sweepSynopsis = `sweep --over cfg|steps|train [--values LIST] --json OUT.json --out PLOT.png NAME=MODEL ...
       latentlm sweep --from OUT.json --out PLOT.png [--y METRIC] [--x step|gflop]

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

// sweepRow is one evaluated point.
type sweepRow struct {
	evalRow
	Series          string  `json:"series"`
	Over            string  `json:"over"`
	X               float64 `json:"x"`
	TrainSteps      float64 `json:"train_steps,omitempty"`
	TrainGFLOP      float64 `json:"train_gflop,omitempty"`
	SecondsPerImage float64 `json:"seconds_per_image"`
}

// sweepMetrics are the values --y can plot.
var sweepMetrics = []string{"fd", "accuracy", "is", "precision", "recall", "seconds_per_image"}

// metric reads a --y metric of a row.
func (r sweepRow) metric(name string) (float64, error) {
	switch name {
	case "fd":
		return r.FD, nil
	case "accuracy":
		if r.Accuracy == nil {
			return 0, errors.New("row has no accuracy")
		}
		return *r.Accuracy, nil
	case "is":
		return r.IS, nil
	case "precision":
		return r.Precision, nil
	case "recall":
		return r.Recall, nil
	case "seconds_per_image":
		return r.SecondsPerImage, nil
	}
	return 0, fmt.Errorf("unknown metric %q: want fd, accuracy, is, precision, recall or seconds_per_image", name)
}

// sweepPoint is one evaluation to run.
type sweepPoint struct {
	series, model string
	x             float64
	steps         int
	cfg           float64
	trainSteps    float64
	trainGFLOP    float64
}

func runSweep(args []string) error {
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
	if !slices.Contains(sweepMetrics, *yName) {
		return fmt.Errorf("--y %q: want one of %s", *yName, strings.Join(sweepMetrics, ", "))
	}
	if *xName != "step" && *xName != "gflop" {
		return fmt.Errorf("--x %q: want step or gflop", *xName)
	}
	if err := guard.CheckOutput(*plotOut, *from, *jsonOut); err != nil {
		return err
	}
	if *from != "" {
		raw, err := guard.ReadFile(*from, 64<<20)
		if err != nil {
			return err
		}
		var rows []sweepRow
		if err := json.Unmarshal(raw, &rows); err != nil {
			return fmt.Errorf("%s: invalid sweep JSON: %v", *from, err)
		}
		if len(rows) == 0 {
			return fmt.Errorf("%s: no rows", *from)
		}
		return plotSweep(*plotOut, *title, rows, *yName, *xName)
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
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var rows []sweepRow
	for i, p := range points {
		fmt.Fprintf(os.Stderr, "[%d/%d] %s x=%g (%s, %d steps, CFG %g)...", i+1, len(points), p.series, p.x, p.model, p.steps, p.cfg)
		// Each point is a child `eval`: ONNX Runtime keeps compiled graphs
		// and arenas in C memory that Go's collector does not see, and a
		// long sweep in one process grew until the machine swapped.
		args := []string{"eval", "--json", "--model", p.model, "--data", *dataName, "--n", strconv.Itoa(*n),
			"--steps", strconv.Itoa(p.steps), "--cfg", fmt.Sprint(p.cfg), "--seed", fmt.Sprint(*sf.seed),
			"--temperature", fmt.Sprint(*sf.temperature), "--batch", strconv.Itoa(*sf.batch)}
		for flag, v := range map[string]string{"--backend": *backendName, "--vae": *sf.vae, "--classifier": *clfDir} {
			if v != "" {
				args = append(args, flag, v)
			}
		}
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(self, args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr)
			return fmt.Errorf("%s: %s", p.model, strings.TrimSpace(lastLine(stderr.String(), err.Error())))
		}
		var row evalRow
		if err := json.Unmarshal(stdout.Bytes(), &row); err != nil {
			return fmt.Errorf("%s: reading the eval report: %v", p.model, err)
		}
		r := sweepRow{evalRow: row, Series: p.series, Over: *over, X: p.x, TrainSteps: p.trainSteps, TrainGFLOP: p.trainGFLOP,
			SecondsPerImage: row.GenerateSeconds / float64(row.N)}
		fmt.Fprintf(os.Stderr, " FD %.2f, %.4f s/image\n", r.FD, r.SecondsPerImage)
		rows = append(rows, r)
		raw, _ := json.MarshalIndent(rows, "", "  ")
		if err := atomicfile.WriteBytes(*jsonOut, append(raw, '\n')); err != nil {
			return err
		}
	}
	return plotSweep(*plotOut, *title, rows, *yName, *xName)
}

// lastLine is the last non-empty line of s, or fallback.
func lastLine(s, fallback string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if l := lines[len(lines)-1]; l != "" {
		return l
	}
	return fallback
}

// sweepPoints expands the models and values into evaluations.
func sweepPoints(over, values string, models []string, steps int, cfg float64, xName string) ([]sweepPoint, error) {
	var vals []float64
	switch over {
	case "cfg":
		if values == "" {
			values = "1,2,3,4,6"
		}
	case "steps":
		if values == "" {
			values = "5,10,20,50,250,0"
		}
	case "train":
		if values != "" {
			return nil, errors.New("--over train takes no --values: it uses every snapshot of the run")
		}
	default:
		return nil, fmt.Errorf("--over %q: want cfg, steps or train", over)
	}
	if values != "" {
		for _, f := range strings.Split(values, ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil || v < 0 || (over == "steps" && v != float64(int(v))) {
				return nil, fmt.Errorf("--values: %q is not a valid %s value", f, over)
			}
			vals = append(vals, v)
		}
	}
	var points []sweepPoint
	for _, arg := range models {
		name, dir, ok := strings.Cut(arg, "=")
		if !ok || name == "" || dir == "" {
			return nil, fmt.Errorf("argument %q: want NAME=MODEL", arg)
		}
		switch over {
		case "cfg":
			for _, v := range vals {
				points = append(points, sweepPoint{series: name, model: dir, x: v, steps: steps, cfg: v})
			}
		case "steps":
			for _, v := range vals {
				p := sweepPoint{series: name, model: dir, x: v, steps: int(v), cfg: cfg}
				if v == 0 {
					p.series, p.x = name+" DDPM", 1000
				}
				points = append(points, p)
			}
		case "train":
			snaps, err := filepath.Glob(filepath.Join(dir, "step-*"))
			if err != nil || len(snaps) == 0 {
				return nil, fmt.Errorf("%s: no step-NNNNNN snapshots (train with --snapshot-every)", dir)
			}
			sort.Strings(snaps)
			for _, s := range snaps {
				info, err := snapshotInfo(s)
				if err != nil {
					return nil, err
				}
				p := sweepPoint{series: name, model: s, x: info.Steps, steps: steps, cfg: cfg, trainSteps: info.Steps, trainGFLOP: info.GFLOP}
				if xName == "gflop" {
					p.x = info.GFLOP
				}
				points = append(points, p)
			}
		}
	}
	return points, nil
}

type trainInfo struct {
	Steps float64 `json:"steps"`
	GFLOP float64 `json:"train_gflop"`
}

// snapshotInfo reads the training progress recorded in a checkpoint.
func snapshotInfo(dir string) (trainInfo, error) {
	var hdr struct {
		Info trainInfo `json:"info"`
	}
	path := filepath.Join(dir, checkpoint.ConfigFile)
	raw, err := guard.ReadFile(path, checkpoint.MaxConfigBytes)
	if err != nil {
		return trainInfo{}, err
	}
	if err := json.Unmarshal(raw, &hdr); err != nil {
		return trainInfo{}, fmt.Errorf("%s: invalid JSON: %v", path, err)
	}
	return hdr.Info, nil
}

// plotSweep draws one line per series of rows.
func plotSweep(out, title string, rows []sweepRow, yName, xName string) error {
	var series []imageio.Series
	index := map[string]int{}
	for _, r := range rows {
		y, err := r.metric(yName)
		if err != nil {
			return err
		}
		i, ok := index[r.Series]
		if !ok {
			i = len(series)
			index[r.Series] = i
			series = append(series, imageio.Series{Name: r.Series})
		}
		x := r.X
		if r.Over == "train" {
			x = r.TrainSteps
			if xName == "gflop" {
				x = r.TrainGFLOP
			}
		}
		series[i].X = append(series[i].X, x)
		series[i].Y = append(series[i].Y, y)
	}
	over := rows[0].Over
	xlabel := map[string]string{"cfg": "guidance scale", "steps": "solver steps (log scale)", "train": "training steps"}[over]
	if over == "train" && xName == "gflop" {
		xlabel = "training GFLOP"
	}
	if title == "" {
		title = fmt.Sprintf("%s over %s (%s, n = %d)", yName, over, rows[0].Data, rows[0].N)
	}
	logY := yName == "fd" || yName == "seconds_per_image"
	if err := imageio.WritePlotAxes(out, title, xlabel, yName, series, over == "steps", logY); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s (%d rows) at %s\n", out, len(rows), time.Now().Format(time.TimeOnly))
	return nil
}
