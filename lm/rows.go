package lm

import (
	"errors"
	"fmt"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/nn"
)

// Rows is a batch of sequences that each run at their own position: the
// slots of continuous batching, where a sequence joins the batch at
// position 0 while the others are mid-way and leaves when it is done,
// without the others waiting. Each Step appends one item to every slot and
// writes its keys and values at the slot's own position (nn.Attention with
// positions [B, T]); Solve draws the next latent of every slot from noise
// the caller supplies, with a guidance scale and temperature per slot.
//
// A slot's sequence is independent of the other slots: on a backend whose
// kernels compute each row independently of the batch size (the existing
// batching rests on this too), a sequence's latents are the same, bit for
// bit, whichever slot it holds, whatever the others hold, and however many
// slots the batch has. They agree with those of a Session fed the same
// items one at a time (positions [T]): bit for bit on ONNX Runtime, where
// the one-hot cache write is exact and the kernels do not depend on the
// shape (TestRowsMatchSession), and up to float32 rounding on a backend
// that vectorises elementwise functions (the rotary embedding's cos and
// sin) differently by shape.
//
// Rows is built on the Engine's weights and solver plan but not its
// guidance scale and temperature (Solve takes them per slot), nor its
// random generator: Solve needs the caller's noise, which is what makes a
// sequence's result depend on its own seed alone.
type Rows struct {
	e      *Engine
	guided bool
	pos    []int           // per slot: the items its sequence holds
	caches []any           // K, V per layer: [S, MaxLen, KVHeads, hd]
	hidden *tensors.Tensor // [S, d], after each slot's last item
}

// NewRows starts slots empty sequences (each with a guidance stream when
// guided, for classifier-free guidance), all at position 0.
func (e *Engine) NewRows(slots int, guided bool) (*Rows, error) {
	if e.step == nil {
		return nil, errors.New("lm: engine used after Close")
	}
	if slots < 1 {
		return nil, fmt.Errorf("lm: %d slots: want at least 1", slots)
	}
	r := &Rows{e: e, guided: guided, pos: make([]int, slots)}
	r.caches = make([]any, 2*e.cfg.Depth)
	for i := range r.caches {
		r.caches[i] = tensors.FromShape(r.cacheShape(slots))
	}
	r.hidden = tensors.FromShape(nn.Shape(dtypes.Float32, r.streams(slots), e.cfg.Dim))
	return r, nil
}

func (r *Rows) streams(slots int) int {
	if r.guided {
		return 2 * slots
	}
	return slots
}

func (r *Rows) cacheShape(slots int) shapes.Shape {
	c := r.e.cfg
	return nn.Shape(dtypes.Float32, r.streams(slots), c.MaxLen, c.KVHeads, c.Dim/c.Heads)
}

// Slots is the number of slots.
func (r *Rows) Slots() int { return len(r.pos) }

// Len is the number of items slot i's sequence holds.
func (r *Rows) Len(i int) int { return r.pos[i] }

// Guided reports whether the slots have guidance streams.
func (r *Rows) Guided() bool { return r.guided }

// Restart empties slot i for a new sequence: its next item goes to
// position 0. The former sequence's keys and values stay in the cache
// rather than being zeroed (which would take a graph per slot, or a
// host round trip of the caches): each query sees only the keys at
// positions up to its own, and the new sequence writes positions 0, 1, …
// in order before any of its queries reaches them, so the stale ones are
// always masked out. Masked keys weigh exactly zero in the softmax, so
// they change no value, as long as they are finite (a slot is only ever
// written by the model's own steps, which are).
func (r *Rows) Restart(i int) { r.pos[i] = 0 }

// Hidden is the backbone's normalised hidden state [slots][d] after each
// slot's last item (the conditional streams).
func (r *Rows) Hidden() ([][]float32, error) {
	if r.caches == nil {
		return nil, errors.New("lm: rows used after Close or a failed step")
	}
	return rowsOf(tensors.MustCopyFlatData[float32](r.hidden), len(r.pos), r.e.cfg.Dim), nil
}

