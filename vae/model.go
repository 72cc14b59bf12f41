package vae

import (
	"errors"
	"fmt"
	"math"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/safetensors"
)

// Kind is the checkpoint kind of a tokenizer.
const Kind = "vae"

// Names of the latent statistics stored beside the weights.
const (
	statMean = "latent_stats.mean"
	statStd  = "latent_stats.std"
)

// Model is a trained tokenizer ready to encode and decode: weights plus the
// per-channel latent statistics that normalise what the language model sees,
// z' = (z − mean)/std.
type Model struct {
	Config    Config
	Store     *model.Store
	Mean, Std []float32
	// Info is the training information of config.json (Load sets it): the
	// data set, and for a folder of images what re-reads it the same way
	// (the folder, size, fit and background; see recipe.ImageDataOf).
	Info    map[string]any
	backend compute.Backend
	encode  *model.Exec
	decode  *model.Exec
	logvar  *model.Exec
	codes   *model.Exec
}

// NewModel wraps a store holding trained weights. Statistics default to the
// identity until ComputeStats or Load sets them.
func NewModel(b compute.Backend, cfg Config, store *model.Store) (*Model, error) {
	m := &Model{Config: cfg, Store: store, backend: b, Mean: make([]float32, cfg.Channels), Std: make([]float32, cfg.Channels)}
	for i := range m.Std {
		m.Std[i] = 1
	}
	var err error
	// encode returns normalised latents: μ (deterministic) or a draw of z;
	// for kind vq the codebook entries, whatever sample says.
	m.encode, err = model.NewExec(b, store, func(scope *model.Scope, images, mean, std, sample *Node) *Node {
		w := nn.WeightsOf(scope.Store(), images.Graph())
		mu, logvar := cfg.Encode(w, images)
		var z *Node
		if cfg.Kind == VQ {
			z, _ = Quantize(mu, w.Get(CodebookWeight))
		} else {
			z = Where(GreaterThan(sample, ZerosLike(sample)), cfg.Sample(scope, mu, logvar), mu)
		}
		return Div(Sub(z, Reshape(mean, 1, 1, cfg.Channels)), Reshape(std, 1, 1, cfg.Channels))
	})
	if err != nil {
		return nil, err
	}
	m.decode, err = model.NewExec(b, store, func(scope *model.Scope, z, mean, std *Node) *Node {
		w := nn.WeightsOf(scope.Store(), z.Graph())
		z = Add(Mul(z, Reshape(std, 1, 1, cfg.Channels)), Reshape(mean, 1, 1, cfg.Channels))
		return cfg.Decode(w, z)
	})
	return m, err
}

// Encode maps images (each Config.Pixels() values in [0, 1], H×W×C) to
// normalised latents (each Items·Channels values). With sample set, the
// latent is a draw of the kind's posterior (seeded by the store's RNG);
// otherwise μ. A vq tokenizer gives the codebook entries of its codes
// (Codes) either way.
func (m *Model) Encode(images [][]float32, sample bool) ([][]float32, error) {
	c := m.Config
	flat, err := m.flatImages(images)
	if err != nil {
		return nil, err
	}
	s := float32(0)
	if sample {
		s = 1
	}
	if m.encode == nil {
		return nil, errClosed
	}
	args := []any{tensors.FromFlatDataAndDimensions(flat, c.ImageDims(len(images))...),
		tensors.FromFlatDataAndDimensions(m.Mean, c.Channels), tensors.FromFlatDataAndDimensions(m.Std, c.Channels),
		tensors.FromScalar(s)}
	out, err := m.encode.Call(args...)
	nn.Release(args...)
	if err != nil {
		return nil, fmt.Errorf("encoding: %w", err)
	}
	defer nn.Release(out[0])
	return split(tensors.MustCopyFlatData[float32](out[0]), len(images)), nil
}

