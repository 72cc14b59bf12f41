package multimodal

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/latentlm/latentlm/lm"
)

// This file is continuous batching for the multimodal model: each request
// (an image from a caption, a caption or an answer about an image, a
// completion) is an lm.Sequence, so that the requests of different users
// share one lm.Batch, each joining at the next tick and leaving as soon as
// it is done. LatentLM (Sun et al., 2024, https://arxiv.org/abs/2412.08635)
// generates every modality with one causal Transformer, next-token
// prediction for text and next-token diffusion for image latents (§2); so
// one decoding loop, one item per sequence per tick, serves all tasks, and
// requests of every kind and length run side by side.
//
// Two batches serve a model: a guided one (lm.Engine.NewBatch with guided
// set) for the images of LatentLM, whose guidance stream is the prompt with
// the caption replaced by null tokens (classifier-free guidance, §3.2), and
// an unguided one for text (captions, answers, completions), the
// unconditional images of the empty caption and every image of a VQ-MLLM,
// whose guidance acts on logits and so runs as a second sequence of the
// unguided batch. A sequence's results depend only on its request and
// seed, not on when it joins or what else runs (on a backend whose kernels
// compute each row independently of the batch size, see lm.Rows; ONNX
// Runtime's CPU kernels round a lone row, an unguided batch of one slot,
// differently in the last bits from a row among others).
//
// The sequences are not safe for concurrent use: their Next, Want and Take
// run on the goroutine that calls the batch's Step, and so do their
// streaming callbacks (OnLatent, OnText, OnPiece), from inside Take; call
// their other methods (Abort, TakeImage, the results) on that goroutine
// too, or between steps.

// NewBatch starts a continuous batch of at most maxSeqs sequences whose
// latents take steps DPM-Solver++ steps (lm.Engine.ForSteps), guided or
// not: see ImageSequence.Guided. It goes on beside the model's other
// calls and their SetOptions, until Close.
func (m *Model) NewBatch(steps, maxSeqs int, guided bool) (*lm.Batch, error) {
	if m.engine == nil {
		return nil, errClosed
	}
	e, err := m.engine.ForSteps(steps)
	if err != nil {
		return nil, fmt.Errorf("multimodal: %w", err)
	}
	return e.NewBatch(maxSeqs, guided)
}

// sequenceOptions checks a request's options for a sequence of a batch
// (the solver steps are the batch's: NewBatch).
func (m *Model) sequenceOptions(o Options) error {
	if m.engine == nil {
		return errClosed
	}
	if err := o.Validate(); err != nil {
		return fmt.Errorf("multimodal: %w", err)
	}
	return nil
}

// filler is the item a sequence that must end appends: Take runs only
// after an item, so a sequence ends at the tick after its error with one
// more item in its slot (always within max_len), which nothing reads.
func (m *Model) filler() lm.RowItem {
	it := lm.TokenItem(m.Format.Vocab.Null())
	return lm.RowItem{Item: it, Guide: it}
}

// ImageProgress is one latent (or code) of an ImageSequence, as it is
// drawn: the image streams in raster order.
type ImageProgress struct {
	// Index is the latent's place k in raster order, at Row k / Grid and
	// Col k % Grid of the image's Grid × Grid latents.
	Index, Row, Col, Grid int
	// Latent is the latent's Channels values (LatentLM; nil for a
	// VQ-MLLM), valid during the call.
	Latent []float32
	// Code is the image code (a VQ-MLLM; −1 for LatentLM).
	Code int
}

