package recipe_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/recipe"
	"github.com/latentlm/latentlm/train"
)

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func expectFiles(t *testing.T, dir string, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
}

func TestCheckDataAndBatches(t *testing.T) {
	if err := recipe.CheckData("fashion"); err != nil {
		t.Error(err)
	}
	if err := recipe.CheckData("cifar"); err == nil || err.Error() != `unknown data set "cifar": want mnist, fashion, mnist-canvas or fashion-canvas` {
		t.Errorf("CheckData(cifar) = %v", err)
	}
	ds, err := recipe.LoadTrainingSet("mnist", 25)
	if err != nil {
		t.Fatal(err)
	}
	if ds.N != 25 {
		t.Fatalf("LoadTrainingSet with limit 25: %d images", ds.N)
	}
	var sizes []int
	if err := recipe.Batches(ds, 10, 0)(func(b [][]float32) error {
		sizes = append(sizes, len(b))
		for _, img := range b {
			if len(img) != ds.Height*ds.Width {
				return fmt.Errorf("image of %d pixels", len(img))
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(sizes) != "[10 10 5]" {
		t.Errorf("batches of %v, want [10 10 5]", sizes)
	}
	sizes = nil
	_ = recipe.Batches(ds, 10, 12)(func(b [][]float32) error { sizes = append(sizes, len(b)); return nil })
	if fmt.Sprint(sizes) != "[10 2]" {
		t.Errorf("batches with limit 12 of %v, want [10 2]", sizes)
	}
}

func tinyTokenizer(out string, steps int64) recipe.TokenizerOptions {
	o := recipe.DefaultTokenizerOptions()
	o.Out, o.Steps, o.Limit, o.Quiet, o.SaveEvery = out, steps, 64, true, 0
	o.Model.Dim, o.Model.Depth = 32, 1
	return o
}

// TestTokenizerResumeIsExact: a run interrupted before its first step,
// then resumed, ends with the very files of a run straight through; the
// checkpoint of an interrupted run is complete.
func TestTokenizerResumeIsExact(t *testing.T) {
	root := t.TempDir()
	straight := filepath.Join(root, "straight")
	var log bytes.Buffer
	o := tinyTokenizer(straight, 4)
	o.Log = &log
	res, err := recipe.Tokenizer(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Dir != straight {
		t.Errorf("Result.Dir %s, want %s", res.Dir, straight)
	}
	if !regexp.MustCompile(`^saved .*straight \(4 steps in \d+s\)\n$`).Match(log.Bytes()) {
		t.Errorf("log %q", log.String())
	}

	resumed := filepath.Join(root, "resumed")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = recipe.Tokenizer(ctx, tinyTokenizer(resumed, 4))
	var ie *train.InterruptedError
	if !errors.As(err, &ie) || ie.Dir != resumed {
		t.Fatalf("cancelled run: %v, want an InterruptedError naming %s", err, resumed)
	}
	expectFiles(t, resumed, checkpoint.ConfigFile, checkpoint.WeightsFile, checkpoint.StateFile)
	if _, err := recipe.Tokenizer(context.Background(), tinyTokenizer(resumed, 4)); !errors.Is(err, train.ErrCheckpointExists) {
		t.Errorf("fresh run on the interrupted one's folder: %v, want ErrCheckpointExists", err)
	}
	o = tinyTokenizer(resumed, 4)
	o.Resume, o.Seed = true, 77 // the saved seed wins
	if _, err := recipe.Tokenizer(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{checkpoint.WeightsFile, checkpoint.StateFile} {
		if fileSum(t, filepath.Join(straight, f)) != fileSum(t, filepath.Join(resumed, f)) {
			t.Errorf("%s of the resumed run differs from the straight run's", f)
		}
	}
}

func TestClassifier(t *testing.T) {
	root := t.TempDir()
	o := recipe.DefaultClassifierOptions()
	o.Out, o.Steps, o.Limit, o.Batch, o.Quiet = filepath.Join(root, "clf"), 3, 256, 32, true
	var log bytes.Buffer
	o.Log = &log
	res, err := recipe.Classifier(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if !(res.TestAccuracy >= 0 && res.TestAccuracy <= 1) {
		t.Errorf("test accuracy %v", res.TestAccuracy)
	}
	if want := fmt.Sprintf("test accuracy %.2f%%\n", 100*res.TestAccuracy); !bytes.HasSuffix(log.Bytes(), []byte(want)) {
		t.Errorf("log %q does not end with %q", log.String(), want)
	}
	expectFiles(t, res.Dir, checkpoint.ConfigFile, checkpoint.WeightsFile, checkpoint.StateFile)

	o.Out, o.Batch = filepath.Join(root, "big"), 300
	_, err = recipe.Classifier(context.Background(), o)
	var oe *recipe.OptionError
	if !errors.As(err, &oe) || oe.Option != "batch" || err.Error() != "batch 300 is larger than the 256 training images" {
		t.Errorf("batch over the training set: %v", err)
	}
	if _, err := os.Stat(o.Out); !os.IsNotExist(err) {
		t.Errorf("the refused run created its folder: %v", err)
	}
}

// TestLatentLM trains two steps with a snapshot every step and a sample
// grid at the end, on the shipped tokenizer.
func TestLatentLM(t *testing.T) {
	if testing.Short() {
		t.Skip("encodes the whole training set")
	}
	out := filepath.Join(t.TempDir(), "lm")
	o := recipe.DefaultLatentLMOptions()
	o.Out, o.Steps, o.Batch, o.Quiet, o.SampleEvery, o.SnapshotEvery = out, 2, 4, true, 100, 1
	o.Model.Dim, o.Model.Depth, o.Model.Heads, o.Model.KVHeads, o.Model.HeadDim, o.Model.HeadDepth = 32, 1, 2, 2, 32, 1
	var log bytes.Buffer
	o.Log = &log
	res, err := recipe.LatentLM(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Dir != out {
		t.Errorf("Result.Dir %s, want %s", res.Dir, out)
	}
	expectFiles(t, out, checkpoint.ConfigFile, checkpoint.WeightsFile, checkpoint.StateFile,
		"step-000001/"+checkpoint.WeightsFile, "step-000002/"+checkpoint.WeightsFile, "samples-000002.png")
	if !regexp.MustCompile(`^encoding 60000 training images with the tokenizer\.\.\.\nsaved .*lm \(2 steps in \d+s\)\n$`).Match(log.Bytes()) {
		t.Errorf("log %q", log.String())
	}
	if fileSum(t, filepath.Join(out, "step-000002", checkpoint.WeightsFile)) != fileSum(t, filepath.Join(out, checkpoint.WeightsFile)) {
		t.Error("the last snapshot differs from the checkpoint")
	}
}