// flatImages checks that every image has Config.Pixels() values and
// concatenates them.
func (m *Model) flatImages(images [][]float32) ([]float32, error) {
	c := m.Config
	px := c.Pixels()
	flat := make([]float32, 0, len(images)*px)
	for i, img := range images {
		if len(img) != px {
			if c.ImageChannels() == 1 {
				return nil, fmt.Errorf("image %d has %d pixels, want %d (%d×%d)", i, len(img), px, c.ImageSize, c.ImageSize)
			}
			return nil, fmt.Errorf("image %d has %d values, want %d (%d×%d pixels × %d channels)", i, len(img), px, c.ImageSize, c.ImageSize, c.ImageChannels())
		}
		flat = append(flat, img...)
	}
	return flat, nil
}

// Decode maps normalised latents back to images, each Config.Pixels()
// values (H×W×C).
func (m *Model) Decode(latents [][]float32) ([][]float32, error) {
	c := m.Config
	per := c.Items() * c.Channels
	flat := make([]float32, 0, len(latents)*per)
	for i, z := range latents {
		if len(z) != per {
			return nil, fmt.Errorf("latent %d has %d values, want %d (%d items × %d channels)", i, len(z), per, c.Items(), c.Channels)
		}
		flat = append(flat, z...)
	}
	if m.decode == nil {
		return nil, errClosed
	}
	args := []any{tensors.FromFlatDataAndDimensions(flat, len(latents), c.Items(), c.Channels),
		tensors.FromFlatDataAndDimensions(m.Mean, c.Channels), tensors.FromFlatDataAndDimensions(m.Std, c.Channels)}
	out, err := m.decode.Call(args...)
	nn.Release(args...)
	if err != nil {
		return nil, fmt.Errorf("decoding: %w", err)
	}
	defer nn.Release(out[0])
	return split(tensors.MustCopyFlatData[float32](out[0]), len(latents)), nil
}

var errClosed = errors.New("vae: model used after Close")

// Codes maps images (as Encode takes them) to the indices of their codes
// in the codebook of a vq tokenizer (Quantize; van den Oord et al. 2017):
// Items values in [0, Codebook) per image, in the order of the latents.
// They are the discrete tokens a VQ-MLLM predicts; CodeLatents turns them
// back into latents for Decode.
func (m *Model) Codes(images [][]float32) ([][]int32, error) {
	c := m.Config
	if c.Kind != VQ {
		return nil, fmt.Errorf("vae: a %v tokenizer has no codes (only kind vq)", c.Kind)
	}
	if m.encode == nil {
		return nil, errClosed
	}
	flat, err := m.flatImages(images)
	if err != nil {
		return nil, err
	}
	if m.codes == nil {
		m.codes, err = model.NewExec(m.backend, m.Store, func(scope *model.Scope, images *Node) *Node {
			w := nn.WeightsOf(scope.Store(), images.Graph())
			mu, _ := c.Encode(w, images)
			_, codes := Quantize(mu, w.Get(CodebookWeight))
			return codes
		})
		if err != nil {
			return nil, err
		}
	}
	in := tensors.FromFlatDataAndDimensions(flat, c.ImageDims(len(images))...)
	out, err := m.codes.Call(in)
	nn.Release(in)
	if err != nil {
		return nil, fmt.Errorf("encoding codes: %w", err)
	}
	defer nn.Release(out[0])
	all := tensors.MustCopyFlatData[int32](out[0])
	codes := make([][]int32, len(images))
	for i := range codes {
		codes[i] = all[i*c.Items() : (i+1)*c.Items() : (i+1)*c.Items()]
	}
	return codes, nil
}

