package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSpeakerCommandErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ := cli(t, dir, "speaker", "-h")
	if code != 0 || !strings.Contains(stdout, "train") || !strings.Contains(stdout, "eval") {
		t.Errorf("speaker -h: exit %d, %q", code, stdout)
	}
	code, _, stderr := cli(t, dir, "speaker")
	expectOneLineError(t, code, stderr, "missing subcommand")
	code, _, stderr = cli(t, dir, "speaker", "fly")
	expectOneLineError(t, code, stderr, "unknown subcommand")
	code, _, stderr = cli(t, dir, "speaker", "train", "--data", empty, "--out", filepath.Join(dir, "judge"))
	expectOneLineError(t, code, stderr, "run `latentlm speech data` first")
	if _, err := os.Stat(filepath.Join(dir, "judge")); err == nil {
		t.Error("a refused run created its folder")
	}
	code, _, stderr = cli(t, dir, "speaker", "train", "--steps", "0")
	expectOneLineError(t, code, stderr, "--steps 0")
	code, _, stderr = cli(t, dir, "speaker", "eval", "--data", empty)
	expectOneLineError(t, code, stderr, "run `latentlm speech data` first")
	code, _, stderr = cli(t, dir, "speaker", "eval", "--split", "dev")
	expectOneLineError(t, code, stderr, `--split "dev"`)
	// A cache that exists but a folder that holds no judge.
	if err := os.WriteFile(filepath.Join(empty, "manifest.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = cli(t, repoRoot(t), "speaker", "eval", "--data", empty, "--model", dir)
	expectOneLineError(t, code, stderr, "not a checkpoint")
}

// TestSpeakerEvalShipped scores the shipped judge on the validation split
// of the speech cache, where both exist: the bar is 98% on real
// audio.
func TestSpeakerEvalShipped(t *testing.T) {
	root := repoRoot(t)
	for _, p := range []string{filepath.Join(root, "weights", "speaker", "config.json"), filepath.Join(root, ".deps", "speech", "manifest.json")} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("needs %s: %v", p, err)
		}
	}
	code, stdout, stderr := cli(t, root, "speaker", "eval", "--split", "valid", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var out struct {
		Voices []string `json:"voices"`
		Report struct {
			Accuracy float64 `json:"accuracy"`
			SIM      float64 `json:"sim"`
			Voices   []struct {
				Voice    string  `json:"voice"`
				Accuracy float64 `json:"accuracy"`
			} `json:"voices"`
		} `json:"report"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	if out.Report.Accuracy < 0.98 || len(out.Report.Voices) != len(out.Voices) {
		t.Errorf("accuracy %.4f over %d of %d voices, want ≥ 0.98 over all", out.Report.Accuracy, len(out.Report.Voices), len(out.Voices))
	}
}
