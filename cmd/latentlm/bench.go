package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sort"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/backend"
	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/train"
)

// benchResult is one measured configuration, as printed by --json.
type benchResult struct {
	Name       string  `json:"name"`
	Backend    string  `json:"backend"`
	Batch      int     `json:"batch"`
	SeqLen     int     `json:"seq_len,omitempty"`
	Params     int     `json:"params"`
	Steps      int     `json:"steps"`
	FirstCallS float64 `json:"first_call_s"`
	MedianS    float64 `json:"median_s"`
	MinS       float64 `json:"min_s"`
	ItemsPerS  float64 `json:"items_per_s"`
	GFLOPs     float64 `json:"gflop_per_s,omitempty"`
	CPUs       int     `json:"cpus"`
	Date       string  `json:"date"`
}

func runBench(args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Println("usage: latentlm bench step|train|sample [flags]\n\n" +
			"  step    one transformer training step of the PLATFORM.md shape (B16·T64·d256·4 layers)\n" +
			"  train   one LatentLM training step of the default MNIST model\n" +
			"  sample  images/s of class-conditional sampling (20 solver steps, CFG on)")
		return nil
	}
	sub, args := args[0], args[1:]
	fs := newFlags("bench "+sub, "bench "+sub+" [--backend B] [--steps N] [--json]")
	backendName := fs.String("backend", "", "compute backend: onnx, go or xla")
	steps := fs.Int("steps", 10, "timed repetitions (after one warm-up call)")
	asJSON := fs.Bool("json", false, "print results as JSON")
	batch := fs.Int("batch", 0, "batch size (0: the benchmark's default)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	name := backend.Resolve(*backendName)
	b, err := backend.Open(name)
	if err != nil {
		return err
	}
	var results []benchResult
	switch sub {
	case "step":
		cfg := lm.Config{Dim: 256, Depth: 4, Heads: 4, KVHeads: 4, MLPRatio: 4, HeadDepth: 3, HeadDim: 256,
			Latent: 16, MaxLen: 64, Target: "eps", Vocab: lm.Vocab{Classes: 10}}
		bs := pick(*batch, 16)
		r, err := benchTrain(b, cfg, bs, 61, *steps)
		if err != nil {
			return err
		}
		r.Name = "transformer_step_b16_t64_d256_l4"
		results = append(results, r)
	case "train":
		cfg := lm.DefaultConfig()
		bs := pick(*batch, defaultTrainBatch)
		r, err := benchTrain(b, cfg, bs, 49, *steps)
		if err != nil {
			return err
		}
		r.Name = "latentlm_mnist_train_step"
		results = append(results, r)
	case "sample":
		sizes := []int{1, 16, 64}
		if *batch > 0 {
			sizes = []int{*batch}
		}
		for _, n := range sizes {
			r, err := benchSample(b, lm.DefaultConfig(), n, *steps)
			if err != nil {
				return err
			}
			results = append(results, r)
		}
	default:
		return fmt.Errorf("unknown benchmark %q: want step, train or sample", sub)
	}
	for i := range results {
		results[i].Backend = name
		results[i].CPUs = runtime.NumCPU()
		results[i].Date = time.Now().UTC().Format("2006-01-02")
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	for _, r := range results {
		fmt.Printf("%-34s backend=%s batch=%d params=%d first=%.2fs median=%.4fs items/s=%.1f", r.Name, r.Backend, r.Batch, r.Params, r.FirstCallS, r.MedianS, r.ItemsPerS)
		if r.GFLOPs > 0 {
			fmt.Printf(" GFLOP/s=%.1f", r.GFLOPs)
		}
		fmt.Println()
	}
	return nil
}

func pick(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// timeCalls runs fn once to compile, then steps more times.
func timeCalls(steps int, fn func() error) (first float64, times []float64, err error) {
	t0 := time.Now()
	if err = fn(); err != nil {
		return
	}
	first = time.Since(t0).Seconds()
	for range steps {
		t := time.Now()
		if err = fn(); err != nil {
			return
		}
		times = append(times, time.Since(t).Seconds())
	}
	sort.Float64s(times)
	return
}

// benchTrain times class-conditional training steps of cfg on random
// latents of `items` items per sequence.
func benchTrain(b compute.Backend, cfg lm.Config, batch, items, steps int) (benchResult, error) {
	cfg.MaxLen = max(cfg.MaxLen, items+3)
	store := model.NewStore()
	specs := cfg.Specs()
	if err := nn.Init(store, specs, 1, dtypes.Float32); err != nil {
		return benchResult{}, err
	}
	if err := store.SetRNGStateFromSeed(1); err != nil {
		return benchResult{}, err
	}
	sched := diffusion.Cosine(1000)
	const batchMul = 4
	tr, err := train.New(b, store, train.DefaultConfig(), func(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
		l := cfg.ClassLoss(scope, w, in[0], in[1], sched, batchMul, 0.1)
		return []*Node{l.Total}
	})
	if err != nil {
		return benchResult{}, err
	}
	rng := rand.New(rand.NewPCG(1, 1))
	labels := make([]int32, batch)
	lat := make([]float32, batch*items*cfg.Latent)
	for i := range labels {
		labels[i] = int32(rng.IntN(cfg.Vocab.Classes))
	}
	for i := range lat {
		lat[i] = float32(rng.NormFloat64())
	}
	first, times, err := timeCalls(steps, func() error {
		_, err := tr.Step(tensors.FromFlatDataAndDimensions(labels, batch), tensors.FromFlatDataAndDimensions(lat, batch, items, cfg.Latent))
		return err
	})
	if err != nil {
		return benchResult{}, err
	}
	med := times[len(times)/2]
	flops := 3 * cfg.ForwardFLOPs(batch, items+2, batchMul)
	return benchResult{Batch: batch, SeqLen: items + 3, Params: nn.CountParams(specs), Steps: steps, FirstCallS: first,
		MedianS: med, MinS: times[0], ItemsPerS: float64(batch*items) / med, GFLOPs: flops / med / 1e9}, nil
}

// benchSample times generation of n images (49 latents each) with 20
// DPM-Solver++ steps and CFG 4.
func benchSample(b compute.Backend, cfg lm.Config, n, steps int) (benchResult, error) {
	store := model.NewStore()
	specs := cfg.Specs()
	if err := nn.Init(store, specs, 1, dtypes.Float32); err != nil {
		return benchResult{}, err
	}
	s, err := lm.NewSampler(b, store, cfg, 49, lm.SampleOptions{Steps: 20, CFG: 4, Temperature: 1, Seed: 1})
	if err != nil {
		return benchResult{}, err
	}
	labels := make([]int, n)
	for i := range labels {
		labels[i] = i % cfg.Vocab.Classes
	}
	reps := max(1, min(steps, 3))
	first, times, err := timeCalls(reps, func() error {
		_, err := s.Sample(labels)
		return err
	})
	if err != nil {
		return benchResult{}, err
	}
	med := times[len(times)/2]
	return benchResult{Name: fmt.Sprintf("latentlm_sample_b%d_steps20_cfg", n), Batch: n, Params: nn.CountParams(specs),
		Steps: reps, FirstCallS: first, MedianS: med, MinS: times[0], ItemsPerS: float64(n) / med}, nil
}