// Logits is the softmax head's logits [slots][vocabulary] after each
// slot's last item (the conditional streams).
func (r *Rows) Logits() ([][]float32, error) {
	if r.caches == nil {
		return nil, errors.New("lm: rows used after Close or a failed step")
	}
	out, err := r.e.logits.Call(r.hidden) // the conditional streams are the first
	if err != nil {
		return nil, fmt.Errorf("lm: token head: %w", err)
	}
	defer nn.Release(out[0])
	return rowsOf(tensors.MustCopyFlatData[float32](out[0]), len(r.pos), r.e.cfg.Vocab.Size()), nil
}

// RowItem is one slot's input to Rows.Step: Item for its sequence and
// Guide for its guidance stream (ignored without guidance).
type RowItem struct {
	Item, Guide Item
	// Idle marks a slot without a sequence to advance: the step still
	// computes it (a batch has one shape) but its position stays where it
	// is and its hidden state is meaningless until its next item. What
	// the idle step writes into the cache sits at the slot's position,
	// which the slot's next item overwrites.
	Idle bool
}

// rowStepExec is the backbone step of Rows: Engine.stepGraph with
// positions [S, 1], prepared on first use and compiled apart from the
// engine's own step, so that the two do not share one cache of compiled
// graphs (GoMLX bounds an Exec's shapes).
func (e *Engine) rowStepExec() (*model.Exec, error) {
	if e.rowStep == nil {
		x, err := model.NewExec(e.backend, e.store, e.stepGraph)
		if err != nil {
			return nil, err
		}
		e.rowStep = x
	}
	return e.rowStep, nil
}

// Step appends items[i] to slot i's sequence (and its guidance stream), at
// the slot's own position, and computes the new hidden states.
func (r *Rows) Step(items []RowItem) error {
	e, c := r.e, r.e.cfg
	if e.step == nil {
		return errors.New("lm: engine used after Close")
	}
	if r.caches == nil {
		return errors.New("lm: rows used after Close or a failed step")
	}
	slots := len(r.pos)
	if len(items) != slots {
		return fmt.Errorf("lm: %d items for %d slots", len(items), slots)
	}
	streams := r.streams(slots)
	ids := make([]int32, streams)
	lat := make([]float32, streams*c.Latent)
	isL := make([]float32, streams)
	pos := make([]float32, streams)
	for i, it := range items {
		if !it.Idle && r.pos[i] >= c.MaxLen {
			return fmt.Errorf("lm: slot %d: sequence of %d items exceeds max_len %d", i, r.pos[i]+1, c.MaxLen)
		}
		put := func(k int, x Item) error {
			if it.Idle {
				x = Item{}
			} else if err := e.check(x); err != nil {
				return fmt.Errorf("lm: slot %d: %w", i, err)
			}
			if x.IsLatent() {
				copy(lat[k*c.Latent:(k+1)*c.Latent], x.Latent)
				isL[k] = 1
			} else {
				ids[k] = int32(x.Token)
			}
			pos[k] = float32(r.pos[i])
			return nil
		}
		if err := put(i, it.Item); err != nil {
			return err
		}
		if r.guided {
			if err := put(slots+i, it.Guide); err != nil {
				return err
			}
		}
	}
	x, err := e.rowStepExec()
	if err != nil {
		return fmt.Errorf("lm: decoding step: %w", err)
	}
	args := append([]any{
		tensors.FromFlatDataAndDimensions(ids, streams, 1),
		tensors.FromFlatDataAndDimensions(lat, streams, 1, c.Latent),
		tensors.FromFlatDataAndDimensions(isL, streams, 1),
		tensors.FromFlatDataAndDimensions(pos, streams, 1),
	}, r.caches...)
	outs, err := x.Call(args...)
	nn.Release(args...) // the inputs, old caches included, are spent
	if err != nil {
		r.caches = nil
		return fmt.Errorf("lm: decoding step: %w", err)
	}
	nn.Release(r.hidden)
	r.hidden = outs[0]
	for i := range r.caches {
		r.caches[i] = outs[1+i]
	}
	for i, it := range items {
		if !it.Idle {
			r.pos[i]++
		}
	}
	return nil
}

