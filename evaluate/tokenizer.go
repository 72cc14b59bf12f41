package evaluate

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/latentlm/latentlm/data"
	"github.com/latentlm/latentlm/metrics"
	"github.com/latentlm/latentlm/vae"
)

// TokenizerReport is the measure of an image tokenizer (σ-VAE, VAE, AE or
// VQ-VAE) on a test split (the output of `latentlm vae eval`). Its JSON
// names are read by the scripts and documents of the project: keep them.
type TokenizerReport struct {
	// Checkpoint is the tokenizer's folder, left to the caller to fill in.
	Checkpoint string `json:"checkpoint"`
	// Kind is the tokenizer's kind: sigma, vae, ae or vq.
	Kind string `json:"kind"`
	// Data is the data set and Images the number of test images measured.
	Data   string `json:"data"`
	Images int    `json:"images"`
	// Channels is the number of channels of the images: 1 (gray) or 3
	// (RGB, in that order).
	Channels int `json:"channels"`
	// PSNR is that of the mean squared error of the reconstructions from μ
	// over the set (not a mean of per-image PSNRs), in dB; SSIM the mean
	// structural similarity. For colour images both are over all channels:
	// the PSNR of the mean squared error of every value, the mean of the
	// SSIMs of the channels.
	PSNR float64 `json:"psnr_db"`
	SSIM float64 `json:"ssim"`
	// PSNRPerChannel and SSIMPerChannel are PSNR and SSIM of each channel
	// on its own, for colour images only.
	PSNRPerChannel []float64 `json:"psnr_db_per_channel,omitempty"`
	SSIMPerChannel []float64 `json:"ssim_per_channel,omitempty"`
	// MuStd is the standard deviation of the posterior mean μ per latent
	// channel; Collapsed counts the channels with MuStd < 0.01.
	MuStd     []float64 `json:"mu_std_per_channel"`
	Collapsed int       `json:"collapsed_channels"`
	// NoisyPSNR is the PSNR when Gaussian noise of std 0.1, 0.2 and 0.5 (the
	// keys) is added to the normalised latents before decoding.
	NoisyPSNR map[string]float64 `json:"psnr_db_with_latent_noise"`
	// Codebook is how a vq tokenizer uses its codebook over the set; nil
	// for the other kinds.
	Codebook    *CodebookUsage `json:"codebook_usage,omitempty"`
	EvalSeconds float64        `json:"eval_seconds"`
}

// CodebookUsage is how often a VQ tokenizer (vae kind vq; van den Oord et
// al. 2017) uses each entry of its codebook, the usage that issue 16 asks
// to report beside the reconstruction (docs/DESIGN.md §9).
type CodebookUsage struct {
	// Size is the number of entries K; Codes the number of latents counted.
	Size  int   `json:"size"`
	Codes int64 `json:"codes"`
	// Used counts the entries chosen at least once, Dead those never
	// chosen (Size − Used).
	Used int `json:"used"`
	Dead int `json:"dead_codes"`
	// Perplexity is exp(H(p)) of the codes' frequencies p (natural log): K
	// when all are used equally, m for m codes used equally, 1 for one.
	Perplexity float64 `json:"perplexity"`
}

// CodeUsage summarises a histogram of codes (hist[k] the number of latents
// given code k).
func CodeUsage(hist []int64) CodebookUsage {
	u := CodebookUsage{Size: len(hist)}
	for _, n := range hist {
		u.Codes += n
		if n > 0 {
			u.Used++
		}
	}
	u.Dead = u.Size - u.Used
	var h float64
	for _, n := range hist {
		if n > 0 {
			p := float64(n) / float64(u.Codes)
			h -= p * math.Log(p)
		}
	}
	if u.Codes > 0 {
		u.Perplexity = math.Exp(h)
	}
	return u
}

// tokenizerBatch is the number of images encoded at once.
const tokenizerBatch = 500

// Tokenizer measures m on the first n images of test (all of them when
// n ≤ 0 or n exceeds the split), as TokenizerImages does.
func Tokenizer(m *vae.Model, test *data.Dataset, n int) (*TokenizerReport, error) {
	total := test.N
	if n > 0 && n < total {
		total = n
	}
	px := test.Height * test.Width
	return TokenizerImages(m, test.Name, func(yield func([][]float32) error) error {
		for start := 0; start < total; start += tokenizerBatch {
			imgs := make([][]float32, min(start+tokenizerBatch, total)-start)
			for i := range imgs {
				imgs[i] = make([]float32, px)
				test.Float32(start+i, imgs[i])
			}
			if err := yield(imgs); err != nil {
				return err
			}
		}
		return nil
	})
}

