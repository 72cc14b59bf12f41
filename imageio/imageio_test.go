package imageio

import (
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latentlm/latentlm/internal/testutil"
)

const tol = 0.5/255 + 1e-6 // 8-bit rounding error

func clamp01(v float32) float32 {
	if !(v > 0) {
		return 0
	}
	return min(v, 1)
}

func randImage(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = r.Float32()*1.4 - 0.2 // some values outside [0,1]
	}
	return v
}

func savePNG(t *testing.T, path string, img image.Image) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestWriteReadGrayRoundTrip(t *testing.T) {
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(1, 2))
	const h, w = 28, 20 // non-square to catch h/w mix-ups
	want := randImage(r, h*w)
	want[0], want[1] = float32(math.NaN()), float32(math.Inf(1))
	path := filepath.Join(dir, "one.png")
	if err := WriteGray(path, want, h, w); err != nil {
		t.Fatal(err)
	}
	got, err := ReadGray(path, h, w)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if d := math.Abs(float64(got[i] - clamp01(want[i]))); d > tol {
			t.Fatalf("pixel %d: got %v, want %v (clamped %v)", i, got[i], want[i], clamp01(want[i]))
		}
	}
	if names := testutil.DirNames(t, dir); len(names) != 1 {
		t.Errorf("folder holds %v, want only one.png", names)
	}
}

func TestWriteGridLayoutAndRoundTrip(t *testing.T) {
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(3, 4))
	const h, w = 28, 28
	imgs := make([][]float32, 5)
	for i := range imgs {
		imgs[i] = randImage(r, h*w)
	}
	path := filepath.Join(dir, "grid.png")
	if err := WriteGrid(path, imgs, h, w, 3); err != nil {
		t.Fatal(err)
	}
	g := testutil.DecodePNG(t, path)
	// 3 columns, 2 rows, 2 px padding around and between cells.
	if got, want := g.Bounds().Size(), image.Pt(3*w+4*2, 2*h+3*2); got != want {
		t.Fatalf("grid size %v, want %v", got, want)
	}
	// Cell 4 is at row 1, column 1.
	x0, y0 := 2+1*(w+2), 2+1*(h+2)
	for y := range h {
		for x := range w {
			v := float32(color.GrayModel.Convert(g.At(x0+x, y0+y)).(color.Gray).Y) / 255
			if want := clamp01(imgs[4][y*w+x]); math.Abs(float64(v-want)) > tol {
				t.Fatalf("cell 4 pixel (%d,%d): got %v, want %v", x, y, v, want)
			}
		}
	}
	if c := color.GrayModel.Convert(g.At(0, 0)).(color.Gray); c != padGray {
		t.Errorf("corner padding is %v, want %v", c, padGray)
	}
	// The unused sixth cell is padding colour.
	if c := color.GrayModel.Convert(g.At(2+2*(w+2)+5, y0+5)).(color.Gray); c != padGray {
		t.Errorf("empty cell is %v, want %v", c, padGray)
	}

	// Fewer images than columns: the grid shrinks to the images.
	if err := WriteGrid(path, imgs[:2], h, w, 8); err != nil {
		t.Fatal(err)
	}
	if got, want := testutil.DecodePNG(t, path).Bounds().Size(), image.Pt(2*w+3*2, h+2*2); got != want {
		t.Errorf("2 images in 8 columns: size %v, want %v", got, want)
	}
}

