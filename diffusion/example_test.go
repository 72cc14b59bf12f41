package diffusion_test

import (
	"fmt"
	"math"

	"github.com/latentlm/latentlm/diffusion"
)

// solveOnHost runs plan in float64 on the host, exactly as Update does in a
// graph: x̂₀ = (x − σ·ε̂)/α from the denoiser's ε̂, then
// x ← A·x + B·x̂₀ + C·x̂₀(previous step). It calls visit after each step
// with the step index and the new x. The plans used here are deterministic
// (NoiseStd = 0), so no noise is drawn.
func solveOnHost(s *diffusion.Schedule, plan diffusion.Plan, x float64, eps func(x, alpha, sigma float64) float64, visit func(i int, x float64)) float64 {
	prev := 0.0
	for i, st := range plan {
		c := s.Coeffs(st) // [t, α_t, σ_t, A, B, C, NoiseStd]
		alpha, sigma := c[1], c[2]
		x0 := (x - sigma*eps(x, alpha, sigma)) / alpha
		x = st.A*x + st.B*x0 + st.C*prev
		prev = x0
		if visit != nil {
			visit(i, x)
		}
	}
	return x
}

// ExampleSchedule_PlanFor builds the plan PlanFor selects for 20 steps —
// DPM-Solver++ 2M on the 1000-step cosine schedule — and runs it on the host
// in float64, with no compute backend.
//
// The plan starts at t = 995, the last timestep whose log-SNR is at least
// LambdaMinClipped, and ends with a step at t = 50 that has A = 0 and B = 1:
// it returns the denoiser's x̂₀.
//
// The data here is a point mass at x₀ = 1.5, whose exact noise prediction is
// known in closed form: x_t = α_t·x₀ + σ_t·ε gives ε̂ = (x_t − α_t·x₀)/σ_t.
// For it the probability-flow ODE keeps ε fixed, and DPM-Solver++ is exact
// for a constant x̂₀, so every intermediate state must lie on
// x_t = α_t·1.5 + σ_t·ε, and every starting noise must end at 1.5.
func ExampleSchedule_PlanFor() {
	s := diffusion.Cosine(1000)
	plan, err := s.PlanFor(20)
	if err != nil {
		panic(err)
	}
	ts := make([]int, len(plan))
	for i, st := range plan {
		ts[i] = st.T
	}
	last := plan[len(plan)-1]
	fmt.Println("steps:", len(plan))
	fmt.Println("first timesteps:", ts[:5])
	fmt.Printf("last step: t=%d A=%g B=%g\n", last.T, last.A, last.B)

	const x0 = 1.5
	epsPointMass := func(x, alpha, sigma float64) float64 { return (x - alpha*x0) / sigma }
	for _, z := range []float64{-1, 0, 2} {
		// The sampler starts from pure noise z, taken as x at plan[0].T;
		// the ε it implies is then fixed along the exact path.
		c := s.Coeffs(plan[0])
		eps := (z - c[1]*x0) / c[2]
		onPath := true
		got := solveOnHost(s, plan, z, epsPointMass, func(i int, x float64) {
			if i+1 < len(plan) {
				n := s.Coeffs(plan[i+1])
				onPath = onPath && math.Abs(x-(n[1]*x0+n[2]*eps)) < 1e-9
			}
		})
		fmt.Printf("x_T = %+.1f: recovered x0 = %.3f, on the exact path: %v\n", z, got, onPath)
	}
	// Output:
	// steps: 20
	// first timesteps: [995 945 896 846 796]
	// last step: t=50 A=0 B=1
	// x_T = -1.0: recovered x0 = 1.500, on the exact path: true
	// x_T = +0.0: recovered x0 = 1.500, on the exact path: true
	// x_T = +2.0: recovered x0 = 1.500, on the exact path: true
}

// ExampleSchedule_DPMSolverPP runs the 20-step DPM-Solver++ 2M plan on the
// host for Gaussian data x₀ ~ N(m, s²), m = 1.5, s = 0.5, whose exact
// noise prediction is ε̂ = σ_t·(x_t − α_t·m)/(α_t²s² + σ_t²).
//
// The deterministic sampler integrates the probability-flow ODE, whose
// solution for Gaussian data is known in closed form:
// x_t = α_t·m + √(α_t²s² + σ_t²)·w with w fixed, so a start x at the first
// timestep must end at m + s·w with w = (x − α·m)/√(α²s² + σ²). The
// solver lands within 0.005 of it; the gap is the discretisation error of
// 20 steps, which stop at t = 50 and return the denoiser's x̂₀ there.
func ExampleSchedule_DPMSolverPP() {
	const m, sd = 1.5, 0.5
	s := diffusion.Cosine(1000)
	plan, err := s.DPMSolverPP(20, diffusion.LambdaMinClipped)
	if err != nil {
		panic(err)
	}
	epsGauss := func(x, alpha, sigma float64) float64 {
		return sigma * (x - alpha*m) / (alpha*alpha*sd*sd + sigma*sigma)
	}
	c := s.Coeffs(plan[0])
	alpha, sigma := c[1], c[2]
	for _, z := range []float64{-1, 0, 2} {
		got := solveOnHost(s, plan, z, epsGauss, nil)
		w := (z - alpha*m) / math.Sqrt(alpha*alpha*sd*sd+sigma*sigma)
		fmt.Printf("x_T = %+.1f: solver %.3f, exact ODE endpoint %.3f\n", z, got, m+sd*w)
	}
	// Output:
	// x_T = -1.0: solver 0.997, exact ODE endpoint 0.995
	// x_T = +0.0: solver 1.495, exact ODE endpoint 1.495
	// x_T = +2.0: solver 2.491, exact ODE endpoint 2.495
}
