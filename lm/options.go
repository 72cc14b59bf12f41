package lm

import (
	"fmt"
	"math"
)

// MaxSteps is the largest SampleOptions.Steps: the diffusion schedule has
// 1000 timesteps.
const MaxSteps = 1000

// SampleOptions controls generation. Start from DefaultSampleOptions and
// change what you need: the zero SampleOptions is invalid (its Temperature
// is 0, which Validate rejects rather than silently drawing all-zero noise).
type SampleOptions struct {
	// Steps is the number of DPM-Solver++ (2M) steps per latent, 1…MaxSteps;
	// 0 selects ancestral DDPM sampling over all 1000 timesteps, the
	// reference sampler, which is much slower.
	Steps int
	// CFG is the classifier-free guidance scale, finite and ≥ 0: the
	// prediction is ε_u + CFG·(ε_c − ε_u), so 0 ignores the class, 1 is the
	// plain conditional model and larger values sharpen class fidelity at
	// the cost of diversity.
	CFG float64
	// Temperature scales the initial noise of every latent; finite and > 0.
	// Values below 1 trade diversity for cleaner images.
	Temperature float64
	// Seed makes generation reproducible: with the same seed, request,
	// options, batch size and backend, generation returns the same images.
	Seed int64
}

// DefaultSampleOptions returns the settings of the paper's demo: 20
// DPM-Solver++ steps, guidance scale 4, temperature 1, seed 1.
func DefaultSampleOptions() SampleOptions {
	return SampleOptions{Steps: 20, CFG: 4, Temperature: 1, Seed: 1}
}

// Validate reports the first option out of range.
func (o SampleOptions) Validate() error {
	switch {
	case o.Steps < 0 || o.Steps > MaxSteps:
		return fmt.Errorf("SampleOptions.Steps %d out of range 0…%d", o.Steps, MaxSteps)
	case math.IsNaN(o.CFG) || math.IsInf(o.CFG, 0) || o.CFG < 0:
		return fmt.Errorf("SampleOptions.CFG %v: want a finite scale ≥ 0", o.CFG)
	case math.IsNaN(o.Temperature) || math.IsInf(o.Temperature, 0) || o.Temperature <= 0:
		return fmt.Errorf("SampleOptions.Temperature %v: want a finite value > 0 (start from DefaultSampleOptions)", o.Temperature)
	}
	return nil
}
