package lm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gomlx/compute/dtypes"

	"github.com/latentlm/latentlm/internal/testutil"
)

// testSeq is a Sequence for the tests: it reads its prompt, then draws
// latents (guided by the null prompt, with its own noise) or greedy
// tokens, and may wait (Idle) on given ticks.
type testSeq struct {
	prompt, guide []Item
	latents       bool // draw latents, else tokens
	n             int  // how many to draw
	seed          uint64
	scale, temp   float64
	idleAt        map[int]bool // ticks (counted from the sequence's first) to wait
	block         bool         // read the prompt in one block (BlockReader)

	rng   *rand.Rand
	tick  int
	fed   int       // prompt items appended
	last  Item      // the item drawn last, appended next
	drawn []float32 // latents, flattened
	toks  []int
}

func (s *testSeq) Next() RowItem {
	defer func() { s.tick++ }()
	if s.idleAt[s.tick] {
		return RowItem{Idle: true}
	}
	if s.fed < len(s.prompt) {
		s.fed++
		return RowItem{Item: s.prompt[s.fed-1], Guide: s.guide[s.fed-1]}
	}
	return RowItem{Item: s.last, Guide: s.last}
}

// blockSeq is a testSeq that reads its prompt in one block.
type blockSeq struct{ *testSeq }

func (s blockSeq) Block() (items, guide []Item) {
	if s.fed > 0 || len(s.prompt) < 2 {
		return nil, nil
	}
	s.tick++
	s.fed = len(s.prompt)
	return s.prompt, s.guide
}

func (s *testSeq) Want() Want {
	if s.fed < len(s.prompt) {
		return Want{}
	}
	if !s.latents {
		return Want{Logits: true}
	}
	if s.rng == nil {
		s.rng = rand.New(rand.NewPCG(s.seed, 0))
	}
	noise := make([]float32, tinyConfig().Latent)
	for j := range noise {
		noise[j] = float32(s.rng.NormFloat64())
	}
	return Want{Latent: true, Noise: noise, Scale: s.scale, Temperature: s.temp}
}

func (s *testSeq) Take(logits, latent []float32) (bool, error) {
	switch {
	case s.fed < len(s.prompt):
		if logits != nil || latent != nil {
			return true, fmt.Errorf("given logits or a latent while reading the prompt")
		}
		return false, nil
	case s.latents:
		if latent == nil || logits != nil {
			return true, fmt.Errorf("asked for a latent, given logits %v latent %v", logits != nil, latent != nil)
		}
		s.drawn = append(s.drawn, latent...)
		s.last = LatentItem(slices.Clone(latent))
		return len(s.drawn) == s.n*len(latent), nil
	default:
		if logits == nil || latent != nil {
			return true, fmt.Errorf("asked for logits, given logits %v latent %v", logits != nil, latent != nil)
		}
		tok := pick(logits, 0, nil)
		s.toks = append(s.toks, tok)
		s.last = TokenItem(tok)
		return len(s.toks) == s.n, nil
	}
}

// result is what the sequence made, for comparison.
func (s *testSeq) result() string { return fmt.Sprint(s.drawn, s.toks) }

// fresh is an unstarted copy of the sequence.
func (s *testSeq) fresh() *testSeq {
	return &testSeq{prompt: s.prompt, guide: s.guide, latents: s.latents, n: s.n, seed: s.seed, scale: s.scale, temp: s.temp, idleAt: s.idleAt, block: s.block}
}

// seq is the sequence as the Batch sees it.
func (s *testSeq) seq() Sequence {
	if s.block {
		return blockSeq{s}
	}
	return s
}

