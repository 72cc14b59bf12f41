package main

import (
	"github.com/latentlm/latentlm/dit"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
)

// The activation counts below are deliberately generous: a refusal costs
// the user one flag, an underestimate costs the machine.

// lmActivations counts the live float32 values of a LatentLM step on batch
// sequences of seq items (training keeps every block's activations for the
// backward pass; sampling keeps the KV cache of both CFG streams).
func lmActivations(c lm.Config, batch, seq, batchMul int, training bool) float64 {
	b, s, d := float64(batch), float64(seq), float64(c.Dim)
	head := b * s * float64(batchMul) * float64(c.HeadDim) * float64(c.HeadDepth) * 16
	if training {
		attn := b * float64(c.Heads) * s * s * float64(c.Depth)
		return 2 * (b*s*d*float64(c.Depth)*(12+4*c.MLPRatio) + attn + head)
	}
	kv := 2 * 2 * float64(c.Depth) * b * float64(c.MaxLen) * d
	return kv + b*d*(8+4*c.MLPRatio) + 2*b*float64(c.HeadDim)*16
}

// ditActivations is lmActivations for the DiT baseline, which runs the
// whole grid through every block at each solver step.
func ditActivations(c dit.Config, batch int, training bool) float64 {
	b, s, d := float64(batch), float64(c.Items()), float64(c.Dim)
	per := b * s * d * (12 + 4*c.MLPRatio) * float64(c.Depth)
	attn := b * float64(c.Heads) * s * s * float64(c.Depth)
	if training {
		return 2 * (per + attn)
	}
	return 2 * 2 * (per + attn) / float64(c.Depth) // CFG streams, one block live
}

// imageBytes is the memory of n generated images of px pixels held on the
// host, with their latents, a PNG grid scaled 2× and the encoding buffers.
func imageBytes(n, px int) float64 { return float64(n) * float64(px) * 4 * 8 }

// modelTrainBytes is the estimate for training cfg on batch sequences.
func lmTrainBytes(c lm.Config, batch, seq, batchMul int) float64 {
	return nn.MemoryEstimate(c.Specs(), lmActivations(c, batch, seq, batchMul, true), true)
}
