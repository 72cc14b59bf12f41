package latentlm

import (
	"fmt"

	"github.com/latentlm/latentlm/lm"
)

// Option configures Load.
type Option func(*loadConfig)

// loadConfig is what the options of Load set.
type loadConfig struct {
	backend   string
	tokenizer string
	batch     int
	errs      []error
}

// DefaultBatch is the number of images one sampler call generates unless
// WithBatch says otherwise.
const DefaultBatch = 64

// MaxBatch bounds WithBatch: a batch is sampled as one graph holding two
// streams (conditional and unconditional) per image.
const MaxBatch = 1024

// WithBackend selects the compute backend by name: "onnx" (ONNX Runtime on
// the CPU, the default), "go" (GoMLX's pure-Go backend) or "xla" (XLA
// through a PJRT plugin, for GPUs; only in binaries built with XLA support).
// A ":options" suffix is passed to the backend, as in "xla:cuda". Without
// this option the backend is $LATENTLM_BACKEND, else onnx.
func WithBackend(name string) Option {
	return func(c *loadConfig) {
		if name == "" {
			c.errs = append(c.errs, fmt.Errorf("WithBackend: empty backend name"))
		}
		c.backend = name
	}
}

// WithTokenizer selects the folder of the image tokenizer (the σ-VAE whose
// latents the model generates). Without this option the tokenizer is the one
// recorded in the model's config.json, or the shipped tokenizer of that name
// when the recorded path does not exist. Either way the tokenizer must be the
// very one the model was trained with: its weights' SHA-256 must match the
// model's record, and its latent channels and grid must fit the model. A
// model that records no tokenizer (imported from the public PyTorch weights,
// docs/WEIGHTS.md) needs this option, and takes any tokenizer that fits.
func WithTokenizer(dir string) Option {
	return func(c *loadConfig) {
		if dir == "" {
			c.errs = append(c.errs, fmt.Errorf("WithTokenizer: empty folder"))
		}
		c.tokenizer = dir
	}
}

// WithBatch sets how many images one sampler call generates, 1…MaxBatch
// (default DefaultBatch). Larger batches are faster per image but use more
// memory. Note that the random draws depend on the batch layout, so the
// images of a seed depend on the batch size too.
func WithBatch(n int) Option {
	return func(c *loadConfig) {
		if n < 1 || n > MaxBatch {
			c.errs = append(c.errs, fmt.Errorf("WithBatch(%d): want 1…%d images", n, MaxBatch))
		}
		c.batch = n
	}
}

// MaxSteps is the largest SampleOptions.Steps: the diffusion schedule has
// 1000 timesteps.
const MaxSteps = lm.MaxSteps

// SampleOptions controls generation (lm.SampleOptions: one type for the
// library, the command line and the samplers). Start from
// DefaultSampleOptions: the zero value is invalid.
type SampleOptions = lm.SampleOptions

// DefaultSampleOptions returns the settings of the paper's demo: 20
// DPM-Solver++ steps, guidance scale 4, temperature 1, seed 1.
func DefaultSampleOptions() SampleOptions { return lm.DefaultSampleOptions() }

// MaxImages bounds the number of images of one Request (the size of the
// MNIST test set, what evaluation generates).
const MaxImages = 10000

// Request says which images to generate: either N images of class Class,
// or, when Classes is not empty, one image per entry of Classes (then N must
// be 0 or len(Classes), and Class 0). Classes are 0…Generator.Classes()−1.
type Request struct {
	Class   int
	N       int
	Classes []int
}

// labels expands r into one class per image, checking it against a model
// of the given number of classes.
func (r Request) labels(classes int) ([]int, error) {
	if len(r.Classes) > 0 {
		if r.N != 0 && r.N != len(r.Classes) {
			return nil, fmt.Errorf("latentlm: Request.N %d disagrees with the %d entries of Request.Classes (leave N 0)", r.N, len(r.Classes))
		}
		if r.Class != 0 {
			return nil, fmt.Errorf("latentlm: Request.Class %d set together with Request.Classes: use one or the other", r.Class)
		}
		if len(r.Classes) > MaxImages {
			return nil, fmt.Errorf("latentlm: Request.Classes has %d entries, at most %d images per request", len(r.Classes), MaxImages)
		}
		for i, c := range r.Classes {
			if c < 0 || c >= classes {
				return nil, fmt.Errorf("latentlm: Request.Classes[%d] = %d out of range 0…%d", i, c, classes-1)
			}
		}
		return append([]int(nil), r.Classes...), nil
	}
	if r.N < 1 || r.N > MaxImages {
		return nil, fmt.Errorf("latentlm: Request.N %d out of range 1…%d", r.N, MaxImages)
	}
	if r.Class < 0 || r.Class >= classes {
		return nil, fmt.Errorf("latentlm: Request.Class %d out of range 0…%d", r.Class, classes-1)
	}
	labels := make([]int, r.N)
	for i := range labels {
		labels[i] = r.Class
	}
	return labels, nil
}
