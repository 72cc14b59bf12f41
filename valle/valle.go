// Package valle is the discrete text-to-speech baseline of issue 18: a
// VALL-E-style model (Wang et al. 2023, “Neural Codec Language Models are
// Zero-Shot Text to Speech Synthesizers”, https://arxiv.org/abs/2301.02111,
// §4) over the codes of the speech tokenizer's residual-VQ codec (package
// speechvae, kind rvq), against which LatentLM's continuous TTS (package
// tts) is compared in decoding steps per second of audio and quality (the
// paper's Table 4, docs/DESIGN.md §12).
//
// An utterance is, per latent frame, N codes c_{t,1…N} of the codec's N
// codebooks, the first coarse and each later one a refinement of what the
// ones before left (speechvae's rvq.go). As in VALL-E, two models share
// the work:
//
//   - the autoregressive model (AR) predicts the first codebook frame by
//     frame, p(c_{t,1} | text, prompt's c_{:,1}, c_{<t,1}). It is LatentLM's
//     own causal Transformer and KV-cache engine (package lm) with the codes
//     as vocabulary entries after the characters, as the image VQ-MLLM does
//     (multimodal.CodeLosses, Arch VQ), and no diffusion head. Its sequence
//     is the TTS model's, with codes for latents:
//
//     <BOL> p_{0,1} … p_{P−1,1} <EOL>  chars  <BOL> c_{0,1} … c_{T−1,1} <EOL>
//
//     and <EOL> is a code like any other for the softmax head, so the model
//     ends the utterance itself, with no separate continue token (package
//     tts needs one because its frames come from the diffusion head).
//
//   - the non-autoregressive model (NAR) predicts codebook j = 2…N of every
//     frame at once, p(c_{:,j} | text, the whole prompt, c_{:,<j}): the same
//     layout, attention in both directions, each frame's input the sum of
//     the embeddings of the codebooks it already has (all of them in the
//     prompt, 1…j−1 in the target), a stage embedding for j added to every
//     position (VALL-E conditions its layer norm on j instead), and the
//     logits of codebook j from the embedding table of codebook j (VALL-E
//     ties the j-th prediction layer to the (j+1)-th embedding the same
//     way). Training draws j uniformly per utterance (VALL-E §4.2.2).
//
// Text is characters (tts.Alphabet, tts.Format.Encode), for the reasons
// package tts gives, or phonemes (Config.ReadingAs, `train --task valle
// --reading phonemes`), spelt as LatentLM's phoneme-reading models spell
// them (tts.ReadPhonemes), so that the two systems can read the same
// units. Decoding costs T+1 AR steps (T frames and the <EOL>
// decision) and N−1 NAR passes per utterance, so at the codec's frame rate
// f the baseline needs (T+N)/(T/f) = f + N/duration sequential backbone
// passes per second of audio (Speech.StepsPerSecond).
package valle

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/multimodal"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/speechvae"
	"github.com/latentlm/latentlm/tts"
)

// Kind is the checkpoint kind of the discrete TTS baseline.
const Kind = "valle"

// Config is the baseline's architecture, saved beside its weights.
type Config struct {
	// LM is the autoregressive model: its backbone and softmax head over
	// Vocab{Classes: 0, Extra: len(Alphabet) + CodebookSize} (characters,
	// then the first codebook's codes). Its diffusion head fields are
	// unused and its weights absent; Latent is 1 (lm.Embed's x_embedder,
	// d numbers that multiply zeros).
	LM lm.Config `json:"lm"`
	// NARDepth is the non-autoregressive model's blocks, of the LM's width
	// and heads (VALL-E: 12 each).
	NARDepth int    `json:"nar_depth"`
	Alphabet string `json:"alphabet"`
	// Reading is how the text is read, as tts.Record.Reading:
	// tts.ReadCharacters (also when empty, as in checkpoints from before
	// phonemes) or tts.ReadPhonemes, whose units Alphabet then lists.
	Reading      string  `json:"reading,omitempty"`
	Codebooks    int     `json:"codebooks"`
	CodebookSize int     `json:"codebook_size"`
	FrameRate    float64 `json:"frame_rate_hz"`
}

