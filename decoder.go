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
// latents in raster order: an lm.Sequence of an lm.Batch, the decoding
// loop that multimodal and speech requests share, whose slots each have
// their own KV cache, rotary positions and causal mask. Every Step appends
// one item to every image in the decode: the next item of its prefix, or
// the latent it drew last; then every image past its prefix draws its next
// latent, from its own noise stream, PCG(item seed, image index), as the
// k-th C values of that stream. With DPM-Solver++ (which adds no noise
// after the initial draw) an image's latents then depend on its class,
// seed, index, guidance scale and temperature alone: an item gets byte for
// byte the images it gets decoded alone, whenever it joins and whatever
// else runs, on a backend whose kernels compute each row independently of
// the batch size (ONNX Runtime on the CPU does; GenerateBatch rests on
// this too). They are not Generate's images for the same seed, which come
// from the store's generator, and they may differ from those of earlier
// versions, which stepped the class prefix in as one block, by float32
// rounding.
//
// The batch runs at the padded sizes of lm.PadSlots (1–4, 8, 16, 32, 64,
// then multiples of 64), grown when items join and shrunk once it has run
// larger than its images need for a few steps, so that few shapes are
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
	batch   *lm.Batch
	items   []*decItem // admitted, in order
	nextID  int
	err     error
}

// decImage is one image of an item: a sequence of the decoder's batch.
type decImage struct {
	item  *decItem
	index int
	fed   int // prefix items appended
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
	images           []*decImage
	ended            int // images done
	drawn            int // latents reported (OnLatent)
	channels, total  int // latent width, latents per image
}

// Next is the image's next item: of its prefix, or the latent it drew last.
func (m *decImage) Next() lm.RowItem {
	x := m.item
	if m.fed < len(x.prefix[m.index]) {
		m.fed++
		return lm.RowItem{Item: x.prefix[m.index][m.fed-1], Guide: x.guide[m.index][m.fed-1]}
	}
	lat := x.latents[m.index]
	z := lm.LatentItem(lat[len(lat)-x.channels:])
	return lm.RowItem{Item: z, Guide: z}
}

// Block hands the batch the class prefix in one block (lm.BlockReader).
func (m *decImage) Block() (items, guide []lm.Item) {
	x := m.item
	if m.fed > 0 || len(x.prefix[m.index]) < 2 {
		return nil, nil
	}
	m.fed = len(x.prefix[m.index])
	return x.prefix[m.index], x.guide[m.index]
}

// Want asks for the next latent once the prefix is in, with the image's own
// noise, guidance scale and temperature.
func (m *decImage) Want() lm.Want {
	x := m.item
	if m.fed < len(x.prefix[m.index]) {
		return lm.Want{}
	}
	noise := make([]float32, x.channels)
	for j := range noise {
		noise[j] = float32(x.rngs[m.index].NormFloat64())
	}
	return lm.Want{Latent: true, Noise: noise, Scale: x.cfg, Temperature: x.temperature}
}

// Take keeps the latent; the image is done with its last.
func (m *decImage) Take(_, z []float32) (bool, error) {
	if z == nil {
		return false, nil
	}
	x := m.item
	x.latents[m.index] = append(x.latents[m.index], z...)
	return len(x.latents[m.index]) == x.total*x.channels, nil
}

// Finished is an item that a Decoder step ended: its images, or the error
// that stopped it (a cancelled context, a failed callback).
type Finished struct {
	ID int // Decoder.Add's
	BatchResult
}

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
	if d.batch, err = d.s.Engine().NewBatch(maxRows, true); err != nil {
		g.releaseRows(s, own, false)
		return nil, err
	}
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
func (d *Decoder) Rows() int {
	if d.batch == nil {
		return 0
	}
	return d.batch.Len()
}

// Free is the number of images that may still join (Add).
func (d *Decoder) Free() int { return max(0, d.maxRows-d.Rows()) }

