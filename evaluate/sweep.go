package evaluate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/internal/atomicfile"
	"github.com/latentlm/latentlm/internal/guard"
	"github.com/latentlm/latentlm/internal/jsonerr"
	"github.com/latentlm/latentlm/plot"
)

// What a sweep varies (Sweep.Over).
const (
	OverCFG   = "cfg"   // the guidance scale
	OverSteps = "steps" // the solver steps; 0 is DDPM over all 1000 steps
	OverTrain = "train" // the snapshots step-NNNNNN of a training run
)

// SweepRow is one evaluated point of a sweep: a Row and where it lies. Its
// JSON names are read by the scripts and documents of the project.
type SweepRow struct {
	Row
	// Series is the line of the plot the row belongs to.
	Series string `json:"series"`
	// Over is what the sweep varies (OverCFG, OverSteps or OverTrain) and X
	// the row's value of it.
	Over string  `json:"over"`
	X    float64 `json:"x"`
	// TrainSteps and TrainGFLOP are the training progress of a snapshot.
	TrainSteps float64 `json:"train_steps,omitempty"`
	TrainGFLOP float64 `json:"train_gflop,omitempty"`
	// SecondsPerImage is the generation time per image.
	SecondsPerImage float64 `json:"seconds_per_image"`
}

// SweepMetrics are the values Metric reads (and a sweep plot can show).
var SweepMetrics = []string{"fd", "accuracy", "is", "precision", "recall", "seconds_per_image"}

