// Package train runs optimisation steps for any model of the project, with
// the training recipe of LatentLM's public code
// (https://arxiv.org/abs/2412.08635; docs/DESIGN.md §6): AdamW
// (https://arxiv.org/abs/1711.05101) with β = (0.9, 0.98), a cosine learning
// rate with linear warm-up, gradient clipping by global norm, and an
// exponential moving average of the weights, all inside one compiled graph
// per step.
//
// GoMLX provides the Adam update; it lacks global-norm clipping, weight EMA
// and a warm-up cosine schedule as used by the paper, so those are here.
// Every piece of training state (weights, moments, step counters, learning
// rate, RNG state, EMA) is a variable of the one model.Store, which is what
// makes a resumed run continue bit for bit: see checkpoint.SaveState and
// checkpoint.LoadState.
package train

import (
	"fmt"
	"math"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train/optimizer"

	"github.com/latentlm/latentlm/nn"
)

// EMAScope holds the moving average of each weight, under the weight's name.
const EMAScope = nn.EMAScope

// stepPath counts optimisation steps; it drives the learning-rate schedule.
const stepPath = "/train/step"

// totalPath holds the length of the cosine schedule, a variable rather than
// a constant of the graph so that a run with a time budget (Loop.Deadline)
// (Loop.Deadline)
// can fit it to its measured pace without recompiling (SetTotalSteps).
const totalPath = "/train/total_steps"

// ratesPath holds a run's peak and final learning rates, [LR, MinLR], saved
// with its training state so that a resumed run keeps the schedule it was
// started with: the rates are flags, and a resume that left them at their
// defaults once trained a decoder-only speech run at twice its peak rate
// for 10 500 steps (docs/RESULTS.md, "The decoder alone, trained further").
const ratesPath = "/train/learning_rates"

// Config holds the optimiser hyperparameters (docs/DESIGN.md §6).
type Config struct {
	LR          float64 // peak learning rate
	MinLR       float64 // learning rate at the end of the cosine
	WarmupSteps int
	TotalSteps  int // length of the cosine; the rate stays at MinLR after it
	Beta1       float64
	Beta2       float64
	Eps         float64
	WeightDecay float64
	ClipNorm    float64 // 0 disables clipping
	EMADecay    float64 // 0 disables the EMA
}

// DefaultConfig is the paper's recipe, with a learning rate and EMA decay
// suited to small models and short runs.
func DefaultConfig() Config {
	return Config{LR: 1e-3, WarmupSteps: 100, TotalSteps: 10000, Beta1: 0.9, Beta2: 0.98,
		Eps: 1e-8, WeightDecay: 0.01, ClipNorm: 1.0, EMADecay: 0.999}
}

// LossFn builds the loss of one batch: it returns the scalar loss followed by
// any extra scalar metrics to report.
type LossFn func(scope *model.Scope, w nn.Weights, inputs []*Node) []*Node

// Trainer compiles and runs training steps over a store whose weights were
// created with nn.Init (or loaded).
type Trainer struct {
	cfg   Config
	store *model.Store
	exec  *model.Exec
	kept  string // what a resumed run kept of its saved schedule (KeptSchedule)
}

