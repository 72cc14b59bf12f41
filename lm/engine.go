package lm

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/nn"
)

// Item is one element of a sequence: a latent vector when Latent is set
// (Config.Latent values), else the token Token.
type Item struct {
	Token  int
	Latent []float32
}

// TokenItem is the token id as an item.
func TokenItem(id int) Item { return Item{Token: id} }

// LatentItem is the latent vector z as an item.
func LatentItem(z []float32) Item { return Item{Latent: z} }

// IsLatent reports whether the item is a latent vector.
func (it Item) IsLatent() bool { return it.Latent != nil }

// Engine generates sequences of any mix of tokens and latents with a KV
// cache: Prefill reads a prefix, Step appends one item, Solve draws the next
// latent with the diffusion head (and classifier-free guidance when a
// guidance stream is present), Logits reads the softmax head, and Latents
// composes them into a latent segment of fixed length or one that ends
// where the model predicts <EOL>. An Engine compiles its graphs once per
// shape and serves any number of sessions, one at a time; it is not safe
// for concurrent use.
type Engine struct {
	cfg     Config
	backend compute.Backend
	store   *model.Store
	opts    SampleOptions
	sched   *diffusion.Schedule
	target  diffusion.Target
	plan    diffusion.Plan
	rng     *rand.Rand // host draws of sampled tokens
	step    *model.Exec
	logits  *model.Exec
	guided  *diffusion.Solver // the head over 2n streams, with guidance
	plain   *diffusion.Solver // the head over n streams
	// The same heads starting from noise the caller supplies
	// (Session.SolveWithNoise), prepared on first use.
	guidedNoise, plainNoise *diffusion.Solver
	// The step and heads of Rows (continuous batching: a position, a
	// guidance scale and a temperature per sequence), prepared on first
	// use.
	rowStep             *model.Exec
	rowGuided, rowPlain *diffusion.Solver
	loop                bool
	// bySteps are the engines of ForSteps, kept across Retune.
	bySteps map[int]*Engine
}

// NewEngine prepares generation from the weights in store (load the EMA
// weights into it first) with opts' solver, guidance scale, temperature and
// seed. It seeds the store's random generator once: successive sessions
// continue the stream, so a whole run is reproducible from the seed.
func NewEngine(backend compute.Backend, store *model.Store, cfg Config, opts SampleOptions) (*Engine, error) {
	return newEngine(backend, store, cfg, opts, false)
}

// newEngine runs even short solver plans as a host loop when loop is set.
func newEngine(backend compute.Backend, store *model.Store, cfg Config, opts SampleOptions, loop bool) (*Engine, error) {
	e := &Engine{cfg: cfg, backend: backend, store: store, opts: opts, sched: diffusion.Cosine(1000), loop: loop}
	var err error
	e.target = cfg.Target
	if err = e.target.Valid(); err != nil {
		return nil, err
	}
	if e.plan, err = e.sched.PlanFor(opts.Steps); err != nil {
		return nil, err
	}
	// Seeded once: successive sessions continue the streams, so batches
	// differ and a whole run is reproducible from the seed.
	if err := e.Seed(opts.Seed); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if e.step, err = model.NewExec(backend, store, e.stepGraph); err != nil {
		return nil, err
	}
	// Prefills of any length, and the blocks of Rows.Read (a shape per
	// padded number of streams and power-of-two length), take more shapes
	// than GoMLX's default bound.
	e.step.SetMaxCache(maxBlockShapes)
	if e.logits, err = model.NewExec(backend, store, func(scope *model.Scope, h *Node) *Node {
		return cfg.Logits(nn.WeightsOf(scope.Store(), h.Graph()), h)
	}); err != nil {
		return nil, err
	}
	if e.guided, err = diffusion.NewSolver(backend, store, e.sched, e.plan, e.target, e.headGraphs(true, loop)); err != nil {
		return nil, err
	}
	if e.plain, err = diffusion.NewSolver(backend, store, e.sched, e.plan, e.target, e.headGraphs(false, loop)); err != nil {
		return nil, err
	}
	return e, nil
}

