package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// readConfig decodes the config of the checkpoint in dir into cfg.
func readConfig(t *testing.T, dir string, cfg any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &struct {
		Config any `json:"config"`
	}{cfg}); err != nil {
		t.Fatal(err)
	}
}

// TestCanvasTraining trains a tiny tokenizer and a tiny judge on the
// canvases: the image size, the patch and the classes follow the data
// set, the flags given override the defaults, and bad geometry is refused.
func TestCanvasTraining(t *testing.T) {
	root := repoRoot(t)
	dir := t.TempDir()
	vaeDir := filepath.Join(dir, "vae")
	if code, _, stderr := cli(t, root, "vae", "train", "--data", "mnist-canvas", "--channels", "12", "--dim", "32", "--depth", "1",
		"--steps", "2", "--batch", "8", "--limit", "64", "--quiet", "--out", vaeDir); code != 0 {
		t.Fatalf("vae train: exit %d: %s", code, stderr)
	}
	var v struct {
		ImageSize int `json:"image_size"`
		Patch     int `json:"patch"`
		Channels  int `json:"latent_channels"`
	}
	readConfig(t, vaeDir, &v)
	if v.ImageSize != 56 || v.Patch != 8 || v.Channels != 12 {
		t.Errorf("canvas tokenizer: %+v, want 56×56 in 8×8 patches of 12 channels", v)
	}

	judge := filepath.Join(dir, "judge")
	if code, _, stderr := cli(t, root, "classifier", "train", "--data", "fashion-canvas", "--width1", "4", "--width2", "4", "--width3", "4",
		"--features", "8", "--steps", "2", "--batch", "8", "--limit", "64", "--quiet", "--out", judge); code != 0 {
		t.Fatalf("classifier train: exit %d: %s", code, stderr)
	}
	var c struct {
		ImageSize int   `json:"image_size"`
		Widths    []int `json:"widths"`
		Classes   int   `json:"classes"`
	}
	readConfig(t, judge, &c)
	if c.ImageSize != 56 || !slices.Equal(c.Widths, []int{4, 4, 4}) || c.Classes != 240 {
		t.Errorf("canvas judge: %+v", c)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"vae", "train", "--data", "mnist-canvas", "--patch", "5", "--out", filepath.Join(dir, "x")}, "patch 5 must divide image size 56"},
		{[]string{"classifier", "train", "--data", "mnist", "--width3", "8", "--out", filepath.Join(dir, "x")}, "not divisible by 2^3"},
		{[]string{"vae", "eval", "--data", "mnist-canvas", "--vae", filepath.Join(root, "weights", "vae-mnist")}, "takes 28×28 images, mnist-canvas has 56×56"},
	} {
		code, _, stderr := cli(t, root, c.args...)
		expectOneLineError(t, code, stderr, c.want)
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); err == nil {
		t.Error("a refused run created its folder")
	}
}
