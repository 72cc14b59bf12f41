package vae

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/latentlm/latentlm/imageio"
	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/safetensors"
)

// shippedMNIST loads the shipped tokenizer weights/vae-mnist.
func shippedMNIST(t *testing.T) *Model {
	t.Helper()
	m, err := Load(testutil.Backend(t, ""), filepath.Join("..", "weights", "vae-mnist"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// psnr of a against b, images in [0, 1].
func psnr(a, b [][]float32) float64 {
	var se float64
	n := 0
	for i := range a {
		for j := range a[i] {
			d := float64(a[i][j]) - float64(b[i][j])
			se += d * d
			n++
		}
	}
	return PSNR(se / float64(n))
}

// TestFilesRoundTrip: MNIST test images as PNG → EncodePNGs → WriteLatents
// → ReadLatents → DecodeToFolder → PNG comes back close to the original,
// and each file step loses nothing on the way.
func TestFilesRoundTrip(t *testing.T) {
	m := shippedMNIST(t)
	c := m.Config
	imgs := mnistImages(t, 3)
	dir := t.TempDir()
	var paths []string
	for i, img := range imgs {
		p := filepath.Join(dir, fmt.Sprintf("in%d.png", i))
		if err := imageio.WriteGray(p, img, c.ImageSize, c.ImageSize); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	zs, err := m.EncodePNGs(paths, false)
	if err != nil {
		t.Fatal(err)
	}
	// MNIST is 8-bit, so the PNGs hold the images exactly: same μ as Encode.
	direct, err := m.Encode(imgs, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(zs) != len(imgs) || !slices.EqualFunc(zs, direct, slices.Equal[[]float32]) {
		t.Fatalf("EncodePNGs gave other latents than Encode of the same images")
	}

	lat := filepath.Join(dir, "l.safetensors")
	if err := m.WriteLatents(lat, zs); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Load(lat)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tensors) != 1 || f.Tensors[0].Name != LatentsTensor || f.Tensors[0].DType != safetensors.F32 ||
		!slices.Equal(f.Tensors[0].Shape, []int{len(imgs), c.Items(), c.Channels}) ||
		len(f.Metadata) != 2 || f.Metadata["normalised"] != "true" || f.Metadata["kind"] != c.Kind.String() {
		t.Fatalf("latents file: tensors %+v, metadata %v", f.Tensors[0].Shape, f.Metadata)
	}
	back, err := m.ReadLatents(lat)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(back, zs, slices.Equal[[]float32]) {
		t.Fatalf("ReadLatents did not return what WriteLatents wrote")
	}

	out := filepath.Join(dir, "D")
	if err := m.DecodeToFolder(back, out); err != nil {
		t.Fatal(err)
	}
	if got, want := testutil.DirNames(t, out), []string{"0000.png", "0001.png", "0002.png"}; !slices.Equal(got, want) {
		t.Fatalf("decoded folder holds %v, want %v", got, want)
	}
	var dec [][]float32
	for i := range imgs {
		img, err := imageio.ReadGray(filepath.Join(out, fmt.Sprintf("%04d.png", i)), c.ImageSize, c.ImageSize)
		if err != nil {
			t.Fatal(err)
		}
		dec = append(dec, img)
	}
	p := psnr(dec, imgs)
	t.Logf("round trip through the files: PSNR %.2f dB", p)
	if !(p >= 25) {
		t.Errorf("round trip PSNR %.2f dB, want ≥ 25", p)
	}
	// The decoded PNGs are the 8-bit quantisation of Decode's images.
	rec, err := m.Decode(zs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rec {
		for j, v := range rec[i] {
			if q := float32(math.Round(float64(min(max(v, 0), 1))*255)) / 255; dec[i][j] != q {
				t.Fatalf("image %d pixel %d: PNG holds %v, Decode gave %v", i, j, dec[i][j], v)
			}
		}
	}
	// Only D and the inputs: no temporary folder left beside D.
	if got := testutil.DirNames(t, dir); len(got) != len(imgs)+2 {
		t.Errorf("the folder holds %v", got)
	}
}

// TestFilesReconstructionGrid: originals and reconstructions alternate in
// the grid, at WriteGrid's layout.
func TestFilesReconstructionGrid(t *testing.T) {
	m := shippedMNIST(t)
	s := m.Config.ImageSize
	imgs := mnistImages(t, 3)
	p := filepath.Join(t.TempDir(), "grid.png")
	if err := m.WriteReconstructionGrid(imgs, p, 4); err != nil {
		t.Fatal(err)
	}
	g := testutil.DecodePNG(t, p)
	// 6 tiles in 4 columns: 2 rows, 2 pixels of padding around each.
	const pad = 2
	if b := g.Bounds(); b.Dx() != 4*s+5*pad || b.Dy() != 2*s+3*pad {
		t.Fatalf("grid is %dx%d", b.Dx(), b.Dy())
	}
	tile := func(k int) []float32 {
		x0, y0 := pad+(k%4)*(s+pad), pad+(k/4)*(s+pad)
		v := make([]float32, 0, s*s)
		for y := range s {
			for x := range s {
				gr, _, _, _ := g.At(x0+x, y0+y).RGBA()
				v = append(v, float32(gr>>8)/255)
			}
		}
		return v
	}
	var orig, rec [][]float32
	for i := range imgs {
		orig, rec = append(orig, tile(2*i)), append(rec, tile(2*i+1))
	}
	if !slices.EqualFunc(orig, imgs, slices.Equal[[]float32]) {
		t.Errorf("the even tiles are not the originals")
	}
	if p := psnr(rec, imgs); !(p >= 25) {
		t.Errorf("the odd tiles are %.2f dB from the originals, want reconstructions ≥ 25 dB", p)
	}
	if err := m.WriteReconstructionGrid(nil, filepath.Join(t.TempDir(), "g.png"), 4); err == nil {
		t.Errorf("a grid of no images was written")
	}
}

// writeLatents writes a hand-made latents file.
func writeLatents(t *testing.T, path string, ts ...safetensors.Tensor) {
	t.Helper()
	if err := safetensors.Save(path, ts, nil); err != nil {
		t.Fatal(err)
	}
}

// TestReadLatentsBad: every malformed latents file is refused with a
// message naming the file and, for non-finite values, where they are.
func TestReadLatentsBad(t *testing.T) {
	m := newModel(t, tinyConfig("sigma"))
	c := m.Config
	per := c.Items() * c.Channels
	good := make([]float32, 2*per)
	for i := range good {
		good[i] = float32(i%13-6) / 10
	}
	with := func(i int, v float32) []float32 {
		x := slices.Clone(good)
		x[i] = v
		return x
	}
	shape := []int{2, c.Items(), c.Channels}
	f64 := make([]float64, len(good))
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		t    safetensors.Tensor
		want string
	}{
		{"nan", safetensors.FromFloat32("latents", shape, with(per+3*c.Channels+5, float32(math.NaN()))),
			"nan.safetensors: latents of image 1 hold a non-finite value (NaN at item 3, channel 5)"},
		{"empty", safetensors.FromFloat32("latents", []int{0, c.Items(), c.Channels}, nil),
			fmt.Sprintf("empty.safetensors: latents hold no images (shape [0 %d %d])", c.Items(), c.Channels)},
		{"inf", safetensors.FromFloat32("latents", shape, with(17, float32(math.Inf(-1)))),
			"inf.safetensors: latents of image 0 hold a non-finite value (-Inf at item 2, channel 1)"},
		{"flat", safetensors.FromFloat32("latents", []int{2, per}, good),
			fmt.Sprintf("flat.safetensors: latents are F32 [2 %d], this tokenizer needs F32 [N, %d, %d]", per, c.Items(), c.Channels)},
		{"items", safetensors.FromFloat32("latents", []int{2, c.Items() + 1, c.Channels}, append(slices.Clone(good), make([]float32, 2*c.Channels)...)),
			fmt.Sprintf("items.safetensors: latents are F32 [2 %d %d], this tokenizer needs F32 [N, %d, %d]", c.Items()+1, c.Channels, c.Items(), c.Channels)},
		{"channels", safetensors.FromFloat32("latents", []int{2, c.Channels, c.Items()}, good),
			fmt.Sprintf("channels.safetensors: latents are F32 [2 %d %d], this tokenizer needs F32 [N, %d, %d]", c.Channels, c.Items(), c.Items(), c.Channels)},
		{"dtype", safetensors.FromFloat64("latents", shape, f64),
			fmt.Sprintf("dtype.safetensors: latents are F64 [2 %d %d], this tokenizer needs F32 [N, %d, %d]", c.Items(), c.Channels, c.Items(), c.Channels)},
		{"missing", safetensors.FromFloat32("z", shape, good), "missing.safetensors: no tensor named latents"},
	} {
		p := filepath.Join(dir, tc.name+".safetensors")
		writeLatents(t, p, tc.t)
		zs, err := m.ReadLatents(p)
		if err == nil || err.Error() != filepath.Join(dir, tc.want) {
			t.Errorf("%s: got %v, %v; want the error %q", tc.name, len(zs), err, filepath.Join(dir, tc.want))
		}
	}
	// Not a safetensors file, or no file.
	p := filepath.Join(dir, "text.safetensors")
	if err := os.WriteFile(p, []byte("hello, world"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{p, filepath.Join(dir, "none.safetensors"), dir} {
		if _, err := m.ReadLatents(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: got %v, want an error naming the file", p, err)
		}
	}
	// A good file comes back whole, in rows of Items·Channels.
	p = filepath.Join(dir, "good.safetensors")
	writeLatents(t, p, safetensors.FromFloat32("latents", shape, good))
	zs, err := m.ReadLatents(p)
	if err != nil || len(zs) != 2 || !slices.Equal(zs[0], good[:per]) || !slices.Equal(zs[1], good[per:]) {
		t.Errorf("good file: %d rows, %v", len(zs), err)
	}
}

// TestWriteLatentsBad: latents of the wrong length are refused, and no file
// appears.
func TestWriteLatentsBad(t *testing.T) {
	m := newModel(t, tinyConfig("vae"))
	per := m.Config.Items() * m.Config.Channels
	p := filepath.Join(t.TempDir(), "l.safetensors")
	err := m.WriteLatents(p, [][]float32{make([]float32, per), make([]float32, per-1)})
	if err == nil || !strings.Contains(err.Error(), "latent 1 has") {
		t.Errorf("got %v, want the short latent refused", err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("a refused write left %s (%v)", p, err)
	}
}

// TestFilesEncodePNGsBad: no paths, or a path that is not a usable PNG, is
// refused, naming the file.
func TestFilesEncodePNGsBad(t *testing.T) {
	m := newModel(t, tinyConfig("ae"))
	dir := t.TempDir()
	if _, err := m.EncodePNGs(nil, false); err == nil {
		t.Errorf("no paths: no error")
	}
	good := filepath.Join(dir, "good.png")
	if err := imageio.WriteGray(good, make([]float32, 28*28), 28, 28); err != nil {
		t.Fatal(err)
	}
	small := filepath.Join(dir, "small.png")
	if err := imageio.WriteGray(small, make([]float32, 27*28), 27, 28); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{small, filepath.Join(dir, "none.png"), dir} {
		if _, err := m.EncodePNGs([]string{good, bad}, false); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("%s: got %v, want an error naming it", bad, err)
		}
	}
	zs, err := m.EncodePNGs([]string{good, good}, true)
	if err != nil || len(zs) != 2 || len(zs[0]) != m.Config.Items()*m.Config.Channels {
		t.Errorf("two good images: %d latents, %v", len(zs), err)
	}
}

// TestFilesDecodeToFolder: N latents give N files named 0000.png…, and a
// refusal (latents of the wrong length, a folder already in use) writes
// nothing at all.
func TestFilesDecodeToFolder(t *testing.T) {
	m := newModel(t, tinyConfig("sigma"))
	per := m.Config.Items() * m.Config.Channels
	parent := t.TempDir()
	zs := make([][]float32, 12)
	for i := range zs {
		zs[i] = make([]float32, per)
		zs[i][i] = 1
	}
	out := filepath.Join(parent, "D")
	if err := m.DecodeToFolder(zs, out); err != nil {
		t.Fatal(err)
	}
	got := testutil.DirNames(t, out)
	if len(got) != len(zs) || got[0] != "0000.png" || got[len(got)-1] != "0011.png" {
		t.Fatalf("folder holds %v", got)
	}
	for _, name := range got {
		if _, err := imageio.ReadGray(filepath.Join(out, name), 28, 28); err != nil {
			t.Error(err)
		}
	}
	// An empty folder is filled.
	empty := filepath.Join(parent, "E")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := m.DecodeToFolder(zs[:1], empty); err != nil || !slices.Equal(testutil.DirNames(t, empty), []string{"0000.png"}) {
		t.Errorf("empty folder: %v, holds %v", err, testutil.DirNames(t, empty))
	}

	// Refusals leave everything as it was.
	bad := filepath.Join(parent, "B")
	short := [][]float32{zs[0], zs[1][:per-1]}
	if err := m.DecodeToFolder(short, bad); err == nil || !strings.Contains(err.Error(), "latent 1 has") {
		t.Errorf("short latent: got %v", err)
	}
	if err := m.DecodeToFolder(zs[:2], out); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("folder in use: got %v", err)
	}
	if got := testutil.DirNames(t, out); len(got) != len(zs) {
		t.Errorf("the refused folder now holds %v", got)
	}
	if got := testutil.DirNames(t, parent); !slices.Equal(got, []string{"D", "E"}) {
		t.Errorf("after the refusals the parent holds %v, want D and E only", got)
	}
}