// Seed restarts the random streams from seed: the store's generator (the
// noise of the solver) and the host generator of sampled tokens.
func (e *Engine) Seed(seed int64) error {
	e.rng = rand.New(rand.NewPCG(uint64(seed), tokenStream))
	return e.store.SetRNGStateFromSeed(seed)
}

// Retune returns an engine for opts over the same weights: e itself,
// reseeded from opts.Seed, when the solver steps, guidance scale and
// temperature (which its compiled graphs hold) are unchanged; otherwise a
// new engine, after closing e. Models that answer many requests retune per
// request, so that each result depends only on its request and not on the
// requests before it.
func (e *Engine) Retune(opts SampleOptions) (*Engine, error) {
	if old := e.opts; opts.Steps == old.Steps && opts.CFG == old.CFG && opts.Temperature == old.Temperature {
		if err := e.Seed(opts.Seed); err != nil {
			return nil, fmt.Errorf("lm: reseeding the engine: %w", err)
		}
		e.opts = opts
		return e, nil
	}
	n, err := newEngine(e.backend, e.store, e.cfg, opts, e.loop)
	if err != nil {
		return nil, fmt.Errorf("lm: rebuilding the engine: %w", err)
	}
	n.bySteps, e.bySteps = e.bySteps, nil // the batches on them go on
	e.Close()
	return n, nil
}

// maxBlockShapes bounds the shapes compiled for Rows.Read: PadSlots sizes
// of up to 1024 streams (21) times power-of-two lengths (up to 12).
const maxBlockShapes = 256

// ForSteps returns an engine over the same weights whose DPM-Solver++ plan
// takes steps (1…) solver steps, for continuous batches (NewBatch), which
// take the guidance scale and temperature per sequence: one made on first
// use and kept with e, and with the engines Retune makes from it, until
// Close. So a model's batches of any steps run beside its own calls, and
// a Retune for those calls does not end them.
func (e *Engine) ForSteps(steps int) (*Engine, error) {
	if e.step == nil {
		return nil, errors.New("lm: engine used after Close")
	}
	if steps < 1 {
		return nil, fmt.Errorf("lm: %d solver steps: continuous batches need a DPM-Solver++ plan (steps ≥ 1)", steps)
	}
	if x := e.bySteps[steps]; x != nil {
		return x, nil
	}
	x, err := newEngine(e.backend, e.store, e.cfg, SampleOptions{Steps: steps, CFG: 1, Temperature: 1, Seed: 1}, e.loop)
	if err != nil {
		return nil, fmt.Errorf("lm: an engine of %d steps: %w", steps, err)
	}
	if e.bySteps == nil {
		e.bySteps = map[int]*Engine{}
	}
	e.bySteps[steps] = x
	return x, nil
}

// tokenStream is the PCG stream of the host generator of sampled tokens.
const tokenStream = 0x4c61_7465_6e74_4c4d

// Config is the model's architecture.
func (e *Engine) Config() Config { return e.cfg }

// Close releases the compiled graphs (the store and its weights stay with
// the caller). It is safe to call more than once; sessions fail after it.
func (e *Engine) Close() {
	for _, x := range e.bySteps {
		x.Close()
	}
	e.bySteps = nil
	for _, x := range []**model.Exec{&e.step, &e.logits, &e.rowStep} {
		if *x != nil {
			(*x).Finalize()
			*x = nil
		}
	}
	for _, s := range []**diffusion.Solver{&e.guided, &e.plain, &e.guidedNoise, &e.plainNoise, &e.rowGuided, &e.rowPlain} {
		if *s != nil {
			(*s).Close()
			*s = nil
		}
	}
}

