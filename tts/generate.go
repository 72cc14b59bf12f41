package tts

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/speech"
)

// Request is one utterance to speak: its text and the voice prompt, latent
// frames of another utterance of the voice (normalised, as the speech
// tokenizer's Encode gives them).
type Request struct {
	Text   string
	Prompt [][]float32
}

// Result is the speech of one request.
type Result struct {
	// Frames are the generated latent frames, Channels values each.
	Frames [][]float32
	// Stopped reports that the model ended the speech with <EOL>; false
	// means that MaxSeconds or max_len cut it.
	Stopped bool
	// PromptFrames is how many frames of the prompt the model read.
	PromptFrames int
}

// Seconds is the duration of the frames at the format's frame rate.
func (f Format) Seconds(frames int) float64 { return float64(frames) / f.FrameRate }

// frameLimit is the most frames an utterance may have after a prefix of
// prefix items: seconds of speech (MaxSeconds) at the frame rate, at least
// one, and no more than max_len leaves (the last frame is never appended,
// so prefix + frames ≤ max_len). Generate and Sequence share it.
func (m *Model) frameLimit(seconds float64, prefix int) int {
	return min(max(1, int(math.Floor(seconds*m.Format.FrameRate+1e-9))), m.Config.MaxLen-prefix)
}

// frameNoise is an utterance's own noise: frame k starts from the k-th
// Channels standard normal draws of PCG(seed, 0), as the class-image
// decoder draws an image's (package latentlm's Decoder), so that the
// speech depends on its seed alone and not on the other utterances it is
// batched with.
type frameNoise struct {
	rng *rand.Rand
	c   int
}

func newFrameNoise(seed uint64, channels int) *frameNoise {
	return &frameNoise{rng: rand.New(rand.NewPCG(seed, 0)), c: channels}
}

// next is the next frame's noise.
func (n *frameNoise) next() []float32 {
	z := make([]float32, n.c)
	for j := range z {
		z[j] = float32(n.rng.NormFloat64())
	}
	return z
}

// promptFrames is the most prompt frames the options keep (0: no limit).
func (m *Model) promptFrames() int {
	if m.opts.PromptSeconds == 0 {
		return 0
	}
	return max(1, int(math.Round(m.opts.PromptSeconds*m.Format.FrameRate)))
}

// prepared is a request checked and laid out.
type prepared struct {
	text   []int
	prompt [][]float32
}

// prepare checks a request and cuts its prompt (PromptSeconds, then the
// room max_len leaves the text); who names it in errors ("request 3").
// Generate and Sequence share it.
func (m *Model) prepare(who string, r Request) (prepared, error) {
	f := m.Format
	ids, err := f.Encode(r.Text)
	if err != nil {
		return prepared{}, err
	}
	if len(r.Prompt) == 0 {
		return prepared{}, fmt.Errorf("tts: %s has no voice prompt", who)
	}
	if err := m.checkFrames(who+": prompt", r.Prompt); err != nil {
		return prepared{}, err
	}
	p := r.Prompt
	if n := m.promptFrames(); n > 0 && len(p) > n {
		p = p[:n]
	}
	// The prompt gives way to a long text, down to a second (or the whole
	// prompt if shorter), with room for at least one frame of speech.
	need := min(len(p), int(math.Ceil(f.FrameRate)))
	if room := m.Config.MaxLen - PrefixLen(0, len(ids)) - 1; room < need {
		return prepared{}, &TextError{fmt.Sprintf("the text is %d %s long; with a voice prompt of %d frames this model (max_len %d) takes at most %d",
			len(ids), f.Reading, need, m.Config.MaxLen, max(m.Config.MaxLen-PrefixLen(need, 0)-1, 0))}
	} else if len(p) > room {
		p = p[:room]
	}
	return prepared{text: ids, prompt: p}, nil
}

// checkFrames reports a frame of the wrong width or with a value that is
// not finite; what names the frames in errors ("request 3: prompt").
func (m *Model) checkFrames(what string, frames [][]float32) error {
	if len(frames) == 0 {
		return fmt.Errorf("tts: %s: no frames", what)
	}
	for k, z := range frames {
		if len(z) != m.Format.Channels {
			return fmt.Errorf("tts: %s: frame %d has %d values, the model %d", what, k, len(z), m.Format.Channels)
		}
		for _, v := range z {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("tts: %s: frame %d holds %v", what, k, v)
			}
		}
	}
	return nil
}

// prefixes is the request's prefix, <BOL> prompt <EOL> text <BOL>, and
// with guidance (cfg ≠ 1) that of its guidance stream, the text replaced
// by null tokens (nil without guidance).
func (f Format) prefixes(p prepared, cfg float64) (cond, guide []lm.Item) {
	cond = f.Prefix(p.prompt, p.text, false)
	if cfg != 1 {
		guide = f.Prefix(p.prompt, p.text, true)
	}
	return cond, guide
}