// CodeLatents maps the codes of images (each Items indices, as Codes gives
// them) to their normalised latents, the codebook entries (e − mean)/std,
// ready for Decode: what Encode returns for the images the codes came from.
func (m *Model) CodeLatents(codes [][]int32) ([][]float32, error) {
	c := m.Config
	if c.Kind != VQ {
		return nil, fmt.Errorf("vae: a %v tokenizer has no codebook (only kind vq)", c.Kind)
	}
	var book []float32
	// By path, not among the trainable weights: a training store's
	// codebook that follows moving averages is not trainable.
	if v := m.Store.GetVariable(nn.WeightsScope + "/" + CodebookWeight); v != nil {
		book = tensors.MustCopyFlatData[float32](v.MustValue())
	}
	if len(book) != c.Codebook*c.Channels {
		return nil, fmt.Errorf("vae: the store holds no %s of %d×%d values", CodebookWeight, c.Codebook, c.Channels)
	}
	zs := make([][]float32, len(codes))
	for i, img := range codes {
		if len(img) != c.Items() {
			return nil, fmt.Errorf("codes %d are %d indices, want %d (one per latent)", i, len(img), c.Items())
		}
		zs[i] = make([]float32, 0, c.Items()*c.Channels)
		for j, k := range img {
			if k < 0 || int(k) >= c.Codebook {
				return nil, fmt.Errorf("codes %d: index %d at latent %d is outside the codebook of %d", i, k, j, c.Codebook)
			}
			for ch, v := range book[int(k)*c.Channels : (int(k)+1)*c.Channels] {
				zs[i] = append(zs[i], (v-m.Mean[ch])/m.Std[ch])
			}
		}
	}
	return zs, nil
}

// Close releases the compiled encoder and decoder graphs. The weights in
// Store are left alone (release them with Store.Finalize once nothing uses
// them). It is safe to call more than once; Encode and Decode fail after it.
func (m *Model) Close() {
	for _, e := range []**model.Exec{&m.encode, &m.decode, &m.logvar, &m.codes} {
		if *e != nil {
			(*e).Finalize()
			*e = nil
		}
	}
}

func split(flat []float32, n int) [][]float32 {
	per := len(flat) / n
	out := make([][]float32, n)
	for i := range out {
		out[i] = flat[i*per : (i+1)*per : (i+1)*per]
	}
	return out
}

// ComputeStats sets the per-channel mean and std of the latents of images
// (one posterior draw each, as the language model will see them).
func (m *Model) ComputeStats(images func(yield func([][]float32) error) error) error {
	c := m.Config
	for i := range m.Mean {
		m.Mean[i], m.Std[i] = 0, 1
	}
	sum, sq := make([]float64, c.Channels), make([]float64, c.Channels)
	count := 0
	err := images(func(batch [][]float32) error {
		zs, err := m.Encode(batch, true)
		if err != nil {
			return err
		}
		for _, z := range zs {
			for k, v := range z {
				sum[k%c.Channels] += float64(v)
				sq[k%c.Channels] += float64(v) * float64(v)
			}
			count += c.Items()
		}
		return nil
	})
	if err != nil {
		return err
	}
	for k := range sum {
		mean := sum[k] / float64(count)
		m.Mean[k] = float32(mean)
		m.Std[k] = float32(math.Sqrt(math.Max(sq[k]/float64(count)-mean*mean, 1e-12)))
	}
	return nil
}

// Save writes the tokenizer checkpoint (weights, statistics, config).
func (m *Model) Save(dir string, info map[string]any, useEMA bool) error {
	return checkpoint.Save(dir, Kind, m.Config, info, m.Store, useEMA, StatsTensors(m.Mean, m.Std))
}

// StatsTensors are a tokenizer's per-channel latent mean and std as the
// extra tensors of its checkpoint; the image and speech tokenizers store
// them alike (StatsSpecs, ReadStats).
func StatsTensors(mean, std []float32) []safetensors.Tensor {
	return []safetensors.Tensor{
		safetensors.FromFloat32(statMean, []int{len(mean)}, mean),
		safetensors.FromFloat32(statStd, []int{len(std)}, std),
	}
}

