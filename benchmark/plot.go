package benchmark

import (
	"errors"
	"fmt"

	"github.com/latentlm/latentlm/plot"
)

// ThroughputSeries is the data of the sampling-throughput plot: images/s
// (ItemsPerS) against batch size, one series per architecture and solver
// step count, in the order they first appear in results, with the plot's
// title, which names the backend, CPU count and CPU features of the first
// result.
func ThroughputSeries(results []Result) (title string, series []plot.Series) {
	index := map[string]int{}
	for _, r := range results {
		name := fmt.Sprintf("%s (%.2fM params), %d steps", r.Arch, float64(r.Params)/1e6, r.SolverSteps)
		i, ok := index[name]
		if !ok {
			i = len(series)
			index[name] = i
			series = append(series, plot.Series{Name: name})
		}
		series[i].X = append(series[i].X, float64(r.Batch))
		series[i].Y = append(series[i].Y, r.ItemsPerS)
	}
	if len(results) > 0 {
		r := results[0]
		title = fmt.Sprintf("sampling throughput with CFG (%s backend, %d CPUs: %s)", r.Backend, r.CPUs, r.CPUFeatures)
	}
	return title, series
}

// PlotThroughput draws ThroughputSeries of Sample results as a log-log PNG
// at out.
func PlotThroughput(out string, results []Result) error {
	if len(results) == 0 {
		return errors.New("benchmark: no results to plot")
	}
	title, series := ThroughputSeries(results)
	return plot.Write(out, title, "batch size (log scale)", "images/s", series, plot.Axes{LogX: true, LogY: true})
}