// Slots is the size the batch runs at (Rows padded, lm.PadSlots).
func (d *Decoder) Slots() int {
	if d.batch == nil {
		return 0
	}
	return d.batch.Slots()
}

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
	if d.Rows() > 0 && n > d.Free() {
		return 0, fmt.Errorf("latentlm: Decoder.Add: %d images, %d free of %d", n, d.Free(), d.maxRows)
	}
	if n > MaxBatch {
		return 0, fmt.Errorf("latentlm: batch of %d images, at most %d", n, MaxBatch)
	}
	if it.Ctx == nil {
		it.Ctx = context.Background()
	}
	x := &decItem{id: d.nextID, it: it, labels: labels, cfg: opts.CFG, temperature: opts.Temperature,
		prefix: make([][]lm.Item, n), guide: make([][]lm.Item, n), rngs: make([]*rand.Rand, n), latents: make([][]float32, n),
		channels: g.channels, total: g.tok.Config.Items()}
	cfg := d.s.Engine().Config()
	for k, l := range labels {
		if x.prefix[k], x.guide[k], err = cfg.ClassPrefix(l); err != nil {
			return 0, fmt.Errorf("latentlm: %w", err)
		}
		x.rngs[k] = rand.New(rand.NewPCG(uint64(it.Seed), uint64(k)))
		x.latents[k] = make([]float32, 0, g.tok.Config.Items()*g.channels)
		x.images = append(x.images, &decImage{item: x, index: k})
	}
	if n > d.batch.Free() { // an empty decode takes up to MaxBatch images
		if err := d.regrow(n); err != nil {
			return 0, err
		}
	}
	for _, m := range x.images {
		if err := d.batch.Add(m); err != nil {
			for _, p := range x.images {
				d.batch.Remove(p)
			}
			return 0, fmt.Errorf("latentlm: %w", err)
		}
	}
	d.nextID++
	d.items = append(d.items, x)
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
	ended, err := d.batch.Step()
	if err != nil {
		return d.fail(err, fin)
	}
	for _, e := range ended {
		if e.Err != nil { // the images' own Take never fails
			return d.fail(e.Err, fin)
		}
		e.Seq.(*decImage).item.ended++
	}
	grid, nItems := g.tok.Config.Grid(), g.tok.Config.Items()
	var done []*decItem // collected first: end removes from d.items
	for _, x := range d.items {
		// An item's images run in lockstep: they joined together.
		k := len(x.latents[0])/x.channels - 1
		if k < x.drawn {
			continue
		}
		x.drawn++
		if x.it.OnLatent != nil {
			p := Progress{Offset: 0, Count: len(x.labels), Index: k, Row: k / grid, Col: k % grid, Latents: nItems, Grid: grid,
				g: g, labels: x.labels, latents: x.latents, items: nItems}
			if err := x.it.OnLatent(p); err != nil {
				fin = d.end(x, fmt.Errorf("latentlm: generation stopped: %w", err), fin)
				continue
			}
		}
		if x.ended == len(x.images) {
			done = append(done, x)
		}
	}
	for _, x := range done {
		fin = d.end(x, nil, fin)
	}
	return fin, nil
}

// regrow makes room for an item of n images in an empty decode, larger
// than maxRows (up to MaxBatch): a new batch of that size.
func (d *Decoder) regrow(n int) error {
	b, err := d.s.Engine().NewBatch(max(n, d.maxRows), true)
	if err != nil {
		return fmt.Errorf("latentlm: %w", err)
	}
	d.batch.Close()
	d.batch = b
	return nil
}

// end removes item x from the decode, freeing its slots, and appends its
// result: err, or its images decoded.
func (d *Decoder) end(x *decItem, err error, fin []Finished) []Finished {
	for _, m := range x.images {
		d.batch.Remove(m)
	}
	for i, y := range d.items {
		if y == x {
			d.items = append(d.items[:i], d.items[i+1:]...)
			break
		}
	}
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
	d.items = nil
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
	if d.batch != nil {
		d.batch.Close()
		d.batch = nil
	}
	if d.s != nil {
		d.g.releaseRows(d.s, d.own, d.err != nil)
		d.s = nil
	}
	delete(d.g.decoders, d)
}

// Close ends the decoder, dropping the items it holds (without results),
// and frees its batch. It is safe to call more than once.
func (d *Decoder) Close() {
	d.g.mu.Lock()
	defer d.g.mu.Unlock()
	d.items = nil
	d.free()
}