// group splits the requests into batches of at most Batch whose prefixes
// have one length (cutting prompts with EqualisePrompts).
func (m *Model) group(ps []prepared) [][]int {
	order := make([]int, len(ps))
	for i := range order {
		order[i] = i
	}
	total := func(i int) int { return len(ps[i].prompt) + len(ps[i].text) }
	slices.SortStableFunc(order, func(a, b int) int { return total(a) - total(b) })
	keep := int(math.Ceil(m.Format.FrameRate)) // a prompt keeps at least a second
	var groups [][]int
	for _, i := range order {
		if n := len(groups); n > 0 {
			g := groups[n-1]
			l := total(g[0]) // the shortest of the group, which sets its length
			fits := total(i) == l
			if m.opts.EqualisePrompts {
				cut := l - len(ps[i].text)
				fits = cut >= min(keep, len(ps[i].prompt))
			}
			if fits && len(g) < m.opts.Batch {
				groups[n-1] = append(g, i)
				continue
			}
		}
		groups = append(groups, []int{i})
	}
	for _, g := range groups {
		l := total(g[0])
		for _, i := range g[1:] {
			ps[i].prompt = ps[i].prompt[:l-len(ps[i].text)]
		}
	}
	return groups
}

// Generate speaks every request: it prefills <BOL> prompt <EOL> text <BOL>
// (and, unless CFG is 1, the guidance stream with the text replaced by
// null tokens), then draws latent frames with the diffusion head until the
// softmax head's most likely token after a frame is <EOL>, or MaxSeconds
// (or max_len) is reached. onFrame, when not nil, receives frame k of
// request i as soon as it is drawn (z is valid during the call); an error
// stops generation.
func (m *Model) Generate(ctx context.Context, reqs []Request, onFrame func(i, k int, z []float32) error) ([]Result, error) {
	return m.generate(ctx, reqs, onFrame, nil)
}

// generate is Generate; with seeds set, request i draws its own noise from
// seeds[i] (frameNoise, as a Sequence does) rather than from the engine's
// generator, so that the two paths can be compared.
func (m *Model) generate(ctx context.Context, reqs []Request, onFrame func(i, k int, z []float32) error, seeds []uint64) ([]Result, error) {
	if m.engine == nil {
		return nil, errClosed
	}
	if seeds != nil && len(seeds) != len(reqs) {
		return nil, fmt.Errorf("tts: %d seeds for %d requests", len(seeds), len(reqs))
	}
	ps := make([]prepared, len(reqs))
	for i, r := range reqs {
		var err error
		if ps[i], err = m.prepare(fmt.Sprintf("request %d", i), r); err != nil {
			return nil, err
		}
	}
	f, c := m.Format, m.Format.Channels
	out := make([]Result, len(reqs))
	for _, g := range m.group(ps) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		cond := make([][]lm.Item, len(g))
		var guide [][]lm.Item
		if m.opts.CFG != 1 {
			guide = make([][]lm.Item, len(g))
		}
		for j, i := range g {
			var u []lm.Item
			cond[j], u = f.prefixes(ps[i], m.opts.CFG)
			if guide != nil {
				guide[j] = u
			}
		}
		limit := m.frameLimit(m.opts.MaxSeconds, len(cond[0]))
		seg := lm.Segment{Max: limit, StopAtEOL: true}
		if seeds != nil {
			gens := make([]*frameNoise, len(g))
			for j, i := range g {
				gens[j] = newFrameNoise(seeds[i], c)
			}
			seg.BeforeLatent = func(int) ([][]float32, error) {
				noise := make([][]float32, len(gens))
				for j, n := range gens {
					noise[j] = n.next()
				}
				return noise, nil
			}
		}
		sess, err := m.engine.Prefill(cond, guide)
		if err != nil {
			return nil, err
		}
		seg.AfterLatent = func(k int, sofar [][]float32) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if onFrame == nil {
				return nil
			}
			for j, i := range g {
				if len(sofar[j]) == (k+1)*c {
					if err := onFrame(i, k, sofar[j][k*c:(k+1)*c]); err != nil {
						return err
					}
				}
			}
			return nil
		}
		lat, err := sess.Latents(seg)
		sess.Close()
		if err != nil {
			return nil, err
		}
		for j, i := range g {
			n := len(lat[j]) / c
			frames := make([][]float32, n)
			for k := range frames {
				frames[k] = lat[j][k*c : (k+1)*c : (k+1)*c]
			}
			out[i] = Result{Frames: frames, Stopped: n < limit, PromptFrames: len(ps[i].prompt)}
		}
	}
	return out, nil
}

// Speech is one spoken utterance.
type Speech struct {
	Samples []float32 // 16 kHz
	Result
}

// Prompt encodes a voice prompt: the σ-VAE means of 16 kHz samples, as
// many frames as the options keep (PromptSeconds).
func (m *Model) Prompt(samples []float32) ([][]float32, error) {
	if len(samples) == 0 {
		return nil, errors.New("tts: the voice prompt holds no audio")
	}
	if n := m.promptFrames(); n > 0 {
		samples = samples[:min(len(samples), n*m.SamplesPerFrame())]
	}
	return m.Encode(samples)
}

