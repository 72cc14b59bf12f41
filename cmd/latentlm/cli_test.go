package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var binary_ string

// TestMain builds the command once; the tests run it as a user would.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "latentlm-cli")
	if err != nil {
		panic(err)
	}
	binary_ = filepath.Join(dir, "latentlm")
	build := exec.Command("go", "build", "-o", binary_, ".")
	build.Env = append(os.Environ(), "GOEXPERIMENT=simd")
	if out, err := build.CombinedOutput(); err != nil {
		panic(string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cli runs the binary in dir and returns its exit code, stdout and stderr.
func cli(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binary_, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

// repoRoot is where the shipped weights and .deps live.
func repoRoot(t *testing.T) string {
	wd, _ := os.Getwd()
	return filepath.Clean(filepath.Join(wd, "..", ".."))
}

// expectOneLineError checks the contract for bad input: exit status 1, one
// line on stderr naming what is wrong, no panic trace.
func expectOneLineError(t *testing.T, code int, stderr, want string) {
	t.Helper()
	if code != 1 {
		t.Errorf("exit status %d, want 1 (stderr %q)", code, stderr)
	}
	if strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("error is not one line:\n%s", stderr)
	}
	if strings.Contains(stderr, "goroutine") || strings.Contains(stderr, "panic") {
		t.Errorf("panic trace in output:\n%s", stderr)
	}
	if !strings.Contains(stderr, want) {
		t.Errorf("stderr %q lacks %q", stderr, want)
	}
}

func safetensorsFile(header string, data int) []byte {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	return append(append(b, header...), make([]byte, data)...)
}

// TestBadCheckpointFiles feeds each kind of broken safetensors file to
// `vae decode` and to a model checkpoint, and checks one-line errors, exit
// status 1 and that no output is left behind.
func TestBadCheckpointFiles(t *testing.T) {
	root := repoRoot(t)
	vaeDir := filepath.Join(root, "weights", "vae-mnist")
	if _, err := os.Stat(vaeDir); err != nil {
		t.Fatal("shipped tokenizer not present (run make setup)")
	}
	valid := safetensorsFile(`{"latents":{"dtype":"F32","shape":[1,49,8],"data_offsets":[0,1568]}}`, 1568)
	past := append([]byte(nil), valid...)
	binary.LittleEndian.PutUint64(past, 1<<20)
	cases := map[string]struct {
		content []byte
		want    string
	}{
		"truncated":       {valid[:6], "truncated"},
		"header_past_eof": {past, "past the end"},
		"invalid_json":    {safetensorsFile(`{"latents":{"dtype":`, 0), "invalid JSON"},
		"overlap":         {safetensorsFile(`{"latents":{"dtype":"F32","shape":[1,49,8],"data_offsets":[0,1568]},"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 1568), "overlap"},
		"out_of_range":    {safetensorsFile(`{"latents":{"dtype":"F32","shape":[1,49,8],"data_offsets":[8,1576]}}`, 1568), "out of range"},
		"size_mismatch":   {safetensorsFile(`{"latents":{"dtype":"F32","shape":[2,49,8],"data_offsets":[0,1568]}}`, 1568), "do not match shape"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			in := filepath.Join(dir, "in.safetensors")
			os.WriteFile(in, c.content, 0o644)
			out := filepath.Join(dir, "out")
			code, _, stderr := cli(t, root, "vae", "decode", "--vae", vaeDir, "--out-dir", out, in)
			expectOneLineError(t, code, stderr, c.want)
			if !strings.Contains(stderr, in) {
				t.Errorf("error does not name the file %s: %q", in, stderr)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("output folder %s created despite the error", out)
			}

			// The same file as a model's weights: sample must fail the same way
			// and not create its output.
			model := filepath.Join(dir, "model")
			os.MkdirAll(model, 0o755)
			os.WriteFile(filepath.Join(model, "config.json"), []byte(`{"kind":"latentlm","config":{"dim":32,"depth":1,"heads":2,"kv_heads":2,"mlp_ratio":2,"head_depth":1,"head_dim":32,"latent_channels":8,"max_len":52,"target":"eps","vocab":{"classes":10,"extra":0}},"info":{"tokenizer":{}}}`), 0o644)
			os.WriteFile(filepath.Join(model, "model.safetensors"), c.content, 0o644)
			png := filepath.Join(dir, "samples.png")
			code, _, stderr = cli(t, root, "sample", "--model", model, "--out", png)
			expectOneLineError(t, code, stderr, c.want)
			if _, err := os.Stat(png); err == nil {
				t.Errorf("%s created despite the error", png)
			}
		})
	}
}

func TestBadInputs(t *testing.T) {
	root := repoRoot(t)
	dir := t.TempDir()
	txt := filepath.Join(dir, "notes.png")
	os.WriteFile(txt, []byte("not an image"), 0o644)
	emptyRow := filepath.Join(dir, "row.json")
	os.WriteFile(emptyRow, []byte(`[{}]`), 0o644)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"info", "--backend", "tpu"}, `unknown backend "tpu"`},
		{[]string{"vae", "encode", "--out", filepath.Join(dir, "z.safetensors"), txt}, txt},
		{[]string{"vae", "train", "--data", "cifar"}, `unknown data set "cifar"`},
		{[]string{"sample", "--class", "12", "--out", filepath.Join(dir, "s.png")}, "--class"},
		{[]string{"sample", "--model", dir, "--out", filepath.Join(dir, "s.png")}, "not a checkpoint"},
		{[]string{"sample", "--model", filepath.Join(dir, "missing"), "--out", filepath.Join(dir, "s.png")}, "missing: not a checkpoint (no such folder)"},
		{[]string{"sample", "--model", txt, "--out", filepath.Join(dir, "s.png")}, "notes.png: not a checkpoint (a file, not a folder)"},
		{[]string{"sample", "--out", filepath.Join(dir, "s.jpg")}, "s.jpg: want a name ending in .png"},
		{[]string{"vae", "encode", "--out", filepath.Join(dir, "z.png"), txt}, "z.png: want a name ending in .safetensors"},
		// Flags may follow the files: the error is the file's, not "--out"'s.
		{[]string{"vae", "encode", txt, "--out", filepath.Join(dir, "z.safetensors")}, txt},
		// A Fashion-MNIST model is judged against Fashion-MNIST, or refused.
		{[]string{"eval", "--model", filepath.Join(root, "weights", "latentlm-fashion"), "--data", "mnist"}, "was trained on fashion"},
		{[]string{"sample", "--model", filepath.Join(root, "weights", "vae-mnist"), "--out", filepath.Join(dir, "s.png")}, `holds a "vae" model`},
		{[]string{"train", "--arch", "transformer", "--out", filepath.Join(dir, "t")}, `unknown --arch "transformer"`},
		{[]string{"train", "--time", "-5m", "--out", filepath.Join(dir, "t")}, "want a duration above 0"},
		{[]string{"train", "--task", "tts", "--stack", "0", "--out", filepath.Join(dir, "t")}, "--stack 0: want a value ≥ 1 and ≤ 16"},
		{[]string{"train", "--task", "tts", "--train-gflop", "100", "--steps", "5", "--out", filepath.Join(dir, "t")}, "give it or --steps, not both"},
		{[]string{"train", "--task", "valle", "--codec", dir, "--train-gflop", "-1", "--out", filepath.Join(dir, "t")}, "--train-gflop -1: want a value ≥ 0"},
		{[]string{"train", "--task", "valle", "--codec", dir, "--reading", "runes", "--out", filepath.Join(dir, "t")}, `"runes": want characters or phonemes`},
		{[]string{"speech-vae", "train", "--timbre-share", "0.5", "--out", filepath.Join(dir, "t")}, "--timbre-share needs --timbres DIR"},
		{[]string{"speech-vae", "train", "--timbres", dir, "--timbre-share", "1.5", "--out", filepath.Join(dir, "t")}, "--timbre-share 1.5"},
		{[]string{"speech", "data", "--timbres", "--texts", "5", "--out", filepath.Join(dir, "t")}, "--texts is for the English data"},
		{[]string{"train", "--task", "tts", "--data", dir, "--timbres", filepath.Join(dir, "none"), "--out", filepath.Join(dir, "t")}, "no timbres in " + filepath.Join(dir, "none") + ": build them with latentlm speech data --timbres"},
		{[]string{"bench", "sample", "--arch", "rnn"}, `unknown --arch "rnn"`},
		{[]string{"sweep", "--over", "speed", "--json", filepath.Join(dir, "s.json"), "--out", filepath.Join(dir, "s.png"), "a=b"}, `--over "speed"`},
		{[]string{"sweep", "--over", "cfg", "--json", filepath.Join(dir, "s.json"), "--out", filepath.Join(dir, "s.png")}, "NAME=MODEL"},
		{[]string{"sweep", "--over", "train", "--json", filepath.Join(dir, "s.json"), "--out", filepath.Join(dir, "s.png"), "run=" + dir}, "no step-NNNNNN snapshots"},
		{[]string{"sweep", "--from", txt, "--out", filepath.Join(dir, "s.png")}, "invalid sweep JSON"},
		{[]string{"sweep", "--from", emptyRow, "--y", "accuracy", "--out", filepath.Join(dir, "s.png")}, "--from " + emptyRow + ": row 1"},
		{[]string{"eval", "--reference", "test,test"}, "test is given twice"},
		{[]string{"average", "--out", filepath.Join(dir, "avg"), filepath.Join(root, "weights", "tts")}, "at least two model folders"},
		{[]string{"average", "--out", filepath.Join(dir, "avg"), filepath.Join(root, "weights", "tts"), filepath.Join(root, "weights", "vae-mnist")}, "only one kind can be averaged"},
		// A model with a tokenizer it was not trained with.
		{[]string{"sample", "--model", filepath.Join(root, "weights", "latentlm-mnist"), "--vae", filepath.Join(root, "weights", "vae-fashion"), "--out", filepath.Join(dir, "s.png")}, "is not the one"},
	}
	for _, c := range cases {
		code, _, stderr := cli(t, root, c.args...)
		if c.args[0] == "info" {
			expectOneLineError(t, code, stderr, c.want)
			continue
		}
		expectOneLineError(t, code, stderr, c.want)
	}
	for _, f := range []string{"z.safetensors", "z.png", "s.png", "s.jpg", "s.json", "t", "avg"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("%s created despite the error", f)
		}
	}
}

func TestHelp(t *testing.T) {
	code, stdout, _ := cli(t, repoRoot(t), "help")
	if code != 0 {
		t.Fatalf("help exit status %d", code)
	}
	for _, cmd := range []string{"info", "bench", "vae", "train", "sample", "demo"} {
		if !strings.Contains(stdout, "  "+cmd+" ") {
			t.Errorf("help does not list %s", cmd)
		}
	}
}

// TestTrainTimeBudget trains with --time and a --steps far beyond it: the
// run must end by itself, saved, with fewer steps than --steps.
func TestTrainTimeBudget(t *testing.T) {
	root := repoRoot(t)
	run := filepath.Join(t.TempDir(), "timed")
	start := time.Now()
	if code, _, stderr := cli(t, root, "train", "--arch", "dit", "--dim", "32", "--depth", "1", "--heads", "2",
		"--steps", "1000000", "--time", "20s", "--batch", "4", "--sample-every", "0", "--quiet", "--out", run); code != 0 {
		t.Fatalf("train --time 20s: exit %d: %s", code, stderr)
	}
	took := time.Since(start)
	b, err := os.ReadFile(filepath.Join(run, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Info struct {
			Steps int64 `json:"steps"`
		} `json:"info"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Info.Steps < 1 || cfg.Info.Steps >= 1000000 {
		t.Errorf("a 20 s budget ran %d steps, want at least 1 and fewer than --steps", cfg.Info.Steps)
	}
	if took > 2*time.Minute {
		t.Errorf("a 20 s budget took %s", took)
	}
}

// TestDiTEndToEnd trains the DiT baseline for two steps with a snapshot at
// each, samples from a snapshot and scores it with a tiny sweep.
func TestDiTEndToEnd(t *testing.T) {
	root := repoRoot(t)
	dir := t.TempDir()
	run := filepath.Join(dir, "dit")
	if code, _, stderr := cli(t, root, "train", "--arch", "dit", "--dim", "32", "--depth", "1", "--heads", "2",
		"--steps", "2", "--batch", "4", "--snapshot-every", "1", "--sample-every", "0", "--quiet", "--out", run); code != 0 {
		t.Fatalf("train --arch dit: exit %d: %s", code, stderr)
	}
	for _, f := range []string{"config.json", "step-000001/model.safetensors", "step-000002/config.json"} {
		if _, err := os.Stat(filepath.Join(run, f)); err != nil {
			t.Errorf("training left no %s: %v", f, err)
		}
	}
	png := filepath.Join(dir, "s.png")
	if code, stdout, stderr := cli(t, root, "sample", "--model", filepath.Join(run, "step-000001"), "--class", "2", "--n", "2", "--steps", "3", "--out", png); code != 0 {
		t.Fatalf("sample: exit %d: %s %s", code, stdout, stderr)
	} else if !strings.Contains(stderr, "sampling 98/98 images 1–2 of 2") {
		// A DiT draws its 2 × 49 latents in one report, which the bar counts whole.
		t.Errorf("sample's progress: %q, want the bar at 98/98", stderr)
	}
	if _, err := os.Stat(png); err != nil {
		t.Error(err)
	}
	js := filepath.Join(dir, "sweep.json")
	if code, _, stderr := cli(t, root, "sweep", "--over", "train", "--n", "10", "--steps", "2", "--json", js, "--out", filepath.Join(dir, "sweep.png"), "dit="+run); code != 0 {
		t.Fatalf("sweep: exit %d: %s", code, stderr)
	}
	raw, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var rows []struct {
		Series     string  `json:"series"`
		TrainSteps float64 `json:"train_steps"`
		FD         float64 `json:"fd"`
	}
	if err := json.Unmarshal(raw, &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].TrainSteps != 1 || rows[1].TrainSteps != 2 || !(rows[0].FD > 0) {
		t.Errorf("sweep rows %+v, want steps 1 and 2 with a positive FD", rows)
	}
}
