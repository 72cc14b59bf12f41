package multimodal

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/text"
	"github.com/latentlm/latentlm/vae"
)

// Options control generation: the image latents' solver, guidance,
// temperature and seed (lm.SampleOptions), and how text is drawn.
type Options struct {
	lm.SampleOptions
	// TextTemperature divides the logits before text tokens are drawn; 0
	// takes the most likely token (greedy), as captions and answers do.
	TextTemperature float64
	// TopP keeps the smallest set of tokens whose probability reaches it
	// (nucleus sampling, Holtzman et al. 2019, arXiv 1904.09751); 1 keeps
	// all.
	TopP float64
	// MaxTokens bounds the text tokens generated per answer.
	MaxTokens int
	// TopK keeps only the K likeliest image codes when a VQ-MLLM draws an
	// image (top-k sampling, as VQGAN's transformer samples, Esser et al.
	// 2021, https://arxiv.org/abs/2012.09841); 0 keeps all. The codes are
	// drawn from softmax(logits/Temperature) of the guided logits (Guide).
	// LatentLM ignores it.
	TopK int
	// Batch is the most sequences generated at once.
	Batch int
}

// DefaultOptions are the defaults of `latentlm complete`: 20 DPM-Solver++
// steps, guidance 4, text temperature 0.8 and top-p 0.95.
func DefaultOptions() Options {
	return Options{SampleOptions: lm.DefaultSampleOptions(), TextTemperature: 0.8, TopP: 0.95, MaxTokens: 64, Batch: DefaultBatch}
}

// Validate reports the first option out of range.
func (o Options) Validate() error {
	if err := o.SampleOptions.Validate(); err != nil {
		return err
	}
	switch {
	case math.IsNaN(o.TextTemperature) || math.IsInf(o.TextTemperature, 0) || o.TextTemperature < 0:
		return fmt.Errorf("text temperature %v: want a finite value ≥ 0", o.TextTemperature)
	case !(o.TopP > 0 && o.TopP <= 1):
		return fmt.Errorf("top-p %v: want a value in (0, 1]", o.TopP)
	case o.MaxTokens < 1:
		return fmt.Errorf("max tokens %d: want at least 1", o.MaxTokens)
	case o.Batch < 1:
		return fmt.Errorf("batch %d: want at least 1", o.Batch)
	case o.TopK < 0:
		return fmt.Errorf("top-k %d: want 0 (all) or more", o.TopK)
	}
	return nil
}

// Model is a trained multimodal model ready to generate: the language
// model, its text tokenizer and its image tokenizer.
type Model struct {
	Config lm.Config
	// Arch is how images enter the model: LatentLM's latents or a
	// VQ-MLLM's codes (Format.Codes).
	Arch   Arch
	Format Format
	Text   *text.Tokenizer
	Image  *vae.Model
	Info   map[string]any // the checkpoint's info (training record)
	Dir    string

	backend compute.Backend
	store   *model.Store
	owned   []*model.Store // the weights Load read for this model alone, freed by Close
	opts    Options
	engine  *lm.Engine
	rng     *rand.Rand
	nats    *model.Exec // teacher-forced cross-entropy, built on first use
}

// Save writes a LatentLM multimodal checkpoint into dir: the language
// model's EMA weights and config, the record of its image tokenizer, and
// the text tokenizer as dir/tokenizer.json. SaveConfig writes any arch.
func Save(dir string, cfg lm.Config, store *model.Store, image lm.Tokenizer, tok *text.Tokenizer, info map[string]any) error {
	return SaveConfig(dir, Config{LM: cfg}, store, image, tok, info)
}

// SaveConfig is Save for a model of any arch (Config.Arch): a VQ-MLLM's
// config.json records its arch and codes, which Load dispatches on.
func SaveConfig(dir string, cfg Config, store *model.Store, image lm.Tokenizer, tok *text.Tokenizer, info map[string]any) error {
	if err := lm.SaveKind(dir, Kind, &cfg, store, image, info); err != nil {
		return err
	}
	return tok.WriteFile(filepath.Join(dir, TokenizerFile))
}

// Load reads the checkpoint in dir and its tokenizers: the text tokenizer
// beside it, the image tokenizer in imageDir or, if empty, the one it
// records (whose checksum must match). The checkpoint's arch (Config)
// says how the model reads and writes images: latents with the diffusion
// head (LatentLM), or codes with the softmax head (a VQ-MLLM, whose image
// tokenizer must be the vq tokenizer of its codebook); every method of
// Model serves both.
func Load(b compute.Backend, dir, imageDir string, opts Options) (*Model, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	var mc Config
	store, rec, h, err := lm.LoadKind(dir, Kind, &mc)
	if err != nil {
		return nil, err
	}
	cfg := mc.LM
	needs := TokenizerNeeds{TextIDs: mc.TextIDs(), Channels: cfg.Latent, MaxLen: cfg.MaxLen}
	if mc.Arch == VQ {
		needs.Codes = mc.Codes
	}
	tok, img, err := LoadTokenizers(b, dir, imageDir, rec, needs)
	if err != nil {
		return nil, err
	}
	ic := img.Config
	m := &Model{Config: cfg, Arch: mc.Arch, Text: tok, Image: img, Info: h.Info, Dir: dir, backend: b, store: store, opts: opts,
		Format: Format{Vocab: cfg.Vocab, EOT: tok.EOT(), Items: ic.Items(), Channels: ic.Channels, Codes: mc.Codes}}
	if m.engine, err = lm.NewEngine(b, store, cfg, opts.SampleOptions); err != nil {
		img.Close()
		return nil, err
	}
	m.owned = []*model.Store{store, img.Store}
	m.rng = rand.New(rand.NewPCG(uint64(opts.Seed), textStream))
	return m, nil
}

