package main

import "testing"

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
