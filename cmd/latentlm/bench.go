package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/backend"
	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/dit"
	"github.com/latentlm/latentlm/imageio"
	"github.com/latentlm/latentlm/internal/guard"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/train"
)

// benchResult is one measured configuration, as printed by --json.
type benchResult struct {
	Name       string  `json:"name"`
	Arch       string  `json:"arch"`
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
	// Sampling: solver steps and counted matmul GFLOP per image.
	SolverSteps   int     `json:"solver_steps,omitempty"`
	GFLOPPerImage float64 `json:"gflop_per_image,omitempty"`
	CPUs          int     `json:"cpus"`
	Date          string  `json:"date"`
}

func runBench(args []string) error {
	bench := func(sub string) func([]string) error {
		return func(args []string) error { return runBenchSub(sub, args) }
	}
	return dispatch("bench", "usage: latentlm bench step|train|sample [flags]\n\n"+
		"  step    one transformer training step of the reference shape (B16·T64·d256·4 layers, docs/DESIGN.md §10)\n"+
		"  train   one training step of the default MNIST model (--arch latentlm or dit)\n"+
		"  sample  images/s of class-conditional sampling (20 solver steps, CFG on;\n"+
		"          --arch latentlm, dit or both, --batches 1,4,16,64,256)",
		map[string]func([]string) error{"step": bench("step"), "train": bench("train"), "sample": bench("sample")}, args)
}

