package evaluate

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/latentlm/latentlm"
	"github.com/latentlm/latentlm/backend"
	"github.com/latentlm/latentlm/data"
	"github.com/latentlm/latentlm/vae"
)

// toyData is a data set of n 2×2 images whose labels cycle 0…9 and whose
// pixels hold their index.
func toyData(n int) *data.Dataset {
	d := &data.Dataset{Name: "toy", Split: "test", N: n, Height: 2, Width: 2}
	for i := range n {
		d.Labels = append(d.Labels, uint8(i%data.Classes))
		d.Images = append(d.Images, uint8(i), uint8(i), uint8(i), uint8(i))
	}
	return d
}

func TestBalancedIndices(t *testing.T) {
	d := toyData(50) // 5 images of each class
	first, err := BalancedIndices(d, 20, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, j := range first {
		if got := int(d.Labels[j]); got != i%data.Classes {
			t.Errorf("index %d: image %d has label %d, want %d", i, j, got, i%data.Classes)
		}
	}
	if want := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}; !slices.Equal(first[:12], want) {
		t.Errorf("first indices %v, want %v… (data order)", first[:12], want)
	}
	second, err := BalancedIndices(d, 20, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range second {
		if slices.Contains(first, j) {
			t.Errorf("skip 1 repeats image %d of skip 0", j)
		}
	}
	// 15 images take 2 of each class per set: skip 2 reaches the 5th and
	// 6th of each class, and there are only 5.
	if _, err := BalancedIndices(d, 15, 2); err == nil || !strings.Contains(err.Error(), "too few for --n 15") {
		t.Errorf("too few images: error %v", err)
	}
}

func TestClassLabels(t *testing.T) {
	if got, want := ClassLabels(7, 3), []int{0, 1, 2, 0, 1, 2, 0}; !slices.Equal(got, want) {
		t.Errorf("ClassLabels(7, 3) = %v, want %v", got, want)
	}
}

func TestDatasetImages(t *testing.T) {
	d := toyData(12)
	imgs, labels := DatasetImages(d)
	if len(imgs) != 12 || len(labels) != 12 {
		t.Fatalf("%d images, %d labels, want 12", len(imgs), len(labels))
	}
	if imgs[11][3] != 11.0/255 || labels[11] != 1 {
		t.Errorf("image 11: pixel %v label %d, want %v and 1", imgs[11][3], labels[11], 11.0/255)
	}
	if cap(imgs[0]) != 4 {
		t.Errorf("image 0 has capacity %d: appending to it would overwrite image 1", cap(imgs[0]))
	}
}

// The JSON names are read by scripts and documents.
func TestJSONNames(t *testing.T) {
	acc, steps, cfg, seed := 0.5, 20, 4.0, int64(1)
	row := SweepRow{Row: Row{Source: "model", Path: "p", Data: "mnist", Classifier: "c", N: 10, Steps: &steps, CFG: &cfg, Seed: &seed,
		Accuracy: &acc, FD: 1, IS: 2, Precision: 0.1, Recall: 0.2, Density: 0.3, Coverage: 0.4, K: 3, GenerateSeconds: 5, Seconds: 6},
		Series: "s", Over: "cfg", X: 4, TrainSteps: 7, TrainGFLOP: 8, SecondsPerImage: 0.5}
	raw, err := json.Marshal(row)
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]any
	if err := json.Unmarshal(raw, &keys); err != nil {
		t.Fatal(err)
	}
	want := []string{"source", "path", "data", "classifier", "n", "steps", "cfg", "seed", "accuracy_to_class", "fd", "is",
		"precision", "recall", "density", "coverage", "k", "generate_seconds", "seconds",
		"series", "over", "x", "train_steps", "train_gflop", "seconds_per_image"}
	var got []string
	for k := range keys {
		got = append(got, k)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("sweep row JSON keys %v, want %v", got, want)
	}
	rep, err := json.Marshal(TokenizerReport{})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"checkpoint", "kind", "data", "images", "psnr_db", "ssim", "mu_std_per_channel",
		"collapsed_channels", "psnr_db_with_latent_noise", "eval_seconds"} {
		if !strings.Contains(string(rep), `"`+k+`":`) {
			t.Errorf("tokenizer report JSON %s lacks %q", rep, k)
		}
	}
}

