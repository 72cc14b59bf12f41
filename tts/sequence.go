package tts

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/latentlm/latentlm/lm"
)

// Sequence is one utterance as an lm.Sequence, so that a server can speak
// the requests of many users in one continuous batch (lm.Batch): each
// joins at the next tick while the others are mid-way, at its own
// position, and leaves as soon as it is done, instead of waiting for a
// batch of requests whose prefixes are as long (Generate, Options.Batch).
//
// It decodes as Generate does, after LatentLM's text-to-speech (Sun et
// al., 2024, "Multimodal Latent Language Modeling with Next-Token
// Diffusion", arXiv 2412.08635, §3.3): it reads <BOL> prompt <EOL> text
// <BOL> (its guidance stream the same with the text as null tokens), then
// draws latent frames one by one with the diffusion head (next-token
// diffusion), and after each frame is appended reads the softmax head: the
// utterance ends where its most likely token is <EOL>, or at MaxSeconds
// or where max_len leaves no room. The model itself chooses the length.
//
// What Generate takes from the engine, a Sequence carries itself, so that
// its speech depends on its request, seed and options alone, not on the
// utterances it is batched with nor on when it joined (lm.Sequence): its
// noise (frame k starts from the k-th Channels standard normal draws of
// PCG(seed, 0), as the class-image decoder draws an image's), its guidance
// scale and its temperature. Only the solver steps are the batch's
// (NewBatch).
//
// Guidance: a sequence with CFG ≠ 1 needs a guided batch (Guided); in a
// batch without guidance streams its guidance would be silently dropped,
// so the caller must not put it there. A sequence with CFG 1 may run in
// either. In a guided batch its guidance stream then reads its own items
// (not the null text) and its scale is 1, so the guided prediction
// ε_u + 1·(ε_c − ε_u) is ε_c exactly (the two streams compute the same
// values, ε_c − ε_u = 0): the speech is that of the same request alone in
// a guided batch, bit for bit, and that of a batch without guidance on a
// backend whose kernels compute each row independently of the batch size
// (the assumption of lm.Rows; ONNX Runtime holds to it from two rows on,
// while one row alone rounds differently, by about 1e-7). The null-text
// stream with scale 1 would give ε_u + (ε_c − ε_u), which rounds
// otherwise, for the same work.
//
// A Sequence is driven by the Batch that holds it: Next, Want and Take
// run on the batch's goroutine, and so does SequenceOptions.OnFrame.
// Read Result once the batch has returned the sequence as ended (or after
// Remove); a Sequence is not safe for concurrent use.
type Sequence struct {
	f           Format
	cond, guide []lm.Item // the prefixes of the sequence and its guidance stream
	pos         int       // items appended
	limit       int       // the most frames (frameLimit)
	scale, temp float64
	guided      bool
	noise       *frameNoise
	pending     []float32 // the next frame's noise, drawn by Want
	fed         []float32 // the last frame as read, with its input noise
	onFrame     func(k int, z []float32) error
	teacher     [][]float32 // the true frames read instead of the drawn ones (SequenceOptions.Teacher)
	readNoise   *readNoise  // the noise added to the frames the model reads (SequenceOptions.InputNoise)
	res         Result
	done        bool
}

// SequenceOptions are an utterance's own settings in a continuous batch.
// Start from Model.SequenceOptions.
type SequenceOptions struct {
	// CFG is the guidance scale, finite and ≥ 0 (1: no guidance, the
	// sequence then runs in any batch), and Temperature scales the
	// initial noise of every frame (finite, > 0).
	CFG, Temperature float64
	// MaxSeconds bounds speech that the model does not end itself, in
	// (0, 3600]; max_len bounds it too.
	MaxSeconds float64
	// OnFrame, when not nil, receives frame k as soon as it is drawn, on
	// the batch's goroutine (from Take): feed a Stream with it to decode
	// audio in chunks while the utterance goes on, and keep it short, since
	// the whole batch waits for it. z is the frame the Result holds: do not
	// modify it. An error ends the sequence with that error (Take returns
	// it; the others go on).
	OnFrame func(k int, z []float32) error
	// Teacher, when set, are the true frames of the utterance (normalised,
	// as Model.Prompt gives them). The sequence then reads them as its
	// history instead of the frames it draws (teacher forcing): frame k is
	// drawn from the prefix and Teacher[:k], exactly len(Teacher) frames
	// are drawn (or as many as max_len leaves room for) and <EOL> is not
	// heeded. It is a diagnostic, not a way to speak: the frames say how
	// good the model's one-step predictions are, apart from the drift of
	// free generation where each frame feeds on the model's own (exposure
	// bias); `latentlm eval --task tts --teacher-forced` judges them.
	Teacher [][]float32
	// InputNoise, when above 0, adds Gaussian noise of this standard
	// deviation to every frame the model reads (the voice prompt's and
	// each drawn or teacher frame fed back), not to the frames it returns:
	// generation then sees the inputs that a model trained with that
	// input noise read (recipe.TTSOptions.InputNoise, tts.Losses). Its
	// draws come from PCG(seed, 1), apart from the frames' noise.
	InputNoise float64
}

