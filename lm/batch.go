package lm

import (
	"context"
	"errors"
	"fmt"
)

// Sequence is one sequence of a continuous batch (Batch): a class-to-image
// draw, a caption being written, an utterance being spoken. The Batch asks
// it, one tick at a time, for the item to append next, and gives it what it
// asked for after that item: the softmax head's logits, a latent of the
// diffusion head, or nothing (an item of a prompt that is still being read).
// The sequence alone decides what comes next (a token it picks, the latent
// it was given, the next prompt item) and when it is done; so every kind of
// generation shares one decoding loop, and sequences of different kinds and
// lengths run side by side, each at its own position.
//
// A sequence's results depend on what it is given alone: its items, its
// noise (which it supplies, from its own seed) and its guidance scale and
// temperature, not on which slot it holds or what the others hold, on a
// backend whose kernels compute each row independently of the batch size
// (see Rows).
type Sequence interface {
	// Next is the item to append at this tick (Item), and the item of
	// its guidance stream (Guide: used only when the Batch is guided; the
	// item of the unconditional or dropped-prompt version of the
	// sequence), or Idle: the sequence waits this tick (for work of
	// another batch, say), keeping its position, and Want and Take are
	// not called.
	Next() RowItem
	// Want is what the sequence needs after the item Next gave: the
	// logits, a latent, or neither.
	Want() Want
	// Take gives the sequence what Want asked for: logits (the softmax
	// head's, over the whole vocabulary) or a latent, each nil unless
	// asked for. It reports whether the sequence is done; a done sequence
	// leaves the batch, and an error ends it (the others go on).
	Take(logits, latent []float32) (done bool, err error)
}

// BlockReader is a Sequence that can hand the Batch several items at once:
// the items it would append next, one a tick, wanting nothing before the
// last of them (a prompt, an image to read back). The Batch reads them in
// one block within one tick (Rows.Read: a few backbone calls on the
// sequence's own streams, instead of one step of the whole batch per
// item), and then calls Want and Take as on the tick of the last. So a
// request that joins a busy decode with a long prompt reaches its first
// output in a tick, not in as many ticks as its prompt has items.
type BlockReader interface {
	Sequence
	// Block returns the items the sequence appends next and those of its
	// guidance stream (nil: the items themselves), and advances the
	// sequence as if Next had given each of them and Take had taken all
	// but the last; or nothing, when its next item is not part of a block
	// (then Next gives it).
	Block() (items, guide []Item)
}

// Want is what a Sequence needs after an item.
type Want struct {
	// Logits asks for the softmax head's logits after the item.
	Logits bool
	// Latent asks for the next latent, solved from Noise (Latent
	// standard normal values, the sequence's own draw) scaled by
	// Temperature, guided with Scale when the Batch is guided.
	Latent             bool
	Noise              []float32
	Scale, Temperature float64
}

// Ended is a sequence that a Batch step ended: done, or stopped by Err
// (its own, from Take, or the model's).
type Ended struct {
	Seq Sequence
	Err error
}

// Batch decodes Sequences continuously: a sequence joins at the next Step,
// at position 0 of a free slot, while the others are mid-way, and leaves
// as soon as it is done, without the others waiting. It sizes its Rows to
// the sequences it holds, padded (PadSlots; an unguided batch to at
// least two, see fit) so that few shapes are compiled: growing at once
// when sequences join, shrinking only after the batch has run larger than
// it needs for ShrinkAfter steps (the clients of finished requests often
// send their next at once, and a resize copies the caches).
//
// A Batch is guided or not for all its sequences (the guidance streams
// double the backbone's work). It needs an Engine with a DPM-Solver++ plan
// (Steps ≥ 1), whose steps all its latents use. It is not safe for
// concurrent use.
type Batch struct {
	e       *Engine
	guided  bool
	max     int
	rows    *Rows
	slots   []Sequence // nil where free
	waiting []Sequence // added, placed at the next Step
	small   int        // consecutive steps run larger than needed
	// MinBlock is the shortest block the batch reads in one go
	// (Rows.Read, DefaultMinBlock).
	MinBlock int
	// short are the items left of blocks shorter than MinBlock, stepped
	// one a tick.
	short map[Sequence][]RowItem
	err   error
}

// DefaultMinBlock is Batch.MinBlock of a new Batch: a block shorter than
// it (a class prefix, a caption → image prompt) is stepped in one item a
// tick with the rest of the batch, which costs less than backbone calls
// and compiled shapes of its own; a longer one (an image and question, a
// voice prompt) is read in one tick.
const DefaultMinBlock = 16

// ShrinkAfter is the number of consecutive steps a Batch runs larger than
// its sequences need before it shrinks.
const ShrinkAfter = 8

