package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTransfusionCommands: train --task multimodal --arch transfusion
// writes a "transfusion" checkpoint, and generate, caption, ask and eval
// --task i2t load it by its kind and run on it (the model is barely
// trained: what is checked is the dispatch and the output's form). Flags
// of the other arches, and complete, are refused with one line.
func TestTransfusionCommands(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"train", "--task", "multimodal", "--arch", "transfusion", "--batch-mul", "2"}, "--batch-mul is for LatentLM"},
		{[]string{"train", "--task", "multimodal", "--context-noise", "0.5"}, "--context-noise is for --arch transfusion"},
		{[]string{"train", "--task", "multimodal", "--arch", "transfusion", "--context-noise", "2"}, "--context-noise"},
		{[]string{"train", "--task", "multimodal", "--arch", "diffusion"}, "or transfusion for the Transfusion baseline"},
		{[]string{"train", "--task", "multimodal", "--arch", "transfusion", "--context-clean", "1"}, "--context-clean is for LatentLM"},
		{[]string{"train", "--task", "multimodal", "--context-clean", "2"}, "--context-clean"},
	} {
		code, _, stderr := cli(t, dir, c.args...)
		expectOneLineError(t, code, stderr, c.want)
	}

	root := repoRoot(t)
	for _, need := range []string{".deps", "weights/vae-mnist-canvas", "weights/" + multimodalDefault} {
		if _, err := os.Stat(filepath.Join(root, need)); err != nil {
			t.Skipf("needs %s", need)
		}
	}
	model, corpus := filepath.Join(dir, "tf"), filepath.Join(dir, "corpus.txt")
	if err := os.WriteFile(corpus, []byte("A fool and his money are soon parted.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := cli(t, root, "train", "--task", "multimodal", "--arch", "transfusion", "--vae", "weights/vae-mnist-canvas",
		"--tokenizer", filepath.Join("weights", multimodalDefault, "tokenizer.json"), "--text", corpus, "--limit", "64", "--steps", "3", "--batch", "4",
		"--dim", "32", "--depth", "1", "--heads", "2", "--kv-heads", "2", "--sample-every", "0", "--out", model, "--quiet")
	if code != 0 {
		t.Fatalf("train --arch transfusion: exit %d: %s", code, stderr)
	}
	raw, err := os.ReadFile(filepath.Join(model, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var hdr struct {
		Kind string         `json:"kind"`
		Info map[string]any `json:"info"`
	}
	if err := json.Unmarshal(raw, &hdr); err != nil || hdr.Kind != "transfusion" || hdr.Info["arch"] != "transfusion" {
		t.Fatalf("config.json: kind %q, arch %v (%v)", hdr.Kind, hdr.Info["arch"], err)
	}

	one := filepath.Join(dir, "one.png")
	if code, _, stderr := cli(t, root, "generate", "--model", model, "--prompt", "the digit 1 is above the digit 5", "--n", "1",
		"--steps", "2", "--out", one); code != 0 || !strings.Contains(stderr, "by Transfusion") {
		t.Fatalf("generate: exit %d: %s", code, stderr)
	}
	code, stdout, stderr := cli(t, root, "caption", "--model", model, "--max-tokens", "3", one)
	if code != 0 || !strings.HasPrefix(stdout, one+": ") || strings.Count(stdout, "\n") != 1 {
		t.Fatalf("caption: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, stderr = cli(t, root, "ask", "--model", model, "--max-tokens", "3", one, one, "how many digits are there?")
	if code != 0 || strings.Count(stdout, one+": ") != 2 {
		t.Fatalf("ask: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, stderr = cli(t, root, "eval", "--task", "i2t", "--model", model, "--n", "3", "--max-tokens", "3", "--json")
	var r struct {
		Task string `json:"task"`
		Seen struct {
			N int `json:"n"`
		} `json:"seen"`
		HeldOut struct {
			N int `json:"n"`
		} `json:"held_out"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &r) != nil || r.Task != "i2t" || r.Seen.N+r.HeldOut.N != 3 {
		t.Fatalf("eval --task i2t: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, _, stderr = cli(t, root, "generate", "--model", model, "--prompt", "x", "--top-k", "5", "--out", filepath.Join(dir, "k.png"))
	expectOneLineError(t, code, stderr, "--top-k is for a VQ-MLLM")
	code, _, stderr = cli(t, root, "complete", "--model", model, "--prompt", "x")
	expectOneLineError(t, code, stderr, "complete is LatentLM's")
}
