// Package tts is LatentLM's text-to-speech model (issue 18): the paper's
// §3.3 and Table 4 ("Multimodal Latent Language Modeling with Next-Token
// Diffusion", Sun et al., 2024, https://arxiv.org/abs/2412.08635), on the
// same causal Transformer and KV-cache engine as images and text (package
// lm; docs/DESIGN.md §1, §3–§7, §12). Speech is a run of σ-VAE latent
// frames at 25 Hz (package speechvae), or of k of them stacked into one
// frame at 25/k Hz (Format.Stacked); the diffusion head writes them, and
// the softmax head decides where the speech ends.
//
// A sequence is
//
//	<BOL> p₀ … p_{P−1} <EOL>  c₁ … c_T  <BOL> z₀ … z_{N−1} <EOL>
//
// a voice prompt (the latents of another utterance of the target voice,
// inputs only), the text as characters (inputs only), then the speech.
// The targets are the speech latents (diffusion loss) and, at every speech
// position, what comes next: Continue after z₀ … z_{N−2}, <EOL> after
// z_{N−1} (cross-entropy, lm.LossOptions.LatentTokens). So at each speech
// frame the softmax head says whether the utterance goes on, and generation
// stops where its most likely token is <EOL> (lm.Segment.StopAtEOL): the
// model itself chooses the length, as in the paper's TTS.
//
// # Text units: characters
//
// The text is spelt in characters (Alphabet: lower-case letters, space,
// apostrophe, hyphen and the punctuation . , ! ? ; :), one model id each,
// not in the byte-level BPE of the multimodal model. The speech data is
// small (400 texts per set, each in six voices): a 2048-id BPE trained on
// the fortunes would make most number words single tokens, each seen in a
// handful of texts, and the model would have to learn every word's sound
// from those alone; characters are shared by every word, so pronunciation
// is learnt once per letter pattern and carries over to the test split's
// unseen combinations. Characters also follow the sounds in order and
// their count grows with the duration, which helps both the alignment and
// the stopping decision. The numbers are already spelt out in the data
// (speech.Cardinal and friends: "two thousand four hundred twelve"), so
// digits never occur; text with a character outside the alphabet is
// refused rather than silently dropped.
//
// # Text units: phonemes
//
// Characters serve the spoken numbers, whose 67 words a model hears
// hundreds of times each. The sentences use thousands of words, many heard
// once or never, and English spelling does not say how a word sounds. A
// model may instead read phonemes (ReadPhonemes, `train --task tts
// --reading phonemes`): each word spelt by the CMU pronouncing dictionary
// that the speech judge uses, or by festival's letter-to-sound rules where
// the dictionary lacks it (package phoneme), one unit per phoneme, with
// spaces and punctuation kept. The checkpoint records its reading, so
// `speak` and the server spell a text the way the model was trained.
//
// # The continue target
//
// The paper's head predicts <EOL> at the end of the speech; lm.Config.Loss
// only trains the softmax head where the next item is a token, which never
// teaches it to say "not yet" (docs/DESIGN.md §7). A dedicated id,
// Continue (the last id of the vocabulary), is its target after every
// speech frame but the last. A dedicated id rather than <BOL> reused keeps
// <BOL> meaning one thing (a latent segment opens), and the head's choice
// at a speech frame is then exactly Continue against <EOL>.
//
// # Decoding
//
// Model.Generate prefills <BOL> prompt <EOL> text <BOL>, and as guidance
// stream the same with the text replaced by as many null tokens (the
// training drops the text with probability TextDropout), then draws the
// frames one by one with DPM-Solver++ on the v target (the paper's choice
// for speech; 3 to 10 steps) under classifier-free guidance, and after
// each frame reads the softmax head: the segment ends when <EOL> is the
// most likely token (argmax, i.e. more likely than Continue), or at
// MaxSeconds. A callback receives every frame as it is drawn, so audio can
// be decoded in chunks while the model goes on (Stream).
package tts

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/multimodal"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/phoneme"
	"github.com/latentlm/latentlm/vae"
)

// Kind is the checkpoint kind of a text-to-speech model.
const Kind = "tts"

