package evaluate

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/latentlm/latentlm/internal/atomicfile"
	"github.com/latentlm/latentlm/internal/guard"
	"github.com/latentlm/latentlm/internal/jsonerr"
	"github.com/latentlm/latentlm/plot"
)

// MultimodalSweepRow is one snapshot of a multimodal training run (any
// arch: LatentLM, the VQ-MLLM or Transfusion) scored on the canvas tasks,
// a point of the paper's Figure 8. Its JSON names are read by the scripts
// and documents of the project.
type MultimodalSweepRow struct {
	// Series is the line of the plot the row belongs to.
	Series string `json:"series"`
	// Model is the snapshot's folder.
	Model string `json:"model"`
	// TrainSteps, TrainGFLOP and TrainTokens are the training progress of
	// the snapshot (TrainTokens: the items of the sequences trained on).
	TrainSteps  float64 `json:"train_steps"`
	TrainGFLOP  float64 `json:"train_gflop"`
	TrainTokens float64 `json:"train_tokens,omitempty"`
	// Reports are the scores by task (text, t2i, i2t, vqa), as eval --task
	// --json prints them.
	Reports map[string]MultimodalReport `json:"reports"`
	// Settings are the scoring settings (test canvases, images per scene,
	// judge, sampling), so that a resumed sweep reuses only rows scored as
	// it would score them.
	Settings string `json:"settings,omitempty"`
	// Seconds is the time the snapshot's scoring took.
	Seconds float64 `json:"seconds"`
}

// MultimodalSweepMetrics are the values MultimodalSweepRow.Metric reads,
// in the order of the panels of PlotMultimodalSweep.
var MultimodalSweepMetrics = []string{
	"bits_per_byte", "t2i_seen", "t2i_held_out", "t2i_layout", "fd",
	"i2t_seen", "i2t_held_out", "i2t_layout", "vqa_seen", "vqa_held_out",
}

// multimodalMetric says where a metric of MultimodalSweepMetrics lies: its
// task's report, and its reader.
var multimodalMetric = map[string]struct {
	task  string
	label string
	read  func(MultimodalReport) float64
}{
	"bits_per_byte": {"text", "text bits per byte (lower is better)", func(r MultimodalReport) float64 { return r.BitsPerByte }},
	"t2i_seen":      {"t2i", "text-to-image faithfulness, seen scenes", func(r MultimodalReport) float64 { return r.Seen.Rate }},
	"t2i_held_out":  {"t2i", "text-to-image faithfulness, held-out scenes", func(r MultimodalReport) float64 { return r.HeldOut.Rate }},
	"t2i_layout":    {"t2i", "text-to-image layout right", func(r MultimodalReport) float64 { return r.Layout.Rate }},
	"fd":            {"t2i", "text-to-image FD (judge features; lower is better)", func(r MultimodalReport) float64 { return r.FD }},
	"i2t_seen":      {"i2t", "caption exact match, seen scenes", func(r MultimodalReport) float64 { return r.Seen.Rate }},
	"i2t_held_out":  {"i2t", "caption exact match, held-out scenes", func(r MultimodalReport) float64 { return r.HeldOut.Rate }},
	"i2t_layout":    {"i2t", "caption layout right", func(r MultimodalReport) float64 { return r.Layout.Rate }},
	"vqa_seen":      {"vqa", "VQA accuracy, seen scenes", func(r MultimodalReport) float64 { return r.Seen.Rate }},
	"vqa_held_out":  {"vqa", "VQA accuracy, held-out scenes", func(r MultimodalReport) float64 { return r.HeldOut.Rate }},
}

// Metric reads one of MultimodalSweepMetrics; ok is false when the row's
// sweep did not score the metric's task.
func (r MultimodalSweepRow) Metric(name string) (v float64, ok bool, err error) {
	m, known := multimodalMetric[name]
	if !known {
		return 0, false, fmt.Errorf("unknown metric %q: want one of %s", name, strings.Join(MultimodalSweepMetrics, ", "))
	}
	rep, ok := r.Reports[m.task]
	if !ok {
		return 0, false, nil
	}
	return m.read(rep), true, nil
}