// TokenizerImages measures m on the images that images yields, a batch at
// a time (each image m.Config.Pixels() values, H×W×C as the tokenizer
// takes them; recipe.ImageSet.Batches gives them for every data set):
// reconstruction from μ (PSNR and SSIM, and for colour per channel), the
// spread of μ, and the decoder's tolerance of noise added to the
// (normalised) latents (docs/DESIGN.md §2), and for a vq tokenizer the use
// of its codebook (CodeUsage). The noise is seeded, so that
// the report of a tokenizer is reproducible. name is the data set, for the
// report.
func TokenizerImages(m *vae.Model, name string, images func(yield func([][]float32) error) error) (*TokenizerReport, error) {
	t0 := time.Now()
	c := m.Config
	ch, s := c.ImageChannels(), c.ImageSize
	rep := &TokenizerReport{Kind: c.Kind.String(), Data: name, Channels: ch, NoisyPSNR: map[string]float64{}}
	noise := []float64{0.1, 0.2, 0.5}
	var mse float64
	noisyMSE := make([]float64, len(noise))
	chSE, chSSIM := make([]float64, ch), make([]float64, ch)
	sum, sq := make([]float64, c.Channels), make([]float64, c.Channels)
	count, items := 0, 0
	rng := rand.New(rand.NewPCG(1, 0x6e6f697365)).NormFloat64
	a, b := make([]float32, s*s), make([]float32, s*s) // one channel of an image
	var hist []int64                                   // codes of a vq tokenizer
	if c.Kind == vae.VQ {
		hist = make([]int64, c.Codebook)
	}
	err := images(func(imgs [][]float32) error {
		zs, err := m.Encode(imgs, false)
		if err != nil {
			return err
		}
		if hist != nil {
			codes, err := m.Codes(imgs)
			if err != nil {
				return err
			}
			for _, img := range codes {
				for _, k := range img {
					hist[k]++
				}
			}
		}
		rec, err := m.Decode(zs)
		if err != nil {
			return err
		}
		for i := range imgs {
			mse += meanSq(imgs[i], rec[i])
			if ch == 1 {
				chSSIM[0] += metrics.SSIM(imgs[i], rec[i], s, s)
			} else {
				for k := range ch {
					for j := range a {
						a[j], b[j] = imgs[i][j*ch+k], rec[i][j*ch+k]
					}
					chSE[k] += meanSq(a, b)
					chSSIM[k] += metrics.SSIM(a, b, s, s)
				}
			}
			for k, v := range zs[i] {
				// zs are normalised; μ in raw units is z·std + mean.
				raw := float64(v)*float64(m.Std[k%c.Channels]) + float64(m.Mean[k%c.Channels])
				sum[k%c.Channels] += raw
				sq[k%c.Channels] += raw * raw
			}
			items += c.Items()
		}
		count += len(imgs)
		for j, s := range noise {
			noisy := make([][]float32, len(zs))
			for i, z := range zs {
				noisy[i] = make([]float32, len(z))
				for k, v := range z {
					// The latents are normalised, so the latent std is 1.
					noisy[i][k] = v + float32(s*rng())
				}
			}
			out, err := m.Decode(noisy)
			if err != nil {
				return err
			}
			for i := range imgs {
				noisyMSE[j] += meanSq(imgs[i], out[i])
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if count == 0 {
		return nil, errors.New("no images to measure the tokenizer on")
	}
	rep.Images = count
	rep.PSNR = psnrOfMeanMSE(mse / float64(count))
	for k := range ch {
		rep.SSIM += chSSIM[k] / float64(count*ch)
	}
	if ch > 1 {
		for k := range ch {
			rep.PSNRPerChannel = append(rep.PSNRPerChannel, psnrOfMeanMSE(chSE[k]/float64(count)))
			rep.SSIMPerChannel = append(rep.SSIMPerChannel, chSSIM[k]/float64(count))
		}
	}
	for k := range sum {
		mean := sum[k] / float64(items)
		sd := math.Sqrt(math.Max(sq[k]/float64(items)-mean*mean, 0))
		rep.MuStd = append(rep.MuStd, sd)
		if sd < 0.01 {
			rep.Collapsed++
		}
	}
	for j, s := range noise {
		rep.NoisyPSNR[strconv.FormatFloat(s, 'f', -1, 64)] = psnrOfMeanMSE(noisyMSE[j] / float64(count))
	}
	if hist != nil {
		u := CodeUsage(hist)
		rep.Codebook = &u
	}
	rep.EvalSeconds = time.Since(t0).Seconds()
	return rep, nil
}

// ChannelNames names the channels of images of c channels, for reports:
// "gray", or "R", "G", "B".
func ChannelNames(c int) []string {
	switch c {
	case 1:
		return []string{"gray"}
	case 3:
		return []string{"R", "G", "B"}
	}
	names := make([]string, c)
	for k := range names {
		names[k] = fmt.Sprintf("channel %d", k)
	}
	return names
}

// psnrOfMeanMSE is the PSNR of the mean squared error over the set (the
// data set's PSNR, not a mean of per-image PSNRs).
func psnrOfMeanMSE(mse float64) float64 { return vae.PSNR(mse) }

// meanSq is the mean squared difference of a and b.
func meanSq(a, b []float32) float64 {
	var s float64
	for i := range a {
		d := float64(a[i] - b[i])
		s += d * d
	}
	return s / float64(len(a))
}