// Alphabet is the characters of the text, in id order: text id j is
// Alphabet's j-th character. Upper case is folded to lower case and runs
// of white space to one space first (Normalize).
const Alphabet = " abcdefghijklmnopqrstuvwxyz'-.,!?;:"

// PhonemeAlphabet is the units of a model that reads phonemes: a space,
// the 39 phonemes of the CMU dictionary (phoneme.Runes, one rune each) and
// the punctuation that ends a word.
const PhonemeAlphabet = " " + phoneme.Runes + phoneme.Punctuation

// How a model reads its text (Format.Reading, Record.Reading).
const (
	// ReadCharacters: one unit per character of Alphabet.
	ReadCharacters = "characters"
	// ReadPhonemes: each word spelt in phonemes (package phoneme: the CMU
	// dictionary, then festival's letter-to-sound rules), one unit per
	// phoneme of PhonemeAlphabet; spaces and punctuation as they are.
	ReadPhonemes = "phonemes"
)

// Format lays the text-to-speech sequence out on a model's vocabulary:
// Vocab{Classes: 0, Extra: len(alphabet)+1}, so id 0 is the null token
// (a dropped text character), 1 <BOL>, 2 <EOL>, character j is
// Vocab.Text(j) and Continue is the last id.
type Format struct {
	Vocab    lm.Vocab
	Alphabet []rune
	// Reading is ReadCharacters or ReadPhonemes.
	Reading  string
	Channels int // values per latent frame
	// FrameRate is latent frames per second (25 for the speech tokenizer's
	// default).
	FrameRate float64
	// Stack is how many of the speech tokenizer's frames make one of the
	// model's (1, or 0 for a format made before stacking: one). See
	// Format.Stacked.
	Stack   int
	index   map[rune]int
	speller *phoneme.Speller // ReadPhonemes: spells the words
}

// NewFormat is the format of an alphabet (Alphabet for new models),
// latent frames of channels values and frameRate frames per second.
func NewFormat(alphabet string, channels int, frameRate float64) (Format, error) {
	f := Format{Alphabet: []rune(alphabet), Reading: ReadCharacters, Channels: channels, FrameRate: frameRate, index: map[rune]int{}}
	if len(f.Alphabet) == 0 || !utf8.ValidString(alphabet) {
		return Format{}, errors.New("tts: empty or invalid alphabet")
	}
	for i, r := range f.Alphabet {
		if _, dup := f.index[r]; dup {
			return Format{}, fmt.Errorf("tts: alphabet repeats %q", r)
		}
		f.index[r] = i
	}
	if channels < 1 || !(frameRate > 0) {
		return Format{}, fmt.Errorf("tts: %d channels at %v frames per second", channels, frameRate)
	}
	f.Vocab = lm.Vocab{Classes: 0, Extra: len(f.Alphabet) + 1}
	return f, nil
}

// NewReadingFormat is the format of a new model that reads its text as
// reading says (ReadCharacters: Alphabet; ReadPhonemes: PhonemeAlphabet,
// with the installed pronouncing dictionary, phoneme.Default).
func NewReadingFormat(reading string, channels int, frameRate float64) (Format, error) {
	switch reading {
	case ReadCharacters, "":
		return NewFormat(Alphabet, channels, frameRate)
	case ReadPhonemes:
		sp, err := phoneme.Default()
		if err != nil {
			return Format{}, fmt.Errorf("tts: %w", err)
		}
		f, err := NewFormat(PhonemeAlphabet, channels, frameRate)
		f.Reading, f.speller = ReadPhonemes, sp
		return f, err
	}
	return Format{}, fmt.Errorf("tts: reading %q: want %s or %s", reading, ReadCharacters, ReadPhonemes)
}

