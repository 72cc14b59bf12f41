package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/latentlm/latentlm"
	"github.com/latentlm/latentlm/backend"
	"github.com/latentlm/latentlm/benchmark"
	"github.com/latentlm/latentlm/dit"
	"github.com/latentlm/latentlm/internal/guard"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/recipe"
	"github.com/latentlm/latentlm/server"
)

func runBench(args []string) error {
	bench := func(sub string) func([]string) error {
		return func(args []string) error { return runBenchSub(sub, args) }
	}
	return dispatch("bench", "usage: latentlm bench step|train|sample|serve|generate|speak [flags]\n\n"+
		"  step    one transformer training step of the reference shape (B16·T64·d256·4 layers, docs/DESIGN.md §10)\n"+
		"  train   one training step of the default MNIST model (--arch latentlm or dit)\n"+
		"  sample  images/s of class-conditional sampling (20 solver steps, CFG on;\n"+
		"          --arch latentlm, dit or both, --batches 1,4,16,64,256)\n"+
		"  serve   `latentlm serve` in process with the shipped MNIST model: --clients C × --requests R\n"+
		"          concurrent requests (batched), then the same one at a time, and the time\n"+
		"          to the first streamed latent, alone and joining a running decode\n"+
		"  generate  images/s of text → image sampling by a multimodal checkpoint of any arch\n"+
		"          (--model DIR: latentlm, vq or transfusion; --batches 1,16,64)\n"+
		"  speak   real-time factor of text-to-speech, text to 16 kHz audio, by a LatentLM or\n"+
		"          VALL-E-style checkpoint (--model DIR, --batches 1,16)",
		map[string]func([]string) error{"step": bench("step"), "train": bench("train"), "sample": bench("sample"), "serve": runBenchServe,
			"generate": runBenchGenerate, "speak": runBenchSpeak}, args)
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
		if err := fs.checkMemory("bench step", benchmark.StepConfig().TrainBytes(bs, benchmark.StepItems+1, benchmark.BatchMul)); err != nil {
			return err
		}
		r, err := benchmark.Step(b, bs, *steps)
		if err != nil {
			return err
		}
		results = append(results, r)
	case "train":
		bs := pick(*batch, recipe.DefaultLatentLMBatch)
		items := benchmark.Grid * benchmark.Grid
		est := base.TrainBytes(bs, items+2, benchmark.BatchMul)
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
			if err := guard.CheckOutputFormat(*plotOut, ".png"); err != nil {
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
		return printJSON(results)
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

// runBenchServe measures `latentlm serve` with request batching: C
// concurrent clients × R requests against the same requests one at a time,
// and the time to the first streamed output, alone and joining a running
// decode; for class → image requests (the shipped MNIST model), text →
// image requests and captions (the shipped multimodal model, with
// captions and canvases of the test split), or speech (a text-to-speech
// model, speaking test texts in the named voices).
func runBenchServe(args []string) error {
	fs := newFlags("bench serve", "bench serve [--task images|t2i|captions|speech] [--model DIR] [--clients 16] [--requests 4] [--n 1] [--steps 20] [--cfg 4] [--batch-rows 64] [--backend B] [--json]")
	task := fs.String("task", "images", "requests: images (class → image), t2i (caption → image), captions (image → text) or speech")
	modelDir := fs.String("model", "", "the model to serve (default: the shipped latentlm-mnist for images, multimodal-mnist for t2i and captions; speech needs one)")
	speechData := fs.String("speech-data", "", "speech data folder of the voices and texts (default: the cache of `latentlm speech data`)")
	backendName := fs.String("backend", "", "compute backend: onnx, go or xla")
	clients := fs.Int("clients", 16, "concurrent clients")
	requests := fs.Int("requests", 4, "requests per client")
	n := fs.Int("n", 1, "images per request (images, t2i)")
	steps := fs.Int("steps", 20, "DPM-Solver++ steps")
	cfg := fs.Float64("cfg", 4, "guidance scale")
	batchRows := fs.Int("batch-rows", 64, "most sequences (images, captions, utterances) per decode")
	asJSON := fs.Bool("json", false, "print results as JSON")
	fs.bound("clients", 1, 1024, false)
	fs.bound("requests", 1, 10000, false)
	fs.bound("n", 1, server.MaxImages, false)
	fs.bound("steps", 1, server.MaxSteps, false)
	fs.bound("batch-rows", 1, latentlm.MaxBatch, false)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cfg < 0 || *cfg > server.MaxCFG {
		return fmt.Errorf("--cfg %g out of range 0…%d", *cfg, server.MaxCFG)
	}
	bo := server.BenchOptions{Task: *task, Clients: *clients, Requests: *requests, N: *n, Steps: *steps, CFG: *cfg, BatchRows: *batchRows}
	var m server.Model
	var backendUsed string
	switch *task {
	case "images":
		dir := *modelDir
		if dir == "" {
			var err error
			if dir, err = weightsDir("latentlm-mnist"); err != nil {
				return err
			}
		}
		opts := []latentlm.Option{latentlm.WithBatch(server.MaxImages)}
		if *backendName != "" {
			opts = append(opts, latentlm.WithBackend(*backendName))
		}
		g, err := latentlm.Load(dir, opts...)
		if err != nil {
			return err
		}
		defer g.Close()
		if err := fs.checkMemory("bench serve", g.MemoryEstimate(*batchRows)); err != nil {
			return err
		}
		m, backendUsed = server.Model{Name: "bench", Gen: g}, g.Backend()
	case "t2i", "captions":
		dir := *modelDir
		if dir == "" {
			var err error
			if dir, err = weightsDir("multimodal-mnist"); err != nil {
				return err
			}
		}
		var err error
		if m, err = server.LoadMultimodal(dir, *backendName); err != nil {
			return err
		}
		defer m.Multimodal.Close()
		backendUsed = m.Backend
		if bo.Prompts, bo.Images, err = benchCanvases(m.Multimodal.Image.Config.ImageSize, *clients**requests); err != nil {
			return err
		}
	case "speech":
		dir, err := ttsModel(*modelDir, false)
		if err != nil {
			return err
		}
		if m, err = server.LoadSpeech(dir, *backendName); err != nil {
			return err
		}
		defer m.Speech.Close()
		backendUsed = m.Backend
		if bo.Texts, bo.Voices, err = benchSpeech(*speechData, &m); err != nil {
			return err
		}
	default:
		return fmt.Errorf("--task %q: want images, t2i, captions or speech", *task)
	}
	m.Name = "bench"
	r, err := server.Bench(m, backendUsed, bo)
	if err != nil {
		return err
	}
	r.CPUFeatures = benchmark.CPUFeatures()
	if *asJSON {
		return printJSON(r)
	}
	o := r.Options
	fmt.Printf("bench serve: %s, %s backend, %d clients × %d requests, n %d, %d steps, cfg %g, batches of up to %d sequences (warm-up %.1fs)\n",
		o.Task, r.Backend, o.Clients, o.Requests, o.N, o.Steps, o.CFG, o.BatchRows, r.WarmupS)
	for _, p := range []struct {
		name string
		ph   server.BenchPhase
	}{{"concurrent", r.Concurrent}, {"sequential", r.Sequential}} {
		fmt.Printf("  %-10s requests=%d lost=%d wall=%.2fs p50=%.0fms p99=%.0fms %s/s=%.2f steps=%d mean_sequences_per_step=%.1f\n",
			p.name, p.ph.Requests, p.ph.Lost, p.ph.Seconds, p.ph.P50MS, p.ph.P99MS, r.Units, p.ph.PerS, p.ph.BatchesSeen, p.ph.MeanBatch)
	}
	fmt.Printf("  throughput ratio (concurrent/sequential) = %.2f×\n", r.Ratio)
	if r.FirstEvent != "" {
		fmt.Printf("  first streamed %s event (client, median of 5) = %.0f ms alone, %.0f ms joining %d others\n", r.FirstEvent, r.FirstIdleMS, r.FirstBusyMS, o.Clients-1)
	}
	fmt.Printf("  peak RSS = %.0f MiB\n  cpu_features=%q\n", r.PeakRSSMiB, r.CPUFeatures)
	return nil
}
