package train_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train/optimizer"

	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/train"
)

// TestLoopDeadlineAnneals runs a tiny model under a fake clock (a first
// step of 5 s, then 0.1 s a step, a budget of 60 s) and checks that the
// run stops at the fitted step, within the budget, with the schedule's
// length set to that step and the learning rate at its floor there.
func TestLoopDeadlineAnneals(t *testing.T) {
	store := model.NewStore()
	if err := nn.Init(store, []nn.Spec{{Name: "w", Shape: []int{1, 1}, Std: 1}}, 1, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	cfg := train.DefaultConfig()
	cfg.LR, cfg.MinLR, cfg.WarmupSteps, cfg.TotalSteps = 0.1, 0.005, 10, 1_000_000
	tr, err := train.New(testutil.Backend(t, ""), store, cfg, func(_ *model.Scope, w nn.Weights, in []*Node) []*Node {
		return []*Node{ReduceAllSum(Square(Mul(w.Get("w"), in[0])))}
	})
	if err != nil {
		t.Fatal(err)
	}
	fake := time.Unix(0, 0)
	budget := 60 * time.Second
	l := &train.Loop{Trainer: tr, Store: store, Steps: int64(cfg.TotalSteps), Quiet: true, Deadline: fake.Add(budget),
		Batch: func(step int64) ([]any, int, error) {
			if step == 0 {
				fake = fake.Add(5 * time.Second)
			} else {
				fake = fake.Add(100 * time.Millisecond)
			}
			return []any{tensors.FromFlatDataAndDimensions([]float32{1}, 1, 1)}, 1, nil
		}}
	train.SetClock(l, func() time.Time { return fake })
	if err := l.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := train.StepCount(store)
	if want := int64(1 + 550); done != l.Steps || done < want-6 || done > want {
		t.Errorf("ran %d steps (Loop.Steps %d), want about %d: 5 s + 0.1 s a step in 60 s", done, l.Steps, want)
	}
	if took := fake.Sub(time.Unix(0, 0)); took > budget {
		t.Errorf("ran for %s of a %s budget", took, budget)
	}
	total := float64(tensors.MustCopyFlatData[float32](store.GetVariable(train.TotalPath).MustValue())[0])
	if int64(total) != done {
		t.Errorf("schedule length %g, want the %d steps run", total, done)
	}
	lr := float64(tensors.MustCopyFlatData[float32](optimizer.LearningRateVar(store.Scope(nn.WeightsScope), dtypes.Float32, 0).MustValue())[0])
	if math.Abs(lr-cfg.MinLR) > 1e-3*cfg.LR {
		t.Errorf("learning rate %g at the last step, want the floor %g", lr, cfg.MinLR)
	}
}
