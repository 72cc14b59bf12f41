package tts

import (
	"errors"
	"fmt"
	"math"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/speechvae"
)

// Options control generation.
type Options struct {
	// SampleOptions are the solver of each frame (DPM-Solver++ steps), the
	// guidance scale (the unconditional stream drops the text), the
	// temperature of the initial noise and the seed.
	lm.SampleOptions
	// MaxSeconds bounds the speech of an utterance that the model does
	// not end itself (max_len bounds it too).
	MaxSeconds float64
	// PromptSeconds keeps the first PromptSeconds of a voice prompt (0:
	// all of it that fits); training crops prompts to 3 s by default.
	PromptSeconds float64
	// Batch is the most utterances generated at once. The engine's streams
	// of one batch must hold the same number of items, so only requests
	// whose prompt and text are as long together share a batch, unless
	// EqualisePrompts is set.
	Batch int
	// EqualisePrompts lets requests of different lengths share a batch by
	// cutting the end off the longer ones' prompts (never below one second
	// or, if shorter, the whole prompt): more throughput, but a request's
	// speech then depends on the others of its batch.
	EqualisePrompts bool
}

// MinPromptSeconds is the shortest voice prompt a model is given: a
// shorter clip (two or three latent frames) carries no voice to imitate.
const MinPromptSeconds = 0.1

// DefaultOptions are the defaults of `latentlm speak`: 5 DPM-Solver++
// steps (the paper's TTS uses few), guidance 3, temperature 1, seed 1, at
// most 10 s of speech, prompts of up to 3 s, 16 utterances at once.
func DefaultOptions() Options {
	return Options{SampleOptions: lm.SampleOptions{Steps: 5, CFG: 3, Temperature: 1, Seed: 1},
		MaxSeconds: 10, PromptSeconds: 3, Batch: 16}
}

// Validate reports the first option out of range.
func (o Options) Validate() error {
	if err := o.SampleOptions.Validate(); err != nil {
		return err
	}
	switch {
	case !(o.MaxSeconds > 0 && o.MaxSeconds <= 3600):
		return fmt.Errorf("max seconds %v: want a value in (0, 3600]", o.MaxSeconds)
	case !(o.PromptSeconds == 0 || o.PromptSeconds >= MinPromptSeconds && o.PromptSeconds <= 3600):
		return fmt.Errorf("prompt seconds %v: want 0 (all of the prompt) or a value in [%v, 3600]", o.PromptSeconds, MinPromptSeconds)
	case o.Batch < 1:
		return fmt.Errorf("batch %d: want at least 1", o.Batch)
	}
	return nil
}

// Record is what a checkpoint says about its text-to-speech format, beside
// the speech tokenizer's record (lm.Tokenizer).
type Record struct {
	Alphabet string `json:"alphabet"`
	// Reading is how the model reads its text: ReadCharacters (also when
	// empty, as in checkpoints from before phonemes) or ReadPhonemes.
	Reading   string  `json:"reading,omitempty"`
	FrameRate float64 `json:"frame_rate"`
	// PromptSeconds is the training prompts' crop (0: whole utterances).
	PromptSeconds float64 `json:"prompt_seconds"`
	// Stack is the speech tokenizer's frames per model frame (Format.Stack;
	// absent: 1). FrameRate is then the model's, the tokenizer's / Stack.
	Stack int `json:"stack,omitempty"`
}

// Format is the format the record describes, for the model's latent
// frames of channels values (Stack of the speech tokenizer's frames each).
func (r Record) Format(channels int) (Format, error) {
	if r.Stack > 1 && channels%r.Stack != 0 {
		return Format{}, fmt.Errorf("tts: %d channels do not split into %d stacked frames", channels, r.Stack)
	}
	var f Format
	var err error
	if r.Reading == "" || r.Reading == ReadCharacters {
		f, err = NewFormat(r.Alphabet, channels, r.FrameRate)
	} else {
		f, err = NewReadingFormat(r.Reading, channels, r.FrameRate)
		if err == nil && r.Alphabet != f.AlphabetString() {
			err = fmt.Errorf("tts: the model's phonemes %q are not this build's %q", r.Alphabet, f.AlphabetString())
		}
	}
	if err != nil {
		return Format{}, err
	}
	f.Stack = r.Stack // channels and rate are recorded as the model's
	return f, nil
}

