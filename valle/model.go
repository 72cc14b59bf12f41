package valle

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
)

// Options control generation.
type Options struct {
	// Temperature of the AR's draw of each first-codebook code (0: the
	// likeliest, greedy), among the TopK likeliest codes and <EOL> (0: all
	// of them). VALL-E samples the AR and takes the NAR's likeliest codes
	// (§4.3); so does this baseline.
	Temperature float64
	TopK        int
	// MaxSeconds bounds speech the AR does not end itself (max_len bounds
	// it too).
	MaxSeconds float64
	Seed       uint64
}

// DefaultOptions are sampling at temperature 1 among the 50 likeliest, at
// most 10 s of speech, seed 1.
func DefaultOptions() Options { return Options{Temperature: 1, TopK: 50, MaxSeconds: 10, Seed: 1} }

// Validate reports the first option out of range.
func (o Options) Validate() error {
	switch {
	case !(o.Temperature >= 0 && o.Temperature <= 100):
		return fmt.Errorf("valle: temperature %v: want a value in [0, 100]", o.Temperature)
	case o.TopK < 0:
		return fmt.Errorf("valle: top-k %d: want 0 (all) or more", o.TopK)
	case !(o.MaxSeconds > 0 && o.MaxSeconds <= 3600):
		return fmt.Errorf("valle: max seconds %v: want a value in (0, 3600]", o.MaxSeconds)
	}
	return nil
}

// Model is the baseline ready to generate: the AR on LatentLM's engine and
// the NAR's compiled graph.
type Model struct {
	Config Config
	Format Format
	Info   map[string]any // the checkpoint's info (training record)

	backend compute.Backend
	store   *model.Store
	engine  *lm.Engine
	nar     *model.Exec
}

// New makes a model from the weights in store (the EMA weights for a
// trained one) of cfg.
func New(b compute.Backend, cfg Config, store *model.Store) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	f, err := cfg.Format()
	if err != nil {
		return nil, err
	}
	// The engine's sampling options concern the diffusion head, which the
	// baseline has not: only its token path runs.
	e, err := lm.NewEngine(b, store, cfg.LM, lm.DefaultSampleOptions())
	if err != nil {
		return nil, err
	}
	m := &Model{Config: cfg, Format: f, backend: b, store: store, engine: e}
	m.nar, err = model.NewExec(b, store, func(scope *model.Scope, in []*Node) *Node {
		w := nn.WeightsOf(scope.Store(), in[0].Graph())
		return cfg.NARLogits(w, NARInputs{Ids: in[0], Codes: in[1], Use: in[2], IsFrame: in[3], Stage: in[4], Last: in[5]})
	})
	if err != nil {
		e.Close()
		return nil, err
	}
	return m, nil
}

// Save writes the checkpoint (weights, EMA copies when the store has them,
// and config) with info beside it.
func Save(dir string, cfg Config, store *model.Store, info map[string]any) error {
	return checkpoint.Save(dir, Kind, cfg, info, store, true, nil)
}

// Load reads a checkpoint written by Save.
func Load(b compute.Backend, dir string) (*Model, error) {
	var cfg Config
	store, h, _, err := checkpoint.Load(dir, Kind, &cfg, nil)
	if err != nil {
		return nil, err
	}
	m, err := New(b, cfg, store)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	m.Info = h.Info
	return m, nil
}

// Close releases the compiled graphs; it is safe to call more than once.
func (m *Model) Close() {
	if m.engine != nil {
		m.engine.Close()
		m.engine = nil
	}
	if m.nar != nil {
		m.nar.Finalize()
		m.nar = nil
	}
}

var errClosed = errors.New("valle: model used after Close")

// Speech is one generated utterance.
type Speech struct {
	// Codes are Codebooks codes per frame, for the codec's CodeLatents.
	Codes [][]int32
	// Stopped reports that the AR ended the speech with <EOL>; false means
	// that MaxSeconds or max_len cut it.
	Stopped bool
	// ARSteps are the AR's sequential backbone steps: one per frame and
	// one for the <EOL> decision (the prefill's last position predicts the
	// first frame). NARPasses are the NAR's, one per codebook after the
	// first, each over the whole utterance.
	ARSteps, NARPasses int
	// Seconds is the speech's duration at the codec's frame rate.
	Seconds float64
}

// StepsPerSecond is the sequential backbone passes per second of audio,
// (ARSteps + NARPasses)/Seconds: the decoding steps, which LatentLM
// (one backbone step per frame, its diffusion head's solver steps on top)
// is compared with.
func (s *Speech) StepsPerSecond() float64 {
	if s.Seconds == 0 {
		return 0
	}
	return float64(s.ARSteps+s.NARPasses) / s.Seconds
}

