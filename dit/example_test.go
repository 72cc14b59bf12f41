package dit_test

import (
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/backend"
	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/dit"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
)

// tiny is an untrained DiT small enough to sample in a blink: 3×3 grids of
// 4-channel latents, three classes.
var tiny = dit.Config{Dim: 32, Depth: 2, Heads: 4, MLPRatio: 2, Latent: 4, Grid: 3, Classes: 3, Target: diffusion.Epsilon}

// newStore draws tiny's weights with a fixed seed.
func newStore() *model.Store {
	store := model.NewStore()
	if err := nn.Init(store, tiny.Specs(), 1, dtypes.Float32); err != nil {
		log.Fatal(err)
	}
	return store
}

// The DiT baseline of the MNIST LatentLM: same width, depth, heads and
// target, over the 7×7 latent grid of the MNIST tokenizer, so that a
// comparison of the two isolates the architecture.
func ExampleFromLM() {
	c := dit.FromLM(lm.DefaultConfig(), 7)
	fmt.Printf("dim %d, depth %d, heads %d, target %v\n", c.Dim, c.Depth, c.Heads, c.Target)
	fmt.Printf("%d items of %d channels, %d classes (unconditional id %d)\n", c.Items(), c.Latent, c.Classes, c.Null())
	fmt.Println("valid:", c.Validate() == nil)
	// Output:
	// dim 128, depth 4, heads 4, target eps
	// 49 items of 8 channels, 10 classes (unconditional id 10)
	// valid: true
}

// Count the sampling cost of the DiT against the LatentLM it is the baseline
// of. A DiT pays its whole network at every solver step; LatentLM runs its
// backbone once per latent and only its diffusion head per step. With the
// MNIST config's heavy head the two are close: the DiT is cheaper with one
// step and dearer from five on.
func ExampleConfig_SampleFLOPs() {
	l := lm.DefaultConfig()
	d := dit.FromLM(l, 7)
	for _, steps := range []int{1, 5, 20} {
		fmt.Printf("%2d steps: DiT %.2f GFLOPs, LatentLM %.2f GFLOPs\n",
			steps, d.SampleFLOPs(steps)/1e9, l.SampleFLOPs(d.Items(), steps)/1e9)
	}
	// Output:
	//  1 steps: DiT 0.16 GFLOPs, LatentLM 0.28 GFLOPs
	//  5 steps: DiT 0.80 GFLOPs, LatentLM 0.75 GFLOPs
	// 20 steps: DiT 3.20 GFLOPs, LatentLM 2.52 GFLOPs
}

// Generate latent grids for three class labels with an untrained DiT: each
// grid is Items·Latent values, ready for the tokenizer's decoder. The same
// seed, labels and options give the same grids again.
func ExampleNewSampler() {
	b, err := backend.Open(backend.Resolve(""))
	if err != nil {
		log.Fatal(err)
	}
	store := newStore()
	sample := func() [][]float32 {
		s, err := dit.NewSampler(b, store, tiny, lm.SampleOptions{Steps: 4, CFG: 2, Temperature: 1, Seed: 7})
		if err != nil {
			log.Fatal(err)
		}
		defer s.Close()
		grids, err := s.Sample([]int{0, 1, 2})
		if err != nil {
			log.Fatal(err)
		}
		return grids
	}
	grids := sample()
	for _, g := range grids {
		finite := !slices.ContainsFunc(g, func(v float32) bool { return math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) })
		fmt.Println(len(g), "values, all finite:", finite)
	}
	fmt.Println("reproducible:", slices.EqualFunc(grids, sample(), slices.Equal))
	// Output:
	// 36 values, all finite: true
	// 36 values, all finite: true
	// 36 values, all finite: true
	// reproducible: true
}

// Save a DiT with the record of the tokenizer its latents come from, and load
// it back: sampling later refuses a tokenizer whose latents mean something
// else.
func ExampleSave() {
	dir, err := os.MkdirTemp("", "dit-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "dit")
	tok := lm.Tokenizer{Path: "weights/vae-tiny", Kind: "vae", Items: tiny.Items(), Channels: tiny.Latent, Data: "mnist"}
	if err := dit.Save(out, tiny, newStore(), tok, map[string]any{"steps": 0}); err != nil {
		log.Fatal(err)
	}
	cfg, _, tok2, err := dit.Load(out)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("same config:", cfg == tiny)
	fmt.Println("tokenizer:", tok2.Path, tok2.Items, "items of", tok2.Channels)
	// Output:
	// same config: true
	// tokenizer: weights/vae-tiny 9 items of 4
}
