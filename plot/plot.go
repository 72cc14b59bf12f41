package plot

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"
	"strconv"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/latentlm/latentlm/internal/atomicfile"
)

// Plot image size and the plot area inside it (the rest holds the title,
// tick labels and axis labels).
const (
	plotW, plotH = 800, 500
	areaLeft     = 80
	areaRight    = plotW - 20
	areaTop      = 36
	areaBottom   = plotH - 56
)

// plotArea is the rectangle inside the axes where data is drawn.
var plotArea = image.Rect(areaLeft, areaTop, areaRight, areaBottom)

// seriesColors are the matplotlib "tab10" colours: distinct from each other
// and readable on white. Series beyond ten reuse them cyclically.
var seriesColors = []color.RGBA{
	{0x1f, 0x77, 0xb4, 0xff}, {0xff, 0x7f, 0x0e, 0xff}, {0x2c, 0xa0, 0x2c, 0xff},
	{0xd6, 0x27, 0x28, 0xff}, {0x94, 0x67, 0xbd, 0xff}, {0x8c, 0x56, 0x4b, 0xff},
	{0xe3, 0x77, 0xc2, 0xff}, {0x7f, 0x7f, 0x7f, 0xff}, {0xbc, 0xbd, 0x22, 0xff},
	{0x17, 0xbe, 0xcf, 0xff},
}

var (
	plotBG    = color.RGBA{0xff, 0xff, 0xff, 0xff}
	plotInk   = color.RGBA{0x20, 0x20, 0x20, 0xff}
	plotGrid  = color.RGBA{0xe4, 0xe4, 0xe4, 0xff}
	plotFrame = color.RGBA{0xa0, 0xa0, 0xa0, 0xff}
)

// Series is one line of a plot: Y[i] against X[i]. X and Y must have equal
// lengths.
type Series struct {
	Name string
	X, Y []float64
}

// Axes chooses the scale of each axis: linear, or logarithmic (base 10) for
// quantities spanning decades such as losses, solver steps or batch sizes.
type Axes struct {
	LogX, LogY bool
}

// Write writes an 800×500 PNG line plot of series to path with a title,
// axis labels, tick labels, a legend and one distinct colour per series.
//
// Points whose X or Y is NaN or ±Inf are skipped and break the line there,
// as are points with X ≤ 0 on a log X axis or Y ≤ 0 on a log Y axis (they
// have no logarithm), so a diverged run still plots what it has. It is an
// error if there are no series, if a series has len(X) ≠ len(Y), or if no
// series has any plottable point; then nothing is written.
func Write(path, title, xlabel, ylabel string, series []Series, axes Axes) error {
	img, err := Render(title, xlabel, ylabel, series, axes)
	if err != nil {
		return fmt.Errorf("plot: %s: %w", path, err)
	}
	if err := atomicfile.Write(path, func(w io.Writer) error { return png.Encode(w, img) }); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}