// Read appends a block of items to each of the given slots at once, in
// place of one Step per item: items[k] to slot slots[k]'s sequence and
// guide[k] to its guidance stream (ignored without guidance; nil: the
// items themselves). Each slot's block runs through the backbone on its
// own streams (as a Session from the slot's position, with the blocks of
// other slots at the same position and of the same length), in pieces of
// power-of-two lengths so that few shapes are compiled; its keys, values
// and last hidden state are then written into the slot. So a sequence's
// results depend on its own items alone, as with Step, whatever the other
// slots hold (on a backend whose kernels compute each row independently
// of the batch size, from two rows on); they agree with those of Step,
// item by item, up to float32 rounding. A prompt of many items then costs
// a few backbone calls instead of one step of the whole batch per item.
// The caches are copied through the host, once per call.
func (r *Rows) Read(slots []int, items, guide [][]Item) error {
	e, c := r.e, r.e.cfg
	switch {
	case e.step == nil:
		return errors.New("lm: engine used after Close")
	case r.caches == nil:
		return errors.New("lm: rows used after Close or a failed step")
	case len(items) != len(slots) || (guide != nil && len(guide) != len(slots)):
		return fmt.Errorf("lm: blocks of items for %d and %d slots, want %d", len(items), len(guide), len(slots))
	}
	n := len(r.pos)
	streams := r.streams(n)
	seen := map[int]bool{}
	for k, i := range slots {
		if seen[i] {
			return fmt.Errorf("lm: slot %d given two blocks", i)
		}
		seen[i] = true
		gl := len(items[k])
		if guide != nil {
			gl = len(guide[k])
		}
		switch {
		case i < 0 || i >= n:
			return fmt.Errorf("lm: slot %d of %d", i, n)
		case len(items[k]) == 0 || gl != len(items[k]):
			return fmt.Errorf("lm: slot %d: a block of %d items and %d guide items", i, len(items[k]), gl)
		case r.pos[i]+len(items[k]) > c.MaxLen:
			return fmt.Errorf("lm: slot %d: sequence of %d items exceeds max_len %d", i, r.pos[i]+len(items[k]), c.MaxLen)
		}
	}
	shape := r.cacheShape(n)
	width := shape.Size() / streams // one stream's cache
	flat := make([][]float32, len(r.caches))
	for l, ct := range r.caches {
		flat[l] = tensors.MustCopyFlatData[float32](ct.(*tensors.Tensor))
	}
	hidden := tensors.MustCopyFlatData[float32](r.hidden)
	// Blocks at one position and of one length are read together, in one
	// session: the slots' streams, then their guidance streams (as
	// Prefill lays them out), padded with copies of the first (not
	// written back) to a size of PadSlots and at least two streams, as
	// Rows always runs. So a block's result does not depend on how many
	// were read with it, and the backbone compiles a few shapes only.
	type key struct{ pos, n int }
	groups := map[key][]int{}
	var order []key
	for k, i := range slots {
		g := key{r.pos[i], len(items[k])}
		if groups[g] == nil {
			order = append(order, g)
		}
		groups[g] = append(groups[g], k)
	}
	for _, g := range order {
		ks := groups[g]
		var st []int // the streams read, as streams of the Rows (−1: a copy)
		var rows [][]Item
		for _, k := range ks {
			st, rows = append(st, slots[k]), append(rows, items[k])
		}
		if r.guided {
			for _, k := range ks {
				gd := items[k]
				if guide != nil {
					gd = guide[k]
				}
				st, rows = append(st, n+slots[k]), append(rows, gd)
			}
		}
		for q, row := range rows {
			for _, it := range row {
				if err := e.check(it); err != nil {
					return fmt.Errorf("lm: slot %d: %w", slots[ks[q%len(ks)]], err)
				}
			}
		}
		for len(st) < max(2, PadSlots(len(st))) {
			st, rows = append(st, -1), append(rows, rows[0])
		}
		sess := &Session{e: e, n: len(ks), guided: r.guided, pos: g.pos, caches: make([]any, len(r.caches))}
		for l := range r.caches {
			part := make([]float32, 0, len(st)*width)
			for _, j := range st {
				if j < 0 {
					j = st[0]
				}
				part = append(part, flat[l][j*width:(j+1)*width]...)
			}
			sess.caches[l] = tensors.FromFlatDataAndDimensions(part, append([]int{len(st)}, shape.Dimensions[1:]...)...)
		}
		for done := 0; done < g.n; {
			t := 1 // the largest power of two that fits
			for t*2 <= g.n-done {
				t *= 2
			}
			piece := make([][]Item, len(rows))
			for q, row := range rows {
				piece[q] = row[done : done+t]
			}
			if err := sess.advance(piece); err != nil {
				sess.Close()
				return fmt.Errorf("lm: reading %d blocks of %d items: %w", len(ks), g.n, err)
			}
			done += t
		}
		for l, ct := range sess.caches {
			part := tensors.MustCopyFlatData[float32](ct.(*tensors.Tensor))
			for q, j := range st {
				if j >= 0 {
					copy(flat[l][j*width:(j+1)*width], part[q*width:(q+1)*width])
				}
			}
		}
		h := tensors.MustCopyFlatData[float32](sess.hidden)
		for q, j := range st {
			if j >= 0 {
				copy(hidden[j*c.Dim:(j+1)*c.Dim], h[q*c.Dim:(q+1)*c.Dim])
			}
		}
		sess.Close()
	}
	// Nothing changes until every block is read: an error above leaves
	// the slots as they were.
	for k, i := range slots {
		r.pos[i] += len(items[k])
	}
	for l := range r.caches {
		nn.Release(r.caches[l])
		r.caches[l] = tensors.FromFlatDataAndDimensions(flat[l], shape.Dimensions...)
	}
	nn.Release(r.hidden)
	r.hidden = tensors.FromFlatDataAndDimensions(hidden, streams, c.Dim)
	return nil
}

