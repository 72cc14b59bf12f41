package diffusion

import (
	"errors"
	"fmt"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/nn"
)

// Guide is classifier-free guidance (Ho & Salimans, 2022,
// https://arxiv.org/abs/2207.12598): the prediction
// uncond + scale·(cond − uncond) from a conditional and an unconditional
// one of the same shape. Scale 1 gives cond up to rounding, 0 gives uncond.
func Guide(cond, uncond *Node, scale float64) *Node {
	return Add(uncond, MulScalar(Sub(cond, uncond), scale))
}

// TwoStreams predicts the model output for noisy x [2n, …] at timesteps
// t [2n]: rows 0…n−1 are the conditional streams and rows n…2n−1 their
// unconditional partners, in the same order.
type TwoStreams func(x, t *Node) *Node

// Guided is the classifier-free-guided denoiser of n items: both streams
// of a pair see the same noisy x [n, …] and timestep, and their predictions
// are combined by Guide.
func Guided(model TwoStreams, scale float64) Denoiser {
	return func(x, t *Node) *Node {
		n := x.Shape().Dimensions[0]
		streams := 2 * n
		pred := model(Concatenate([]*Node{x, x}, 0), BroadcastToDims(t, streams))
		return Guide(SliceAxis(pred, 0, AxisRange(0, n)), SliceAxis(pred, 0, AxisRange(n, streams)), scale)
	}
}

// GuideRows is Guide with a scale per item: scale [n] weighs the
// predictions cond and uncond [n, …] of item i by scale[i], so that items
// of different guidance scales share one batch (the server's continuous
// batching). Each value is computed as Guide computes it with that scale.
func GuideRows(cond, uncond, scale *Node) *Node {
	dims := make([]int, cond.Rank())
	for i := range dims {
		dims[i] = 1
	}
	dims[0] = cond.Shape().Dimensions[0]
	return Add(uncond, Mul(Sub(cond, uncond), Reshape(scale, dims...)))
}

// GuidedRows is Guided with a scale per item (GuideRows): scale [n] is a
// node, an input of the graph, so one compiled graph serves any scales.
func GuidedRows(model TwoStreams, scale *Node) Denoiser {
	return func(x, t *Node) *Node {
		n := x.Shape().Dimensions[0]
		streams := 2 * n
		pred := model(Concatenate([]*Node{x, x}, 0), BroadcastToDims(t, streams))
		return GuideRows(SliceAxis(pred, 0, AxisRange(0, n)), SliceAxis(pred, 0, AxisRange(n, streams)), scale)
	}
}

// SolverGraphs is what a Solver needs of a model, as graph builders. in are
// the nodes of the tensors passed to Solver.Solve.
type SolverGraphs struct {
	// Conditions derives, once per solve, what the denoiser is conditioned
	// on (a backbone's hidden state through its condition layer, say). Nil
	// means the inputs themselves.
	Conditions func(scope *model.Scope, in []*Node) []*Node
	// Noise draws the starting point x of the plan (with the store's
	// random generator, scaled by any temperature).
	Noise func(scope *model.Scope, in []*Node) *Node
	// Denoiser is the model's denoiser under the conditions (guided or
	// not).
	Denoiser func(scope *model.Scope, conds []*Node) Denoiser
	// Loop runs even a short plan as a host loop of one compiled step;
	// tests use it to compare the two modes.
	Loop bool
}

// Solver runs a sampler plan for a model: unrolled into one compiled graph
// when the plan has at most MaxUnrolledSteps steps, else (DDPM's 1000
// steps) as a host loop of one compiled step, freeing each step's spent
// tensors at once. Both modes draw the starting noise first from the
// store's generator; the unrolled graph then draws only for the steps that
// add noise, the loop's one compiled step at every step (scaled by zero
// where the step adds none). So a plan gives the same result either way
// (up to rounding) from the same generator state, but a deterministic one
// leaves the generator further on when looped.
type Solver struct {
	sched  *Schedule
	plan   Plan
	target Target
	graphs SolverGraphs
	run    *model.Exec // unrolled: inputs → x
	start  *model.Exec // looped: inputs → x, conditions…
	step   *model.Exec // looped: x, x̂₀ before, coefficients, conditions… → x, x̂₀
}