// Stacked is f reading k consecutive frames of its speech tokenizer as
// one frame of k·Channels values, at FrameRate/k: a 25 Hz tokenizer read
// two at a time gives the model 12.5 frames a second, each one backbone
// step and one run of the diffusion head, while the audio is the 25 Hz
// tokenizer's, as good as before. A continuous frame widens at no cost to
// the vocabulary (the diffusion head just writes more values), which a
// discrete codec cannot do without multiplying its codebook (VALL-E 2's
// grouped code modelling predicts a group's codes with one head each).
// It is how LatentLM's decoding steps per second of audio fall without a
// new tokenizer (the paper's §3.3: 15 latent frames a second against a
// codec's 75; docs/DESIGN.md §12).
func (f Format) Stacked(k int) (Format, error) {
	if k < 1 || f.Stack > 1 {
		return Format{}, fmt.Errorf("tts: stacking %d frames of a format that stacks %d", k, f.Stack)
	}
	f.Channels *= k
	f.FrameRate /= float64(k)
	f.Stack = k
	return f, nil
}

// stack is the format's Stack, at least 1.
func (f Format) stack() int { return max(1, f.Stack) }

// StackFrames lays the speech tokenizer's frames out as the model's:
// each run of Stack frames end to end as one (the first frame's values,
// then the next's). A last run short of Stack is filled by repeating its
// last frame, so that an utterance ends as it ended (in silence, for the
// data here) rather than in made-up values; UnstackFrames then gives back
// up to Stack−1 frames more than there were. With Stack 1 it returns
// frames as they are.
func (f Format) StackFrames(frames [][]float32) [][]float32 {
	k := f.stack()
	if k == 1 {
		return frames
	}
	out := make([][]float32, 0, (len(frames)+k-1)/k)
	for i := 0; i < len(frames); i += k {
		z := make([]float32, 0, f.Channels)
		for j := range k {
			z = append(z, frames[min(i+j, len(frames)-1)]...)
		}
		out = append(out, z)
	}
	return out
}

// UnstackFrames is the inverse of StackFrames: each of the model's frames
// (Channels values) split into Stack frames of the speech tokenizer, in
// order.
func (f Format) UnstackFrames(frames [][]float32) [][]float32 {
	k := f.stack()
	if k == 1 {
		return frames
	}
	c := f.Channels / k
	out := make([][]float32, 0, len(frames)*k)
	for _, z := range frames {
		for j := range k {
			out = append(out, z[j*c:(j+1)*c])
		}
	}
	return out
}

// Continue is the id the softmax head is trained to predict after every
// speech frame but the last: the utterance goes on.
func (f Format) Continue() int { return f.Vocab.Text(len(f.Alphabet)) }

// AlphabetString is the alphabet as a string, as checkpoints record it.
func (f Format) AlphabetString() string { return string(f.Alphabet) }

// Normalize is the text as the model reads it: lower case, typographic
// apostrophes made plain, white space runs made one space, trimmed.
func Normalize(text string) string {
	text = strings.ReplaceAll(strings.ReplaceAll(text, "’", "'"), "‘", "'")
	return strings.Join(strings.Fields(strings.ToLower(text)), " ")
}

// TextError is text the model cannot read: empty, or with a character
// outside its alphabet.
type TextError struct{ Problem string }

func (e *TextError) Error() string { return e.Problem }

// Encode is the model ids of the normalised text, one per character.
func (f Format) Encode(text string) ([]int, error) {
	if !utf8.ValidString(text) {
		return nil, &TextError{"the text is not valid UTF-8"}
	}
	s := Normalize(text)
	if s == "" {
		return nil, &TextError{"the text is empty"}
	}
	if f.speller != nil {
		var err error
		if s, err = f.speller.Text(s); err != nil {
			var we *phoneme.WordError
			if errors.As(err, &we) {
				hint := ""
				if strings.ContainsAny(we.Word, "0123456789") {
					hint = " (spell numbers out in words, as the training texts do)"
				}
				return nil, &TextError{we.Error() + hint}
			}
			return nil, fmt.Errorf("tts: spelling the text in phonemes: %w", err)
		}
	}
	ids := make([]int, 0, len(s))
	for _, r := range s {
		j, ok := f.index[r]
		if !ok {
			hint := ""
			if r >= '0' && r <= '9' {
				hint = " (spell numbers out in words, as the training texts do)"
			}
			return nil, &TextError{fmt.Sprintf("the text holds %q, which is not in the model's alphabet %q%s", r, string(f.Alphabet), hint)}
		}
		ids = append(ids, f.Vocab.Text(j))
	}
	return ids, nil
}

