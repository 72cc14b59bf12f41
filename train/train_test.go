package train_test

import (
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/train"
)

// TestScheduleClipAndEMA checks the learning rate against the formula, the
// clipping against the gradient norm, and the EMA against its recurrence,
// over a few steps of a one-weight model whose gradient is known.
func TestScheduleClipAndEMA(t *testing.T) {
	store := model.NewStore()
	if err := nn.Init(store, []nn.Spec{{Name: "w", Shape: []int{1, 1}, Std: 1}}, 1, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	cfg := train.DefaultConfig()
	cfg.LR, cfg.MinLR, cfg.WarmupSteps, cfg.TotalSteps, cfg.ClipNorm, cfg.EMADecay, cfg.WeightDecay = 0.1, 0.01, 4, 12, 1, 0.9, 0
	// loss = 10·w: gradient 10, clipped to norm 1.
	tr, err := train.New(testutil.Backend(t, ""), store, cfg, func(_ *model.Scope, w nn.Weights, in []*Node) []*Node {
		return []*Node{MulScalar(ReduceAllSum(Mul(w.Get("w"), in[0])), 10)}
	})
	if err != nil {
		t.Fatal(err)
	}
	wVar := store.GetVariable(nn.WeightsScope + "/w")
	emaVar := store.GetVariable(train.EMAScope + "/w")
	value := func(v *model.Variable) float64 { return float64(tensors.MustCopyFlatData[float32](v.MustValue())[0]) }
	ema := value(wVar)
	for step := 1; step <= 12; step++ {
		res, err := tr.Step(tensors.FromFlatDataAndDimensions([]float32{1}, 1, 1))
		if err != nil {
			t.Fatal(err)
		}
		want := cfg.LR * float64(step) / float64(cfg.WarmupSteps)
		if step > cfg.WarmupSteps {
			p := float64(step-cfg.WarmupSteps) / float64(cfg.TotalSteps-cfg.WarmupSteps)
			want = cfg.MinLR + 0.5*(cfg.LR-cfg.MinLR)*(1+math.Cos(math.Pi*p))
		}
		if math.Abs(res.LR-want) > 1e-6 {
			t.Errorf("step %d: lr %.6f, want %.6f", step, res.LR, want)
		}
		if math.Abs(res.GradNorm-10) > 1e-4 {
			t.Errorf("step %d: gradient norm %.4f, want 10", step, res.GradNorm)
		}
		decay := math.Min(cfg.EMADecay, float64(1+step)/float64(10+step))
		ema = decay*ema + (1-decay)*value(wVar)
		if got := value(emaVar); math.Abs(got-ema) > 1e-5 {
			t.Errorf("step %d: EMA %.6f, want %.6f", step, got, ema)
		}
	}
	if got := train.StepCount(store); got != 12 {
		t.Errorf("step count %d, want 12", got)
	}
}

// TestLoopFreesSpentInputs checks that the loop frees each step's inputs
// once the step has run: GoMLX sets no finalizer on tensors, and ONNX
// Runtime copies every input into C memory, so a loop that kept them would
// grow by the size of a batch at every step.
func TestLoopFreesSpentInputs(t *testing.T) {
	store := model.NewStore()
	if err := nn.Init(store, []nn.Spec{{Name: "w", Shape: []int{1, 1}, Std: 1}}, 1, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	cfg := train.DefaultConfig()
	cfg.WarmupSteps, cfg.TotalSteps = 1, 5
	tr, err := train.New(testutil.Backend(t, ""), store, cfg, func(_ *model.Scope, w nn.Weights, in []*Node) []*Node {
		return []*Node{ReduceAllSum(Mul(w.Get("w"), in[0]))}
	})
	if err != nil {
		t.Fatal(err)
	}
	var given []*tensors.Tensor
	loop := &train.Loop{Trainer: tr, Store: store, Steps: 5, Quiet: true,
		Batch: func(step int64) ([]any, int, error) {
			x := tensors.FromFlatDataAndDimensions([]float32{float32(step)}, 1, 1)
			given = append(given, x)
			return []any{x}, 1, nil
		}}
	if err := loop.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(given) != 5 {
		t.Fatalf("the loop asked for %d batches, want 5", len(given))
	}
	for i, x := range given {
		if x.Ok() {
			t.Errorf("the input of step %d is still held after the run", i)
		}
	}
}

// TestResumeKeepsLearningRates: a run saved with its training state and
// resumed with other learning rates takes the saved ones, says so, and
// takes the very step the uninterrupted run takes; resumed with its own
// rates it says nothing.
func TestResumeKeepsLearningRates(t *testing.T) {
	specs := []nn.Spec{{Name: "w", Shape: []int{1, 3}, Std: 1}}
	loss := func(_ *model.Scope, w nn.Weights, in []*Node) []*Node {
		return []*Node{ReduceAllSum(Square(Sub(w.Get("w"), in[0])))}
	}
	input := func() *tensors.Tensor { return tensors.FromFlatDataAndDimensions([]float32{1, -2, 0.5}, 1, 3) }
	cfg := train.DefaultConfig()
	cfg.LR, cfg.MinLR, cfg.WarmupSteps, cfg.TotalSteps = 0.05, 0.0025, 2, 10
	start := func(state string, c train.Config) (*model.Store, *train.Trainer) {
		store := model.NewStore()
		if err := nn.Init(store, specs, 1, dtypes.Float32); err != nil {
			t.Fatal(err)
		}
		if state != "" {
			if _, err := checkpoint.LoadState(state, store); err != nil {
				t.Fatal(err)
			}
		}
		tr, err := train.New(testutil.Backend(t, ""), store, c, loss)
		if err != nil {
			t.Fatal(err)
		}
		return store, tr
	}
	straight, tr := start("", cfg)
	if tr.KeptSchedule() != "" {
		t.Errorf("a new run kept a schedule: %q", tr.KeptSchedule())
	}
	state := filepath.Join(t.TempDir(), "state.safetensors")
	var want train.Result
	for step := 1; step <= 4; step++ {
		res, err := tr.Step(input())
		if err != nil {
			t.Fatal(err)
		}
		if step == 3 {
			if err := checkpoint.SaveState(state, straight, nil); err != nil {
				t.Fatal(err)
			}
		}
		want = res
	}
	wantW := tensors.MustCopyFlatData[float32](straight.GetVariable(nn.WeightsScope + "/w").MustValue())

	other := cfg
	other.LR, other.MinLR = 0.1, 0.005 // the defaults a resume forgot
	resumed, tr2 := start(state, other)
	if got := tr2.Config(); got.LR != cfg.LR || got.MinLR != cfg.MinLR {
		t.Errorf("resumed with other rates: peak %g, final %g, want the saved %g and %g", got.LR, got.MinLR, cfg.LR, cfg.MinLR)
	}
	if note := tr2.KeptSchedule(); !strings.Contains(note, "peak 0.05") || !strings.Contains(note, "not 0.1") {
		t.Errorf("notice %q: want it to name the saved peak 0.05 and the refused 0.1", note)
	}
	got, err := tr2.Step(input())
	if err != nil {
		t.Fatal(err)
	}
	gotW := tensors.MustCopyFlatData[float32](resumed.GetVariable(nn.WeightsScope + "/w").MustValue())
	if got.LR != want.LR || got.Loss != want.Loss || !slices.Equal(gotW, wantW) {
		t.Errorf("resumed step 4: lr %g, loss %g, w %v; the uninterrupted run: lr %g, loss %g, w %v", got.LR, got.Loss, gotW, want.LR, want.Loss, wantW)
	}

	if _, tr3 := start(state, cfg); tr3.KeptSchedule() != "" {
		t.Errorf("resumed with its own rates, it still noted %q", tr3.KeptSchedule())
	}
}
