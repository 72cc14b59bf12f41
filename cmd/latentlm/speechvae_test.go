package main

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/latentlm/latentlm/safetensors"
	"github.com/latentlm/latentlm/speech"
	"github.com/latentlm/latentlm/speechvae"
	"github.com/latentlm/latentlm/wav"
)

// TestSpeechVAERVQFlags: the residual-VQ flags are refused with one line
// each when they do not fit: codebook flags for another kind, an unknown
// kind, and out-of-range codebook settings.
func TestSpeechVAERVQFlags(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--codebooks", "4"}, "--codebooks is for --kind rvq"},
		{[]string{"--kind", "sigma", "--restart-below", "0.5"}, "--restart-below is for --kind rvq"},
		{[]string{"--kind", "dvae"}, "unknown kind \"dvae\""},
		{[]string{"--kind", "rvq", "--codebook-size", "1"}, "--codebook-size"},
		{[]string{"--kind", "rvq", "--codebooks", "0"}, "--codebooks"},
		{[]string{"--kind", "rvq", "--codebook-decay", "1"}, "--codebook-decay"},
		{[]string{"--kind", "rvq", "--c-sigma", "0.5"}, "--c-sigma is for --kind sigma"},
	} {
		args := append([]string{"speech-vae", "train", "--data", dir, "--out", dir + "/out"}, tc.args...)
		code, _, stderr := cli(t, dir, args...)
		expectOneLineError(t, code, stderr, tc.want)
	}
}

// TestSpeechVAEInitFlags: a run from --init takes that tokenizer's config,
// so the flags that would change it are refused, each with one line.
func TestSpeechVAEInitFlags(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--init", dir, "--channels", "16"}, "--channels: a run from --init takes the tokenizer's config"},
		{[]string{"--init", dir, "--decoder-only", "--c-sigma", "0.5"}, "--c-sigma: a run from --init"},
		{[]string{"--init", dir, "--kind", "rvq"}, "--kind: a run from --init"},
		{[]string{"--init", dir, "--decoder-only", "--decoder-depth", "65"}, "--decoder-depth"},
	} {
		args := append([]string{"speech-vae", "train", "--data", dir, "--out", dir + "/out"}, tc.args...)
		code, _, stderr := cli(t, dir, args...)
		expectOneLineError(t, code, stderr, tc.want)
	}
}

// TestSpeechVAEBatchAllOrNothing: encode and decode write nothing when one
// input of the batch is bad, though the others came first; with every input
// good, each gets its output.
func TestSpeechVAEBatchAllOrNothing(t *testing.T) {
	root := repoRoot(t)
	if _, err := os.Stat(filepath.Join(root, "weights", "speech-vae", "config.json")); err != nil {
		t.Skip("no shipped speech tokenizer")
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	for _, d := range []string{in, out} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	good := filepath.Join(in, "good.wav")
	if err := wav.Write(good, wav.Audio{Rate: speech.Rate, Samples: make([]float32, speech.Rate/2)}); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(in, "bad.wav")
	if err := os.WriteFile(bad, []byte("not audio"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := func() {
		t.Helper()
		if entries, _ := os.ReadDir(out); len(entries) > 0 {
			t.Errorf("%s holds %s after a refused batch", out, entries[0].Name())
		}
	}
	code, _, stderr := cli(t, root, "speech-vae", "encode", "--out-dir", out, good, bad)
	expectOneLineError(t, code, stderr, bad)
	empty()
	code, _, stderr = cli(t, root, "speech-vae", "encode", good, "--out-dir", out) // flags after the file
	if code != 0 {
		t.Fatalf("encode: %s", stderr)
	}
	latents := filepath.Join(out, "good.safetensors")
	nan := filepath.Join(in, "nan.safetensors")
	if err := safetensors.Save(nan, []safetensors.Tensor{safetensors.FromFloat32(speechvae.LatentsTensor, []int{1, 32}, slices.Repeat([]float32{float32(math.NaN())}, 32))}, nil); err != nil {
		t.Fatal(err)
	}
	decoded := filepath.Join(dir, "decoded")
	if err := os.Mkdir(decoded, 0o755); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = cli(t, root, "speech-vae", "decode", "--out-dir", decoded, latents, nan)
	expectOneLineError(t, code, stderr, nan)
	if entries, _ := os.ReadDir(decoded); len(entries) > 0 {
		t.Errorf("%s holds %s after a refused batch", decoded, entries[0].Name())
	}
}
