// Package benchmark is the speed harness behind `latentlm bench`: it times
// training steps and sampling of LatentLM and of the DiT baseline on a
// compute backend, counts the matmul work they do, and describes the machine
// the figures were taken on. docs/BENCHMARKS.md records its measured results.
//
// What each benchmark measures:
//
//   - Step: one full training step (forward, backward, gradient clipping,
//     AdamW, EMA) of LatentLM at the reference shape of docs/DESIGN.md §10
//     (StepConfig): batch 16, 61 latents per sequence plus class, <BOL> and
//     <EOL> (64 items), width 256, 4 layers, a diffusion head of width 256 and
//     depth 3, with batch_mul 4 noise draws per latent (BatchMul). It is
//     Train with those settings.
//   - Train: the same training step for any LatentLM configuration, on
//     random class labels and standard-normal latents.
//   - TrainDiT: one training step of a DiT (dit.Config) on random grids.
//   - Sample: class-conditional generation of a Grid×Grid latent image per
//     label, with classifier-free guidance (scale 4, both streams in one
//     batch) and a number of DPM-Solver++ steps (0: DDPM over 1000 steps),
//     by LatentLM (KV cache, the diffusion head at every solver step) or by
//     the DiT of the same width and depth (the whole network at every step).
//
// Every benchmark calls its computation once to compile it (FirstCallS),
// then times the given number of further calls (training) or of at most
// three (sampling) and reports the median and the fastest. Weights are
// initialised from seed 1 and inputs drawn from fixed seeds, so two runs do
// the same work.
//
// FLOPs are counted, not measured: 2 per multiply-add of every matrix
// product with a weight, plus the two products of attention (scores and
// weighted values, over the whole length as computed, masked or not).
// Embedding lookups, normalisations, activations and the optimiser are not
// counted. A training step counts 3× the forward pass
// (lm.Config.ForwardFLOPs, dit.Config.ForwardFLOPs): the backward pass is
// taken as twice the forward. Sampling counts lm.Config.SampleFLOPs or
// dit.Config.SampleFLOPs per image: for each of the two guidance streams,
// LatentLM runs its backbone once per item with attention over the whole
// fixed-length cache and its head once per latent and solver step, while
// the DiT runs its full network over every item at every solver step.
// GFLOPs in a Result is the counted work divided by the median time.
//
// Every Result carries the machine's CPU count and SIMD features
// (CPUFeatures), which the project prints with every figure.
package benchmark

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sort"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/dit"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/train"
)

// Result is one measured configuration; its JSON form is what
// `latentlm bench --json` prints.
type Result struct {
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
	// Speech: the seconds of audio one call speaks, the median call's
	// time over them (the real-time factor), and the sequential backbone
	// passes per second of audio (the paper's decoding steps).
	AudioSeconds          float64 `json:"audio_seconds,omitempty"`
	RealTimeFactor        float64 `json:"real_time_factor,omitempty"`
	DecodingStepsPerAudio float64 `json:"decoding_steps_per_audio_second,omitempty"`
	CPUs                  int     `json:"cpus"`
	CPUFeatures           string  `json:"cpu_features"`
	Date                  string  `json:"date"`
}

const (
	// BatchMul is the number of noise draws per latent in the LatentLM
	// training benchmarks (the diffusion head runs that many times per item).
	BatchMul = 4
	// Grid is the side of the latent grid of the MNIST models: Sample and
	// the DiT training benchmark of the command line use Grid×Grid latents
	// per image.
	Grid = 7

	// StepName, StepBatch and StepItems are the reference training step
	// (StepConfig): its result name, batch and latents per sequence.
	StepName  = "transformer_step_b16_t64_d256_l4"
	StepBatch = 16
	StepItems = 61
)

// StepConfig is the LatentLM configuration of the reference training step
// (docs/DESIGN.md §10): width 256, 4 layers of 4 heads, a diffusion head of
// width 256 and depth 3, 16 latent channels, 10 classes.
func StepConfig() lm.Config {
	return lm.Config{Dim: 256, Depth: 4, Heads: 4, KVHeads: 4, MLPRatio: 4, HeadDepth: 3, HeadDim: 256,
		Latent: 16, MaxLen: 64, Target: diffusion.Epsilon, Vocab: lm.Vocab{Classes: 10}}
}