// ImageSequence draws one image from a caption (text → image) as a
// sequence of a continuous batch: the prefix <|endoftext|> caption <BOL>,
// then Format.Items latents, each drawn by the diffusion head from the
// hidden state before it (LatentLM's next-token diffusion, paper §2.2),
// under classifier-free guidance against the same prefix with the caption
// replaced by null tokens (the dropped caption of training, §3.2). The
// prefixes are those of ImagesFor (ImageBatches), and an image equals
// ImagesFor's for the same noise up to float32 rounding (ImagesFor reads its
// prefix in one pass, a batch one item per tick).
//
// Its noise is its own: latent k starts from the k-th Channels standard
// normal draws of PCG(seed, index), index being the image's number within
// its request, as the class-image Decoder draws it; so an image depends on
// its caption, seed, index, guidance scale and temperature alone.
//
// A VQ-MLLM's image is Format.Items codes sampled from the softmax head's
// logits by the top-k rule of drawCodes (SampleCode, with Guide on the
// logits), from the same generator. Its guidance stream must yield logits,
// which a guided batch keeps to itself, so it runs as a second sequence of
// an unguided batch (Sequences; AddTo adds both at once, as they must be).
//
// The empty caption draws an image unconditionally, from <|endoftext|>
// <BOL> alone and without guidance (Guided is false), as ImagesFor does; it
// may run in either batch (in a guided one its guidance stream is the
// sequence itself, which leaves the conditional prediction unchanged).
type ImageSequence struct {
	// OnLatent, when set, receives each latent (or code) as it is drawn,
	// for streaming; an error ends the sequence with that error. It runs
	// inside Take, on the goroutine that steps the batch.
	OnLatent func(ImageProgress) error

	m                  *Model
	cond, guide        []lm.Item // guide nil: no guidance
	scale, temperature float64
	topK               int
	rng                *rand.Rand
	noise              []float32    // the next latent's noise, once drawn
	latents            []float32    // LatentLM: [k·Channels] for k latents
	codes              []int32      // a VQ-MLLM's codes
	fed                [2]int       // items appended by the image's stream and by its guide's (codeGuide)
	logits             [2][]float32 // a guided VQ-MLLM: the next code's logits of each stream, until both are in
	partner            *codeGuide
	parent             *CompleteSequence // the completion that waits for the image, if any
	err                error
}

// NewImageSequence prepares an image for caption with opts' guidance scale
// (CFG), temperature, top-k (a VQ-MLLM) and seed: it is image number index
// of its request (see ImageSequence for the noise). The solver steps are
// those of the batch it runs in (NewBatch). The caption is refused as
// ImagesFor refuses it.
func (m *Model) NewImageSequence(caption string, index int, opts Options) (*ImageSequence, error) {
	bs, err := ImageBatches(m.Format, m.Text, m.Config.MaxLen, []string{caption}, 1)
	if err != nil {
		return nil, err
	}
	var guide []lm.Item
	if bs[0].Guide != nil {
		guide = bs[0].Guide[0]
	}
	return m.newImageSequence(bs[0].Cond[0], guide, index, opts)
}

// newImageSequence is an image after the prompt cond (ending in <BOL>),
// guided by guide (the same length; nil for none).
func (m *Model) newImageSequence(cond, guide []lm.Item, index int, opts Options) (*ImageSequence, error) {
	if err := m.sequenceOptions(opts); err != nil {
		return nil, err
	}
	f := m.Format
	switch {
	case index < 0:
		return nil, fmt.Errorf("multimodal: image index %d: want 0 or more", index)
	case len(cond)+f.Items > m.Config.MaxLen:
		return nil, fmt.Errorf("multimodal: an image of %d items after %d exceeds max_len %d", f.Items, len(cond), m.Config.MaxLen)
	case guide != nil && len(guide) != len(cond):
		return nil, fmt.Errorf("multimodal: guidance prompt of %d items for a prompt of %d", len(guide), len(cond))
	}
	s := &ImageSequence{m: m, cond: cond, guide: guide, scale: opts.CFG, temperature: opts.Temperature, topK: opts.TopK,
		rng: rand.New(rand.NewPCG(uint64(opts.Seed), uint64(index)))}
	if m.Arch == VQ && guide != nil {
		s.partner = &codeGuide{s}
	}
	return s, nil
}

// Guided reports whether the image runs in a guided batch: a LatentLM
// image of a caption. The unconditional image and every image of a
// VQ-MLLM run in an unguided one.
func (s *ImageSequence) Guided() bool { return s.m.Arch != VQ && s.guide != nil }

