package evaluate

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/latentlm/latentlm"
	"github.com/latentlm/latentlm/imageio"
	"github.com/latentlm/latentlm/internal/atomicfile"
	"github.com/latentlm/latentlm/internal/guard"
)

// Model says which model Generated samples and how.
type Model struct {
	// Dir is the checkpoint folder; "" for the shipped
	// weights/latentlm-<data>.
	Dir string
	// Tokenizer is the σ-VAE folder; "" for the model's own (see
	// latentlm.WithTokenizer).
	Tokenizer string
	// Backend names the compute backend of the model; "" for
	// $LATENTLM_BACKEND, else onnx (see latentlm.WithBackend).
	Backend string
	// Batch is the number of images per sampler call, capped at
	// latentlm.MaxBatch; 0 for latentlm.DefaultBatch.
	Batch int
	// Options are the sampling options (see latentlm.DefaultSampleOptions).
	Options latentlm.SampleOptions
	// SaveDir, when set, is a new folder that receives the images as
	// <class>_<index>.png, all of them or none.
	SaveDir string
}

// load opens the model through the public API.
func (m Model) load() (*latentlm.Generator, error) {
	var opts []latentlm.Option
	if m.Batch != 0 {
		opts = append(opts, latentlm.WithBatch(min(m.Batch, latentlm.MaxBatch)))
	}
	if m.Backend != "" {
		opts = append(opts, latentlm.WithBackend(m.Backend))
	}
	if m.Tokenizer != "" {
		opts = append(opts, latentlm.WithTokenizer(m.Tokenizer))
	}
	return latentlm.Load(m.Dir, opts...)
}

// Generate draws one image of g per label, in requests of at most
// latentlm.MaxImages, and returns their pixels.
func Generate(ctx context.Context, g *latentlm.Generator, labels []int, opts latentlm.SampleOptions) ([][]float32, error) {
	return GenerateStream(ctx, g, labels, opts, nil)
}

// GenerateStream is Generate that reports its progress through onLatent
// (latentlm.Generator.GenerateStream), with Offset counted from the first
// of labels across the requests; nil reports nothing.
func GenerateStream(ctx context.Context, g *latentlm.Generator, labels []int, opts latentlm.SampleOptions, onLatent func(latentlm.Progress) error) ([][]float32, error) {
	var out [][]float32
	for start := 0; start < len(labels); start += latentlm.MaxImages {
		var report func(latentlm.Progress) error
		if onLatent != nil {
			report = func(p latentlm.Progress) error {
				p.Offset += start
				return onLatent(p)
			}
		}
		imgs, err := g.GenerateStream(ctx, latentlm.Request{Classes: labels[start:min(start+latentlm.MaxImages, len(labels))]}, opts, report)
		if err != nil {
			return nil, err
		}
		for _, im := range imgs {
			out = append(out, im.Pixels)
		}
	}
	return out, nil
}

// Generated loads the model m describes, samples N() images of it, class
// i%classes for the i-th, closes it (freeing its compiled graphs and
// buffers) and scores the images as a row of source "model".
func (c *Context) Generated(ctx context.Context, m Model) (*Row, error) {
	if c.testMu == nil {
		return nil, errUnprepared
	}
	t := time.Now()
	var err error
	if m.Dir == "" {
		if m.Dir, err = latentlm.ShippedWeights("latentlm-" + c.Data); err != nil {
			return nil, err
		}
	}
	imgs, labels, err := c.sample(ctx, m)
	if err != nil {
		return nil, err
	}
	genSeconds := time.Since(t).Seconds()
	if m.SaveDir != "" {
		size := c.Classifier.Config.ImageSize
		if err := atomicfile.WriteDir(m.SaveDir, func(dir string) error {
			for i, img := range imgs {
				if err := imageio.WriteGray(filepath.Join(dir, fmt.Sprintf("%d_%05d.png", labels[i], i)), img, size, size); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	o := m.Options
	row := &Row{Source: "model", Path: m.Dir, Steps: &o.Steps, CFG: &o.CFG, Seed: &o.Seed, GenerateSeconds: genSeconds}
	if err := c.Score(row, imgs, labels); err != nil {
		return nil, err
	}
	row.Seconds = time.Since(t).Seconds()
	return row, nil
}

// sample loads m, checks it against the classifier, generates N() images
// and closes it.
func (c *Context) sample(ctx context.Context, m Model) ([][]float32, []int, error) {
	g, err := m.load()
	if err != nil {
		return nil, nil, err
	}
	defer g.Close()
	if m.SaveDir != "" {
		if err := guard.CheckOutputDir(m.SaveDir, g.Dir(), g.TokenizerDir()); err != nil {
			return nil, nil, err
		}
	}
	clf := c.Classifier.Config
	if g.Classes() != clf.Classes {
		return nil, nil, fmt.Errorf("model %s has %d classes, classifier %s %d", m.Dir, g.Classes(), c.ClassifierPath, clf.Classes)
	}
	if s := g.ImageSize(); s != clf.ImageSize {
		return nil, nil, fmt.Errorf("model %s makes %d×%d images, classifier %s takes %d×%d", m.Dir, s, s, c.ClassifierPath, clf.ImageSize, clf.ImageSize)
	}
	labels := ClassLabels(c.n, g.Classes())
	imgs, err := Generate(ctx, g, labels, m.Options)
	if err != nil {
		return nil, nil, err
	}
	return imgs, labels, nil
}
