package lm

import (
	"errors"
	"fmt"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/nn"
)

// ClassItems lays out class-conditional image sequences for labels [B]
// (int32) and latents [B, N, C] in the config's layout: [class] <BOL>
// z₀ … z_{N−1} <EOL> (LayoutBOL), or [class] z₀ … z_{N−2} (LayoutPublic,
// whose last latent is only a target); every item is valid.
func (c Config) ClassItems(labels, latents *Node) Items {
	g := labels.Graph()
	dims := latents.Shape().Dimensions
	batch, n := dims[0], dims[1]
	if c.Layout == LayoutPublic {
		ids := InsertAxes(labels, -1)
		lat := Zeros(g, nn.Shape(latents.DType(), batch, 1, c.Latent))
		isLat := Zeros(g, nn.Shape(latents.DType(), batch, 1))
		if n > 1 {
			ids = Concatenate([]*Node{ids, Zeros(g, nn.Shape(dtypes.Int32, batch, n-1))}, 1)
			lat = Concatenate([]*Node{lat, SliceAxis(latents, 1, AxisRange(0, n-1))}, 1)
			isLat = Concatenate([]*Node{isLat, Ones(g, nn.Shape(latents.DType(), batch, n-1))}, 1)
		}
		return Items{Ids: ids, Latents: lat, IsLatent: isLat}
	}
	col := func(id int) *Node { return BroadcastToDims(Scalar(g, dtypes.Int32, id), batch, 1) }
	ids := Concatenate([]*Node{InsertAxes(labels, -1), col(c.Vocab.BOL()), Zeros(g, nn.Shape(dtypes.Int32, batch, n)), col(c.Vocab.EOL())}, 1)
	zero := Zeros(g, nn.Shape(latents.DType(), batch, 2, c.Latent))
	lat := Concatenate([]*Node{zero, latents, SliceAxis(zero, 1, AxisElem(0))}, 1)
	isLat := Concatenate([]*Node{Zeros(g, nn.Shape(latents.DType(), batch, 2)), Ones(g, nn.Shape(latents.DType(), batch, n)), Zeros(g, nn.Shape(latents.DType(), batch, 1))}, 1)
	return Items{Ids: ids, Latents: lat, IsLatent: isLat}
}

// ClassLoss is the class-conditional objective: labels are replaced by the
// null class with probability labelDropout (for classifier-free guidance).
// In LayoutPublic it is the public code's: the diffusion loss of z_k
// conditioned on the hidden state at position k, with no cross-entropy
// term (Losses.CE is 0).
func (c Config) ClassLoss(scope *model.Scope, w nn.Weights, labels, latents *Node, sched *diffusion.Schedule, batchMul int, labelDropout float64) Losses {
	g := labels.Graph()
	if labelDropout > 0 {
		drop := LessThan(scope.RandomUniform(g, nn.Shape(dtypes.Float32, labels.Shape().Dimensions...)), Scalar(g, dtypes.Float32, labelDropout))
		labels = Where(drop, BroadcastToDims(Scalar(g, dtypes.Int32, c.Vocab.Null()), labels.Shape().Dimensions...), labels)
	}
	it := c.ClassItems(labels, latents)
	if c.Layout == LayoutPublic {
		dims := latents.Shape().Dimensions
		h, _ := c.Backbone(w, it, Positions(g, dtypes.Float32, 0, dims[1]), nil)
		diff := c.diffusionLoss(scope, w, h, latents, Ones(g, nn.Shape(latents.DType(), dims[0], dims[1])), sched, batchMul, LossOptions{})
		return Losses{Total: diff, CE: ScalarZero(g, diff.DType()), Diffusion: diff}
	}
	valid := OnesLike(it.IsLatent)
	return c.Loss(scope, w, it, valid, sched, batchMul)
}

// Sampler generates latent grids class by class on an Engine: the prefix
// [class] <BOL> (and [null] <BOL> for the guidance stream), or [class] (and
// [null]) in LayoutPublic, then a segment of exactly `items` latents, one
// backbone step and one solver run per latent.
type Sampler struct {
	engine *Engine
	items  int // latent items per image
}

// NewSampler prepares generation of images of `items` latent vectors from
// the weights in store (load the EMA weights into it first).
func NewSampler(backend compute.Backend, store *model.Store, cfg Config, items int, opts SampleOptions) (*Sampler, error) {
	return newSampler(backend, store, cfg, items, opts, false)
}

func newSampler(backend compute.Backend, store *model.Store, cfg Config, items int, opts SampleOptions, loop bool) (*Sampler, error) {
	if need := items + cfg.Layout.Overhead(); need > cfg.MaxLen {
		return nil, fmt.Errorf("%d latent items need max_len ≥ %d, model has %d", items, need, cfg.MaxLen)
	}
	if items < 1 {
		return nil, fmt.Errorf("%d latent items: want at least 1", items)
	}
	e, err := newEngine(backend, store, cfg, opts, loop)
	if err != nil {
		return nil, err
	}
	return &Sampler{engine: e, items: items}, nil
}

// Engine is the sequence engine the sampler runs on.
func (s *Sampler) Engine() *Engine { return s.engine }

// Close releases the sampler's compiled graphs (the store and its weights
// stay with the caller). It is safe to call more than once; Sample fails
// after it.
func (s *Sampler) Close() { s.engine.Close() }

// ClassPrefix is the prefix of a class-conditional image sequence of
// class label, [label] <BOL>, and of its guidance stream, [null] <BOL> (in
// LayoutPublic [label] and [null]).
func (c Config) ClassPrefix(label int) (prefix, guide []Item, err error) {
	if label < 0 || label >= c.Vocab.Classes {
		return nil, nil, fmt.Errorf("class %d out of range 0…%d", label, c.Vocab.Classes-1)
	}
	prefix = []Item{TokenItem(label)}
	guide = []Item{TokenItem(c.Vocab.Null())}
	if c.Layout == LayoutBOL {
		prefix = append(prefix, TokenItem(c.Vocab.BOL()))
		guide = append(guide, TokenItem(c.Vocab.BOL()))
	}
	return prefix, guide, nil
}

// Prefill starts a guided session for one image per label: each sequence
// holds its ClassPrefix, its guidance stream the null class's.
func (s *Sampler) Prefill(labels []int) (*Session, error) {
	prefix := make([][]Item, len(labels))
	guide := make([][]Item, len(labels))
	for i, l := range labels {
		var err error
		if prefix[i], guide[i], err = s.engine.cfg.ClassPrefix(l); err != nil {
			return nil, err
		}
	}
	return s.engine.Prefill(prefix, guide)
}

// Sample generates one image's latents per label: [len(labels)][items·C].
func (s *Sampler) Sample(labels []int) ([][]float32, error) {
	if len(labels) == 0 {
		return nil, nil
	}
	if s.engine.step == nil {
		return nil, errors.New("lm: sampler used after Close")
	}
	sess, err := s.Prefill(labels)
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	return sess.Latents(Segment{Max: s.items})
}