// Step times the reference training step (StepConfig, StepItems latents
// per sequence) at the given batch (StepBatch in the reference), steps
// times after the compiling call.
func Step(b compute.Backend, batch, steps int) (Result, error) {
	r, err := Train(b, StepConfig(), batch, StepItems, steps)
	r.Name = StepName
	return r, err
}

// Train times class-conditional training steps of cfg on random latents,
// `items` per sequence, steps times after the compiling call. The Result's
// Name is left for the caller.
func Train(b compute.Backend, cfg lm.Config, batch, items, steps int) (Result, error) {
	j, err := prepareTrain(b, cfg, batch, items)
	if err != nil {
		return Result{}, err
	}
	return j.measure(b, steps)
}

// TrainDiT times DiT training steps on random grids, steps times after the
// compiling call. The Result's Name is left for the caller.
func TrainDiT(b compute.Backend, cfg dit.Config, batch, steps int) (Result, error) {
	j, err := prepareTrainDiT(b, cfg, batch)
	if err != nil {
		return Result{}, err
	}
	return j.measure(b, steps)
}

// Sample times generation of n images (a Grid×Grid grid of latents each)
// with solverSteps DPM-Solver++ steps (0: DDPM) and CFG 4, by LatentLM
// (arch lm.Kind) or by the DiT of the same width and depth (dit.Kind). It
// times min(steps, 3) calls (at least one) after the compiling call.
func Sample(b compute.Backend, arch string, cfg lm.Config, n, solverSteps, steps int) (Result, error) {
	j, err := prepareSample(b, arch, cfg, n, solverSteps)
	if err != nil {
		return Result{}, err
	}
	return j.measure(b, max(1, min(steps, 3)))
}

// Measure times call as the benchmarks here do, for a computation the
// caller prepared: once to compile, then steps calls (at least one), the
// median kept. res holds what is known before timing; flops and items are
// one call's counted matmul FLOPs and the items (images, say) it makes.
func Measure(b compute.Backend, res Result, flops float64, items, steps int, call func() error) (Result, error) {
	j := &job{call: call, flops: flops, items: items, res: res}
	return j.measure(b, max(1, steps))
}

// NewStore is a store with cfg's weights initialised from seed 1 and its
// RNG seeded with 1, and cfg's weight specs.
func NewStore(cfg checkpoint.Model) (*model.Store, []nn.Spec, error) {
	store := model.NewStore()
	specs := cfg.Specs()
	if err := nn.Init(store, specs, 1, dtypes.Float32); err != nil {
		return nil, nil, err
	}
	return store, specs, store.SetRNGStateFromSeed(1)
}

// job is a prepared benchmark: call runs the measured computation once.
type job struct {
	call  func() error
	flops float64 // counted matmul FLOPs of one call
	items int     // items (latents or images) produced or trained on per call
	res   Result  // the fields known before timing
}

// measure runs the job once to compile, then times steps calls.
func (j *job) measure(b compute.Backend, steps int) (Result, error) {
	first, times, err := timeCalls(steps, j.call)
	if err != nil {
		return Result{}, err
	}
	med := times[len(times)/2]
	r := j.res
	r.Backend = b.Name()
	r.Steps = steps
	r.FirstCallS, r.MedianS, r.MinS = first, med, times[0]
	r.ItemsPerS = float64(j.items) / med
	r.GFLOPs = j.flops / med / 1e9
	r.CPUs = runtime.NumCPU()
	r.CPUFeatures = CPUFeatures()
	r.Date = time.Now().UTC().Format("2006-01-02")
	return r, nil
}

// timeCalls runs fn once to compile, then steps more times; times are
// sorted.
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

