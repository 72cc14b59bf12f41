package transfusion

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/multimodal"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/text"
	"github.com/latentlm/latentlm/vae"
)

// Arch is the architecture's name, recorded as info "arch" in its
// checkpoints beside the kind.
const Arch = "transfusion"

// Model is a trained Transfusion model ready to use, the counterpart of
// multimodal.Model: the same fields and the same methods that the
// commands and the benchmark call (ImagesFor, Caption, Ask, TextNats).
type Model struct {
	Config Config
	Format multimodal.Format
	Text   *text.Tokenizer
	Image  *vae.Model
	Info   map[string]any // the checkpoint's info (training record)
	Dir    string

	backend       compute.Backend
	store         *model.Store
	opts          multimodal.Options
	step          *model.Exec       // prefill and decoding steps
	logits        *model.Exec       // the softmax head
	guided, plain *diffusion.Solver // whole-image solvers, with and without guidance
	nats          *model.Exec       // teacher-forced cross-entropy, built on first use
	owned         []*model.Store    // the weights Load read for this model alone, freed by Close
}

// Save writes a Transfusion checkpoint into dir: the EMA weights and
// config (kind Kind, info "arch" Arch), the record of its image tokenizer,
// and the text tokenizer as dir/tokenizer.json, as multimodal.Save does.
func Save(dir string, cfg Config, store *model.Store, image lm.Tokenizer, tok *text.Tokenizer, info map[string]any) error {
	if info == nil {
		info = map[string]any{}
	}
	info["arch"] = Arch
	if err := lm.SaveKind(dir, Kind, &cfg, store, image, info); err != nil {
		return fmt.Errorf("transfusion: saving %s: %w", dir, err)
	}
	if err := tok.WriteFile(filepath.Join(dir, multimodal.TokenizerFile)); err != nil {
		return fmt.Errorf("transfusion: saving %s: %w", dir, err)
	}
	return nil
}

