package latentlm_test

import (
	"context"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm"
	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/classifier"
	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/dit"
	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
)

const mnist = "weights/latentlm-mnist"

// sharedBatch is the batch of the shared generator: requests of 16 or 32
// images then reuse one compiled shape.
const sharedBatch = 16

var (
	sharedOnce sync.Once
	sharedGen  *latentlm.Generator
	sharedErr  error
)

// shared is one generator of the shipped MNIST weights for the tests that
// only generate (loading and compiling dominate their time).
func shared(t *testing.T) *latentlm.Generator {
	t.Helper()
	sharedOnce.Do(func() { sharedGen, sharedErr = latentlm.Load(mnist, latentlm.WithBatch(sharedBatch)) })
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return sharedGen
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedGen != nil {
		if err := sharedGen.Close(); err != nil && code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func generate(t *testing.T, g *latentlm.Generator, req latentlm.Request, opts latentlm.SampleOptions) []latentlm.Image {
	t.Helper()
	imgs, err := g.Generate(context.Background(), req, opts)
	if err != nil {
		t.Fatal(err)
	}
	return imgs
}

func sameImages(a, b []latentlm.Image) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Class != b[i].Class || a[i].Size != b[i].Size || len(a[i].Pixels) != len(b[i].Pixels) {
			return false
		}
		for k := range a[i].Pixels {
			if a[i].Pixels[k] != b[i].Pixels[k] {
				return false
			}
		}
	}
	return true
}

// meanAbsDiff is the mean absolute pixel difference of two image sets.
func meanAbsDiff(a, b []latentlm.Image) float64 {
	var s float64
	var n int
	for i := range a {
		for k, v := range a[i].Pixels {
			s += math.Abs(float64(v - b[i].Pixels[k]))
			n++
		}
	}
	return s / float64(n)
}

func TestLoadReportsModel(t *testing.T) {
	g := shared(t)
	if g.Kind() != latentlm.KindLatentLM || g.Classes() != 10 || g.ImageSize() != 28 || g.Params() <= 0 {
		t.Errorf("kind %q, %d classes, size %d, %d params; want latentlm, 10, 28, > 0", g.Kind(), g.Classes(), g.ImageSize(), g.Params())
	}
	if filepath.Base(g.TokenizerDir()) != "vae-mnist" {
		t.Errorf("tokenizer %s, want the shipped vae-mnist", g.TokenizerDir())
	}
}

func TestGenerateShapes(t *testing.T) {
	g := shared(t)
	imgs := generate(t, g, latentlm.Request{Class: 3, N: 16}, latentlm.DefaultSampleOptions())
	if len(imgs) != 16 {
		t.Fatalf("%d images, want 16", len(imgs))
	}
	for i, im := range imgs {
		if im.Class != 3 || im.Size != 28 || len(im.Pixels) != 28*28 {
			t.Fatalf("image %d: class %d, size %d, %d pixels", i, im.Class, im.Size, len(im.Pixels))
		}
		for _, v := range im.Pixels {
			if !(v >= 0 && v <= 1) {
				t.Fatalf("image %d has pixel %v outside [0, 1]", i, v)
			}
		}
		if b := im.Bounds(); b.Dx() != 28 || b.Dy() != 28 {
			t.Fatalf("bounds %v", b)
		}
	}
}

// TestSeedDeterminism checks that a call depends only on its seed and
// options, not on the calls before it, across the sampler cache: same
// options twice, another seed, other options (a recompile), then the first
// options again.
func TestSeedDeterminism(t *testing.T) {
	g := shared(t)
	req := latentlm.Request{Class: 5, N: 16}
	opts := latentlm.SampleOptions{Steps: 4, CFG: 3, Temperature: 1, Seed: 7}
	a := generate(t, g, req, opts)
	if b := generate(t, g, req, opts); !sameImages(a, b) {
		t.Error("the same seed gave different images on the second call")
	}
	other := opts
	other.Seed = 8
	if c := generate(t, g, req, other); sameImages(a, c) || meanAbsDiff(a, c) < 1e-3 {
		t.Errorf("seeds 7 and 8 gave the same images (mean |Δ| %g)", meanAbsDiff(a, c))
	}
	other = opts
	other.CFG = 1
	if d := generate(t, g, req, other); sameImages(a, d) {
		t.Error("CFG 3 and 1 gave the same images")
	}
	if e := generate(t, g, req, opts); !sameImages(a, e) {
		t.Error("the same seed gave different images after a call with other options")
	}
}

