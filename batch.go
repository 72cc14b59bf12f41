package latentlm

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/latentlm/latentlm/lm"
)

// BatchItem is one request of GenerateBatch or Decoder.Add: its images,
// the seed of their noise, its context and its progress callback.
type BatchItem struct {
	// Ctx cancels the item: its images leave the batch at the next latent
	// (Decoder.Step) and its result is ctx's error. Nil means
	// context.Background().
	Ctx     context.Context
	Request Request
	// Seed seeds the initial noise of the item's images: image i of the
	// item draws its noise from PCG(Seed, i) on the host (a LatentLM image
	// latent by latent, C values each, in raster order; a DiT grid all at
	// once, the same values), so its result does not depend on the other
	// items of the batch.
	Seed int64
	// Options, when set, are the item's own guidance scale and
	// temperature in GenerateBatch (their Steps must be the batch's; their
	// Seed is ignored); nil takes the batch's. Decoder.Add takes them as
	// an argument instead.
	Options *SampleOptions
	// OnLatent, when set, is called after every latent drawn with the
	// item's own images (Offset 0, Count its images; Partial decodes them),
	// or once with the finished grids for a DiT model. An error drops the
	// item as a cancelled context does.
	OnLatent func(Progress) error
}

// BatchResult is the outcome of one BatchItem.
type BatchResult struct {
	Images []Image
	Err    error
}

// SupportsBatch reports whether GenerateBatch can serve the generator's
// model: a LatentLM or a DiT model (every kind Load reads).
func (g *Generator) SupportsBatch() bool { return g.kind == KindLatentLM || g.kind == KindDiT }

// GenerateBatch decodes the images of every item as one batch, one row per
// image, with opts' steps and, unless an item has its own Options, opts'
// guidance scale and temperature (opts.Seed is ignored: each item has its
// own). Each row's initial noise comes from its item's seed and the
// image's index in the item (see BatchItem.Seed), and the solver adds none
// on the way for Steps ≥ 1, so an item's images are the same whether it is
// decoded alone or with others, byte for byte on a backend whose kernels
// compute each row independently of the batch size (they are not
// Generate's images for the same seed, which come from the store's
// generator). Steps 0 (DDPM, which draws noise at every step) is refused.
// The batch may hold at most MaxBatch rows.
//
// A LatentLM batch runs on a Decoder (continuous batching) with every item
// admitted at once, so its images are those the items get from a Decoder,
// whenever they join one. A DiT batch draws every grid in one solver run
// (SampleRows), padded to one of a few sizes (padding rows whose results
// are dropped) so that its graphs are compiled once per size: a DiT
// denoises a whole image at every step, so the natural point for requests
// to join is between batches. The tokenizer decodes each item's images on
// their own.
func (g *Generator) GenerateBatch(opts SampleOptions, items []BatchItem) []BatchResult {
	res := make([]BatchResult, len(items))
	fail := func(err error) []BatchResult {
		for i := range res {
			if res[i].Err == nil && res[i].Images == nil {
				res[i].Err = err
			}
		}
		return res
	}
	if err := opts.Validate(); err != nil {
		return fail(fmt.Errorf("latentlm: %w", err))
	}
	if opts.Steps < 1 {
		return fail(errors.New("latentlm: GenerateBatch needs Steps ≥ 1 (DPM-Solver++): DDPM draws noise at every step"))
	}
	if !g.SupportsBatch() {
		return fail(fmt.Errorf("latentlm: GenerateBatch serves LatentLM and DiT models, not %s", g.kind))
	}
	// Each item's options, and the rows of the batch.
	itemOpts := make([]SampleOptions, len(items))
	rows := 0
	for i, it := range items {
		itemOpts[i] = opts
		if it.Options != nil {
			o := *it.Options
			o.Seed = opts.Seed
			if err := o.Validate(); err != nil {
				res[i].Err = fmt.Errorf("latentlm: item %d: %w", i, err)
				continue
			}
			if o.Steps != opts.Steps {
				res[i].Err = fmt.Errorf("latentlm: item %d: steps %d in a batch of %d", i, o.Steps, opts.Steps)
				continue
			}
			itemOpts[i] = o
		}
		if l, err := it.Request.labels(g.classes); err == nil {
			rows += len(l)
		}
	}
	if rows > MaxBatch {
		return fail(fmt.Errorf("latentlm: batch of %d images, at most %d", rows, MaxBatch))
	}
	if g.kind == KindDiT {
		return g.ditBatch(opts.Steps, itemOpts, items, res)
	}
	d, err := g.NewDecoder(opts.Steps, MaxBatch)
	if err != nil {
		return fail(err)
	}
	defer d.Close()
	index := map[int]int{} // decoder id → item
	for i, it := range items {
		if res[i].Err != nil {
			continue
		}
		id, err := d.Add(it, itemOpts[i])
		if err != nil {
			res[i].Err = err
			continue
		}
		index[id] = i
	}
	for d.Len() > 0 {
		fin, err := d.Step()
		for _, f := range fin {
			res[index[f.ID]] = f.BatchResult
		}
		if err != nil {
			return fail(err)
		}
	}
	return res
}