// PadSlots is the number of slots a batch of n sequences runs at: n up to
// 4, then the next power of two up to 64, then the next multiple of 64.
func PadSlots(n int) int {
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
	return (n + 63) / 64 * 64
}

// NewBatch starts an empty continuous batch of at most maxSeqs sequences,
// with guidance streams when guided.
func (e *Engine) NewBatch(maxSeqs int, guided bool) (*Batch, error) {
	switch {
	case e.step == nil:
		return nil, errors.New("lm: engine used after Close")
	case maxSeqs < 1:
		return nil, fmt.Errorf("lm: batch of %d sequences: want at least 1", maxSeqs)
	case e.opts.Steps < 1:
		return nil, errors.New("lm: a Batch needs a DPM-Solver++ plan (Steps ≥ 1): DDPM draws noise at every step")
	}
	return &Batch{e: e, guided: guided, max: maxSeqs, MinBlock: DefaultMinBlock}, nil
}

// Guided reports whether the batch has guidance streams.
func (b *Batch) Guided() bool { return b.guided }

// Len is the number of sequences in the batch, placed or waiting.
func (b *Batch) Len() int {
	n := len(b.waiting)
	for _, s := range b.slots {
		if s != nil {
			n++
		}
	}
	return n
}

// Free is the number of sequences that may still join.
func (b *Batch) Free() int { return max(0, b.max-b.Len()) }

// Slots is the size the batch runs at.
func (b *Batch) Slots() int { return len(b.slots) }

// Add admits a sequence: it joins at the next Step. A full batch refuses it.
func (b *Batch) Add(s Sequence) error {
	if b.err != nil {
		return b.err
	}
	if b.Free() == 0 {
		return fmt.Errorf("lm: batch full (%d sequences)", b.max)
	}
	b.waiting = append(b.waiting, s)
	return nil
}

// Remove drops a sequence (a cancelled request) from the batch; its slot is
// free at the next Step. It reports whether the sequence was there.
func (b *Batch) Remove(s Sequence) bool {
	delete(b.short, s)
	for i, t := range b.slots {
		if t == s {
			b.slots[i] = nil
			return true
		}
	}
	for i, t := range b.waiting {
		if t == s {
			b.waiting = append(b.waiting[:i], b.waiting[i+1:]...)
			return true
		}
	}
	return false
}

// Step runs one tick: it places the waiting sequences, appends the next
// item of every sequence, computes the logits and solves the latents they
// want (one call each for the whole batch), hands them over, and returns
// the sequences that ended. An error of the model ends the batch: every
// sequence left is returned with it, and later calls fail.
func (b *Batch) Step() ([]Ended, error) {
	if b.err != nil {
		return nil, b.err
	}
	if b.Len() == 0 {
		return nil, nil
	}
	if err := b.fit(); err != nil {
		return b.fail(err)
	}
	n := len(b.slots)
	step := make([]RowItem, n)
	active := make([]bool, n) // Want and Take this tick
	stepping := false
	var blocks []int
	var blockItems, blockGuides [][]Item
	for i, s := range b.slots {
		step[i].Idle = true
		if s == nil {
			continue
		}
		if q := b.short[s]; len(q) > 0 {
			step[i], stepping = q[0], true
			if b.short[s] = q[1:]; len(q) == 1 {
				delete(b.short, s)
				active[i] = true
			}
			continue
		}
		if br, ok := s.(BlockReader); ok {
			if items, guide := br.Block(); len(items) > 0 {
				if guide == nil {
					guide = items
				}
				if len(items) < b.MinBlock {
					q := make([]RowItem, len(items))
					for j := range items {
						q[j] = RowItem{Item: items[j], Guide: guide[j]}
					}
					step[i], stepping = q[0], true
					if len(q) > 1 {
						if b.short == nil {
							b.short = map[Sequence][]RowItem{}
						}
						b.short[s] = q[1:]
					} else {
						active[i] = true
					}
					continue
				}
				blocks, blockItems, blockGuides = append(blocks, i), append(blockItems, items), append(blockGuides, guide)
				active[i] = true
				continue
			}
		}
		if it := s.Next(); !it.Idle {
			step[i], active[i], stepping = it, true, true
		}
	}
	if stepping {
		if err := b.rows.Step(step); err != nil {
			return b.fail(err)
		}
	}
	if len(blocks) > 0 { // after Step, which writes every slot's hidden state
		if err := b.rows.Read(blocks, blockItems, blockGuides); err != nil {
			return b.fail(err)
		}
	}
	wants := make([]Want, n)
	var logits, latents bool
	for i, s := range b.slots {
		if active[i] {
			wants[i] = s.Want()
			logits = logits || wants[i].Logits
			latents = latents || wants[i].Latent
		}
	}
	var lg, z [][]float32
	if logits {
		var err error
		if lg, err = b.rows.Logits(); err != nil {
			return b.fail(err)
		}
	}
	if latents {
		c := b.e.cfg
		noise, scale, temp := make([][]float32, n), make([]float64, n), make([]float64, n)
		for i, w := range wants {
			noise[i], scale[i], temp[i] = make([]float32, c.Latent), 1, 1
			if w.Latent {
				if len(w.Noise) != c.Latent {
					return b.fail(fmt.Errorf("slot %d: noise of %d values, the model has %d channels", i, len(w.Noise), c.Latent))
				}
				noise[i], scale[i], temp[i] = w.Noise, w.Scale, w.Temperature
			}
		}
		var err error
		if z, err = b.rows.Solve(noise, scale, temp); err != nil {
			return b.fail(err)
		}
	}
	var ended []Ended
	for i, s := range b.slots {
		if !active[i] {
			continue
		}
		var l, lat []float32
		if wants[i].Logits {
			l = lg[i]
		}
		if wants[i].Latent {
			lat = z[i]
		}
		done, err := s.Take(l, lat)
		if done || err != nil {
			b.slots[i] = nil
			ended = append(ended, Ended{Seq: s, Err: err})
		}
	}
	return ended, nil
}

