// Package testutil opens compute backends once per test binary, since opening
// ONNX Runtime and compiling graphs dominate the time of small tests.
package testutil

import (
	"image"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"sync"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/backend"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/train"
)

var (
	mu     sync.Mutex
	opened = map[string]compute.Backend{}
)

// Backend returns the named backend ("onnx", "go"), or the one the
// environment selects when name is empty, failing the test if it cannot open.
func Backend(t testing.TB, name string) compute.Backend {
	t.Helper()
	name = backend.Resolve(name)
	mu.Lock()
	defer mu.Unlock()
	if b, ok := opened[name]; ok {
		return b
	}
	b, err := backend.Open(name)
	if err != nil {
		t.Fatalf("opening backend %s: %v", name, err)
	}
	opened[name] = b
	return b
}

// RelErr is the normwise relative difference max|a−b| / max|b|: elementwise
// ratios explode near zero, which says nothing about the computation.
func RelErr(a, b []float64) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var diff, scale float64
	for i := range a {
		diff = math.Max(diff, math.Abs(a[i]-b[i]))
		scale = math.Max(scale, math.Abs(b[i]))
	}
	if scale == 0 {
		return diff
	}
	return diff / scale
}

// CheckGradients compares the analytic gradient of a scalar float64 loss with
// central differences at perWeight random entries of every trainable weight
// of store, failing the test where they differ by more than 1e-6 relative.
// It returns how many entries it checked.
func CheckGradients(t *testing.T, b compute.Backend, store *model.Store, loss func(scope *model.Scope, in []*Node) *Node, args []any, perWeight int, rng *rand.Rand) int {
	t.Helper()
	vars := nn.Trainable(store)
	gradExec, err := model.NewExec(b, store, func(scope *model.Scope, in []*Node) []*Node {
		l := loss(scope, in)
		nodes := make([]*Node, len(vars))
		for i, v := range vars {
			nodes[i] = v.NodeValue(l.Graph())
		}
		return Gradient(l, nodes...)
	})
	if err != nil {
		t.Fatal(err)
	}
	lossExec, err := model.NewExec(b, store, func(scope *model.Scope, in []*Node) *Node { return loss(scope, in) })
	if err != nil {
		t.Fatal(err)
	}
	grads, err := gradExec.Call(args...)
	if err != nil {
		t.Fatal(err)
	}
	value := func() float64 {
		out, err := lossExec.Call(args...)
		if err != nil {
			t.Fatal(err)
		}
		return tensors.ToScalar[float64](out[0])
	}
	const eps = 1e-6
	checked := 0
	for vi, v := range vars {
		g := tensors.MustCopyFlatData[float64](grads[vi])
		orig := tensors.MustCopyFlatData[float64](v.MustValue())
		for range perWeight {
			idx := rng.IntN(len(orig))
			set := func(x float64) {
				vals := append([]float64(nil), orig...)
				vals[idx] = x
				if err := v.SetValue(tensors.FromFlatDataAndDimensions(vals, v.Shape().Dimensions...)); err != nil {
					t.Fatal(err)
				}
			}
			set(orig[idx] + eps)
			up := value()
			set(orig[idx] - eps)
			down := value()
			set(orig[idx])
			num := (up - down) / (2 * eps)
			if d := math.Abs(num - g[idx]); d > 1e-6*math.Max(1, math.Abs(num)) {
				t.Errorf("%s[%d]: analytic %.9g, numeric %.9g", nn.WeightName(v), idx, g[idx], num)
			}
			checked++
		}
	}
	return checked
}

// ExpectLossFalls runs step(0…steps−1), each returning a training loss, and
// fails the test unless the mean of the last `window` losses is below factor
// times the mean of the first `window` (ExpectFalls).
func ExpectLossFalls(t *testing.T, steps, window int, factor float64, step func(i int) float64) {
	t.Helper()
	losses := make([]float64, steps)
	for i := range steps {
		losses[i] = step(i)
	}
	ExpectFalls(t, "loss", losses, window, factor)
}

// ExpectFalls fails the test unless the mean of the last `window` values of
// series (a training term, one value a step) is below factor times the mean
// of its first `window`, and reports whether it was.
func ExpectFalls(t testing.TB, name string, series []float64, window int, factor float64) bool {
	t.Helper()
	if window < 1 || len(series) < window {
		t.Errorf("%s: %d values, fewer than the window of %d", name, len(series), window)
		return false
	}
	first, _ := MeanStd(series[:window])
	last, _ := MeanStd(series[len(series)-window:])
	t.Logf("%s %.4f → %.4f", name, first, last)
	if !(last < factor*first) {
		t.Errorf("%s did not fall by %.0f%%: %.4f → %.4f", name, 100*(1-factor), first, last)
		return false
	}
	return true
}

// TinyTrainer is the setup of the tiny training tests: a store with specs
// initialised from seed 1, its RNG seeded, and an AdamW trainer of lr 3e-3
// with 5 warm-up steps over 60, on the default backend.
func TinyTrainer(t *testing.T, specs []nn.Spec, loss train.LossFn) (*model.Store, *train.Trainer) {
	t.Helper()
	store := model.NewStore()
	if err := nn.Init(store, specs, 1, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	if err := store.SetRNGStateFromSeed(1); err != nil {
		t.Fatal(err)
	}
	tc := train.DefaultConfig()
	tc.LR, tc.WarmupSteps, tc.TotalSteps = 3e-3, 5, 60
	tr, err := train.New(Backend(t, ""), store, tc, loss)
	if err != nil {
		t.Fatal(err)
	}
	return store, tr
}

// TimeTrainSteps is the timed loop of a training-step benchmark: a model of
// specs (initialised with seed 1) and the default training configuration,
// one step on inputs to compile the graph, then b.N timed steps on the
// same inputs.
func TimeTrainSteps(b *testing.B, specs []nn.Spec, loss train.LossFn, inputs []any) {
	b.Helper()
	store := model.NewStore()
	if err := nn.Init(store, specs, 1, dtypes.Float32); err != nil {
		b.Fatal(err)
	}
	tr, err := train.New(Backend(b, ""), store, train.DefaultConfig(), loss)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := tr.Step(inputs...); err != nil { // compiles
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := tr.Step(inputs...); err != nil {
			b.Fatal(err)
		}
	}
}

// DecodePNG reads and decodes the PNG at path, failing the test otherwise.
func DecodePNG(t testing.TB, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("decoding %s: %v", path, err)
	}
	return img
}

// DirNames lists dir's entries, sorted, so tests can assert that no target
// or temporary file was left behind.
func DirNames(t testing.TB, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// MeanStd is the mean and the (population) standard deviation of x.
func MeanStd(x []float64) (float64, float64) {
	var m, v float64
	for _, a := range x {
		m += a
	}
	m /= float64(len(x))
	for _, a := range x {
		v += (a - m) * (a - m)
	}
	return m, math.Sqrt(v / float64(len(x)))
}

// Farthest calls draw n times and returns the result farthest from
// reference (reference itself when n is 0): for checks of a random effect
// whose sign varies from draw to draw, so that one draw that happens to
// land near reference does not hide it.
func Farthest(reference float64, n int, draw func() float64) float64 {
	far := reference
	for range n {
		if v := draw(); math.Abs(v-reference) > math.Abs(far-reference) {
			far = v
		}
	}
	return far
}