// Sequences are the sequences to add to the batch: the image itself and,
// for a guided VQ-MLLM image, its guidance stream, which must join the
// same batch at the same tick (AddTo) and leave with it.
func (s *ImageSequence) Sequences() []lm.Sequence {
	if s.partner != nil {
		return []lm.Sequence{s, s.partner}
	}
	return []lm.Sequence{s}
}

// AddTo adds the image's Sequences to b, all or none: b must be guided if
// the image is (Guided), and have room for them all.
func (s *ImageSequence) AddTo(b *lm.Batch) error {
	seqs := s.Sequences()
	switch {
	case s.Guided() && !b.Guided():
		return errors.New("multimodal: a guided image in an unguided batch")
	case b.Free() < len(seqs):
		return fmt.Errorf("multimodal: the image takes %d sequences, the batch has room for %d", len(seqs), b.Free())
	}
	for _, q := range seqs {
		if err := b.Add(q); err != nil {
			return err
		}
	}
	return nil
}

// RemoveFrom removes the image's Sequences from b (a cancelled request),
// reporting whether any was there. A completion waiting for the image
// ends at its next tick (Abort).
func (s *ImageSequence) RemoveFrom(b *lm.Batch) bool {
	var found bool
	for _, q := range s.Sequences() {
		found = b.Remove(q) || found
	}
	if found && !s.Done() {
		s.Abort(errors.New("multimodal: image removed from its batch"))
	}
	return found
}

// Abort ends the image with err at its next tick (its Take returns err),
// and a completion waiting for it with it. Call it when the image ended
// with an error outside its Take (its batch failed): the completion would
// otherwise wait. Later calls keep the first error.
func (s *ImageSequence) Abort(err error) {
	if err == nil {
		err = errors.New("multimodal: image aborted")
	}
	s.fail(err)
}

// fail ends the image with err (the first error stays), and the
// completion that waits for it.
func (s *ImageSequence) fail(err error) {
	if s.err == nil {
		s.err = err
	}
	if s.parent != nil && s.parent.img == s {
		s.parent.Abort(s.err)
	}
}

// Done reports whether every latent (or code) is drawn.
func (s *ImageSequence) Done() bool { return s.drawn() == s.m.Format.Items }

// Latents is LatentLM's latents so far, [k·Channels] for k latents, in
// raster order (the caller must not change them).
func (s *ImageSequence) Latents() []float32 { return s.latents }

// Codes is a VQ-MLLM's codes so far (the caller must not change them).
func (s *ImageSequence) Codes() []int32 { return s.codes }

// Decode decodes the finished image with the image tokenizer:
// Image.Config.Pixels() values in [0, 1], as ImagesFor makes them. It runs
// the tokenizer's decoder on the model's backend, so call it where the
// model's other calls are serialised (the goroutine that steps the batch).
func (s *ImageSequence) Decode() ([]float32, error) {
	if !s.Done() {
		return nil, fmt.Errorf("multimodal: image of %d latents decoded after %d", s.m.Format.Items, s.drawn())
	}
	var px [][]float32
	var err error
	if s.m.Arch == VQ {
		px, err = s.m.decodeCodes([][]int32{s.codes})
	} else {
		px, err = s.m.Image.Decode([][]float32{s.latents})
	}
	if err != nil {
		return nil, err
	}
	return px[0], nil
}

// Next is the item to append at this tick (lm.Sequence).
func (s *ImageSequence) Next() lm.RowItem { return s.next(0) }

// Want is what the image needs after the item Next gave (lm.Sequence): the
// next latent, from its own noise, or (a VQ-MLLM) the logits.
func (s *ImageSequence) Want() lm.Want { return s.want(0) }

// Take takes the latent or logits Want asked for (lm.Sequence).
func (s *ImageSequence) Take(logits, latent []float32) (bool, error) {
	return s.take(0, logits, latent)
}