// classify returns the classes the shipped MNIST classifier assigns.
func classify(t *testing.T, imgs []latentlm.Image) []int {
	t.Helper()
	c, err := classifier.Load(testutil.Backend(t, ""), "weights/classifier-mnist")
	if err != nil {
		t.Fatal(err)
	}
	px := make([][]float32, len(imgs))
	for i, im := range imgs {
		px[i] = im.Pixels
	}
	probs, _, err := c.Predict(px)
	if err != nil {
		t.Fatal(err)
	}
	pred := make([]int, len(probs))
	for i, p := range probs {
		for k := range p {
			if p[k] > p[pred[i]] {
				pred[i] = k
			}
		}
	}
	return pred
}

// TestClassesAreDrawn checks, with the shipped classifier, that the images
// of a mixed request show the classes asked for, at default options.
func TestClassesAreDrawn(t *testing.T) {
	g := shared(t)
	var classes []int
	for i := range 16 {
		classes = append(classes, []int{3, 7}[i/8])
	}
	imgs := generate(t, g, latentlm.Request{Classes: classes}, latentlm.DefaultSampleOptions())
	pred := classify(t, imgs)
	right := 0
	for i, im := range imgs {
		if im.Class != classes[i] {
			t.Fatalf("image %d labelled %d, asked %d", i, im.Class, classes[i])
		}
		if pred[i] == classes[i] {
			right++
		}
	}
	t.Logf("classifier agrees on %d of 16 images", right)
	if right < 14 {
		t.Errorf("classifier agrees on %d of 16 images (predicted %v for %v), want ≥ 14", right, pred, classes)
	}
	if d := meanAbsDiff(imgs[:8], imgs[8:]); d < 0.05 {
		t.Errorf("threes and sevens differ by mean |Δ| %g only", d)
	}
}

func TestInvalidRequests(t *testing.T) {
	g := shared(t)
	def := latentlm.DefaultSampleOptions()
	with := func(f func(*latentlm.SampleOptions)) latentlm.SampleOptions {
		o := def
		f(&o)
		return o
	}
	cases := []struct {
		name string
		req  latentlm.Request
		opts latentlm.SampleOptions
		want string
	}{
		{"N 0", latentlm.Request{Class: 3}, def, "Request.N 0"},
		{"N negative", latentlm.Request{Class: 3, N: -1}, def, "Request.N -1"},
		{"N huge", latentlm.Request{Class: 3, N: latentlm.MaxImages + 1}, def, "Request.N"},
		{"class 99", latentlm.Request{Class: 99, N: 1}, def, "Request.Class 99"},
		{"class -1", latentlm.Request{Class: -1, N: 1}, def, "Request.Class -1"},
		{"classes entry", latentlm.Request{Classes: []int{1, 10}}, def, "Request.Classes[1] = 10"},
		{"classes and N", latentlm.Request{N: 3, Classes: []int{1, 2}}, def, "Request.N 3"},
		{"classes and class", latentlm.Request{Class: 4, Classes: []int{1, 2}}, def, "Request.Class 4"},
		{"CFG NaN", latentlm.Request{Class: 3, N: 1}, with(func(o *latentlm.SampleOptions) { o.CFG = math.NaN() }), "CFG NaN"},
		{"CFG Inf", latentlm.Request{Class: 3, N: 1}, with(func(o *latentlm.SampleOptions) { o.CFG = math.Inf(1) }), "CFG +Inf"},
		{"CFG negative", latentlm.Request{Class: 3, N: 1}, with(func(o *latentlm.SampleOptions) { o.CFG = -1 }), "CFG -1"},
		{"temperature 0", latentlm.Request{Class: 3, N: 1}, with(func(o *latentlm.SampleOptions) { o.Temperature = 0 }), "Temperature 0"},
		{"temperature NaN", latentlm.Request{Class: 3, N: 1}, with(func(o *latentlm.SampleOptions) { o.Temperature = math.NaN() }), "Temperature NaN"},
		{"temperature negative", latentlm.Request{Class: 3, N: 1}, with(func(o *latentlm.SampleOptions) { o.Temperature = -0.5 }), "Temperature -0.5"},
		{"zero options", latentlm.Request{Class: 3, N: 1}, latentlm.SampleOptions{}, "Temperature 0"},
		{"steps negative", latentlm.Request{Class: 3, N: 1}, with(func(o *latentlm.SampleOptions) { o.Steps = -1 }), "Steps -1"},
		{"steps too many", latentlm.Request{Class: 3, N: 1}, with(func(o *latentlm.SampleOptions) { o.Steps = 1001 }), "Steps 1001"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			imgs, err := g.Generate(context.Background(), c.req, c.opts)
			if err == nil || imgs != nil {
				t.Fatalf("got %d images and error %v, want an error", len(imgs), err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not name %q", err, c.want)
			}
		})
	}
}