func runBenchSub(sub string, args []string) error {
	fs := newFlags("bench "+sub, "bench "+sub+" [--backend B] [--steps N] [--json]")
	backendName := fs.String("backend", "", "compute backend: onnx, go or xla")
	steps := fs.Int("steps", 10, "timed repetitions (after one warm-up call)")
	asJSON := fs.Bool("json", false, "print results as JSON")
	plotOut := fs.String("plot", "", "sample: also plot images/s against batch size (log-log) into this PNG")
	batch := fs.Int("batch", 0, "batch size (0: the benchmark's default)")
	arch := fs.String("arch", lm.Kind, "architecture: latentlm or dit (sample: also both)")
	batchList := fs.String("batches", "1,16,64", "sample: comma-separated batch sizes")
	solverList := fs.String("solver-steps", "20", "sample: comma-separated DPM-Solver++ steps (0: DDPM over 1000 steps)")
	dim := fs.Int("dim", 0, "width of the model (0: the default model's)")
	depth := fs.Int("depth", 0, "depth of the model (0: the default model's)")
	// 0 selects the benchmark's default for these.
	fs.bound("batch", 0, 1<<20, false)
	fs.bound("dim", 0, nn.MaxWidth, false)
	fs.bound("depth", 0, nn.MaxDepth, false)
	fs.bound("steps", 1, 1e6, false)
	if err := fs.Parse(args); err != nil {
		return err
	}
	archs := []string{*arch}
	switch *arch {
	case lm.Kind, dit.Kind:
	case "both":
		if sub != "sample" {
			return errors.New("--arch both is for bench sample")
		}
		archs = []string{lm.Kind, dit.Kind}
	default:
		return fmt.Errorf("unknown --arch %q: want latentlm, dit or both", *arch)
	}
	base := lm.DefaultConfig()
	base.Dim, base.Depth = pick(*dim, base.Dim), pick(*depth, base.Depth)
	if err := base.Validate(); err != nil {
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
		if err := fs.checkMemory("bench step", lmTrainBytes(cfg, bs, 62, 4)); err != nil {
			return err
		}
		r, err := benchTrain(b, cfg, bs, 61, *steps)
		if err != nil {
			return err
		}
		r.Name = "transformer_step_b16_t64_d256_l4"
		results = append(results, r)
	case "train":
		bs := pick(*batch, defaultTrainBatch)
		est := lmTrainBytes(base, bs, 51, 4)
		if *arch == dit.Kind {
			dc := dit.FromLM(base, 7)
			est = nn.MemoryEstimate(dc.Specs(), dc.Activations(bs, true), true)
		}
		if err := fs.checkMemory("bench train", est); err != nil {
			return err
		}
		var r benchResult
		if *arch == dit.Kind {
			r, err = benchTrainDiT(b, dit.FromLM(base, 7), bs, *steps)
		} else {
			r, err = benchTrain(b, base, bs, 49, *steps)
		}
		if err != nil {
			return err
		}
		r.Name = *arch + "_mnist_train_step"
		results = append(results, r)
	case "sample":
		sizes, err := parseInts(*batchList)
		if err != nil {
			return fmt.Errorf("--batches: %w", err)
		}
		if *batch > 0 {
			sizes = []int{*batch}
		}
		var solverSteps []int
		for _, f := range strings.Split(*solverList, ",") {
			v, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || v < 0 || v > 1000 {
				return fmt.Errorf("--solver-steps: %q is not a step count (0…1000)", f)
			}
			solverSteps = append(solverSteps, v)
		}
		for _, a := range archs {
			for _, n := range sizes {
				sc := base
				sc.MaxLen = 52
				est := nn.MemoryEstimate(sc.Specs(), sc.Activations(n, 52, 1, false), false)
				if a == dit.Kind {
					dc := dit.FromLM(base, 7)
					est = nn.MemoryEstimate(dc.Specs(), dc.Activations(n, false), false)
				}
				if err := fs.checkMemory(fmt.Sprintf("bench sample (%s, batch %d)", a, n), est+imageBytes(n, 28*28)); err != nil {
					return err
				}
			}
		}
		if *plotOut != "" {
			if err := guard.CheckOutput(*plotOut); err != nil {
				return err
			}
		}
		for _, a := range archs {
			for _, st := range solverSteps {
				for _, n := range sizes {
					r, err := benchSample(b, a, base, n, st, *steps)
					if err != nil {
						return err
					}
					results = append(results, r)
				}
			}
		}
	default:
		return fmt.Errorf("unknown benchmark %q: want step, train or sample", sub)
	}
	for i := range results {
		results[i].Backend = name
		if results[i].Arch == "" {
			results[i].Arch = *arch
		}
		results[i].CPUs = runtime.NumCPU()
		results[i].Date = time.Now().UTC().Format("2006-01-02")
	}
	if *plotOut != "" {
		if sub != "sample" {
			return errors.New("--plot is for bench sample")
		}
		if err := plotThroughput(*plotOut, results); err != nil {
			return err
		}
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
	store, specs, err := benchStore(cfg)
	if err != nil {
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
	labels, lat := randomBatch(batch, items, cfg.Latent, cfg.Vocab.Classes)
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

// benchTrainDiT times DiT training steps on random grids.
func benchTrainDiT(b compute.Backend, cfg dit.Config, batch, steps int) (benchResult, error) {
	store, specs, err := benchStore(cfg)
	if err != nil {
		return benchResult{}, err
	}
	sched := diffusion.Cosine(1000)
	tr, err := train.New(b, store, train.DefaultConfig(), func(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
		return []*Node{cfg.ClassLoss(scope, w, in[0], in[1], sched, 1, 0.1)}
	})
	if err != nil {
		return benchResult{}, err
	}
	labels, lat := randomBatch(batch, cfg.Items(), cfg.Latent, cfg.Classes)
	first, times, err := timeCalls(steps, func() error {
		_, err := tr.Step(tensors.FromFlatDataAndDimensions(labels, batch), tensors.FromFlatDataAndDimensions(lat, batch, cfg.Items(), cfg.Latent))
		return err
	})
	if err != nil {
		return benchResult{}, err
	}
	med := times[len(times)/2]
	return benchResult{Batch: batch, SeqLen: cfg.Items(), Params: nn.CountParams(specs), Steps: steps, FirstCallS: first,
		MedianS: med, MinS: times[0], ItemsPerS: float64(batch*cfg.Items()) / med, GFLOPs: 3 * cfg.ForwardFLOPs(batch) / med / 1e9}, nil
}

// benchStore is a store with cfg's weights initialised and its RNG seeded.
func benchStore(cfg checkpoint.Model) (*model.Store, []nn.Spec, error) {
	store := model.NewStore()
	specs := cfg.Specs()
	if err := nn.Init(store, specs, 1, dtypes.Float32); err != nil {
		return nil, nil, err
	}
	return store, specs, store.SetRNGStateFromSeed(1)
}

// randomBatch is a batch of random labels and standard-normal latents.
func randomBatch(batch, items, channels, classes int) ([]int32, []float32) {
	rng := rand.New(rand.NewPCG(1, 1))
	labels := make([]int32, batch)
	lat := make([]float32, batch*items*channels)
	for i := range labels {
		labels[i] = int32(rng.IntN(classes))
	}
	for i := range lat {
		lat[i] = float32(rng.NormFloat64())
	}
	return labels, lat
}

// benchSample times generation of n images (a 7×7 grid of latents each)
// with solverSteps DPM-Solver++ steps (0: DDPM) and CFG 4, by LatentLM or by
// the DiT of the same width and depth.
func benchSample(b compute.Backend, arch string, cfg lm.Config, n, solverSteps, steps int) (benchResult, error) {
	const grid = 7
	items := grid * grid
	opts := lm.SampleOptions{Steps: solverSteps, CFG: 4, Temperature: 1, Seed: 1}
	evals := solverSteps // network evaluations per item
	if solverSteps == 0 {
		evals = 1000
	}
	var (
		s        latentSampler
		specs    []nn.Spec
		perImage float64
	)
	if arch == dit.Kind {
		dc := dit.FromLM(cfg, grid)
		store, sp, err := benchStore(dc)
		if err != nil {
			return benchResult{}, err
		}
		specs, perImage = sp, dc.SampleFLOPs(evals)
		if s, err = dit.NewSampler(b, store, dc, opts); err != nil {
			return benchResult{}, err
		}
	} else {
		store, sp, err := benchStore(cfg)
		if err != nil {
			return benchResult{}, err
		}
		specs, perImage = sp, cfg.SampleFLOPs(items, evals)
		if s, err = lm.NewSampler(b, store, cfg, items, opts); err != nil {
			return benchResult{}, err
		}
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
	return benchResult{Name: fmt.Sprintf("%s_sample_b%d_steps%d_cfg", arch, n, evals), Arch: arch, Batch: n,
		Params: nn.CountParams(specs), Steps: reps, FirstCallS: first, MedianS: med, MinS: times[0],
		ItemsPerS: float64(n) / med, SolverSteps: evals, GFLOPPerImage: perImage / 1e9,
		GFLOPs: perImage * float64(n) / med / 1e9}, nil
}

// parseInts reads a comma-separated list of positive integers.
func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, v)
	}
	return out, nil
}

// plotThroughput draws images/s against batch size, one line per
// architecture and step count.
func plotThroughput(out string, results []benchResult) error {
	var series []imageio.Series
	index := map[string]int{}
	for _, r := range results {
		name := fmt.Sprintf("%s (%.2fM params), %d steps", r.Arch, float64(r.Params)/1e6, r.SolverSteps)
		i, ok := index[name]
		if !ok {
			i = len(series)
			index[name] = i
			series = append(series, imageio.Series{Name: name})
		}
		series[i].X = append(series[i].X, float64(r.Batch))
		series[i].Y = append(series[i].Y, r.ItemsPerS)
	}
	title := fmt.Sprintf("sampling throughput with CFG (%s backend, %d CPUs)", results[0].Backend, results[0].CPUs)
	return imageio.WritePlotAxes(out, title, "batch size (log scale)", "images/s", series, true, true)
}