// Generate speaks text (model ids, Format.Text.Encode) in the voice of
// prompt (codes of another utterance, Codebooks per frame): the AR draws
// the first codebook frame by frame on the KV-cache engine until it says
// <EOL> (or MaxSeconds), then the NAR fills codebooks 2…N, one pass each.
func (m *Model) Generate(ctx context.Context, text []int, prompt [][]int32, o Options) (*Speech, error) {
	if m.engine == nil {
		return nil, errClosed
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	f, c := m.Format, m.Config
	u := Utterance{Text: text, Prompt: prompt}
	if err := f.Check(u); err != nil {
		return nil, err
	}
	prefix := f.Prefix(u)
	room := c.LM.MaxLen - len(prefix) - 1 // the final <EOL>
	if room < 1 {
		return nil, fmt.Errorf("valle: the prompt and text take %d of the model's %d items, leaving no room for speech", len(prefix), c.LM.MaxLen)
	}
	maxFrames := min(room, max(1, int(math.Floor(o.MaxSeconds*c.FrameRate+1e-9))))
	items := make([]lm.Item, len(prefix))
	for i, id := range prefix {
		items[i] = lm.TokenItem(id)
	}
	sess, err := m.engine.Prefill([][]lm.Item{items}, nil)
	if err != nil {
		return nil, fmt.Errorf("valle: %w", err)
	}
	defer sess.Close()
	rng := rand.New(rand.NewPCG(o.Seed, 0x7a11e))
	s := &Speech{}
	var first []int32
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		logits, err := sess.Logits()
		if err != nil {
			return nil, fmt.Errorf("valle: %w", err)
		}
		s.ARSteps++
		k := m.drawFirst(logits[0], o, rng)
		if k < 0 {
			s.Stopped = true
			break
		}
		first = append(first, int32(k))
		if len(first) >= maxFrames {
			break
		}
		if err := sess.Step([]lm.Item{lm.TokenItem(f.Code(k))}); err != nil {
			return nil, fmt.Errorf("valle: %w", err)
		}
	}
	s.Codes = make([][]int32, len(first))
	for t, k := range first {
		s.Codes[t] = make([]int32, c.Codebooks)
		s.Codes[t][0] = k
	}
	s.Seconds = float64(len(first)) / c.FrameRate
	if len(first) == 0 {
		return s, nil
	}
	u.Speech = s.Codes
	for stage := 1; stage < c.Codebooks; stage++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := m.fillStage(u, stage); err != nil {
			return nil, err
		}
		s.NARPasses++
	}
	return s, nil
}

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

// fillStage runs the NAR once and writes its likeliest codes of codebook
// stage into u.Speech.
func (m *Model) fillStage(u Utterance, stage int) error {
	if m.nar == nil {
		return errClosed
	}
	n := RowLen(len(u.Prompt), len(u.Text), len(u.Speech))
	l := (n + narBucket - 1) / narBucket * narBucket
	b, err := m.Format.PackNAR([]Utterance{u}, []int{stage}, l)
	if err != nil {
		return err
	}
	logits, err := m.narLogits(b)
	if err != nil {
		return err
	}
	k := m.Config.CodebookSize
	start := PrefixLen(len(u.Prompt), len(u.Text))
	for t := range u.Speech {
		row := logits[(start+t)*k : (start+t+1)*k]
		best := 0
		for i, v := range row {
			if v > row[best] {
				best = i
			}
		}
		u.Speech[t][stage] = int32(best)
	}
	return nil
}

// narLogits runs the NAR on a packed batch: logits [B·L·CodebookSize].
func (m *Model) narLogits(b *NARBatch) ([]float32, error) {
	if m.nar == nil {
		return nil, errClosed
	}
	n := m.Config.Codebooks
	args := []any{tensors.FromFlatDataAndDimensions(b.Ids, b.Rows, b.Len), tensors.FromFlatDataAndDimensions(b.Codes, b.Rows, b.Len, n),
		tensors.FromFlatDataAndDimensions(b.Use, b.Rows, b.Len, n), tensors.FromFlatDataAndDimensions(b.IsFrame, b.Rows, b.Len),
		tensors.FromFlatDataAndDimensions(b.Stage, b.Rows), tensors.FromFlatDataAndDimensions(b.Last, b.Rows)}
	out, err := m.nar.Call(args...)
	nn.Release(args...)
	if err != nil {
		return nil, fmt.Errorf("valle: NAR: %w", err)
	}
	defer nn.Release(out[0])
	return tensors.MustCopyFlatData[float32](out[0]), nil
}
