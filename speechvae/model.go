package speechvae

import (
	"errors"
	"fmt"
	"math"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/safetensors"
	"github.com/latentlm/latentlm/speech"
	"github.com/latentlm/latentlm/vae"
)

// Bucket is the granularity, in latent frames, of the lengths the compiled
// graphs see: audio is padded with silence up to a multiple of it (0.32 s
// at 25 Hz), so that a few graphs serve every length.
const Bucket = 8

// cachedSeconds is the longest audio whose every padded length stays
// compiled: GoMLX refuses a graph past an executable's cache limit (32
// shapes by default) rather than evicting one, and a 62.5 Hz codec has 49
// buckets in the 6.2 s of the longest training sentence, so that encoding
// the sentence set stopped at its 33rd length.
const cachedSeconds = 60

// lengthShapes is the number of padded lengths (Bucket multiples) of up to
// cachedSeconds of audio, and so the compiled graphs each of the model's
// executables may keep.
func (c Config) lengthShapes() int {
	return max(32, int(math.Ceil(cachedSeconds*c.FrameRate()/Bucket)))
}

// DefaultGriffinLimIterations is the vocoder's default: on the shipped
// data, 32 fast Griffin-Lim iterations from true magnitudes keep the
// judge's word error rate within a few tenths of a point of the original.
const DefaultGriffinLimIterations = 32

// Model is a trained speech tokenizer ready to encode and decode: weights
// plus the per-channel latent statistics that normalise what the language
// model sees, z' = (z − mean)/std.
type Model struct {
	Config    Config
	Store     *model.Store
	Mean, Std []float32
	// GriffinLimIterations is the spectrum domain's vocoder effort.
	GriffinLimIterations int
	backend              compute.Backend
	encode, decode       *model.Exec
	codes                *model.Exec // built by the first Quantize (kind rvq)
}

// NewModel wraps a store holding weights of cfg. Statistics default to the
// identity until ComputeStats or Load sets them.
func NewModel(b compute.Backend, cfg Config, store *model.Store) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Model{Config: cfg, Store: store, Mean: make([]float32, cfg.Channels), Std: make([]float32, cfg.Channels),
		GriffinLimIterations: DefaultGriffinLimIterations, backend: b}
	for i := range m.Std {
		m.Std[i] = 1
	}
	var err error
	m.encode, err = model.NewExec(b, store, func(scope *model.Scope, x, mean, std, sample *Node) *Node {
		w := nn.WeightsOf(scope.Store(), x.Graph())
		mu, logvar := cfg.Encode(w, x)
		var z *Node
		if cfg.Kind == vae.VQ {
			z = cfg.ResidualQuantize(w, mu).Sum // the codes' latents, whatever sample says
		} else {
			z = Where(GreaterThan(sample, ZerosLike(sample)), vae.SampleLatent(scope, cfg.Kind, cfg.CSigma, mu, logvar), mu)
		}
		return Div(Sub(z, Reshape(mean, 1, 1, cfg.Channels)), Reshape(std, 1, 1, cfg.Channels))
	})
	if err != nil {
		return nil, err
	}
	m.encode.SetMaxCache(cfg.lengthShapes())
	m.decode, err = model.NewExec(b, store, func(scope *model.Scope, z, mean, std *Node) *Node {
		w := nn.WeightsOf(scope.Store(), z.Graph())
		z = Add(Mul(z, Reshape(std, 1, 1, cfg.Channels)), Reshape(mean, 1, 1, cfg.Channels))
		out := cfg.Decode(w, z)
		if cfg.Domain == Wave {
			return cfg.Waveform(out)
		}
		return Exp(cfg.logMagnitudes(out))
	})
	if err != nil {
		m.Close() // the encoder's graph, built above
		return nil, err
	}
	m.decode.SetMaxCache(cfg.lengthShapes())
	return m, nil
}

var errClosed = errors.New("speech-vae: model used after Close")

// Latents is the number of latent frames of n samples.
func (c Config) Latents(n int) int { return (n + c.SamplesPerLatent() - 1) / c.SamplesPerLatent() }

// Inputs is the encoder's input for samples, which must be a whole number
// of latent frames long: [L, InputWidth] flattened.
func (c Config) Inputs(samples []float32) ([]float32, error) {
	spl := c.SamplesPerLatent()
	if len(samples)%spl != 0 {
		return nil, fmt.Errorf("speech-vae: %d samples are not a whole number of %d-sample frames", len(samples), spl)
	}
	if c.Domain == Wave {
		return samples, nil
	}
	mags, err := speech.Magnitudes(samples, c.STFT())
	if err != nil {
		return nil, err
	}
	out := make([]float32, 0, len(mags)*c.Bins())
	for _, row := range mags {
		for _, v := range row {
			out = append(out, EncodeLogMagnitude(v))
		}
	}
	return out, nil
}

// padded copies samples into a silence-padded buffer of whole buckets.
func (c Config) padded(samples []float32) ([]float32, int) {
	l := c.Latents(len(samples))
	lb := max(Bucket, (l+Bucket-1)/Bucket*Bucket)
	out := make([]float32, lb*c.SamplesPerLatent())
	copy(out, samples)
	return out, lb
}

