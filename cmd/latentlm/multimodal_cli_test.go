package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMultimodalBadInput: the multimodal commands refuse bad input with one
// line and exit status 1 — before loading anything where they can, and
// with the shipped model for what only the model can judge (the prompt's
// length in tokens, the image size).
func TestMultimodalBadInput(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"generate", "--prompt", ""}, "--prompt is empty"},
		{[]string{"generate", "--prompt", " \t "}, "--prompt is empty"},
		{[]string{"generate", "--prompt", "x", "--out", filepath.Join(dir, "g.jpg")}, "g.jpg: want a name ending in .png"},
		{[]string{"ask", "x.png", "  "}, "the question (the last argument) is empty"},
		{[]string{"ask", "x.png", "b.png"}, "the last argument b.png is a file"},
		{[]string{"caption"}, "no images"},
		{[]string{"ask", "x.png"}, "want one or more images and then the question"},
		{[]string{"train", "--task", "poetry"}, `unknown --task "poetry"`},
		{[]string{"train", "--task", "multimodal", "--data", "mnist"}, "takes mnist-canvas or fashion-canvas"},
		{[]string{"train", "--task", "multimodal", "--caption-dropout", "1.5"}, "--caption-dropout 1.5"},
		{[]string{"train", "--task", "multimodal", "--arch", "dit"}, `unknown multimodal arch "dit"`},
		{[]string{"train", "--task", "multimodal", "--arch", "vq", "--out", filepath.Join(dir, "vq")}, "--vae is needed with --arch vq"},
		{[]string{"train", "--task", "multimodal", "--arch", "vq", "--batch-mul", "2"}, "--batch-mul is for the diffusion head"},
		{[]string{"vae", "train", "--kind", "vq", "--codebook-decay", "1", "--out", filepath.Join(dir, "v")}, "--codebook-decay 1"},
		{[]string{"generate", "--prompt", "x", "--top-k", "-1"}, "--top-k -1"},
		{[]string{"eval", "--task", "poetry", "--model", dir}, "poetry"},
		{[]string{"complete", "--prompt", "x", "--images", filepath.Join(dir, "missing")}, "not a folder"},
		{[]string{"demo", "--task", "poetry"}, `unknown --task "poetry"`},
	}
	if err := os.WriteFile(filepath.Join(dir, "b.png"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		code, _, stderr := cli(t, dir, c.args...)
		expectOneLineError(t, code, stderr, c.want)
	}

	// The rest runs in the repository, where .deps and the shipped weights
	// are found.
	root := repoRoot(t)
	if _, err := os.Stat(filepath.Join(root, "weights", multimodalDefault)); err != nil {
		t.Skip("no shipped multimodal model")
	}
	small := filepath.Join(dir, "small.png")
	if code, _, stderr := cli(t, root, "sample", "--class", "3", "--n", "1", "--out", small); code != 0 {
		t.Fatalf("sample: %s", stderr)
	} else if !strings.Contains(stderr, "sampling 49/49 images 1–1 of 1") {
		t.Errorf("sample's progress: %q, want the bar at 49/49 (one latent a step)", stderr)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"generate", "--prompt", "caf\xe9", "--out", filepath.Join(dir, "g.png")}, "not valid UTF-8"},
		{[]string{"generate", "--prompt", strings.Repeat("the digit 3 ", 40), "--out", filepath.Join(dir, "g.png")}, "tokens long"},
		{[]string{"caption", small}, small},
		{[]string{"ask", filepath.Join(dir, "none.png"), "how many digits are there?"}, "none.png"},
		{[]string{"complete"}, "--prompt is empty"},
		{[]string{"complete", "--prompt", strings.Repeat("the digit 3 ", 40)}, "tokens long"},
	} {
		code, stdout, stderr := cli(t, root, c.args...)
		expectOneLineError(t, code, stderr, c.want)
		if c.args[0] == "complete" && stdout != "" {
			t.Errorf("%q printed %q before its error", c.args, stdout)
		}
	}

	// One generated image is written as itself, so caption and ask read it.
	one := filepath.Join(dir, "one.png")
	if code, _, stderr := cli(t, root, "generate", "--prompt", "the digit 1 is above the digit 5", "--n", "1", "--out", one); code != 0 {
		t.Fatalf("generate --n 1: %s", stderr)
	}
	code, stdout, stderr := cli(t, root, "ask", one, "how many digits are there?")
	if code != 0 || !strings.HasPrefix(stdout, one+": ") || strings.Count(stdout, "\n") != 1 {
		t.Fatalf("ask on a generated image: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}
