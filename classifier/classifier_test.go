package classifier

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/data"
	"github.com/latentlm/latentlm/imageio"
	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/metrics"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/train"
)

func tinyConfig() Config {
	return Config{ImageSize: 28, Widths: []int{4, 8}, Features: 16, Classes: 10}
}

func TestConfig(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	// 28 is not divisible by 2³.
	bad := []Config{
		{ImageSize: 28, Widths: []int{4, 8, 16}, Features: 16, Classes: 10},
		{ImageSize: 28, Widths: nil, Features: 16, Classes: 10},
		{ImageSize: 28, Widths: []int{4, 0}, Features: 16, Classes: 10},
		{ImageSize: 28, Widths: []int{4, 8}, Features: 0, Classes: 10},
	}
	for _, c := range bad {
		if c.Validate() == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	// 7·7·8 flattened features into 16, plus biases and the head.
	want := 9*4 + 4 + 9*4*8 + 8 + 16*7*7*8 + 16 + 10*16 + 10
	if got := nn.CountParams(tinyConfig().Specs()); got != want {
		t.Errorf("tiny config has %d parameters, want %d", got, want)
	}
}

func mnistSubset(t *testing.T, split string, n int) *data.Dataset {
	t.Helper()
	ds, err := data.Load("mnist", split)
	if err != nil {
		t.Fatalf("MNIST not installed (run make setup): %v", err)
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return ds.Subset(idx)
}

// TestTrainingReducesLoss trains the tiny network on 512 MNIST images: the
// loss must fall well below its starting value of ln 10.
func TestTrainingReducesLoss(t *testing.T) {
	b := testutil.Backend(t, "")
	ds := mnistSubset(t, "train", 512)
	cfg := tinyConfig()
	store := model.NewStore()
	if err := nn.Init(store, cfg.Specs(), 1, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	tc := train.DefaultConfig()
	tc.LR, tc.WarmupSteps, tc.TotalSteps, tc.EMADecay = 5e-3, 5, 60, 0
	tr, err := train.New(b, store, tc, func(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
		loss, acc := cfg.Loss(scope, w, in[0], in[1])
		return []*Node{loss, acc}
	})
	if err != nil {
		t.Fatal(err)
	}
	var first, last, lastAcc float64
	const steps = 60
	for step := int64(0); step < steps; step++ {
		imgs, labels := ds.Batch(data.BatchIndices(ds.N, 64, step, 1))
		res, err := tr.Step(tensors.FromFlatDataAndDimensions(imgs, 64, 28, 28), tensors.FromFlatDataAndDimensions(labels, 64))
		if err != nil {
			t.Fatal(err)
		}
		if step < 3 {
			first += res.Loss / 3
		}
		if step >= steps-8 {
			last += res.Loss / 8
			lastAcc += res.Metrics[0] / 8
		}
	}
	t.Logf("loss %.3f → %.3f, batch accuracy %.2f", first, last, lastAcc)
	if math.Abs(first-math.Log(10)) > 0.3 {
		t.Errorf("initial loss %.3f, want about ln 10 = 2.303", first)
	}
	if !(last < 0.5*first) || lastAcc < 0.7 {
		t.Errorf("loss went from %.3f to %.3f (want below half), accuracy %.2f (want > 0.7)", first, last, lastAcc)
	}
}

// TestSaveLoadPredict checks that a saved and reloaded model predicts what
// the original did, and that Predict's padding and batching do not change
// any result.
func TestSaveLoadPredict(t *testing.T) {
	b := testutil.Backend(t, "")
	cfg := tinyConfig()
	store := model.NewStore()
	if err := nn.Init(store, cfg.Specs(), 7, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	m, err := NewModel(b, cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	n := PredictBatch + 3 // two calls, the second padded
	ds := mnistSubset(t, "test", n)
	imgs := make([][]float32, n)
	for i := range imgs {
		imgs[i] = make([]float32, 28*28)
		ds.Float32(i, imgs[i])
	}
	probs, feats, err := m.Predict(imgs)
	if err != nil {
		t.Fatal(err)
	}
	if len(probs) != n || len(feats) != n || len(probs[0]) != 10 || len(feats[0]) != 16 {
		t.Fatalf("shapes: %d×%d probs, %d×%d feats", len(probs), len(probs[0]), len(feats), len(feats[0]))
	}
	var sum float64
	for _, p := range probs[n-1] {
		sum += float64(p)
	}
	if math.Abs(sum-1) > 1e-5 {
		t.Errorf("probabilities sum to %g", sum)
	}
	dir := t.TempDir()
	if err := m.Save(dir, map[string]any{"data": "mnist"}, false); err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(b, dir)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Info["data"] != "mnist" {
		t.Errorf("info not restored: %v", loaded.Info)
	}
	// The last three alone (padded differently) and through the reloaded model.
	p2, f2, err := loaded.Predict(imgs[n-3:])
	if err != nil {
		t.Fatal(err)
	}
	for i := range p2 {
		for k := range p2[i] {
			if math.Abs(float64(p2[i][k]-probs[n-3+i][k])) > 1e-6 {
				t.Fatalf("image %d: probability %d is %g after reload, %g before", n-3+i, k, p2[i][k], probs[n-3+i][k])
			}
		}
		for k := range f2[i] {
			if math.Abs(float64(f2[i][k]-feats[n-3+i][k])) > 1e-5 {
				t.Fatalf("image %d: feature %d is %g after reload, %g before", n-3+i, k, f2[i][k], feats[n-3+i][k])
			}
		}
	}
	if _, _, err := m.Predict([][]float32{make([]float32, 10)}); err == nil || !strings.Contains(err.Error(), "image 0") {
		t.Errorf("wrong image size: error %v", err)
	}
	// A closed model refuses to predict, and closing twice is harmless.
	loaded.Close()
	loaded.Close()
	if _, _, err := loaded.Predict(imgs[:1]); err == nil || !strings.Contains(err.Error(), "after Close") {
		t.Errorf("predicting after Close: error %v", err)
	}
	// A checkpoint of another kind is refused.
	cfgPath := filepath.Join(dir, "config.json")
	raw, _ := os.ReadFile(cfgPath)
	if err := os.WriteFile(cfgPath, []byte(strings.Replace(string(raw), `"classifier"`, `"vae"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(b, dir); err == nil {
		t.Error("loading a vae checkpoint as a classifier: no error")
	}
}

// TestShippedAccuracy: accuracy-to-class of the test set, with the test
// labels as the classes, is the accuracy recorded when the shipped
// classifier was trained, and meets the target.
func TestShippedAccuracy(t *testing.T) {
	dir := filepath.Join("..", "weights", "classifier-mnist")
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
		t.Fatalf("no shipped classifier at %s", dir)
	}
	b := testutil.Backend(t, "")
	m, err := Load(b, dir)
	if err != nil {
		t.Fatal(err)
	}
	test, err := data.Load("mnist", "test")
	if err != nil {
		t.Fatalf("MNIST not installed (run make setup): %v", err)
	}
	imgs := make([][]float32, test.N)
	labels := make([]int, test.N)
	for i := range imgs {
		imgs[i] = make([]float32, 28*28)
		test.Float32(i, imgs[i])
		labels[i] = int(test.Labels[i])
	}
	probs, _, err := m.Predict(imgs)
	if err != nil {
		t.Fatal(err)
	}
	acc, err := metrics.AccuracyToClass(probs, labels)
	if err != nil {
		t.Fatal(err)
	}
	recorded, ok := m.Info["test_accuracy"].(float64)
	if !ok {
		t.Fatalf("%s records no test_accuracy: %v", dir, m.Info)
	}
	t.Logf("accuracy-to-class %.4f, recorded %.4f", acc, recorded)
	// One image of 10000 may flip between backends or thread counts.
	if math.Abs(acc-recorded) > 1.5e-4 {
		t.Errorf("accuracy-to-class %.4f, recorded test accuracy %.4f", acc, recorded)
	}
	if acc < 0.985 {
		t.Errorf("accuracy %.4f below the 98.5%% target", acc)
	}
}

func TestReadImages(t *testing.T) {
	write := func(dir, name string, size int) {
		t.Helper()
		if err := imageio.WriteGray(filepath.Join(dir, name), make([]float32, size*size), size, size); err != nil {
			t.Fatal(err)
		}
	}
	good := t.TempDir()
	write(good, "3_0001.png", 28)
	write(good, "7_a.png", 28)
	imgs, labels, names, err := ReadImages(good, 28, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 2 || len(labels) != 2 || labels[0] != 3 || labels[1] != 7 || names[1] != "7_a.png" {
		t.Errorf("got %d images, labels %v, names %v", len(imgs), labels, names)
	}
	// One file without a class: no labels at all.
	write(good, "sample.png", 28)
	if _, labels, _, err = ReadImages(good, 28, 10); err != nil || labels != nil {
		t.Errorf("unlabelled file: labels %v, error %v", labels, err)
	}

	withText := t.TempDir()
	write(withText, "0_a.png", 28)
	if err := os.WriteFile(filepath.Join(withText, "notes.txt"), []byte("hi"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := ReadImages(withText, 28, 10); err == nil || !strings.Contains(err.Error(), "notes.txt") {
		t.Errorf("folder with a text file: error %v, want one naming notes.txt", err)
	}

	wrongSize := t.TempDir()
	write(wrongSize, "0_a.png", 28)
	write(wrongSize, "1_big.png", 32)
	if _, _, _, err := ReadImages(wrongSize, 28, 10); err == nil || !strings.Contains(err.Error(), "1_big.png") {
		t.Errorf("image of the wrong size: error %v, want one naming 1_big.png", err)
	}
}

func TestLabelFromName(t *testing.T) {
	cases := map[string]int{"0_x.png": 0, "9_.png": 9, "3_12_b.png": 3, "x_1.png": -1, "12_a.png": -1, "5.png": -1, "_3.png": -1, "-1_a.png": -1}
	for name, want := range cases {
		got, ok := LabelFromName(name, 10)
		if (want < 0 && ok) || (want >= 0 && (!ok || got != want)) {
			t.Errorf("%s: %d %v, want %d", name, got, ok, want)
		}
	}
}