// NewConfig is the baseline for a codec (speechvae kind rvq) with an AR
// and a NAR of the given width and depth, sequences of up to maxLen items.
func NewConfig(codec speechvae.Config, dim, depth, heads, maxLen int) Config {
	return Config{
		LM: lm.Config{Dim: dim, Depth: depth, Heads: heads, KVHeads: heads, MLPRatio: 4, HeadDepth: 1, HeadDim: dim, Latent: 1,
			MaxLen: maxLen, Target: lm.DefaultConfig().Target,
			Vocab: lm.Vocab{Classes: 0, Extra: len([]rune(tts.Alphabet)) + codec.CodebookSize}},
		NARDepth: depth, Alphabet: tts.Alphabet, Reading: tts.ReadCharacters, Codebooks: codec.Codebooks, CodebookSize: codec.CodebookSize,
		FrameRate: codec.FrameRate(),
	}
}

// ReadingAs is c reading its text as reading says: tts.ReadCharacters, or
// tts.ReadPhonemes (each word spelt by the installed pronouncing
// dictionary, as tts.NewReadingFormat). The alphabet and so the
// vocabulary change with the reading, so it is chosen before training.
func (c Config) ReadingAs(reading string) (Config, error) {
	tf, err := tts.NewReadingFormat(reading, 1, c.FrameRate)
	if err != nil {
		return Config{}, fmt.Errorf("valle config: %w", err)
	}
	c.Alphabet, c.Reading = tf.AlphabetString(), tf.Reading
	c.LM.Vocab.Extra = len(tf.Alphabet) + c.CodebookSize
	return c, nil
}

// textFormat is the format of the config's text (tts.Record.Format: a
// phoneme reading needs this build's phonemes).
func (c Config) textFormat() (tts.Format, error) {
	return tts.Record{Alphabet: c.Alphabet, Reading: c.Reading, FrameRate: c.FrameRate}.Format(1)
}

// Validate reports an inconsistent configuration.
func (c Config) Validate() error {
	if err := c.LM.Validate(); err != nil {
		return fmt.Errorf("valle config: %w", err)
	}
	a := len([]rune(c.Alphabet))
	switch {
	case c.Codebooks < 2 || c.Codebooks > speechvae.MaxCodebooks:
		return fmt.Errorf("valle config: %d codebooks: want 2…%d (the NAR predicts codebooks 2…N)", c.Codebooks, speechvae.MaxCodebooks)
	case c.CodebookSize < 2:
		return fmt.Errorf("valle config: codebook_size %d: want at least 2", c.CodebookSize)
	case c.NARDepth < 1 || c.NARDepth > 1024:
		return fmt.Errorf("valle config: nar_depth %d out of range 1…1024", c.NARDepth)
	case !(c.FrameRate > 0 && c.FrameRate <= 1000):
		return fmt.Errorf("valle config: frame_rate_hz %v out of range (0, 1000]", c.FrameRate)
	case c.LM.Vocab.Classes != 0 || c.LM.Vocab.Extra != a+c.CodebookSize:
		return fmt.Errorf("valle config: vocab %+v: want 0 classes and %d extra ids (%d text units, %d codes)", c.LM.Vocab, a+c.CodebookSize, a, c.CodebookSize)
	}
	if _, err := c.textFormat(); err != nil {
		return fmt.Errorf("valle config: %w", err)
	}
	return nil
}

// JSON encodes the config.
func (c Config) JSON() []byte {
	b, _ := json.MarshalIndent(c, "", "  ")
	return b
}