// stepGraph advances every stream by T items: inputs are tokens [S, T]
// int32, latents [S, T, C], isLatent [S, T], positions [T] and the caches
// (K, V per layer); it returns the last item's hidden state [S, d], then the
// updated caches.
func (e *Engine) stepGraph(scope *model.Scope, in []*Node) []*Node {
	c := e.cfg
	w := nn.WeightsOf(scope.Store(), in[0].Graph())
	it := Items{Ids: in[0], Latents: in[1], IsLatent: in[2]}
	caches := make([]*nn.KV, c.Depth)
	for i := range caches {
		caches[i] = &nn.KV{K: in[4+2*i], V: in[5+2*i]}
	}
	h, newCaches := c.Backbone(w, it, in[3], caches)
	seqLen := h.Shape().Dimensions[1]
	out := []*Node{Squeeze(SliceAxis(h, 1, AxisElem(seqLen-1)), 1)}
	for _, kv := range newCaches {
		out = append(out, kv.K, kv.V)
	}
	return out
}

// headGraphs is the diffusion head as the solver runs it: from hidden
// states [S, d] (S = 2n with guidance: conditional streams first), the
// condition, noise [n, C] scaled by the temperature, and the (guided) head.
func (e *Engine) headGraphs(guided, loop bool) diffusion.SolverGraphs {
	c := e.cfg
	return diffusion.SolverGraphs{
		Loop: loop,
		Conditions: func(scope *model.Scope, in []*Node) []*Node {
			return []*Node{c.Condition(nn.WeightsOf(scope.Store(), in[0].Graph()), in[0])}
		},
		Noise: func(scope *model.Scope, in []*Node) *Node {
			if len(in) > 1 { // noise [n, C] supplied by the caller
				return MulScalar(in[1], e.opts.Temperature)
			}
			n := in[0].Shape().Dimensions[0]
			if guided {
				n /= 2
			}
			x := scope.RandomNormal(in[0].Graph(), nn.Shape(dtypes.Float32, n, c.Latent))
			return MulScalar(x, e.opts.Temperature)
		},
		Denoiser: func(scope *model.Scope, conds []*Node) diffusion.Denoiser {
			w := nn.WeightsOf(scope.Store(), conds[0].Graph())
			cond := conds[0]
			if guided {
				return diffusion.Guided(func(x, t *Node) *Node { return c.Head(w, x, t, cond) }, e.opts.CFG)
			}
			return func(x, t *Node) *Node { return c.Head(w, x, BroadcastToDims(t, x.Shape().Dimensions[0]), cond) }
		},
	}
}

// Session is the state of one batch of n sequences being generated: the KV
// caches of its streams (n conditional, and n unconditional ones with
// guidance), the hidden state of the last item, and how many items each
// sequence holds. Every sequence of a batch holds the same number of items.
type Session struct {
	e       *Engine
	n       int
	guided  bool
	pos     int             // items in the caches
	caches  []any           // K, V per layer: [S, MaxLen, KVHeads, hd]
	hidden  *tensors.Tensor // [S, d], the last item's
	pending []Item          // generated latents not yet in the caches
	ragged  bool            // a segment ended at different lengths
}

