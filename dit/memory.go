package dit

// Activations is lm.Config.Activations for the DiT baseline, which runs the
// whole grid through every block at each solver step: training keeps every
// block's activations, sampling one block's for both guidance streams.
func (c Config) Activations(batch int, training bool) float64 {
	b, s, d := float64(batch), float64(c.Items()), float64(c.Dim)
	per := b * s * d * (12 + 4*c.MLPRatio) * float64(c.Depth)
	attn := b * float64(c.Heads) * s * s * float64(c.Depth)
	if training {
		return 2 * (per + attn)
	}
	return 2 * 2 * (per + attn) / float64(c.Depth)
}
