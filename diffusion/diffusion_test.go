package diffusion

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/internal/testutil"
)

func TestCosineSchedule(t *testing.T) {
	s := Cosine(1000)
	// ᾱ decreases from ≈1 to ≈0 and β never exceeds the 0.999 clip.
	if s.AlphaBars[0] < 0.9999 || s.AlphaBars[0] >= 1 {
		t.Errorf("ᾱ_0 = %v, want just below 1", s.AlphaBars[0])
	}
	if s.AlphaBars[999] > 1e-6 {
		t.Errorf("ᾱ_999 = %v, want ≈ 0", s.AlphaBars[999])
	}
	for i := 1; i < 1000; i++ {
		if s.AlphaBars[i] >= s.AlphaBars[i-1] || s.Betas[i] > 0.999 {
			t.Fatalf("schedule not decreasing or β clip broken at %d", i)
		}
	}
	// The midpoint of the continuous schedule: ᾱ(0.5) = cos²(0.508/1.008·π/2)/cos²(0.008/1.008·π/2).
	want := math.Pow(math.Cos(0.508/1.008*math.Pi/2), 2) / math.Pow(math.Cos(0.008/1.008*math.Pi/2), 2)
	if got := s.AlphaBars[499]; math.Abs(got-want) > 1e-9 {
		t.Errorf("ᾱ_499 = %v, want %v", got, want)
	}
}

func TestDPMSolverTimesteps(t *testing.T) {
	p, err := Cosine(1000).DPMSolverPP(20, math.Inf(-1))
	if err != nil {
		t.Fatal(err)
	}
	// round(linspace(0, 999, 21)) reversed without the last: 999, 949, 899, …, 50.
	if p[0].T != 999 || p[1].T != 949 || p[19].T != 50 {
		t.Errorf("timesteps %d %d … %d, want 999 949 … 50", p[0].T, p[1].T, p[19].T)
	}
	// With the λ floor, the start is the last t with λ_t ≥ −5.1.
	s := Cosine(1000)
	c, err := s.DPMSolverPP(20, LambdaMinClipped)
	if err != nil {
		t.Fatal(err)
	}
	lam := func(t int) float64 { return 0.5 * math.Log(s.AlphaBars[t]/(1-s.AlphaBars[t])) }
	if lam(c[0].T) < LambdaMinClipped || lam(c[0].T+1) >= LambdaMinClipped {
		t.Errorf("clipped start t=%d has λ %.3f, next λ %.3f", c[0].T, lam(c[0].T), lam(c[0].T+1))
	}
	if p[0].C != 0 || p[19].A != 0 || p[19].B != 1 {
		t.Errorf("first step must be first order and last must return x̂₀: %+v %+v", p[0], p[19])
	}
	if _, err := Cosine(1000).DPMSolverPP(0, LambdaMinClipped); err == nil {
		t.Error("0 steps accepted")
	}
}

// gaussianDenoiser is the exact denoiser of x₀ ~ N(m, s²): for
// x_t = α·x₀ + σ·ε, E[ε | x_t] = σ·(x_t − α·m)/(α²s² + σ²). m is a scalar
// node (a condition of the solver).
func gaussianDenoiser(sched *Schedule, target Target, m *Node, s float64) Denoiser {
	return func(x, t *Node) *Node {
		g := x.Graph()
		ab := Gather(Const(g, sched.AlphaBars), Reshape(ConvertDType(t, dtypes.Int32), 1))
		ab = ConvertDType(ab, x.DType())
		alpha, sigma := Sqrt(ab), Sqrt(OneMinus(ab))
		den := Add(MulScalar(ab, s*s), OneMinus(ab))
		eps := Div(Mul(Sub(x, Mul(alpha, m)), sigma), den)
		if target == Velocity {
			x0 := Div(Sub(x, Mul(eps, sigma)), alpha)
			return Sub(Mul(eps, alpha), Mul(x0, sigma))
		}
		return eps
	}
}

