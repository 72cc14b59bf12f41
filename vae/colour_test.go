package vae

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/imageio"
	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/metrics"
	"github.com/latentlm/latentlm/nn"
)

// rgbConfig is a tiny RGB tokenizer of 16×16 images in 4×4 patches.
func rgbConfig(kind string) Config {
	c := tinyConfig(kind)
	c.ImageSize, c.InChannels, c.Channels = 16, 3, 6
	return c
}

// TestShippedTokenizersLoad: the gray tokenizers under weights/ were saved
// before colour existed; each still loads as the grayscale tokenizer it is,
// and its config is written back without the new fields. The emoji one is
// colour and says so.
func TestShippedTokenizersLoad(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("..", "weights", "vae-*"))
	if err != nil || len(dirs) < 3 {
		t.Fatalf("shipped tokenizers: %v (%v)", dirs, err)
	}
	for _, dir := range dirs {
		m, err := Load(testutil.Backend(t, ""), dir)
		if err != nil {
			t.Errorf("%s: %v", dir, err)
			continue
		}
		c := m.Config
		// The gray ones predate colour and must read (and write back) as
		// they were written; the colour ones say so in their config.
		if d, _ := m.Info["data"].(string); d == "emoji" {
			if c.InChannels != 3 || c.ImageChannels() != 3 || c.PatchValues() != 3*c.Patch*c.Patch {
				t.Errorf("%s: colour tokenizer read as %+v", dir, c)
			}
			if s := string(c.JSON()); !strings.Contains(s, `"in_channels": 3`) {
				t.Errorf("%s: config written back as %s", dir, s)
			}
		} else {
			if c.InChannels != 0 || c.ImageChannels() != 1 || c.SSIMWeight != 0 || c.PatchValues() != c.Patch*c.Patch {
				t.Errorf("%s: read as %+v", dir, c)
			}
			if s := string(c.JSON()); strings.Contains(s, "in_channels") || strings.Contains(s, "ssim_weight") {
				t.Errorf("%s: config written back as %s", dir, s)
			}
		}
		// The folder names its data: vae-mnist, vae-mnist-canvas-p7.
		if d, ok := m.Info["data"].(string); !ok || !strings.Contains(filepath.Base(dir), "-"+d) {
			t.Errorf("%s: info data %v", dir, m.Info["data"])
		}
		m.Close()
	}
}

// TestShippedMNISTUnchanged: the shipped MNIST tokenizer gives the latents
// and reconstructions it gave before the tokenizer took colour (values
// recorded then, on the onnx backend), to float32 rounding.
func TestShippedMNISTUnchanged(t *testing.T) {
	m := shippedMNIST(t)
	imgs := mnistImages(t, 4)
	zs, err := m.Encode(imgs, false)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := m.Decode(zs)
	if err != nil {
		t.Fatal(err)
	}
	near := func(what string, got, want []float32) {
		t.Helper()
		for i := range want {
			if d := math.Abs(float64(got[i] - want[i])); d > 1e-5*math.Max(1, math.Abs(float64(want[i]))) {
				t.Errorf("%s[%d] = %v, was %v", what, i, got[i], want[i])
			}
		}
	}
	near("z[0]", zs[0][:8], []float32{0.047279604, -0.025167195, 0.02394577, 0.044382468, -0.005037816, 0.030153772, -0.007072316, -0.0028000355})
	near("rec[0]", rec[0][200:206], []float32{0.0038982034, 0.021976978, 0.37716454, 0.83690584, 0.7897649, 0.6287329})
	near("rec[1]", rec[1][300:304], []float32{0.0025725067, 0.0020873249, 0.0012890995, 0.0011439621})
	near("rec[3]", rec[3][500:504], []float32{0.001144141, 0.0013238192, 0.0012591779, 0.001534313})
	if p := psnr(rec, imgs); math.Abs(p-29.587338) > 1e-3 {
		t.Errorf("PSNR on 4 test digits %.6f dB, was 29.587338", p)
	}
}

