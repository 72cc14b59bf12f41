// Package testgen makes small generators for the tests of the packages
// that serve them (the root package's batching, the server's).
package testgen

import (
	"path/filepath"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm"
	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/dit"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
)

// DiT saves an untrained DiT for the shipped MNIST tokenizer, every weight
// drawn from N(0, 0.05) (none zero, so that class and guidance matter),
// and loads it; it is closed when the test ends.
func DiT(t testing.TB) *latentlm.Generator {
	t.Helper()
	tokDir, err := latentlm.ShippedWeights("vae-mnist")
	if err != nil {
		t.Fatal(err)
	}
	sum, err := checkpoint.FileSHA256(filepath.Join(tokDir, checkpoint.WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	cfg := dit.Config{Dim: 16, Depth: 1, Heads: 2, MLPRatio: 2, Latent: 8, Grid: 7, Classes: 10, Target: diffusion.Epsilon}
	specs := cfg.Specs()
	for i := range specs {
		specs[i].Std = 0.05
	}
	store := model.NewStore()
	if err := nn.Init(store, specs, 1, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "dit-mnist")
	tok := lm.Tokenizer{Path: tokDir, SHA256: sum, Kind: "sigma", Items: 49, Channels: 8, Data: "mnist"}
	if err := dit.Save(dir, cfg, store, tok, nil); err != nil {
		t.Fatal(err)
	}
	g, err := latentlm.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}