// Run admits seqs in order as slots free and steps until every one has
// ended: a whole set of requests decoded on one continuous batch. It
// returns ctx's error as it is, and the first error of a step or of a
// sequence.
func (b *Batch) Run(ctx context.Context, seqs []Sequence) error {
	for next, running := 0, 0; next < len(seqs) || running > 0; {
		if err := ctx.Err(); err != nil {
			return err
		}
		for ; next < len(seqs) && b.Free() > 0; next++ {
			if err := b.Add(seqs[next]); err != nil {
				return err
			}
			running++
		}
		ended, err := b.Step()
		if err != nil {
			return err
		}
		for _, e := range ended {
			if e.Err != nil {
				return e.Err
			}
			running--
		}
	}
	return nil
}

// Run is Batch.Run for a slice of one concrete sequence type, which Go
// does not convert to []Sequence by itself.
func Run[S Sequence](ctx context.Context, b *Batch, seqs []S) error {
	ls := make([]Sequence, len(seqs))
	for i, s := range seqs {
		ls[i] = s
	}
	return b.Run(ctx, ls)
}

// fit sizes the batch for its sequences and places the waiting ones, each
// in a free slot at position 0.
func (b *Batch) fit() error {
	// An unguided batch runs at least two streams, as a guided one always
	// does: ONNX Runtime's kernels for a single row round differently from
	// those for several, so a sequence alone would not get the results it
	// gets in company.
	target := PadSlots(b.Len())
	if !b.guided {
		target = max(target, 2)
	}
	if b.rows == nil {
		r, err := b.e.NewRows(target, b.guided)
		if err != nil {
			return err
		}
		b.rows, b.slots = r, make([]Sequence, target)
	}
	if target < len(b.slots) {
		b.small++
	} else {
		b.small = 0
	}
	if target > len(b.slots) || (target < len(b.slots) && b.small >= ShrinkAfter) {
		from := make([]int, 0, target)
		slots := make([]Sequence, 0, target)
		for i, s := range b.slots {
			if s != nil {
				from, slots = append(from, i), append(slots, s)
			}
		}
		for len(from) < target {
			from, slots = append(from, -1), append(slots, nil)
		}
		if err := b.rows.Remap(from); err != nil {
			return err
		}
		b.slots, b.small = slots, 0
	}
	free := 0
	for _, s := range b.waiting {
		for b.slots[free] != nil {
			free++
		}
		b.slots[free] = s
		b.rows.Restart(free)
	}
	b.waiting = b.waiting[:0]
	return nil
}

// fail ends the batch after an error of the model.
func (b *Batch) fail(err error) ([]Ended, error) {
	b.err = fmt.Errorf("lm: batch: %w", err)
	var ended []Ended
	for _, s := range b.slots {
		if s != nil {
			ended = append(ended, Ended{Seq: s, Err: b.err})
		}
	}
	for _, s := range b.waiting {
		ended = append(ended, Ended{Seq: s, Err: b.err})
	}
	b.slots, b.waiting = nil, nil
	b.Close()
	return ended, b.err
}

// Close releases the batch's caches; its sequences are dropped. It is safe
// to call more than once.
func (b *Batch) Close() {
	if b.rows != nil {
		b.rows.Close()
		b.rows = nil
	}
	b.slots, b.waiting = nil, nil
	if b.err == nil {
		b.err = errors.New("lm: batch used after Close")
	}
}
