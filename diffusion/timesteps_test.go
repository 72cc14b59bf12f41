package diffusion

import (
	"encoding/json"
	"math"
	"os"
	"slices"
	"strconv"
	"testing"
)

// The DPM-Solver++ timesteps equal diffusers' DPMSolverMultistepScheduler
// ("linspace" spacing, numpy's round half to even), as recorded by
// scripts/pytorch/latentlm_reference.py in testdata/pytorch, for our
// λ ≥ −5.1 floor and for the public sampling script's unclipped λ.
func TestTimestepsEqualDiffusers(t *testing.T) {
	raw, err := os.ReadFile("../testdata/pytorch/latentlm_reference.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Timesteps map[string]struct {
			Numpy map[string][]int `json:"numpy_round_half_even"`
		} `json:"timesteps_linspace"`
	}
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	floors := map[string]float64{
		"lambda_min_clipped=-5.1 (ours, diffusion.LambdaMinClipped)": LambdaMinClipped,
	}
	for k := range ref.Timesteps {
		if k != "lambda_min_clipped=-5.1 (ours, diffusion.LambdaMinClipped)" {
			floors[k] = math.Inf(-1)
		}
	}
	if len(floors) != 2 {
		t.Fatalf("want two clip settings in the reference, got %v", floors)
	}
	s := Cosine(1000)
	checked := 0
	for name, floor := range floors {
		lists := ref.Timesteps[name].Numpy
		if len(lists) < 6 {
			t.Fatalf("%s: %d step counts in the reference, want ≥ 6", name, len(lists))
		}
		for n, want := range lists {
			steps, _ := strconv.Atoi(n)
			plan, err := s.DPMSolverPP(steps, floor)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]int, len(plan))
			for i, st := range plan {
				got[i] = st.T
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s, %d steps:\n got %v\nwant %v", name, steps, got, want)
			}
			checked++
		}
	}
	// Literal lists, so that the reference file cannot drift unnoticed.
	for _, c := range []struct {
		n    int
		want []int
	}{
		{10, []int{995, 896, 796, 696, 597, 498, 398, 298, 199, 100}},
		{5, []int{995, 796, 597, 398, 199}},
	} {
		plan, _ := s.DPMSolverPP(c.n, LambdaMinClipped)
		for i, st := range plan {
			if st.T != c.want[i] {
				t.Errorf("%d steps: timestep %d is %d, want %d", c.n, i, st.T, c.want[i])
			}
		}
	}
	t.Logf("%d timestep lists equal diffusers'", checked)
}
