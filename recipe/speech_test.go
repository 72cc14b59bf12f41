package recipe

import (
	"context"
	"path/filepath"
	"testing"

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
	resumeIsExact(t, "a rvq run", root, func(out string, steps int64, resume bool) error {
		o := opts(out, steps)
		o.Resume = resume
		_, err := SpeechTokenizer(ctx, o)
		return err
	})
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
