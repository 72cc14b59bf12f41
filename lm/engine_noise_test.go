package lm

import (
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute/dtypes"

	"github.com/latentlm/latentlm/internal/testutil"
)

// TestEngineSolveWithNoiseRowsIndependent: with noise supplied per
// sequence, a sequence's latents are the same whether it is decoded alone or
// batched with others, looped or unrolled, and SolveWithNoise leaves the
// store's generator (Solve's noise) untouched.
func TestEngineSolveWithNoiseRowsIndependent(t *testing.T) {
	cfg := tinyConfig()
	b := testutil.Backend(t, "")
	store := randomStore(t, cfg, 0.05, dtypes.Float32)
	const items = 4
	opts := SampleOptions{Steps: 6, CFG: 3, Temperature: 0.9, Seed: 11}
	run := func(loop bool, labels []int, seeds []uint64) [][]float32 {
		t.Helper()
		s, err := newSampler(b, store, cfg, items, opts, loop)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		sess, err := s.Prefill(labels)
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		rngs := make([]*rand.Rand, len(labels))
		for i := range rngs {
			rngs[i] = rand.New(rand.NewPCG(seeds[i], 0))
		}
		out := make([][]float32, len(labels))
		for k := range items {
			noise := make([][]float32, len(labels))
			for i := range noise {
				noise[i] = make([]float32, cfg.Latent)
				for j := range noise[i] {
					noise[i][j] = float32(rngs[i].NormFloat64())
				}
			}
			z, err := sess.SolveWithNoise(noise)
			if err != nil {
				t.Fatal(err)
			}
			step := make([]Item, len(z))
			for i := range z {
				out[i] = append(out[i], z[i]...)
				step[i] = LatentItem(z[i])
			}
			if k < items-1 {
				if err := sess.Step(step); err != nil {
					t.Fatal(err)
				}
			}
		}
		return out
	}
	alone := run(false, []int{1}, []uint64{7})
	batched := run(false, []int{2, 1, 0}, []uint64{3, 7, 9})
	looped := run(true, []int{1, 2}, []uint64{7, 3})
	for k := range alone[0] {
		if alone[0][k] != batched[1][k] {
			t.Fatalf("value %d: alone %v, batched %v", k, alone[0][k], batched[1][k])
		}
		if d := alone[0][k] - looped[0][k]; d > 1e-4 || d < -1e-4 {
			t.Fatalf("value %d: unrolled %v, looped %v", k, alone[0][k], looped[0][k])
		}
	}
}
