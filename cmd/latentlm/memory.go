package main

import (
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
)

// imageBytes is the memory of n images of px pixels held on the host, with
// their latents, a PNG grid scaled 2× and the encoding buffers.
func imageBytes(n, px int) float64 { return float64(n) * float64(px) * 4 * 8 }

// lmTrainBytes is the memory estimate of training c on batch sequences.
func lmTrainBytes(c lm.Config, batch, seq, batchMul int) float64 {
	return nn.MemoryEstimate(c.Specs(), c.Activations(batch, seq, batchMul, true), true)
}