// Block hands the batch the image's prompt in one block (lm.BlockReader).
func (s *ImageSequence) Block() (items, guide []lm.Item) { return s.block(0) }

// codeGuide is the guidance stream of a VQ-MLLM image, a sequence of its
// own in an unguided batch: its prefix is the image's with the caption
// nulled, its items the image's codes, and its logits are the
// unconditional ones of Guide. It ends with the image, without an error
// of its own.
type codeGuide struct{ img *ImageSequence }

func (g *codeGuide) Next() lm.RowItem { return g.img.next(1) }
func (g *codeGuide) Want() lm.Want    { return g.img.want(1) }
func (g *codeGuide) Take(logits, latent []float32) (bool, error) {
	return g.img.take(1, logits, latent)
}
func (g *codeGuide) Block() (items, guide []lm.Item) { return g.img.block(1) }

// prefix is the prompt of stream st: 0 the image's, 1 its guide's.
func (s *ImageSequence) prefix(st int) []lm.Item {
	if st == 1 {
		return s.guide
	}
	return s.cond
}

// drawn is the number of latents (or codes) drawn.
func (s *ImageSequence) drawn() int {
	if s.m.Arch == VQ {
		return len(s.codes)
	}
	return len(s.latents) / s.m.Format.Channels
}

// item is drawn latent (or code) j as an item.
func (s *ImageSequence) item(j int) lm.Item {
	if s.m.Arch == VQ {
		return lm.TokenItem(s.m.Format.Code(int(s.codes[j])))
	}
	c := s.m.Format.Channels
	return lm.LatentItem(s.latents[j*c : (j+1)*c])
}

// draw is the draw that the item at position p of stream st leads to: the
// index of the latent (or code) its hidden state predicts, negative inside
// the prompt, Items or more past the image.
func (s *ImageSequence) draw(st, p int) int { return p - len(s.prefix(st)) + 1 }

func (s *ImageSequence) next(st int) lm.RowItem {
	if s.err != nil {
		return s.m.filler()
	}
	pre, p := s.prefix(st), s.fed[st]
	if p < len(pre) {
		it := lm.RowItem{Item: pre[p], Guide: pre[p]}
		if s.Guided() {
			it.Guide = s.guide[p]
		}
		return it
	}
	j := p - len(pre)
	if j >= s.drawn() {
		// Only the two streams of a VQ-MLLM image can get here, when
		// they did not join the batch at one tick.
		s.fail(errors.New("multimodal: an image and its guidance stream ran out of step (add both at once: ImageSequence.AddTo)"))
		return s.m.filler()
	}
	it := s.item(j)
	return lm.RowItem{Item: it, Guide: it}
}

// block is stream st's prompt while none of it is read: the items Next
// would give one a tick, nothing wanted before the last (lm.BlockReader).
func (s *ImageSequence) block(st int) (items, guide []lm.Item) {
	pre := s.prefix(st)
	if s.err != nil || s.fed[st] > 0 || len(pre) < 2 {
		return nil, nil
	}
	s.fed[st] = len(pre) - 1
	if s.Guided() {
		return pre, s.guide
	}
	return pre, nil
}

func (s *ImageSequence) want(st int) lm.Want {
	d := s.draw(st, s.fed[st])
	if s.err != nil || d < 0 || d >= s.m.Format.Items {
		return lm.Want{}
	}
	if s.m.Arch == VQ {
		return lm.Want{Logits: true}
	}
	if s.noise == nil {
		s.noise = normalDraw(s.rng, s.m.Format.Channels)
	}
	return lm.Want{Latent: true, Noise: s.noise, Scale: s.scale, Temperature: s.temperature}
}