// Decode is the text of model ids (characters, or phonemes as
// phoneme.Runes; other ids are left out).
func (f Format) Decode(ids []int) string {
	var b strings.Builder
	for _, id := range ids {
		if j, ok := f.Vocab.TextOf(id); ok && j < len(f.Alphabet) {
			b.WriteRune(f.Alphabet[j])
		}
	}
	return b.String()
}

// PrefixLen is the items before the first speech frame: <BOL>, the
// prompt's frames, <EOL>, the text and <BOL>.
func PrefixLen(promptFrames, textLen int) int { return promptFrames + textLen + 3 }

// RowLen is the items of a whole training sequence.
func RowLen(promptFrames, textLen, speechFrames int) int {
	return PrefixLen(promptFrames, textLen) + speechFrames + 1
}

// Prefix is the sequence up to the first speech frame, <BOL> prompt <EOL>
// text <BOL>; with null set, the text is replaced by as many null tokens
// (the unconditional stream of guidance).
func (f Format) Prefix(prompt [][]float32, text []int, null bool) []lm.Item {
	out := make([]lm.Item, 0, PrefixLen(len(prompt), len(text)))
	out = append(out, lm.TokenItem(f.Vocab.BOL()))
	for _, z := range prompt {
		out = append(out, lm.LatentItem(z))
	}
	out = append(out, lm.TokenItem(f.Vocab.EOL()))
	for _, id := range text {
		if null {
			id = f.Vocab.Null()
		}
		out = append(out, lm.TokenItem(id))
	}
	return append(out, lm.TokenItem(f.Vocab.BOL()))
}

// Row is one training sequence: the items of multimodal.Row (with Scales,
// the σ-VAE noise scale of each latent, and NotTarget) and, per item,
// whether it is a speech frame whose Continue the softmax head predicts.
type Row struct {
	multimodal.Row
	Continue []bool
	// TextStart, TextEnd and SpeechBOL place the text [TextStart,
	// TextEnd) and the <BOL> that opens the speech; TextDropped says the
	// text was replaced by null tokens. Format.Guide reads them.
	TextStart, TextEnd, SpeechBOL int
	TextDropped                   bool
}

func (r *Row) add(it lm.Item, scale []float32, target, cont bool) {
	r.Items = append(r.Items, it)
	r.Scales = append(r.Scales, scale)
	r.NotTarget = append(r.NotTarget, !target)
	r.Continue = append(r.Continue, cont)
}

// TrainingRow lays out <BOL> prompt <EOL> text <BOL> speech <EOL> for
// training. prompt and speech are latent frames (the σ-VAE means), scale
// the per-channel noise scale of every frame (nil: none). The prompt and
// the text are inputs, never targets; with dropText the text is null
// tokens. The speech frames are targets of the diffusion head, every frame
// after the first also of the softmax head (Continue: the frame before it
// predicts that the utterance goes on), and <EOL> ends it.
func (f Format) TrainingRow(prompt [][]float32, text []int, speech [][]float32, scale []float32, dropText bool) Row {
	var r Row
	r.add(lm.TokenItem(f.Vocab.BOL()), nil, false, false)
	for _, z := range prompt {
		r.add(lm.LatentItem(z), scale, false, false)
	}
	r.add(lm.TokenItem(f.Vocab.EOL()), nil, false, false)
	r.TextStart, r.TextDropped = len(r.Items), dropText
	for _, id := range text {
		if dropText {
			id = f.Vocab.Null()
		}
		r.add(lm.TokenItem(id), nil, false, false)
	}
	r.TextEnd, r.SpeechBOL = len(r.Items), len(r.Items)
	r.add(lm.TokenItem(f.Vocab.BOL()), nil, false, false)
	for k, z := range speech {
		r.add(lm.LatentItem(z), scale, true, k > 0)
	}
	r.add(lm.TokenItem(f.Vocab.EOL()), nil, true, false)
	return r
}