// TestPatchLayout: patchify takes images laid out as package imagefolder
// gives them (H×W×C, channels last) and cuts p×p×C blocks in (row, column,
// channel) order; unpatchify puts every value back where it was.
func TestPatchLayout(t *testing.T) {
	c := rgbConfig("ae")
	c.ImageSize, c.Patch = 8, 4
	const batch = 2
	s, ch, p, g := c.ImageSize, c.ImageChannels(), c.Patch, c.Grid()
	// Every value distinct: image i, row y, column x, channel k.
	img := make([]float32, batch*c.Pixels())
	for i := range img {
		img[i] = float32(i)
	}
	exec, err := model.NewExec(testutil.Backend(t, ""), model.NewStore(), func(_ *model.Scope, x *Node) (*Node, *Node) {
		patches := c.patchify(x)
		return patches, c.unpatchify(patches)
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Call(tensors.FromFlatDataAndDimensions(img, c.ImageDims(batch)...))
	if err != nil {
		t.Fatal(err)
	}
	patches, back := tensors.MustCopyFlatData[float32](out[0]), tensors.MustCopyFlatData[float32](out[1])
	if d := out[0].Shape().Dimensions; !slices.Equal(d, []int{batch, c.Items(), p * p * ch}) {
		t.Fatalf("patches %v", d)
	}
	at := func(i, y, x, k int) float32 { return img[((i*s+y)*s+x)*ch+k] }
	for i := range batch {
		for n := range c.Items() {
			gy, gx := n/g, n%g
			for j := range p * p * ch {
				dy, dx, k := j/(p*ch), j/ch%p, j%ch
				if got, want := patches[(i*c.Items()+n)*p*p*ch+j], at(i, gy*p+dy, gx*p+dx, k); got != want {
					t.Fatalf("image %d patch %d value %d = %v, want pixel (%d, %d) channel %d = %v", i, n, j, got, gy*p+dy, gx*p+dx, k, want)
				}
			}
		}
	}
	if !slices.Equal(back, img) {
		t.Error("unpatchify(patchify(x)) ≠ x")
	}
}

// TestColourRoundTripShapes: RGB images of 16×16×3 values give 16 latents
// and come back as 16×16×3 values, for every kind; a grayscale image is
// refused with the sizes in the message.
func TestColourRoundTripShapes(t *testing.T) {
	for _, kind := range []string{"sigma", "vae", "ae"} {
		c := rgbConfig(kind)
		m := newModel(t, c)
		imgs := colourImages(3, c.ImageSize)
		z, err := m.Encode(imgs, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(z) != 3 || len(z[0]) != 16*c.Channels {
			t.Fatalf("%s: latents %d×%d", kind, len(z), len(z[0]))
		}
		mu, scale, err := m.EncodeMoments(imgs)
		if err != nil || len(mu) != 3 || len(scale[2]) != 16*c.Channels {
			t.Fatalf("%s: moments %d, %v", kind, len(mu), err)
		}
		img, err := m.Decode(z)
		if err != nil {
			t.Fatal(err)
		}
		if len(img) != 3 || len(img[0]) != 16*16*3 {
			t.Fatalf("%s: decoded %d×%d", kind, len(img), len(img[0]))
		}
	}
	m := newModel(t, rgbConfig("sigma"))
	if _, err := m.Encode([][]float32{make([]float32, 256)}, false); err == nil || err.Error() != "image 0 has 256 values, want 768 (16×16 pixels × 3 channels)" {
		t.Errorf("gray image to an RGB tokenizer: %v", err)
	}
}

// colourImages are n images of s×s×3 values: a disc of one of three
// colours on a background of another.
func colourImages(n, s int) [][]float32 {
	// k/255 values, which PNG files hold exactly.
	colours := [][3]float32{{1, 0, 0}, {0, 0, 1}, {float32(51) / 255, float32(204) / 255, float32(77) / 255}}
	out := make([][]float32, n)
	for i := range out {
		fg, bg := colours[i%3], colours[(i+1)%3]
		out[i] = make([]float32, s*s*3)
		r := float64(s) / (3 + float64(i%2))
		for y := range s {
			for x := range s {
				c := bg
				if math.Hypot(float64(x)-float64(s)/2, float64(y)-float64(s)/2) < r {
					c = fg
				}
				copy(out[i][(y*s+x)*3:], c[:])
			}
		}
	}
	return out
}

// TestColourFiles: RGB images go through PNG files, latents files and
// reconstruction grids in colour, channel order kept.
func TestColourFiles(t *testing.T) {
	c := rgbConfig("ae")
	m := newModel(t, c)
	dir := t.TempDir()
	imgs := colourImages(2, c.ImageSize)
	var paths []string
	for i, img := range imgs {
		p := filepath.Join(dir, fmt.Sprintf("in%d.png", i))
		if err := imageio.WriteRGB(p, img, c.ImageSize, c.ImageSize); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	zs, err := m.EncodePNGs(paths, false)
	if err != nil {
		t.Fatal(err)
	}
	direct, _ := m.Encode(imgs, false)
	if !slices.EqualFunc(zs, direct, slices.Equal[[]float32]) {
		t.Error("EncodePNGs of RGB PNGs gave other latents than Encode of the images")
	}
	out := filepath.Join(dir, "D")
	if err := m.DecodeToFolder(zs, out); err != nil {
		t.Fatal(err)
	}
	rec, _ := m.Decode(zs)
	back, err := imageio.ReadRGB(filepath.Join(out, "0001.png"), c.ImageSize, c.ImageSize)
	if err != nil {
		t.Fatal(err)
	}
	for j, v := range rec[1] {
		if q := float32(math.Round(float64(v)*255)) / 255; back[j] != q {
			t.Fatalf("decoded PNG value %d = %v, Decode gave %v", j, back[j], v)
		}
	}
	grid := filepath.Join(dir, "grid.png")
	if err := m.WriteReconstructionGrid(imgs, grid, 4); err != nil {
		t.Fatal(err)
	}
	// The first tile is the first original, a red disc on blue: its centre
	// is red and its corner blue.
	g := testutil.DecodePNG(t, grid)
	r, gr, b, _ := g.At(2+8, 2+8).RGBA()
	r2, _, b2, _ := g.At(2, 2).RGBA()
	if r>>8 != 255 || gr != 0 || b != 0 || r2 != 0 || b2>>8 != 255 {
		t.Errorf("grid tile 0: centre (%d, %d, %d), corner R %d B %d", r>>8, gr>>8, b>>8, r2>>8, b2>>8)
	}
	// A grayscale PNG is read as RGB with equal channels, so it encodes;
	// an RGB PNG is refused by a grayscale tokenizer.
	gray := filepath.Join(dir, "gray.png")
	if err := imageio.WriteGray(gray, make([]float32, 256), 16, 16); err != nil {
		t.Fatal(err)
	}
	if _, err := m.EncodePNGs([]string{gray}, false); err != nil {
		t.Errorf("gray PNG to an RGB tokenizer: %v", err)
	}
	g1 := tinyConfig("ae")
	g1.ImageSize = 16
	if _, err := newModel(t, g1).EncodePNGs(paths[:1], false); err == nil || !strings.Contains(err.Error(), "colour image") {
		t.Errorf("RGB PNG to a grayscale tokenizer: %v", err)
	}
}

// TestColourConfigJSON: in_channels and ssim_weight are written only when
// they are not the grayscale, SSIM-free defaults, and read back.
func TestColourConfigJSON(t *testing.T) {
	c := rgbConfig("sigma")
	c.SSIMWeight = 0.25
	var back Config
	if err := json.Unmarshal(c.JSON(), &back); err != nil || back != c {
		t.Fatalf("config %+v came back as %+v (%v)", c, back, err)
	}
	if s := string(c.JSON()); !strings.Contains(s, `"in_channels": 3`) || !strings.Contains(s, `"ssim_weight": 0.25`) {
		t.Errorf("config JSON %s", s)
	}
	for _, bad := range []func(*Config){
		func(c *Config) { c.InChannels = -1 },
		func(c *Config) { c.InChannels = MaxInChannels + 1 },
		func(c *Config) { c.SSIMWeight = math.NaN() },
		func(c *Config) { c.SSIMWeight = -1 },
		func(c *Config) { c.ImageSize, c.Patch = 4, 2 }, // smaller than the SSIM window
	} {
		b := c
		bad(&b)
		if err := b.Validate(); err == nil {
			t.Errorf("%+v accepted", b)
		}
	}
}

// TestSSIMGraph: the graph's SSIM is metrics.SSIM averaged over images and
// channels, 1 for an image with itself.
func TestSSIMGraph(t *testing.T) {
	const b, s, ch = 2, 12, 3
	rng := rand.New(rand.NewPCG(4, 4))
	x, y := make([]float32, b*s*s*ch), make([]float32, b*s*s*ch)
	for i := range x {
		x[i] = rng.Float32()
		y[i] = min(max(x[i]+float32(rng.NormFloat64()*0.2), 0), 1)
	}
	exec, err := model.NewExec(testutil.Backend(t, ""), model.NewStore(), func(_ *model.Scope, x, y *Node) (*Node, *Node, *Node) {
		return SSIM(x, y), SSIM(x, x), SSIM(Reshape(x, b*ch, s, s), Reshape(y, b*ch, s, s))
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Call(tensors.FromFlatDataAndDimensions(x, b, s, s, ch), tensors.FromFlatDataAndDimensions(y, b, s, s, ch))
	if err != nil {
		t.Fatal(err)
	}
	var want float64
	plane := func(v []float32, i, k int) []float32 {
		p := make([]float32, s*s)
		for j := range p {
			p[j] = v[(i*s*s+j)*ch+k]
		}
		return p
	}
	for i := range b {
		for k := range ch {
			want += metrics.SSIM(plane(x, i, k), plane(y, i, k), s, s) / (b * ch)
		}
	}
	got, self, rank3 := tensors.ToScalar[float32](out[0]), tensors.ToScalar[float32](out[1]), tensors.ToScalar[float32](out[2])
	t.Logf("SSIM graph %.6f, metrics.SSIM %.6f", got, want)
	if math.Abs(float64(got)-want) > 1e-5 || math.Abs(float64(self)-1) > 1e-5 {
		t.Errorf("SSIM(x, y) = %v, want %v; SSIM(x, x) = %v, want 1", got, want, self)
	}
	if !(rank3 > 0 && rank3 < 1) {
		t.Errorf("SSIM of [B, H, W] images = %v", rank3)
	}
}

// TestSSIMGradient checks the gradient of 1 − SSIM against central
// differences on the onnx backend, which the tokenizer trains on: the
// window sums are matrix products, so ONNX Runtime differentiates them.
func TestSSIMGradient(t *testing.T) {
	const s = 9
	store := model.NewStore()
	if err := nn.Init(store, []nn.Spec{{Name: "x", Shape: []int{1, s, s, 2}, Std: 1}}, 5, dtypes.Float64); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(6, 6))
	target := make([]float64, s*s*2)
	for i := range target {
		target[i] = rng.Float64()
	}
	checked := testutil.CheckGradients(t, testutil.Backend(t, "onnx"), store, func(scope *model.Scope, in []*Node) *Node {
		x := Sigmoid(nn.WeightsOf(scope.Store(), in[0].Graph()).Get("x"))
		return OneMinus(SSIM(x, in[0]))
	}, []any{tensors.FromFlatDataAndDimensions(target, 1, s, s, 2)}, 12, rng)
	if checked == 0 {
		t.Fatal("no gradient checked")
	}
}

// TestColourTrainingWithSSIM: a small RGB tokenizer with the SSIM term
// learns on the onnx backend; the loss falls.
func TestColourTrainingWithSSIM(t *testing.T) {
	cfg := rgbConfig("sigma")
	cfg.SSIMWeight = 0.5
	_, tr := testutil.TinyTrainer(t, cfg.Specs(), func(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
		l := cfg.Loss(scope, w, in[0])
		return []*Node{l.Total, l.SSIM}
	})
	imgs := colourImages(16, cfg.ImageSize)
	var flat []float32
	for _, im := range imgs {
		flat = append(flat, im...)
	}
	x := tensors.FromFlatDataAndDimensions(flat, cfg.ImageDims(len(imgs))...)
	var ssim float64
	testutil.ExpectLossFalls(t, 30, 4, 0.7, func(step int) float64 {
		res, err := tr.Step(x)
		if err != nil {
			t.Fatal(err)
		}
		ssim = res.Metrics[0]
		return res.Loss
	})
	if !(ssim > 0 && ssim <= 1) {
		t.Errorf("SSIM after training %v", ssim)
	}
}