// prepareTrain builds a trainer for class-conditional steps of cfg on
// random latents of `items` items per sequence.
func prepareTrain(b compute.Backend, cfg lm.Config, batch, items int) (*job, error) {
	cfg.MaxLen = max(cfg.MaxLen, items+3)
	store, specs, err := NewStore(cfg)
	if err != nil {
		return nil, err
	}
	sched := diffusion.Cosine(1000)
	tr, err := train.New(b, store, train.DefaultConfig(), func(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
		l := cfg.ClassLoss(scope, w, in[0], in[1], sched, BatchMul, 0.1)
		return []*Node{l.Total}
	})
	if err != nil {
		return nil, err
	}
	labels, lat := randomBatch(batch, items, cfg.Latent, cfg.Vocab.Classes)
	return &job{
		call: func() error {
			_, err := tr.StepAndFree(tensors.FromFlatDataAndDimensions(labels, batch), tensors.FromFlatDataAndDimensions(lat, batch, items, cfg.Latent))
			return err
		},
		flops: 3 * cfg.ForwardFLOPs(batch, items+2, BatchMul),
		items: batch * items,
		res:   Result{Arch: lm.Kind, Batch: batch, SeqLen: items + 3, Params: nn.CountParams(specs)},
	}, nil
}

// prepareTrainDiT builds a trainer for DiT steps on random grids.
func prepareTrainDiT(b compute.Backend, cfg dit.Config, batch int) (*job, error) {
	store, specs, err := NewStore(cfg)
	if err != nil {
		return nil, err
	}
	sched := diffusion.Cosine(1000)
	tr, err := train.New(b, store, train.DefaultConfig(), func(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
		return []*Node{cfg.ClassLoss(scope, w, in[0], in[1], sched, 1, 0.1)}
	})
	if err != nil {
		return nil, err
	}
	labels, lat := randomBatch(batch, cfg.Items(), cfg.Latent, cfg.Classes)
	return &job{
		call: func() error {
			_, err := tr.StepAndFree(tensors.FromFlatDataAndDimensions(labels, batch), tensors.FromFlatDataAndDimensions(lat, batch, cfg.Items(), cfg.Latent))
			return err
		},
		flops: 3 * cfg.ForwardFLOPs(batch),
		items: batch * cfg.Items(),
		res:   Result{Arch: dit.Kind, Batch: batch, SeqLen: cfg.Items(), Params: nn.CountParams(specs)},
	}, nil
}

// sampler is what both architectures' samplers offer: one latent image per
// class label.
type sampler interface {
	Sample(labels []int) ([][]float32, error)
}

// prepareSample builds the sampler of arch for n images of Grid×Grid
// latents.
func prepareSample(b compute.Backend, arch string, cfg lm.Config, n, solverSteps int) (*job, error) {
	items := Grid * Grid
	opts := lm.SampleOptions{Steps: solverSteps, CFG: 4, Temperature: 1, Seed: 1}
	evals := solverSteps // network evaluations per item
	if solverSteps == 0 {
		evals = 1000
	}
	var (
		s        sampler
		specs    []nn.Spec
		perImage float64
	)
	switch arch {
	case dit.Kind:
		dc := dit.FromLM(cfg, Grid)
		store, sp, err := NewStore(dc)
		if err != nil {
			return nil, err
		}
		specs, perImage = sp, dc.SampleFLOPs(evals)
		if s, err = dit.NewSampler(b, store, dc, opts); err != nil {
			return nil, err
		}
	case lm.Kind:
		store, sp, err := NewStore(cfg)
		if err != nil {
			return nil, err
		}
		specs, perImage = sp, cfg.SampleFLOPs(items, evals)
		if s, err = lm.NewSampler(b, store, cfg, items, opts); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("benchmark: unknown architecture %q: want %s or %s", arch, lm.Kind, dit.Kind)
	}
	labels := make([]int, n)
	for i := range labels {
		labels[i] = i % cfg.Vocab.Classes
	}
	return &job{
		call: func() error {
			_, err := s.Sample(labels)
			return err
		},
		flops: perImage * float64(n),
		items: n,
		res: Result{Name: fmt.Sprintf("%s_sample_b%d_steps%d_cfg", arch, n, evals), Arch: arch, Batch: n,
			Params: nn.CountParams(specs), SolverSteps: evals, GFLOPPerImage: perImage / 1e9},
	}, nil
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