func (s *ImageSequence) take(st int, logits, latent []float32) (bool, error) {
	if s.err != nil {
		return true, s.errOf(st)
	}
	d := s.draw(st, s.fed[st])
	s.fed[st]++
	switch {
	case d < 0:
		return false, nil
	case d >= s.m.Format.Items:
		// The last code, appended by the stream whose logits came first
		// at the last draw: the image is done.
		return true, nil
	}
	f := s.m.Format
	switch {
	case s.m.Arch != VQ:
		s.noise = nil
		s.latents = append(s.latents, latent...)
	case s.partner == nil:
		s.codes = append(s.codes, int32(pickCode(logits, nil, f, s.scale, s.temperature, s.topK, s.rng)))
	default:
		// The image's logits and its guide's come in either order
		// within a tick; the second draws the code.
		s.logits[st] = logits
		if s.logits[0] == nil || s.logits[1] == nil {
			return false, nil
		}
		k := pickCode(s.logits[0], s.logits[1], f, s.scale, s.temperature, s.topK, s.rng)
		s.logits = [2][]float32{}
		s.codes = append(s.codes, int32(k))
	}
	k := s.drawn() - 1
	if s.OnLatent != nil {
		if err := s.OnLatent(s.progress(k)); err != nil {
			s.fail(err) // the other stream, if any, ends at its next tick
			return true, s.errOf(st)
		}
	}
	if !s.Done() {
		return false, nil
	}
	if s.parent != nil {
		s.parent.imageDone(s)
	}
	return true, nil
}

// errOf is the error stream st ends with: the image's, and none for its
// guide, which ends with it.
func (s *ImageSequence) errOf(st int) error {
	if st == 1 {
		return nil
	}
	return s.err
}

func (s *ImageSequence) progress(k int) ImageProgress {
	grid := s.m.Format.Items
	if s.m.Image != nil {
		grid = s.m.Image.Config.Grid()
	}
	p := ImageProgress{Index: k, Row: k / grid, Col: k % grid, Grid: grid, Code: -1}
	if s.m.Arch == VQ {
		p.Code = int(s.codes[k])
	} else {
		c := s.m.Format.Channels
		p.Latent = s.latents[k*c : (k+1)*c]
	}
	return p
}

// AnswerSequence writes a caption of an image, or the answer to a
// question about it (image → text), as a sequence of an unguided
// continuous batch: the prefix <|endoftext|> <BOL> z₀ … <EOL> [question]
// (the image's latents from the image tokenizer's encoder, or a VQ-MLLM's
// codes), then the most likely text token after each item, up to
// <|endoftext|>, MaxTokens tokens or max_len — the answers of Caption and
// Ask, the paper's image-to-text tasks (LatentLM §3.2), whose strings Text
// gives exactly, up to the float32 rounding by which stepping a prefix in
// may differ from reading it in one pass.
type AnswerSequence struct {
	// OnText, when set, receives the text as it comes: whole UTF-8
	// characters as soon as their bytes are in (as Complete streams), the
	// last piece with any unfinished bytes replaced by U+FFFD. The pieces
	// make up Text, except that a run of invalid bytes split between
	// pieces gets one U+FFFD in each. An error ends the sequence with that
	// error. It runs inside Take, on the goroutine that steps the batch.
	OnText func(string) error

	m      *Model
	prefix []lm.Item
	fed    int
	ans    greedyAnswer
	tok    int // the token picked last: the next item
	out    runeStream
	done   bool
	err    error
}

// NewCaptionSequence prepares a caption of image (Image.Config.Pixels()
// values in [0, 1]) of at most opts.MaxTokens tokens. It runs the image
// tokenizer's encoder, so call it where the model's other calls are
// serialised.
func (m *Model) NewCaptionSequence(image []float32, opts Options) (*AnswerSequence, error) {
	return m.newAnswerSequence(image, nil, opts)
}

// NewAskSequence prepares the answer to question about image, refusing
// the question as Ask does.
func (m *Model) NewAskSequence(image []float32, question string, opts Options) (*AnswerSequence, error) {
	ids, err := m.encodeQuestion(question)
	if err != nil {
		return nil, err
	}
	return m.newAnswerSequence(image, ids, opts)
}