// rowHeadGraphs is the diffusion head as Rows.Solve runs it: inputs are
// the hidden states [S, d], the noise [n, C], the temperature [n] and,
// with guidance, the guidance scale [n] of each slot, so that one compiled
// graph serves slots of any scales. It has no Conditions graph: the
// denoiser gets the inputs themselves and derives the condition from the
// hidden states (once in an unrolled plan, at every step of a looped one,
// a small product). A looped plan's start graph would otherwise have to
// return the scales, one of its inputs, unchanged, and on the onnx backend
// the step then saw zeros there.
func (e *Engine) rowHeadGraphs(guided, loop bool) diffusion.SolverGraphs {
	c := e.cfg
	return diffusion.SolverGraphs{
		Loop: loop,
		Noise: func(scope *model.Scope, in []*Node) *Node {
			n := in[1].Shape().Dimensions[0]
			return Mul(in[1], Reshape(in[2], n, 1))
		},
		Denoiser: func(scope *model.Scope, in []*Node) diffusion.Denoiser {
			w := nn.WeightsOf(scope.Store(), in[0].Graph())
			cond := c.Condition(w, in[0])
			if guided {
				return diffusion.GuidedRows(func(x, t *Node) *Node { return c.Head(w, x, t, cond) }, in[3])
			}
			return func(x, t *Node) *Node { return c.Head(w, x, BroadcastToDims(t, x.Shape().Dimensions[0]), cond) }
		},
	}
}