func TestWriteGridOptsScaleAndLabels(t *testing.T) {
	dir := t.TempDir()
	const h, w, s = 28, 28, 2
	imgs := make([][]float32, 4)
	for i := range imgs {
		imgs[i] = make([]float32, h*w)
		imgs[i][0] = 1 // top-left pixel white, becomes an s×s block
	}
	labels := []string{"step 1", "step 10000"}
	path := filepath.Join(dir, "grid.png")
	if err := WriteGridOpts(path, imgs, h, w, 2, GridOptions{Scale: s, Labels: labels}); err != nil {
		t.Fatal(err)
	}
	g := testutil.DecodePNG(t, path)
	labelW := len("step 10000")*7 + 2*2
	if got, want := g.Bounds().Size(), image.Pt(labelW+2*w*s+3*2, 2*h*s+3*2); got != want {
		t.Fatalf("grid size %v, want %v", got, want)
	}
	gray := func(x, y int) uint8 { return color.GrayModel.Convert(g.At(x, y)).(color.Gray).Y }
	x0, y0 := labelW+2, 2
	if gray(x0, y0) != 255 || gray(x0+1, y0+1) != 255 || gray(x0+2, y0) != 0 {
		t.Errorf("upscaled top-left block wrong: %d %d %d", gray(x0, y0), gray(x0+1, y0+1), gray(x0+2, y0))
	}
	lit := 0
	for y := range g.Bounds().Dy() {
		for x := range labelW {
			if gray(x, y) == labelGray.Y {
				lit++
			}
		}
	}
	if lit < 20 {
		t.Errorf("label margin has %d label pixels, want some text", lit)
	}
}

func TestInvalidWritesCreateNothing(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "out.png")
	img := make([]float32, 28*28)
	cases := map[string]func() error{
		"empty grid":       func() error { return WriteGrid(target, nil, 28, 28, 4) },
		"short grid image": func() error { return WriteGrid(target, [][]float32{img, img[:5]}, 28, 28, 4) },
		"zero cols":        func() error { return WriteGrid(target, [][]float32{img}, 28, 28, 0) },
		"label count": func() error {
			return WriteGridOpts(target, [][]float32{img}, 28, 28, 1, GridOptions{Labels: []string{"a", "b"}})
		},
		"negative scale": func() error {
			return WriteGridOpts(target, [][]float32{img}, 28, 28, 1, GridOptions{Scale: -1})
		},
		"huge scale": func() error {
			return WriteGridOpts(target, [][]float32{img}, 28, 28, 1, GridOptions{Scale: 1 << 20})
		},
		"gray size mismatch": func() error { return WriteGray(target, img, 28, 27) },
		"gray zero size":     func() error { return WriteGray(target, nil, 0, 0) },
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

	// An invalid call must not replace an existing file either.
	if err := WriteGray(target, img, 28, 28); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(target)
	if err := WriteGray(target, img[:10], 28, 28); err == nil {
		t.Fatal("short image: no error")
	}
	if after, _ := os.ReadFile(target); string(after) != string(before) {
		t.Error("failed write changed the existing file")
	}
}

func TestWriteIntoMissingFolderFails(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "no-such-dir", "out.png")
	img := make([]float32, 28*28)
	for name, err := range map[string]error{
		"WriteGray": WriteGray(target, img, 28, 28),
		"WriteGrid": WriteGrid(target, [][]float32{img}, 28, 28, 1),
	} {
		if err == nil || !strings.Contains(err.Error(), target) {
			t.Errorf("%s: error %v, want one naming %s", name, err, target)
		}
	}
	if names := testutil.DirNames(t, dir); len(names) != 0 {
		t.Errorf("left %v behind", names)
	}
}