func TestSweepPoints(t *testing.T) {
	ps, err := Sweep{Over: OverSteps, Values: []float64{5, 0}, CFG: 3}.Points("m", "dir")
	if err != nil {
		t.Fatal(err)
	}
	want := []Point{{Over: OverSteps, Series: "m", Model: "dir", X: 5, Steps: 5, CFG: 3},
		{Over: OverSteps, Series: "m DDPM", Model: "dir", X: 1000, Steps: 0, CFG: 3}}
	if !reflect.DeepEqual(ps, want) {
		t.Errorf("steps points %+v, want %+v", ps, want)
	}
	run := t.TempDir()
	for i, info := range []string{`{"steps": 100, "train_gflop": 2.5}`, `{"steps": 200, "train_gflop": 5}`} {
		snap := filepath.Join(run, []string{"step-000100", "step-000200"}[i])
		if err := os.Mkdir(snap, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(snap, "config.json"), []byte(`{"kind": "latentlm", "info": `+info+`}`), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ps, err = Sweep{Over: OverTrain, Steps: 20, CFG: 4, ByGFLOP: true}.Points("run", run)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[1].X != 5 || ps[1].TrainSteps != 200 || ps[1].Model != filepath.Join(run, "step-000200") {
		t.Errorf("train points %+v", ps)
	}
	if _, err := (Sweep{Over: OverTrain}).Points("run", t.TempDir()); err == nil || !strings.Contains(err.Error(), "no step-NNNNNN snapshots") {
		t.Errorf("run without snapshots: error %v", err)
	}
}

func TestSweepFiles(t *testing.T) {
	dir := t.TempDir()
	acc := 0.9
	rows := []SweepRow{
		{Row: Row{Data: "mnist", N: 10, FD: 3, Accuracy: &acc}, Series: "a", Over: OverCFG, X: 1, SecondsPerImage: 0.1},
		{Row: Row{Data: "mnist", N: 10, FD: 2, Accuracy: &acc}, Series: "a", Over: OverCFG, X: 2, SecondsPerImage: 0.1},
	}
	path := filepath.Join(dir, "s.json")
	if err := WriteSweep(path, rows); err != nil {
		t.Fatal(err)
	}
	back, err := ReadSweep(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, rows) {
		t.Errorf("read back %+v, want %+v", back, rows)
	}
	if err := PlotSweep(filepath.Join(dir, "s.png"), "", rows, "accuracy", false); err != nil {
		t.Fatal(err)
	}
	if _, err := rows[0].Metric("nope"); err == nil {
		t.Error("unknown metric accepted")
	}
	if err := os.WriteFile(path, []byte("[]"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSweep(path); err == nil || !strings.Contains(err.Error(), "no rows") {
		t.Errorf("empty sweep: error %v", err)
	}
}

// shipped opens one context on the shipped MNIST classifier for the tests
// that need the weights and the data set; without them (no make setup)
// those tests fail rather than pass unseen.
var shipped = sync.OnceValues(func() (*Context, error) {
	if _, err := latentlm.ShippedWeights("classifier-mnist"); err != nil {
		return nil, err
	}
	b, err := backend.Open(backend.Resolve(""))
	if err != nil {
		return nil, err
	}
	c, err := NewContext(b, "", "mnist")
	if err != nil {
		return nil, err
	}
	return c, c.Prepare(500)
})

func shippedContext(t *testing.T) *Context {
	t.Helper()
	c, err := shipped()
	if err != nil {
		t.Fatalf("shipped classifier or MNIST missing (run make setup): %v", err)
	}
	return c
}

// Real test images are what the classifier was judged on: it classifies
// them, and their features match the test split's, far better than noise.
func TestScoreRealImages(t *testing.T) {
	c := shippedContext(t)
	if c.ReferenceSize() != 500 || c.N() != 500 {
		t.Errorf("reference of %d images, n %d: want 500", c.ReferenceSize(), c.N())
	}
	real, err := c.Reference("test", "", 1)
	if err != nil {
		t.Fatal(err)
	}
	noise, err := c.Reference("noise", "", 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("test: accuracy %.4f FD %.3f IS %.3f precision %.3f recall %.3f; noise: FD %.1f", *real.Accuracy, real.FD, real.IS, real.Precision, real.Recall, noise.FD)
	if real.N != 500 || real.K != K || real.Source != "reference:test" || real.Data != "mnist" {
		t.Errorf("row %+v", real)
	}
	// 0.982 on ONNX Runtime: room for an image or two that another
	// backend's rounding flips.
	if *real.Accuracy < 0.97 {
		t.Errorf("accuracy of 500 real test images %.4f, want ≥ 0.97", *real.Accuracy)
	}
	if !(real.FD >= 0 && real.FD < noise.FD/20) {
		t.Errorf("FD of test images %.3f, of noise %.3f: want test ≪ noise", real.FD, noise.FD)
	}
	if noise.Accuracy != nil {
		t.Error("noise has an accuracy")
	}
	if real.IS < 9 || real.Recall < 0.8 {
		t.Errorf("IS %.3f, recall %.3f of real images: want about 10 and 1", real.IS, real.Recall)
	}
}

// The shipped classifier's accuracy on the whole test split.
func TestTestAccuracy(t *testing.T) {
	c := shippedContext(t)
	acc, err := TestAccuracy(c.Classifier, "mnist")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("accuracy on the MNIST test split: %.4f", acc)
	if acc < 0.98 {
		t.Errorf("accuracy %.4f, want ≥ 0.98", acc)
	}
}

func TestTokenizer(t *testing.T) {
	c := shippedContext(t)
	dir, err := latentlm.ShippedWeights("vae-mnist")
	if err != nil {
		t.Fatal(err)
	}
	m, err := vae.Load(c.backend, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	rep, err := Tokenizer(m, c.Test, 100)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", rep)
	if rep.Images != 100 || rep.Data != "mnist" || rep.Kind != m.Config.Kind.String() || len(rep.MuStd) != m.Config.Channels || len(rep.NoisyPSNR) != 3 {
		t.Errorf("report %+v", rep)
	}
	if rep.PSNR < 20 || rep.SSIM < 0.9 || !(rep.NoisyPSNR["0.5"] < rep.NoisyPSNR["0.1"]) {
		t.Errorf("PSNR %.2f dB, SSIM %.4f, with noise %v: want a good tokenizer that noise degrades", rep.PSNR, rep.SSIM, rep.NoisyPSNR)
	}
}

func TestReconReference(t *testing.T) {
	c := shippedContext(t)
	dir, err := latentlm.ShippedWeights("vae-mnist")
	if err != nil {
		t.Fatal(err)
	}
	row, err := c.Reference("recon", dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	if row.Path != dir || *row.Accuracy < 0.95 {
		t.Errorf("recon row %+v, accuracy %.4f", row, *row.Accuracy)
	}
}

// A sweep runs its points in one process, one model at a time.
func TestSweepPoint(t *testing.T) {
	if testing.Short() {
		t.Skip("generates images")
	}
	c := shippedContext(t)
	dir, err := latentlm.ShippedWeights("latentlm-mnist")
	if err != nil {
		t.Fatal(err)
	}
	c2 := *c
	if err := c2.Prepare(20); err != nil {
		t.Fatal(err)
	}
	opts := latentlm.DefaultSampleOptions()
	points, err := Sweep{Over: OverCFG, Values: []float64{1, 4}, Steps: 2}.Points("mnist", dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range points {
		r, err := c2.SweepPoint(context.Background(), p, Model{Batch: 20, Options: opts})
		if err != nil {
			t.Fatal(err)
		}
		if r.N != 20 || *r.Steps != 2 || *r.CFG != p.CFG || r.X != p.X || r.Path != dir || !(r.SecondsPerImage > 0) || !(r.FD > 0) {
			t.Errorf("point %+v: row %+v", p, r)
		}
	}
}
