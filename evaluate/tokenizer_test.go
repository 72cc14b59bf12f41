package evaluate

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/backend"
	"github.com/latentlm/latentlm/metrics"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/vae"
)

// untrainedTokenizer is a tiny tokenizer of s×s images of ch channels with
// its initial weights.
func untrainedTokenizer(t *testing.T, s, ch int) *vae.Model {
	t.Helper()
	c := vae.DefaultConfig()
	c.ImageSize, c.InChannels, c.Patch, c.Channels, c.Dim, c.Depth, c.Heads = s, ch, 4, 4, 16, 1, 2
	return untrainedTokenizerOf(t, c)
}

// untrainedTokenizerOf is a tokenizer of config c with its initial weights.
func untrainedTokenizerOf(t *testing.T, c vae.Config) *vae.Model {
	t.Helper()
	store := model.NewStore()
	if err := nn.Init(store, c.Specs(), 1, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	b, err := backend.Open(backend.Resolve(""))
	if err != nil {
		t.Fatal(err)
	}
	m, err := vae.NewModel(b, c, store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// TestTokenizerImagesColour: for RGB images the report has PSNR and SSIM
// per channel, and the overall ones are made of them: the PSNR of the mean
// of the channels' squared errors, the mean of their SSIMs.
func TestTokenizerImagesColour(t *testing.T) {
	const s = 12
	m := untrainedTokenizer(t, s, 3)
	rng := rand.New(rand.NewPCG(2, 2))
	imgs := make([][]float32, 5)
	for i := range imgs {
		imgs[i] = make([]float32, s*s*3)
		for j := range imgs[i] {
			// Channels of distinct brightness, so that they score apart.
			imgs[i][j] = float32(j%3)*0.4 + 0.1*rng.Float32()
		}
	}
	batches := func(yield func([][]float32) error) error {
		if err := yield(imgs[:3]); err != nil {
			return err
		}
		return yield(imgs[3:])
	}
	rep, err := TokenizerImages(m, "shapes", batches)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", rep)
	if rep.Images != 5 || rep.Channels != 3 || rep.Data != "shapes" || len(rep.PSNRPerChannel) != 3 || len(rep.SSIMPerChannel) != 3 || len(rep.NoisyPSNR) != 3 {
		t.Fatalf("report %+v", rep)
	}
	var mse, ssim float64
	for k := range 3 {
		mse += math.Pow(10, -rep.PSNRPerChannel[k]/10) / 3
		ssim += rep.SSIMPerChannel[k] / 3
	}
	if math.Abs(vae.PSNR(mse)-rep.PSNR) > 1e-9 || math.Abs(ssim-rep.SSIM) > 1e-12 {
		t.Errorf("overall PSNR %v, SSIM %v; from the channels %v, %v", rep.PSNR, rep.SSIM, vae.PSNR(mse), ssim)
	}
	if slices.Equal(rep.PSNRPerChannel[:1], rep.PSNRPerChannel[1:2]) {
		t.Errorf("channels R and G score the same: %v", rep.PSNRPerChannel)
	}
	// The green channel of image 0 on its own, by hand.
	zs, _ := m.Encode(imgs[:1], false)
	rec, _ := m.Decode(zs)
	a, b := make([]float32, s*s), make([]float32, s*s)
	for j := range a {
		a[j], b[j] = imgs[0][3*j+1], rec[0][3*j+1]
	}
	one, err := TokenizerImages(m, "one", func(yield func([][]float32) error) error { return yield(imgs[:1]) })
	if err != nil {
		t.Fatal(err)
	}
	if want := metrics.SSIM(a, b, s, s); math.Abs(one.SSIMPerChannel[1]-want) > 1e-12 {
		t.Errorf("SSIM of G %v, want %v", one.SSIMPerChannel[1], want)
	}
	if got := ChannelNames(3); !slices.Equal(got, []string{"R", "G", "B"}) {
		t.Errorf("ChannelNames(3) = %v", got)
	}
	if _, err := TokenizerImages(m, "none", func(func([][]float32) error) error { return nil }); err == nil {
		t.Error("a report on no images")
	}
}

// TestTokenizerImagesGray: a grayscale report has no per-channel figures.
func TestTokenizerImagesGray(t *testing.T) {
	m := untrainedTokenizer(t, 8, 0)
	img := make([]float32, 64)
	for j := range img {
		img[j] = float32(j) / 64
	}
	rep, err := TokenizerImages(m, "ramp", func(yield func([][]float32) error) error { return yield([][]float32{img, img}) })
	if err != nil {
		t.Fatal(err)
	}
	if rep.Channels != 1 || rep.PSNRPerChannel != nil || rep.SSIMPerChannel != nil || rep.Images != 2 || !(rep.SSIM > -1 && rep.SSIM < 1) {
		t.Errorf("report %+v", rep)
	}
}

// TestCodeUsage: the perplexity of a histogram spread evenly over m codes
// is m, whatever K, and the codes never chosen are dead.
func TestCodeUsage(t *testing.T) {
	hist := make([]int64, 16)
	for _, k := range []int{1, 4, 5, 9, 15} {
		hist[k] = 7
	}
	u := CodeUsage(hist)
	if u.Size != 16 || u.Used != 5 || u.Dead != 11 || u.Codes != 35 || math.Abs(u.Perplexity-5) > 1e-12 {
		t.Errorf("even over 5 of 16: %+v", u)
	}
	// One code only: perplexity 1. Two codes at 3:1: exp(H) with
	// H = −(¾ln¾ + ¼ln¼).
	if u := CodeUsage([]int64{0, 9, 0}); u.Perplexity != 1 || u.Dead != 2 {
		t.Errorf("one code: %+v", u)
	}
	want := math.Exp(-(0.75*math.Log(0.75) + 0.25*math.Log(0.25)))
	if u := CodeUsage([]int64{3, 1}); math.Abs(u.Perplexity-want) > 1e-12 || u.Dead != 0 {
		t.Errorf("3:1: %+v, want perplexity %v", u, want)
	}
	if u := CodeUsage(make([]int64, 4)); u.Perplexity != 0 || u.Dead != 4 {
		t.Errorf("no codes: %+v", u)
	}
}

// TestTokenizerImagesVQ: a vq tokenizer's report counts every latent's
// code; other kinds have no codebook usage.
func TestTokenizerImagesVQ(t *testing.T) {
	c := vae.DefaultConfig()
	c.Kind, c.Codebook = vae.VQ, 8
	c.ImageSize, c.Patch, c.Channels, c.Dim, c.Depth, c.Heads = 8, 4, 4, 16, 1, 2
	m := untrainedTokenizerOf(t, c)
	rng := rand.New(rand.NewPCG(5, 6))
	imgs := make([][]float32, 6)
	for i := range imgs {
		imgs[i] = make([]float32, 64)
		for j := range imgs[i] {
			imgs[i][j] = rng.Float32()
		}
	}
	rep, err := TokenizerImages(m, "noise", func(yield func([][]float32) error) error { return yield(imgs) })
	if err != nil {
		t.Fatal(err)
	}
	u := rep.Codebook
	if rep.Kind != "vq" || u == nil || u.Size != 8 || u.Codes != 6*4 || u.Used+u.Dead != 8 || u.Used < 1 || !(u.Perplexity >= 1 && u.Perplexity <= float64(u.Used)+1e-9) {
		t.Fatalf("report %+v, usage %+v", rep, u)
	}
	if !(rep.PSNR > 0) {
		t.Errorf("PSNR %v", rep.PSNR)
	}
	if rep, err := TokenizerImages(untrainedTokenizer(t, 8, 0), "noise", func(yield func([][]float32) error) error { return yield(imgs) }); err != nil || rep.Codebook != nil {
		t.Errorf("sigma report has codebook usage %+v (%v)", rep.Codebook, err)
	}
}