// Solve draws the next latent [slots][C] of every slot with the engine's
// solver plan, from noise[i] (slot i's standard normal draw of C values)
// scaled by temperature[i], guided by its guidance stream with scale[i]
// (ignored without guidance). It does not append the latents: Step does.
// The solver plans of DPM-Solver++ (Steps ≥ 1) add no noise on the way, so
// a slot's latent depends on its own sequence, noise, scale and
// temperature alone; DDPM plans (Steps 0), which draw noise at every step
// from the store's generator, are refused.
func (r *Rows) Solve(noise [][]float32, scale, temperature []float64) ([][]float32, error) {
	e, c := r.e, r.e.cfg
	switch {
	case e.step == nil:
		return nil, errors.New("lm: engine used after Close")
	case r.caches == nil:
		return nil, errors.New("lm: rows used after Close or a failed step")
	case e.opts.Steps < 1:
		return nil, errors.New("lm: Rows.Solve needs a DPM-Solver++ plan (Steps ≥ 1): DDPM draws noise at every step")
	}
	n := len(r.pos)
	if len(noise) != n || len(temperature) != n || (r.guided && len(scale) != n) {
		return nil, fmt.Errorf("lm: noise, scale and temperature for %d, %d and %d slots, want %d", len(noise), len(scale), len(temperature), n)
	}
	flat := make([]float32, 0, n*c.Latent)
	for i, z := range noise {
		if len(z) != c.Latent {
			return nil, fmt.Errorf("lm: noise %d of %d values, model has %d channels", i, len(z), c.Latent)
		}
		flat = append(flat, z...)
	}
	f32 := func(v []float64) []float32 {
		out := make([]float32, len(v))
		for i, x := range v {
			out[i] = float32(x)
		}
		return out
	}
	slot := &e.rowPlain
	if r.guided {
		slot = &e.rowGuided
	}
	if *slot == nil {
		solver, err := diffusion.NewSolver(e.backend, e.store, e.sched, e.plan, e.target, e.rowHeadGraphs(r.guided, e.loop))
		if err != nil {
			return nil, fmt.Errorf("lm: latent: %w", err)
		}
		*slot = solver
	}
	in := []*tensors.Tensor{r.hidden, tensors.FromFlatDataAndDimensions(flat, n, c.Latent), tensors.FromFlatDataAndDimensions(f32(temperature), n)}
	if r.guided {
		in = append(in, tensors.FromFlatDataAndDimensions(f32(scale), n))
	}
	defer func() {
		for _, t := range in[1:] {
			nn.Release(t)
		}
	}()
	z, err := (*slot).Solve(in...)
	if err != nil {
		return nil, fmt.Errorf("lm: latent: %w", err)
	}
	defer nn.Release(z)
	return rowsOf(tensors.MustCopyFlatData[float32](z), n, c.Latent), nil
}

// Remap rearranges the slots: new slot j takes old slot from[j]'s sequence
// (its caches, hidden state and position), or starts empty where from[j]
// is −1. It grows or shrinks the batch, so that a continuous batch runs at
// the size its live sequences need; a sequence's results do not depend on
// its slot. The caches are copied on the host: a resize is rare next to
// the steps, and a gather graph would be compiled per pair of sizes.
func (r *Rows) Remap(from []int) error {
	if r.caches == nil {
		return errors.New("lm: rows used after Close or a failed step")
	}
	old := len(r.pos)
	if len(from) < 1 {
		return errors.New("lm: remap to no slots")
	}
	for j, f := range from {
		if f < -1 || f >= old {
			return fmt.Errorf("lm: remap: slot %d from %d, have %d slots", j, f, old)
		}
	}
	// src[k] is the old stream of new stream k, or −1.
	slots := len(from)
	src := make([]int, r.streams(slots))
	for j, f := range from {
		src[j] = f
		if r.guided {
			src[slots+j] = -1
			if f >= 0 {
				src[slots+j] = old + f
			}
		}
	}
	move := func(t *tensors.Tensor, shape shapes.Shape) *tensors.Tensor {
		flat := tensors.MustCopyFlatData[float32](t)
		width := shape.Size() / shape.Dimensions[0]
		out := make([]float32, shape.Size())
		for k, s := range src {
			if s >= 0 {
				copy(out[k*width:(k+1)*width], flat[s*width:(s+1)*width])
			}
		}
		return tensors.FromFlatDataAndDimensions(out, shape.Dimensions...)
	}
	caches := make([]any, len(r.caches))
	for i, ct := range r.caches {
		caches[i] = move(ct.(*tensors.Tensor), r.cacheShape(slots))
	}
	hidden := move(r.hidden, nn.Shape(dtypes.Float32, r.streams(slots), r.e.cfg.Dim))
	pos := make([]int, slots)
	for j, f := range from {
		if f >= 0 {
			pos[j] = r.pos[f]
		}
	}
	nn.Release(r.caches...)
	nn.Release(r.hidden)
	r.caches, r.hidden, r.pos = caches, hidden, pos
	return nil
}

// Close releases the caches and hidden state. It is safe to call more than
// once; the Rows fail after it.
func (r *Rows) Close() {
	nn.Release(r.caches...)
	nn.Release(r.hidden)
	r.caches, r.hidden = nil, nil
}
