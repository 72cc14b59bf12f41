package dit

import (
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute/dtypes"

	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/lm"
)

// TestSampleRowsIndependent: with its noise, guidance scale and
// temperature supplied per grid, a grid is the same, bit for bit, sampled
// alone or batched with grids of other classes and settings, unrolled or
// looped up to rounding; the scale is the grid's own.
func TestSampleRowsIndependent(t *testing.T) {
	cfg := tinyConfig()
	b := testutil.Backend(t, "")
	store := randomStore(t, cfg, 0.05, dtypes.Float32)
	per := cfg.Items() * cfg.Latent
	noise := func(seed uint64) []float32 {
		rng := rand.New(rand.NewPCG(seed, 0))
		z := make([]float32, per)
		for i := range z {
			z[i] = float32(rng.NormFloat64())
		}
		return z
	}
	run := func(unroll bool, labels []int, seeds []uint64, scale, temp []float64) [][]float32 {
		t.Helper()
		s, err := newSampler(b, store, cfg, lm.SampleOptions{Steps: 4, CFG: 1, Temperature: 1, Seed: 1}, unroll)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		nz := make([][]float32, len(seeds))
		for i, sd := range seeds {
			nz[i] = noise(sd)
		}
		z, err := s.SampleRows(labels, nz, scale, temp)
		if err != nil {
			t.Fatal(err)
		}
		return z
	}
	alone := run(true, []int{1}, []uint64{7}, []float64{2.5}, []float64{0.9})[0]
	batched := run(true, []int{0, 1, 2}, []uint64{3, 7, 7}, []float64{4, 2.5, 1}, []float64{1, 0.9, 1.1})
	looped := run(false, []int{1}, []uint64{7}, []float64{2.5}, []float64{0.9})[0]
	for k := range alone {
		if alone[k] != batched[1][k] {
			t.Fatalf("value %d: alone %v, batched %v", k, alone[k], batched[1][k])
		}
	}
	if e := testutil.RelErr(f64(alone), f64(looped)); e > 1e-5 {
		t.Errorf("unrolled and looped differ by %.3g", e)
	}
	other := run(true, []int{1}, []uint64{7}, []float64{0.5}, []float64{0.9})[0]
	if testutil.RelErr(f64(alone), f64(other)) < 1e-3 {
		t.Error("guidance scales 2.5 and 0.5 gave the same grid")
	}
	s, err := NewSampler(b, store, cfg, lm.SampleOptions{Steps: 0, CFG: 1, Temperature: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.SampleRows([]int{0}, [][]float32{noise(1)}, []float64{1}, []float64{1}); err == nil {
		t.Error("DDPM rows accepted")
	}
}
