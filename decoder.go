package latentlm

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/latentlm/latentlm/lm"
)

// Decoder decodes class-conditional images continuously (continuous
// batching): items join a running decode at any latent boundary and leave
// as soon as their images are done, each with its own position in the
// sequence, guidance scale, temperature and seed, so that a request
// arriving while others are mid-image does not wait for them to finish.
//
// An image is a fixed-length sequence, its class prefix and then its
// latents in raster order. Every Step appends one item to every image in
// the decode: the next item of its prefix, or the latent it drew last; then
// every image past its prefix draws its next latent. Each image sits in a
// slot of an lm.Rows batch, whose KV cache, rotary positions and causal
// mask are per slot, and draws the noise of latent k from its own stream,
// PCG(item seed, image index), as the k-th C values of that stream. With
// DPM-Solver++ (which adds no noise after the initial draw) an image's
// latents then depend on its class, seed, index, guidance scale and
// temperature alone: an item gets byte for byte the images it gets
// decoded alone, whenever it joins and whatever else runs, on a backend
// whose kernels compute each row independently of the batch size (ONNX
// Runtime on the CPU does; GenerateBatch rests on this too). They are not
// Generate's images for the same seed, which come from the store's
// generator, and they may differ from those of earlier versions, which
// stepped the class prefix in as one block, by float32 rounding.
//
// The slots are the padded sizes of GenerateBatch (1–4, 8, 16, 32, 64, then
// multiples of 64), grown when items join and shrunk once the batch has
// run larger than its images need for a few steps, so that few shapes are
// compiled and a lone request runs at the size of one.
//
// A Decoder serves LatentLM models (a DiT draws a whole grid at once:
// GenerateBatch batches those at batch boundaries). It is not safe for
// concurrent use; each call holds the generator for its duration, so other
// calls of the generator run between steps. Close it when done.
type Decoder struct {
	g       *Generator
	steps   int
	maxRows int
	s       *lm.Sampler
	own     bool // s is the decoder's own: the generator's serves other steps
	rows    *lm.Rows
	slots   []*decRow  // per slot: the image it holds, nil when free
	items   []*decItem // admitted, in order; placed at the next Step
	nextID  int
	used    int // images of the items
	small   int // consecutive steps the batch ran larger than it needed
	err     error
}

// decRow is one image of an item in a slot.
type decRow struct {
	item  *decItem
	index int
}

// decItem is one item in a Decoder.
type decItem struct {
	id               int
	it               BatchItem
	labels           []int
	prefix, guide    [][]lm.Item // per image
	cfg, temperature float64
	rngs             []*rand.Rand
	latents          [][]float32 // per image, the latents so far
	fed              int         // prefix items stepped in (all images together)
	drawn            int         // latents drawn
	placed           bool
}

// Finished is an item that a Decoder step ended: its images, or the error
// that stopped it (a cancelled context, a failed callback).
type Finished struct {
	ID int // Decoder.Add's
	BatchResult
}

// shrinkAfter is the number of consecutive steps a Decoder's batch runs
// larger than its images need before it shrinks: the clients of finished
// requests often send their next at once, and a resize copies the caches.
const shrinkAfter = 8

// SupportsDecoder reports whether NewDecoder serves the generator's model:
// a LatentLM model, whose images are sequences that can join a running
// decode.
func (g *Generator) SupportsDecoder() bool { return g.kind == KindLatentLM }

// NewDecoder starts an empty continuous decode with the DPM-Solver++ plan
// of steps (1…MaxSteps) for at most maxRows images at once (1…MaxBatch).
func (g *Generator) NewDecoder(steps, maxRows int) (*Decoder, error) {
	if steps < 1 || steps > MaxSteps {
		return nil, fmt.Errorf("latentlm: NewDecoder: steps %d out of range 1…%d (DDPM, steps 0, draws noise at every step)", steps, MaxSteps)
	}
	if maxRows < 1 || maxRows > MaxBatch {
		return nil, fmt.Errorf("latentlm: NewDecoder: %d rows, want 1…%d", maxRows, MaxBatch)
	}
	if !g.SupportsDecoder() {
		return nil, fmt.Errorf("latentlm: NewDecoder serves LatentLM models, not %s (GenerateBatch batches those)", g.kind)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, ErrClosed
	}
	s, own, err := g.acquireRows(steps)
	if err != nil {
		return nil, err
	}
	d := &Decoder{g: g, steps: steps, maxRows: maxRows, s: s.(*lm.Sampler), own: own}
	if g.decoders == nil {
		g.decoders = map[*Decoder]struct{}{}
	}
	g.decoders[d] = struct{}{}
	return d, nil
}

