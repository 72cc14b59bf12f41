package latentlm

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/latentlm/latentlm/lm"
)

// Progress reports one step of GenerateStream: for a LatentLM model, the
// latent just drawn for every image of the batch in progress; for a DiT
// model (which draws a whole grid at once), the finished batch.
type Progress struct {
	// Offset is the index, in the request, of the first image of the batch
	// in progress; Count is the number of images of that batch.
	Offset, Count int
	// Index is the latent just drawn, 0…Latents−1, in raster order on the
	// Grid×Grid latent grid: at Row = Index/Grid, Col = Index%Grid. A DiT
	// batch reports Index = Latents−1 once.
	Index, Row, Col int
	// Latents is the number of latents per image (Grid·Grid) and Grid the
	// side of the latent grid.
	Latents, Grid int

	g       *Generator
	labels  []int       // of the batch
	latents [][]float32 // of the batch, Index+1 latents each so far
	items   int
}

// Partial decodes the batch in progress as it stands: each image's grid
// holds the latents drawn so far and zeros (the mean latent) for the rest.
// It is valid only during the callback that received the Progress; it runs
// the tokenizer's decoder, so call it only when the images are wanted.
func (p Progress) Partial() ([]Image, error) {
	if p.g == nil || p.g.tok == nil {
		return nil, errors.New("latentlm: Progress.Partial called outside its callback")
	}
	c := p.g.channels
	full := make([][]float32, len(p.latents))
	for i, z := range p.latents {
		full[i] = make([]float32, p.items*c)
		copy(full[i], z)
	}
	dec, err := p.g.tok.Decode(full)
	if err != nil {
		return nil, fmt.Errorf("latentlm: %w", err)
	}
	imgs := make([]Image, len(dec))
	for i, px := range dec {
		imgs[i] = Image{Class: p.labels[i], Size: p.g.imageSize, Pixels: px}
	}
	return imgs, nil
}

// GenerateStream is Generate that reports its progress (Generate is
// GenerateStream without a callback): it runs the engine batch by batch, and calls onLatent after every latent drawn
// (a LatentLM model) or every batch (a DiT model). Its images are exactly
// Generate's for the same request, options and generator. It checks ctx
// before every latent, so that a cancelled request stops at the next one;
// an error of onLatent stops the generation and is returned (wrapped).
// onLatent runs with the generator locked: it must not call the
// generator's methods other than Progress.Partial.
func (g *Generator) GenerateStream(ctx context.Context, req Request, opts SampleOptions, onLatent func(Progress) error) ([]Image, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if onLatent == nil {
		onLatent = func(Progress) error { return nil }
	}
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("latentlm: %w", err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, ErrClosed
	}
	labels, err := req.labels(g.classes)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("latentlm: generation cancelled: %w", err)
	}
	s, err := g.samplerFor(opts)
	if err != nil {
		return nil, err
	}
	if err := g.store.SetRNGStateFromSeed(opts.Seed); err != nil {
		return nil, fmt.Errorf("latentlm: seeding: %w", err)
	}
	grid := g.tok.Config.Grid()
	items := g.tok.Config.Items()
	imgs := make([]Image, 0, len(labels))
	for start := 0; start < len(labels); start += g.batch {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("latentlm: generation cancelled after %d of %d images: %w", start, len(labels), err)
		}
		end := min(start+g.batch, len(labels))
		p := Progress{Offset: start, Count: end - start, Latents: items, Grid: grid, g: g, labels: labels[start:end], items: items}
		var lat [][]float32
		if ls, ok := s.(*lm.Sampler); ok {
			lat, err = g.streamBatch(ctx, ls, p, onLatent)
		} else {
			if lat, err = s.Sample(labels[start:end]); err == nil {
				p.Index, p.Row, p.Col, p.latents = items-1, grid-1, grid-1, lat
				if err = onLatent(p); err != nil {
					err = &callbackError{err}
				}
			} else {
				g.dropSampler()
			}
		}
		if err != nil {
			var ce *callbackError
			if errors.As(err, &ce) {
				return nil, fmt.Errorf("latentlm: generation stopped: %w", ce.err)
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("latentlm: generation cancelled after %d of %d images: %w", start, len(labels), ctx.Err())
			}
			return nil, fmt.Errorf("latentlm: %w", err)
		}
		dec, err := g.tok.Decode(lat)
		if err != nil {
			return nil, fmt.Errorf("latentlm: %w", err)
		}
		for i, px := range dec {
			for _, v := range px {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					return nil, fmt.Errorf("latentlm: model %s produced non-finite pixel values: its weights or the sampling options are broken", g.dir)
				}
			}
			imgs = append(imgs, Image{Class: labels[start+i], Size: g.imageSize, Pixels: px})
		}
	}
	return imgs, nil
}

// callbackError marks an error of the caller's callback.
type callbackError struct{ err error }

func (e *callbackError) Error() string { return e.err.Error() }
func (e *callbackError) Unwrap() error { return e.err }

// streamBatch draws one batch's latents on the sampler's engine as
// Sampler.Sample does (Prefill, then a fixed-length segment), reporting
// each latent. A failure of the engine drops the cached sampler, as
// Generate does.
func (g *Generator) streamBatch(ctx context.Context, s *lm.Sampler, p Progress, onLatent func(Progress) error) (out [][]float32, err error) {
	defer func() {
		if err != nil {
			if _, ok := err.(*callbackError); !ok && ctx.Err() == nil {
				g.dropSampler()
			}
		}
	}()
	sess, err := s.Prefill(p.labels)
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	return sess.Latents(lm.Segment{Max: p.items,
		BeforeLatent: func(int) ([][]float32, error) { return nil, ctx.Err() },
		AfterLatent: func(k int, sofar [][]float32) error {
			p.Index, p.Row, p.Col, p.latents = k, k/p.Grid, k%p.Grid, sofar
			if err := onLatent(p); err != nil {
				return &callbackError{err}
			}
			return nil
		}})
}
