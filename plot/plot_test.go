package plot

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latentlm/latentlm/internal/testutil"
)

// lossSeries are two decaying curves with NaN, +Inf and -Inf points.
func lossSeries() []Series {
	var loss, acc Series
	loss.Name, acc.Name = "train loss", "val loss"
	for i := range 200 {
		x := float64(i * 50)
		loss.X = append(loss.X, x)
		loss.Y = append(loss.Y, 2*math.Exp(-float64(i)/40)+0.1)
		acc.X = append(acc.X, x)
		acc.Y = append(acc.Y, 2.2*math.Exp(-float64(i)/50)+0.15)
	}
	loss.Y[10], loss.Y[11] = math.NaN(), math.Inf(1) // skipped
	acc.X[50] = math.Inf(-1)
	return []Series{loss, acc}
}

// stepsSeries is an FD-over-solver-steps sweep starting at 0 steps, which a
// log X axis skips.
func stepsSeries() []Series {
	return []Series{{Name: "fd", X: []float64{0, 5, 10, 20, 50, 250, 1000}, Y: []float64{9, 80, 60, 50, 48, 47, 46}}}
}

func TestInvalidWritesCreateNothing(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "out.png")
	nan, inf := math.NaN(), math.Inf(1)
	cases := map[string]func() error{
		"no series": func() error { return Write(target, "t", "x", "y", nil, Axes{}) },
		"X/Y lengths": func() error {
			return Write(target, "t", "x", "y", []Series{{Name: "a", X: []float64{1, 2}, Y: []float64{1}}}, Axes{})
		},
		"no finite points": func() error {
			return Write(target, "t", "x", "y", []Series{{X: []float64{1, nan, 3}, Y: []float64{nan, 2, inf}}, {}}, Axes{})
		},
		"log Y no positive points": func() error {
			return Write(target, "t", "x", "y", []Series{{X: []float64{1, 2}, Y: []float64{0, -3}}}, Axes{LogY: true})
		},
		"log X no positive points": func() error {
			return Write(target, "t", "x", "y", []Series{{X: []float64{0, -1}, Y: []float64{1, 2}}}, Axes{LogX: true})
		},
	}
	for name, call := range cases {
		err := call()
		if err == nil {
			t.Errorf("%s: no error", name)
		} else if !strings.Contains(err.Error(), target) {
			t.Errorf("%s: error %q does not name %s", name, err, target)
		}
		if names := testutil.DirNames(t, dir); len(names) != 0 {
			t.Fatalf("%s: left %v behind", name, names)
		}
	}

	// An invalid call must not replace an existing plot either.
	if err := Write(target, "t", "x", "y", stepsSeries(), Axes{}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(target)
	if err := Write(target, "t", "x", "y", nil, Axes{}); err == nil {
		t.Fatal("no series: no error")
	}
	if after, _ := os.ReadFile(target); !bytes.Equal(after, before) {
		t.Error("failed write changed the existing file")
	}
}

func TestWriteIntoMissingFolderFails(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "no-such-dir", "out.png")
	err := Write(target, "t", "x", "y", []Series{{X: []float64{1, 2}, Y: []float64{1, 2}}}, Axes{})
	if err == nil || !strings.Contains(err.Error(), target) {
		t.Errorf("error %v, want one naming %s", err, target)
	}
	if names := testutil.DirNames(t, dir); len(names) != 0 {
		t.Errorf("left %v behind", names)
	}
}

// plotCheck decodes a plot and checks its size and that the series colours
// were drawn inside the plot area.
func plotCheck(t *testing.T, path string, nSeries int) {
	t.Helper()
	img := testutil.DecodePNG(t, path)
	if got := img.Bounds().Size(); got != image.Pt(800, 500) {
		t.Fatalf("plot size %v, want 800x500", got)
	}
	inner := plotArea.Inset(2)
	nonBG := 0
	seen := map[color.RGBA]bool{}
	for y := inner.Min.Y; y < inner.Max.Y; y++ {
		for x := inner.Min.X; x < inner.Max.X; x++ {
			c := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
			if c != plotBG && c != plotGrid {
				nonBG++
			}
			seen[c] = true
		}
	}
	if nonBG < 500 {
		t.Errorf("only %d non-background pixels in the plot area", nonBG)
	}
	for i := range nSeries {
		if !seen[seriesColors[i]] {
			t.Errorf("series %d colour %v not drawn", i, seriesColors[i])
		}
	}
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "loss.png")
	if err := Write(path, "Loss", "step", "loss", lossSeries(), Axes{}); err != nil {
		t.Fatal(err)
	}
	plotCheck(t, path, 2)

	// Log scale across several decades, with non-positive values skipped.
	logS := Series{Name: "kl"}
	for i := range 100 {
		logS.X = append(logS.X, float64(i))
		logS.Y = append(logS.Y, math.Pow(10, 2-float64(i)/20))
	}
	logS.Y[5], logS.Y[6] = 0, -1
	if err := Write(path, "KL", "epoch", "nats", []Series{logS}, Axes{LogY: true}); err != nil {
		t.Fatal(err)
	}
	plotCheck(t, path, 1)

	// Log X (solver steps), with x ≤ 0 skipped.
	if err := Write(path, "FD", "steps", "fd", stepsSeries(), Axes{LogX: true, LogY: true}); err != nil {
		t.Fatal(err)
	}
	plotCheck(t, path, 1)
	if names := testutil.DirNames(t, dir); len(names) != 1 {
		t.Errorf("folder holds %v, want only loss.png", names)
	}
}

