package train_test

import (
	"context"
	"fmt"
	"log"
	"math"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/backend"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/train"
)

// fitTarget is the loss of a model of one weight vector w [1, 3] that should
// learn its input: the squared distance Σ(w − x)².
func fitTarget(_ *model.Scope, w nn.Weights, in []*graph.Node) []*graph.Node {
	return []*graph.Node{graph.ReduceAllSum(graph.Square(graph.Sub(w.Get("w"), in[0])))}
}

// newStore creates the weight w of fitTarget, drawn with a fixed seed.
func newStore() *model.Store {
	store := model.NewStore()
	if err := nn.Init(store, []nn.Spec{{Name: "w", Shape: []int{1, 3}, Std: 1}}, 1, dtypes.Float32); err != nil {
		log.Fatal(err)
	}
	return store
}

// Train a one-weight model with the default recipe (AdamW, warm-up, cosine,
// clipping, EMA), with a shorter schedule and a larger learning rate to suit
// it. Each Step runs one compiled graph that computes the loss, its gradient
// and the update; the loss falls from where the random weights start.
func ExampleTrainer_Step() {
	b, err := backend.Open(backend.Resolve(""))
	if err != nil {
		log.Fatal(err)
	}
	store := newStore()
	cfg := train.DefaultConfig()
	cfg.LR, cfg.MinLR, cfg.WarmupSteps, cfg.TotalSteps, cfg.EMADecay = 0.1, 0.001, 10, 300, 0.9
	tr, err := train.New(b, store, cfg, fitTarget)
	if err != nil {
		log.Fatal(err)
	}
	target := tensors.FromFlatDataAndDimensions([]float32{1, -2, 0.5}, 1, 3)
	defer target.FinalizeAll()
	var first, last train.Result
	for step := range cfg.TotalSteps {
		res, err := tr.Step(target)
		if err != nil {
			log.Fatal(err)
		}
		if step == 0 {
			first = res
		}
		last = res
	}
	fmt.Println("steps taken:", train.StepCount(store))
	fmt.Println("loss fell below 1% of its start:", last.Loss < first.Loss/100)
	fmt.Println("learning rate at the end is MinLR:", math.Abs(last.LR-cfg.MinLR) < 1e-6)
	// Output:
	// steps taken: 300
	// loss fell below 1% of its start: true
	// learning rate at the end is MinLR: true
}

// A Loop drives the trainer: it asks Batch for each step's inputs, records
// the loss averaged over RecordEvery steps, and calls Hook every Every steps
// and at the end, which is where a run saves its checkpoint.
func ExampleLoop() {
	b, err := backend.Open(backend.Resolve(""))
	if err != nil {
		log.Fatal(err)
	}
	store := newStore()
	cfg := train.DefaultConfig()
	cfg.LR, cfg.WarmupSteps, cfg.TotalSteps = 0.05, 5, 50
	tr, err := train.New(b, store, cfg, fitTarget)
	if err != nil {
		log.Fatal(err)
	}
	loop := &train.Loop{
		Trainer: tr, Store: store, Steps: 50, Quiet: true,
		RecordEvery: 10, Every: 20,
		Batch: func(step int64) ([]any, int, error) {
			// A new tensor each step: the loop frees it after the step.
			x := tensors.FromFlatDataAndDimensions([]float32{1, -2, 0.5}, 1, 3)
			return []any{x}, 1, nil
		},
		Hook: func(step int64, history []train.Point) error {
			fmt.Printf("hook at step %d, %d points recorded\n", step, len(history))
			return nil
		},
	}
	if err := loop.Run(context.Background()); err != nil {
		log.Fatal(err)
	}
	for _, p := range loop.History {
		fmt.Print(p.Step, " ")
	}
	fmt.Println()
	// Output:
	// hook at step 20, 2 points recorded
	// hook at step 40, 4 points recorded
	// hook at step 50, 5 points recorded
	// 10 20 30 40 50
}

// The loss history travels in a checkpoint's metadata as JSON, so that a
// resumed run continues its curve; ParseHistory reads it back.
func ExampleParseHistory() {
	h := []train.Point{{Step: 100, Loss: 0.5}, {Step: 200, Loss: 0.25, Metrics: []float64{0.125, 0.125}}}
	s := train.HistoryJSON(h)
	fmt.Println(s)
	back, err := train.ParseHistory(s)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(back)
	// Output:
	// [{"step":100,"loss":0.5},{"step":200,"loss":0.25,"metrics":[0.125,0.125]}]
	// [{100 0.5 []} {200 0.25 [0.125 0.125]}]
}
