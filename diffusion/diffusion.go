// Package diffusion is the denoising-diffusion process of next-token
// diffusion (docs/DESIGN.md §5 and §7): the cosine schedule of Improved DDPM
// (https://arxiv.org/abs/2102.09672), the ε and v training targets, and the
// samplers, DDPM ancestral sampling (https://arxiv.org/abs/2006.11239) and
// DPM-Solver++ 2M (https://arxiv.org/abs/2211.01095) as diffusers runs it.
// LatentLM (https://arxiv.org/abs/2412.08635, §2.1) runs this process on
// each latent item in its diffusion head; the DiT baseline runs it on the
// whole latent grid.
//
// Every sampler here is a plan of linear steps
//
//	x ← A·x + B·x̂₀ + C·x̂₀(previous step) + NoiseStd·z
//
// with coefficients computed on the host in float64. DDPM ancestral sampling
// and DPM-Solver++ 2M are both of this form, so one graph routine runs both,
// unrolled inside the caller's graph (docs/DESIGN.md §10: one graph for the
// whole solver is far cheaper than one call per step).
package diffusion

import (
	"fmt"
	"math"
	"strings"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/latentlm/latentlm/nn"
)

// Target is what the denoiser predicts.
type Target int

const (
	// Epsilon: the noise ε (the public code's default).
	Epsilon Target = iota
	// Velocity: v = √ᾱ·ε − √(1−ᾱ)·x₀ (the paper's TTS and tokenizer studies).
	Velocity
)

// ParseTarget reads "eps" or "v".
func ParseTarget(s string) (Target, error) {
	switch strings.ToLower(s) {
	case "eps", "epsilon":
		return Epsilon, nil
	case "v", "velocity":
		return Velocity, nil
	}
	return 0, fmt.Errorf("unknown diffusion target %q: want eps or v", s)
}

func (t Target) String() string {
	if t == Velocity {
		return "v"
	}
	return "eps"
}

// MarshalText writes "eps" or "v", the names config.json files use.
func (t Target) MarshalText() ([]byte, error) {
	if t != Epsilon && t != Velocity {
		return nil, fmt.Errorf("invalid diffusion target %d", int(t))
	}
	return []byte(t.String()), nil
}