// acquireRows returns the generator's per-row sampler for steps, making it
// when there is none or it serves other steps and nobody uses it; when a
// decoder of other steps holds it, a sampler of the caller's own (own).
func (g *Generator) acquireRows(steps int) (s sampler, own bool, err error) {
	if g.rows != nil && g.rowUsers == 0 && (g.rowSteps != steps || g.rowBroken) {
		g.rows.Close()
		g.rows = nil
	}
	if g.rows != nil && g.rowSteps == steps && !g.rowBroken {
		g.rowUsers++
		return g.rows, false, nil
	}
	// The graphs take scale and temperature per row: these are only the
	// values the sampler is built with.
	s, err = g.newSampler(SampleOptions{Steps: steps, CFG: 1, Temperature: 1, Seed: 1})
	if err != nil {
		return nil, false, fmt.Errorf("latentlm: preparing the sampler: %w", err)
	}
	if g.rows == nil {
		g.rows, g.rowSteps, g.rowUsers, g.rowBroken = s, steps, 1, false
		return s, false, nil
	}
	return s, true, nil
}

// releaseRows hands back a sampler of acquireRows; broken marks the
// generator's for replacement.
func (g *Generator) releaseRows(s sampler, own, broken bool) {
	if own {
		s.Close()
		return
	}
	if s == g.rows {
		g.rowUsers--
		g.rowBroken = g.rowBroken || broken
	}
}

// Steps is the decoder's solver steps.
func (d *Decoder) Steps() int { return d.steps }

// Len is the number of items in the decode, admitted and not finished.
func (d *Decoder) Len() int { return len(d.items) }

// Rows is the number of images in the decode.
func (d *Decoder) Rows() int { return d.used }

// Free is the number of images that may still join (Add).
func (d *Decoder) Free() int { return max(0, d.maxRows-d.used) }

// Slots is the size the batch runs at (Rows padded, as in GenerateBatch).
func (d *Decoder) Slots() int { return len(d.slots) }

// Add admits an item: its images join the decode at the next Step, each
// at position 0, with opts' guidance scale and temperature (opts.Steps must
// be the decoder's; opts.Seed is ignored: it.Seed seeds the item, see
// BatchItem). It returns the item's id, which Step's Finished carries. An
// invalid item, or one of more images than Free (unless the decode is
// empty: then up to MaxBatch), is an error, and nothing is admitted.
func (d *Decoder) Add(it BatchItem, opts SampleOptions) (int, error) {
	g := d.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := d.usable(); err != nil {
		return 0, err
	}
	if err := opts.Validate(); err != nil {
		return 0, fmt.Errorf("latentlm: %w", err)
	}
	if opts.Steps != d.steps {
		return 0, fmt.Errorf("latentlm: Decoder.Add: steps %d, the decoder runs %d", opts.Steps, d.steps)
	}
	labels, err := it.Request.labels(g.classes)
	if err != nil {
		return 0, err
	}
	n := len(labels)
	if d.used > 0 && n > d.Free() {
		return 0, fmt.Errorf("latentlm: Decoder.Add: %d images, %d free of %d", n, d.Free(), d.maxRows)
	}
	if n > MaxBatch {
		return 0, fmt.Errorf("latentlm: batch of %d images, at most %d", n, MaxBatch)
	}
	if it.Ctx == nil {
		it.Ctx = context.Background()
	}
	x := &decItem{id: d.nextID, it: it, labels: labels, cfg: opts.CFG, temperature: opts.Temperature,
		prefix: make([][]lm.Item, n), guide: make([][]lm.Item, n), rngs: make([]*rand.Rand, n), latents: make([][]float32, n)}
	cfg := d.s.Engine().Config()
	for k, l := range labels {
		if x.prefix[k], x.guide[k], err = cfg.ClassPrefix(l); err != nil {
			return 0, fmt.Errorf("latentlm: %w", err)
		}
		x.rngs[k] = rand.New(rand.NewPCG(uint64(it.Seed), uint64(k)))
		x.latents[k] = make([]float32, 0, g.tok.Config.Items()*g.channels)
	}
	d.nextID++
	d.items = append(d.items, x)
	d.used += n
	return x.id, nil
}