// Degenerate but valid inputs must still plot (and not panic or hang).
func TestWriteDegenerate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.png")
	cases := map[string][]Series{
		"single point":      {{X: []float64{3}, Y: []float64{7}}},
		"constant":          {{X: []float64{0, 1, 2}, Y: []float64{5, 5, 5}}},
		"tiny range":        {{X: []float64{1e17, 1e17 + 16}, Y: []float64{1, 1 + 1e-15}}},
		"narrow log range":  {{X: []float64{0, 1, 2}, Y: []float64{2, 3, 4}}},
		"many series":       make([]Series, 12),
		"one empty, one ok": {{}, {X: []float64{0, 1}, Y: []float64{0, 1}}},
	}
	for i := range cases["many series"] {
		cases["many series"][i] = Series{X: []float64{0, 1}, Y: []float64{float64(i), float64(i + 1)}}
	}
	for name, s := range cases {
		for _, logY := range []bool{false, true} {
			if err := Write(path, name, "x", "y", s, Axes{LogY: logY}); err != nil {
				t.Errorf("%s (log %v): %v", name, logY, err)
				continue
			}
			if got := testutil.DecodePNG(t, path).Bounds().Size(); got != image.Pt(800, 500) {
				t.Errorf("%s: size %v", name, got)
			}
		}
	}
}

// The legend goes to the corner that hides the least data: top right when
// all corners are free, elsewhere when a curve runs through the top right.
func TestLegendAvoidsData(t *testing.T) {
	const w, h = 120, 40
	img := image.NewRGBA(image.Rect(0, 0, plotW, plotH))
	draw.Draw(img, img.Bounds(), image.NewUniform(plotBG), image.Point{}, draw.Src)
	if r := legendRect(img, w, h); r.Max.X != plotArea.Max.X-10 || r.Min.Y != plotArea.Min.Y+10 {
		t.Errorf("free plot: legend at %v, want the top right corner", r)
	}
	draw.Draw(img, image.Rect(plotArea.Max.X-60, plotArea.Min.Y, plotArea.Max.X, plotArea.Min.Y+60), image.NewUniform(seriesColors[0]), image.Point{}, draw.Src)
	if r := legendRect(img, w, h); r.Min.X != plotArea.Min.X+10 || r.Min.Y != plotArea.Min.Y+10 {
		t.Errorf("data in the top right: legend at %v, want the top left corner", r)
	}

	// End to end: a rising line ends in the top right corner, so the
	// legend's frame is drawn in the top left one.
	rise := Series{Name: "a long series name", X: []float64{0, 1}, Y: []float64{0, 1}}
	path := filepath.Join(t.TempDir(), "rise.png")
	if err := Write(path, "rise", "x", "y", []Series{rise}, Axes{}); err != nil {
		t.Fatal(err)
	}
	corner := testutil.DecodePNG(t, path).At(plotArea.Min.X+10, plotArea.Min.Y+10)
	if color.RGBAModel.Convert(corner) != color.Color(plotFrame) {
		t.Errorf("pixel at the top left legend corner is %v, want the legend frame %v", corner, plotFrame)
	}
}

// A point whose neighbours are not plottable is drawn as a filled disc of
// radius 4 rather than left invisible.
func TestLonePointIsVisible(t *testing.T) {
	// X spans [1, 3] and Y [1, 3], widened by 2% and 4% on each side.
	lone := Series{X: []float64{1, 2, 3}, Y: []float64{1, math.NaN(), 3}}
	img, err := Render("", "", "", []Series{lone}, Axes{})
	if err != nil {
		t.Fatal(err)
	}
	x0, x1, y0, y1 := 0.96, 3.04, 0.92, 3.08
	for _, v := range []float64{1, 3} {
		cx := int(math.Round(float64(plotArea.Min.X) + (v-x0)/(x1-x0)*float64(plotArea.Dx()-1)))
		cy := int(math.Round(float64(plotArea.Max.Y-1) - (v-y0)/(y1-y0)*float64(plotArea.Dy()-1)))
		for dy := -4; dy <= 4; dy++ {
			for dx := -4; dx <= 4; dx++ {
				if c := img.RGBAAt(cx+dx, cy+dy); dx*dx+dy*dy <= 16 && c != seriesColors[0] {
					t.Fatalf("point (%v, %v): pixel %+d%+d from its centre (%d, %d) is %v, want the series colour", v, v, dx, dy, cx, cy, c)
				}
			}
		}
	}
}