// countdown is a context whose Err turns to Canceled after `left` calls.
type countdown struct {
	context.Context
	left int
}

func (c *countdown) Err() error {
	if c.left--; c.left < 0 {
		return context.Canceled
	}
	return nil
}

func TestCancellation(t *testing.T) {
	g := shared(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := g.Generate(ctx, latentlm.Request{Class: 1, N: 4}, latentlm.DefaultSampleOptions()); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: error %v, want context.Canceled", err)
	}
	// Two batches; cancelled once the first is done. Generate checks ctx
	// once on entry, once per batch and once per latent (49 per image), so
	// the 52nd check is the second batch's.
	ctx2 := &countdown{Context: context.Background(), left: 1 + 1 + 49}
	_, err := g.Generate(ctx2, latentlm.Request{Class: 1, N: 2 * sharedBatch}, latentlm.DefaultSampleOptions())
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "after 16 of 32") {
		t.Errorf("cancelled between batches: error %v, want context.Canceled after 16 of 32 images", err)
	}
}

func TestCloseIsFinal(t *testing.T) {
	g, err := latentlm.Load(mnist)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := g.Generate(context.Background(), latentlm.Request{Class: 3, N: 1}, latentlm.DefaultSampleOptions()); !errors.Is(err, latentlm.ErrClosed) {
		t.Errorf("Generate after Close: %v, want ErrClosed", err)
	}
	if g.Classes() != 10 || g.ImageSize() != 28 {
		t.Error("accessors stopped working after Close")
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		dir  string
		opts []latentlm.Option
		want string
	}{
		{"empty dir", "", nil, "empty model folder"},
		{"missing", filepath.Join(dir, "nothing"), nil, "not a checkpoint"},
		{"wrong kind", "weights/vae-mnist", nil, `holds a "vae" model`},
		{"other tokenizer", mnist, []latentlm.Option{latentlm.WithTokenizer("weights/vae-fashion")}, "not the one"},
		{"batch 0", mnist, []latentlm.Option{latentlm.WithBatch(0)}, "WithBatch(0)"},
		{"backend", mnist, []latentlm.Option{latentlm.WithBackend("tpu")}, `unknown backend "tpu"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, err := latentlm.Load(c.dir, c.opts...)
			if err == nil {
				g.Close()
				t.Fatal("loaded")
			}
			if g != nil {
				t.Error("non-nil generator with an error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
		})
	}
}

func TestShippedWeights(t *testing.T) {
	p, err := latentlm.ShippedWeights("latentlm-mnist")
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(mnist)
	if p != abs {
		t.Errorf("ShippedWeights = %s, want %s", p, abs)
	}
	for _, bad := range []string{"", "..", "../weights/latentlm-mnist", "no-such-model"} {
		if _, err := latentlm.ShippedWeights(bad); err == nil {
			t.Errorf("ShippedWeights(%q) succeeded", bad)
		}
	}
}

// TestDiT loads a tiny, untrained DiT checkpoint made for the shipped
// tokenizer: Load must read the other architecture as well.
func TestDiT(t *testing.T) {
	tokDir := "weights/vae-mnist"
	sum, err := checkpoint.FileSHA256(filepath.Join(tokDir, checkpoint.WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	save := func(grid int) string {
		cfg := dit.Config{Dim: 16, Depth: 1, Heads: 2, MLPRatio: 2, Latent: 8, Grid: grid, Classes: 10, Target: diffusion.Epsilon}
		store := model.NewStore()
		if err := nn.Init(store, cfg.Specs(), 1, dtypes.Float32); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), "dit")
		tok := lm.Tokenizer{Path: tokDir, SHA256: sum, Kind: "sigma", Items: 49, Channels: 8, Data: "mnist"}
		if err := dit.Save(dir, cfg, store, tok, nil); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	g, err := latentlm.Load(save(7))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if g.Kind() != latentlm.KindDiT || g.Classes() != 10 || g.ImageSize() != 28 {
		t.Errorf("kind %q, %d classes, size %d", g.Kind(), g.Classes(), g.ImageSize())
	}
	opts := latentlm.SampleOptions{Steps: 2, CFG: 2, Temperature: 1, Seed: 3}
	a := generate(t, g, latentlm.Request{Classes: []int{0, 9}}, opts)
	b := generate(t, g, latentlm.Request{Classes: []int{0, 9}}, opts)
	if len(a) != 2 || a[1].Class != 9 || len(a[1].Pixels) != 28*28 || !sameImages(a, b) {
		t.Errorf("DiT generation: %d images, or not reproducible", len(a))
	}

	if g, err := latentlm.Load(save(3)); err == nil || !strings.Contains(err.Error(), "does not fit") {
		if g != nil {
			g.Close()
		}
		t.Errorf("a DiT of a 3×3 grid with a 7×7 tokenizer: %v, want a does-not-fit error", err)
	}
}

func TestWriteGrid(t *testing.T) {
	imgs := []latentlm.Image{{Size: 2, Pixels: []float32{0, 1, 0.5, 2}}, {Size: 2, Pixels: []float32{1, 0, float32(math.NaN()), -1}}}
	path := filepath.Join(t.TempDir(), "grid.png")
	if err := latentlm.WriteGrid(path, imgs, 2, 3); err != nil {
		t.Fatal(err)
	}
	img := testutil.DecodePNG(t, path)
	// Two 6×6 cells (scale 3) with 2 pixels of padding around each.
	if b := img.Bounds(); b.Dx() != 2*6+3*2 || b.Dy() != 6+2*2 {
		t.Errorf("grid is %v", b)
	}
	bad := [][]latentlm.Image{nil, {{Size: 2, Pixels: make([]float32, 3)}}, {imgs[0], {Size: 3, Pixels: make([]float32, 9)}}}
	for i, b := range bad {
		if err := latentlm.WriteGrid(path, b, 2, 1); err == nil {
			t.Errorf("bad grid %d written", i)
		}
	}
}

// TestExampleProgram builds examples/generate and runs it, writing into a
// temporary folder: it must write a PNG that decodes.
func TestExampleProgram(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a program")
	}
	bin := filepath.Join(t.TempDir(), "generate")
	build := exec.Command("go", "build", "-o", bin, "./examples/generate")
	build.Env = append(os.Environ(), "GOEXPERIMENT=simd")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out := filepath.Join(t.TempDir(), "digits.png")
	run := exec.Command(bin, "-out", out)
	// Away from the repository root the model's recorded tokenizer path
	// (weights/vae-mnist) does not resolve: the shipped one must be found.
	run.Dir = "examples/generate"
	if msg, err := run.CombinedOutput(); err != nil {
		t.Fatalf("running the example: %v\n%s", err, msg)
	}
	img := testutil.DecodePNG(t, out)
	if b := img.Bounds(); b.Dx() < 28*10 || b.Dy() < 28 {
		t.Errorf("grid of %v is too small for ten digits a row", b)
	}
}