// usable reports why the decoder cannot go on.
func (d *Decoder) usable() error {
	switch {
	case d.g.closed:
		return ErrClosed
	case d.err != nil:
		return d.err
	case d.s == nil:
		return errors.New("latentlm: decoder used after Close")
	}
	return nil
}

// Step runs one item boundary: it drops the items whose context is done,
// places the items added since the last step into free slots (resizing the
// batch), appends one item to every image, draws the next latent of every
// image past its prefix, reports it (BatchItem.OnLatent) and returns the
// items it ended: finished (their images decoded by the tokenizer, each
// item on its own) or dropped. An error of the model ends the decoder: its
// remaining items are returned with that error, and later calls fail.
func (d *Decoder) Step() ([]Finished, error) {
	g := d.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := d.usable(); err != nil {
		return nil, err
	}
	var fin []Finished
	var gone []*decItem // collected first: end removes from d.items
	for _, x := range d.items {
		if x.it.Ctx.Err() != nil {
			gone = append(gone, x)
		}
	}
	for _, x := range gone {
		fin = d.end(x, fmt.Errorf("latentlm: generation cancelled: %w", x.it.Ctx.Err()), fin)
	}
	if len(d.items) == 0 {
		return fin, nil
	}
	if err := d.fit(); err != nil {
		return d.fail(err, fin)
	}
	step := make([]lm.RowItem, len(d.slots))
	for i, r := range d.slots {
		switch {
		case r == nil:
			step[i].Idle = true
		case r.item.fed < len(r.item.prefix[r.index]):
			step[i] = lm.RowItem{Item: r.item.prefix[r.index][r.item.fed], Guide: r.item.guide[r.index][r.item.fed]}
		default:
			z := lm.LatentItem(r.item.latents[r.index][len(r.item.latents[r.index])-g.channels:])
			step[i] = lm.RowItem{Item: z, Guide: z}
		}
	}
	if err := d.rows.Step(step); err != nil {
		return d.fail(err, fin)
	}
	var drawing []*decItem
	for _, x := range d.items {
		if x.fed < len(x.prefix[0]) {
			x.fed++
		}
		if x.fed == len(x.prefix[0]) {
			drawing = append(drawing, x)
		}
	}
	if len(drawing) > 0 {
		n := len(d.slots)
		noise, scale, temp := make([][]float32, n), make([]float64, n), make([]float64, n)
		for i, r := range d.slots {
			noise[i], temp[i] = make([]float32, g.channels), 1
			if r == nil || r.item.fed < len(r.item.prefix[r.index]) {
				continue
			}
			for j := range noise[i] {
				noise[i][j] = float32(r.item.rngs[r.index].NormFloat64())
			}
			scale[i], temp[i] = r.item.cfg, r.item.temperature
		}
		z, err := d.rows.Solve(noise, scale, temp)
		if err != nil {
			return d.fail(err, fin)
		}
		for i, r := range d.slots {
			if r != nil && r.item.fed == len(r.item.prefix[r.index]) {
				r.item.latents[r.index] = append(r.item.latents[r.index], z[i]...)
			}
		}
	}
	grid, nItems := g.tok.Config.Grid(), g.tok.Config.Items()
	for _, x := range drawing {
		k := x.drawn
		x.drawn++
		if x.it.OnLatent != nil {
			p := Progress{Offset: 0, Count: len(x.labels), Index: k, Row: k / grid, Col: k % grid, Latents: nItems, Grid: grid,
				g: g, labels: x.labels, latents: x.latents, items: nItems}
			if err := x.it.OnLatent(p); err != nil {
				fin = d.end(x, fmt.Errorf("latentlm: generation stopped: %w", err), fin)
				continue
			}
		}
		if x.drawn == nItems {
			fin = d.end(x, nil, fin)
		}
	}
	return fin, nil
}