// Render draws the plot that Write would write and returns it as an image,
// for callers that embed it elsewhere or encode it themselves; its errors
// are Write's, without the path.
func Render(title, xlabel, ylabel string, series []Series, axes Axes) (*image.RGBA, error) {
	logX, logY := axes.LogX, axes.LogY
	if len(series) == 0 {
		return nil, errors.New("no series")
	}
	ok := func(x, y float64) bool {
		return isFinite(x) && isFinite(y) && (!logY || y > 0) && (!logX || x > 0)
	}
	ty := func(y float64) float64 {
		if logY {
			return math.Log10(y)
		}
		return y
	}
	tx := func(x float64) float64 {
		if logX {
			return math.Log10(x)
		}
		return x
	}
	x0, x1 := math.Inf(1), math.Inf(-1)
	y0, y1 := math.Inf(1), math.Inf(-1)
	for i, s := range series {
		if len(s.X) != len(s.Y) {
			return nil, fmt.Errorf("series %d (%q) has %d X values but %d Y values", i, s.Name, len(s.X), len(s.Y))
		}
		for j := range s.X {
			if ok(s.X[j], s.Y[j]) {
				x := tx(s.X[j])
				x0, x1 = min(x0, x), max(x1, x)
				y := ty(s.Y[j])
				y0, y1 = min(y0, y), max(y1, y)
			}
		}
	}
	if x0 > x1 {
		if logX || logY {
			return nil, errors.New("no finite positive points to plot on a log scale")
		}
		return nil, errors.New("no finite points to plot")
	}
	x0, x1 = widen(x0, x1)
	y0, y1 = widen(y0, y1)
	// A margin on every side keeps lines and lone points off the frame.
	// Here and below, float64(a*b) around a product that is then added
	// rounds it, which stops the compiler from fusing the two into one
	// multiply-add (as it may on arm64, ppc64le, s390x or GOAMD64=v3), so
	// that this code's arithmetic does not make the pixels machine-dependent.
	m := float64(0.04 * (y1 - y0))
	y0, y1 = y0-m, y1+m
	m = float64(0.02 * (x1 - x0))
	x0, x1 = x0-m, x1+m
	if !isFinite(x1-x0) || !isFinite(y1-y0) {
		return nil, errors.New("data range too large to plot")
	}

	img := image.NewRGBA(image.Rect(0, 0, plotW, plotH))
	draw.Draw(img, img.Bounds(), image.NewUniform(plotBG), image.Point{}, draw.Src)
	a := plotArea
	px := func(x float64) float64 { return float64(a.Min.X) + float64((x-x0)/(x1-x0)*float64(a.Dx()-1)) }
	py := func(y float64) float64 { return float64(a.Max.Y-1) - float64((y-y0)/(y1-y0)*float64(a.Dy()-1)) }

	// Grid lines and tick labels.
	xt := linearTicks(x0, x1, 8)
	if logX {
		xt = logTicks(x0, x1)
	}
	for _, t := range xt {
		x := int(math.Round(px(t.v)))
		vline(img, x, a.Min.Y, a.Max.Y, plotGrid)
		vline(img, x, a.Max.Y, a.Max.Y+4, plotInk)
		drawText(img, t.label, x-textWidth(t.label)/2, a.Max.Y+17, plotInk)
	}
	var yt []tick
	if logY {
		yt = logTicks(y0, y1)
	} else {
		yt = linearTicks(y0, y1, 6)
	}
	for _, t := range yt {
		y := int(math.Round(py(t.v)))
		hline(img, a.Min.X, a.Max.X, y, plotGrid)
		hline(img, a.Min.X-4, a.Min.X, y, plotInk)
		drawText(img, t.label, a.Min.X-7-textWidth(t.label), y+4, plotInk)
	}
	frame(img, a, plotFrame)

	// Data.
	clip := img.SubImage(a).(*image.RGBA)
	for i, s := range series {
		c := seriesColors[i%len(seriesColors)]
		havePrev := false
		var qx, qy float64
		for j := range s.X {
			if !ok(s.X[j], s.Y[j]) {
				havePrev = false
				continue
			}
			cx, cy := px(tx(s.X[j])), py(ty(s.Y[j]))
			if havePrev {
				thickLine(clip, qx, qy, cx, cy, c)
			} else if j+1 >= len(s.X) || !ok(s.X[j+1], s.Y[j+1]) {
				// An isolated point would otherwise be invisible.
				dot(clip, cx, cy, c)
			}
			qx, qy, havePrev = cx, cy, true
		}
	}

	// Text around the plot.
	drawText(img, title, (plotW-textWidth(title))/2, 24, plotInk)
	drawText(img, xlabel, a.Min.X+(a.Dx()-textWidth(xlabel))/2, plotH-12, plotInk)
	drawTextUp(img, ylabel, 10, a.Min.Y+(a.Dy()+textWidth(ylabel))/2, plotInk)
	legend(img, series)
	return img, nil
}

func isFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// widen turns a degenerate range (a single value) into a usable one.
func widen(lo, hi float64) (float64, float64) {
	if hi > lo {
		return lo, hi
	}
	d := 0.5
	if lo != 0 {
		d = float64(math.Abs(lo) * 0.1)
	}
	return lo - d, hi + d
}

type tick struct {
	v     float64 // position in plot coordinates (log10 of the value on a log axis)
	label string
}