// narBlock is the NAR's Transformer block: the LM's shape.
func (c Config) narBlock() nn.Block {
	return nn.Block{Attn: nn.Attention{Dim: c.LM.Dim, Heads: c.LM.Heads, KVHeads: c.LM.KVHeads}, Hidden: nn.SwiGLUHidden(c.LM.Dim, c.LM.MLPRatio)}
}

// The NAR's weight names.
const (
	narTokens = "nar.tok_embeddings.weight"   // [Vocab.Size(), d]: control tokens and characters
	narStages = "nar.stage_embeddings.weight" // [Codebooks, d]: row j for stage j (0-based codebook)
)

func narCodes(j int) string { return fmt.Sprintf("nar.code_embeddings.%d.weight", j) }

// Specs declares the weights: the AR's (lm's names, without the diffusion
// head, as for a VQ-MLLM) and the NAR's (under "nar.").
func (c Config) Specs() []nn.Spec {
	specs := multimodal.Config{LM: c.LM, Arch: multimodal.VQ, Codes: c.CodebookSize}.Specs()
	d := c.LM.Dim
	specs = append(specs,
		nn.Spec{Name: narTokens, Shape: []int{c.LM.Vocab.Size(), d}, Std: nn.InitStd},
		nn.Spec{Name: narStages, Shape: []int{c.Codebooks, d}, Std: nn.InitStd})
	for j := range c.Codebooks {
		specs = append(specs, nn.Spec{Name: narCodes(j), Shape: []int{c.CodebookSize, d}, Std: nn.InitStd})
	}
	b := c.narBlock()
	for i := range c.NARDepth {
		specs = append(specs, b.Specs(fmt.Sprintf("nar.blocks.%d", i))...)
	}
	return specs
}

// Format lays utterances out on the vocabulary: Null 0, <BOL> 1, <EOL> 2,
// the text's units (characters or phonemes) from 3, then the codes of the
// first codebook.
type Format struct {
	Text      tts.Format
	Vocab     lm.Vocab
	Codebooks int
	Codes     int // entries per codebook
}

// Format is the config's sequence format.
func (c Config) Format() (Format, error) {
	tf, err := c.textFormat()
	if err != nil {
		return Format{}, err
	}
	return Format{Text: tf, Vocab: c.LM.Vocab, Codebooks: c.Codebooks, Codes: c.CodebookSize}, nil
}

// Code is the model id of code k of the first codebook.
func (f Format) Code(k int) int { return f.Vocab.Text(len(f.Text.Alphabet) + k) }

// CodeOf is the code of a model id, and whether it is one.
func (f Format) CodeOf(id int) (int, bool) {
	k := id - f.Code(0)
	return k, k >= 0 && k < f.Codes
}

// Utterance is one training or generation example: the text's model ids
// (Format.Text.Encode), the voice prompt's codes and the speech's codes,
// one row of Codebooks codes per frame.
type Utterance struct {
	Text           []int
	Prompt, Speech [][]int32
}

// Check reports codes of the wrong width or out of range.
func (f Format) Check(u Utterance) error {
	if len(u.Text) == 0 {
		return &tts.TextError{Problem: "the text is empty"}
	}
	for _, id := range u.Text {
		if _, ok := f.Vocab.TextOf(id); !ok || id >= f.Code(0) {
			return fmt.Errorf("valle: text id %d is not a text unit", id)
		}
	}
	for name, frames := range map[string][][]int32{"prompt": u.Prompt, "speech": u.Speech} {
		for t, row := range frames {
			if len(row) != f.Codebooks {
				return fmt.Errorf("valle: %s frame %d has %d codes, want %d", name, t, len(row), f.Codebooks)
			}
			for j, k := range row {
				if k < 0 || int(k) >= f.Codes {
					return fmt.Errorf("valle: %s frame %d: code %d of codebook %d is outside 0…%d", name, t, k, j+1, f.Codes-1)
				}
			}
		}
	}
	return nil
}