// The X axes of a multimodal sweep plot.
const (
	XSteps  = "step"
	XGFLOP  = "gflop"
	XTokens = "tokens"
)

// x is the row's training progress on the axis named x.
func (r MultimodalSweepRow) x(axis string) float64 {
	switch axis {
	case XGFLOP:
		return r.TrainGFLOP
	case XTokens:
		return r.TrainTokens
	}
	return r.TrainSteps
}

// ReadMultimodalSweep reads the rows WriteMultimodalSweep wrote.
func ReadMultimodalSweep(path string) ([]MultimodalSweepRow, error) {
	raw, err := guard.ReadFile(path, maxSweepBytes)
	if err != nil {
		return nil, err
	}
	var rows []MultimodalSweepRow
	if err := json.Unmarshal(raw, &rows); err != nil {
		return nil, fmt.Errorf("%s: invalid multimodal sweep JSON: %v", path, jsonerr.Describe(err))
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%s: no rows", path)
	}
	for i, r := range rows {
		if r.Reports == nil {
			return nil, fmt.Errorf("%s: row %d has no reports (a class sweep? replot it without --task multimodal)", path, i+1)
		}
	}
	return rows, nil
}

// WriteMultimodalSweep writes rows as an indented JSON array, replacing
// path at once (a sweep rewrites it after every row).
func WriteMultimodalSweep(path string, rows []MultimodalSweepRow) error {
	raw, err := json.MarshalIndent(rows, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(path, append(raw, '\n'))
}

// PlotMultimodalSweep draws one panel per metric (nil: every metric of
// MultimodalSweepMetrics that some row scored), one line per series in
// each, against the training progress on axis x (XSteps, XGFLOP or
// XTokens), into the PNG path: the paper's Figure 8 at small scale.
func PlotMultimodalSweep(path, title string, rows []MultimodalSweepRow, metrics []string, x string) error {
	if len(rows) == 0 {
		return errors.New("no sweep rows to plot")
	}
	xlabel := map[string]string{XSteps: "training steps", XGFLOP: "training GFLOP", XTokens: "training tokens"}[x]
	if xlabel == "" {
		return fmt.Errorf("x axis %q: want %s, %s or %s", x, XSteps, XGFLOP, XTokens)
	}
	if metrics == nil {
		for _, name := range MultimodalSweepMetrics {
			for _, r := range rows {
				if _, ok, _ := r.Metric(name); ok {
					metrics = append(metrics, name)
					break
				}
			}
		}
	}
	if len(metrics) == 0 {
		return errors.New("the rows score no task")
	}
	var panels []plot.Panel
	for _, name := range metrics {
		var series []plot.Series
		index := map[string]int{}
		for _, r := range rows {
			v, ok, err := r.Metric(name)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			i, seen := index[r.Series]
			if !seen {
				i = len(series)
				index[r.Series] = i
				series = append(series, plot.Series{Name: r.Series})
			}
			series[i].X = append(series[i].X, r.x(x))
			series[i].Y = append(series[i].Y, v)
		}
		if len(series) == 0 {
			return fmt.Errorf("no row scores %s", name)
		}
		for i := range series {
			sortByX(&series[i])
		}
		panels = append(panels, plot.Panel{Title: multimodalMetric[name].label, XLabel: xlabel, YLabel: name, Series: series})
	}
	return plot.WritePanels(path, title, panels, min(len(panels), 3))
}

// sortByX orders a series' points by X (rows of several runs may be
// interleaved in any order).
func sortByX(s *plot.Series) {
	idx := make([]int, len(s.X))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case s.X[a] < s.X[b]:
			return -1
		case s.X[a] > s.X[b]:
			return 1
		}
		return 0
	})
	x, y := make([]float64, len(idx)), make([]float64, len(idx))
	for i, j := range idx {
		x[i], y[i] = s.X[j], s.Y[j]
	}
	s.X, s.Y = x, y
}
