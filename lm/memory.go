package lm

import "github.com/latentlm/latentlm/nn"

// Activations counts, generously, the float32 values live at once in a
// step on batch sequences of seq items: training keeps every block's
// activations for the backward pass (and the diffusion head's, batchMul
// draws per latent); sampling keeps the KV cache of both guidance streams
// over MaxLen. With nn.MemoryEstimate it lets a command refuse, before it
// allocates anything, work that would not fit in memory.
func (c Config) Activations(batch, seq, batchMul int, training bool) float64 {
	b, s, d := float64(batch), float64(seq), float64(c.Dim)
	if training {
		head := b * s * float64(batchMul) * float64(c.HeadDim) * float64(c.HeadDepth) * 16
		attn := b * float64(c.Heads) * s * s * float64(c.Depth)
		return 2 * (b*s*d*float64(c.Depth)*(12+4*c.MLPRatio) + attn + head)
	}
	kv := 2 * 2 * float64(c.Depth) * b * float64(c.MaxLen) * d
	return kv + b*d*(8+4*c.MLPRatio) + 2*b*float64(c.HeadDim)*16
}

// TrainBytes estimates the memory of training c on batch sequences of seq
// items with batchMul noise draws per latent (nn.MemoryEstimate: weights,
// gradients, Adam moments, EMA and activations).
func (c Config) TrainBytes(batch, seq, batchMul int) float64 {
	return nn.MemoryEstimate(c.Specs(), c.Activations(batch, seq, batchMul, true), true)
}