// PrefixLen is the items before the first speech frame: <BOL>, the
// prompt's frames, <EOL>, the text and <BOL>.
func PrefixLen(promptFrames, textLen int) int { return tts.PrefixLen(promptFrames, textLen) }

// RowLen is the items of a whole sequence.
func RowLen(promptFrames, textLen, speechFrames int) int {
	return tts.RowLen(promptFrames, textLen, speechFrames)
}

// Prefix is the AR's sequence up to the first speech frame, <BOL> prompt
// (first codebook) <EOL> text <BOL>, as ids.
func (f Format) Prefix(u Utterance) []int {
	ids := make([]int, 0, PrefixLen(len(u.Prompt), len(u.Text)))
	ids = append(ids, f.Vocab.BOL())
	for _, row := range u.Prompt {
		ids = append(ids, f.Code(int(row[0])))
	}
	ids = append(ids, f.Vocab.EOL())
	ids = append(ids, u.Text...)
	return append(ids, f.Vocab.BOL())
}

// ARRow is the AR's whole sequence and its targets: the speech frames'
// first codes and the final <EOL> (the prompt and text are inputs only).
func (f Format) ARRow(u Utterance) (ids []int, target []bool) {
	ids = f.Prefix(u)
	target = make([]bool, len(ids), RowLen(len(u.Prompt), len(u.Text), len(u.Speech)))
	for _, row := range u.Speech {
		ids, target = append(ids, f.Code(int(row[0]))), append(target, true)
	}
	return append(ids, f.Vocab.EOL()), append(target, true)
}

// GuideSpan is where the AR row of u has its text and speech (tts.Guide):
// the row is laid out as LatentLM's, <BOL> prompt <EOL> text <BOL> frames
// <EOL>, with the first codebook's codes for frames.
func (f Format) GuideSpan(u Utterance) tts.GuideSpan {
	start := 2 + len(u.Prompt)
	return tts.GuideSpan{TextStart: start, TextEnd: start + len(u.Text), SpeechBOL: start + len(u.Text), Frames: len(u.Speech)}
}

// ARGuide is the guided attention weights of the AR rows of utts packed at
// length l (tts.Guide; the guide of Losses).
func (f Format) ARGuide(utts []Utterance, l int) []float32 {
	spans := make([]tts.GuideSpan, len(utts))
	for i, u := range utts {
		spans[i] = f.GuideSpan(u)
	}
	return tts.Guide(spans, l)
}

// ARBatch is AR rows packed to one length: ids and target masks [B, L].
type ARBatch struct {
	Rows, Len  int
	Ids        []int32
	Valid      []float32 // 1 where the item is a target (multimodal.CodeLosses)
	TargetsNum int
}

// PackAR lays the AR rows of utts out at length l.
func (f Format) PackAR(utts []Utterance, l int) (*ARBatch, error) {
	b := &ARBatch{Rows: len(utts), Len: l, Ids: make([]int32, len(utts)*l), Valid: make([]float32, len(utts)*l)}
	for i, u := range utts {
		if err := f.Check(u); err != nil {
			return nil, err
		}
		ids, target := f.ARRow(u)
		if len(ids) > l {
			return nil, fmt.Errorf("valle: sequence %d has %d items, more than the length %d", i, len(ids), l)
		}
		for j, id := range ids {
			b.Ids[i*l+j] = int32(id)
			if target[j] {
				b.Valid[i*l+j] = 1
				b.TargetsNum++
			}
		}
	}
	return b, nil
}