// Metric reads one of SweepMetrics.
func (r SweepRow) Metric(name string) (float64, error) {
	switch name {
	case "fd":
		return r.FD, nil
	case "accuracy":
		if r.Accuracy == nil {
			return 0, errors.New("no accuracy (its images had no classes to check)")
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

// Sweep says what a sweep varies.
type Sweep struct {
	// Over is OverCFG, OverSteps or OverTrain.
	Over string
	// Values are the guidance scales or solver steps (OverCFG, OverSteps).
	Values []float64
	// Steps and CFG are the settings that Over does not vary.
	Steps int
	CFG   float64
	// ByGFLOP makes X of an OverTrain point the training GFLOP instead of
	// the training step.
	ByGFLOP bool
}

// Point is one evaluation of a sweep.
type Point struct {
	Over   string
	Series string // the line of the plot
	Model  string // the checkpoint folder
	X      float64
	Steps  int
	CFG    float64
	// TrainSteps, TrainGFLOP and TrainTokens are the training progress of
	// a snapshot (TrainTokens: recorded by multimodal runs only).
	TrainSteps, TrainGFLOP, TrainTokens float64
}

// Points expands the sweep for one model: one point per value, or for
// OverTrain one per snapshot step-NNNNNN of the training run in dir, in
// order. Steps 0 (DDPM) makes a series of its own, "<series> DDPM", at
// x = 1000.
func (s Sweep) Points(series, dir string) ([]Point, error) {
	var points []Point
	switch s.Over {
	case OverCFG:
		for _, v := range s.Values {
			points = append(points, Point{Over: s.Over, Series: series, Model: dir, X: v, Steps: s.Steps, CFG: v})
		}
	case OverSteps:
		for _, v := range s.Values {
			p := Point{Over: s.Over, Series: series, Model: dir, X: v, Steps: int(v), CFG: s.CFG}
			if v == 0 {
				p.Series, p.X = series+" DDPM", 1000
			}
			points = append(points, p)
		}
	case OverTrain:
		snaps, err := filepath.Glob(filepath.Join(dir, "step-*"))
		if err != nil || len(snaps) == 0 {
			return nil, fmt.Errorf("%s: no step-NNNNNN snapshots (train with --snapshot-every)", dir)
		}
		sort.Strings(snaps)
		for _, snap := range snaps {
			info, err := SnapshotInfo(snap)
			if err != nil {
				return nil, err
			}
			p := Point{Over: s.Over, Series: series, Model: snap, X: info.Steps, Steps: s.Steps, CFG: s.CFG, TrainSteps: info.Steps, TrainGFLOP: info.GFLOP, TrainTokens: info.Tokens}
			if s.ByGFLOP {
				p.X = info.GFLOP
			}
			points = append(points, p)
		}
	default:
		return nil, fmt.Errorf("sweep over %q: want cfg, steps or train", s.Over)
	}
	return points, nil
}

// TrainInfo is the training progress a checkpoint records.
type TrainInfo struct {
	Steps float64 `json:"steps"`
	GFLOP float64 `json:"train_gflop"`
	// Tokens are the items of the sequences trained on (multimodal runs).
	Tokens float64 `json:"train_tokens"`
}

// SnapshotInfo reads the training progress recorded in a checkpoint.
func SnapshotInfo(dir string) (TrainInfo, error) {
	var hdr struct {
		Info TrainInfo `json:"info"`
	}
	path := filepath.Join(dir, checkpoint.ConfigFile)
	raw, err := guard.ReadFile(path, checkpoint.MaxConfigBytes)
	if err != nil {
		return TrainInfo{}, err
	}
	if err := json.Unmarshal(raw, &hdr); err != nil {
		return TrainInfo{}, fmt.Errorf("%s: invalid JSON: %v", path, jsonerr.Describe(err))
	}
	return hdr.Info, nil
}

// SweepPoint evaluates one point in this process: the model of p, with
// p's steps and guidance scale and the rest of m (m.Dir and m.SaveDir are
// ignored), is loaded, sampled for N() images and closed before the images
// are scored, so that a sweep of any length holds one model at a time.
func (c *Context) SweepPoint(ctx context.Context, p Point, m Model) (*SweepRow, error) {
	m.Dir, m.SaveDir = p.Model, ""
	m.Options.Steps, m.Options.CFG = p.Steps, p.CFG
	row, err := c.Generated(ctx, m)
	if err != nil {
		return nil, err
	}
	return &SweepRow{Row: *row, Series: p.Series, Over: p.Over, X: p.X, TrainSteps: p.TrainSteps, TrainGFLOP: p.TrainGFLOP,
		SecondsPerImage: row.GenerateSeconds / float64(row.N)}, nil
}

// maxSweepBytes bounds the sweep files ReadSweep accepts.
const maxSweepBytes = 64 << 20

// ReadSweep reads the rows a sweep wrote with WriteSweep.
func ReadSweep(path string) ([]SweepRow, error) {
	raw, err := guard.ReadFile(path, maxSweepBytes)
	if err != nil {
		return nil, err
	}
	var rows []SweepRow
	if err := json.Unmarshal(raw, &rows); err != nil {
		return nil, fmt.Errorf("%s: invalid sweep JSON: %v", path, jsonerr.Describe(err))
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%s: no rows", path)
	}
	return rows, nil
}

// WriteSweep writes rows as an indented JSON array, replacing path at once
// (a sweep rewrites it after every row, so that one that stops keeps what
// it measured).
func WriteSweep(path string, rows []SweepRow) error {
	raw, err := json.MarshalIndent(rows, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(path, append(raw, '\n'))
}

// PlotSweep draws one line per series of rows, metric y (one of
// SweepMetrics) over the swept value, into the PNG path. For OverTrain rows
// X is the training step, or with byGFLOP the training GFLOP. title ""
// makes one from the metric and the sweep.
func PlotSweep(path, title string, rows []SweepRow, y string, byGFLOP bool) error {
	if len(rows) == 0 {
		return errors.New("no sweep rows to plot")
	}
	var series []plot.Series
	index := map[string]int{}
	for k, r := range rows {
		v, err := r.Metric(y)
		if err != nil {
			return fmt.Errorf("row %d (series %q): %w", k+1, r.Series, err)
		}
		i, ok := index[r.Series]
		if !ok {
			i = len(series)
			index[r.Series] = i
			series = append(series, plot.Series{Name: r.Series})
		}
		x := r.X
		if r.Over == OverTrain {
			x = r.TrainSteps
			if byGFLOP {
				x = r.TrainGFLOP
			}
		}
		series[i].X = append(series[i].X, x)
		series[i].Y = append(series[i].Y, v)
	}
	over := rows[0].Over
	xlabel := map[string]string{OverCFG: "guidance scale", OverSteps: "solver steps (log scale)", OverTrain: "training steps"}[over]
	if over == OverTrain && byGFLOP {
		xlabel = "training GFLOP"
	}
	if title == "" {
		title = fmt.Sprintf("%s over %s (%s, n = %d)", y, over, rows[0].Data, rows[0].N)
	}
	logY := y == "fd" || y == "seconds_per_image"
	return plot.Write(path, title, xlabel, y, series, plot.Axes{LogX: over == OverSteps, LogY: logY})
}