// writeBadFiles creates one file per kind of bad input in dir and returns,
// for each, its path and a fragment the error must contain besides the path.
func writeBadFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	bad := map[string]string{}

	text := filepath.Join(dir, "text.png")
	if err := os.WriteFile(text, []byte("this is not an image\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad[text] = "not a PNG file (content looks like text)"

	jp := filepath.Join(dir, "photo.png")
	f, err := os.Create(jp)
	if err != nil {
		t.Fatal(err)
	}
	if err := jpeg.Encode(f, image.NewGray(image.Rect(0, 0, 28, 28)), nil); err != nil {
		t.Fatal(err)
	}
	f.Close()
	bad[jp] = "JPEG"

	small := filepath.Join(dir, "small.png")
	if err := WriteGray(small, make([]float32, 10*12), 10, 12); err != nil {
		t.Fatal(err)
	}
	bad[small] = "image is 10x12 (h×w), want 28x28"

	rgb := image.NewRGBA(image.Rect(0, 0, 28, 28))
	for i := range rgb.Pix {
		rgb.Pix[i] = 0xff
	}
	rgb.SetRGBA(3, 5, color.RGBA{200, 10, 10, 255})
	colour := filepath.Join(dir, "colour.png")
	savePNG(t, colour, rgb)
	bad[colour] = "colour image: pixel (x=3, y=5)"

	ga := image.NewNRGBA(image.Rect(0, 0, 28, 28))
	for i := range ga.Pix {
		ga.Pix[i] = 0x80 // gray but half transparent
	}
	alpha := filepath.Join(dir, "alpha.png")
	savePNG(t, alpha, ga)
	bad[alpha] = "not opaque"

	trunc := filepath.Join(dir, "truncated.png")
	full, err := os.ReadFile(small)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(trunc, full[:20], 0o644); err != nil {
		t.Fatal(err)
	}
	bad[trunc] = "invalid PNG"
	return bad
}

func TestReadGrayErrors(t *testing.T) {
	dir := t.TempDir()
	bad := writeBadFiles(t, dir)
	bad[filepath.Join(dir, "missing.png")] = "no such file"
	for path, frag := range bad {
		_, err := ReadGray(path, 28, 28)
		if err == nil {
			t.Errorf("%s: no error", path)
			continue
		}
		if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), frag) {
			t.Errorf("%s: error %q, want the path and %q", path, err, frag)
		}
	}
}

// DecodeGray refuses what ReadGray refuses, without a path or prefix, and a
// wrong size is a *SizeError.
func TestDecodeGrayErrors(t *testing.T) {
	dir := t.TempDir()
	for path, frag := range writeBadFiles(t, dir) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		_, err = DecodeGray(data, 28, 28)
		if err == nil || !strings.Contains(err.Error(), frag) || strings.Contains(err.Error(), "imageio") {
			t.Errorf("%s: error %v, want %q and no prefix", path, err, frag)
		}
		var se *SizeError
		if errors.As(err, &se) != (filepath.Base(path) == "small.png") {
			t.Errorf("%s: error %#v: a *SizeError only for the wrong size", path, err)
		} else if se != nil && (se.Height != 10 || se.Width != 12 || se.WantHeight != 28 || se.WantWidth != 28) {
			t.Errorf("%s: %+v", path, *se)
		}
	}
	if _, err := DecodeGray(nil, 0, 28); err == nil || !strings.Contains(err.Error(), "invalid image size 0x28") {
		t.Errorf("size 0x28: %v", err)
	}
}

// Gray content is accepted whatever the PNG colour type (see ReadGray).
func TestReadGrayAcceptsGrayEncodings(t *testing.T) {
	dir := t.TempDir()
	const h, w = 4, 3
	g16 := image.NewGray16(image.Rect(0, 0, w, h))
	pal := make(color.Palette, 256)
	for i := range pal {
		pal[i] = color.Gray{uint8(i)}
	}
	pg := image.NewPaletted(image.Rect(0, 0, w, h), pal)
	rgb := image.NewRGBA(image.Rect(0, 0, w, h))
	want := make([]float32, h*w)
	for y := range h {
		for x := range w {
			v := uint8(20*(y*w+x) + 7)
			want[y*w+x] = float32(v) / 255
			g16.SetGray16(x, y, color.Gray16{uint16(v) * 257})
			pg.SetColorIndex(x, y, v)
			rgb.SetRGBA(x, y, color.RGBA{v, v, v, 255})
		}
	}
	for name, img := range map[string]image.Image{"gray16.png": g16, "paletted.png": pg, "rgb-gray.png": rgb} {
		path := filepath.Join(dir, name)
		savePNG(t, path, img)
		got, err := ReadGray(path, h, w)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		for i := range want {
			if math.Abs(float64(got[i]-want[i])) > 1e-6 {
				t.Errorf("%s pixel %d: got %v, want %v", name, i, got[i], want[i])
				break
			}
		}
	}
}

