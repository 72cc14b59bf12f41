// Package testspeech makes the tiny untrained speech tokenizers of the
// speech tests (tts, VALL-E, their evaluation, commands and server): one
// configuration, so that every test reads the same model.
package testspeech

import (
	"path/filepath"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/speechvae"
)

// Channels is the latent width of Tokenizer.
const Channels = 4

// Tokenizer is a tiny untrained speech tokenizer: the default config at
// Channels channels, width 16 and one block of 2 heads, a σ-VAE or, with
// codebooks above 0, a residual-VQ codec of that many codebooks of 8
// entries; its weights are drawn with seed 1. It is closed when the test
// ends.
func Tokenizer(t testing.TB, codebooks int) *speechvae.Model {
	t.Helper()
	c := speechvae.DefaultConfig()
	c.Channels, c.Dim, c.Depth, c.Heads = Channels, 16, 1, 2
	if codebooks > 0 {
		c = c.RVQ(codebooks, 8)
	}
	store := model.NewStore()
	if err := nn.Init(store, c.Specs(), 1, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	m, err := speechvae.NewModel(testutil.Backend(t, ""), c, store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// Save writes Tokenizer(t, codebooks) into dir and returns its config and
// the SHA-256 of its weights, which a model's tokenizer record holds.
func Save(t testing.TB, codebooks int, dir string) (speechvae.Config, string) {
	t.Helper()
	m := Tokenizer(t, codebooks)
	if err := m.Save(dir, nil); err != nil {
		t.Fatal(err)
	}
	sum, err := checkpoint.FileSHA256(filepath.Join(dir, checkpoint.WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	return m.Config, sum
}