// Batch is rows packed to one length: multimodal.Batch (Ids, Latents,
// Scales, IsLatent, Valid, and HeadRows, where the diffusion head runs: the
// speech frames, about a fifth of the positions) and LatentTokens [B, L],
// 1 at the speech frames whose Ids entry, Continue, the softmax head is
// trained to predict (lm.LossOptions.LatentTokens).
type Batch struct {
	*multimodal.Batch
	LatentTokens []float32
	Continues    int // Continue targets
	// Guide, when set, is Format.Guide of the rows [Rows, Len, Len]: the
	// last of Inputs.
	Guide []float32
}

// Pack lays rows out at length l, padding short ones; a longer row is an
// error.
func (f Format) Pack(rows []Row, l int) (*Batch, error) {
	mf := multimodal.Format{Vocab: f.Vocab, Channels: f.Channels}
	plain := make([]multimodal.Row, len(rows))
	for i, r := range rows {
		plain[i] = r.Row
	}
	b, err := mf.Pack(plain, l)
	if err != nil {
		return nil, fmt.Errorf("tts: %s", strings.TrimPrefix(err.Error(), "multimodal: "))
	}
	out := &Batch{Batch: b, LatentTokens: make([]float32, len(rows)*l)}
	for i, r := range rows {
		for j, c := range r.Continue {
			if c && r.Items[j].IsLatent() && !r.NotTarget[j] {
				out.Ids[i*l+j] = int32(f.Continue())
				out.LatentTokens[i*l+j] = 1
				out.Continues++
			}
		}
	}
	return out, nil
}

// Inputs are the batch as the inputs of Losses, in its order: ids,
// latents (the σ-VAE means), their noise scales, isLatent, valid,
// latentTokens, headRows, headRowWeights and, when set, the guide;
// channels is the latent width.
func (b *Batch) Inputs(channels int) []any {
	n, l, k := b.Rows, b.Len, len(b.HeadRows)
	in := append(b.Batch.Inputs(channels, false, false),
		tensors.FromFlatDataAndDimensions(b.LatentTokens, n, l),
		tensors.FromFlatDataAndDimensions(b.HeadRows, k),
		tensors.FromFlatDataAndDimensions(b.HeadRowWeights, k))
	if b.Guide != nil {
		in = append(in, tensors.FromFlatDataAndDimensions(b.Guide, n, l, l))
	}
	return in
}

// GuideWidth is g of the guided attention weights (Format.Guide), the
// value of Tachibana et al. (2017, §4.1).
const GuideWidth = 0.2

// GuideSpan is where one sequence's text and speech lie, as Guide reads
// them: the text is items [TextStart, TextEnd) (none when they are equal,
// as for a row whose text was dropped), and the speech is the <BOL> at
// SpeechBOL followed by Frames frames. LatentLM's rows (Row.GuideSpan) and
// the VALL-E-style baseline's (valle.Format.GuideSpan) share this layout.
type GuideSpan struct {
	TextStart, TextEnd, SpeechBOL, Frames int
}

// GuideSpan is the row's text and speech for Guide.
func (r Row) GuideSpan() GuideSpan {
	s := GuideSpan{TextStart: r.TextStart, TextEnd: r.TextEnd, SpeechBOL: r.SpeechBOL, Frames: len(r.Items) - 2 - r.SpeechBOL} // <BOL> z₀ … z_{N−1} <EOL>
	if r.TextDropped {
		s.TextEnd = s.TextStart
	}
	return s
}

// Guide is the guided attention weights of rows packed at length l: Guide
// of their spans.
func (f Format) Guide(rows []Row, l int) []float32 {
	spans := make([]GuideSpan, len(rows))
	for i, r := range rows {
		spans[i] = r.GuideSpan()
	}
	return Guide(spans, l)
}