func (m *Model) newAnswerSequence(image []float32, question []int, opts Options) (*AnswerSequence, error) {
	if err := m.sequenceOptions(opts); err != nil {
		return nil, err
	}
	rows, err := m.answerPrompts([][]float32{image}, question)
	if err != nil {
		return nil, err
	}
	if len(rows[0]) > m.Config.MaxLen {
		return nil, fmt.Errorf("multimodal: a prompt of %d items exceeds max_len %d", len(rows[0]), m.Config.MaxLen)
	}
	return &AnswerSequence{m: m, prefix: rows[0], ans: m.newGreedyAnswer(opts.MaxTokens)}, nil
}

// Text is the text so far, and when Done the answer Caption or Ask gives.
func (s *AnswerSequence) Text() string {
	t, err := s.ans.text(s.m.Text)
	if err != nil { // no id of the softmax head's text is out of the tokenizer's range
		return ""
	}
	return t
}

// Tokens is the number of text tokens so far.
func (s *AnswerSequence) Tokens() int { return len(s.ans.ids) }

// Done reports whether the answer is finished.
func (s *AnswerSequence) Done() bool { return s.done }

// Abort ends the answer with err at its next tick (its Take returns err).
func (s *AnswerSequence) Abort(err error) {
	if err == nil {
		err = errors.New("multimodal: answer aborted")
	}
	if s.err == nil {
		s.err = err
	}
}

// Next is the item to append at this tick (lm.Sequence): the prompt's,
// then the token picked last.
func (s *AnswerSequence) Next() lm.RowItem {
	if s.err != nil {
		return s.m.filler()
	}
	it := lm.TokenItem(s.tok)
	if s.fed < len(s.prefix) {
		it = s.prefix[s.fed]
	}
	return lm.RowItem{Item: it, Guide: it}
}

// Block hands the batch the prompt (the image and question) in one block
// (lm.BlockReader).
func (s *AnswerSequence) Block() (items, guide []lm.Item) {
	if s.err != nil || s.fed > 0 || len(s.prefix) < 2 {
		return nil, nil
	}
	s.fed = len(s.prefix) - 1
	return s.prefix, nil
}

// Want asks for the logits after the prompt's last item and after each
// token (lm.Sequence), while max_len leaves room for another token.
func (s *AnswerSequence) Want() lm.Want {
	return lm.Want{Logits: s.err == nil && s.fed >= len(s.prefix)-1 && s.fed+1 < s.m.Config.MaxLen}
}

// Take picks the most likely text token from the logits (lm.Sequence).
func (s *AnswerSequence) Take(logits, _ []float32) (bool, error) {
	if s.err != nil {
		return true, s.err
	}
	s.fed++
	if s.fed < len(s.prefix) {
		return false, nil
	}
	if logits == nil { // max_len
		return true, s.finish()
	}
	tok := pickToken(logits, s.m.Format, false, 0, 1, nil)
	n := len(s.ans.ids)
	more := s.ans.take(tok, s.fed)
	if len(s.ans.ids) > n {
		s.out.write(s.m.Text.TokenBytes(s.ans.ids[n]))
		if err := s.emit(false); err != nil {
			return true, err
		}
	}
	if !more {
		return true, s.finish()
	}
	s.tok = tok
	return false, nil
}

func (s *AnswerSequence) finish() error {
	s.done = true
	return s.emit(true)
}

func (s *AnswerSequence) emit(final bool) error {
	if t := s.out.flush(final); t != "" && s.OnText != nil {
		return s.OnText(t)
	}
	return nil
}