// StatsSpecs is what checkpoint.Load must find of the statistics of a
// tokenizer with channels latent channels.
func StatsSpecs(channels int) map[string]safetensors.Spec {
	shape := []int{channels}
	return map[string]safetensors.Spec{statMean: {DType: safetensors.F32, Shape: shape}, statStd: {DType: safetensors.F32, Shape: shape}}
}

// ReadStats takes the statistics out of a loaded checkpoint's extra
// tensors; a std that is not positive and finite is an error naming dir.
func ReadStats(dir string, extra map[string]safetensors.Tensor) (mean, std []float32, err error) {
	if mean, err = extra[statMean].Float32(); err != nil {
		return nil, nil, err
	}
	if std, err = extra[statStd].Float32(); err != nil {
		return nil, nil, err
	}
	for k, s := range std {
		if !(s > 0) || math.IsInf(float64(s), 0) {
			return nil, nil, fmt.Errorf("%s: latent std of channel %d is %v", dir, k, s)
		}
	}
	return mean, std, nil
}

// Load reads a tokenizer checkpoint; every mismatch with its config is an error.
func Load(b compute.Backend, dir string) (*Model, error) {
	var cfg Config
	store, hdr, extra, err := checkpoint.Load(dir, Kind, &cfg, func() map[string]safetensors.Spec { return StatsSpecs(cfg.Channels) })
	if err != nil {
		return nil, err
	}
	m, err := NewModel(b, cfg, store)
	if err != nil {
		return nil, err
	}
	m.Info = hdr.Info
	if m.Mean, m.Std, err = ReadStats(dir, extra); err != nil {
		return nil, err
	}
	return m, nil
}

// EncodeMoments encodes images to what the language model trains on: the
// normalised mean of the latent and its per-element noise scale in
// normalised units (σ-VAE: C_σ/std, still to be multiplied by one |N(0,1)|
// draw per example; VAE: exp(½·logvar)/std; AE: 0). Training then re-draws
// z = μ + scale·ε every step, as the paper does, from a μ computed once.
func (m *Model) EncodeMoments(images [][]float32) (mu, scale [][]float32, err error) {
	mu, err = m.Encode(images, false)
	if err != nil {
		return nil, nil, err
	}
	c := m.Config
	scale = make([][]float32, len(images))
	switch c.Kind {
	case Sigma:
		for i := range scale {
			scale[i] = make([]float32, c.Items()*c.Channels)
			for k := range scale[i] {
				scale[i][k] = float32(c.CSigma) / m.Std[k%c.Channels]
			}
		}
	case VAE:
		if m.logvar == nil {
			m.logvar, err = model.NewExec(m.backend, m.Store, func(scope *model.Scope, images *Node) *Node {
				_, lv := c.Encode(nn.WeightsOf(scope.Store(), images.Graph()), images)
				return lv
			})
			if err != nil {
				return nil, nil, err
			}
		}
		flat, err := m.flatImages(images)
		if err != nil {
			return nil, nil, err
		}
		in := tensors.FromFlatDataAndDimensions(flat, c.ImageDims(len(images))...)
		out, err := m.logvar.Call(in)
		nn.Release(in)
		if err != nil {
			return nil, nil, err
		}
		lv := split(tensors.MustCopyFlatData[float32](out[0]), len(images))
		nn.Release(out[0])
		for i := range lv {
			scale[i] = make([]float32, len(lv[i]))
			for k, v := range lv[i] {
				scale[i][k] = float32(math.Exp(0.5*float64(v))) / m.Std[k%c.Channels]
			}
		}
	default:
		for i := range scale {
			scale[i] = make([]float32, c.Items()*c.Channels)
		}
	}
	return mu, scale, nil
}

// PerExampleNoise says whether the noise scale of EncodeMoments still needs
// the σ-VAE's per-example |N(0,1)| factor.
func (c Config) PerExampleNoise() bool { return c.Kind == Sigma }
