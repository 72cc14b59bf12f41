package plot_test

import (
	"errors"
	"fmt"
	"image/png"
	"io/fs"
	"log"
	"math"
	"os"
	"path/filepath"

	"github.com/latentlm/latentlm/plot"
)

// Plot the training loss of two runs on a logarithmic Y axis, where losses
// that fall by decades are easiest to compare. The second run diverged: its
// NaN point is skipped and breaks its line instead of failing the plot.
func ExampleWrite() {
	dir, err := os.MkdirTemp("", "plot-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "loss.png")

	steps := []float64{100, 200, 300, 400, 500}
	series := []plot.Series{
		{Name: "lr 1e-3", X: steps, Y: []float64{1.2, 0.6, 0.31, 0.2, 0.15}},
		{Name: "lr 1e-2", X: steps, Y: []float64{0.9, 0.4, math.NaN(), 3.5, 7}},
	}
	if err := plot.Write(path, "Training loss", "step", "loss", series, plot.Axes{LogY: true}); err != nil {
		log.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d×%d PNG\n", cfg.Width, cfg.Height)

	// A log axis cannot show a loss of zero: with no plottable point left,
	// Write fails and writes nothing.
	bad := filepath.Join(dir, "bad.png")
	err = plot.Write(bad, "", "step", "loss", []plot.Series{{X: []float64{1}, Y: []float64{0}}}, plot.Axes{LogY: true})
	fmt.Println(err != nil)
	_, err = os.Stat(bad)
	fmt.Println("file written:", !errors.Is(err, fs.ErrNotExist))
	// Output:
	// 800×500 PNG
	// true
	// file written: false
}

// Render returns the plot as an image instead of writing it, for a caller
// that embeds it in a larger picture or serves it over HTTP.
func ExampleRender() {
	img, err := plot.Render("Throughput", "batch size", "images/s", []plot.Series{
		{Name: "cpu", X: []float64{1, 2, 4, 8}, Y: []float64{40, 75, 130, 210}},
	}, plot.Axes{LogX: true})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(img.Bounds())
	// Output: (0,0)-(800,500)
}

// Put three plots side by side in rows of two under one title, to compare
// metrics of one sweep at a glance. Each panel is 800×500 pixels; the title
// adds a strip of 36 pixels above them.
func ExampleRenderPanels() {
	x := []float64{1, 2, 3}
	panels := []plot.Panel{
		{Title: "loss", XLabel: "epoch", YLabel: "loss", Series: []plot.Series{{Name: "train", X: x, Y: []float64{3, 2, 1.5}}}},
		{Title: "FID", XLabel: "epoch", YLabel: "FID", Series: []plot.Series{{Name: "eval", X: x, Y: []float64{90, 40, 25}}}},
		{Title: "accuracy", XLabel: "epoch", YLabel: "%", Series: []plot.Series{{Name: "judge", X: x, Y: []float64{60, 85, 92}}}},
	}
	img, err := plot.RenderPanels("sweep", panels, 2)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(img.Bounds().Dx(), "×", img.Bounds().Dy())
	// Output: 1600 × 1036
}