func TestReadDir(t *testing.T) {
	dir := t.TempDir()
	a, b := make([]float32, 28*28), make([]float32, 28*28)
	a[0], b[0] = 1, 0.5
	// Written out of order to check sorting.
	if err := WriteGray(filepath.Join(dir, "b.png"), b, 28, 28); err != nil {
		t.Fatal(err)
	}
	if err := WriteGray(filepath.Join(dir, "a.PNG"), a, 28, 28); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil { // ignored
		t.Fatal(err)
	}
	imgs, names, err := ReadDir(dir, 28, 28)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 2 || names[0] != "a.PNG" || names[1] != "b.png" {
		t.Fatalf("names %v, want [a.PNG b.png]", names)
	}
	if imgs[0][0] != 1 || math.Abs(float64(imgs[1][0]-0.5)) > tol {
		t.Errorf("images out of order: %v %v", imgs[0][0], imgs[1][0])
	}
}

func TestReadDirErrors(t *testing.T) {
	empty := t.TempDir()
	if err := os.Mkdir(filepath.Join(empty, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadDir(empty, 28, 28); err == nil || !strings.Contains(err.Error(), empty) || !strings.Contains(err.Error(), "no PNG files") {
		t.Errorf("empty folder: error %v", err)
	}

	missing := filepath.Join(empty, "nope")
	if _, _, err := ReadDir(missing, 28, 28); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing folder: error %v", err)
	}

	// A folder of good images plus one bad file: the error names that file.
	good := make([]float32, 28*28)
	newDir := func() string {
		d := t.TempDir()
		for _, n := range []string{"0.png", "1.png", "9.png"} {
			if err := WriteGray(filepath.Join(d, n), good, 28, 28); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	d := newDir()
	txt := filepath.Join(d, "notes.txt")
	if err := os.WriteFile(txt, []byte("hi"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadDir(d, 28, 28); err == nil || !strings.Contains(err.Error(), txt) {
		t.Errorf("non-png file: error %v, want one naming %s", err, txt)
	}

	for path, frag := range writeBadFiles(t, t.TempDir()) {
		d := newDir()
		dst := filepath.Join(d, "5-"+filepath.Base(path))
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ReadDir(d, 28, 28); err == nil || !strings.Contains(err.Error(), dst) || !strings.Contains(err.Error(), frag) {
			t.Errorf("bad %s in folder: error %v, want one naming %s and %q", filepath.Base(path), err, dst, frag)
		}
	}
}

// Sniff names each format by its signature, and what is not an image by
// whether it reads as text.
func TestSniff(t *testing.T) {
	for _, c := range []struct {
		data []byte
		want string
	}{
		{nil, "an empty file"},
		{append([]byte(nil), pngSignature...), "PNG"},
		{[]byte("\xff\xd8\xff\xe0rest"), "JPEG"},
		{[]byte("GIF89a"), "GIF"},
		{[]byte("BM\x00\x00"), "BMP"},
		{[]byte("RIFF\x00\x00\x00\x00WEBPVP8 "), "WebP"},
		{[]byte("RIFF\x00\x00\x00\x00WAVEfmt "), "unknown binary data"},
		{[]byte("II*\x00"), "TIFF"},
		{[]byte("MM\x00*"), "TIFF"},
		{[]byte("hello, world\n"), "text"},
		{[]byte{0x00, 0x01, 0x02}, "unknown binary data"},
	} {
		if got := Sniff(c.data); got != c.want {
			t.Errorf("Sniff(%q) = %q, want %q", c.data, got, c.want)
		}
	}
}
