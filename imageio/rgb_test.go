package imageio

import (
	"errors"
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latentlm/latentlm/internal/testutil"
)

// TestWriteReadRGBRoundTrip: an h×w×3 image (channels last) survives an
// RGB PNG to 8-bit rounding, channel order kept, and the file is RGB.
func TestWriteReadRGBRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	const h, w = 5, 7
	img := randImage(r, h*w*3)
	img[0], img[1], img[2] = 1, 0, 0.5 // pixel (0, 0): R, G, B
	p := filepath.Join(t.TempDir(), "c.png")
	if err := WriteRGB(p, img, h, w); err != nil {
		t.Fatal(err)
	}
	back, err := ReadRGB(p, h, w)
	if err != nil {
		t.Fatal(err)
	}
	for i := range img {
		if d := math.Abs(float64(back[i] - clamp01(img[i]))); d > tol {
			t.Fatalf("value %d: wrote %v, read %v", i, img[i], back[i])
		}
	}
	m := testutil.DecodePNG(t, p)
	if c := color.NRGBAModel.Convert(m.At(0, 0)).(color.NRGBA); c.R != 255 || c.G != 0 || c.B != 128 || c.A != 255 {
		t.Errorf("pixel (0, 0) is %v, want (255, 0, 128)", c)
	}
	if m.Bounds().Dx() != w || m.Bounds().Dy() != h {
		t.Errorf("PNG is %v", m.Bounds())
	}
	// A gray PNG reads as RGB with equal channels.
	g := filepath.Join(t.TempDir(), "g.png")
	if err := WriteGray(g, []float32{0, 0.5, 1, 0.25}, 2, 2); err != nil {
		t.Fatal(err)
	}
	if v, err := ReadRGB(g, 2, 2); err != nil || v[3] != v[4] || v[4] != v[5] || v[3] != float32(128)/255 {
		t.Errorf("gray PNG as RGB: %v, %v", v, err)
	}
}

// TestReadRGBErrors: a wrong size, transparency or not a PNG is refused,
// naming the file, and the size as a *SizeError.
func TestReadRGBErrors(t *testing.T) {
	dir := t.TempDir()
	clear := image.NewNRGBA(image.Rect(0, 0, 2, 2))
	p := filepath.Join(dir, "clear.png")
	savePNG(t, p, clear)
	if _, err := ReadRGB(p, 2, 2); err == nil || !strings.Contains(err.Error(), "not opaque") || !strings.Contains(err.Error(), p) {
		t.Errorf("transparent: %v", err)
	}
	var se *SizeError
	if _, err := ReadRGB(p, 3, 2); !errors.As(err, &se) || se.Height != 2 || se.WantHeight != 3 {
		t.Errorf("wrong size: %v", err)
	}
	txt := filepath.Join(dir, "a.png")
	if err := os.WriteFile(txt, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRGB(txt, 2, 2); err == nil || !strings.Contains(err.Error(), "not a PNG file (content looks like text)") {
		t.Errorf("text: %v", err)
	}
	if _, err := DecodeRGB(nil, 0, 2); err == nil {
		t.Error("size 0×2 accepted")
	}
	for name, call := range map[string]func() error{
		"rgb short": func() error { return WriteRGB(filepath.Join(dir, "s.png"), make([]float32, 11), 2, 2) },
		"grid channels 2": func() error {
			return WriteGridOpts(filepath.Join(dir, "g.png"), [][]float32{make([]float32, 8)}, 2, 2, 1, GridOptions{Channels: 2})
		},
		"grid rgb short": func() error {
			return WriteGridOpts(filepath.Join(dir, "g.png"), [][]float32{make([]float32, 4)}, 2, 2, 1, GridOptions{Channels: 3})
		},
	} {
		if err := call(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "g.png")); err == nil {
		t.Error("a refused grid was written")
	}
}

// TestWriteGridRGB: a colour grid has the gray grid's geometry, grey
// padding, and each cell's colours in place, scaled and labelled.
func TestWriteGridRGB(t *testing.T) {
	const h, w = 2, 3
	red, blue := make([]float32, h*w*3), make([]float32, h*w*3)
	for i := range h * w {
		red[3*i], blue[3*i+2] = 1, 1
	}
	red[3*(w+2)+1] = 1 // pixel (x=2, y=1) of the red image is yellow
	p := filepath.Join(t.TempDir(), "grid.png")
	if err := WriteGridOpts(p, [][]float32{red, blue, red}, h, w, 2, GridOptions{Channels: 3, Scale: 2, Labels: []string{"a", "b"}}); err != nil {
		t.Fatal(err)
	}
	g := testutil.DecodePNG(t, p)
	c, r, labelW := gridGeometry(3, 2, []string{"a", "b"})
	if b := g.Bounds(); b.Dx() != labelW+c*w*2+(c+1)*gridPad || b.Dy() != r*h*2+(r+1)*gridPad {
		t.Fatalf("grid is %v", b)
	}
	at := func(x, y int) color.NRGBA { return color.NRGBAModel.Convert(g.At(x, y)).(color.NRGBA) }
	x0, y0 := labelW+gridPad, gridPad
	want := map[[2]int]color.NRGBA{
		{x0, y0}:                                 {255, 0, 0, 255},   // red cell
		{x0 + 2*2 + 1, y0 + 2*1 + 1}:             {255, 255, 0, 255}, // its yellow pixel, scaled 2×
		{x0 + w*2 + gridPad, y0}:                 {0, 0, 255, 255},   // blue cell
		{x0 - 1, y0}:                             {64, 64, 64, 255},  // padding
		{x0, y0 + h*2 + gridPad + 2*1 + 1}:       {255, 0, 0, 255},   // second row
		{x0 + w*2 + gridPad, y0 + h*2 + gridPad}: {64, 64, 64, 255},  // no fourth image
	}
	for xy, c := range want {
		if got := at(xy[0], xy[1]); got != c {
			t.Errorf("pixel %v is %v, want %v", xy, got, c)
		}
	}
}
