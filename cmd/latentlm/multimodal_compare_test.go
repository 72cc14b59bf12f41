package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/evaluate"
	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/recipe"
	"github.com/latentlm/latentlm/transfusion"
)

// TestMultimodalSweepAndBench: train --task multimodal --snapshot-every
// keeps step-NNNNNN snapshots (the last step too) recording their training
// tokens; sweep --over train --task multimodal scores the snapshots of runs
// of two arches, one row each, and draws the figure, which --from redraws;
// bench generate times a checkpoint at each batch size with its counted
// GFLOP per image. The models are barely trained: what is checked is the
// plumbing and the output's form.
func TestMultimodalSweepAndBench(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := cli(t, dir, "sweep", "--task", "multimodal", "--over", "cfg", "--json", "x.json", "--out", "x.png", "a=b")
	expectOneLineError(t, code, stderr, "training snapshots only")
	code, _, stderr = cli(t, dir, "sweep", "--task", "multimodal", "--tasks", "text,draw", "--json", "x.json", "--out", "x.png", "a=b")
	expectOneLineError(t, code, stderr, `task "draw"`)
	code, _, stderr = cli(t, dir, "sweep", "--task", "multimodal", "--from", "x.json", "--out", "x.png", "--y", "accuracy")
	expectOneLineError(t, code, stderr, `--y "accuracy"`)
	code, _, stderr = cli(t, dir, "bench", "generate", "--batches", "1")
	expectOneLineError(t, code, stderr, "--model DIR is required")

	root := repoRoot(t)
	for _, need := range []string{".deps", "weights/vae-mnist-canvas", "weights/" + multimodalDefault} {
		if _, err := os.Stat(filepath.Join(root, need)); err != nil {
			t.Skipf("needs %s", need)
		}
	}
	corpus := filepath.Join(dir, "corpus.txt")
	if err := os.WriteFile(corpus, []byte("A fool and his money are soon parted.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runs := map[string]int{"transfusion": 3, "latentlm": 2}
	for arch, steps := range runs {
		out := filepath.Join(dir, arch)
		code, _, stderr := cli(t, root, "train", "--task", "multimodal", "--arch", arch, "--vae", "weights/vae-mnist-canvas",
			"--tokenizer", filepath.Join("weights", multimodalDefault, "tokenizer.json"), "--text", corpus, "--limit", "64",
			"--steps", strconv.Itoa(steps), "--batch", "4", "--dim", "32", "--depth", "1", "--heads", "2", "--kv-heads", "2",
			"--sample-every", "0", "--snapshot-every", "2", "--out", out, "--quiet")
		if code != 0 {
			t.Fatalf("train --arch %s: exit %d: %s", arch, code, stderr)
		}
	}
	// Transfusion: steps 2 and 3 (the last); LatentLM: step 2.
	for _, snap := range []string{"transfusion/step-000002", "transfusion/step-000003", "latentlm/step-000002"} {
		info, err := evaluate.SnapshotInfo(filepath.Join(dir, snap))
		if err != nil {
			t.Fatal(err)
		}
		if want := info.Steps * 4 * 80; info.Tokens != want || info.GFLOP <= 0 {
			t.Errorf("%s: train_tokens %g (want steps × batch × seq_len = %g), train_gflop %g", snap, info.Tokens, want, info.GFLOP)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "transfusion", "step-000001")); !os.IsNotExist(err) {
		t.Errorf("a snapshot off the period: %v", err)
	}
	// --train-gflop: the steps whose counted work is nearest the budget.
	tf, err := evaluate.SnapshotInfo(filepath.Join(dir, "transfusion"))
	if err != nil {
		t.Fatal(err)
	}
	perStep := tf.GFLOP / tf.Steps
	budget := filepath.Join(dir, "budget")
	transfusionArgs := func(out string, more ...string) []string {
		return append([]string{"train", "--task", "multimodal", "--arch", "transfusion", "--vae", "weights/vae-mnist-canvas",
			"--tokenizer", filepath.Join("weights", multimodalDefault, "tokenizer.json"), "--text", corpus, "--limit", "64",
			"--batch", "4", "--dim", "32", "--heads", "2", "--kv-heads", "2", "--sample-every", "0", "--out", out, "--quiet"}, more...)
	}
	trainArgs := transfusionArgs(budget, "--depth", "1", "--train-gflop", strconv.FormatFloat(2.4*perStep, 'g', -1, 64))
	code, _, stderr = cli(t, root, append(trainArgs, "--steps", "5")...)
	expectOneLineError(t, code, stderr, "--train-gflop sets the steps")
	if code, _, stderr := cli(t, root, trainArgs...); code != 0 {
		t.Fatalf("train --train-gflop: exit %d: %s", code, stderr)
	}
	if got, err := evaluate.SnapshotInfo(budget); err != nil || got.Steps != 2 {
		t.Errorf("a budget of 2.4 steps trained %g steps (%v), want 2", got.Steps, err)
	}
	// --match-params: the depth of LatentLM's size, not --depth's.
	sized := filepath.Join(dir, "sized")
	code, _, stderr = cli(t, root, transfusionArgs(sized, "--steps", "1", "--depth", "1", "--match-params", "1000")...)
	expectOneLineError(t, code, stderr, "--match-params sets the depth")
	code, _, stderr = cli(t, root, transfusionArgs(sized, "--steps", "1", "--match-params", "0")...)
	expectOneLineError(t, code, stderr, "--match-params 0")
	code, _, stderr = cli(t, root, transfusionArgs(sized, "--steps", "1", "--match-params", filepath.Join(dir, "none"))...)
	expectOneLineError(t, code, stderr, "not a checkpoint")
	latentParams, err := recipe.MultimodalParams(filepath.Join(dir, "latentlm"))
	if err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := cli(t, root, transfusionArgs(sized, "--steps", "1", "--match-params", filepath.Join(dir, "latentlm"))...); code != 0 {
		t.Fatalf("train --match-params: exit %d: %s", code, stderr)
	}
	var matched transfusion.Config
	if _, err := checkpoint.ReadHeader(sized, transfusion.Kind, &matched); err != nil {
		t.Fatal(err)
	}
	// The head of the tiny LatentLM (width 128, 3 blocks) outweighs its one
	// d32 block: the Transfusion model of its size is several blocks deep.
	params, err := recipe.MultimodalParams(sized)
	if err != nil {
		t.Fatal(err)
	}
	fewer := matched
	fewer.Depth--
	block := params - nn.CountParams(fewer.Specs())
	if off := params - latentParams; matched.Depth < 2 || 2*max(off, -off) > block {
		t.Errorf("--match-params %d: depth %d with %d parameters (a block is %d)", latentParams, matched.Depth, params, block)
	}

	sweepJSON, fig := filepath.Join(dir, "sweep.json"), filepath.Join(dir, "fig.png")
	code, _, stderr = cli(t, root, "sweep", "--over", "train", "--task", "multimodal", "--tasks", "text,i2t", "--text", corpus,
		"--n", "2", "--max-tokens", "3", "--json", sweepJSON, "--out", fig,
		"LatentLM="+filepath.Join(dir, "latentlm"), "Transfusion="+filepath.Join(dir, "transfusion"))
	if code != 0 {
		t.Fatalf("sweep --task multimodal: exit %d: %s", code, stderr)
	}
	rows, err := evaluate.ReadMultimodalSweep(sweepJSON)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Fatalf("%d rows, want 3 (one per snapshot)", len(rows))
	}
	for _, r := range rows {
		if r.Reports["text"].BitsPerByte <= 0 || r.Reports["i2t"].Seen.N+r.Reports["i2t"].HeldOut.N != 2 || r.TrainTokens <= 0 {
			t.Errorf("row %s %s: %+v", r.Series, r.Model, r)
		}
		if _, ok := r.Reports["t2i"]; ok {
			t.Errorf("row %s scored t2i, which --tasks left out", r.Model)
		}
	}
	if img := testutil.DecodePNG(t, fig); img.Bounds().Dx() != 3*800 {
		t.Errorf("figure %v wide, want 3 panels (bits per byte, caption seen, held-out, layout) a row", img.Bounds())
	}
	// --resume keeps the rows of the same snapshots and settings (a sweep
	// killed midway goes on), and refuses rows scored otherwise.
	sweepArgs := func(more ...string) []string {
		return append([]string{"sweep", "--over", "train", "--task", "multimodal", "--tasks", "text,i2t", "--text", corpus,
			"--max-tokens", "3", "--json", sweepJSON, "--out", fig, "--resume"}, append(more,
			"LatentLM="+filepath.Join(dir, "latentlm"), "Transfusion="+filepath.Join(dir, "transfusion"))...)
	}
	if err := evaluate.WriteMultimodalSweep(sweepJSON, rows[:2]); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = cli(t, root, sweepArgs("--n", "2")...)
	if code != 0 || strings.Count(stderr, "scored before (--resume)") != 2 {
		t.Fatalf("sweep --resume: exit %d: %s", code, stderr)
	}
	resumed, err := evaluate.ReadMultimodalSweep(sweepJSON)
	if err != nil || len(resumed) != 3 || resumed[0].Seconds != rows[0].Seconds || resumed[2].Model != rows[2].Model {
		t.Fatalf("resumed sweep: %v, %+v", err, resumed)
	}
	code, _, stderr = cli(t, root, sweepArgs("--n", "3")...)
	expectOneLineError(t, code, stderr, "other settings")
	again := filepath.Join(dir, "again.png")
	if code, _, stderr := cli(t, root, "sweep", "--task", "multimodal", "--from", sweepJSON, "--out", again, "--y", "bits_per_byte", "--x", "gflop"); code != 0 {
		t.Fatalf("sweep --from: exit %d: %s", code, stderr)
	}
	if img := testutil.DecodePNG(t, again); img.Bounds().Dx() != 800 {
		t.Errorf("one metric drawn %v wide, want one panel", img.Bounds())
	}

	code, stdout, stderr := cli(t, root, "bench", "generate", "--model", filepath.Join(dir, "transfusion"), "--batches", "1,2", "--reps", "1",
		"--steps", "2", "--json")
	var res []struct {
		Arch          string  `json:"arch"`
		Batch         int     `json:"batch"`
		ImagesPerS    float64 `json:"items_per_s"`
		GFLOPPerImage float64 `json:"gflop_per_image"`
		Params        int     `json:"params"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &res) != nil || len(res) != 2 {
		t.Fatalf("bench generate: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, _, stderr = cli(t, root, "bench", "generate", "--model", filepath.Join(dir, "transfusion"), "--batches", "100000000")
	expectOneLineError(t, code, stderr, "needs about")
	for i, r := range res {
		if r.Arch != "transfusion" || r.Batch != []int{1, 2}[i] || r.ImagesPerS <= 0 || r.GFLOPPerImage <= 0 || r.Params <= 0 {
			t.Errorf("bench generate result %d: %+v", i, r)
		}
	}
}
