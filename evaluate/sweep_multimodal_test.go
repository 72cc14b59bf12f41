package evaluate

import (
	"path/filepath"
	"testing"

	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/plot"
)

// multimodalRows are two runs' snapshots, interleaved and out of order,
// one of them without t2i.
func multimodalRows() []MultimodalSweepRow {
	row := func(series string, step float64, bpb, caption float64, t2i bool) MultimodalSweepRow {
		r := MultimodalSweepRow{Series: series, Model: series + "/step", TrainSteps: step, TrainGFLOP: 10 * step, TrainTokens: 100 * step,
			Reports: map[string]MultimodalReport{
				"text": {Task: "text", BitsPerByte: bpb},
				"i2t":  {Task: "i2t", Seen: Accuracy{N: 10, Correct: int(10 * caption), Rate: caption}, HeldOut: Accuracy{Rate: caption / 2}, Layout: Accuracy{Rate: 1}},
			}}
		if t2i {
			r.Reports["t2i"] = MultimodalReport{Task: "t2i", Seen: Accuracy{Rate: caption / 4}, FD: 100 / step}
		}
		return r
	}
	return []MultimodalSweepRow{
		row("LatentLM", 200, 2.5, 0.4, true), row("VQ", 100, 3.1, 0.1, false), row("LatentLM", 100, 3.0, 0.2, true), row("VQ", 200, 2.6, 0.3, false),
	}
}

func TestMultimodalSweepMetric(t *testing.T) {
	r := multimodalRows()[0]
	for name, want := range map[string]float64{"bits_per_byte": 2.5, "i2t_seen": 0.4, "i2t_held_out": 0.2, "i2t_layout": 1, "t2i_seen": 0.1, "fd": 0.5} {
		if v, ok, err := r.Metric(name); err != nil || !ok || v != want {
			t.Errorf("Metric(%s) = %g, %v, %v; want %g", name, v, ok, err, want)
		}
	}
	if _, ok, err := multimodalRows()[1].Metric("fd"); ok || err != nil {
		t.Errorf("a row without t2i read fd: ok %v, %v", ok, err)
	}
	if _, _, err := r.Metric("accuracy"); err == nil {
		t.Error("a class sweep's metric read from a multimodal row")
	}
	for _, name := range MultimodalSweepMetrics {
		if _, known := multimodalMetric[name]; !known {
			t.Errorf("metric %s has no reader", name)
		}
	}
	for axis, want := range map[string]float64{XSteps: 200, XGFLOP: 2000, XTokens: 20000} {
		if got := r.x(axis); got != want {
			t.Errorf("x(%s) = %g, want %g", axis, got, want)
		}
	}
}

// The figure has one panel per metric some row scored (3 a row), its
// JSON reads back, and what cannot be drawn is refused.
func TestPlotMultimodalSweep(t *testing.T) {
	dir := t.TempDir()
	rows := multimodalRows()
	path := filepath.Join(dir, "sweep.json")
	if err := WriteMultimodalSweep(path, rows); err != nil {
		t.Fatal(err)
	}
	back, err := ReadMultimodalSweep(path)
	if err != nil || len(back) != len(rows) || back[3].Reports["i2t"].Seen.Rate != 0.3 {
		t.Fatalf("read back %d rows (%v)", len(back), err)
	}
	fig := filepath.Join(dir, "fig.png")
	// bits_per_byte, t2i_seen, t2i_held_out, t2i_layout, fd, i2t_seen,
	// i2t_held_out, i2t_layout: 8 panels, 3 rows of 3.
	if err := PlotMultimodalSweep(fig, "figure 8", back, nil, XTokens); err != nil {
		t.Fatal(err)
	}
	if got := testutil.DecodePNG(t, fig).Bounds().Size(); got.X != 3*800 || got.Y != 36+3*500 {
		t.Errorf("figure %v, want 3×3 panels under a title", got)
	}
	if err := PlotMultimodalSweep(fig, "", back, []string{"vqa_seen"}, XSteps); err == nil {
		t.Error("a metric no row scored was plotted")
	}
	if err := PlotMultimodalSweep(fig, "", back, []string{"bits_per_byte"}, "epochs"); err == nil {
		t.Error("an unknown x axis was plotted")
	}
	class := filepath.Join(dir, "class.json")
	if err := WriteSweep(class, []SweepRow{{Series: "a", Over: OverTrain}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadMultimodalSweep(class); err == nil {
		t.Error("a class sweep read as a multimodal one")
	}
}

func TestSortByX(t *testing.T) {
	rows := multimodalRows()
	s := plotSeriesOf(rows, "LatentLM")
	sortByX(&s)
	if s.X[0] != 100 || s.X[1] != 200 || s.Y[0] != 3.0 || s.Y[1] != 2.5 {
		t.Errorf("sorted %v %v", s.X, s.Y)
	}
}

// plotSeriesOf is the bits-per-byte series of one run's rows, in row order.
func plotSeriesOf(rows []MultimodalSweepRow, series string) plot.Series {
	var s plot.Series
	for _, r := range rows {
		if r.Series == series {
			s.X = append(s.X, r.TrainSteps)
			s.Y = append(s.Y, r.Reports["text"].BitsPerByte)
		}
	}
	return s
}
