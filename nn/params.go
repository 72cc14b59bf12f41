// Package nn holds the building blocks shared by every model of the project:
// parameter declaration and initialisation, and the layers of docs/DESIGN.md
// §3–§4 (linear maps in PyTorch layout, gain-free RMSNorm, SwiGLU,
// interleaved rotary embeddings, grouped-query attention, adaLN modulation
// as in DiT (https://arxiv.org/abs/2212.09748), timestep embeddings) written
// directly on GoMLX graph ops. They follow the public code of LatentLM
// (https://arxiv.org/abs/2412.08635) and use only ops that every backend can
// differentiate (docs/DESIGN.md §10).
//
// Parameters are declared up front as Specs and initialised on the host from a
// seeded generator. That keeps initialisation identical on every backend (the
// parity tests depend on it), lets us follow the paper's N(0, 0.02) and
// zero-init rules exactly, and gives every weight its PyTorch name.
package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// WeightsScope is the store scope under which model weights live; the
// variable names below it are the PyTorch parameter names.
const WeightsScope = "/model"

// EMAScope holds the moving average of each weight, under the weight's
// name: training keeps it, checkpoints save it as the weights to sample with.
const EMAScope = "/ema"

// InitStd is the standard deviation of the default normal initialisation.
const InitStd = 0.02

// Spec declares one parameter: its PyTorch-style name, its shape ([out, in]
// for linear maps) and how to initialise it. Std == 0 means zero init.
type Spec struct {
	Name  string
	Shape []int
	Std   float64
}

// Size is the number of elements of the parameter.
func (s Spec) Size() int {
	n := 1
	for _, d := range s.Shape {
		n *= d
	}
	return n
}

// CountParams sums the sizes of specs.
func CountParams(specs []Spec) int {
	n := 0
	for _, s := range specs {
		n += s.Size()
	}
	return n
}

// Init creates the variables of specs in store under WeightsScope, drawn from
// a PCG generator seeded with seed, in the order of specs. dtype is Float32
// for models and Float64 for gradient checks.
func Init(store *model.Store, specs []Spec, seed uint64, dtype dtypes.DType) error {
	rng := rand.New(rand.NewPCG(seed, 0x6c61746e656e746c))
	for _, s := range specs {
		vals := make([]float64, s.Size())
		if s.Std != 0 {
			for i := range vals {
				vals[i] = rng.NormFloat64() * s.Std
			}
		}
		if _, err := store.CreateVariable(path(s.Name), Tensor(vals, dtype, s.Shape...)); err != nil {
			return fmt.Errorf("creating parameter %s: %w", s.Name, err)
		}
	}
	return nil
}

// Tensor builds a host tensor of dtype from float64 values.
func Tensor(vals []float64, dtype dtypes.DType, dims ...int) *tensors.Tensor {
	switch dtype {
	case dtypes.Float64:
		return tensors.FromFlatDataAndDimensions(append([]float64(nil), vals...), dims...)
	default:
		f := make([]float32, len(vals))
		for i, v := range vals {
			f[i] = float32(v)
		}
		return tensors.FromFlatDataAndDimensions(f, dims...)
	}
}

func path(name string) string { return WeightsScope + "/" + name }

// Weights gives graph-building code access to the parameters by PyTorch name.
type Weights struct {
	store *model.Store
	g     *Graph
}

// WeightsOf returns the weights of store as seen from graph g.
func WeightsOf(store *model.Store, g *Graph) Weights { return Weights{store, g} }

// Get returns the node of the named parameter. A missing name is a
// programming error (the specs and the graph disagree), so it panics, which
// the graph builder turns into an error.
func (w Weights) Get(format string, args ...any) *Node {
	name := fmt.Sprintf(format, args...)
	v := w.store.GetVariable(path(name))
	if v == nil {
		panic(fmt.Errorf("nn: parameter %q not declared", name)) // an error: GoMLX hangs on string panics inside graph functions
	}
	return v.NodeValue(w.g)
}

// Graph is the graph the weights are read into.
func (w Weights) Graph() *Graph { return w.g }

// Trainable lists the store's weight variables (those under WeightsScope that
// are trainable), in the store's order.
func Trainable(store *model.Store) []*model.Variable {
	var vs []*model.Variable
	for v := range store.IterVariables() {
		if v.Trainable && strings.HasPrefix(v.Path(), WeightsScope+"/") {
			vs = append(vs, v)
		}
	}
	return vs
}

// CopyValue is a copy of v's current value, held on the host: what to give
// another variable (two variables must not share one tensor) or to keep
// and set back later.
func CopyValue(v *model.Variable) (*tensors.Tensor, error) {
	val, err := v.Value()
	if err != nil {
		return nil, err
	}
	return val.LocalClone()
}

// TrainableByName is Trainable(store) by WeightName.
func TrainableByName(store *model.Store) map[string]*model.Variable {
	byName := map[string]*model.Variable{}
	for _, v := range Trainable(store) {
		byName[WeightName(v)] = v
	}
	return byName
}

