package valle

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/latentlm/latentlm/lm"
)

// Request is one utterance to speak: text (model ids, Format.Text.Encode)
// in the voice of Prompt (codes of another utterance, Codebooks per frame).
type Request struct {
	Text   []int
	Prompt [][]int32
}

// Generate speaks one request (GenerateBatch of one).
func (m *Model) Generate(ctx context.Context, text []int, prompt [][]int32, o Options) (*Speech, error) {
	out, err := m.GenerateBatch(ctx, []Request{{Text: text, Prompt: prompt}}, o)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// GenerateBatch speaks every request as VALL-E does (Wang et al., 2023,
// arXiv 2301.02111, §4.3): the AR draws the first codebook frame by frame
// until it says <EOL> (or MaxSeconds), then the NAR fills codebooks 2…N,
// one pass over the whole utterance each, taking its likeliest codes.
//
// Up to o.Batch utterances decode together: the AR's on LatentLM's
// continuous batch (lm.Batch: each utterance at its own position, a new
// one joining as soon as another ends, so prompts and texts of any length
// share the ticks), the NAR's as rows of one pass per codebook. Every
// utterance draws its codes from its own generator, PCG(o.Seed, 0x7a11e),
// so its speech does not depend on the batch it ran in.
func (m *Model) GenerateBatch(ctx context.Context, reqs []Request, o Options) ([]*Speech, error) {
	if m.engine == nil {
		return nil, errClosed
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	seqs := make([]*arSequence, len(reqs))
	for i, r := range reqs {
		s, err := m.newARSequence(r, o)
		if err != nil {
			if len(reqs) > 1 {
				err = fmt.Errorf("request %d: %w", i, err)
			}
			return nil, err
		}
		seqs[i] = s
	}
	batch := max(1, o.Batch)
	b, err := m.engine.NewBatch(min(batch, len(seqs)), false)
	if err != nil {
		return nil, fmt.Errorf("valle: %w", err)
	}
	defer b.Close()
	if err := lm.Run(ctx, b, seqs); err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, fmt.Errorf("valle: %w", err)
	}

	out := make([]*Speech, len(seqs))
	var spoken []Utterance
	for i, s := range seqs {
		sp := &Speech{Stopped: s.stopped, ARSteps: s.steps, Codes: make([][]int32, len(s.first))}
		for t, k := range s.first {
			sp.Codes[t] = make([]int32, m.Config.Codebooks)
			sp.Codes[t][0] = k
		}
		sp.Seconds = float64(len(s.first)) / m.Config.FrameRate
		if len(s.first) > 0 { // the NAR has nothing to fill in silence
			sp.NARPasses = m.Config.Codebooks - 1
			spoken = append(spoken, Utterance{Text: reqs[i].Text, Prompt: reqs[i].Prompt, Speech: sp.Codes})
		}
		out[i] = sp
	}
	for lo := 0; lo < len(spoken); lo += batch {
		for stage := 1; stage < m.Config.Codebooks; stage++ {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if err := m.fillStage(spoken[lo:min(lo+batch, len(spoken))], stage); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// arSequence is one utterance's first codebook as an lm.Sequence: it reads
// the prefix <BOL> prompt <EOL> text <BOL> (in one block), then after each
// item takes the softmax head's logits and draws the next code or <EOL>
// (drawFirst), appending the code it drew.
type arSequence struct {
	m             *Model
	prefix        []lm.Item
	pos           int // items appended
	limit         int // the most frames
	o             Options
	rng           *rand.Rand
	first         []int32
	steps         int // logits read: one per frame, one more for <EOL>
	stopped, done bool
}

// newARSequence checks and lays out request r.
func (m *Model) newARSequence(r Request, o Options) (*arSequence, error) {
	f, c := m.Format, m.Config
	u := Utterance{Text: r.Text, Prompt: r.Prompt}
	if err := f.Check(u); err != nil {
		return nil, err
	}
	prefix := f.Prefix(u)
	room := c.LM.MaxLen - len(prefix) - 1 // the final <EOL>
	if room < 1 {
		return nil, fmt.Errorf("valle: the prompt and text take %d of the model's %d items, leaving no room for speech", len(prefix), c.LM.MaxLen)
	}
	items := make([]lm.Item, len(prefix))
	for i, id := range prefix {
		items[i] = lm.TokenItem(id)
	}
	return &arSequence{m: m, prefix: items, o: o, rng: rand.New(rand.NewPCG(o.Seed, 0x7a11e)),
		limit: min(room, max(1, int(math.Floor(o.MaxSeconds*c.FrameRate+1e-9))))}, nil
}

// Next is the next item: the prefix, then the code drawn last.
func (s *arSequence) Next() lm.RowItem {
	switch {
	case s.done:
		return lm.RowItem{Idle: true}
	case s.pos < len(s.prefix):
		return lm.RowItem{Item: s.prefix[s.pos], Guide: s.prefix[s.pos]}
	}
	it := lm.TokenItem(s.m.Format.Code(int(s.first[len(s.first)-1])))
	return lm.RowItem{Item: it, Guide: it}
}

// Block hands the batch the prefix in one block (lm.BlockReader).
func (s *arSequence) Block() (items, guide []lm.Item) {
	if s.done || s.pos > 0 || len(s.prefix) < 2 {
		return nil, nil
	}
	s.pos = len(s.prefix) - 1
	return s.prefix, nil
}

// Want is nothing inside the prefix, the logits from its last item on.
func (s *arSequence) Want() lm.Want {
	return lm.Want{Logits: !s.done && s.pos >= len(s.prefix)-1}
}

// Take draws the next code from the logits after the prefix or a code;
// <EOL>, or the limit, ends the utterance.
func (s *arSequence) Take(logits, _ []float32) (bool, error) {
	if s.done {
		return true, errors.New("valle: sequence already done")
	}
	s.pos++
	if s.pos < len(s.prefix) {
		return false, nil
	}
	if logits == nil {
		s.done = true
		return true, errors.New("valle: sequence given no logits")
	}
	s.steps++
	k := s.m.drawFirst(logits, s.o, s.rng)
	if k < 0 {
		s.stopped, s.done = true, true
		return true, nil
	}
	s.first = append(s.first, int32(k))
	s.done = len(s.first) >= s.limit
	return s.done, nil
}

var _ lm.BlockReader = (*arSequence)(nil)

// drawFirst picks the next first-codebook code from the AR's logits over
// the codes and <EOL> (−1), greedily at temperature 0, else from the
// softmax at the temperature among the TopK likeliest.
func (m *Model) drawFirst(logits []float32, o Options, rng *rand.Rand) int {
	f := m.Format
	type cand struct {
		k     int
		logit float64
	}
	cands := make([]cand, 0, f.Codes+1)
	cands = append(cands, cand{-1, float64(logits[f.Vocab.EOL()])})
	for k := range f.Codes {
		cands = append(cands, cand{k, float64(logits[f.Code(k)])})
	}
	best := 0
	for i, c := range cands {
		if c.logit > cands[best].logit {
			best = i
		}
	}
	if o.Temperature == 0 {
		return cands[best].k
	}
	if o.TopK > 0 && o.TopK < len(cands) {
		// Partial selection: the TopK likeliest, ties in id order.
		for i := range o.TopK {
			j := i
			for l := i + 1; l < len(cands); l++ {
				if cands[l].logit > cands[j].logit {
					j = l
				}
			}
			cands[i], cands[j] = cands[j], cands[i]
		}
		cands = cands[:o.TopK]
	}
	top := cands[0].logit
	for _, c := range cands {
		top = math.Max(top, c.logit)
	}
	p := make([]float64, len(cands))
	var sum float64
	for i, c := range cands {
		p[i] = math.Exp((c.logit - top) / o.Temperature)
		sum += p[i]
	}
	r := rng.Float64() * sum
	for i, c := range cands {
		if r < p[i] {
			return c.k
		}
		r -= p[i]
	}
	return cands[len(cands)-1].k
}

// narBucket is the granularity of the NAR's compiled lengths.
const narBucket = 16

// fillStage runs the NAR once over utts (each with its first stage−1
// codebooks known) and writes its likeliest codes of codebook stage into
// their Speech.
func (m *Model) fillStage(utts []Utterance, stage int) error {
	if m.nar == nil {
		return errClosed
	}
	longest := 0
	stages := make([]int, len(utts))
	for i, u := range utts {
		longest = max(longest, RowLen(len(u.Prompt), len(u.Text), len(u.Speech)))
		stages[i] = stage
	}
	l := (longest + narBucket - 1) / narBucket * narBucket
	b, err := m.Format.PackNAR(utts, stages, l)
	if err != nil {
		return err
	}
	logits, err := m.narLogits(b)
	if err != nil {
		return err
	}
	k := m.Config.CodebookSize
	for i, u := range utts {
		start := i*l + PrefixLen(len(u.Prompt), len(u.Text))
		for t := range u.Speech {
			row := logits[(start+t)*k : (start+t+1)*k]
			best := 0
			for j, v := range row {
				if v > row[best] {
					best = j
				}
			}
			u.Speech[t][stage] = int32(best)
		}
	}
	return nil
}
