package transfusion

import "github.com/latentlm/latentlm/nn"

// ForwardFLOPs counts the matmul FLOPs (2 per multiply-add) of one teacher-
// forced forward pass over batch sequences of length items, as Loss
// computes it and as lm.Config.ForwardFLOPs and dit.Config.ForwardFLOPs
// count theirs: the backbone over every item (attention over the whole
// length, as computed, whatever the mask hides), the timestep embedding
// and the softmax head at every item, and the output layer at every item.
// There is one noise draw per image: a second would cost another pass of
// the whole Transformer, where LatentLM's batch_mul draws cost its light
// head only. A training step, forward and backward, is counted as 3 times
// this, as the recipes do ("train_gflop" in a checkpoint's info).
func (c Config) ForwardFLOPs(batch, length int) float64 {
	d, v, lat := float64(c.Dim), float64(c.Vocab.Size()), float64(c.Latent)
	return float64(batch) * float64(length) * (c.itemFLOPs(length) + 2*d*v + 2*d*lat)
}

// SampleFLOPs counts the matmul FLOPs of drawing one image of items
// latents after a prefix of prefix items (<|endoftext|> caption <BOL>)
// with steps solver steps under guidance (two streams), as lm.Config and
// dit.Config count theirs: per stream, the prefix once through the KV
// cache, then at every solver step the whole Transformer over the image's
// items and the output layer, attention over the whole fixed-length cache
// (as computed). Where LatentLM pays the backbone once per latent and its
// light head per step, Transfusion pays the backbone per step, as DiT
// does, but on the image block alone.
func (c Config) SampleFLOPs(prefix, items, steps int) float64 {
	d, lat := float64(c.Dim), float64(c.Latent)
	block := float64(items) * (c.itemFLOPs(c.MaxLen) + 2*d*lat)
	return 2 * (float64(prefix)*c.itemFLOPs(c.MaxLen) + float64(steps)*block)
}

// itemFLOPs is the backbone's work for one item attending over keys
// items: its latent and timestep embeddings (computed at every item and
// masked, as Embed does) and every block.
func (c Config) itemFLOPs(keys int) float64 {
	d := float64(c.Dim)
	kv := float64(c.KVHeads) * d / float64(c.Heads)
	h := float64(nn.SwiGLUHidden(c.Dim, c.MLPRatio))
	layer := 2*d*(d+2*kv) + 2*d*d + 2*3*d*h + 2*2*float64(keys)*d
	return 2*float64(c.Latent)*d + 2*timestepFeatures*d + 2*d*d + float64(c.Depth)*layer
}

// Activations counts, generously, the float32 values live at once (as
// lm.Config.Activations does): training keeps every block's activations
// over batch sequences of seq items; sampling keeps the KV caches of
// batch streams over MaxLen and one pass over an image block of items.
func (c Config) Activations(batch, seq, items int, training bool) float64 {
	b, d := float64(batch), float64(c.Dim)
	perItem := d * float64(c.Depth) * (12 + 4*c.MLPRatio)
	if training {
		s := float64(seq)
		attn := b * float64(c.Heads) * s * s * float64(c.Depth)
		return 2 * (b*s*perItem + attn)
	}
	kv := 2 * 2 * float64(c.Depth) * b * float64(c.MaxLen) * d
	attn := b * float64(c.Heads) * float64(items) * float64(c.MaxLen) * float64(c.Depth)
	return kv + 2*(b*float64(items)*perItem+attn)
}

// TrainBytes estimates the memory of training on batch sequences of seq
// items (nn.MemoryEstimate: weights, gradients, Adam moments, EMA and
// activations).
func (c Config) TrainBytes(batch, seq int) float64 {
	return nn.MemoryEstimate(c.Specs(), c.Activations(batch, seq, 0, true), true)
}