// CompleteSequence continues a prompt as Complete does, as a sequence of an
// unguided continuous batch: text drawn with opts' temperature and top-p,
// and, where the model itself emits <BOL>, an image (the paper's
// general-purpose interface, LatentLM §1 and §3.2), after which text goes
// on; it ends at <|endoftext|>, MaxTokens text tokens or max_len.
//
// The image is drawn as Complete draws it, guided, against the sequence
// with the text since the last document or image boundary replaced by
// null tokens, but by an ImageSequence of a batch of its own kind (Guided;
// a VQ-MLLM's, the unguided batch itself). The handoff is the caller's:
// after each step of the completion's batch, TakeImage hands out the image
// the completion now waits for, which the caller adds (ImageSequence.AddTo)
// to that batch. Meanwhile the completion stays in its slot, idle
// (lm.RowItem.Idle), keeping its position; once the image is drawn it
// decodes it (OnPiece), steps its items <BOL> … <EOL> into its own stream,
// one per tick, and goes on with text.
//
// Its random draws are its own: the text's from PCG(seed, the text
// stream) as Complete's, and image i's noise (or codes) from PCG(seed, i)
// as an ImageSequence of index i. Complete draws its latents from the
// store's generator (and a VQ-MLLM's codes from the text's generator)
// instead; given the same latent noise, its pieces are the same, the
// images up to float32 rounding.
//
// Waiting completions hold their slots: a VQ-MLLM's images join the
// completions' own batch, so a caller must keep room there (two
// sequences per image) rather than fill it with completions. To cancel a
// completion, Abort it: it leaves at its next tick, and so does its image.
type CompleteSequence struct {
	// OnPiece, when set, receives each piece as it is made, as Complete's
	// emit does: text as soon as its bytes form whole UTF-8 characters,
	// and each image, decoded. An error ends the sequence with that
	// error. It runs inside Take (the completion's, or for an image its
	// ImageSequence's), on the goroutine that steps the batch.
	OnPiece func(Piece) error

	m       *Model
	opts    Options
	history Row // every item of the sequence: those appended, then those to append
	caption int // where the text since the last boundary starts
	fed     int // items appended
	rng     *rand.Rand
	tokens  int // text tokens drawn
	out     runeStream
	images  int            // images opened
	img     *ImageSequence // the image the completion waits for
	handed  bool           // img was handed out by TakeImage
	pieces  []Piece
	done    bool
	err     error
}

// NewCompleteSequence prepares a completion of prompt with opts' text
// temperature, top-p, MaxTokens and seed, and, for its images, guidance
// scale, temperature and top-k (the solver steps are the batch's). The
// prompt is refused as Complete refuses it.
func (m *Model) NewCompleteSequence(prompt string, opts Options) (*CompleteSequence, error) {
	if err := m.sequenceOptions(opts); err != nil {
		return nil, err
	}
	ids, err := m.encodePrompt("the prompt", prompt, 2)
	if err != nil {
		return nil, err
	}
	return &CompleteSequence{m: m, opts: opts, history: completionPrompt(m.Format, ids), caption: 1,
		rng: rand.New(rand.NewPCG(uint64(opts.Seed), textStream))}, nil
}

// TakeImage is the image the completion waits for, handed out once: the
// caller adds it to its batch (AddTo; a guided one if it is Guided) and
// lets it run; the completion goes on by itself once the image is done.
// It is nil when the completion waits for no image, or the caller already
// took it; a caller whose batch is full keeps it until there is room (the
// completion waits meanwhile). An image that ends with an error outside its Take (its batch
// failed) must be aborted (ImageSequence.Abort), which ends the completion
// too; removing it (RemoveFrom) does.
func (s *CompleteSequence) TakeImage() *ImageSequence {
	if s.img == nil || s.handed || s.err != nil {
		return nil
	}
	s.handed = true
	return s.img
}

// Waiting reports whether the completion waits for an image.
func (s *CompleteSequence) Waiting() bool { return s.img != nil }

// Pieces are the pieces made so far, as OnPiece received them.
func (s *CompleteSequence) Pieces() []Piece { return s.pieces }

// Done reports whether the completion is finished.
func (s *CompleteSequence) Done() bool { return s.done }

// Abort ends the completion with err at its next tick (its Take returns
// err), idle or not, and the image it waits for with it.
func (s *CompleteSequence) Abort(err error) {
	if err == nil {
		err = errors.New("multimodal: completion aborted")
	}
	if s.err != nil || s.done {
		return
	}
	s.err = err
	if s.img != nil && s.img.err == nil {
		s.img.err = err
	}
}