// Load reads the Transfusion checkpoint in dir and its tokenizers (as
// multimodal.Load does): the text tokenizer beside it, the image tokenizer
// in imageDir or, if empty, the one it records (whose checksum must match).
// opts are those of multimodal models: the solver's steps, guidance,
// temperature and seed, the batch and the most text tokens per answer.
func Load(b compute.Backend, dir, imageDir string, opts multimodal.Options) (*Model, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	var cfg Config
	store, rec, h, err := lm.LoadKind(dir, Kind, &cfg)
	if err != nil {
		return nil, err
	}
	tok, img, err := multimodal.LoadTokenizers(b, dir, imageDir, rec,
		multimodal.TokenizerNeeds{TextIDs: cfg.Vocab.Extra, Channels: cfg.Latent, MaxLen: cfg.MaxLen})
	if err != nil {
		return nil, err
	}
	ic := img.Config
	m := &Model{Config: cfg, Text: tok, Image: img, Info: h.Info, Dir: dir, backend: b, store: store, opts: opts,
		Format: multimodal.Format{Vocab: cfg.Vocab, EOT: tok.EOT(), Items: ic.Items(), Channels: ic.Channels}}
	m.owned = []*model.Store{store, img.Store}
	if err := m.compile(); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// New is a Model over weights already in store (load the EMA weights into
// it first) and the given tokenizers, for tests and for callers that
// train and sample in one process.
func New(b compute.Backend, store *model.Store, cfg Config, f multimodal.Format, tok *text.Tokenizer, img *vae.Model, opts multimodal.Options) (*Model, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if f.Vocab != cfg.Vocab || f.Channels != cfg.Latent || f.ImageLen()+1 > cfg.MaxLen {
		return nil, fmt.Errorf("transfusion: format (%d latents of %d channels, %d ids) does not fit the model (%d channels, %d ids, max_len %d)",
			f.Items, f.Channels, f.Vocab.Size(), cfg.Latent, cfg.Vocab.Size(), cfg.MaxLen)
	}
	m := &Model{Config: cfg, Format: f, Text: tok, Image: img, Info: map[string]any{"arch": Arch}, backend: b, store: store, opts: opts}
	if err := m.compile(); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// compile prepares the graphs (they compile on first use, per shape).
func (m *Model) compile() error {
	var err error
	sched := diffusion.Cosine(1000)
	plan, err := sched.PlanFor(m.opts.Steps)
	if err != nil {
		return err
	}
	if err := m.store.SetRNGStateFromSeed(m.opts.Seed); err != nil {
		return err
	}
	if m.step, err = model.NewExec(m.backend, m.store, m.stepGraph); err != nil {
		return err
	}
	if m.logits, err = model.NewExec(m.backend, m.store, func(scope *model.Scope, h *Node) *Node {
		return m.Config.Logits(nn.WeightsOf(scope.Store(), h.Graph()), h)
	}); err != nil {
		return err
	}
	if m.guided, err = diffusion.NewSolver(m.backend, m.store, sched, plan, m.Config.Target, m.solverGraphs(true)); err != nil {
		return err
	}
	m.plain, err = diffusion.NewSolver(m.backend, m.store, sched, plan, m.Config.Target, m.solverGraphs(false))
	return err
}

// Close releases the compiled graphs, the image tokenizer and, for a model
// Load read, its weights (nn.ReleaseStores). It is safe to call more than
// once.
func (m *Model) Close() {
	for _, x := range []**model.Exec{&m.step, &m.logits, &m.nats} {
		if *x != nil {
			(*x).Finalize()
			*x = nil
		}
	}
	for _, s := range []**diffusion.Solver{&m.guided, &m.plain} {
		if *s != nil {
			(*s).Close()
			*s = nil
		}
	}
	if m.Image != nil {
		m.Image.Close()
	}
	nn.ReleaseStores(m.owned...)
	m.owned = nil
}

// Options are the generation options the model was loaded with.
func (m *Model) Options() multimodal.Options { return m.opts }

// Captioned says whether the model learnt captions (multimodal.Model's
// rule: every canvas model, and an emoji or folder model trained on
// pictures that had some).
func (m *Model) Captioned() bool { return multimodal.Captioned(m.Info) }

var errClosed = errors.New("transfusion: model used after Close")

// encodePrompt tokenizes a prompt, refusing one that is empty, not UTF-8,
// or too long to leave room for room more items (multimodal.Model's
// rules, with its error type).
func (m *Model) encodePrompt(what, s string, room int) ([]int, error) {
	return multimodal.EncodePrompt(m.Text, m.Config.MaxLen, what, s, room)
}

// stepGraph advances every stream by T items: inputs are tokens [S, T]
// int32, latents [S, T, C], isLatent, timesteps and visibility [S, T],
// positions [T] and the caches (K, V per layer); it returns the last item's
// hidden state [S, d], then the updated caches.
func (m *Model) stepGraph(scope *model.Scope, in []*Node) []*Node {
	c := m.Config
	w := nn.WeightsOf(scope.Store(), in[0].Graph())
	caches := make([]*nn.KV, c.Depth)
	for i := range caches {
		caches[i] = &nn.KV{K: in[6+2*i], V: in[7+2*i]}
	}
	h, newCaches := c.Backbone(w, lm.Items{Ids: in[0], Latents: in[1], IsLatent: in[2]}, in[3], in[4], in[5], caches)
	seqLen := h.Shape().Dimensions[1]
	out := []*Node{Squeeze(SliceAxis(h, 1, AxisElem(seqLen-1)), 1)}
	for _, kv := range newCaches {
		out = append(out, kv.K, kv.V)
	}
	return out
}

// session is a batch of S streams being decoded: their KV caches, the
// hidden state after the last item, and how many items each holds.
type session struct {
	m       *Model
	streams int
	pos     int
	caches  []any // K, V per layer: [S, MaxLen, KVHeads, hd]
	hidden  *tensors.Tensor
}

// prefill starts a session from rows of one length.
func (m *Model) prefill(rows [][]lm.Item) (*session, error) {
	if m.step == nil {
		return nil, errClosed
	}
	c := m.Config
	s := &session{m: m, streams: len(rows)}
	hd := c.Dim / c.Heads
	s.caches = make([]any, 2*c.Depth)
	for i := range s.caches {
		s.caches[i] = tensors.FromShape(nn.Shape(dtypes.Float32, len(rows), c.MaxLen, c.KVHeads, hd))
	}
	if err := s.advance(rows); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// advance runs the backbone over rows [S][T] at the next T positions, each
// image whole (an image split over two calls would not see its own end).
// Latents enter clean (t = 0): every image a session reads is context.
func (s *session) advance(rows [][]lm.Item) error {
	m, c := s.m, s.m.Config
	if m.step == nil || s.caches == nil {
		return errClosed
	}
	streams, t := len(rows), len(rows[0])
	if streams != s.streams {
		return fmt.Errorf("transfusion: %d rows for %d streams", streams, s.streams)
	}
	if s.pos+t > c.MaxLen {
		return fmt.Errorf("transfusion: sequence of %d items exceeds max_len %d", s.pos+t, c.MaxLen)
	}
	ids := make([]int32, streams*t)
	lat := make([]float32, streams*t*c.Latent)
	isL := make([]float32, streams*t)
	vis := make([]float32, 0, streams*t)
	for i, r := range rows {
		if len(r) != t {
			return fmt.Errorf("transfusion: rows of %d and %d items: every stream must hold the same number", t, len(r))
		}
		flags := make([]bool, t)
		for j, it := range r {
			k := i*t + j
			switch {
			case it.IsLatent():
				if len(it.Latent) != c.Latent {
					return fmt.Errorf("transfusion: latent of %d values, model has %d channels", len(it.Latent), c.Latent)
				}
				copy(lat[k*c.Latent:(k+1)*c.Latent], it.Latent)
				isL[k], flags[j] = 1, true
			case it.Token < 0 || it.Token >= c.Vocab.Size():
				return fmt.Errorf("transfusion: token %d out of range 0…%d", it.Token, c.Vocab.Size()-1)
			default:
				ids[k] = int32(it.Token)
			}
		}
		vis = append(vis, Visible(flags, s.pos)...)
	}
	pos := make([]float32, t)
	for i := range pos {
		pos[i] = float32(s.pos + i)
	}
	args := append([]any{
		tensors.FromFlatDataAndDimensions(ids, streams, t),
		tensors.FromFlatDataAndDimensions(lat, streams, t, c.Latent),
		tensors.FromFlatDataAndDimensions(isL, streams, t),
		tensors.FromFlatDataAndDimensions(make([]float32, streams*t), streams, t),
		tensors.FromFlatDataAndDimensions(vis, streams, t),
		tensors.FromFlatDataAndDimensions(pos, t),
	}, s.caches...)
	outs, err := m.step.Call(args...)
	nn.Release(args...) // the inputs, old caches included, are spent
	if err != nil {
		s.caches = nil
		return fmt.Errorf("transfusion: decoding step: %w", err)
	}
	nn.Release(s.hidden)
	s.hidden = outs[0]
	s.caches = make([]any, len(outs)-1)
	for i, o := range outs[1:] {
		s.caches[i] = o
	}
	s.pos += t
	return nil
}

// logits is the softmax head [S][V] after each stream's last item.
func (s *session) logits() ([][]float32, error) {
	if s.m.logits == nil || s.hidden == nil {
		return nil, errClosed
	}
	out, err := s.m.logits.Call(s.hidden)
	if err != nil {
		return nil, fmt.Errorf("transfusion: token head: %w", err)
	}
	defer nn.Release(out[0])
	flat := tensors.MustCopyFlatData[float32](out[0])
	v := s.m.Config.Vocab.Size()
	rows := make([][]float32, s.streams)
	for i := range rows {
		rows[i] = flat[i*v : (i+1)*v]
	}
	return rows, nil
}

func (s *session) close() {
	nn.Release(s.caches...)
	nn.Release(s.hidden)
	s.caches, s.hidden = nil, nil
}