// New prepares a trainer. The EMA copies are created here, from the current
// weights, unless the store already has them (a resumed run).
func New(backend compute.Backend, store *model.Store, cfg Config, loss LossFn) (*Trainer, error) {
	if cfg.EMADecay > 0 {
		for _, v := range nn.Trainable(store) {
			if store.GetVariable(EMAScope+"/"+nn.WeightName(v)) != nil {
				continue
			}
			clone, err := nn.CopyValue(v)
			if err != nil {
				return nil, err
			}
			ev, err := store.CreateVariable(EMAScope+"/"+nn.WeightName(v), clone)
			if err != nil {
				return nil, err
			}
			ev.SetTrainable(false)
		}
	}
	t := &Trainer{store: store}
	var err error
	if cfg, t.kept, err = keepRates(store, cfg); err != nil {
		return nil, err
	}
	t.cfg = cfg
	totalVar := store.VariableWithValue(totalPath, float32(cfg.TotalSteps))
	totalVar.SetTrainable(false)
	// A resumed run's saved length gives way to this run's: a longer
	// --steps restarts the cosine at the point of the longer schedule.
	if err := t.SetTotalSteps(int64(cfg.TotalSteps)); err != nil {
		return nil, err
	}
	opt := optimizer.Adam().LearningRate(cfg.LR).Betas(cfg.Beta1, cfg.Beta2).Epsilon(cfg.Eps).
		WeightDecay(cfg.WeightDecay).Done().(withGradients)
	exec, err := model.NewExec(backend, store, func(scope *model.Scope, inputs []*Node) []*Node {
		g := inputs[0].Graph()
		outs := loss(scope, nn.WeightsOf(store, g), inputs)
		weights := store.Scope(nn.WeightsScope)
		grads := weights.BuildTrainableVariablesGradientsGraph(outs[0])
		gradNorm := globalNorm(grads)
		if cfg.ClipNorm > 0 {
			// Scale all gradients by min(1, clip/‖g‖), as torch's clip_grad_norm_.
			scale := Min(ScalarOne(g, gradNorm.DType()), DivScalar(Inverse(AddScalar(gradNorm, 1e-6)), 1/cfg.ClipNorm))
			for i := range grads {
				grads[i] = Mul(grads[i], scale)
			}
		}
		stepVar := store.VariableWithValue(stepPath, int64(0))
		stepVar.SetTrainable(false)
		step := AddScalar(stepVar.NodeValue(g), 1)
		stepVar.SetNodeValue(step)
		lr := schedule(cfg, ConvertDType(step, dtypes.Float32), totalVar.NodeValue(g))
		optimizer.LearningRateVar(weights, dtypes.Float32, cfg.LR).SetNodeValue(lr)
		opt.UpdateGraphWithGradients(weights, grads, outs[0].DType())
		if cfg.EMADecay > 0 {
			// Warm-up of the decay, min(decay, (1+t)/(10+t)) as in diffusers'
			// EMAModel: a short run's EMA must not stay anchored to the
			// initial weights (0.999^600 still weighs them by 55%).
			fstep := ConvertDType(step, dtypes.Float32)
			decay := Min(Scalar(g, dtypes.Float32, cfg.EMADecay), Div(OnePlus(fstep), AddScalar(fstep, 10)))
			for _, v := range nn.Trainable(store) {
				ev := store.GetVariable(EMAScope + "/" + nn.WeightName(v))
				ema := Add(Mul(ev.NodeValue(g), decay), Mul(v.NodeValue(g), OneMinus(decay)))
				ev.SetNodeValue(ema)
			}
		}
		return append(outs, gradNorm, lr)
	})
	if err != nil {
		return nil, err
	}
	t.exec = exec
	return t, nil
}

// keepRates returns cfg with the learning rates that store's run was
// started with, when it holds them (a resumed run), and says so when they
// differ from cfg's; a new run's store is given cfg's, to be saved.
func keepRates(store *model.Store, cfg Config) (Config, string, error) {
	v := store.GetVariable(ratesPath)
	if v == nil {
		v = store.VariableWithValue(ratesPath, []float64{cfg.LR, cfg.MinLR})
		v.SetTrainable(false)
		return cfg, "", nil
	}
	val, err := v.Value()
	if err != nil {
		return cfg, "", fmt.Errorf("reading the saved learning rates: %w", err)
	}
	saved, err := tensors.CopyFlatData[float64](val)
	if err != nil || len(saved) != 2 {
		return cfg, "", fmt.Errorf("the saved learning rates %s: want [peak, final] as float64", val.Shape())
	}
	if saved[0] == cfg.LR && saved[1] == cfg.MinLR {
		return cfg, "", nil
	}
	note := fmt.Sprintf("resuming at the run's own learning rates, peak %g and final %g, not %g and %g (to train on at other rates, start a new run from its weights)",
		saved[0], saved[1], cfg.LR, cfg.MinLR)
	cfg.LR, cfg.MinLR = saved[0], saved[1]
	return cfg, note, nil
}

// KeptSchedule is the one-line notice of a resumed run whose saved learning
// rates ruled over the ones it was given (empty otherwise); Loop.Run prints
// it.
func (t *Trainer) KeptSchedule() string { return t.kept }

// Config is the trainer's configuration, with a resumed run's own learning
// rates.
func (t *Trainer) Config() Config { return t.cfg }

type withGradients interface {
	UpdateGraphWithGradients(*model.Scope, []*Node, dtypes.DType)
}