// NARBatch is the NAR's input for rows at one stage each, packed to one
// length L: Ids [B, L] (control tokens and characters; the first code's
// id at frames), Codes [B, L, N] (every codebook's code at frames, 0
// elsewhere), Use [B, L, N] (1 where codebook c's embedding enters the
// input: all of them in the prompt, those before the stage in the
// speech), IsFrame [B, L], Stage [B] (the 0-based codebook predicted,
// 1…N−1), Targets [B, L] (that codebook's codes at the speech frames) and
// Mask [B, L] (1 there), and Last [B] (the index of each row's last item;
// attention sees items 0…Last only, so padding changes nothing).
type NARBatch struct {
	Rows, Len           int
	Ids, Codes, Targets []int32
	Use, IsFrame, Mask  []float32
	Stage               []int32
	Last                []float32
	TargetsNum          int
}

// PackNAR lays out utts[i] at stage stages[i] (1…N−1) at length l.
func (f Format) PackNAR(utts []Utterance, stages []int, l int) (*NARBatch, error) {
	n, nb := f.Codebooks, len(utts)
	if len(stages) != nb {
		return nil, fmt.Errorf("valle: %d stages for %d utterances", len(stages), nb)
	}
	b := &NARBatch{Rows: nb, Len: l, Ids: make([]int32, nb*l), Codes: make([]int32, nb*l*n), Targets: make([]int32, nb*l),
		Use: make([]float32, nb*l*n), IsFrame: make([]float32, nb*l), Mask: make([]float32, nb*l), Stage: make([]int32, nb), Last: make([]float32, nb)}
	for i, u := range utts {
		if err := f.Check(u); err != nil {
			return nil, err
		}
		s := stages[i]
		if s < 1 || s >= n {
			return nil, fmt.Errorf("valle: stage %d: the NAR predicts codebooks 2…%d (stages 1…%d)", s, n, n-1)
		}
		ids, _ := f.ARRow(u)
		if len(ids) > l {
			return nil, fmt.Errorf("valle: sequence %d has %d items, more than the length %d", i, len(ids), l)
		}
		b.Stage[i], b.Last[i] = int32(s), float32(len(ids)-1)
		for j, id := range ids {
			b.Ids[i*l+j] = int32(id)
		}
		frame := func(pos int, row []int32, use int, target bool) {
			k := i*l + pos
			b.IsFrame[k] = 1
			for c := range n {
				b.Codes[k*n+c] = row[c]
				if c < use {
					b.Use[k*n+c] = 1
				}
			}
			if target {
				b.Targets[k], b.Mask[k] = row[s], 1
				b.TargetsNum++
			}
		}
		for t, row := range u.Prompt {
			frame(1+t, row, n, false)
		}
		start := PrefixLen(len(u.Prompt), len(u.Text))
		for t, row := range u.Speech {
			frame(start+t, row, s, true)
		}
	}
	return b, nil
}

// Describe is a one-line summary of the config.
func (c Config) Describe() string {
	var b strings.Builder
	reading := c.Reading
	if reading == "" {
		reading = tts.ReadCharacters
	}
	fmt.Fprintf(&b, "VALL-E-style baseline: AR d%d×%d and NAR d%d×%d over %d codebooks of %d at %.1f Hz, reading %s", c.LM.Dim, c.LM.Depth, c.LM.Dim, c.NARDepth,
		c.Codebooks, c.CodebookSize, c.FrameRate, reading)
	return b.String()
}

// ForwardFLOPs counts the matmul FLOPs of one teacher-forced pass of both
// models over batch sequences of length items: the AR as a VQ-MLLM
// (multimodal.Config.ForwardFLOPs: backbone and softmax head at every
// item) and the NAR counted as the AR scaled by NARDepth/Depth (the same
// blocks, and a softmax over the CodebookSize codes instead of the whole
// vocabulary, which is close: the text units and control tokens are a few
// dozen of it). The training FLOPs the issue asks to equalise are 3× this per step.
func (c Config) ForwardFLOPs(batch, length int) float64 {
	ar := multimodal.Config{LM: c.LM, Arch: multimodal.VQ, Codes: c.CodebookSize}.ForwardFLOPs(batch, length, 1)
	return ar * (1 + float64(c.NARDepth)/float64(c.LM.Depth))
}
