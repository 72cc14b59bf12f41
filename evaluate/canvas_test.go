package evaluate

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/backend"
	"github.com/latentlm/latentlm/canvas"
	"github.com/latentlm/latentlm/classifier"
	"github.com/latentlm/latentlm/data"
	"github.com/latentlm/latentlm/metrics"
	"github.com/latentlm/latentlm/nn"
)

// TestCanvasClasses: a canvas set balances over its 240 scenes, and a label
// out of range is an error, not a panic.
func TestCanvasClasses(t *testing.T) {
	d := &data.Dataset{Name: "mnist-canvas", Split: "test", N: 960, Height: 1, Width: 1, Images: make([]uint8, 960)}
	for i := range d.N {
		d.Labels = append(d.Labels, uint8(i%canvas.NumScenes))
	}
	if Classes(d) != canvas.NumScenes || Classes(toyData(10)) != data.Classes {
		t.Fatalf("Classes: %d and %d", Classes(d), Classes(toyData(10)))
	}
	idx, err := BalancedIndices(d, 480, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i, j := range idx {
		if int(d.Labels[j]) != i%canvas.NumScenes || j < canvas.NumScenes*2 {
			t.Fatalf("index %d: image %d of label %d", i, j, d.Labels[j])
		}
	}
	toy := toyData(20)
	toy.Labels[3] = 12
	if _, err := BalancedIndices(toy, 10, 0); err == nil || !strings.Contains(err.Error(), "label 12 of image 3") {
		t.Errorf("label out of range: %v", err)
	}
}

// TestCanvasContext scores canvases with an untrained judge: the test and
// train splits of a canvas set load, and every reference row is scored.
func TestCanvasContext(t *testing.T) {
	b, err := backend.Open("onnx")
	if err != nil {
		t.Fatal(err)
	}
	cfg := classifier.Config{ImageSize: canvas.Size, Widths: []int{4, 4, 4}, Features: 8, Classes: canvas.NumScenes}
	store := model.NewStore()
	if err := nn.Init(store, cfg.Specs(), 1, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	m, err := classifier.NewModel(b, cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "judge")
	if err := m.Save(dir, map[string]any{"data": "mnist-canvas"}, false); err != nil {
		t.Fatal(err)
	}
	acc, err := TestAccuracy(m, "mnist-canvas")
	if err != nil || acc < 0 || acc > 1 {
		t.Errorf("TestAccuracy: %v, %v", acc, err)
	}
	if _, err := TestAccuracy(m, "mnist"); err == nil || !strings.Contains(err.Error(), "takes 56×56 images, mnist has 28×28") {
		t.Errorf("TestAccuracy of a canvas judge on mnist: %v", err)
	}
	c, err := NewContext(b, dir, "mnist-canvas")
	if err != nil {
		t.Fatal(err)
	}
	if c.Test.N != 10000 || c.Test.Height != canvas.Size {
		t.Fatalf("test split: %d images of %d×%d", c.Test.N, c.Test.Height, c.Test.Width)
	}
	if err := c.Prepare(480); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"test", "train", "noise"} {
		row, err := c.Reference(kind, "", 1)
		if err != nil {
			t.Fatalf("reference %s: %v", kind, err)
		}
		if row.N != 480 || (kind != "noise") != (row.Accuracy != nil) {
			t.Errorf("reference %s: %d images, accuracy %v", kind, row.N, row.Accuracy)
		}
	}

	// The judge's gate reads the canvases a batch at a time, as one pass
	// would, and stops when its context is done.
	judge := Judge{Models: []*classifier.Model{m}}
	const n = 2*classifier.PredictBatch + 7
	acc, err = judge.Check(context.Background(), c.Test, n, 0)
	if err != nil {
		t.Fatal(err)
	}
	imgs, labels := DatasetImages(c.Test)
	probs, _, err := m.Predict(imgs[:n])
	if err != nil {
		t.Fatal(err)
	}
	right := 0
	for i, p := range probs {
		if metrics.Argmax(p) == labels[i] {
			right++
		}
	}
	if want := float64(right) / n; acc != want {
		t.Errorf("Check read %v right, one pass %v", acc, want)
	}
	if _, err := judge.Check(context.Background(), c.Test, n, 1.01); err == nil || !strings.Contains(err.Error(), "below the 101%") {
		t.Errorf("an impossible bar: %v", err)
	}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := judge.Check(done, c.Test, n, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Check after cancel: %v", err)
	}
	if _, err := judge.SeenFeatures(done, c.Test); !errors.Is(err, context.Canceled) {
		t.Errorf("SeenFeatures after cancel: %v", err)
	}
}
