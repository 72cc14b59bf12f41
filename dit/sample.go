package dit

import (
	"errors"
	"fmt"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
)

// Sampler generates whole latent grids: every solver step is one full
// Transformer pass over all items of both guidance streams.
type Sampler struct {
	cfg    Config
	opts   lm.SampleOptions
	sched  *diffusion.Schedule
	plan   diffusion.Plan
	solver *diffusion.Solver
	// rows is the solver of SampleRows, prepared on first use.
	rows    *diffusion.Solver
	backend compute.Backend
	store   *model.Store
	unroll  bool
}

// NewSampler prepares generation from the weights in store (load the EMA
// weights into it first), with LatentLM's options: solver steps (0: DDPM),
// guidance scale, temperature and seed.
func NewSampler(backend compute.Backend, store *model.Store, cfg Config, opts lm.SampleOptions) (*Sampler, error) {
	return newSampler(backend, store, cfg, opts, true)
}

// newSampler unrolls the plan into one graph when unroll is set and the plan
// is short enough, else it loops over one compiled solver step.
func newSampler(backend compute.Backend, store *model.Store, cfg Config, opts lm.SampleOptions, unroll bool) (*Sampler, error) {
	s := &Sampler{cfg: cfg, opts: opts, backend: backend, store: store, unroll: unroll}
	sched := diffusion.Cosine(1000)
	target := cfg.Target
	if err := target.Valid(); err != nil {
		return nil, err
	}
	plan, err := sched.PlanFor(opts.Steps)
	if err != nil {
		return nil, err
	}
	s.sched, s.plan = sched, plan
	if err := store.SetRNGStateFromSeed(opts.Seed); err != nil {
		return nil, err
	}
	if s.solver, err = diffusion.NewSolver(backend, store, sched, plan, target, s.graphs(!unroll)); err != nil {
		return nil, err
	}
	return s, nil
}

// graphs is the model as the solver runs it: the inputs are the 2n stream
// labels (conditional first, then Null), which are also the conditions.
func (s *Sampler) graphs(loop bool) diffusion.SolverGraphs {
	return diffusion.SolverGraphs{
		Loop:  loop,
		Noise: func(scope *model.Scope, in []*Node) *Node { return s.initial(scope, in[0]) },
		Denoiser: func(scope *model.Scope, conds []*Node) diffusion.Denoiser {
			labels := conds[0]
			w := nn.WeightsOf(scope.Store(), labels.Graph())
			return diffusion.Guided(func(x, t *Node) *Node { return s.cfg.Forward(w, x, t, labels) }, s.opts.CFG)
		},
	}
}

// initial is the starting noise [n, N, C] for the 2n stream labels.
func (s *Sampler) initial(scope *model.Scope, labels *Node) *Node {
	n := labels.Shape().Dimensions[0] / 2
	x := scope.RandomNormal(labels.Graph(), nn.Shape(dtypes.Float32, n, s.cfg.Items(), s.cfg.Latent))
	return MulScalar(x, s.opts.Temperature)
}

// Close releases the sampler's compiled graphs (the store and its weights
// stay with the caller). It is safe to call more than once; Sample fails
// after it.
func (s *Sampler) Close() {
	s.solver.Close()
	if s.rows != nil {
		s.rows.Close()
	}
}

// Sample generates one latent grid per label: [len(labels)][Items·C].
func (s *Sampler) Sample(labels []int) ([][]float32, error) {
	n := len(labels)
	if n == 0 {
		return nil, nil
	}
	if s.solver.Closed() {
		return nil, errors.New("dit: sampler used after Close")
	}
	streams := make([]int32, 2*n)
	for i, l := range labels {
		if l < 0 || l >= s.cfg.Classes {
			return nil, fmt.Errorf("class %d out of range 0…%d", l, s.cfg.Classes-1)
		}
		streams[i], streams[n+i] = int32(l), int32(s.cfg.Null())
	}
	lt := tensors.FromFlatDataAndDimensions(streams, 2*n)
	defer nn.Release(lt)
	z, err := s.solver.Solve(lt)
	if err != nil {
		return nil, fmt.Errorf("sampling: %w", err)
	}
	defer nn.Release(z)
	flat := tensors.MustCopyFlatData[float32](z)
	per := s.cfg.Items() * s.cfg.Latent
	result := make([][]float32, n)
	for i := range result {
		result[i] = flat[i*per : (i+1)*per]
	}
	return result, nil
}

