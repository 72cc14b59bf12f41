package latentlm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/backend"
	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/dit"
	"github.com/latentlm/latentlm/internal/deps"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/vae"
)

// Model kinds, as Generator.Kind reports them.
const (
	KindLatentLM = lm.Kind  // "latentlm": the autoregressive model of the paper
	KindDiT      = dit.Kind // "dit": the Diffusion Transformer baseline
)

// ErrClosed is returned by Generate after Close.
var ErrClosed = errors.New("latentlm: generator is closed")

// ShippedWeights returns the folder of the weights shipped with the
// repository under weights/<name>, for example "latentlm-mnist",
// "latentlm-fashion" or "vae-mnist". The repository is found as `make setup`
// left it: $LATENTLM_DEPS names its .deps folder, else the nearest .deps
// walking up from the working directory, then from the executable.
func ShippedWeights(name string) (string, error) {
	if name == "" || name != filepath.Base(name) || name == "." || name == ".." {
		return "", fmt.Errorf("latentlm: shipped weights name %q: want a plain name such as latentlm-mnist", name)
	}
	p, err := deps.Weights(name)
	if err != nil {
		return "", fmt.Errorf("latentlm: %w", err)
	}
	if _, err := os.Stat(filepath.Join(p, checkpoint.ConfigFile)); err != nil {
		return "", fmt.Errorf("latentlm: shipped weights %s hold no checkpoint: %w", p, err)
	}
	return p, nil
}

// sampler generates one latent grid per class label.
type sampler interface {
	Sample(labels []int) ([][]float32, error)
	Close()
}

// samplerKey is what a compiled sampler depends on; the seed is not part of
// it, since Generate re-seeds the random state at every call.
type samplerKey struct {
	steps            int
	cfg, temperature float64
}

// Generator is a loaded model and its tokenizer, ready to generate images.
//
// Its methods are safe for concurrent use; Generate calls run one at a
// time. Close it when done: it holds compiled graphs and weights in memory
// the garbage collector does not see.
type Generator struct {
	dir, tokDir string
	kind        string
	backendName string
	classes     int
	imageSize   int
	channels    int
	maxItems    int
	params      int
	batch       int

	mu      sync.Mutex
	closed  bool
	backend compute.Backend
	store   *model.Store
	tok     *vae.Model
	// newSampler compiles a sampler for the tokenizer's latent grid.
	newSampler func(opts lm.SampleOptions) (sampler, error)
	// samplerBytes estimates the memory of sampling batch images at once.
	samplerBytes func(batch int) float64
	// The sampler of the latest options, kept so that repeated calls do not
	// recompile; replaced (and closed) when the options change.
	cached    sampler
	cachedKey samplerKey
	// rows is the sampler of per-row batching (Decoder, GenerateBatch),
	// keyed by its solver steps alone: its graphs take the guidance scale,
	// temperature and noise of each row as inputs. rowUsers counts the
	// decoders and batches using it (it is replaced only when none does),
	// rowBroken marks it for replacement after a failed step.
	rows      sampler
	rowSteps  int
	rowUsers  int
	rowBroken bool
	// decoders are the open Decoders, whose tensors Close frees before
	// the backend goes.
	decoders map[*Decoder]struct{}
}

// Load reads the model checkpoint in dir — a LatentLM or a DiT model, told
// apart by the "kind" of its config.json — and the tokenizer it was trained
// with, and opens the compute backend. See WithBackend, WithTokenizer and
// WithBatch for the options. ShippedWeights finds the shipped models.
func Load(dir string, opts ...Option) (g *Generator, err error) {
	cfg := loadConfig{batch: DefaultBatch}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if len(cfg.errs) > 0 {
		return nil, fmt.Errorf("latentlm: %w", errors.Join(cfg.errs...))
	}
	if dir == "" {
		return nil, errors.New("latentlm: Load: empty model folder (ShippedWeights(\"latentlm-mnist\") finds the shipped one)")
	}
	gen := &Generator{dir: dir, batch: cfg.batch, backendName: backend.Resolve(cfg.backend)}
	defer func() {
		if err != nil {
			gen.release() // whatever was allocated before the failure
		}
	}()
	g = gen
	// Everything that only reads files comes first, so that a bad folder
	// fails before a backend is opened.
	tokRec, err := g.readModel(dir)
	if err != nil {
		return nil, err
	}
	if g.tokDir, err = tokRec.Find(dir, cfg.tokenizer); err != nil {
		return nil, fmt.Errorf("latentlm: %w", err)
	}
	if g.backend, err = backend.Open(g.backendName); err != nil {
		return nil, fmt.Errorf("latentlm: %w", err)
	}
	if g.tok, err = vae.Load(g.backend, g.tokDir); err != nil {
		return nil, fmt.Errorf("latentlm: tokenizer: %w", err)
	}
	tc := g.tok.Config
	if tc.Channels != g.channels || tc.Items() > g.maxItems {
		return nil, fmt.Errorf("latentlm: tokenizer %s (%d channels, %d items) does not fit model %s (%d channels, at most %d items)",
			g.tokDir, tc.Channels, tc.Items(), dir, g.channels, g.maxItems)
	}
	g.imageSize = tc.ImageSize
	return g, nil
}

