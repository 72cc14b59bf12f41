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