// Plots are reproducible to the pixel: the hashes pin the pixels this code
// has drawn since it lived in package imageio (where the plots under
// docs/results were made), so any change to the rendering shows here and
// is a deliberate decision. Write's bytes are png.Encode of Render's image.
func TestRenderIsReproducible(t *testing.T) {
	many := make([]Series, 12)
	for i := range many {
		many[i] = Series{Name: fmt.Sprint("s", i), X: []float64{0, 1}, Y: []float64{float64(i), float64(i + 1)}}
	}
	lone := Series{Name: "lone", X: []float64{1, 2, 3, 4, 5, 6}, Y: []float64{1, math.NaN(), 3, math.NaN(), 5, 4}}
	cases := []struct {
		name   string
		series []Series
		axes   Axes
		sha256 string
	}{
		{"loss", lossSeries(), Axes{}, "800419e869879fb8780ee81f039fc0883c9695e692125af821b4da60cad5d287"},
		{"loss", lossSeries(), Axes{LogY: true}, "df2b2d9030363c014ee185f0ef5f3ba19c10129d0109f92d99e61bafa62cacf9"},
		{"steps", stepsSeries(), Axes{LogX: true}, "11dbfb7deb70c28d737de8181d15b837cc9735500fe226d64eaca7065e3aa6e8"},
		{"steps", stepsSeries(), Axes{LogX: true, LogY: true}, "389f37d2a5b9fa469f4248600677813ae1533c12649b3b606f531d547397445f"},
		{"lone", []Series{lone}, Axes{}, "855ee90ab9228a08b9498af3d18905c2bf3cb67c08538f28d5dd2d6f4d618946"},
		{"many", many, Axes{}, "b5a7bba10b5b52583b5eed5164f131bd3746370afae49da47836afabe8824ee5"},
		{"rise", []Series{{Name: "a long series name", X: []float64{0, 1}, Y: []float64{0, 1}}}, Axes{}, "ab7a6417e5ed328beb21d4db17f801a54e6beeda5d3a2bc640394ee812b135d0"},
		{"single", []Series{{X: []float64{3}, Y: []float64{7}}}, Axes{}, "bad94a57af3477aba51aa4717e68c73e1a3a41a83bb1823bacbc169da727c1b3"},
	}
	dir := t.TempDir()
	for _, c := range cases {
		img, err := Render(c.name, "x label", "y label", c.series, c.axes)
		if err != nil {
			t.Fatalf("%s %+v: %v", c.name, c.axes, err)
		}
		sum := sha256.Sum256(img.Pix)
		if got := hex.EncodeToString(sum[:]); got != c.sha256 {
			t.Errorf("%s %+v: pixels hash to %s, want %s", c.name, c.axes, got, c.sha256)
		}
		path := filepath.Join(dir, c.name+".png")
		if err := Write(path, c.name, "x label", "y label", c.series, c.axes); err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		if err := png.Encode(&want, img); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(path); !bytes.Equal(got, want.Bytes()) {
			t.Errorf("%s %+v: Write's bytes differ from png.Encode(Render)", c.name, c.axes)
		}
	}
}

// WritePanels tiles the panels as Render draws them, row by row under the
// title band, and writes nothing when a panel cannot be drawn.
func TestWritePanels(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fig.png")
	panels := []Panel{
		{Title: "loss", XLabel: "step", YLabel: "loss", Series: lossSeries()},
		{Title: "fd", XLabel: "steps", YLabel: "fd", Series: stepsSeries(), Axes: Axes{LogX: true, LogY: true}},
		{Title: "again", XLabel: "step", YLabel: "loss", Series: lossSeries()[:1]},
	}
	if err := WritePanels(path, "three panels", panels, 2); err != nil {
		t.Fatal(err)
	}
	img := testutil.DecodePNG(t, path)
	if got, want := img.Bounds().Size(), image.Pt(2*800, panelTitleH+2*500); got != want {
		t.Fatalf("figure size %v, want %v", got, want)
	}
	for i, p := range panels {
		want, err := Render(p.Title, p.XLabel, p.YLabel, p.Series, p.Axes)
		if err != nil {
			t.Fatal(err)
		}
		at := image.Pt((i%2)*800, panelTitleH+(i/2)*500)
		for _, q := range []image.Point{{400, 24}, {plotArea.Min.X + 50, plotArea.Min.Y + 50}, {399, 250}, {700, 480}} {
			g := color.RGBAModel.Convert(img.At(at.X+q.X, at.Y+q.Y)).(color.RGBA)
			if w := want.RGBAAt(q.X, q.Y); g != w {
				t.Errorf("panel %d at %v: %v, want Render's %v", i, q, g, w)
			}
		}
	}
	// The empty fourth cell stays background.
	if c := color.RGBAModel.Convert(img.At(800+400, panelTitleH+500+250)).(color.RGBA); c != plotBG {
		t.Errorf("empty cell drawn: %v", c)
	}

	bad := filepath.Join(dir, "bad.png")
	if err := WritePanels(bad, "", append(panels, Panel{Title: "empty"}), 3); err == nil {
		t.Error("a panel without series plotted")
	}
	if err := WritePanels(bad, "", nil, 3); err == nil {
		t.Error("no panels plotted")
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Errorf("a failed figure left %s (%v)", bad, err)
	}
}