// UnmarshalText reads "eps" or "v" (also "epsilon", "velocity").
func (t *Target) UnmarshalText(b []byte) error {
	v, err := ParseTarget(string(b))
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// Set makes a Target a command-line flag (flag.Value).
func (t *Target) Set(s string) error { return t.UnmarshalText([]byte(s)) }

// Valid reports whether t is one of the targets.
func (t Target) Valid() error {
	if t != Epsilon && t != Velocity {
		return fmt.Errorf("invalid diffusion target %d: want eps or v", int(t))
	}
	return nil
}

// Schedule is the discrete cosine schedule with T steps: ᾱ(s) = cos²((s+0.008)/1.008·π/2),
// β_i = min(1 − ᾱ((i+1)/T)/ᾱ(i/T), 0.999), and ᾱ_t = Π_{i≤t}(1 − β_i).
type Schedule struct {
	T         int
	Betas     []float64
	AlphaBars []float64 // ᾱ_t, t = 0…T−1
}

// Cosine returns the cosine schedule with T steps (T = 1000 in the paper).
func Cosine(T int) *Schedule {
	f := func(s float64) float64 {
		c := math.Cos((s + 0.008) / 1.008 * math.Pi / 2)
		return c * c
	}
	s := &Schedule{T: T, Betas: make([]float64, T), AlphaBars: make([]float64, T)}
	prod := 1.0
	for i := range T {
		s.Betas[i] = math.Min(1-f(float64(i+1)/float64(T))/f(float64(i)/float64(T)), 0.999)
		prod *= 1 - s.Betas[i]
		s.AlphaBars[i] = prod
	}
	return s
}

// alphaSigma returns α_t = √ᾱ_t and σ_t = √(1−ᾱ_t).
func (s *Schedule) alphaSigma(t int) (float64, float64) {
	return math.Sqrt(s.AlphaBars[t]), math.Sqrt(1 - s.AlphaBars[t])
}

// AddNoise returns x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε and the training target, for
// x0 and eps of shape [N, C] and integer timesteps t of shape [N].
func (s *Schedule) AddNoise(x0, eps, t *Node, target Target) (xt, want *Node) {
	g := x0.Graph()
	ab := Const(g, s.AlphaBars)
	abT := ConvertDType(Gather(ab, InsertAxes(t, -1)), x0.DType()) // [N]
	alpha := InsertAxes(Sqrt(abT), -1)
	sigma := InsertAxes(Sqrt(OneMinus(abT)), -1)
	xt = Add(Mul(alpha, x0), Mul(sigma, eps))
	if target == Velocity {
		return xt, Sub(Mul(alpha, eps), Mul(sigma, x0))
	}
	return xt, eps
}

// Step is one sampler step at timestep T (see the package comment).
type Step struct {
	T                 int
	A, B, C, NoiseStd float64
}

// Plan is a whole sampler: its steps in order.
type Plan []Step

// LambdaMinClipped is the default floor on the log-SNR λ = log(α/σ) where
// DPM-Solver++ starts. Under the cosine schedule ᾱ_999 ≈ 2e-9, so the first
// data prediction x̂₀ = (x − σ·ε̂)/α divides the denoiser's error by α ≈ 5e-5
// and one step ruins the sample; diffusers' lambda_min_clipped = −5.1 (its
// recommendation for cosine schedules) starts instead at the largest t with
// λ_t ≥ −5.1 (t = 995 here). The public LatentLM sampling script
// (sample_hf.py) leaves λ unclipped (−Inf, starting at t = 999); pass
// math.Inf(-1) to DPMSolverPP for that.
const LambdaMinClipped = -5.1

// DPMSolverPP returns DPM-Solver++ 2M with n steps as diffusers runs it
// ("midpoint" solver, timestep_spacing "linspace"): timesteps
// round_half_even(linspace(0, last−1, n+1)), reversed, last dropped, where last is T
// minus the number of timesteps whose λ is below lambdaMin (use
// LambdaMinClipped; −Inf keeps all); first order at the first step and at
// the final step, which goes to sigma zero and so returns the last x̂₀.
func (s *Schedule) DPMSolverPP(n int, lambdaMin float64) (Plan, error) {
	if n < 1 || n > s.T {
		return nil, fmt.Errorf("solver steps %d out of range 1…%d", n, s.T)
	}
	lambda := func(t int) float64 {
		a, sg := s.alphaSigma(t)
		return math.Log(a) - math.Log(sg)
	}
	last := s.T
	for t := s.T - 1; t >= 0 && lambda(t) < lambdaMin; t-- {
		last--
	}
	if last < 1 {
		return nil, fmt.Errorf("lambda floor %v leaves no timesteps", lambdaMin)
	}
	ts := make([]int, n)
	step := float64(last-1) / float64(n)
	for i := range n {
		// linspace(0, last−1, n+1) reversed, element n−i, computed as numpy
		// does (k·step, not k·(last−1)/n: at n = 50 they differ in the last
		// bit, and that decides two roundings) and rounded half to even as
		// numpy's round does. math.Round (half away from zero) gave 697 and
		// 299 where diffusers has 696 and 298 at 20 steps.
		ts[i] = int(math.RoundToEven(float64(n-i) * step))
	}
	plan := make(Plan, n)
	for i, t := range ts {
		if i == n-1 {
			plan[i] = Step{T: t, A: 0, B: 1}
			continue
		}
		next := ts[i+1]
		aNext, sNext := s.alphaSigma(next)
		_, sCur := s.alphaSigma(t)
		h := lambda(next) - lambda(t)
		phi := -aNext * math.Expm1(-h) // −α_t(e^{−h} − 1)
		st := Step{T: t, A: sNext / sCur, B: phi}
		if i > 0 {
			r := (lambda(t) - lambda(ts[i-1])) / h
			st.B = phi * (1 + 0.5/r)
			st.C = -phi * 0.5 / r
		}
		plan[i] = st
	}
	return plan, nil
}

// PlanFor is the sampler a step count selects: DPM-Solver++ 2M with that
// many steps (from λ ≥ LambdaMinClipped), or with 0 the DDPM reference.
func (s *Schedule) PlanFor(steps int) (Plan, error) {
	if steps > 0 {
		return s.DPMSolverPP(steps, LambdaMinClipped)
	}
	return s.DDPM(), nil
}

// DDPM returns ancestral sampling over all T steps, the reference sampler:
// x_{t−1} = coef₁·x̂₀ + coef₂·x_t + √(β̃_t)·z with the posterior variance β̃_t.
func (s *Schedule) DDPM() Plan {
	plan := make(Plan, s.T)
	for i := range s.T {
		t := s.T - 1 - i
		abPrev := 1.0
		if t > 0 {
			abPrev = s.AlphaBars[t-1]
		}
		ab, beta := s.AlphaBars[t], s.Betas[t]
		st := Step{
			T: t,
			B: beta * math.Sqrt(abPrev) / (1 - ab),
			A: (1 - abPrev) * math.Sqrt(1-beta) / (1 - ab),
		}
		if t > 0 {
			st.NoiseStd = math.Sqrt(beta * (1 - abPrev) / (1 - ab))
		}
		plan[i] = st
	}
	return plan
}

// Denoiser predicts, for noisy x at timestep t (a float scalar node), the
// model output (ε or v, per the target).
type Denoiser func(x, t *Node) *Node

// Coeffs packs a step for Update: [t, α_t, σ_t, A, B, C, NoiseStd].
func (s *Schedule) Coeffs(st Step) []float64 {
	alpha, sigma := s.alphaSigma(st.T)
	return []float64{float64(st.T), alpha, sigma, st.A, st.B, st.C, st.NoiseStd}
}

// CoeffsTensor is Coeffs as a host tensor of dtype, the input of a looped
// solver step.
func (s *Schedule) CoeffsTensor(st Step, dtype dtypes.DType) *tensors.Tensor {
	c := s.Coeffs(st)
	return nn.Tensor(c, dtype, len(c))
}

// Update applies one step whose packed coefficients (see Coeffs) are the
// node coeffs [7]: it predicts x̂₀ from x and returns the next x and x̂₀.
// prev is the previous step's x̂₀ (any value on the first step, where C = 0)
// and noise is standard normal noise shaped like x.
func Update(x, prev, coeffs *Node, target Target, denoise Denoiser, noise *Node) (next, x0 *Node) {
	c := func(i int) *Node { return Squeeze(SliceAxis(coeffs, 0, AxisElem(i)), 0) }
	t, alpha, sigma := c(0), c(1), c(2)
	pred := denoise(x, t)
	if target == Velocity {
		x0 = Sub(Mul(x, alpha), Mul(pred, sigma))
	} else {
		x0 = Div(Sub(x, Mul(pred, sigma)), alpha)
	}
	next = Add(Add(Mul(x, c(3)), Mul(x0, c(4))), Add(Mul(prev, c(5)), Mul(noise, c(6))))
	return next, x0
}

// MaxUnrolledSteps bounds the steps a sampler unrolls into one graph:
// longer plans (DDPM) would make a graph too large to compile quickly, so
// samplers run them as a host loop of one compiled step instead.
const MaxUnrolledSteps = 64

// Run executes plan inside the current graph from the initial noise x,
// unrolled. noise(i) must return fresh standard normal noise shaped like x
// for steps with NoiseStd > 0.
func (s *Schedule) Run(plan Plan, x *Node, target Target, denoise Denoiser, noise func(i int) *Node) *Node {
	g := x.Graph()
	prev := ZerosLike(x)
	zero := ZerosLike(x)
	for i, st := range plan {
		z := zero
		if st.NoiseStd != 0 {
			z = noise(i)
		}
		x, prev = Update(x, prev, Const(g, s.CoeffsTensor(st, x.DType())), target, denoise, z)
	}
	return x
}