// readModel reads the checkpoint of either kind into g and returns the
// tokenizer record it was saved with.
func (g *Generator) readModel(dir string) (lm.Tokenizer, error) {
	kind, err := checkpoint.ReadKind(dir)
	if err != nil {
		return lm.Tokenizer{}, fmt.Errorf("latentlm: %w", err)
	}
	switch kind {
	case lm.Kind:
		cfg, store, tok, err := lm.Load(dir)
		if err != nil {
			return tok, fmt.Errorf("latentlm: %w", err)
		}
		g.kind, g.store = lm.Kind, store
		g.classes, g.channels, g.maxItems = cfg.Vocab.Classes, cfg.Latent, cfg.MaxLen-cfg.Layout.Overhead()
		g.params = nn.CountParams(cfg.Specs())
		g.samplerBytes = func(batch int) float64 {
			return nn.MemoryEstimate(cfg.Specs(), cfg.Activations(batch, cfg.MaxLen, 1, false), false)
		}
		g.newSampler = func(opts lm.SampleOptions) (sampler, error) {
			return lm.NewSampler(g.backend, store, cfg, g.tok.Config.Items(), opts)
		}
		return tok, nil
	case dit.Kind:
		cfg, store, tok, err := dit.Load(dir)
		if err != nil {
			return tok, fmt.Errorf("latentlm: %w", err)
		}
		g.kind, g.store = dit.Kind, store
		g.classes, g.channels, g.maxItems = cfg.Classes, cfg.Latent, cfg.Items()
		g.params = nn.CountParams(cfg.Specs())
		g.samplerBytes = func(batch int) float64 {
			return nn.MemoryEstimate(cfg.Specs(), cfg.Activations(batch, false), false)
		}
		g.newSampler = func(opts lm.SampleOptions) (sampler, error) {
			if items := g.tok.Config.Items(); items != cfg.Items() {
				return nil, fmt.Errorf("DiT %s makes grids of %d items, not %d", dir, cfg.Items(), items)
			}
			return dit.NewSampler(g.backend, store, cfg, opts)
		}
		return tok, nil
	}
	return lm.Tokenizer{}, fmt.Errorf("latentlm: %s: checkpoint holds a %q model, want %q or %q", dir, kind, lm.Kind, dit.Kind)
}

// MemoryEstimate is a generous estimate, in bytes, of the memory that
// generating n images takes: the sampler at the batch size of WithBatch and
// the n images. Compare it with the memory you can spare before a large
// Generate (the command line refuses work over its --max-memory this way).
func (g *Generator) MemoryEstimate(n int) float64 {
	px := float64(g.imageSize * g.imageSize)
	return g.samplerBytes(max(1, min(g.batch, n))) + float64(n)*px*4*8
}

// Kind is the model's architecture: KindLatentLM or KindDiT.
func (g *Generator) Kind() string { return g.kind }

// Classes is the number of classes the model draws, labelled 0…Classes()−1.
func (g *Generator) Classes() int { return g.classes }

// ImageSize is the side of the square images Generate returns, in pixels.
func (g *Generator) ImageSize() int { return g.imageSize }

// Params is the number of weights of the model (the tokenizer's excluded).
func (g *Generator) Params() int { return g.params }

// Backend is the name of the compute backend the generator runs on.
func (g *Generator) Backend() string { return g.backendName }

// Dir is the model folder Load read.
func (g *Generator) Dir() string { return g.dir }

// TokenizerDir is the folder of the tokenizer that decodes the latents.
func (g *Generator) TokenizerDir() string { return g.tokDir }

// Generate draws the images req asks for, in order, in batches of the
// WithBatch size. It checks ctx between batches and returns ctx's error
// (wrapped) when it is done. Invalid requests and options are errors that
// name the offending field. The result depends only on the request, the
// options (seed included), the batch size and the backend, not on earlier
// calls.
func (g *Generator) Generate(ctx context.Context, req Request, opts SampleOptions) ([]Image, error) {
	return g.GenerateStream(ctx, req, opts, nil)
}

// samplerFor returns the compiled sampler for opts, reusing the cached one
// when the options that shape its graphs are unchanged.
func (g *Generator) samplerFor(opts SampleOptions) (sampler, error) {
	key := samplerKey{steps: opts.Steps, cfg: opts.CFG, temperature: opts.Temperature}
	if g.cached != nil && g.cachedKey == key {
		return g.cached, nil
	}
	g.dropSampler()
	s, err := g.newSampler(opts)
	if err != nil {
		return nil, fmt.Errorf("latentlm: preparing the sampler: %w", err)
	}
	g.cached, g.cachedKey = s, key
	return s, nil
}

// dropSampler closes the cached sampler, if any.
func (g *Generator) dropSampler() {
	if g.cached != nil {
		g.cached.Close()
		g.cached = nil
	}
}

// Close releases everything the generator holds: the compiled sampler and
// decoder graphs, the weights of the model and the tokenizer, and the
// backend. It is safe to call more than once; Generate fails with ErrClosed
// afterwards, while Kind, Classes, ImageSize and Params keep working.
func (g *Generator) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	g.closed = true
	g.release()
	return nil
}

// release frees what is allocated, in dependency order.
func (g *Generator) release() {
	for d := range g.decoders {
		d.free()
	}
	g.decoders = nil
	if g.rows != nil {
		g.rows.Close()
		g.rows = nil
	}
	g.dropSampler()
	if g.tok != nil {
		g.tok.Close()
		g.tok.Store.Finalize()
		g.tok = nil
	}
	if g.store != nil {
		g.store.Finalize()
		g.store = nil
	}
	if g.backend != nil {
		g.backend.Finalize()
		g.backend = nil
	}
}