// Encode is the model's latent frames of 16 kHz samples: the speech
// tokenizer's σ-VAE means, Format.Stack of them to a frame
// (Format.StackFrames), one per SamplesPerFrame samples or part of it.
func (m *Model) Encode(samples []float32) ([][]float32, error) {
	if m.Speech == nil {
		return nil, errors.New("tts: the model has no speech tokenizer")
	}
	z, err := m.Speech.Encode(samples, false)
	if err != nil {
		return nil, err
	}
	return m.Format.StackFrames(z), nil
}

// Decode is the 16 kHz audio of the model's latent frames (Channels values
// each), SamplesPerFrame samples a frame, by the speech tokenizer (seed:
// its decoding's, the phases of Griffin-Lim).
func (m *Model) Decode(frames [][]float32, seed uint64) ([]float32, error) {
	if m.Speech == nil {
		return nil, errors.New("tts: the model has no speech tokenizer")
	}
	if err := m.checkFrames("decoding", frames); err != nil {
		return nil, err
	}
	return m.Speech.Decode(m.Format.UnstackFrames(frames), 0, seed)
}

// SamplesPerFrame is the 16 kHz samples one of the model's latent frames
// stands for (the speech tokenizer's per frame, times Format.Stack).
func (m *Model) SamplesPerFrame() int {
	if m.Speech == nil {
		return int(math.Round(float64(Rate) / m.Format.FrameRate))
	}
	return m.Speech.Config.SamplesPerLatent() * m.Format.stack()
}

// Speak speaks text in the voice of the prompt (16 kHz samples of another
// utterance). With stream set, the audio is decoded in chunks while the
// frames are drawn (Stream) and stream receives each chunk; Samples are
// then those chunks end to end. Without it the frames are decoded at once
// at the end, which sounds a little better at the chunks' seams.
func (m *Model) Speak(ctx context.Context, text string, prompt []float32, stream func(chunk []float32) error) (*Speech, error) {
	if m.Speech == nil {
		return nil, errors.New("tts: the model has no speech tokenizer")
	}
	if _, err := m.Format.Encode(text); err != nil {
		return nil, err
	}
	p, err := m.Prompt(prompt)
	if err != nil {
		return nil, err
	}
	var st *Stream
	var onFrame func(i, k int, z []float32) error
	var chunks []float32
	if stream != nil {
		st = m.NewStream(func(y []float32) error {
			chunks = append(chunks, y...)
			return stream(y)
		})
		onFrame = func(_, _ int, z []float32) error { return st.Add(z) }
	}
	res, err := m.Generate(ctx, []Request{{Text: text, Prompt: p}}, onFrame)
	if err != nil {
		return nil, err
	}
	s := &Speech{Result: res[0]}
	if st != nil {
		if err := st.Close(); err != nil {
			return nil, err
		}
		s.Samples = chunks
		return s, nil
	}
	if len(s.Frames) == 0 {
		return nil, errors.New("tts: no speech frames")
	}
	if s.Samples, err = m.Decode(s.Frames, uint64(m.opts.Seed)); err != nil {
		return nil, err
	}
	return s, nil
}

// Stream decodes latent frames into audio in chunks while they are
// generated: every Chunk frames it decodes them with Context frames before
// them (the decoder attends both ways, so the seam is smoother with left
// context) and emits the new chunk's samples.
type Stream struct {
	Chunk, Context int
	// Seed seeds the speech tokenizer's decoding (the phases of
	// Griffin-Lim), chunk by chunk: Seed plus the index of the chunk's
	// first frame. NewStream sets the model's Options.Seed; a server
	// speaking many requests at once (Sequence) sets each request's own.
	Seed   uint64
	m      *Model
	frames [][]float32
	done   int
	emit   func([]float32) error
}

// DefaultChunk and DefaultContext are a Stream's defaults, in the model's
// frames: chunks of 0.32 s (the speech tokenizer's bucket) with 0.32 s of
// left context at 25 Hz, twice that for a model that stacks two frames.
const (
	DefaultChunk   = 8
	DefaultContext = 8
)

// NewStream decodes frames with the model's speech tokenizer into emit.
func (m *Model) NewStream(emit func(samples []float32) error) *Stream {
	return &Stream{Chunk: DefaultChunk, Context: DefaultContext, Seed: uint64(m.opts.Seed), m: m, emit: emit}
}

// Add appends one frame (copied) and emits a chunk when Chunk frames are
// waiting.
func (s *Stream) Add(z []float32) error {
	s.frames = append(s.frames, slices.Clone(z))
	if len(s.frames)-s.done >= max(s.Chunk, 1) {
		return s.flush()
	}
	return nil
}

// Close emits the frames still waiting.
func (s *Stream) Close() error {
	if len(s.frames) > s.done {
		return s.flush()
	}
	return nil
}

func (s *Stream) flush() error {
	start := max(0, s.done-s.Context)
	y, err := s.m.Decode(s.frames[start:], s.Seed+uint64(s.done))
	if err != nil {
		return err
	}
	chunk := y[(s.done-start)*s.m.SamplesPerFrame():]
	s.done = len(s.frames)
	return s.emit(chunk)
}

// Rate is the sample rate of Speech.Samples.
const Rate = speech.Rate
