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
	target diffusion.Target
	run    *model.Exec // the whole unrolled plan
	noise  *model.Exec // initial noise, for looped plans
	step   *model.Exec // one solver step, for looped plans
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
	s := &Sampler{cfg: cfg, opts: opts, sched: diffusion.Cosine(1000)}
	var err error
	if s.target, err = diffusion.ParseTarget(cfg.Target); err != nil {
		return nil, err
	}
	if s.plan, err = s.sched.PlanFor(opts.Steps); err != nil {
		return nil, err
	}
	if err := store.SetRNGStateFromSeed(opts.Seed); err != nil {
		return nil, err
	}
	if unroll && len(s.plan) <= diffusion.MaxUnrolledSteps {
		s.run, err = model.NewExec(backend, store, func(scope *model.Scope, labels *Node) *Node {
			x := s.initial(scope, labels)
			w := nn.WeightsOf(scope.Store(), labels.Graph())
			return s.sched.Run(s.plan, x, s.target, s.guided(w, labels), func(int) *Node { return scope.RandomNormal(labels.Graph(), x.Shape()) })
		})
		return s, err
	}
	if s.noise, err = model.NewExec(backend, store, s.initial); err != nil {
		return nil, err
	}
	s.step, err = model.NewExec(backend, store, func(scope *model.Scope, x, prev, coeffs, labels *Node) (*Node, *Node) {
		w := nn.WeightsOf(scope.Store(), x.Graph())
		return diffusion.Update(x, prev, coeffs, s.target, s.guided(w, labels), scope.RandomNormal(x.Graph(), x.Shape()))
	})
	return s, err
}

// initial is the starting noise [n, N, C] for the 2n stream labels.
func (s *Sampler) initial(scope *model.Scope, labels *Node) *Node {
	n := labels.Shape().Dimensions[0] / 2
	x := scope.RandomNormal(labels.Graph(), nn.Shape(dtypes.Float32, n, s.cfg.Items(), s.cfg.Latent))
	return MulScalar(x, s.opts.Temperature)
}

// guided is the classifier-free-guided denoiser: both streams (conditional
// labels first, then Null) see the same x and t, and
// ε = ε_u + s·(ε_c − ε_u).
func (s *Sampler) guided(w nn.Weights, labels *Node) diffusion.Denoiser {
	streams := labels.Shape().Dimensions[0]
	n := streams / 2
	return func(x, t *Node) *Node {
		pred := s.cfg.Forward(w, Concatenate([]*Node{x, x}, 0), BroadcastToDims(t, streams), labels)
		pc := SliceAxis(pred, 0, AxisRange(0, n))
		pu := SliceAxis(pred, 0, AxisRange(n, streams))
		return Add(pu, MulScalar(Sub(pc, pu), s.opts.CFG))
	}
}

// Close releases the sampler's compiled graphs (the store and its weights
// stay with the caller). It is safe to call more than once; Sample fails
// after it.
func (s *Sampler) Close() {
	for _, e := range []**model.Exec{&s.run, &s.noise, &s.step} {
		if *e != nil {
			(*e).Finalize()
			*e = nil
		}
	}
}

// Sample generates one latent grid per label: [len(labels)][Items·C].
func (s *Sampler) Sample(labels []int) ([][]float32, error) {
	n := len(labels)
	if n == 0 {
		return nil, nil
	}
	if s.run == nil && s.step == nil {
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
	var z *tensors.Tensor
	if s.run != nil {
		out, err := s.run.Call(lt)
		if err != nil {
			return nil, fmt.Errorf("sampling: %w", err)
		}
		z = out[0]
	} else {
		out, err := s.noise.Call(lt)
		if err != nil {
			return nil, fmt.Errorf("sampling: %w", err)
		}
		x := out[0]
		prev := tensors.FromShape(x.Shape())
		for _, st := range s.plan {
			coeffs := s.sched.CoeffsTensor(st, dtypes.Float32)
			out, err := s.step.Call(x, prev, coeffs, lt)
			// Spent inputs are freed at once: see nn.Release.
			nn.Release(x, prev, coeffs)
			if err != nil {
				return nil, fmt.Errorf("sampling step: %w", err)
			}
			x, prev = out[0], out[1]
		}
		nn.Release(prev)
		z = x
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
