package main

import (
	"context"
	"fmt"

	"github.com/latentlm/latentlm"
	"github.com/latentlm/latentlm/evaluate"
	"github.com/latentlm/latentlm/internal/guard"
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
// long list into requests of at most latentlm.MaxImages).
func generate(g *latentlm.Generator, labels []int, opts lm.SampleOptions) ([][]float32, error) {
	return evaluate.Generate(context.Background(), g, labels, opts)
}