// rowGraphs is the model as SampleRows runs it: the inputs are the 2n
// stream labels, the noise [n, N, C], the temperature [n] and the guidance
// scale [n] of each grid, all of which the denoiser sees as its conditions
// (no Conditions graph, so that a looped plan passes them on as they are).
func (s *Sampler) rowGraphs(loop bool) diffusion.SolverGraphs {
	return diffusion.SolverGraphs{
		Loop: loop,
		Noise: func(scope *model.Scope, in []*Node) *Node {
			return Mul(in[1], Reshape(in[2], in[1].Shape().Dimensions[0], 1, 1))
		},
		Denoiser: func(scope *model.Scope, conds []*Node) diffusion.Denoiser {
			labels := conds[0]
			w := nn.WeightsOf(scope.Store(), labels.Graph())
			return diffusion.GuidedRows(func(x, t *Node) *Node { return s.cfg.Forward(w, x, t, labels) }, conds[3])
		},
	}
}

// SampleRows generates one latent grid per label, [len(labels)][Items·C],
// from noise the caller supplies — noise[i] is grid i's standard normal
// draw of Items·C values, scaled by temperature[i] — with a guidance scale
// per grid (scale[i]). The sampler's own scale, temperature and random
// generator are not used: DPM-Solver++ adds no noise after the initial
// draw, so a grid depends on its label, noise, scale and temperature
// alone, not on the other grids of the batch, and requests of different
// seeds and settings share one batch (the server's batching). DDPM plans
// (Steps 0), which draw noise at every step, are refused.
func (s *Sampler) SampleRows(labels []int, noise [][]float32, scale, temperature []float64) ([][]float32, error) {
	n := len(labels)
	if n == 0 {
		return nil, nil
	}
	if s.solver.Closed() {
		return nil, errors.New("dit: sampler used after Close")
	}
	if s.opts.Steps < 1 {
		return nil, errors.New("dit: SampleRows needs a DPM-Solver++ plan (Steps ≥ 1): DDPM draws noise at every step")
	}
	per := s.cfg.Items() * s.cfg.Latent
	if len(noise) != n || len(scale) != n || len(temperature) != n {
		return nil, fmt.Errorf("dit: noise, scale and temperature for %d, %d and %d grids, want %d", len(noise), len(scale), len(temperature), n)
	}
	streams := make([]int32, 2*n)
	flat := make([]float32, 0, n*per)
	sc, tp := make([]float32, n), make([]float32, n)
	for i, l := range labels {
		if l < 0 || l >= s.cfg.Classes {
			return nil, fmt.Errorf("class %d out of range 0…%d", l, s.cfg.Classes-1)
		}
		if len(noise[i]) != per {
			return nil, fmt.Errorf("dit: noise %d of %d values, want %d", i, len(noise[i]), per)
		}
		streams[i], streams[n+i] = int32(l), int32(s.cfg.Null())
		flat = append(flat, noise[i]...)
		sc[i], tp[i] = float32(scale[i]), float32(temperature[i])
	}
	if s.rows == nil {
		rows, err := diffusion.NewSolver(s.backend, s.store, s.sched, s.plan, s.cfg.Target, s.rowGraphs(!s.unroll))
		if err != nil {
			return nil, fmt.Errorf("sampling: %w", err)
		}
		s.rows = rows
	}
	in := []*tensors.Tensor{
		tensors.FromFlatDataAndDimensions(streams, 2*n),
		tensors.FromFlatDataAndDimensions(flat, n, s.cfg.Items(), s.cfg.Latent),
		tensors.FromFlatDataAndDimensions(tp, n),
		tensors.FromFlatDataAndDimensions(sc, n),
	}
	defer func() {
		for _, t := range in {
			nn.Release(t)
		}
	}()
	z, err := s.rows.Solve(in...)
	if err != nil {
		return nil, fmt.Errorf("sampling: %w", err)
	}
	defer nn.Release(z)
	out := tensors.MustCopyFlatData[float32](z)
	result := make([][]float32, n)
	for i := range result {
		result[i] = out[i*per : (i+1)*per : (i+1)*per]
	}
	return result, nil
}