// fit sizes the batch for the items' images (growing at once, shrinking
// after shrinkAfter steps) and places the items added since the last step
// into free slots, each image at position 0.
func (d *Decoder) fit() error {
	target := padRows(d.used)
	if d.rows == nil {
		r, err := d.s.Engine().NewRows(target, true)
		if err != nil {
			return err
		}
		d.rows, d.slots = r, make([]*decRow, target)
	}
	if target < len(d.slots) {
		d.small++
	} else {
		d.small = 0
	}
	if target > len(d.slots) || (target < len(d.slots) && d.small >= shrinkAfter) {
		from := make([]int, 0, target)
		slots := make([]*decRow, 0, target)
		for i, r := range d.slots {
			if r != nil {
				from, slots = append(from, i), append(slots, r)
			}
		}
		for len(from) < target {
			from, slots = append(from, -1), append(slots, nil)
		}
		if err := d.rows.Remap(from); err != nil {
			return err
		}
		d.slots, d.small = slots, 0
	}
	free := 0
	for _, x := range d.items {
		if x.placed {
			continue
		}
		for k := range x.labels {
			for d.slots[free] != nil {
				free++
			}
			d.slots[free] = &decRow{item: x, index: k}
			d.rows.Restart(free)
		}
		x.placed = true
	}
	return nil
}

// end removes item x from the decode, freeing its slots, and appends its
// result: err, or its images decoded.
func (d *Decoder) end(x *decItem, err error, fin []Finished) []Finished {
	for i, r := range d.slots {
		if r != nil && r.item == x {
			d.slots[i] = nil
		}
	}
	for i, y := range d.items {
		if y == x {
			d.items = append(d.items[:i], d.items[i+1:]...)
			break
		}
	}
	d.used -= len(x.labels)
	f := Finished{ID: x.id}
	if err != nil {
		f.Err = err
	} else {
		f.Images, f.Err = d.g.decodeImages(x.labels, x.latents)
	}
	return append(fin, f)
}

// fail ends the decoder after an error of the model: every item left gets
// it.
func (d *Decoder) fail(err error, fin []Finished) ([]Finished, error) {
	d.err = fmt.Errorf("latentlm: %w", err)
	for _, x := range d.items {
		fin = append(fin, Finished{ID: x.id, BatchResult: BatchResult{Err: d.err}})
	}
	d.items, d.used = nil, 0
	d.free()
	return fin, d.err
}

// decodeImages turns the latents of one item's images into images.
func (g *Generator) decodeImages(labels []int, latents [][]float32) ([]Image, error) {
	dec, err := g.tok.Decode(latents)
	if err != nil {
		return nil, fmt.Errorf("latentlm: %w", err)
	}
	imgs := make([]Image, 0, len(dec))
	for j, px := range dec {
		for _, v := range px {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("latentlm: model %s produced non-finite pixel values: its weights or the sampling options are broken", g.dir)
			}
		}
		imgs = append(imgs, Image{Class: labels[j], Size: g.imageSize, Pixels: px})
	}
	return imgs, nil
}

// free releases the decoder's batch and hands back its sampler (with the
// generator locked).
func (d *Decoder) free() {
	if d.rows != nil {
		d.rows.Close()
		d.rows = nil
	}
	if d.s != nil {
		d.g.releaseRows(d.s, d.own, d.err != nil)
		d.s = nil
	}
	d.slots = nil
	delete(d.g.decoders, d)
}

// Close ends the decoder, dropping the items it holds (without results),
// and frees its batch. It is safe to call more than once.
func (d *Decoder) Close() {
	d.g.mu.Lock()
	defer d.g.mu.Unlock()
	d.items, d.used = nil, 0
	d.free()
}
