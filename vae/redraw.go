package vae

import (
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/data"
	"github.com/latentlm/latentlm/nn"
)

// Redraw draws, inside a training graph, the latents a language model trains
// on from what EncodeMoments computed once per image: z = μ + scale·ε with
// ε ~ N(0,1) per element, the noise multiplied for the σ-VAE
// (PerExampleNoise) by one |N(0,1)| per example, as the paper re-draws the
// σ-VAE's noise at every step. mu and scale have the shape
// [batch, items, channels] (any rank with the batch first); the draws come
// from the scope's random state.
func (c Config) Redraw(scope *model.Scope, mu, scale *Node) *Node {
	g := mu.Graph()
	noise := Mul(scale, scope.RandomNormal(g, mu.Shape()))
	if c.PerExampleNoise() {
		dims := make([]int, mu.Rank())
		for i := range dims {
			dims[i] = 1
		}
		dims[0] = mu.Shape().Dimensions[0]
		noise = Mul(noise, Abs(scope.RandomNormal(g, nn.Shape(mu.DType(), dims...))))
	}
	return Add(mu, noise)
}

// momentsBatch is how many images DatasetMoments encodes at once.
const momentsBatch = 1000

// DatasetMoments encodes every image of d with EncodeMoments, in order, and
// returns the means and noise scales of all of them, each flat: image i's
// items·channels values start at i·items·channels. Redraw turns a batch of
// them into latents.
func (m *Model) DatasetMoments(d *data.Dataset) (mu, scale []float32, err error) {
	per := m.Config.Items() * m.Config.Channels
	mu = make([]float32, 0, d.N*per)
	scale = make([]float32, 0, d.N*per)
	px := d.Height * d.Width
	for start := 0; start < d.N; start += momentsBatch {
		imgs := make([][]float32, min(start+momentsBatch, d.N)-start)
		for i := range imgs {
			imgs[i] = make([]float32, px)
			d.Float32(start+i, imgs[i])
		}
		bm, bs, err := m.EncodeMoments(imgs)
		if err != nil {
			return nil, nil, err
		}
		for i := range bm {
			mu = append(mu, bm[i]...)
			scale = append(scale, bs[i]...)
		}
	}
	return mu, scale, nil
}