// linearTicks returns about n "nice" ticks (steps of 1, 2 or 5 times a power
// of ten) inside [lo, hi].
func linearTicks(lo, hi float64, n int) []tick {
	step := niceStep((hi - lo) / float64(n-1))
	var ts []tick
	// The iteration cap guards against ranges so narrow relative to their
	// magnitude that k++ stops changing k.
	for k, i := math.Ceil(lo/step), 0; k*step <= hi+float64(step*1e-9) && i < 4*n; k, i = k+1, i+1 {
		v := k * step
		if math.Abs(v) < step*1e-9 {
			v = 0
		}
		ts = append(ts, tick{v, strconv.FormatFloat(v, 'g', 6, 64)})
	}
	return ts
}

func niceStep(raw float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	switch f := raw / p; {
	case f <= 1:
		return p
	case f <= 2:
		return 2 * p
	case f <= 5:
		return 5 * p
	}
	return 10 * p
}

// logTicks returns ticks for a log axis spanning log10 values [lo, hi]: the
// powers of ten inside it, thinned to at most eight, or, when fewer than two
// powers of ten fall inside, nice linear values mapped onto the log axis.
func logTicks(lo, hi float64) []tick {
	k0, k1 := math.Ceil(lo), math.Floor(hi)
	if k1-k0 >= 1 {
		every := math.Ceil((k1 - k0 + 1) / 8)
		var ts []tick
		for k := k0; k <= k1; k += every {
			ts = append(ts, tick{k, strconv.FormatFloat(math.Pow(10, k), 'g', 6, 64)})
		}
		return ts
	}
	var ts []tick
	for _, t := range linearTicks(math.Pow(10, lo), math.Pow(10, hi), 5) {
		if t.v > 0 {
			ts = append(ts, tick{math.Log10(t.v), t.label})
		}
	}
	return ts
}

func legend(img *image.RGBA, series []Series) {
	const lineLen, rowH = 22, 16
	longest := 0
	names := make([]string, len(series))
	for i, s := range series {
		names[i] = s.Name
		if names[i] == "" {
			names[i] = fmt.Sprintf("series %d", i+1)
		}
		longest = max(longest, textWidth(names[i]))
	}
	w := 8 + lineLen + 6 + longest + 8
	h := 6 + rowH*len(series) + 2
	r := legendRect(img, w, h)
	draw.Draw(img, r, image.NewUniform(plotBG), image.Point{}, draw.Src)
	frame(img, r, plotFrame)
	for i, name := range names {
		c := seriesColors[i%len(seriesColors)]
		y := r.Min.Y + 6 + i*rowH + rowH/2
		thickLine(img, float64(r.Min.X+8), float64(y), float64(r.Min.X+8+lineLen), float64(y), c)
		drawText(img, name, r.Min.X+8+lineLen+6, y+4, plotInk)
	}
}

// legendRect picks the corner of the plot area where a w×h legend hides the
// fewest data pixels, preferring top right, then top left, bottom right and
// bottom left on ties, so that a legend never sits on a curve that a free
// corner would have left visible.
func legendRect(img *image.RGBA, w, h int) image.Rectangle {
	a := plotArea.Inset(10)
	corners := []image.Rectangle{
		image.Rect(a.Max.X-w, a.Min.Y, a.Max.X, a.Min.Y+h),
		image.Rect(a.Min.X, a.Min.Y, a.Min.X+w, a.Min.Y+h),
		image.Rect(a.Max.X-w, a.Max.Y-h, a.Max.X, a.Max.Y),
		image.Rect(a.Min.X, a.Max.Y-h, a.Min.X+w, a.Max.Y),
	}
	best, bestHidden := corners[0], -1
	for _, r := range corners {
		hidden := 0
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				if c := img.RGBAAt(x, y); c != plotBG && c != plotGrid {
					hidden++
				}
			}
		}
		if bestHidden < 0 || hidden < bestHidden {
			best, bestHidden = r, hidden
		}
	}
	return best
}

func textWidth(s string) int {
	return font.MeasureString(basicfont.Face7x13, s).Round()
}