// SequenceOptions are the model's options (Options) as a sequence's: its
// guidance scale, temperature and MaxSeconds.
func (m *Model) SequenceOptions() SequenceOptions {
	return SequenceOptions{CFG: m.opts.CFG, Temperature: m.opts.Temperature, MaxSeconds: m.opts.MaxSeconds}
}

// NewSequence prepares request r for a continuous batch, with its own
// noise from seed and its own options. It checks and lays out the request
// as Generate does (the text, the prompt cut to PromptSeconds and to the
// room max_len leaves): a text the model cannot read is a *TextError.
// Add it to a Batch of the model (NewBatch), a guided one when Guided
// reports so.
func (m *Model) NewSequence(r Request, seed uint64, o SequenceOptions) (*Sequence, error) {
	if m.engine == nil {
		return nil, errClosed
	}
	check := m.opts
	check.CFG, check.Temperature, check.MaxSeconds = o.CFG, o.Temperature, o.MaxSeconds
	if err := check.Validate(); err != nil {
		return nil, fmt.Errorf("tts: %w", err)
	}
	p, err := m.prepare("the request", r)
	if err != nil {
		return nil, err
	}
	if !(o.InputNoise >= 0 && o.InputNoise <= 100) {
		return nil, fmt.Errorf("tts: input noise %v: want a value in [0, 100]", o.InputNoise)
	}
	var rn *readNoise
	if o.InputNoise > 0 {
		rn = &readNoise{rng: rand.New(rand.NewPCG(seed, 1)), sd: o.InputNoise}
		noisy := make([][]float32, len(p.prompt))
		for k, z := range p.prompt {
			noisy[k] = rn.add(z)
		}
		p.prompt = noisy
	}
	cond, guide := m.Format.prefixes(p, o.CFG)
	s := &Sequence{f: m.Format, cond: cond, guide: guide, limit: m.frameLimit(o.MaxSeconds, len(cond)),
		scale: o.CFG, temp: o.Temperature, guided: guide != nil, noise: newFrameNoise(seed, m.Format.Channels),
		onFrame: o.OnFrame, readNoise: rn, res: Result{PromptFrames: len(p.prompt)}}
	if o.Teacher != nil {
		if err := m.checkFrames("the teacher frames", o.Teacher); err != nil {
			return nil, err
		}
		s.teacher, s.limit = o.Teacher, min(len(o.Teacher), m.Config.MaxLen-len(cond))
	}
	if guide == nil { // CFG 1: the guidance stream follows the sequence itself
		s.guide = cond
	}
	return s, nil
}

// NewBatch starts a continuous batch of at most maxSeqs utterances
// (Sequences) whose frames take steps DPM-Solver++ steps
// (lm.Engine.ForSteps); with guided set it has a guidance stream per
// utterance, as sequences with CFG ≠ 1 need. It goes on beside the
// model's other calls and their SetOptions, until Close.
func (m *Model) NewBatch(steps, maxSeqs int, guided bool) (*lm.Batch, error) {
	if m.engine == nil {
		return nil, errClosed
	}
	e, err := m.engine.ForSteps(steps)
	if err != nil {
		return nil, fmt.Errorf("tts: %w", err)
	}
	b, err := e.NewBatch(maxSeqs, guided)
	if err != nil {
		return nil, fmt.Errorf("tts: %w", err)
	}
	return b, nil
}

// Guided reports whether the sequence needs a guided batch (CFG ≠ 1).
func (s *Sequence) Guided() bool { return s.guided }

// Done reports whether the sequence has ended.
func (s *Sequence) Done() bool { return s.done }