// tinyEngine is an engine of the tiny random model with opts, closed when
// the test ends.
func tinyEngine(t *testing.T, opts SampleOptions) *Engine {
	t.Helper()
	cfg := tinyConfig()
	e, err := NewEngine(testutil.Backend(t, ""), randomStore(t, cfg, 0.05, dtypes.Float32), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// runBatch runs the sequences through one Batch, sequence i joining before
// tick join[i], and returns each one's result.
func runBatch(t *testing.T, e *Engine, guided bool, seqs []*testSeq, join []int) []string {
	t.Helper()
	return runBatchBlocks(t, e, guided, DefaultMinBlock, seqs, join)
}

// runBatchBlocks is runBatch with blocks of minBlock items or more read in
// one go.
func runBatchBlocks(t *testing.T, e *Engine, guided bool, minBlock int, seqs []*testSeq, join []int) []string {
	t.Helper()
	b, err := e.NewBatch(len(seqs), guided)
	if err != nil {
		t.Fatal(err)
	}
	b.MinBlock = minBlock
	defer b.Close()
	done := map[*testSeq]bool{}
	for tick := 0; len(done) < len(seqs); tick++ {
		if tick > 500 {
			t.Fatal("the batch did not end")
		}
		for i, s := range seqs {
			if join[i] == tick {
				if err := b.Add(s.seq()); err != nil {
					t.Fatal(err)
				}
			}
		}
		ended, err := b.Step()
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range ended {
			if x.Err != nil {
				t.Fatal(x.Err)
			}
			switch q := x.Seq.(type) {
			case *testSeq:
				done[q] = true
			case blockSeq:
				done[q.testSeq] = true
			}
		}
	}
	out := make([]string, len(seqs))
	for i, s := range seqs {
		out[i] = s.result()
	}
	return out
}

// TestBatchContinuous: sequences of both kinds (latents guided with their
// own scale, temperature and seed; greedy tokens), of different prompt
// lengths, some waiting on some ticks, joining a running batch at
// different ticks (the batch grows from 1 to 8 slots and shrinks back), end
// with exactly the results each gets alone in a batch.
func TestBatchContinuous(t *testing.T) {
	cfg := tinyConfig()
	e := tinyEngine(t, SampleOptions{Steps: 3, CFG: 1, Temperature: 1, Seed: 1})
	null := TokenItem(cfg.Vocab.Null())
	var seqs []*testSeq
	for i := range 6 {
		prompt := []Item{TokenItem(i % cfg.Vocab.Classes)}
		guide := []Item{null}
		for range i % 3 {
			z := make([]float32, cfg.Latent)
			z[i%cfg.Latent] = 0.5
			prompt, guide = append(prompt, LatentItem(z)), append(guide, LatentItem(z))
		}
		s := &testSeq{prompt: prompt, guide: guide, latents: i%2 == 0, n: 3 + i, seed: uint64(100 + i), scale: 1 + float64(i), temp: 1 - 0.1*float64(i)}
		if i == 3 {
			s.idleAt = map[int]bool{1: true, 4: true}
		}
		seqs = append(seqs, s)
	}
	join := []int{0, 0, 2, 3, 3, 9}
	var want []string
	for _, guided := range []bool{false, true} {
		want = want[:0]
		for _, s := range seqs {
			want = append(want, runBatch(t, e, guided, []*testSeq{s.fresh()}, []int{0})[0])
		}
		var fresh []*testSeq
		for _, s := range seqs {
			fresh = append(fresh, s.fresh())
		}
		got := runBatch(t, e, guided, fresh, join)
		for i := range seqs {
			if got[i] != want[i] {
				t.Errorf("guided %v, sequence %d (joined at tick %d): batched\n%s\nalone\n%s", guided, i, join[i], got[i], want[i])
			}
		}
		seqs = fresh
	}
	// The sequences did something: latents are finite and not all equal.
	for i, s := range seqs {
		if s.latents {
			for _, v := range s.drawn {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatalf("sequence %d drew %v", i, v)
				}
			}
		}
	}
	if seqs[0].result() == seqs[2].result() {
		t.Error("two sequences with different prompts and seeds drew the same latents")
	}
	// A sequence's idle ticks keep its position: the same sequence without
	// them gives the same result.
	plain := seqs[3].fresh()
	plain.idleAt = nil
	if r := runBatch(t, e, true, []*testSeq{plain}, []int{0})[0]; r != want[3] {
		t.Errorf("waiting changed a sequence: %s, want %s", r, want[3])
	}
}

// TestBatchRefuses: a full batch refuses a sequence, an engine with a DDPM
// plan has no Batch, a removed sequence ends nothing, and a closed batch
// fails.
func TestBatchRefuses(t *testing.T) {
	ddpm := tinyEngine(t, SampleOptions{Steps: 0, CFG: 1, Temperature: 1, Seed: 1})
	if _, err := ddpm.NewBatch(2, false); err == nil {
		t.Error("a DDPM engine made a Batch")
	}
	e := tinyEngine(t, SampleOptions{Steps: 2, CFG: 1, Temperature: 1, Seed: 1})
	bt, err := e.NewBatch(2, false)
	if err != nil {
		t.Fatal(err)
	}
	mk := func() *testSeq {
		return &testSeq{prompt: []Item{TokenItem(0)}, guide: []Item{TokenItem(0)}, n: 4}
	}
	a, c := mk(), mk()
	if err := bt.Add(a); err != nil {
		t.Fatal(err)
	}
	if err := bt.Add(c); err != nil {
		t.Fatal(err)
	}
	if err := bt.Add(mk()); err == nil {
		t.Error("a full batch took a third sequence")
	}
	if _, err := bt.Step(); err != nil {
		t.Fatal(err)
	}
	if !bt.Remove(c) || bt.Remove(c) {
		t.Error("Remove: want true once, then false")
	}
	ends := 0
	for range 3 {
		ended, err := bt.Step()
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range ended {
			if x.Seq != Sequence(a) {
				t.Errorf("a removed sequence ended: %v", x)
			}
			ends++
		}
	}
	// Its prompt and first token on tick 1, a token on each of the next 3.
	if len(a.toks) != 4 || ends != 1 || len(c.toks) != 1 {
		t.Errorf("after 4 ticks: %d tokens (want 4), ended %d times (want 1); the removed one drew %d (want 1)", len(a.toks), ends, len(c.toks))
	}
	bt.Close()
	if _, err := bt.Step(); err == nil && bt.Len() > 0 {
		t.Error("a closed batch stepped")
	}
	if err := bt.Add(mk()); err == nil {
		t.Error("a closed batch took a sequence")
	}
}

// TestForStepsOutlivesRetune: the engine of ForSteps is made once per
// steps, and a Retune of the engine it came from (a model's SetOptions)
// neither closes it nor forgets it; Close does.
func TestForStepsOutlivesRetune(t *testing.T) {
	cfg := tinyConfig()
	e := tinyEngine(t, SampleOptions{Steps: 2, CFG: 1, Temperature: 1, Seed: 1})
	x, err := e.ForSteps(3)
	if err != nil {
		t.Fatal(err)
	}
	if y, _ := e.ForSteps(3); y != x {
		t.Error("ForSteps made a second engine for the same steps")
	}
	bt, err := x.NewBatch(2, true)
	if err != nil {
		t.Fatal(err)
	}
	defer bt.Close()
	e2, err := e.Retune(SampleOptions{Steps: 5, CFG: 2, Temperature: 1, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if e2 == e {
		t.Fatal("Retune to other steps kept the engine")
	}
	if y, _ := e2.ForSteps(3); y != x {
		t.Error("the retuned engine forgot the engine of 3 steps")
	}
	s := &testSeq{prompt: []Item{TokenItem(1)}, guide: []Item{TokenItem(cfg.Vocab.Null())}, latents: true, n: 2, seed: 1, scale: 2, temp: 1}
	if err := bt.Add(s); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := bt.Step(); err != nil {
			t.Fatalf("a batch of the engine of 3 steps after Retune: %v", err)
		}
	}
	if len(s.drawn) != 2*cfg.Latent {
		t.Errorf("drew %d values, want %d", len(s.drawn), 2*cfg.Latent)
	}
	e2.Close()
	if _, err := bt.Step(); err == nil && bt.Len() > 0 {
		t.Error("a batch stepped after its engine's owner was closed")
	}
	if _, err := x.NewBatch(1, false); err == nil {
		t.Error("the engine of 3 steps outlived Close")
	}
}

// TestBatchBlocks: sequences that hand their prompts over as blocks
// (BlockReader) get, alone or joining a running batch beside sequences
// that read item by item, the same results bit for bit, whether the blocks
// are read in one go (Rows.Read) or, shorter than MinBlock, stepped in;
// and results that agree, to float32 rounding, with reading item by item.
func TestBatchBlocks(t *testing.T) {
	cfg := tinyConfig()
	e := tinyEngine(t, SampleOptions{Steps: 3, CFG: 1, Temperature: 1, Seed: 1})
	null := TokenItem(cfg.Vocab.Null())
	var seqs []*testSeq
	for i := range 5 {
		prompt, guide := []Item{TokenItem(i % cfg.Vocab.Classes)}, []Item{null}
		for k := range 2 + i%3 {
			z := make([]float32, cfg.Latent)
			z[(i+k)%cfg.Latent] = 0.5 - 0.2*float32(k)
			prompt, guide = append(prompt, LatentItem(z)), append(guide, LatentItem(z))
		}
		seqs = append(seqs, &testSeq{prompt: prompt, guide: guide, latents: true, n: 3, seed: uint64(7 + i), scale: 1.5 + float64(i), temp: 1, block: i != 2})
	}
	// A sixth like the fourth, of another seed, joining at its tick: their
	// blocks are read together.
	sixth := seqs[3].fresh()
	sixth.seed, sixth.scale = 99, 2
	seqs = append(seqs, sixth)
	join := []int{0, 1, 1, 2, 4, 2}
	for _, c := range []struct {
		guided   bool
		minBlock int
	}{{false, 2}, {true, 2}, {false, DefaultMinBlock}, {true, DefaultMinBlock}} {
		guided := c.guided
		var alone, stepped []*testSeq
		for _, s := range seqs {
			a := s.fresh()
			runBatchBlocks(t, e, guided, c.minBlock, []*testSeq{a}, []int{0})
			alone = append(alone, a)
			p := s.fresh()
			p.block = false
			runBatch(t, e, guided, []*testSeq{p}, []int{0})
			stepped = append(stepped, p)
		}
		var fresh []*testSeq
		for _, s := range seqs {
			fresh = append(fresh, s.fresh())
		}
		runBatchBlocks(t, e, guided, c.minBlock, fresh, join)
		for i, s := range fresh {
			if s.result() != alone[i].result() {
				t.Errorf("guided %v, min block %d, sequence %d (block %v, joined at %d): batched %s, alone %s", guided, c.minBlock, i, s.block, join[i], s.result(), alone[i].result())
			}
			var worst float64
			for j, v := range alone[i].drawn {
				worst = max(worst, math.Abs(float64(v-stepped[i].drawn[j])))
			}
			if len(alone[i].drawn) != len(stepped[i].drawn) || worst > 1e-4 {
				t.Errorf("guided %v, min block %d, sequence %d: block and item by item differ by %g (%d and %d values)", guided, c.minBlock, i, worst, len(alone[i].drawn), len(stepped[i].drawn))
			}
		}
	}
}
