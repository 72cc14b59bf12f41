package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/latentlm/latentlm/backend"
	"github.com/latentlm/latentlm/benchmark"
	"github.com/latentlm/latentlm/dit"
	"github.com/latentlm/latentlm/internal/guard"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
)

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

// runBenchSub parses the flags of one benchmark, checks the memory it will
// need, runs it through package benchmark and prints its results.
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
	var results []benchmark.Result
	switch sub {
	case "step":
		bs := pick(*batch, benchmark.StepBatch)
		if err := fs.checkMemory("bench step", lmTrainBytes(benchmark.StepConfig(), bs, benchmark.StepItems+1, benchmark.BatchMul)); err != nil {
			return err
		}
		r, err := benchmark.Step(b, bs, *steps)
		if err != nil {
			return err
		}
		results = append(results, r)
	case "train":
		bs := pick(*batch, defaultTrainBatch)
		items := benchmark.Grid * benchmark.Grid
		est := lmTrainBytes(base, bs, items+2, benchmark.BatchMul)
		if *arch == dit.Kind {
			dc := dit.FromLM(base, benchmark.Grid)
			est = nn.MemoryEstimate(dc.Specs(), dc.Activations(bs, true), true)
		}
		if err := fs.checkMemory("bench train", est); err != nil {
			return err
		}
		var r benchmark.Result
		if *arch == dit.Kind {
			r, err = benchmark.TrainDiT(b, dit.FromLM(base, benchmark.Grid), bs, *steps)
		} else {
			r, err = benchmark.Train(b, base, bs, items, *steps)
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
		const items = benchmark.Grid * benchmark.Grid
		for _, a := range archs {
			for _, n := range sizes {
				sc := base
				sc.MaxLen = items + 3
				est := nn.MemoryEstimate(sc.Specs(), sc.Activations(n, sc.MaxLen, 1, false), false)
				if a == dit.Kind {
					dc := dit.FromLM(base, benchmark.Grid)
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
					r, err := benchmark.Sample(b, a, base, n, st, *steps)
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
	}
	if *plotOut != "" {
		if sub != "sample" {
			return errors.New("--plot is for bench sample")
		}
		if err := benchmark.PlotThroughput(*plotOut, results); err != nil {
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
		fmt.Printf(" cpu_features=%q\n", r.CPUFeatures)
	}
	return nil
}

func pick(v, def int) int {
	if v > 0 {
		return v
	}
	return def
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