// gaussianSamples draws n samples with plan through a Solver, the mean m
// passed as the solver's input and condition. With loop set the plan runs
// as a host loop of one compiled step (as long plans such as DDPM's 1000
// steps must), otherwise unrolled in one graph.
func gaussianSamples(t *testing.T, sched *Schedule, plan Plan, target Target, loop bool, n int, m, s float64) []float64 {
	t.Helper()
	b := testutil.Backend(t, "")
	store := model.NewStore()
	if err := store.SetRNGStateFromSeed(7); err != nil {
		t.Fatal(err)
	}
	solver, err := NewSolver(b, store, sched, plan, target, SolverGraphs{
		Loop: loop,
		Noise: func(scope *model.Scope, in []*Node) *Node {
			return scope.RandomNormal(in[0].Graph(), shapes.Make(dtypes.Float32, n))
		},
		Denoiser: func(_ *model.Scope, conds []*Node) Denoiser {
			return gaussianDenoiser(sched, target, conds[0], s)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer solver.Close()
	if solver.Looped() != (loop || len(plan) > MaxUnrolledSteps) {
		t.Fatalf("loop %v, %d steps: solver looped %v", loop, len(plan), solver.Looped())
	}
	mean := tensors.FromScalar(float32(m))
	out, err := solver.Solve(mean)
	if err != nil {
		t.Fatal(err)
	}
	f := tensors.MustCopyFlatData[float32](out)
	r := make([]float64, len(f))
	for i, v := range f {
		r[i] = float64(v)
	}
	return r
}

// TestSamplersRecoverGaussian: with the exact denoiser of Gaussian data,
// DPM-Solver++ (20 steps) and DDPM (1000 steps) reproduce the mean and the
// standard deviation of the data within 2%.
func TestSamplersRecoverGaussian(t *testing.T) {
	const m, s, n = 1.5, 0.5, 20000
	sched := Cosine(1000)
	dpm, err := sched.DPMSolverPP(20, LambdaMinClipped)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		plan   Plan
		target Target
		loop   bool
	}{
		{"dpmsolver++20_eps", dpm, Epsilon, false},
		{"dpmsolver++20_v", dpm, Velocity, false},
		{"dpmsolver++20_eps_loop", dpm, Epsilon, true},
		{"ddpm1000_eps", sched.DDPM(), Epsilon, true},
		{"ddpm1000_v", sched.DDPM(), Velocity, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			gotM, gotS := testutil.MeanStd(gaussianSamples(t, sched, c.plan, c.target, c.loop, n, m, s))
			t.Logf("mean %.4f (want %.2f), std %.4f (want %.2f)", gotM, m, gotS, s)
			if math.Abs(gotM-m) > 0.02*m || math.Abs(gotS-s) > 0.02*s {
				t.Errorf("mean %.4f std %.4f, want %.2f and %.2f within 2%%", gotM, gotS, m, s)
			}
		})
	}
}

// TestTargetsInvert: the sampler inverts the training target. Fed the exact
// target that AddNoise produced, Update's x̂₀ is the x₀ that was noised, for
// ε and v across the schedule; a sign or factor slip in either formula,
// for either target, fails it.
func TestTargetsInvert(t *testing.T) {
	b := testutil.Backend(t, "")
	sched := Cosine(1000)
	const n, c = 8, 4
	r := rand.New(rand.NewPCG(1, 2))
	x0, eps := make([]float64, n*c), make([]float64, n*c)
	for i := range x0 {
		x0[i], eps[i] = r.NormFloat64(), r.NormFloat64()
	}
	for _, target := range []Target{Epsilon, Velocity} {
		for _, step := range []int{0, 250, 500, 750, 995} {
			ts := make([]int32, n)
			for i := range ts {
				ts[i] = int32(step)
			}
			out, err := model.CallOnce(b, model.NewStore(), func(scope *model.Scope, x0N, epsN, tN, coeffs *Node) *Node {
				xt, want := sched.AddNoise(x0N, epsN, tN, target)
				exact := func(*Node, *Node) *Node { return want }
				_, got := Update(xt, ZerosLike(xt), coeffs, target, exact, ZerosLike(xt))
				return got
			}, tensors.FromFlatDataAndDimensions(x0, n, c), tensors.FromFlatDataAndDimensions(eps, n, c),
				tensors.FromFlatDataAndDimensions(ts, n), sched.CoeffsTensor(Step{T: step, B: 1}, dtypes.Float64))
			if err != nil {
				t.Fatal(err)
			}
			if e := testutil.RelErr(tensors.MustCopyFlatData[float64](out), x0); e > 1e-9 {
				t.Errorf("%v at t=%d: x̂₀ differs from x₀ by %.3g relative", target, step, e)
			}
		}
	}
}

// TestGuide: classifier-free guidance is uncond + scale·(cond − uncond),
// and Guided feeds both streams the same x and t, conditional rows first.
func TestGuide(t *testing.T) {
	b := testutil.Backend(t, "")
	x := []float64{1, -2, 0.5, 3, -1, 2} // n = 3 items of 2 values
	const scale, tStep = 2.5, 417
	out, err := model.CallOnce(b, model.NewStore(), func(scope *model.Scope, xN *Node) *Node {
		g := xN.Graph()
		// The conditional streams predict 3·x + t, the unconditional x − t.
		twoStreams := func(x2, t2 *Node) *Node {
			if d := x2.Shape().Dimensions; d[0] != 6 || d[1] != 2 || t2.Shape().Dimensions[0] != 6 {
				panic(fmt.Sprintf("Guided passed x %v, t %v", x2.Shape(), t2.Shape()))
			}
			sign := Const(g, tensors.FromFlatDataAndDimensions([]float64{1, 1, 1, -1, -1, -1}, 6, 1))
			k := Const(g, tensors.FromFlatDataAndDimensions([]float64{3, 3, 3, 1, 1, 1}, 6, 1))
			return Add(Mul(x2, k), Mul(sign, InsertAxes(t2, -1)))
		}
		return Guided(twoStreams, scale)(xN, Scalar(g, dtypes.Float64, tStep))
	}, tensors.FromFlatDataAndDimensions(x, 3, 2))
	if err != nil {
		t.Fatal(err)
	}
	got := tensors.MustCopyFlatData[float64](out)
	for i, v := range x {
		cond, uncond := 3*v+tStep, v-tStep
		if want := uncond + scale*(cond-uncond); math.Abs(got[i]-want) > 1e-9*math.Abs(want) {
			t.Errorf("value %d: guided %v, want %v", i, got[i], want)
		}
	}
}

// TestSolverClose: Solve fails after Close, in both modes.
func TestSolverClose(t *testing.T) {
	sched := Cosine(1000)
	plan, err := sched.PlanFor(3)
	if err != nil {
		t.Fatal(err)
	}
	for _, loop := range []bool{false, true} {
		s, err := NewSolver(testutil.Backend(t, ""), model.NewStore(), sched, plan, Epsilon, SolverGraphs{
			Loop:     loop,
			Noise:    func(_ *model.Scope, in []*Node) *Node { return in[0] },
			Denoiser: func(*model.Scope, []*Node) Denoiser { return func(x, _ *Node) *Node { return x } },
		})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		s.Close()
		if _, err := s.Solve(tensors.FromScalar(float32(1))); err == nil || !s.Closed() {
			t.Errorf("loop %v: Solve after Close: %v", loop, err)
		}
	}
	if _, err := NewSolver(nil, nil, sched, plan, Epsilon, SolverGraphs{}); err == nil {
		t.Error("a solver without graphs accepted")
	}
}
