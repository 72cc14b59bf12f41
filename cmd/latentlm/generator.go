package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/dit"
	"github.com/latentlm/latentlm/internal/guard"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/vae"
)

// latentSampler generates one latent image (items·channels values) per
// class label.
type latentSampler interface {
	Sample(labels []int) ([][]float32, error)
}

// generator is a trained class-to-latent model of either architecture —
// LatentLM or the DiT baseline — behind what sampling and evaluation need.
type generator struct {
	kind     string
	classes  int
	channels int
	maxItems int // latent items per image the model can produce
	params   int
	tok      lm.Tokenizer
	store    *model.Store
	// sampler prepares generation of images of items latents.
	sampler func(b compute.Backend, items int, opts lm.SampleOptions) (latentSampler, error)
	// sampleBytes estimates the memory of sampling batch images at once.
	sampleBytes func(batch int) float64
}

// loadGenerator reads the checkpoint in dir, whichever its kind.
func loadGenerator(dir string) (*generator, error) {
	kind, err := checkpoint.ReadKind(dir)
	if err != nil {
		return nil, err
	}
	switch kind {
	case lm.Kind:
		cfg, store, tok, err := lm.Load(dir)
		if err != nil {
			return nil, err
		}
		return &generator{kind: lm.Kind, classes: cfg.Vocab.Classes, channels: cfg.Latent, maxItems: cfg.MaxLen - 3,
			params: nn.CountParams(cfg.Specs()), tok: tok, store: store,
			sampleBytes: func(batch int) float64 {
				return nn.MemoryEstimate(cfg.Specs(), lmActivations(cfg, batch, cfg.MaxLen, 1, false), false)
			},
			sampler: func(b compute.Backend, items int, opts lm.SampleOptions) (latentSampler, error) {
				return lm.NewSampler(b, store, cfg, items, opts)
			}}, nil
	case dit.Kind:
		cfg, store, tok, err := dit.Load(dir)
		if err != nil {
			return nil, err
		}
		return &generator{kind: dit.Kind, classes: cfg.Classes, channels: cfg.Latent, maxItems: cfg.Items(),
			params: nn.CountParams(cfg.Specs()), tok: tok, store: store,
			sampleBytes: func(batch int) float64 {
				return nn.MemoryEstimate(cfg.Specs(), ditActivations(cfg, batch, false), false)
			},
			sampler: func(b compute.Backend, items int, opts lm.SampleOptions) (latentSampler, error) {
				if items != cfg.Items() {
					return nil, fmt.Errorf("DiT %s makes grids of %d items, not %d", dir, cfg.Items(), items)
				}
				return dit.NewSampler(b, store, cfg, opts)
			}}, nil
	}
	return nil, fmt.Errorf("%s: checkpoint holds a %q model, want %q or %q", dir, kind, lm.Kind, dit.Kind)
}

// loadedModel is a generator with the tokenizer it was trained on.
type loadedModel struct {
	*generator
	tokenizer     *vae.Model
	dir, tokenDir string // the folders read: an output must not land in them
}

// checkSampling refuses, before any work, a generation of n images in
// batches of batch that would not fit the memory limit, or whose output
// would overwrite the model's own files.
func (m *loadedModel) checkSampling(fs *flags, n, batch int, out string) error {
	px := m.tokenizer.Config.ImageSize * m.tokenizer.Config.ImageSize
	if err := fs.checkMemory(fmt.Sprintf("generating %d images in batches of %d", n, batch), m.sampleBytes(min(batch, n))+imageBytes(n, px)); err != nil {
		return err
	}
	if out == "" {
		return nil
	}
	return guard.CheckOutput(out, m.dir, m.tokenDir)
}

// loadModel reads --model (default: the shipped demo weights) and its
// tokenizer (--vae, default: the one recorded in the model), refusing a
// tokenizer other than the one the model was trained with.
func loadModel(b compute.Backend, modelDir, vaeDir string) (*loadedModel, error) {
	var err error
	if modelDir == "" {
		if modelDir, err = weightsDir("latentlm-mnist"); err != nil {
			return nil, err
		}
	}
	gen, err := loadGenerator(modelDir)
	if err != nil {
		return nil, err
	}
	if vaeDir == "" {
		// The recorded path, else the shipped tokenizer of that name: the
		// checksum below decides which one is really the model's.
		vaeDir = gen.tok.Path
		if _, err := os.Stat(vaeDir); err != nil {
			if alt, err := weightsDir(filepath.Base(vaeDir)); err == nil {
				vaeDir = alt
			}
		}
	}
	sum, err := checkpoint.FileSHA256(filepath.Join(vaeDir, checkpoint.WeightsFile))
	if err != nil {
		return nil, fmt.Errorf("tokenizer of %s: %w", modelDir, err)
	}
	if sum != gen.tok.SHA256 {
		return nil, fmt.Errorf("tokenizer %s is not the one %s was trained with (sha256 %.12s…, want %.12s…)", vaeDir, modelDir, sum, gen.tok.SHA256)
	}
	tokenizer, err := vae.Load(b, vaeDir)
	if err != nil {
		return nil, err
	}
	if tokenizer.Config.Channels != gen.channels || tokenizer.Config.Items() > gen.maxItems {
		return nil, fmt.Errorf("tokenizer %s (%d channels, %d items) does not fit model %s (%d channels, at most %d items)",
			vaeDir, tokenizer.Config.Channels, tokenizer.Config.Items(), modelDir, gen.channels, gen.maxItems)
	}
	return &loadedModel{generator: gen, tokenizer: tokenizer, dir: modelDir, tokenDir: vaeDir}, nil
}

// generate samples images for labels in batches of at most batch.
func (m *loadedModel) generate(b compute.Backend, labels []int, opts lm.SampleOptions, batch int) ([][]float32, error) {
	s, err := m.sampler(b, m.tokenizer.Config.Items(), opts)
	if err != nil {
		return nil, err
	}
	var imgs [][]float32
	for start := 0; start < len(labels); start += batch {
		end := min(start+batch, len(labels))
		lat, err := s.Sample(labels[start:end])
		if err != nil {
			return nil, err
		}
		dec, err := m.tokenizer.Decode(lat)
		if err != nil {
			return nil, err
		}
		for _, img := range dec {
			for _, v := range img {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					return nil, fmt.Errorf("model %s produced non-finite pixel values: its weights or the sampling options are broken", m.dir)
				}
			}
		}
		imgs = append(imgs, dec...)
	}
	return imgs, nil
}
