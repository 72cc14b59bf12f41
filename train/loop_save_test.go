package train_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/train"
)

// tinyLoop is a Loop over a one-weight model, with a Hook that records the
// steps it is called with and checks that each is the store's step count
// (so that a save at that hook stores the step it names).
func tinyLoop(t *testing.T, steps, every int64) (*train.Loop, *[]int64) {
	t.Helper()
	store := model.NewStore()
	if err := nn.Init(store, []nn.Spec{{Name: "w", Shape: []int{1, 1}, Std: 1}}, 1, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	cfg := train.DefaultConfig()
	cfg.TotalSteps = 100
	tr, err := train.New(testutil.Backend(t, ""), store, cfg, func(_ *model.Scope, w nn.Weights, in []*Node) []*Node {
		return []*Node{ReduceAllSum(Square(Mul(w.Get("w"), in[0])))}
	})
	if err != nil {
		t.Fatal(err)
	}
	var hooks []int64
	l := &train.Loop{
		Trainer: tr,
		Store:   store,
		Steps:   steps,
		Every:   every,
		Quiet:   true,
		Batch: func(int64) ([]any, int, error) {
			return []any{tensors.FromFlatDataAndDimensions([]float32{1}, 1, 1)}, 1, nil
		},
		Hook: func(step int64, _ []train.Point) error {
			if got := train.StepCount(store); got != step {
				t.Errorf("hook at step %d, but the store has taken %d steps", step, got)
			}
			hooks = append(hooks, step)
			return nil
		},
	}
	return l, &hooks
}

func TestLoopHookOnceAtEnd(t *testing.T) {
	l, hooks := tinyLoop(t, 5, 0)
	if err := l.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := []int64{5}; !slices.Equal(*hooks, want) {
		t.Errorf("hooks at %v, want %v", *hooks, want)
	}
	if got := train.StepCount(l.Store); got != 5 {
		t.Errorf("step count %d, want 5", got)
	}
}

func TestLoopHookWithNothingToDo(t *testing.T) {
	l, hooks := tinyLoop(t, 3, 0)
	if err := l.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A resumed run that has already reached its steps still saves once.
	*hooks = nil
	batches := 0
	batch := l.Batch
	l.Batch = func(step int64) ([]any, int, error) { batches++; return batch(step) }
	if err := l.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := []int64{3}; !slices.Equal(*hooks, want) {
		t.Errorf("with 0 steps to do, hooks at %v, want %v", *hooks, want)
	}
	if batches != 0 {
		t.Errorf("with 0 steps to do, %d batches were drawn", batches)
	}
	if got := train.StepCount(l.Store); got != 3 {
		t.Errorf("step count %d, want 3", got)
	}
	// Likewise when the store is past Steps: the hook names the store's step.
	*hooks = nil
	l.Steps = 2
	if err := l.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := []int64{3}; !slices.Equal(*hooks, want) {
		t.Errorf("with the store past Steps, hooks at %v, want %v", *hooks, want)
	}
}

func TestLoopHookPeriodNoDuplicate(t *testing.T) {
	for _, c := range []struct {
		steps, every int64
		want         []int64
	}{
		{5, 2, []int64{2, 4, 5}},
		{4, 2, []int64{2, 4}},
		{3, 1, []int64{1, 2, 3}},
		{3, 10, []int64{3}},
	} {
		l, hooks := tinyLoop(t, c.steps, c.every)
		if err := l.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(*hooks, c.want) {
			t.Errorf("Steps=%d Every=%d: hooks at %v, want %v", c.steps, c.every, *hooks, c.want)
		}
	}
}

func TestLoopCancelSavesAndReturnsCanceled(t *testing.T) {
	l, hooks := tinyLoop(t, 10, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	batch := l.Batch
	l.Batch = func(step int64) ([]any, int, error) {
		if step == 2 { // Ctrl-C while the third step runs
			cancel()
		}
		return batch(step)
	}
	err := l.Run(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	// The step under way finishes; the hook saves it, once.
	if want := []int64{3}; !slices.Equal(*hooks, want) {
		t.Errorf("hooks at %v, want %v", *hooks, want)
	}
	if got := train.StepCount(l.Store); got != 3 {
		t.Errorf("step count %d, want 3", got)
	}

	// Cancelled before it starts: the hook still runs, at the current step.
	*hooks = nil
	l.Batch = batch
	if err := l.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run with a cancelled context = %v, want context.Canceled", err)
	}
	if want := []int64{3}; !slices.Equal(*hooks, want) {
		t.Errorf("cancelled before the first step: hooks at %v, want %v", *hooks, want)
	}
}

func TestLoopHookErrorStopsRun(t *testing.T) {
	l, _ := tinyLoop(t, 6, 2)
	boom := errors.New("disk full")
	hook := l.Hook
	l.Hook = func(step int64, h []train.Point) error {
		_ = hook(step, h)
		if step == 2 {
			return boom
		}
		return nil
	}
	if err := l.Run(context.Background()); !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want the hook's error", err)
	}
	if got := train.StepCount(l.Store); got != 2 {
		t.Errorf("training went on to step %d after the save failed at 2", got)
	}
}

// TestLoopRecordsMetrics: the named terms a loss returns after its total
// are averaged into the history beside the loss, per recorded point.
func TestLoopRecordsMetrics(t *testing.T) {
	store := model.NewStore()
	if err := nn.Init(store, []nn.Spec{{Name: "w", Shape: []int{1, 1}, Std: 1}}, 1, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	cfg := train.DefaultConfig()
	tr, err := train.New(testutil.Backend(t, ""), store, cfg, func(_ *model.Scope, w nn.Weights, in []*Node) []*Node {
		sq := ReduceAllSum(Square(Mul(w.Get("w"), in[0])))
		return []*Node{MulScalar(sq, 3), sq, MulScalar(sq, 2)} // total = a + b with a = sq, b = 2·sq
	})
	if err != nil {
		t.Fatal(err)
	}
	l := &train.Loop{Trainer: tr, Store: store, Steps: 6, Quiet: true, RecordEvery: 3, Metrics: []string{"a", "b"},
		Batch: func(int64) ([]any, int, error) {
			return []any{tensors.FromFlatDataAndDimensions([]float32{1}, 1, 1)}, 1, nil
		}}
	if err := l.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(l.History) != 2 {
		t.Fatalf("history %+v, want 2 points", l.History)
	}
	for _, p := range l.History {
		if len(p.Metrics) != 2 {
			t.Fatalf("point %+v: want 2 metrics", p)
		}
		a, b := p.Metrics[0], p.Metrics[1]
		if d := p.Loss - (a + b); d > 1e-5*p.Loss || d < -1e-5*p.Loss || b < 1.99*a || b > 2.01*a {
			t.Errorf("point %+v: want loss = a + b and b = 2a", p)
		}
	}
}

// TestLoopPrefetchIsTheSameRun: with Prefetch, Batch runs one step ahead
// on another goroutine, and the run is the one without it: the same
// batches, each asked for once and in order, the same losses, the same
// weights.
func TestLoopPrefetchIsTheSameRun(t *testing.T) {
	run := func(prefetch bool) (*train.Loop, []int64) {
		l, _ := tinyLoop(t, 7, 0)
		var mu sync.Mutex
		var asked []int64
		l.Prefetch, l.RecordEvery = prefetch, 1
		l.Batch = func(step int64) ([]any, int, error) {
			mu.Lock()
			asked = append(asked, step)
			mu.Unlock()
			return []any{tensors.FromFlatDataAndDimensions([]float32{1 + float32(step%3)}, 1, 1)}, 1, nil
		}
		if err := l.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		return l, asked
	}
	plain, plainAsked := run(false)
	ahead, aheadAsked := run(true)
	if want := []int64{0, 1, 2, 3, 4, 5, 6}; !slices.Equal(plainAsked, want) || !slices.Equal(aheadAsked, want) {
		t.Fatalf("batches asked for %v (plain) and %v (prefetching), want %v", plainAsked, aheadAsked, want)
	}
	if len(plain.History) != 7 || !slices.EqualFunc(plain.History, ahead.History, func(a, b train.Point) bool { return a.Step == b.Step && a.Loss == b.Loss }) {
		t.Fatalf("histories differ:\n%+v\n%+v", plain.History, ahead.History)
	}
	w := func(l *train.Loop) float32 {
		return tensors.MustCopyFlatData[float32](l.Store.GetVariable(nn.WeightsScope + "/w").MustValue())[0]
	}
	if w(plain) != w(ahead) {
		t.Fatalf("weights %v and %v", w(plain), w(ahead))
	}

	// A Batch error surfaces at its step, after the steps before it ran.
	l, _ := tinyLoop(t, 5, 0)
	l.Prefetch = true
	l.Batch = func(step int64) ([]any, int, error) {
		if step == 3 {
			return nil, 0, errors.New("no batch 3")
		}
		return []any{tensors.FromFlatDataAndDimensions([]float32{1}, 1, 1)}, 1, nil
	}
	if err := l.Run(context.Background()); err == nil || err.Error() != "no batch 3" {
		t.Fatalf("error %v, want no batch 3", err)
	}
	if got := train.StepCount(l.Store); got != 3 {
		t.Fatalf("%d steps taken before the failing batch, want 3", got)
	}
}