// Result is the speech so far, as Generate returns it once the sequence is
// done: the frames, whether the model ended them with <EOL> (false: cut by
// MaxSeconds or max_len, or not done), and the prompt frames it read.
func (s *Sequence) Result() Result { return s.res }

// MaxItems is the most items the sequence appends: its prefix and all its
// frames but the last (which nothing needs to look past).
func (s *Sequence) MaxItems() int { return len(s.cond) + s.limit - 1 }

// Next is the next item: the prefix, then the frame drawn last (lm.Sequence).
func (s *Sequence) Next() lm.RowItem {
	switch {
	case s.done:
		return lm.RowItem{Idle: true}
	case s.pos < len(s.cond):
		return lm.RowItem{Item: s.cond[s.pos], Guide: s.guide[s.pos]}
	}
	last := s.res.Frames
	if s.teacher != nil {
		last = s.teacher
	}
	z := last[len(s.res.Frames)-1]
	if s.readNoise != nil {
		if s.fed == nil { // Next may be asked again before Take: the same draw
			s.fed = s.readNoise.add(z)
		}
		z = s.fed
	}
	return lm.RowItem{Item: lm.LatentItem(z), Guide: lm.LatentItem(z)}
}

// Block hands the batch the prefix (<BOL> voice prompt <EOL> text <BOL>,
// and its guidance stream's) in one block (lm.BlockReader), so that an
// utterance joining a busy decode reads its voice prompt in a tick.
func (s *Sequence) Block() (items, guide []lm.Item) {
	if s.done || s.pos > 0 || len(s.cond) < 2 {
		return nil, nil
	}
	s.pos = len(s.cond) - 1
	return s.cond, s.guide
}

// Want is nothing while the prefix is read, the first frame after its
// last item, and after every frame the logits (does the utterance end?)
// together with the next frame, which Take ignores when it ends: one tick
// per frame, as Generate steps (lm.Sequence).
func (s *Sequence) Want() lm.Want {
	if s.done || s.pos < len(s.cond)-1 {
		return lm.Want{}
	}
	if s.pending == nil {
		s.pending = s.noise.next()
	}
	return lm.Want{Logits: s.pos >= len(s.cond), Latent: true, Noise: s.pending, Scale: s.scale, Temperature: s.temp}
}

// Take reads what Want asked for: after a frame, the softmax head ends the
// utterance where its most likely token is <EOL>; otherwise the new frame
// is kept (and given to OnFrame), and the utterance ends when it reaches
// its limit (lm.Sequence).
func (s *Sequence) Take(logits, latent []float32) (bool, error) {
	if s.done {
		return true, errors.New("tts: sequence already done")
	}
	afterFrame := s.pos >= len(s.cond)
	s.pos++
	if s.pos < len(s.cond) {
		return false, nil
	}
	if afterFrame {
		if logits == nil {
			s.done = true
			return true, errors.New("tts: sequence given no logits after a frame")
		}
		if s.teacher == nil && s.f.ends(logits) {
			s.res.Stopped, s.done = true, true
			return true, nil
		}
	}
	if len(latent) != s.f.Channels {
		s.done = true
		return true, fmt.Errorf("tts: sequence given a frame of %d values, the model has %d channels", len(latent), s.f.Channels)
	}
	s.pending, s.fed = nil, nil
	k, z := len(s.res.Frames), slices.Clip(slices.Clone(latent))
	s.res.Frames = append(s.res.Frames, z)
	s.done = len(s.res.Frames) == s.limit
	if s.onFrame != nil {
		if err := s.onFrame(k, z); err != nil {
			s.done = true
			return true, err
		}
	}
	return s.done, nil
}

// readNoise adds Gaussian noise to the frames a sequence reads
// (SequenceOptions.InputNoise).
type readNoise struct {
	rng *rand.Rand
	sd  float64
}

// add is a noisy copy of z.
func (n *readNoise) add(z []float32) []float32 {
	out := make([]float32, len(z))
	for j, v := range z {
		out[j] = v + float32(n.sd*n.rng.NormFloat64())
	}
	return out
}

// ends reports whether the softmax head ends an utterance after a frame:
// its most likely token (the first of equal ones, as lm.Segment's
// StopAtEOL picks it for Generate) is <EOL>.
func (f Format) ends(logits []float32) bool {
	best := 0
	for j, v := range logits {
		if v > logits[best] {
			best = j
		}
	}
	return best == f.Vocab.EOL()
}

var _ lm.Sequence = (*Sequence)(nil)