// ZeroWeights sets the trainable weights of store named names to zero,
// and names the first it does not hold.
func ZeroWeights(store *model.Store, names []string) error {
	byName := TrainableByName(store)
	for _, name := range names {
		v := byName[name]
		if v == nil {
			return fmt.Errorf("no trainable weight %s to set to zero", name)
		}
		if err := v.SetValue(tensors.FromShape(v.Shape())); err != nil {
			return fmt.Errorf("setting %s to zero: %w", name, err)
		}
	}
	return nil
}

// WeightName is the PyTorch name of a weight variable.
func WeightName(v *model.Variable) string { return strings.TrimPrefix(v.Path(), WeightsScope+"/") }

// Shape is shapes.Make for the common float case.
func Shape(dtype dtypes.DType, dims ...int) shapes.Shape { return shapes.Make(dtype, dims...) }

// Linear applies y = x·Wᵀ with w in PyTorch layout [out, in], over the last
// axis of x. No biases anywhere in this project (docs/DESIGN.md §3).
func Linear(x, w *Node) *Node {
	return DotGeneral(x, []int{x.Rank() - 1}, nil, w, []int{1}, nil)
}

// RMSNorm normalises the last axis to unit root-mean-square, without gain.
func RMSNorm(x *Node) *Node {
	ms := ReduceAndKeep(Square(x), ReduceMean, -1)
	return Mul(x, Inverse(Sqrt(AddScalar(ms, 1e-6))))
}

// SwiGLU is fc2(silu(fc1 x) ⊙ gate x), the feed-forward of both the backbone
// and the diffusion head; prefix names the module, e.g. "blocks.0.mlp".
func SwiGLU(w Weights, prefix string, x *Node) *Node {
	a := Linear(x, w.Get("%s.fc1.weight", prefix))
	b := Linear(x, w.Get("%s.gate.weight", prefix))
	return Linear(Mul(SiLU(a), b), w.Get("%s.fc2.weight", prefix))
}

// SwiGLUSpecs declares a SwiGLU module of width d and hidden size h.
func SwiGLUSpecs(prefix string, d, h int) []Spec {
	return []Spec{
		{prefix + ".fc1.weight", []int{h, d}, InitStd},
		{prefix + ".gate.weight", []int{h, d}, InitStd},
		{prefix + ".fc2.weight", []int{d, h}, InitStd},
	}
}

// SwiGLUHidden is the hidden width of the public code: int(d·ratio·2/3/64)·64,
// but never below 64 so tiny test models keep a hidden layer.
func SwiGLUHidden(d int, mlpRatio float64) int {
	h := int(float64(d)*mlpRatio*2/3/64) * 64
	if h < 64 {
		h = 64
	}
	return h
}

// SiLU is x·σ(x).
func SiLU(x *Node) *Node { return Mul(x, Sigmoid(x)) }

// Modulate is the adaLN modulation x·(1+scale) + shift, with shift and scale
// broadcast over the axes x has beyond them.
func Modulate(x, shift, scale *Node) *Node {
	return Add(Mul(x, OnePlus(scale)), shift)
}

// Chunk is the i-th width-sized part of Linear(x, w): the public code's
// chunk of an adaLN output, computed from the matching rows of w.
func Chunk(x, w *Node, width, i int) *Node {
	return Linear(x, Rows(w, i*width, (i+1)*width))
}

// TimestepEmbedding is the 256-dim sinusoid [cos(t·f_k), sin(t·f_k)],
// f_k = exp(−ln(10⁴)·k/128), of docs/DESIGN.md §4, for t of shape [N].
func TimestepEmbedding(t *Node, dim int) *Node {
	g := t.Graph()
	half := dim / 2
	freqs := make([]float64, half)
	for k := range freqs {
		freqs[k] = math.Exp(-math.Log(10000) * float64(k) / float64(half))
	}
	f := Const(g, Tensor(freqs, t.DType(), half))
	args := Mul(InsertAxes(t, -1), InsertAxes(f, 0))
	return Concatenate([]*Node{Cos(args), Sin(args)}, -1)
}

// Release frees the memory of the tensors among xs now, on the host and on
// the backend. Backends such as ONNX Runtime hold a tensor's buffer in C
// memory (an input is copied there on each call), and GoMLX v0.28.2 sets no
// finalizer on tensors or buffers, so nothing else ever frees it: every
// loop over calls (a sampler, a training loop) must free what it is done
// with, or memory grows by gigabytes.
func Release(xs ...any) {
	for _, x := range xs {
		if t, ok := x.(*tensors.Tensor); ok && t != nil {
			_ = t.FinalizeAll()
		}
	}
}

// ReleaseStores frees the weights of stores now (see Release): a model
// that loaded its own weights calls it from Close, so that a process
// opening model after model (a sweep over snapshots, a server) does not
// keep each one's weights for good.
func ReleaseStores(stores ...*model.Store) {
	for _, s := range stores {
		if s != nil {
			s.Finalize()
		}
	}
}
