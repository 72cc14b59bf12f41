package lm

import (
	"errors"
	"fmt"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/nn"
)

// ClassItems lays out class-conditional image sequences
// [class] <BOL> z₀ … z_{N−1} <EOL> for labels [B] (int32) and latents
// [B, N, C]; every item is valid.
func (c Config) ClassItems(labels, latents *Node) Items {
	g := labels.Graph()
	dims := latents.Shape().Dimensions
	batch, n := dims[0], dims[1]
	col := func(id int) *Node { return BroadcastToDims(Scalar(g, dtypes.Int32, id), batch, 1) }
	ids := Concatenate([]*Node{InsertAxes(labels, -1), col(c.Vocab.BOL()), Zeros(g, nn.Shape(dtypes.Int32, batch, n)), col(c.Vocab.EOL())}, 1)
	zero := Zeros(g, nn.Shape(latents.DType(), batch, 2, c.Latent))
	lat := Concatenate([]*Node{zero, latents, SliceAxis(zero, 1, AxisElem(0))}, 1)
	isLat := Concatenate([]*Node{Zeros(g, nn.Shape(latents.DType(), batch, 2)), Ones(g, nn.Shape(latents.DType(), batch, n)), Zeros(g, nn.Shape(latents.DType(), batch, 1))}, 1)
	return Items{Ids: ids, Latents: lat, IsLatent: isLat}
}

// ClassLoss is the class-conditional objective: labels are replaced by the
// null class with probability labelDropout (for classifier-free guidance).
func (c Config) ClassLoss(scope *model.Scope, w nn.Weights, labels, latents *Node, sched *diffusion.Schedule, batchMul int, labelDropout float64) Losses {
	g := labels.Graph()
	if labelDropout > 0 {
		drop := LessThan(scope.RandomUniform(g, nn.Shape(dtypes.Float32, labels.Shape().Dimensions...)), Scalar(g, dtypes.Float32, labelDropout))
		labels = Where(drop, BroadcastToDims(Scalar(g, dtypes.Int32, c.Vocab.Null()), labels.Shape().Dimensions...), labels)
	}
	it := c.ClassItems(labels, latents)
	valid := OnesLike(it.IsLatent)
	return c.Loss(scope, w, it, valid, sched, batchMul)
}

// SampleOptions controls class-conditional generation.
type SampleOptions struct {
	Steps       int     // DPM-Solver++ steps; 0 means DDPM over all T steps
	CFG         float64 // guidance scale; 1 disables the unconditional stream's effect
	Temperature float64 // scale of the initial noise
	Seed        int64
}

// Sampler generates latent grids class by class, decoding incrementally with
// a KV cache: one backbone step and one unrolled solver per latent item.
type Sampler struct {
	cfg     Config
	backend compute.Backend
	store   *model.Store
	opts    SampleOptions
	sched   *diffusion.Schedule
	plan    diffusion.Plan
	target  diffusion.Target
	exec    *model.Exec
	head    *model.Exec // one solver step, for looped plans
	looped  bool
	items   int // latent items per image
}