// Encode maps 16 kHz samples to normalised latents, one row of Channels
// values per latent frame (Latents(len(samples)) rows). With sample set,
// the latent is a draw of the kind's posterior; otherwise μ. A rvq
// tokenizer returns the sum of its codes' entries (CodeLatents of Codes).
func (m *Model) Encode(samples []float32, sample bool) ([][]float32, error) {
	if m.encode == nil {
		return nil, errClosed
	}
	if len(samples) == 0 {
		return nil, errors.New("speech-vae: encoding: no samples")
	}
	c := m.Config
	buf, lb := c.padded(samples)
	x, err := c.Inputs(buf)
	if err != nil {
		return nil, err
	}
	s := float32(0)
	if sample {
		s = 1
	}
	args := []any{tensors.FromFlatDataAndDimensions(x, 1, lb, c.InputWidth()),
		tensors.FromFlatDataAndDimensions(m.Mean, c.Channels), tensors.FromFlatDataAndDimensions(m.Std, c.Channels),
		tensors.FromScalar(s)}
	out, err := m.encode.Call(args...)
	nn.Release(args...)
	if err != nil {
		return nil, fmt.Errorf("speech-vae: encoding: %w", err)
	}
	defer nn.Release(out[0])
	flat := tensors.MustCopyFlatData[float32](out[0])
	return latentRows(flat[:c.Latents(len(samples))*c.Channels], c.Channels), nil
}

// Decode maps normalised latents (rows of Channels values) to n samples at
// 16 kHz; n ≤ len(latents)·SamplesPerLatent (0: all of them). The spectrum
// domain runs Griffin-Lim on the decoded magnitudes, seeded by seed.
func (m *Model) Decode(latents [][]float32, n int, seed uint64) ([]float32, error) {
	if m.decode == nil {
		return nil, errClosed
	}
	c := m.Config
	if len(latents) == 0 {
		return nil, errors.New("speech-vae: decoding: no latents")
	}
	full := len(latents) * c.SamplesPerLatent()
	if n == 0 {
		n = full
	}
	if n < 0 || n > full {
		return nil, fmt.Errorf("speech-vae: decoding %d samples from %d latent frames (at most %d)", n, len(latents), full)
	}
	lb := max(Bucket, (len(latents)+Bucket-1)/Bucket*Bucket)
	flat := make([]float32, 0, lb*c.Channels)
	for i, z := range latents {
		if len(z) != c.Channels {
			return nil, fmt.Errorf("speech-vae: latent frame %d has %d values, want %d", i, len(z), c.Channels)
		}
		if k := firstNonFinite(z); k >= 0 {
			return nil, fmt.Errorf("speech-vae: latent frame %d holds %v", i, z[k])
		}
		flat = append(flat, z...)
	}
	// Pad by repeating the last frame: the decoder attends both ways, and a
	// copy disturbs the real frames less than an arbitrary value would.
	for len(flat) < lb*c.Channels {
		flat = append(flat, latents[len(latents)-1]...)
	}
	args := []any{tensors.FromFlatDataAndDimensions(flat, 1, lb, c.Channels),
		tensors.FromFlatDataAndDimensions(m.Mean, c.Channels), tensors.FromFlatDataAndDimensions(m.Std, c.Channels)}
	out, err := m.decode.Call(args...)
	nn.Release(args...)
	if err != nil {
		return nil, fmt.Errorf("speech-vae: decoding: %w", err)
	}
	defer nn.Release(out[0])
	y := tensors.MustCopyFlatData[float32](out[0])
	if c.Domain == Wave {
		return y[:n:n], nil
	}
	mags := make([][]float32, len(latents)*c.FramesPerLatent)
	for t := range mags {
		mags[t] = y[t*c.Bins() : (t+1)*c.Bins()]
	}
	wave, err := speech.GriffinLim(mags, c.STFT(), full, m.GriffinLimIterations, seed)
	if err != nil {
		return nil, fmt.Errorf("speech-vae: decoding: %w", err)
	}
	return wave[:n:n], nil
}

// ComputeStats sets the per-channel mean and std of the latents of clips
// (one posterior draw each, as the language model will see them).
func (m *Model) ComputeStats(clips [][]float32) error {
	c := m.Config
	for i := range m.Mean {
		m.Mean[i], m.Std[i] = 0, 1
	}
	sum, sq := make([]float64, c.Channels), make([]float64, c.Channels)
	count := 0
	for i, x := range clips {
		zs, err := m.Encode(x, true)
		if err != nil {
			return fmt.Errorf("speech-vae: latent statistics, clip %d: %w", i, err)
		}
		for _, z := range zs {
			for k, v := range z {
				sum[k] += float64(v)
				sq[k] += float64(v) * float64(v)
			}
			count++
		}
	}
	if count == 0 {
		return errors.New("speech-vae: latent statistics of no clips")
	}
	for k := range sum {
		mean := sum[k] / float64(count)
		m.Mean[k] = float32(mean)
		m.Std[k] = float32(math.Sqrt(math.Max(sq[k]/float64(count)-mean*mean, 1e-12)))
	}
	return nil
}

// Save writes the tokenizer checkpoint (weights, statistics, config).
func (m *Model) Save(dir string, info map[string]any) error {
	return checkpoint.Save(dir, Kind, m.Config, info, m.Store, false, vae.StatsTensors(m.Mean, m.Std))
}

// Load reads a speech tokenizer checkpoint; every mismatch with its config
// is an error naming the folder.
func Load(b compute.Backend, dir string) (*Model, error) {
	var cfg Config
	store, _, extra, err := checkpoint.Load(dir, Kind, &cfg, func() map[string]safetensors.Spec { return vae.StatsSpecs(cfg.Channels) })
	if err != nil {
		return nil, err
	}
	m, err := NewModel(b, cfg, store)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if m.Mean, m.Std, err = vae.ReadStats(dir, extra); err != nil {
		return nil, err
	}
	return m, nil
}

// Close releases the compiled graphs (not the weights). It is safe to call
// more than once; Encode, Decode and Quantize fail after it.
func (m *Model) Close() {
	for _, e := range []**model.Exec{&m.encode, &m.decode, &m.codes} {
		if *e != nil {
			(*e).Finalize()
			*e = nil
		}
	}
}