// Next is the item to append at this tick (lm.Sequence): the prompt's,
// the token drawn last, or an item of the image drawn last; idle while
// the image is being drawn.
func (s *CompleteSequence) Next() lm.RowItem {
	switch {
	case s.err != nil:
		return s.m.filler()
	case s.img != nil:
		return lm.RowItem{Idle: true}
	case s.fed >= len(s.history.Items):
		s.err = errors.New("multimodal: completion stepped past its items")
		return s.m.filler()
	}
	it := s.history.Items[s.fed]
	return lm.RowItem{Item: it, Guide: it}
}

// Block hands the batch the items known and not yet read in one block
// (lm.BlockReader): the prompt, and an image once drawn.
func (s *CompleteSequence) Block() (items, guide []lm.Item) {
	if s.err != nil || s.img != nil || len(s.history.Items)-s.fed < 2 {
		return nil, nil
	}
	items = s.history.Items[s.fed:]
	s.fed = len(s.history.Items) - 1
	return items, nil
}

// Want asks for the logits after the last known item (lm.Sequence), while
// max_len leaves room for another.
func (s *CompleteSequence) Want() lm.Want {
	return lm.Want{Logits: s.err == nil && s.fed == len(s.history.Items)-1 && s.fed+1 < s.m.Config.MaxLen}
}

// Take draws the next token from the logits (lm.Sequence): text, the end,
// or <BOL>, which opens an image (TakeImage).
func (s *CompleteSequence) Take(logits, _ []float32) (bool, error) {
	if s.err != nil {
		return true, s.err
	}
	s.fed++
	if s.fed < len(s.history.Items) {
		return false, nil
	}
	if logits == nil { // max_len
		return true, s.finish()
	}
	m, f := s.m, s.m.Format
	tok := pickToken(logits, f, m.imageFits(s.fed), s.opts.TextTemperature, s.opts.TopP, s.rng)
	if tok == f.Vocab.BOL() {
		if err := s.flush(true); err != nil {
			return true, err
		}
		cond, guide := imagePrompt(f, s.history.Items, s.caption)
		img, err := m.newImageSequence(cond, guide, s.images, s.opts)
		if err != nil {
			return true, err
		}
		s.images++
		img.parent, s.img, s.handed = s, img, false
		return false, nil
	}
	t, _ := f.TextOf(tok)
	if t == f.EOT {
		return true, s.finish()
	}
	s.out.write(m.Text.TokenBytes(t))
	if err := s.flush(false); err != nil {
		return true, err
	}
	s.tokens++
	if s.tokens >= s.opts.MaxTokens || s.fed+1 >= m.Config.MaxLen {
		return true, s.finish()
	}
	s.history.add(lm.TokenItem(tok), nil, true)
	return false, nil
}

// imageDone takes the drawn image: it emits it and queues its items. An
// error of either ends the completion at its next tick.
func (s *CompleteSequence) imageDone(img *ImageSequence) {
	if s.img != img || s.err != nil {
		return
	}
	s.img = nil
	px, err := img.Decode()
	if err == nil {
		err = s.emit(Piece{Image: px})
	}
	if err != nil {
		s.err = err
		return
	}
	f := s.m.Format
	if s.m.Arch == VQ {
		s.history.ImageCodes(f, img.codes)
	} else {
		s.history.Image(f, img.latents, nil)
	}
	s.caption = len(s.history.Items)
}

func (s *CompleteSequence) finish() error {
	s.done = true
	return s.flush(true)
}

// flush emits the text held: its whole characters, or with final all of
// it.
func (s *CompleteSequence) flush(final bool) error {
	if t := s.out.flush(final); t != "" {
		return s.emit(Piece{Text: t})
	}
	return nil
}

func (s *CompleteSequence) emit(p Piece) error {
	s.pieces = append(s.pieces, p)
	if s.OnPiece != nil {
		return s.OnPiece(p)
	}
	return nil
}