// NewSampler prepares generation of images of `items` latent vectors from
// the weights in store (load the EMA weights into it first).
func NewSampler(backend compute.Backend, store *model.Store, cfg Config, items int, opts SampleOptions) (*Sampler, error) {
	if items+3 > cfg.MaxLen {
		return nil, fmt.Errorf("%d latent items need max_len ≥ %d, model has %d", items, items+3, cfg.MaxLen)
	}
	s := &Sampler{cfg: cfg, backend: backend, store: store, opts: opts, sched: diffusion.Cosine(1000), items: items}
	var err error
	if s.target, err = diffusion.ParseTarget(cfg.Target); err != nil {
		return nil, err
	}
	if s.plan, err = s.sched.PlanFor(opts.Steps); err != nil {
		return nil, err
	}
	// Seeded once: successive calls continue the stream, so batches differ
	// and a whole run is reproducible from the seed.
	if err := store.SetRNGStateFromSeed(opts.Seed); err != nil {
		return nil, err
	}
	s.looped = len(s.plan) > diffusion.MaxUnrolledSteps
	if s.head, err = model.NewExec(backend, store, s.headStep); err != nil {
		return nil, err
	}
	s.exec, err = model.NewExec(backend, store, s.stepGraph)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// stepGraph advances 2n streams (conditional then unconditional) by one
// item: inputs are tokens [2n, T] int32, latent [2n, T, C], isLatent [2n, T],
// pos [T] and the caches (K, V per layer); it returns the next latent
// [n, C] sampled with guidance, then the updated caches.
func (s *Sampler) stepGraph(scope *model.Scope, in []*Node) []*Node {
	c := s.cfg
	g := in[0].Graph()
	w := nn.WeightsOf(scope.Store(), g)
	it := Items{Ids: in[0], Latents: in[1], IsLatent: in[2]}
	pos := in[3]
	caches := make([]*nn.KV, c.Depth)
	for i := range caches {
		caches[i] = &nn.KV{K: in[4+2*i], V: in[5+2*i]}
	}
	h, newCaches := c.Backbone(w, it, pos, caches)
	seqLen := h.Shape().Dimensions[1]
	last := Squeeze(SliceAxis(h, 1, AxisElem(seqLen-1)), 1) // [2n, d]
	cond := c.Condition(w, last)
	n := cond.Shape().Dimensions[0] / 2
	shape := nn.Shape(dtypes.Float32, n, c.Latent)
	x := MulScalar(scope.RandomNormal(g, shape), s.opts.Temperature)
	var out []*Node
	if s.looped {
		// Long plans (DDPM's 1000 steps) run as a host loop of headExec.
		out = []*Node{cond, x}
	} else {
		z := s.sched.Run(s.plan, x, s.target, s.guided(w, cond), func(int) *Node { return scope.RandomNormal(g, shape) })
		out = []*Node{z}
	}
	for _, kv := range newCaches {
		out = append(out, kv.K, kv.V)
	}
	return out
}

// guided is the classifier-free-guided denoiser over cond [2n, HeadDim]
// (conditional streams first): both streams see the same x and t, and
// ε = ε_u + s·(ε_c − ε_u).
func (s *Sampler) guided(w nn.Weights, cond *Node) diffusion.Denoiser {
	streams := cond.Shape().Dimensions[0]
	n := streams / 2
	return func(x, t *Node) *Node {
		both := Concatenate([]*Node{x, x}, 0)
		pred := s.cfg.Head(w, both, BroadcastToDims(t, streams), cond)
		pc := SliceAxis(pred, 0, AxisRange(0, n))
		pu := SliceAxis(pred, 0, AxisRange(n, streams))
		return Add(pu, MulScalar(Sub(pc, pu), s.opts.CFG))
	}
}

// headStep is one solver step of the looped mode: x, the previous x̂₀, the
// step's packed coefficients and the conditions in; next x and x̂₀ out.
func (s *Sampler) headStep(scope *model.Scope, x, prev, coeffs, cond *Node) (*Node, *Node) {
	w := nn.WeightsOf(scope.Store(), x.Graph())
	return diffusion.Update(x, prev, coeffs, s.target, s.guided(w, cond), scope.RandomNormal(x.Graph(), x.Shape()))
}

// Close releases the sampler's compiled graphs (the store and its weights
// stay with the caller). It is safe to call more than once; Sample fails
// after it.
func (s *Sampler) Close() {
	for _, e := range []**model.Exec{&s.exec, &s.head} {
		if *e != nil {
			(*e).Finalize()
			*e = nil
		}
	}
}

// Sample generates one image's latents per label: [len(labels)][items·C].
func (s *Sampler) Sample(labels []int) ([][]float32, error) {
	c := s.cfg
	n := len(labels)
	if n == 0 {
		return nil, nil
	}
	if s.exec == nil {
		return nil, errors.New("lm: sampler used after Close")
	}
	for _, l := range labels {
		if l < 0 || l >= c.Vocab.Classes {
			return nil, fmt.Errorf("class %d out of range 0…%d", l, c.Vocab.Classes-1)
		}
	}
	streams := 2 * n
	hd := c.Dim / c.Heads
	caches := make([]any, 2*c.Depth)
	for i := range caches {
		caches[i] = tensors.FromShape(nn.Shape(dtypes.Float32, streams, c.MaxLen, c.KVHeads, hd))
	}
	// Prefill: [class or null] <BOL> at positions 0 and 1.
	ids := make([]int32, streams*2)
	for i, l := range labels {
		ids[2*i], ids[2*i+1] = int32(l), int32(c.Vocab.BOL())
		ids[2*(n+i)], ids[2*(n+i)+1] = int32(c.Vocab.Null()), int32(c.Vocab.BOL())
	}
	step := func(ids []int32, lat []float32, isLat float32, pos []float32) ([]float32, error) {
		t := len(pos)
		isL := make([]float32, streams*t)
		for i := range isL {
			isL[i] = isLat
		}
		args := append([]any{
			tensors.FromFlatDataAndDimensions(ids, streams, t),
			tensors.FromFlatDataAndDimensions(lat, streams, t, c.Latent),
			tensors.FromFlatDataAndDimensions(isL, streams, t),
			tensors.FromFlatDataAndDimensions(pos, t),
		}, caches...)
		outs, err := s.exec.Call(args...)
		nn.Release(args...) // the inputs, old caches included, are spent
		if err != nil {
			return nil, fmt.Errorf("sampling step: %w", err)
		}
		first := 1
		if s.looped {
			first = 2
		}
		for i := range caches {
			caches[i] = outs[first+i]
		}
		if !s.looped {
			defer nn.Release(outs[0])
			return tensors.MustCopyFlatData[float32](outs[0]), nil
		}
		cond, x := outs[0], outs[1]
		prev := tensors.FromShape(x.Shape())
		for _, st := range s.plan {
			coeffs := s.sched.CoeffsTensor(st, dtypes.Float32)
			out, err := s.head.Call(x, prev, coeffs, cond)
			nn.Release(x, prev, coeffs)
			if err != nil {
				nn.Release(cond)
				return nil, fmt.Errorf("sampling step: %w", err)
			}
			x, prev = out[0], out[1]
		}
		defer nn.Release(cond, x, prev)
		return tensors.MustCopyFlatData[float32](x), nil
	}
	z, err := step(ids, make([]float32, streams*2*c.Latent), 0, []float32{0, 1})
	if err != nil {
		return nil, err
	}
	result := make([][]float32, n)
	for i := range result {
		result[i] = make([]float32, 0, s.items*c.Latent)
	}
	zeroIds := make([]int32, streams)
	for k := 0; ; k++ {
		for i := range n {
			result[i] = append(result[i], z[i*c.Latent:(i+1)*c.Latent]...)
		}
		if k == s.items-1 {
			break
		}
		// Both streams continue from the same generated prefix.
		lat := append(append([]float32(nil), z...), z...)
		if z, err = step(zeroIds, lat, 1, []float32{float32(k + 2)}); err != nil {
			return nil, err
		}
	}
	nn.Release(caches...)
	return result, nil
}