// drawText draws s with its left end at x and its baseline at y.
func drawText(dst draw.Image, s string, x, y int, c color.Color) {
	d := font.Drawer{Dst: dst, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

// drawTextUp draws s reading bottom to top (rotated 90° anticlockwise),
// starting at (x, y) with x the left edge of the glyphs' top side.
func drawTextUp(dst *image.RGBA, s string, x, y int, c color.Color) {
	f := basicfont.Face7x13
	tw, th := textWidth(s), f.Ascent+f.Descent
	if tw == 0 {
		return
	}
	tmp := image.NewAlpha(image.Rect(0, 0, tw, th))
	drawText(tmp, s, 0, f.Ascent, color.Opaque)
	for ty := range th {
		for tx := range tw {
			if tmp.AlphaAt(tx, ty).A >= 0x80 {
				dst.Set(x+ty, y-tx, c)
			}
		}
	}
}

func hline(img *image.RGBA, x0, x1, y int, c color.RGBA) {
	for x := x0; x < x1; x++ {
		img.SetRGBA(x, y, c)
	}
}

func vline(img *image.RGBA, x, y0, y1 int, c color.RGBA) {
	for y := y0; y < y1; y++ {
		img.SetRGBA(x, y, c)
	}
}

func frame(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	hline(img, r.Min.X, r.Max.X, r.Min.Y, c)
	hline(img, r.Min.X, r.Max.X, r.Max.Y-1, c)
	vline(img, r.Min.X, r.Min.Y, r.Max.Y, c)
	vline(img, r.Max.X-1, r.Min.Y, r.Max.Y, c)
}

// thickLine draws a 2-pixel-wide line; SetRGBA ignores points outside img's
// bounds, which clips the line to a SubImage.
func thickLine(img *image.RGBA, x0, y0, x1, y1 float64, c color.RGBA) {
	n := int(math.Ceil(max(math.Abs(x1-x0), math.Abs(y1-y0))))
	for i := 0; i <= n; i++ {
		t := 0.0
		if n > 0 {
			t = float64(i) / float64(n)
		}
		dot(img, x0+float64(t*(x1-x0)), y0+float64(t*(y1-y0)), c)
	}
}

func dot(img *image.RGBA, x, y float64, c color.RGBA) {
	// A filled disc of radius 4: a lone point must be findable at a glance.
	ix, iy := int(math.Round(x)), int(math.Round(y))
	for dy := -4; dy <= 4; dy++ {
		for dx := -4; dx <= 4; dx++ {
			if dx*dx+dy*dy <= 16 {
				img.SetRGBA(ix+dx, iy+dy, c)
			}
		}
	}
}

// Panel is one plot of a figure of several (WritePanels): what Render
// takes.
type Panel struct {
	Title, XLabel, YLabel string
	Series                []Series
	Axes                  Axes
}

// panelTitleH is the height of a figure's title band above its panels.
const panelTitleH = 36

// WritePanels writes the panels as one PNG figure to path: cols panels of
// 800×500 a row (the last row may be short), under title (none if "").
// Each panel is drawn as Render draws it, with its own axes and legend;
// an error of any panel, or no panel, writes nothing.
func WritePanels(path, title string, panels []Panel, cols int) error {
	img, err := RenderPanels(title, panels, cols)
	if err != nil {
		return fmt.Errorf("plot: %s: %w", path, err)
	}
	if err := atomicfile.Write(path, func(w io.Writer) error { return png.Encode(w, img) }); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}

// RenderPanels draws the figure WritePanels would write.
func RenderPanels(title string, panels []Panel, cols int) (*image.RGBA, error) {
	if len(panels) == 0 {
		return nil, errors.New("no panels")
	}
	if cols < 1 {
		return nil, fmt.Errorf("%d columns: want at least 1", cols)
	}
	cols = min(cols, len(panels))
	rows := (len(panels) + cols - 1) / cols
	top := 0
	if title != "" {
		top = panelTitleH
	}
	img := image.NewRGBA(image.Rect(0, 0, cols*plotW, top+rows*plotH))
	draw.Draw(img, img.Bounds(), image.NewUniform(plotBG), image.Point{}, draw.Src)
	for i, p := range panels {
		sub, err := Render(p.Title, p.XLabel, p.YLabel, p.Series, p.Axes)
		if err != nil {
			return nil, fmt.Errorf("panel %d (%q): %w", i+1, p.Title, err)
		}
		at := image.Pt((i%cols)*plotW, top+(i/cols)*plotH)
		draw.Draw(img, sub.Bounds().Add(at), sub, image.Point{}, draw.Src)
	}
	if title != "" {
		drawText(img, title, (img.Bounds().Dx()-textWidth(title))/2, 24, plotInk)
	}
	return img, nil
}