// Model is a text-to-speech model ready to generate: the language model on
// its engine, its format and, for audio, its speech tokenizer.
type Model struct {
	Config lm.Config
	Format Format
	// Speech is the speech tokenizer (nil for a model that only
	// generates latent frames, as tests build).
	Speech *speechvae.Model
	Info   map[string]any // the checkpoint's info (training record)
	Dir    string

	opts   Options
	store  *model.Store
	engine *lm.Engine
	owned  []*model.Store // the weights Load read for this model alone, freed by Close
}

// New makes a model from weights in store (the EMA weights) of cfg, laid
// out by f, with the speech tokenizer sp (nil: latent frames only), which
// the model closes with itself.
func New(b compute.Backend, cfg lm.Config, store *model.Store, f Format, sp *speechvae.Model, opts Options) (*Model, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if cfg.Vocab != f.Vocab || cfg.Latent != f.Channels {
		return nil, fmt.Errorf("tts: the model (vocabulary %d, %d channels) does not fit its format (%d, %d)", cfg.Vocab.Size(), cfg.Latent, f.Vocab.Size(), f.Channels)
	}
	if k := f.stack(); sp != nil && (sp.Config.Channels*k != f.Channels || math.Abs(sp.Config.FrameRate()/float64(k)-f.FrameRate) > 1e-9) {
		return nil, fmt.Errorf("tts: the speech tokenizer (%d channels at %g Hz, %d frames a step) does not fit the model (%d at %g Hz)", sp.Config.Channels, sp.Config.FrameRate(), k, f.Channels, f.FrameRate)
	}
	e, err := lm.NewEngine(b, store, cfg, opts.SampleOptions)
	if err != nil {
		return nil, err
	}
	return &Model{Config: cfg, Format: f, Speech: sp, opts: opts, store: store, engine: e}, nil
}

// Save writes a text-to-speech checkpoint into dir: the EMA weights and
// config, the speech tokenizer's record (path and checksum) and the
// format's.
func Save(dir string, cfg lm.Config, store *model.Store, speechTok lm.Tokenizer, rec Record, info map[string]any) error {
	if info == nil {
		info = map[string]any{}
	}
	info[Kind] = rec
	return lm.SaveKind(dir, Kind, &cfg, store, speechTok, info)
}

// Load reads the checkpoint in dir and its speech tokenizer: speechDir, or
// if empty the one it records (whose checksum must match).
func Load(b compute.Backend, dir, speechDir string, opts Options) (*Model, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	var cfg lm.Config
	store, tokRec, h, err := lm.LoadKind(dir, Kind, &cfg)
	if err != nil {
		return nil, err
	}
	var rec Record
	if err := checkpoint.DecodeInfo(h, Kind, &rec); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	f, err := rec.Format(cfg.Latent)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if speechDir, err = tokRec.Find(dir, speechDir); err != nil {
		return nil, err
	}
	sp, err := speechvae.Load(b, speechDir)
	if err != nil {
		return nil, err
	}
	m, err := New(b, cfg, store, f, sp, opts)
	if err != nil {
		sp.Close()
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	m.Info, m.Dir = h.Info, dir
	m.owned = []*model.Store{store, sp.Store}
	return m, nil
}

// Close releases the compiled graphs, the speech tokenizer and, for a
// model Load read, its weights (nn.ReleaseStores).
func (m *Model) Close() {
	if m.engine != nil {
		m.engine.Close()
		m.engine = nil
	}
	if m.Speech != nil {
		m.Speech.Close()
	}
	nn.ReleaseStores(m.owned...)
	m.owned = nil
}

// Options are the generation options the model was made with.
func (m *Model) Options() Options { return m.opts }

// errClosed is the error of a model used after Close.
var errClosed = errors.New("tts: model used after Close")

// Target is the diffusion target new models train on: v, the paper's
// choice for speech (docs/DESIGN.md §5.2).
const Target = diffusion.Velocity
