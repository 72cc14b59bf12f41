package recipe

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/speechvae"
)

// TestSpeechTokenizerRVQResume: a tiny residual-VQ tokenizer run stopped
// at step 2 and resumed to 4 ends with the weights, codebooks included, of
// a run straight to 4 (the codebooks' moving averages are training state,
// kept across the resume), and the checkpoint loads as a rvq codec.
func TestSpeechTokenizerRVQResume(t *testing.T) {
	cache, _ := tinySpeechData(t)
	root := t.TempDir()
	opts := func(out string, steps int64) SpeechTokenizerOptions {
		o := DefaultSpeechTokenizerOptions()
		o.Data, o.Out, o.Quiet, o.Steps, o.SaveEvery, o.Batch, o.Crop = cache, out, true, steps, 0, 2, 8
		o.Model.Channels, o.Model.Dim, o.Model.Depth, o.Model.Heads = 4, 16, 1, 2
		o.Model = o.Model.RVQ(3, 8)
		return o
	}
	ctx := context.Background()
	straight := opts(filepath.Join(root, "straight"), 4)
	if _, err := SpeechTokenizer(ctx, straight); err != nil {
		t.Fatal(err)
	}
	half := opts(filepath.Join(root, "resumed"), 2)
	if _, err := SpeechTokenizer(ctx, half); err != nil {
		t.Fatal(err)
	}
	half.Steps, half.Resume = 4, true
	if _, err := SpeechTokenizer(ctx, half); err != nil {
		t.Fatal(err)
	}
	a, err := os.ReadFile(filepath.Join(straight.Out, checkpoint.WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(half.Out, checkpoint.WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("a rvq run stopped at step 2 and resumed to 4 differs from one run straight to 4")
	}
	m, err := speechvae.Load(testutil.Backend(t, ""), straight.Out)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	codes, err := m.Codes(make([]float32, 3000))
	if err != nil {
		t.Fatal(err)
	}
	if len(codes) != 5 || len(codes[0]) != 3 {
		t.Errorf("3000 samples gave %d frames of %d codes, want 5 of 3", len(codes), len(codes[0]))
	}
}