// NewSolver prepares plan for the model described by graphs, reading the
// weights and the random generator from store. Graphs compile on first use,
// once per input shape.
func NewSolver(backend compute.Backend, store *model.Store, sched *Schedule, plan Plan, target Target, graphs SolverGraphs) (*Solver, error) {
	if graphs.Noise == nil || graphs.Denoiser == nil {
		return nil, errors.New("diffusion: a solver needs Noise and Denoiser graphs")
	}
	if len(plan) == 0 {
		return nil, errors.New("diffusion: empty plan")
	}
	s := &Solver{sched: sched, plan: plan, target: target, graphs: graphs}
	var err error
	if !graphs.Loop && len(plan) <= MaxUnrolledSteps {
		s.run, err = model.NewExec(backend, store, func(scope *model.Scope, in []*Node) *Node {
			conds := s.conditions(scope, in)
			x := graphs.Noise(scope, in)
			g := x.Graph()
			return sched.Run(plan, x, target, graphs.Denoiser(scope, conds), func(int) *Node { return scope.RandomNormal(g, x.Shape()) })
		})
		return s, err
	}
	if s.start, err = model.NewExec(backend, store, func(scope *model.Scope, in []*Node) []*Node {
		var conds []*Node
		if graphs.Conditions != nil {
			conds = graphs.Conditions(scope, in)
		}
		return append([]*Node{graphs.Noise(scope, in)}, conds...)
	}); err != nil {
		return nil, err
	}
	s.step, err = model.NewExec(backend, store, func(scope *model.Scope, in []*Node) []*Node {
		x, prev, coeffs := in[0], in[1], in[2]
		next, x0 := Update(x, prev, coeffs, target, graphs.Denoiser(scope, in[3:]), scope.RandomNormal(x.Graph(), x.Shape()))
		return []*Node{next, x0}
	})
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Solver) conditions(scope *model.Scope, in []*Node) []*Node {
	if s.graphs.Conditions == nil {
		return in
	}
	return s.graphs.Conditions(scope, in)
}

// Closed reports whether Close has been called.
func (s *Solver) Closed() bool { return s.run == nil && s.start == nil }

// Looped reports whether the plan runs as a host loop.
func (s *Solver) Looped() bool { return s.run == nil }

// Plan is the solver's plan.
func (s *Solver) Plan() Plan { return s.plan }

// Solve runs the plan from fresh noise for the inputs in (which stay the
// caller's) and returns the final x, which the caller must release.
func (s *Solver) Solve(in ...*tensors.Tensor) (*tensors.Tensor, error) {
	args := make([]any, len(in))
	for i, t := range in {
		args[i] = t
	}
	switch {
	case s.run != nil:
		out, err := s.run.Call(args...)
		if err != nil {
			return nil, fmt.Errorf("solver: %w", err)
		}
		return out[0], nil
	case s.start == nil:
		return nil, errors.New("diffusion: solver used after Close")
	}
	out, err := s.start.Call(args...)
	if err != nil {
		return nil, fmt.Errorf("solver: %w", err)
	}
	x := out[0]
	conds := args
	if s.graphs.Conditions != nil {
		conds = make([]any, len(out)-1)
		for i, c := range out[1:] {
			conds[i] = c
		}
		defer nn.Release(conds...)
	}
	prev := tensors.FromShape(x.Shape())
	for _, st := range s.plan {
		coeffs := s.sched.CoeffsTensor(st, x.DType())
		out, err := s.step.Call(append([]any{x, prev, coeffs}, conds...)...)
		// Spent inputs are freed at once: see nn.Release.
		nn.Release(x, prev, coeffs)
		if err != nil {
			return nil, fmt.Errorf("solver step: %w", err)
		}
		x, prev = out[0], out[1]
	}
	nn.Release(prev)
	return x, nil
}

// Close releases the compiled graphs. It is safe to call more than once;
// Solve fails after it.
func (s *Solver) Close() {
	for _, e := range []**model.Exec{&s.run, &s.start, &s.step} {
		if *e != nil {
			(*e).Finalize()
			*e = nil
		}
	}
}