// TokenizerNeeds is what a model of this format asks of the tokenizers it
// is loaded with (LoadTokenizers).
type TokenizerNeeds struct {
	// TextIDs is the caption tokenizer's size.
	TextIDs int
	// Channels are the latent channels of the image tokenizer of a model
	// that draws latents (LatentLM, Transfusion).
	Channels int
	// Codes, above 0, asks instead for a vq image tokenizer of this
	// codebook (a VQ-MLLM).
	Codes int
	// MaxLen is the model's context: an image's items, its <BOL> and
	// <EOL> and one more token must fit.
	MaxLen int
}

// LoadTokenizers reads the two tokenizers a checkpoint of this format
// works with, for Load and the baselines' loaders (transfusion.Load): the
// caption tokenizer beside it (TokenizerFile) and the image tokenizer in
// imageDir or, if empty, the one the checkpoint records as rec (whose
// checksum must match), each checked against needs. On error nothing
// stays open.
func LoadTokenizers(b compute.Backend, dir, imageDir string, rec lm.Tokenizer, needs TokenizerNeeds) (*text.Tokenizer, *vae.Model, error) {
	tok, err := text.ReadFile(filepath.Join(dir, TokenizerFile))
	if err != nil {
		return nil, nil, err
	}
	if tok.Size() != needs.TextIDs {
		return nil, nil, fmt.Errorf("%s: tokenizer has %d ids, the model's vocabulary %d text ids", dir, tok.Size(), needs.TextIDs)
	}
	if imageDir, err = rec.Find(dir, imageDir); err != nil {
		return nil, nil, err
	}
	img, err := vae.Load(b, imageDir)
	if err != nil {
		return nil, nil, err
	}
	ic := img.Config
	fits, want := ic.Channels == needs.Channels, fmt.Sprintf("%d channels", needs.Channels)
	if needs.Codes > 0 {
		fits, want = ic.Kind == vae.VQ && ic.Codebook == needs.Codes, fmt.Sprintf("a vq tokenizer of %d codes (a VQ-MLLM)", needs.Codes)
	}
	if !fits || ic.Items()+3 > needs.MaxLen {
		img.Close()
		return nil, nil, fmt.Errorf("image tokenizer %s (kind %v, %d channels, codebook %d, %d items) does not fit the model %s: it needs %s, max_len %d",
			imageDir, ic.Kind, ic.Channels, ic.Codebook, ic.Items(), dir, want, needs.MaxLen)
	}
	return tok, img, nil
}

// textStream is the PCG stream of the host generator of text tokens.
const textStream = 0x7465_7874

// Close releases the compiled graphs, the image tokenizer and the weights
// Load read (nn.ReleaseStores). It is safe to call more than once.
func (m *Model) Close() {
	if m.engine != nil {
		m.engine.Close()
		m.engine = nil
	}
	if m.nats != nil {
		m.nats.Finalize()
		m.nats = nil
	}
	if m.Image != nil {
		m.Image.Close()
	}
	nn.ReleaseStores(m.owned...)
	m.owned = nil
}

// Captioned says whether the model learnt captions: every canvas model,
// and an emoji or folder model trained on pictures that had some. One
// trained on pictures without any (a class-free model, recorded as
// captioned_images 0) draws only from the empty caption.
func (m *Model) Captioned() bool { return Captioned(m.Info) }

// Captioned is the rule of Model.Captioned on a checkpoint's info, for
// every model of the format: true unless it records captioned_images 0.
func Captioned(info map[string]any) bool {
	n, ok := info["captioned_images"].(float64)
	return !ok || n > 0
}

// InfoSampleTemperature is the info key of a checkpoint's own scale of
// the initial noise (Model.SampleTemperature).
const InfoSampleTemperature = "sample_temperature"

// SampleTemperature is the scale of each latent's initial noise that the
// checkpoint records as its own (info "sample_temperature"), or 1, the
// plain sampler's. Sampling from noise of a lower scale trades variety for
// fidelity, as Glow's and BigGAN's truncation do: the emoji model draws
// the subcategory and skin tone a caption names more often at 0.8 than at
// 1 (docs/RESULTS.md, "Fifth run"), so it records 0.8, which the commands
// use unless --temperature is given. It is an error for a checkpoint to
// record a value that is not a positive number.
func (m *Model) SampleTemperature() (float64, error) {
	v, ok := m.Info[InfoSampleTemperature]
	if !ok {
		return 1, nil
	}
	t, isNum := v.(float64)
	if !isNum || !(t > 0) || math.IsInf(t, 0) {
		return 0, fmt.Errorf("%s: %s %v in config.json: want a positive number", m.Dir, InfoSampleTemperature, v)
	}
	return t, nil
}

// Options are the generation options the model was loaded with.
func (m *Model) Options() Options { return m.opts }

// PromptError is a prompt the model cannot take.
type PromptError struct{ Problem string }

func (e *PromptError) Error() string { return e.Problem }

// encodePrompt tokenizes a prompt, refusing one that is empty, not UTF-8,
// or too long to leave room for room more items.
func (m *Model) encodePrompt(what, s string, room int) ([]int, error) {
	return EncodePrompt(m.Text, m.Config.MaxLen, what, s, room)
}

// errClosed is the error of a model used after Close.
var errClosed = errors.New("multimodal: model used after Close")