// ditBatch is GenerateBatch for a DiT model: one SampleRows call for the
// valid, live items (res holds the others' errors already).
func (g *Generator) ditBatch(steps int, opts []SampleOptions, items []BatchItem, res []BatchResult) []BatchResult {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		for i := range res {
			if res[i].Err == nil {
				res[i].Err = ErrClosed
			}
		}
		return res
	}
	per := g.tok.Config.Items() * g.channels
	var labels []int
	var noise [][]float32
	var scale, temp []float64
	itemLabels := make([][]int, len(items))
	first := make([]int, len(items))
	for i, it := range items {
		if res[i].Err != nil {
			continue
		}
		ctx := it.Ctx
		if ctx == nil {
			ctx = context.Background()
		}
		if err := ctx.Err(); err != nil {
			res[i].Err = fmt.Errorf("latentlm: generation cancelled: %w", err)
			continue
		}
		l, err := it.Request.labels(g.classes)
		if err != nil {
			res[i].Err = err
			continue
		}
		itemLabels[i], first[i] = l, len(labels)
		for k, c := range l {
			rng := rand.New(rand.NewPCG(uint64(it.Seed), uint64(k)))
			z := make([]float32, per)
			for j := range z {
				z[j] = float32(rng.NormFloat64())
			}
			labels, noise = append(labels, c), append(noise, z)
			scale, temp = append(scale, opts[i].CFG), append(temp, opts[i].Temperature)
		}
	}
	if len(labels) == 0 {
		return res
	}
	// Padding rows (class 0, zero noise, results dropped) round the batch
	// up to a few sizes, so that batches of varying size do not each
	// compile their own graphs; rows do not depend on one another.
	nrows := len(labels)
	for range lm.PadSlots(nrows) - nrows { // ≤ MaxBatch, a multiple of 64
		labels, noise = append(labels, 0), append(noise, make([]float32, per))
		scale, temp = append(scale, 1), append(temp, 1)
	}
	s, own, err := g.acquireRows(steps)
	if err != nil {
		for i := range res {
			if itemLabels[i] != nil {
				res[i].Err = err
			}
		}
		return res
	}
	ds, ok := s.(rowSampler)
	var out [][]float32
	if !ok {
		err = fmt.Errorf("latentlm: the %s sampler does not batch rows", g.kind)
	} else {
		out, err = ds.SampleRows(labels, noise, scale, temp)
	}
	g.releaseRows(s, own, err != nil)
	grid, nItems := g.tok.Config.Grid(), g.tok.Config.Items()
	for i, it := range items {
		l := itemLabels[i]
		if l == nil {
			continue
		}
		if err != nil {
			res[i].Err = fmt.Errorf("latentlm: %w", err)
			continue
		}
		if it.Ctx != nil && it.Ctx.Err() != nil {
			res[i].Err = fmt.Errorf("latentlm: generation cancelled: %w", it.Ctx.Err())
			continue
		}
		lat := out[first[i] : first[i]+len(l)]
		if it.OnLatent != nil {
			p := Progress{Count: len(l), Index: nItems - 1, Row: grid - 1, Col: grid - 1, Latents: nItems, Grid: grid,
				g: g, labels: l, latents: lat, items: nItems}
			if err := it.OnLatent(p); err != nil {
				res[i].Err = fmt.Errorf("latentlm: generation stopped: %w", err)
				continue
			}
		}
		res[i].Images, res[i].Err = g.decodeImages(l, lat)
	}
	return res
}

// rowSampler is a sampler that draws a batch of grids from noise, guidance
// scales and temperatures per row (dit.Sampler.SampleRows).
type rowSampler interface {
	SampleRows(labels []int, noise [][]float32, scale, temperature []float64) ([][]float32, error)
}
