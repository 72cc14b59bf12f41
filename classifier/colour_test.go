package classifier

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/train"
)

// colourSquares makes n 16×16 RGB images (H×W×C) of a square of colour
// class (0 red, 1 green, 2 blue) at a random place on a gray background,
// with noise, and their classes.
func colourSquares(rng *rand.Rand, n int) ([]float32, []int32) {
	const s = 16
	imgs := make([]float32, 0, n*s*s*3)
	labels := make([]int32, n)
	for i := range n {
		c := rng.IntN(3)
		labels[i] = int32(c)
		x0, y0 := rng.IntN(s-6), rng.IntN(s-6)
		for y := range s {
			for x := range s {
				in := x >= x0 && x < x0+6 && y >= y0 && y < y0+6
				for ch := range 3 {
					v := 0.5
					if in {
						v = 0.1
						if ch == c {
							v = 0.9
						}
					}
					imgs = append(imgs, float32(v+0.05*rng.NormFloat64()))
				}
			}
		}
	}
	return imgs, labels
}

// TestColourTrainingReducesLoss: a classifier of three input channels
// learns which colour a square has, which a gray one could not tell by
// brightness alone; its config keeps the channels and the class names
// through a save, and a gray config is saved as it always was.
func TestColourTrainingReducesLoss(t *testing.T) {
	b := testutil.Backend(t, "")
	cfg := Config{ImageSize: 16, InChannels: 3, Widths: []int{4, 8}, Features: 16, Classes: 3, Labels: []string{"red", "green", "blue"}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := cfg.Specs()[0].Shape; got[2] != 3 {
		t.Fatalf("first convolution %v, want 3 input channels", got)
	}
	store := model.NewStore()
	if err := nn.Init(store, cfg.Specs(), 1, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	tc := train.DefaultConfig()
	tc.LR, tc.WarmupSteps, tc.TotalSteps, tc.EMADecay = 1e-2, 3, 120, 0
	tr, err := train.New(b, store, tc, func(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
		loss, acc := cfg.Loss(scope, w, in[0], in[1])
		return []*Node{loss, acc}
	})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var first, last, lastAcc float64
	const steps, batch = 120, 32
	for step := range steps {
		imgs, labels := colourSquares(rng, batch)
		res, err := tr.Step(tensors.FromFlatDataAndDimensions(imgs, cfg.ImageDims(batch)...), tensors.FromFlatDataAndDimensions(labels, batch))
		if err != nil {
			t.Fatal(err)
		}
		if step < 3 {
			first += res.Loss / 3
		}
		if step >= steps-5 {
			last += res.Loss / 5
			lastAcc += res.Metrics[0] / 5
		}
	}
	t.Logf("loss %.3f → %.3f, batch accuracy %.2f", first, last, lastAcc)
	if math.Abs(first-math.Log(3)) > 0.3 {
		t.Errorf("initial loss %.3f, want about ln 3 = 1.099", first)
	}
	if !(last < 0.5*first) || lastAcc < 0.8 {
		t.Errorf("loss went from %.3f to %.3f (want below half), accuracy %.2f (want > 0.8)", first, last, lastAcc)
	}

	m, err := NewModel(b, cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := m.Save(dir, map[string]any{"data": "squares"}, false); err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(b, dir)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Config.ImageChannels() != 3 || loaded.Config.Label(2) != "blue" || loaded.Config.Label(7) != "7" {
		t.Errorf("reloaded config %+v", loaded.Config)
	}
	imgs, labels := colourSquares(rng, 50)
	batch50 := make([][]float32, 50)
	for i := range batch50 {
		batch50[i] = imgs[i*cfg.Pixels() : (i+1)*cfg.Pixels()]
	}
	probs, feats, err := loaded.Predict(batch50)
	if err != nil {
		t.Fatal(err)
	}
	right := 0
	for i, p := range probs {
		best := 0
		for k := range p {
			if p[k] > p[best] {
				best = k
			}
		}
		if int32(best) == labels[i] {
			right++
		}
	}
	if right < 40 || len(feats[0]) != 16 {
		t.Errorf("reloaded model reads %d of 50 new squares right (features of %d)", right, len(feats[0]))
	}
	if _, _, err := loaded.Predict([][]float32{make([]float32, 16*16)}); err == nil || !strings.Contains(err.Error(), "× 3 channels") {
		t.Errorf("a gray image given to a colour classifier: error %v", err)
	}

	gray := Config{ImageSize: 16, Widths: []int{4, 8}, Features: 16, Classes: 3}
	if strings.Contains(string(gray.JSON()), "in_channels") || strings.Contains(string(gray.JSON()), "labels") {
		t.Errorf("a gray config is saved with new fields: %s", gray.JSON())
	}
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil || !strings.Contains(string(raw), `"in_channels": 3`) {
		t.Errorf("colour config.json: %s (%v)", raw, err)
	}
	for _, bad := range []Config{
		{ImageSize: 16, InChannels: 5, Widths: []int{4}, Features: 16, Classes: 3},
		{ImageSize: 16, Widths: []int{4}, Features: 16, Classes: 3, Labels: []string{"a", "b"}},
	} {
		if bad.Validate() == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}
