package train_test

import (
	"math"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

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
