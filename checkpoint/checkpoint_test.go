package checkpoint_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/safetensors"
	"github.com/latentlm/latentlm/train"
)

// tiny is a small regression model whose loss also draws from the store's
// RNG, so that resuming must restore the RNG state too.
type tiny struct{ D int }

func (t tiny) Specs() []nn.Spec {
	return append([]nn.Spec{{Name: "in.weight", Shape: []int{t.D, 4}, Std: 0.3}}, nn.SwiGLUSpecs("mlp", t.D, 64)...)
}
func (t tiny) Validate() error { return nil }

func (t tiny) loss(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
	x := in[0]
	x = Add(x, MulScalar(scope.RandomNormal(x.Graph(), x.Shape()), 0.1))
	h := nn.Linear(x, w.Get("in.weight"))
	y := nn.SwiGLU(w, "mlp", h)
	return []*Node{ReduceAllMean(Square(Sub(ReduceSum(y, -1), ReduceSum(x, -1))))}
}

func batch(step int64) *tensors.Tensor {
	v := make([]float32, 16*4)
	for i := range v {
		v[i] = float32((int64(i)*7+step*13)%11) / 11
	}
	return tensors.FromFlatDataAndDimensions(v, 16, 4)
}

func newTrainer(t *testing.T, store *model.Store, m tiny) *train.Trainer {
	t.Helper()
	cfg := train.DefaultConfig()
	cfg.WarmupSteps, cfg.TotalSteps, cfg.LR = 2, 8, 1e-2
	tr, err := train.New(testutil.Backend(t, ""), store, cfg, m.loss)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func snapshot(t *testing.T, store *model.Store) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for v := range store.IterVariables() {
		val, err := v.Value()
		if err != nil {
			t.Fatal(err)
		}
		val.ConstBytes(func(b []byte) { out[v.Path()] = append([]byte(nil), b...) })
	}
	return out
}

// TestResumeIsBitExact trains 8 steps straight, and 4 steps + save + load
// into a fresh store (initialised from another seed) + 4 steps, and requires
// every variable — weights, Adam moments, counters, RNG, EMA — to be
// identical bit for bit.
func TestResumeIsBitExact(t *testing.T) {
	m := tiny{D: 8}
	path := filepath.Join(t.TempDir(), checkpoint.StateFile)

	straight := model.NewStore()
	if err := nn.Init(straight, m.Specs(), 1, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	straight.SetRNGStateFromSeed(5)
	tr := newTrainer(t, straight, m)
	for step := int64(0); step < 8; step++ {
		if _, err := tr.Step(batch(step)); err != nil {
			t.Fatal(err)
		}
		if step == 3 {
			if err := checkpoint.SaveState(path, straight, map[string]string{"note": "x"}); err != nil {
				t.Fatal(err)
			}
		}
	}

	resumed := model.NewStore()
	if err := nn.Init(resumed, m.Specs(), 99, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	meta, err := checkpoint.LoadState(path, resumed)
	if err != nil {
		t.Fatal(err)
	}
	if meta["note"] != "x" {
		t.Errorf("metadata lost: %v", meta)
	}
	if got := train.StepCount(resumed); got != 4 {
		t.Fatalf("resumed at step %d, want 4", got)
	}
	tr2 := newTrainer(t, resumed, m)
	for step := int64(4); step < 8; step++ {
		if _, err := tr2.Step(batch(step)); err != nil {
			t.Fatal(err)
		}
	}
	a, b := snapshot(t, straight), snapshot(t, resumed)
	if len(a) != len(b) {
		for k := range b {
			if _, ok := a[k]; !ok {
				t.Log("extra:", k)
			}
		}
		t.Fatalf("%d variables straight, %d resumed", len(a), len(b))
	}
	for name, va := range a {
		if !bytes.Equal(va, b[name]) {
			t.Errorf("%s differs after resume", name)
		}
	}
	t.Logf("%d variables identical", len(a))
}

func TestLoadReportsMismatches(t *testing.T) {
	m := tiny{D: 8}
	dir := t.TempDir()
	store := model.NewStore()
	if err := nn.Init(store, m.Specs(), 1, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	if err := checkpoint.Save(dir, "tiny", m, nil, store, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := checkpoint.Load(dir, "tiny", &tiny{}, nil); err != nil {
		t.Fatalf("loading what was saved: %v", err)
	}
	// The config now says D=16: every weight's shape is wrong and is named.
	if err := os.WriteFile(filepath.Join(dir, checkpoint.ConfigFile), []byte(`{"kind":"tiny","config":{"D":16}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, _, err := checkpoint.Load(dir, "tiny", &tiny{}, nil)
	if err == nil {
		t.Fatal("mismatched checkpoint loaded")
	}
	for _, s := range (tiny{D: 16}).Specs() {
		if !strings.Contains(err.Error(), s.Name+": shape") {
			t.Errorf("error %q does not name %s", err, s.Name)
		}
	}
	if _, _, _, err := checkpoint.Load(dir, "vae", &tiny{}, nil); err == nil || !strings.Contains(err.Error(), `"tiny"`) {
		t.Errorf("wrong kind: %v", err)
	}
	// A corrupt weights file is reported with its path.
	w := filepath.Join(dir, checkpoint.WeightsFile)
	os.WriteFile(w, []byte("garbage"), 0o644)
	if _, _, _, err := checkpoint.Load(dir, "tiny", &tiny{D: 8}, nil); err == nil || !strings.Contains(err.Error(), w) {
		t.Errorf("corrupt weights: %v", err)
	}
	_ = safetensors.F32
}
