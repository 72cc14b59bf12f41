package valle

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/gomlx/compute"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/speechvae"
	"github.com/latentlm/latentlm/vae"
)

// Speaker is the baseline with its codec: text and a voice prompt of 16 kHz
// samples in, 16 kHz speech out, as tts.Model.Speak is for LatentLM. The
// prompt is quantised by the codec and cropped to PromptSeconds (the
// length the model was trained with: its first seconds, where training
// took a random window); the codes Generate draws are mapped back to the
// codec's latents (the sum of each frame's codebook entries) and decoded.
type Speaker struct {
	Model *Model
	Codec *speechvae.Model
	// PromptSeconds crops the voice prompt (0: all of it).
	PromptSeconds float64
}

// LoadSpeaker reads the checkpoint in dir and its codec: codecDir, or if
// empty the one it records (whose checksum must match).
func LoadSpeaker(b compute.Backend, dir, codecDir string) (*Speaker, error) {
	h, err := checkpoint.ReadHeader(dir, Kind, &Config{})
	if err != nil {
		return nil, err
	}
	var rec lm.Tokenizer
	if err := checkpoint.DecodeInfo(h, "tokenizer", &rec); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	var promptSeconds float64
	if _, ok := h.Info["prompt_seconds"]; ok {
		if err := checkpoint.DecodeInfo(h, "prompt_seconds", &promptSeconds); err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
	}
	if codecDir, err = rec.Find(dir, codecDir); err != nil {
		return nil, err
	}
	codec, err := speechvae.Load(b, codecDir)
	if err != nil {
		return nil, err
	}
	m, err := Load(b, dir)
	if err != nil {
		codec.Close()
		return nil, err
	}
	s := &Speaker{Model: m, Codec: codec, PromptSeconds: promptSeconds}
	if err := s.check(); err != nil {
		s.Close()
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return s, nil
}

// check reports a codec that does not fit the model.
func (s *Speaker) check() error {
	c, cc := s.Model.Config, s.Codec.Config
	switch {
	case cc.Kind != vae.VQ:
		return fmt.Errorf("the codec is a %s speech tokenizer, not a residual-VQ one", cc.KindName())
	case cc.Codebooks != c.Codebooks || cc.CodebookSize != c.CodebookSize || math.Abs(cc.FrameRate()-c.FrameRate) > 1e-9:
		return fmt.Errorf("the codec (%d codebooks of %d at %g Hz) does not fit the model (%d of %d at %g Hz)",
			cc.Codebooks, cc.CodebookSize, cc.FrameRate(), c.Codebooks, c.CodebookSize, c.FrameRate)
	}
	return nil
}

// Spoken is one utterance of Speak: its codes and counts, and its audio.
type Spoken struct {
	*Speech
	Samples []float32 // 16 kHz
}

// Speak says text in the voice of prompt (16 kHz samples of another
// utterance): SpeakBatch of one.
func (s *Speaker) Speak(ctx context.Context, text string, prompt []float32, o Options, seed uint64) (*Spoken, error) {
	out, err := s.SpeakBatch(ctx, []string{text}, [][]float32{prompt}, o, seed)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// SpeakBatch says texts[i] in the voice of prompts[i], o.Batch utterances
// at a time (Model.GenerateBatch). seed seeds the decoder's Griffin-Lim
// phases; o.Seed the draw of the codes. Speech the model ends before its
// first frame is one frame of silence, so that every text has audio to
// judge.
func (s *Speaker) SpeakBatch(ctx context.Context, texts []string, prompts [][]float32, o Options, seed uint64) ([]*Spoken, error) {
	if s.Model == nil || s.Codec == nil {
		return nil, errClosed
	}
	if len(prompts) != len(texts) {
		return nil, fmt.Errorf("valle: %d voice prompts for %d texts", len(prompts), len(texts))
	}
	per := s.Codec.Config.SamplesPerLatent()
	reqs := make([]Request, len(texts))
	for i, text := range texts {
		ids, err := s.Model.Format.Text.Encode(text)
		if err != nil {
			return nil, err
		}
		prompt := prompts[i]
		if len(prompt) == 0 {
			return nil, errors.New("valle: the voice prompt holds no audio")
		}
		if s.PromptSeconds > 0 {
			frames := max(1, int(math.Round(s.PromptSeconds*s.Codec.Config.FrameRate())))
			prompt = prompt[:min(len(prompt), frames*per)]
		}
		codes, err := s.Codec.Codes(prompt)
		if err != nil {
			return nil, fmt.Errorf("valle: the voice prompt: %w", err)
		}
		reqs[i] = Request{Text: ids, Prompt: codes}
	}
	sps, err := s.Model.GenerateBatch(ctx, reqs, o)
	if err != nil {
		return nil, err
	}
	out := make([]*Spoken, len(sps))
	for i, sp := range sps {
		out[i] = &Spoken{Speech: sp}
		if len(sp.Codes) == 0 {
			out[i].Samples = make([]float32, per)
			continue
		}
		z, err := s.Codec.CodeLatents(sp.Codes)
		if err != nil {
			return nil, err
		}
		if out[i].Samples, err = s.Codec.Decode(z, 0, seed); err != nil {
			return nil, fmt.Errorf("valle: decoding the speech of %q: %w", texts[i], err)
		}
	}
	return out, nil
}

// Close releases the model and the codec; it is safe to call more than
// once.
func (s *Speaker) Close() {
	if s.Model != nil {
		s.Model.Close()
		s.Model = nil
	}
	if s.Codec != nil {
		s.Codec.Close()
		s.Codec = nil
	}
}
