package valle

import (
	"errors"
	"fmt"

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
	// Batch is the most utterances GenerateBatch decodes together (0 or
	// 1: one at a time). It changes the speed, not the speech: every
	// utterance draws from its own generator.
	Batch int
}

// DefaultOptions are sampling at temperature 1 among the 50 likeliest, at
// most 10 s of speech, seed 1, 16 utterances at a time.
func DefaultOptions() Options {
	return Options{Temperature: 1, TopK: 50, MaxSeconds: 10, Seed: 1, Batch: 16}
}

// Validate reports the first option out of range.
func (o Options) Validate() error {
	switch {
	case !(o.Temperature >= 0 && o.Temperature <= 100):
		return fmt.Errorf("valle: temperature %v: want a value in [0, 100]", o.Temperature)
	case o.TopK < 0:
		return fmt.Errorf("valle: top-k %d: want 0 (all) or more", o.TopK)
	case !(o.MaxSeconds > 0 && o.MaxSeconds <= 3600):
		return fmt.Errorf("valle: max seconds %v: want a value in (0, 3600]", o.MaxSeconds)
	case o.Batch < 0:
		return fmt.Errorf("valle: batch %d: want 0 (one at a time) or more", o.Batch)
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
	owned   []*model.Store // the weights Load read for this model alone, freed by Close
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
	m.owned = []*model.Store{store}
	return m, nil
}

// Close releases the compiled graphs and, for a model Load read, its
// weights (nn.ReleaseStores); it is safe to call more than once.
func (m *Model) Close() {
	if m.engine != nil {
		m.engine.Close()
		m.engine = nil
	}
	if m.nar != nil {
		m.nar.Finalize()
		m.nar = nil
	}
	nn.ReleaseStores(m.owned...)
	m.owned = nil
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
