package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestFlagsAnywhere: a command that takes arguments reads its flags before,
// between and after them, and "--" ends the flags.
func TestFlagsAnywhere(t *testing.T) {
	fs := newFlags("test", "test [flags] FILE...").takesArgs()
	n := fs.Int("n", 1, "a number")
	if err := fs.Parse([]string{"a.png", "--n", "3", "b.png", "--", "-c.png", "--n"}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a.png", "b.png", "-c.png", "--n"}; *n != 3 || !slices.Equal(fs.Args(), want) || fs.NArg() != 4 || fs.Arg(2) != "-c.png" || fs.Arg(4) != "" {
		t.Errorf("n %d, arguments %q, want 3 and %q", *n, fs.Args(), want)
	}
	// The checks still apply to a flag after the arguments.
	fs = newFlags("test", "test [flags] FILE...").takesArgs()
	fs.Int("n", 1, "a number")
	if err := fs.Parse([]string{"a.png", "--n", "0"}); err == nil || !strings.Contains(err.Error(), "--n 0") {
		t.Errorf("--n 0 after an argument: %v, want a refusal", err)
	}
	// A command without arguments still refuses a stray word.
	fs = newFlags("test", "test [flags]")
	if err := fs.Parse([]string{"stray"}); err == nil || !strings.Contains(err.Error(), `unexpected argument "stray"`) {
		t.Errorf("a stray word: %v", err)
	}
}

// TestBatchOutputs: the outputs of a batch command are named and checked
// before any work, and two inputs of one name are refused rather than the
// second overwriting the first.
func TestBatchOutputs(t *testing.T) {
	dir := t.TempDir()
	outs, err := batchOutputs([]string{"in/a.wav", "other/b.WAV"}, dir, ".safetensors", "")
	if want := []string{filepath.Join(dir, "a.safetensors"), filepath.Join(dir, "b.safetensors")}; err != nil || !slices.Equal(outs, want) {
		t.Errorf("got %q, %v; want %q", outs, err, want)
	}
	if _, err := batchOutputs([]string{"d1/x.wav", "d2/x.wav"}, dir, ".safetensors", ""); err == nil || !strings.Contains(err.Error(), "d1/x.wav and d2/x.wav would both be written") {
		t.Errorf("two inputs of one name: %v", err)
	}
	if _, err := batchOutputs([]string{"x.wav"}, filepath.Join(dir, "missing"), ".safetensors", ""); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("a missing output folder: %v", err)
	}
	// An input that would be overwritten by another's output.
	in := filepath.Join(dir, "x.wav")
	if err := os.WriteFile(in, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := batchOutputs([]string{filepath.Join(dir, "x.safetensors"), in}, dir, ".wav", ""); err == nil || !strings.Contains(err.Error(), in) {
		t.Errorf("an output over an input: %v", err)
	}
}

// TestModelData: eval judges a model against the data set its checkpoint
// records, and refuses an explicit other one.
func TestModelData(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"kind": "latentlm", "config": {}, "info": {"data": "fashion"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	data := "mnist"
	if err := modelData(dir, &data, false); err != nil || data != "fashion" {
		t.Errorf("--data left out: %q, %v; want fashion", data, err)
	}
	data = "mnist"
	if err := modelData(dir, &data, true); err == nil || !strings.Contains(err.Error(), "trained on fashion") {
		t.Errorf("--data mnist given: %v, want a refusal", err)
	}
	data = "fashion"
	if err := modelData(dir, &data, true); err != nil {
		t.Errorf("--data fashion given: %v", err)
	}
	data = "mnist"
	if err := modelData("", &data, false); err != nil || data != "mnist" {
		t.Errorf("no model: %q, %v", data, err)
	}
}

// TestFirstUnlabelled: eval --images names the file that keeps it from an
// accuracy, a class out of range included.
func TestFirstUnlabelled(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"3_a.png", "12_0.png", "x.png"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := firstUnlabelled(dir, 10), filepath.Join(dir, "12_0.png"); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if got, want := firstUnlabelled(dir, 13), filepath.Join(dir, "x.png"); got != want {
		t.Errorf("with 13 classes: got %s, want %s", got, want)
	}
}
