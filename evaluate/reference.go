package evaluate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/latentlm/latentlm"
	"github.com/latentlm/latentlm/canvas"
	"github.com/latentlm/latentlm/data"
	"github.com/latentlm/latentlm/vae"
)

// References are the kinds of reference rows, in the order of
// `latentlm eval --reference all`:
//
//	test   N() other class-balanced test images (the floor: what real
//	       images score)
//	train  N() class-balanced training images (for a canvas set, from its
//	       judge split, which has every scene)
//	recon  σ-VAE reconstructions of the test row's images
//	noise  Gaussian noise with the test pixels' mean and std, clipped to
//	       [0, 1] (the ceiling)
var References = []string{"test", "train", "recon", "noise"}

// Reference scores the reference row of the given kind (see References)
// with N() images. vaeDir is the tokenizer of a recon row ("" for the
// shipped weights/vae-<data>); seed draws the noise row.
func (c *Context) Reference(kind, vaeDir string, seed uint64) (*Row, error) {
	if c.testMu == nil {
		return nil, errUnprepared
	}
	t := time.Now()
	row := &Row{Source: "reference:" + kind}
	var imgs [][]float32
	var labels []int
	pick := func(d *data.Dataset, skip int) error {
		idx, err := BalancedIndices(d, c.n, skip)
		if err != nil {
			return err
		}
		all, _ := DatasetImages(d.Subset(idx))
		imgs, labels = all, ClassLabels(c.n, Classes(d))
		return nil
	}
	switch kind {
	case "test":
		// The images after those of the k-NN reference.
		if err := pick(c.Test, 1); err != nil {
			return nil, err
		}
	case "train":
		// A canvas set's train split lacks the held-out scenes; its judge
		// split draws every scene from the same training images.
		split := "train"
		if canvas.IsCanvas(c.Data) {
			split = "judge"
		}
		ds, err := LoadSplit(c.Data, split)
		if err != nil {
			return nil, err
		}
		if err := pick(ds, 0); err != nil {
			return nil, err
		}
	case "recon":
		var err error
		if vaeDir == "" {
			if vaeDir, err = latentlm.ShippedWeights("vae-" + c.Data); err != nil {
				return nil, err
			}
		}
		tok, err := vae.Load(c.backend, vaeDir)
		if err != nil {
			return nil, err
		}
		defer func() {
			tok.Close()
			tok.Store.Finalize()
		}()
		if err := pick(c.Test, 1); err != nil {
			return nil, err
		}
		row.Path = vaeDir
		for start := 0; start < len(imgs); start += 500 {
			end := min(start+500, len(imgs))
			z, err := tok.Encode(imgs[start:end], false)
			if err != nil {
				return nil, err
			}
			rec, err := tok.Decode(z)
			if err != nil {
				return nil, err
			}
			copy(imgs[start:end], rec)
		}
	case "noise":
		var sum, sq float64
		for _, p := range c.Test.Images {
			v := float64(p) / 255
			sum += v
			sq += v * v
		}
		count := float64(len(c.Test.Images))
		mean := sum / count
		std := math.Sqrt(sq/count - mean*mean)
		rng := rand.New(rand.NewPCG(seed, 0x6e6f697365))
		px := c.Test.Height * c.Test.Width
		imgs = make([][]float32, c.n)
		for i := range imgs {
			imgs[i] = make([]float32, px)
			for k := range imgs[i] {
				imgs[i][k] = float32(math.Min(1, math.Max(0, mean+std*rng.NormFloat64())))
			}
		}
	default:
		return nil, fmt.Errorf("unknown reference %q", kind)
	}
	if err := c.Score(row, imgs, labels); err != nil {
		return nil, err
	}
	row.Seconds = time.Since(t).Seconds()
	return row, nil
}