// Prefill starts a session from one prefix per sequence (all of one
// length). guide, when not nil, is the prefix of each sequence's guidance
// stream (the same length; for classifier-free guidance the prefix with the
// condition replaced by the null class): its streams then follow the same
// items as their sequences from here on, and Solve combines the two.
func (e *Engine) Prefill(prefix, guide [][]Item) (*Session, error) {
	if e.step == nil {
		return nil, errors.New("lm: engine used after Close")
	}
	n := len(prefix)
	if n == 0 {
		return nil, errors.New("lm: prefill of no sequences")
	}
	if guide != nil && len(guide) != n {
		return nil, fmt.Errorf("lm: %d guidance prefixes for %d sequences", len(guide), n)
	}
	length := len(prefix[0])
	if length == 0 {
		return nil, errors.New("lm: empty prefix")
	}
	if length > e.cfg.MaxLen {
		return nil, fmt.Errorf("lm: prefix of %d items, model has max_len %d", length, e.cfg.MaxLen)
	}
	rows := append([][]Item(nil), prefix...)
	rows = append(rows, guide...)
	for i, r := range rows {
		if len(r) != length {
			return nil, fmt.Errorf("lm: prefixes of %d and %d items: every stream of a batch must hold the same number", length, len(r))
		}
		for _, it := range r {
			if err := e.check(it); err != nil {
				return nil, fmt.Errorf("lm: prefix %d: %w", i, err)
			}
		}
	}
	s := &Session{e: e, n: n, guided: guide != nil}
	c := e.cfg
	hd := c.Dim / c.Heads
	s.caches = make([]any, 2*c.Depth)
	for i := range s.caches {
		s.caches[i] = tensors.FromShape(nn.Shape(dtypes.Float32, len(rows), c.MaxLen, c.KVHeads, hd))
	}
	if err := s.advance(rows); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (e *Engine) check(it Item) error {
	if it.IsLatent() {
		if len(it.Latent) != e.cfg.Latent {
			return fmt.Errorf("latent of %d values, model has %d channels", len(it.Latent), e.cfg.Latent)
		}
		return nil
	}
	if it.Token < 0 || it.Token >= e.cfg.Vocab.Size() {
		return fmt.Errorf("token %d out of range 0…%d", it.Token, e.cfg.Vocab.Size()-1)
	}
	return nil
}

// advance runs the backbone over rows [S][T] at the next T positions.
func (s *Session) advance(rows [][]Item) error {
	e, c := s.e, s.e.cfg
	if e.step == nil {
		return errors.New("lm: engine used after Close")
	}
	t := len(rows[0])
	if s.pos+t > c.MaxLen {
		return fmt.Errorf("lm: sequence of %d items exceeds max_len %d", s.pos+t, c.MaxLen)
	}
	args := append(itemTensors(c, rows, s.pos), s.caches...)
	outs, err := e.step.Call(args...)
	nn.Release(args...) // the inputs, old caches included, are spent
	if err != nil {
		s.caches = nil
		return fmt.Errorf("lm: decoding step: %w", err)
	}
	nn.Release(s.hidden)
	s.hidden = outs[0]
	for i := range s.caches {
		s.caches[i] = outs[1+i]
	}
	s.pos += t
	return nil
}

// usable reports why the session cannot go on, and appends the latents a
// segment left pending.
func (s *Session) usable() error {
	switch {
	case s.e.step == nil:
		return errors.New("lm: engine used after Close")
	case s.caches == nil:
		return errors.New("lm: session used after Close or a failed step")
	case s.ragged:
		return errors.New("lm: the sequences of this batch ended their segments at different lengths and cannot go on together")
	}
	if p := s.pending; p != nil {
		s.pending = nil
		return s.Step(p)
	}
	return nil
}

// Len is the number of items each sequence holds, latents a segment left
// pending included.
func (s *Session) Len() int {
	if s.pending != nil {
		return s.pos + 1
	}
	return s.pos
}

// Guided reports whether the session has guidance streams.
func (s *Session) Guided() bool { return s.guided }

// Step appends one item to each sequence (items[i] to sequence i, and to
// its guidance stream) and computes the new hidden states.
func (s *Session) Step(items []Item) error {
	if err := s.usable(); err != nil {
		return err
	}
	if len(items) != s.n {
		return fmt.Errorf("lm: %d items for %d sequences", len(items), s.n)
	}
	rows := make([][]Item, 0, 2*s.n)
	for _, it := range items {
		if err := s.e.check(it); err != nil {
			return fmt.Errorf("lm: step: %w", err)
		}
		rows = append(rows, []Item{it})
	}
	if s.guided {
		rows = append(rows, rows...)
	}
	return s.advance(rows)
}

// Hidden is the backbone's normalised hidden state [n][d] after the last
// item of each sequence (the conditional streams).
func (s *Session) Hidden() ([][]float32, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	return rowsOf(tensors.MustCopyFlatData[float32](s.hidden), s.n, s.e.cfg.Dim), nil
}

// Logits is the softmax head [n][Vocab.Size()] after the last item of each
// sequence (the conditional streams).
func (s *Session) Logits() ([][]float32, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	out, err := s.e.logits.Call(s.hidden)
	if err != nil {
		return nil, fmt.Errorf("lm: token head: %w", err)
	}
	defer nn.Release(out[0])
	return rowsOf(tensors.MustCopyFlatData[float32](out[0]), s.n, s.e.cfg.Vocab.Size()), nil
}

// Solve draws the next latent [n][C] of each sequence with the diffusion
// head and the engine's solver plan, guided by the guidance streams if the
// session has them. It does not append the latents: Step does.
func (s *Session) Solve() ([][]float32, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	solver := s.e.plain
	if s.guided {
		solver = s.e.guided
	}
	z, err := solver.Solve(s.hidden)
	if err != nil {
		return nil, fmt.Errorf("lm: latent: %w", err)
	}
	defer nn.Release(z)
	return rowsOf(tensors.MustCopyFlatData[float32](z), s.n, s.e.cfg.Latent), nil
}

// SolveWithNoise is Solve starting from the given noise instead of the
// store's random generator: noise[i] is sequence i's standard normal draw of
// C values, which the engine scales by its temperature. Since the solver
// plans of DPM-Solver++ (Steps ≥ 1) add no noise on the way, a sequence's
// latent then depends only on its own stream and noise, not on the other
// sequences of the batch nor on the generator's state, which it leaves
// untouched. DDPM plans (Steps 0) still draw their per-step noise from the
// store. It does not append the latents: Step does.
func (s *Session) SolveWithNoise(noise [][]float32) ([][]float32, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	e, c := s.e, s.e.cfg
	if len(noise) != s.n {
		return nil, fmt.Errorf("lm: noise for %d sequences, session has %d", len(noise), s.n)
	}
	flat := make([]float32, 0, s.n*c.Latent)
	for i, r := range noise {
		if len(r) != c.Latent {
			return nil, fmt.Errorf("lm: noise %d of %d values, model has %d channels", i, len(r), c.Latent)
		}
		flat = append(flat, r...)
	}
	slot := &e.plainNoise
	if s.guided {
		slot = &e.guidedNoise
	}
	if *slot == nil {
		solver, err := diffusion.NewSolver(e.backend, e.store, e.sched, e.plan, e.target, e.headGraphs(s.guided, e.loop))
		if err != nil {
			return nil, fmt.Errorf("lm: latent: %w", err)
		}
		*slot = solver
	}
	x := tensors.FromFlatDataAndDimensions(flat, s.n, c.Latent)
	defer nn.Release(x)
	z, err := (*slot).Solve(s.hidden, x)
	if err != nil {
		return nil, fmt.Errorf("lm: latent: %w", err)
	}
	defer nn.Release(z)
	return rowsOf(tensors.MustCopyFlatData[float32](z), s.n, c.Latent), nil
}

func rowsOf(flat []float32, n, width int) [][]float32 {
	r := make([][]float32, n)
	for i := range r {
		r[i] = flat[i*width : (i+1)*width : (i+1)*width]
	}
	return r
}

// Segment says how long a latent segment runs.
type Segment struct {
	// Max bounds the latents of each sequence; without StopAtEOL every
	// sequence gets exactly Max.
	Max int
	// StopAtEOL ends a sequence's segment where the softmax head, after
	// one of its latents, predicts <EOL>: the most likely token, or with
	// TokenTemperature > 0 one drawn from softmax(logits/TokenTemperature)
	// by the engine's host generator (seeded from SampleOptions.Seed).
	//
	// The head must have learnt to say "not yet" inside a segment. Loss
	// trains it only where the next item is a token, so a model trained on
	// fixed-length segments (the shipped class-to-image ones) predicts
	// <EOL> after every latent and stops after the first; LossWith's
	// LatentTokens trains a "continue" answer there, as text-to-speech
	// does (package tts).
	StopAtEOL        bool
	TokenTemperature float64
	// BeforeLatent, when set, is called before latent k is drawn. It
	// returns each sequence's initial noise (SolveWithNoise), or nil for
	// the store's generator (Solve), or an error that stops the segment.
	BeforeLatent func(k int) (noise [][]float32, err error)
	// AfterLatent, when set, is called once latent k of every sequence is
	// drawn, with each sequence's latents so far (valid during the call);
	// an error stops the segment. Streaming reports progress through it.
	AfterLatent func(k int, latents [][]float32) error
}

// Latents generates a latent segment for every sequence: Solve, then (while
// the segment goes on) Step with the new latents and, with StopAtEOL, a look
// at the softmax head. It returns each sequence's latents, flattened
// ([k·C] for k latents). The <EOL> itself is not appended; a caller going
// on after the segment steps it in. A final latent that nothing needed to
// look past is appended only when the session goes on, so a fixed-length
// segment costs Max−1 backbone steps. Where sequences stop at different
// lengths the session cannot go on (their positions would differ), but its
// results stand.
func (s *Session) Latents(seg Segment) ([][]float32, error) {
	c := s.e.cfg
	if seg.Max < 1 {
		return nil, fmt.Errorf("lm: segment of at most %d latents", seg.Max)
	}
	if err := s.usable(); err != nil {
		return nil, err
	}
	if s.pos+seg.Max > c.MaxLen {
		return nil, fmt.Errorf("lm: %d items and a segment of up to %d latents exceed max_len %d", s.pos, seg.Max, c.MaxLen)
	}
	out := make([][]float32, s.n)
	for i := range out {
		out[i] = make([]float32, 0, seg.Max*c.Latent)
	}
	done := make([]bool, s.n)
	active := s.n
	for k := 0; ; k++ {
		var noise [][]float32
		if seg.BeforeLatent != nil {
			var err error
			if noise, err = seg.BeforeLatent(k); err != nil {
				return nil, err
			}
		}
		var z [][]float32
		var err error
		if noise != nil {
			z, err = s.SolveWithNoise(noise)
		} else {
			z, err = s.Solve()
		}
		if err != nil {
			return nil, err
		}
		for i := range s.n {
			if !done[i] {
				out[i] = append(out[i], z[i]...)
			}
		}
		if seg.AfterLatent != nil {
			if err := seg.AfterLatent(k, out); err != nil {
				return nil, err
			}
		}
		items := make([]Item, s.n)
		for i := range items {
			items[i] = LatentItem(z[i])
		}
		if k == seg.Max-1 {
			s.pending = items
			break
		}
		if err := s.Step(items); err != nil {
			return nil, err
		}
		if !seg.StopAtEOL {
			continue
		}
		toks, err := s.nextTokens(seg.TokenTemperature)
		if err != nil {
			return nil, err
		}
		for i, tok := range toks {
			if !done[i] && tok == c.Vocab.EOL() {
				done[i] = true
				active--
			}
		}
		if active == 0 {
			break
		}
	}
	for i := range out {
		if len(out[i]) != len(out[0]) {
			s.ragged = true
		}
	}
	return out, nil
}

// nextTokens is the token each sequence's softmax head picks after its last
// item: the argmax, or with temperature > 0 a draw.
func (s *Session) nextTokens(temperature float64) ([]int, error) {
	logits, err := s.Logits()
	if err != nil {
		return nil, err
	}
	toks := make([]int, len(logits))
	for i, l := range logits {
		toks[i] = pick(l, temperature, s.e.rng)
	}
	return toks, nil
}

// pick returns the argmax of logits, or with temperature > 0 a draw from
// softmax(logits/temperature).
func pick(logits []float32, temperature float64, rng *rand.Rand) int {
	best := 0
	for j, v := range logits {
		if v > logits[best] {
			best = j
		}
	}
	if temperature <= 0 {
		return best
	}
	p := make([]float64, len(logits))
	var sum float64
	for j, v := range logits {
		p[j] = math.Exp((float64(v) - float64(logits[best])) / temperature)
		sum += p[j]
	}
	u := rng.Float64() * sum
	for j, q := range p {
		if u < q {
			return j
		}
		u -= q
	}
	return best
}

// Close releases the session's caches and hidden state. It is safe to call
// more than once.
func (s *Session) Close() {
	nn.Release(s.caches...)
	nn.Release(s.hidden)
	s.caches, s.hidden, s.pending = nil, nil, nil
}

// itemTensors lays rows of items (all of one length t) out as the inputs
// of a decoding graph: ids [S, t], latents [S, t, C], isLatent [S, t] and
// the positions from, …, from+t−1.
func itemTensors(c Config, rows [][]Item, from int) []any {
	streams, t := len(rows), len(rows[0])
	ids := make([]int32, streams*t)
	lat := make([]float32, streams*t*c.Latent)
	isL := make([]float32, streams*t)
	for i, r := range rows {
		for j, it := range r {
			k := i*t + j
			if it.IsLatent() {
				copy(lat[k*c.Latent:(k+1)*c.Latent], it.Latent)
				isL[k] = 1
			} else {
				ids[k] = int32(it.Token)
			}
		}
	}
	pos := make([]float32, t)
	for i := range pos {
		pos[i] = float32(from + i)
	}
	return []any{
		tensors.FromFlatDataAndDimensions(ids, streams, t),
		tensors.FromFlatDataAndDimensions(lat, streams, t, c.Latent),
		tensors.FromFlatDataAndDimensions(isL, streams, t),
		tensors.FromFlatDataAndDimensions(pos, t),
	}
}

// Attention returns the attention probabilities of layer `layer` over one
// whole sequence of items, read causally as in training: out[h][t][s] is
// how much query head h at item t looks at item s (0 for s > t). It is a
// diagnostic, compiled for each call: text-to-speech draws the guided
// head's reading of the text from it (tts.Model.Alignment).
func (e *Engine) Attention(items []Item, layer int) ([][][]float32, error) {
	c := e.cfg
	switch {
	case e.step == nil:
		return nil, errors.New("lm: engine used after Close")
	case layer < 0 || layer >= c.Depth:
		return nil, fmt.Errorf("lm: attention of layer %d: the model has %d", layer, c.Depth)
	case len(items) == 0:
		return nil, errors.New("lm: attention of no items")
	case len(items) > c.MaxLen:
		return nil, fmt.Errorf("lm: sequence of %d items exceeds max_len %d", len(items), c.MaxLen)
	}
	for _, it := range items {
		if err := e.check(it); err != nil {
			return nil, fmt.Errorf("lm: %w", err)
		}
	}
	args := itemTensors(c, [][]Item{items}, 0)
	defer nn.Release(args...)
	upTo := c
	upTo.Depth = layer + 1 // the layers above do not change it
	out, err := model.CallOnce(e.backend, e.store, func(scope *model.Scope, in []*Node) *Node {
		w := nn.WeightsOf(scope.Store(), in[0].Graph())
		var probs *Node
		upTo.backbone(w, Items{Ids: in[0], Latents: in[1], IsLatent: in[2]}, in[3], nil, func(i int, p *Node) {
			if i == layer {
				probs = p
			}
		})
		return probs
	}, args...)
	if err != nil {
		return nil, fmt.Errorf("lm: attention: %w", err)
	}
	defer out.FinalizeAll()
	flat := tensors.MustCopyFlatData[float32](out)
	t := len(items)
	probs := make([][][]float32, c.Heads)
	for h := range probs {
		probs[h] = make([][]float32, t)
		for q := range t {
			probs[h][q] = flat[(h*t+q)*t : (h*t+q+1)*t]
		}
	}
	return probs, nil
}
