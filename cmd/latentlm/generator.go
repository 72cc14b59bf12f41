package main

import (
	"context"
	"fmt"

	"github.com/latentlm/latentlm"
	"github.com/latentlm/latentlm/evaluate"
	"github.com/latentlm/latentlm/internal/guard"
	"github.com/latentlm/latentlm/internal/progress"
	"github.com/latentlm/latentlm/lm"
)

// loadModel opens --model (default: the shipped demo weights) and its
// tokenizer (--vae, default: the one recorded in the model) through the
// public API, which refuses a tokenizer other than the model's own.
func loadModel(backendName, modelDir, vaeDir string, batch int) (*latentlm.Generator, error) {
	var err error
	if modelDir == "" {
		if modelDir, err = weightsDir("latentlm-mnist"); err != nil {
			return nil, err
		}
	}
	opts := []latentlm.Option{latentlm.WithBatch(min(batch, latentlm.MaxBatch))}
	if backendName != "" {
		opts = append(opts, latentlm.WithBackend(backendName))
	}
	if vaeDir != "" {
		opts = append(opts, latentlm.WithTokenizer(vaeDir))
	}
	return latentlm.Load(modelDir, opts...)
}

// checkSampling refuses, before any work, a generation of n images that
// would not fit the memory limit, or whose output would overwrite the
// model's own files.
func checkSampling(fs *flags, g *latentlm.Generator, n int, out string) error {
	if err := fs.checkMemory(fmt.Sprintf("generating %d images", n), g.MemoryEstimate(n)); err != nil {
		return err
	}
	return guard.CheckOutputFormat(out, ".png", g.Dir(), g.TokenizerDir())
}

// generate draws one image per label (evaluate.Generate, which splits a
// long list into requests of at most latentlm.MaxImages), with a progress
// bar of the latents drawn unless quiet: DDPM over all 1000 steps
// (--steps 0), or a large grid, takes minutes.
func generate(g *latentlm.Generator, labels []int, opts lm.SampleOptions, quiet bool) ([][]float32, error) {
	bar := progress.Quiet()
	if !quiet {
		bar = progress.New(0, "sampling")
	}
	batch, last := -1, -1 // the batch in progress (its Offset) and its last latent reported
	imgs, err := evaluate.GenerateStream(context.Background(), g, labels, opts, func(p latentlm.Progress) error {
		if batch < 0 {
			bar.SetTotal(len(labels) * p.Latents)
		}
		if p.Offset != batch {
			batch, last = p.Offset, -1
		}
		// A DiT batch reports once, with all its latents drawn.
		bar.Step((p.Index-last)*p.Count, fmt.Sprintf("images %d–%d of %d", p.Offset+1, p.Offset+p.Count, len(labels)))
		last = p.Index
		return nil
	})
	if err == nil {
		bar.Finish()
	}
	return imgs, err
}
