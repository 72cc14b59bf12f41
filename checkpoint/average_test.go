package checkpoint_test

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/safetensors"
)

// saveTiny saves a tiny model initialised from seed, with an int tensor
// beside its weights and a tokenizer record in its info.
func saveTiny(t *testing.T, dir string, m tiny, seed int64, tokenizer string, counts []int32) {
	t.Helper()
	store := model.NewStore()
	if err := nn.Init(store, m.Specs(), uint64(seed), dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	info := map[string]any{"tokenizer": map[string]any{"sha256": tokenizer}, "seed": seed}
	extra := []safetensors.Tensor{safetensors.FromInt32("counts", []int{len(counts)}, counts)}
	if err := checkpoint.Save(dir, "tiny", m, info, store, false, extra); err != nil {
		t.Fatal(err)
	}
}

func loadWeights(t *testing.T, dir string) *safetensors.File {
	t.Helper()
	f, err := safetensors.Load(filepath.Join(dir, checkpoint.WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestAverageIsTheMean averages three checkpoints and checks every weight
// against the mean computed in float64 here, the int tensor kept as it is,
// and the info naming the inputs; then that each kind of mismatch is
// refused with both folders named and nothing written.
func TestAverageIsTheMean(t *testing.T) {
	root := t.TempDir()
	m := tiny{D: 8}
	var dirs []string
	for seed := int64(1); seed <= 3; seed++ {
		d := filepath.Join(root, "in", string(rune('a'+seed-1)))
		saveTiny(t, d, m, seed, "tok1", []int32{4, 5, 6})
		dirs = append(dirs, d)
	}
	out := filepath.Join(root, "mean")
	if err := checkpoint.Average(out, dirs); err != nil {
		t.Fatal(err)
	}
	got := loadWeights(t, out)
	var ins []*safetensors.File
	for _, d := range dirs {
		ins = append(ins, loadWeights(t, d))
	}
	checked := 0
	for _, s := range m.Specs() {
		g, _ := got.Get(s.Name)
		gv, err := g.Float32()
		if err != nil {
			t.Fatal(err)
		}
		var sum []float64
		for _, f := range ins {
			x, _ := f.Get(s.Name)
			xv, _ := x.Float32()
			if sum == nil {
				sum = make([]float64, len(xv))
			}
			for j, v := range xv {
				sum[j] += float64(v)
			}
		}
		for j, v := range gv {
			if want := float32(sum[j] / 3); v != want {
				t.Fatalf("%s[%d] = %g, want the mean %g", s.Name, j, v, want)
			}
			checked++
		}
		// Different seeds: the mean differs from the first input.
		x, _ := ins[0].Get(s.Name)
		if bytes.Equal(x.Data, g.Data) {
			t.Errorf("%s is the first input's, not the mean", s.Name)
		}
	}
	c, ok := got.Get("counts")
	if cv, _ := c.Int32(); !ok || len(cv) != 3 || cv[0] != 4 || cv[2] != 6 {
		t.Errorf("int tensor counts = %v, want it kept: [4 5 6]", cv)
	}
	if _, _, _, err := checkpoint.Load(out, "tiny", &tiny{}, func() map[string]safetensors.Spec {
		return map[string]safetensors.Spec{"counts": {DType: safetensors.I32, Shape: []int{3}}}
	}); err != nil {
		t.Fatalf("the average does not load as its kind: %v", err)
	}
	cfg, err := os.ReadFile(filepath.Join(out, checkpoint.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if !strings.Contains(string(cfg), d) {
			t.Errorf("config.json does not name input %s in averaged_from:\n%s", d, cfg)
		}
	}
	t.Logf("%d weights are the float64 mean of three checkpoints", checked)

	mismatch := func(name string, prepare func(d string), wantErr string) {
		t.Helper()
		d := filepath.Join(root, "bad-"+name)
		prepare(d)
		o := filepath.Join(root, "out-"+name)
		err := checkpoint.Average(o, []string{dirs[0], d})
		if err == nil || !strings.Contains(err.Error(), wantErr) || !strings.Contains(err.Error(), d) {
			t.Errorf("%s: err = %v, want it to say %q and name %s", name, err, wantErr, d)
		}
		if _, statErr := os.Stat(o); statErr == nil {
			t.Errorf("%s: %s was written despite the error", name, o)
		}
	}
	mismatch("arch", func(d string) { saveTiny(t, d, tiny{D: 16}, 1, "tok1", []int32{4, 5, 6}) }, "different architectures")
	mismatch("tokenizer", func(d string) { saveTiny(t, d, m, 1, "tok2", []int32{4, 5, 6}) }, "different tokenizers")
	mismatch("ints", func(d string) { saveTiny(t, d, m, 1, "tok1", []int32{4, 5, 7}) }, "differs between checkpoints")
	mismatch("missing", func(string) {}, "not a checkpoint")
	mismatch("nan", func(d string) {
		saveTiny(t, d, m, 1, "tok1", []int32{4, 5, 6})
		f := loadWeights(t, d)
		for i, w := range f.Tensors {
			if w.DType == safetensors.F32 {
				v, err := w.Float32()
				if err != nil {
					t.Fatal(err)
				}
				v[len(v)-1] = float32(math.NaN())
				f.Tensors[i] = safetensors.FromFloat32(w.Name, w.Shape, v)
				break
			}
		}
		if err := safetensors.Save(filepath.Join(d, checkpoint.WeightsFile), f.Tensors, f.Metadata); err != nil {
			t.Fatal(err)
		}
	}, "holds NaN")
	if err := checkpoint.Average(dirs[0], dirs); err == nil || !strings.Contains(err.Error(), "both an input and the output") {
		t.Errorf("averaging into an input: %v", err)
	}
	if err := checkpoint.Average(out, dirs); err == nil || !strings.Contains(err.Error(), "already holds a checkpoint") {
		t.Errorf("averaging over a checkpoint: %v", err)
	}
	if err := checkpoint.Average(out, dirs[:1]); err == nil {
		t.Error("averaging one checkpoint succeeded")
	}
}
