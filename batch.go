package latentlm

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/latentlm/latentlm/lm"
)

// padRows is the number of rows a batch of n rows runs as: n up to 4, then
// the next power of two up to 64, then the next multiple of 64.
func padRows(n int) int {
	switch {
	case n <= 4:
		return n
	case n <= 64:
		p := 8
		for p < n {
			p *= 2
		}
		return p
	}
	return min((n+63)/64*64, MaxBatch)
}

// BatchItem is one request of GenerateBatch: its images, the seed of their
// noise, its context and its progress callback.
type BatchItem struct {
	// Ctx cancels the item: its rows stop being reported and its result is
	// ctx's error, but they stay in the batch until it ends. Nil means
	// context.Background().
	Ctx     context.Context
	Request Request
	// Seed seeds the initial noise of the item's images: image i of the
	// item draws its noise from PCG(Seed, i) on the host, so its result
	// does not depend on the other items of the batch.
	Seed int64
	// OnLatent, when set, is called after every latent drawn with the
	// item's own images (Offset 0, Count its images; Partial decodes them).
	// An error drops the item as a cancelled context does.
	OnLatent func(Progress) error
}

// BatchResult is the outcome of one BatchItem.
type BatchResult struct {
	Images []Image
	Err    error
}

// SupportsBatch reports whether GenerateBatch can serve the generator's
// model: a LatentLM model (a DiT model draws its grid at once from the
// store's generator).
func (g *Generator) SupportsBatch() bool { return g.kind == KindLatentLM }

// errAllGone stops a batch whose items were all cancelled.
var errAllGone = errors.New("latentlm: every item of the batch is gone")

// GenerateBatch decodes the images of every item as one batch, one row per
// image, with opts' steps, guidance scale and temperature (opts.Seed is
// ignored: each item has its own). Each row's initial noise comes from its
// item's seed and the image's index in the item (see BatchItem.Seed), and
// the solver adds none on the way for Steps ≥ 1, so an item's images are
// the same whether it is decoded alone or with others, byte for byte on a
// backend whose kernels compute each row independently of the batch size
// (they are not Generate's images for the same seed, which come from the
// store's generator). Steps 0 (DDPM, which draws noise at every step) is
// refused. The batch may hold at most MaxBatch rows, and runs rounded up
// to one of a few sizes (padding rows whose results are dropped) so that
// its graphs are compiled once per size; the tokenizer decodes each item's
// images on their own.
func (g *Generator) GenerateBatch(opts SampleOptions, items []BatchItem) []BatchResult {
	res := make([]BatchResult, len(items))
	fail := func(err error) []BatchResult {
		for i := range res {
			if res[i].Err == nil {
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
		return fail(fmt.Errorf("latentlm: GenerateBatch serves LatentLM models, not %s", g.kind))
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return fail(ErrClosed)
	}
	// Rows of the batch: item and image index of each.
	type row struct{ item, index int }
	var rows []row
	var labels []int
	itemLabels := make([][]int, len(items))
	live := make([]bool, len(items))
	for i, it := range items {
		if it.Ctx == nil {
			items[i].Ctx = context.Background()
		}
		l, err := it.Request.labels(g.classes)
		if err != nil {
			res[i].Err = err
			continue
		}
		itemLabels[i], live[i] = l, true
		for k, c := range l {
			rows = append(rows, row{i, k})
			labels = append(labels, c)
		}
	}
	if len(rows) == 0 {
		return res
	}
	if len(rows) > MaxBatch {
		return fail(fmt.Errorf("latentlm: batch of %d images, at most %d", len(rows), MaxBatch))
	}
	s, err := g.samplerFor(opts)
	if err != nil {
		return fail(err)
	}
	ls, ok := s.(*lm.Sampler)
	if !ok {
		return fail(fmt.Errorf("latentlm: GenerateBatch serves LatentLM models, not %s", g.kind))
	}
	// Padding rows (class 0, zero noise, results dropped) round the batch
	// up to a few sizes, so that batches of varying size do not each
	// compile their own graphs; rows do not depend on one another.
	nrows := len(rows)
	for range padRows(nrows) - nrows {
		labels = append(labels, 0)
	}
	rngs := make([]*rand.Rand, len(rows))
	for r, rw := range rows {
		rngs[r] = rand.New(rand.NewPCG(uint64(items[rw.item].Seed), uint64(rw.index)))
	}
	grid := g.tok.Config.Grid()
	nItems := g.tok.Config.Items()
	c := g.channels
	sess, err := ls.Prefill(labels)
	if err != nil {
		g.dropSampler()
		return fail(fmt.Errorf("latentlm: %w", err))
	}
	defer sess.Close()
	// drop ends an item's part in the batch.
	drop := func(i int, err error) {
		if live[i] {
			live[i] = false
			res[i].Err = err
		}
	}
	anyLive := func() bool {
		for i := range live {
			if live[i] {
				return true
			}
		}
		return false
	}
	first := make([]int, len(items)) // the item's first row
	for r := len(rows) - 1; r >= 0; r-- {
		first[rows[r].item] = r
	}
	out, err := sess.Latents(lm.Segment{Max: nItems,
		// Before each latent: drop cancelled items, stop once none is
		// left, and draw every row's noise from its own item's generator.
		BeforeLatent: func(int) ([][]float32, error) {
			for i, it := range items {
				if live[i] && it.Ctx.Err() != nil {
					drop(i, fmt.Errorf("latentlm: generation cancelled: %w", it.Ctx.Err()))
				}
			}
			if !anyLive() {
				return nil, errAllGone
			}
			noise := make([][]float32, len(labels))
			for r := range noise {
				noise[r] = make([]float32, c)
				if r >= nrows {
					continue
				}
				for j := range noise[r] {
					noise[r][j] = float32(rngs[r].NormFloat64())
				}
			}
			return noise, nil
		},
		// After each latent: report each live item's own rows.
		AfterLatent: func(k int, sofar [][]float32) error {
			for i, it := range items {
				if !live[i] || it.OnLatent == nil {
					continue
				}
				n := len(itemLabels[i])
				p := Progress{Offset: 0, Count: n, Index: k, Row: k / grid, Col: k % grid, Latents: nItems, Grid: grid,
					g: g, labels: itemLabels[i], latents: sofar[first[i] : first[i]+n], items: nItems}
				if err := it.OnLatent(p); err != nil {
					drop(i, fmt.Errorf("latentlm: generation stopped: %w", err))
				}
			}
			return nil
		}})
	if errors.Is(err, errAllGone) {
		return res
	}
	if err != nil {
		g.dropSampler()
		return fail(fmt.Errorf("latentlm: %w", err))
	}
	for i := range items {
		if !live[i] {
			continue
		}
		n := len(itemLabels[i])
		dec, err := g.tok.Decode(out[first[i] : first[i]+n])
		if err != nil {
			res[i].Err = fmt.Errorf("latentlm: %w", err)
			continue
		}
		imgs := make([]Image, 0, n)
		for j, px := range dec {
			for _, v := range px {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					err = fmt.Errorf("latentlm: model %s produced non-finite pixel values: its weights or the sampling options are broken", g.dir)
					break
				}
			}
			imgs = append(imgs, Image{Class: itemLabels[i][j], Size: g.imageSize, Pixels: px})
		}
		if err != nil {
			res[i].Err = err
			continue
		}
		res[i].Images = imgs
	}
	return res
}