// schedule is the learning rate at 1-based step: linear warm-up to LR over
// WarmupSteps, then a cosine down to MinLR at total (a scalar node: the
// variable SetTotalSteps sets).
func schedule(cfg Config, step, total *Node) *Node {
	g := step.Graph()
	warm := MulScalar(step, cfg.LR/math.Max(1, float64(cfg.WarmupSteps)))
	span := MaxScalar(AddScalar(total, -float64(cfg.WarmupSteps)), 1)
	progress := ClipScalar(Div(AddScalar(step, -float64(cfg.WarmupSteps)), span), 0, 1)
	cosine := AddScalar(MulScalar(OnePlus(Cos(MulScalar(progress, math.Pi))), 0.5*(cfg.LR-cfg.MinLR)), cfg.MinLR)
	inWarmup := LessOrEqual(step, Scalar(g, step.DType(), float64(cfg.WarmupSteps)))
	return Where(inWarmup, warm, cosine)
}

func globalNorm(grads []*Node) *Node {
	var total *Node
	for _, gr := range grads {
		s := ReduceAllSum(Square(gr))
		if total == nil {
			total = s
		} else {
			total = Add(total, s)
		}
	}
	return Sqrt(total)
}

// Result is what one step reports.
type Result struct {
	Loss     float64
	Metrics  []float64
	GradNorm float64
	LR       float64
}

// Step runs one optimisation step on the inputs, which stay the caller's
// to reuse or free (StepAndFree frees them); its own outputs it frees at once.
func (t *Trainer) Step(inputs ...any) (Result, error) {
	outs, err := t.exec.Call(inputs...)
	if err != nil {
		return Result{}, fmt.Errorf("training step: %w", err)
	}
	vals := make([]float64, len(outs))
	for i, o := range outs {
		vals[i] = scalar(o)
		nn.Release(o) // nothing else would (nn.Release)
	}
	n := len(vals)
	return Result{Loss: vals[0], Metrics: vals[1 : n-2], GradNorm: vals[n-2], LR: vals[n-1]}, nil
}

// StepAndFree runs Step on inputs made for this step alone, then frees
// the tensors among them (nn.Release): what Loop does with each batch, since
// a backend such as ONNX Runtime keeps a C copy of every input that nothing
// else would free.
func (t *Trainer) StepAndFree(inputs ...any) (Result, error) {
	res, err := t.Step(inputs...)
	nn.Release(inputs...)
	return res, err
}

// SetTotalSteps sets the step at which the cosine schedule reaches MinLR,
// from the next step on; the compiled step reads it as a variable, so
// nothing is recompiled. Loop.Deadline uses it to end the schedule when
// the time runs out.
func (t *Trainer) SetTotalSteps(n int64) error {
	v := t.store.GetVariable(totalPath)
	if v == nil {
		return fmt.Errorf("training store has no %s", totalPath)
	}
	if err := v.SetValue(tensors.FromScalar(float32(n))); err != nil {
		return fmt.Errorf("setting the schedule's length: %w", err)
	}
	return nil
}

// StepCount is the number of steps taken so far (0 before the first).
func StepCount(store *model.Store) int64 {
	v := store.GetVariable(stepPath)
	if v == nil {
		return 0
	}
	val, err := v.Value()
	if err != nil {
		return 0
	}
	return tensors.ToScalar[int64](val)
}

func scalar(t *tensors.Tensor) float64 {
	switch t.DType() {
	case dtypes.Float64:
		return tensors.ToScalar[float64](t)
	case dtypes.Float32:
		return float64(tensors.ToScalar[float32](t))
	case dtypes.Int64:
		return float64(tensors.ToScalar[int64](t))
	}
	return math.NaN()
}

// UseEMA copies the EMA weights over the live weights, for sampling and
// export; it is how "sampling uses the EMA weights" is realised.
func UseEMA(store *model.Store) error {
	for _, v := range nn.Trainable(store) {
		ev := store.GetVariable(EMAScope + "/" + nn.WeightName(v))
		if ev == nil {
			return fmt.Errorf("no EMA weights for %s", nn.WeightName(v))
		}
		clone, err := nn.CopyValue(ev)
		if err != nil {
			return err
		}
		if err := v.SetValue(clone); err != nil {
			return err
		}
	}
	return nil
}