// Guide lays out the guided attention weights of sequences packed at length
// l (lm.LossOptions.Guide, [len(spans), l, l]), after Tachibana et al.
// (2017, arXiv 1710.08969, §4.1). The queries are the positions that
// predict the speech: its <BOL> (predicting frame 0) and each of its N
// frames (the next frame, or <EOL> after the last), the n-th at progress
// n/N through the speech. Such a query's weight on text key k (the j-th of
// T characters, at (j+½)/T through the text) is
// 1 − exp(−((j+½)/T − n/N)²/2g²), near 0 on the characters being said and
// near 1 on those far from them, and 1 on every key that is not text: the
// guided head is meant to read the text, in step with the speech. Each
// query row is divided by the number of queries in the batch, so Σ p·w is
// the mean penalty per query, between 0 and 1. Sequences without text have
// no queries.
//
// Without it the model must find the alignment of characters to frames by
// itself, from 400 texts; with it, one head is shown where to look from
// the first step, and what a frame should sound like becomes a function of
// the characters under that head, which carries over to unseen texts.
func Guide(spans []GuideSpan, l int) []float32 {
	out := make([]float32, len(spans)*l*l)
	queries := 0
	for _, s := range spans {
		if s.TextEnd > s.TextStart {
			queries += s.Frames + 1
		}
	}
	if queries == 0 {
		return out
	}
	for b, s := range spans {
		if s.TextEnd <= s.TextStart {
			continue
		}
		chars := s.TextEnd - s.TextStart
		for n := 0; n <= s.Frames; n++ {
			q := s.SpeechBOL + n
			row := out[(b*l+q)*l : (b*l+q+1)*l]
			progress := float64(n) / float64(max(s.Frames, 1))
			for k := range row {
				w := 1.0
				if k >= s.TextStart && k < s.TextEnd {
					d := (float64(k-s.TextStart)+0.5)/float64(chars) - progress
					w = 1 - math.Exp(-d*d/(2*GuideWidth*GuideWidth))
				}
				row[k] = float32(w / float64(queries))
			}
		}
	}
	return out
}

// Losses is the text-to-speech objective of one batch: 𝓛 = 𝓛_CE + λ·𝓛_diff
// (docs/DESIGN.md §5.3), where 𝓛_CE covers <EOL> and the Continue targets
// of the speech frames (lm.LossOptions.LatentTokens) and 𝓛_diff the speech
// frames, redrawn every step from their σ-VAE means and noise scales as
// vae.Config.Redraw does for images (kind is the speech tokenizer's
// noise law), with the diffusion head run on the speech frames' rows alone
// (headRows, headRowWeights: Batch.HeadRows). With inputNoise > 0 the
// backbone reads every latent (prompt and speech) with Gaussian noise of
// that standard deviation added (in the normalised units of the frames,
// one per channel), while the targets stay the redrawn frames
// (lm.LossOptions.InputLatents). With guide (Format.Guide, else nil) the
// objective also has align·𝓛_align, 𝓛_align the guided attention penalty
// averaged over the guided layers (lm.LossOptions.Guide). It returns the
// total, then the terms: 𝓛_CE, 𝓛_diff and, with guide, 𝓛_align.
func Losses(scope *model.Scope, w nn.Weights, cfg lm.Config, kind vae.Variant, sched *diffusion.Schedule, batchMul int, lambda, inputNoise, align float64,
	ids, mu, scale, isLatent, valid, latentTokens, headRows, headRowWeights, guide *Node) []*Node {
	lat := vae.Config{Kind: kind}.Redraw(scope, mu, scale)
	opts := lm.LossOptions{LatentTokens: latentTokens, HeadRows: headRows, HeadRowWeights: headRowWeights, Guide: guide}
	if inputNoise > 0 {
		opts.InputLatents = Add(lat, MulScalar(scope.RandomNormal(lat.Graph(), lat.Shape()), inputNoise))
	}
	l := cfg.LossWith(scope, w, lm.Items{Ids: ids, Latents: lat, IsLatent: isLatent}, valid, sched, batchMul, opts)
	total := Add(l.CE, MulScalar(l.Diffusion, lambda))
	if guide == nil {
		return []*Node{total, l.CE, l.Diffusion}
	}
	mean := DivScalar(l.Align, float64(cfg.GuidedLayers()))
	return []*Node{Add(total, MulScalar(mean, align)), l.CE, l.Diffusion, mean}
}
