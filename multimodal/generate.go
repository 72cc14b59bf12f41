package multimodal

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/text"
)

// DefaultBatch is the default of Options.Batch.
const DefaultBatch = 64

// Images draws n images from a caption (text → image), or unconditionally
// from the empty caption; see ImagesFor.
func (m *Model) Images(ctx context.Context, caption string, n int) ([][]float32, error) {
	return m.ImagesFor(ctx, slices.Repeat([]string{caption}, n))
}

// ImagesFor draws one image per caption (text → image): the prefix
// <|endoftext|> caption <BOL>, guided by the same prefix with the caption
// replaced by null tokens (the dropped caption of training), then the
// image's latents, decoded by the image tokenizer. The empty caption draws
// an image unconditionally, from <|endoftext|> <BOL> alone and without
// guidance: the image-only documents a model trained on pictures without
// captions learnt (a class-free model), which are also a dropped caption
// with no null tokens left. Captions of one token length share a batch.
// Each image is Image.Config.Pixels() values in [0, 1]: ImageSize² for a
// gray tokenizer, ImageSize²×3 (H×W×C, channels last) for an RGB one.
func (m *Model) ImagesFor(ctx context.Context, captions []string) ([][]float32, error) {
	if m.engine == nil {
		return nil, errClosed
	}
	return DrawByBatch(ctx, m.Format, m.Text, m.Config.MaxLen, captions, m.opts.Batch, func(b ImageBatch) ([][]float32, error) {
		return m.drawImages(ctx, b.Cond, b.Guide, nil)
	})
}

// drawImages draws the images after the prompt rows cond (guided by
// guide, unless nil) and decodes them: a VQ-MLLM samples codes, LatentLM
// solves each latent with the diffusion head (from noise, see drawLatents).
func (m *Model) drawImages(ctx context.Context, cond, guide [][]lm.Item, noise []*rand.Rand) ([][]float32, error) {
	if m.Arch == VQ {
		codes, err := m.drawCodes(ctx, cond, guide)
		if err != nil {
			return nil, err
		}
		return m.decodeCodes(codes)
	}
	lat, err := m.drawLatents(ctx, cond, guide, noise)
	if err != nil {
		return nil, err
	}
	return m.Image.Decode(lat)
}

// drawLatents solves the latents of one image after each prompt row of
// cond (guided by guide, unless nil) with the engine's plan, guidance
// scale and temperature. The noise of latent k of row i is the next
// Channels standard normal draws of noise[i] (as an ImageSequence draws
// it), or, when noise is nil, the store's generator's.
func (m *Model) drawLatents(ctx context.Context, cond, guide [][]lm.Item, noise []*rand.Rand) ([][]float32, error) {
	sess, err := m.engine.Prefill(cond, guide)
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	seg := lm.Segment{Max: m.Format.Items, AfterLatent: func(int, [][]float32) error { return ctx.Err() }}
	if noise != nil {
		seg.BeforeLatent = func(int) ([][]float32, error) {
			z := make([][]float32, len(noise))
			for i, rng := range noise {
				z[i] = normalDraw(rng, m.Format.Channels)
			}
			return z, nil
		}
	}
	return sess.Latents(seg)
}

// normalDraw is the next n standard normal draws of rng.
func normalDraw(rng *rand.Rand, n int) []float32 {
	z := make([]float32, n)
	for i := range z {
		z[i] = float32(rng.NormFloat64())
	}
	return z
}

// Caption writes a caption for each image (image → text): the prefix
// <|endoftext|> <BOL> z₀ … <EOL>, then text, taken greedily, up to
// <|endoftext|>. Images are Image.Config.Pixels() values in [0, 1], as
// ImagesFor makes them.
func (m *Model) Caption(ctx context.Context, images [][]float32) ([]string, error) {
	return m.answer(ctx, images, nil)
}

// Ask answers a question about each image: the prefix <|endoftext|> <BOL>
// z₀ … <EOL> question, then the answer, taken greedily.
func (m *Model) Ask(ctx context.Context, images [][]float32, question string) ([]string, error) {
	ids, err := m.encodeQuestion(question)
	if err != nil {
		return nil, err
	}
	return m.answer(ctx, images, ids)
}

// answer continues <|endoftext|> <BOL> image <EOL> question (ids, possibly
// none) with greedy text for each image.
func (m *Model) answer(ctx context.Context, images [][]float32, question []int) ([]string, error) {
	if m.engine == nil {
		return nil, errClosed
	}
	out := make([]string, 0, len(images))
	for start := 0; start < len(images); start += m.opts.Batch {
		batch := images[start:min(start+m.opts.Batch, len(images))]
		rows, err := m.answerPrompts(batch, question)
		if err != nil {
			return nil, err
		}
		sess, err := m.engine.Prefill(rows, nil)
		if err != nil {
			return nil, err
		}
		texts, err := m.greedyText(ctx, sess, len(batch))
		sess.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, texts...)
	}
	return out, nil
}

// answerPrompts lays out the prefix <|endoftext|> <BOL> image <EOL>
// question of each image: its latents from the image tokenizer's encoder
// (LatentLM), or its codes read as tokens (a VQ-MLLM).
func (m *Model) answerPrompts(images [][]float32, question []int) ([][]lm.Item, error) {
	f := m.Format
	rows := make([][]lm.Item, len(images))
	if m.Arch == VQ {
		codes, err := m.Image.Codes(images)
		if err != nil {
			return nil, err
		}
		for i, c := range codes {
			var r Row
			r.EOT(f)
			r.ImageCodes(f, c)
			r.Text(f, question)
			rows[i] = r.Items
		}
		return rows, nil
	}
	lat, err := m.Image.Encode(images, false)
	if err != nil {
		return nil, err
	}
	for i, z := range lat {
		var r Row
		r.EOT(f)
		r.Image(f, z, nil)
		r.Text(f, question)
		rows[i] = r.Items
	}
	return rows, nil
}

// encodeQuestion tokenizes Ask's question, leaving room for the image
// before it.
func (m *Model) encodeQuestion(question string) ([]int, error) {
	return m.encodePrompt("the question", question, m.Format.ImageLen()+3)
}

// greedyText extends every sequence of sess with its most likely text
// tokens until <|endoftext|>, MaxTokens or max_len.
func (m *Model) greedyText(ctx context.Context, sess *lm.Session, n int) ([]string, error) {
	answers := make([]greedyAnswer, n)
	for i := range answers {
		answers[i] = m.newGreedyAnswer(m.opts.MaxTokens)
	}
	for sess.Len() < m.Config.MaxLen {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		logits, err := sess.Logits()
		if err != nil {
			return nil, err
		}
		items := make([]lm.Item, n)
		left := 0
		for i, l := range logits {
			a := &answers[i]
			tok := pickToken(l, a.f, false, 0, 1, nil)
			if !a.done && a.take(tok, sess.Len()) {
				left++
			}
			items[i] = lm.TokenItem(tok)
		}
		if left == 0 {
			break
		}
		if err := sess.Step(items); err != nil {
			return nil, err
		}
	}
	out := make([]string, n)
	for i := range answers {
		s, err := answers[i].text(m.Text)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

// greedyAnswer is one answer being written greedily (Caption, Ask, and
// their sequences in a continuous batch): the most likely text token after
// each item, up to <|endoftext|>, maxTokens tokens or max_len.
type greedyAnswer struct {
	f                 Format
	maxTokens, maxLen int
	ids               []int // the text ids so far
	picks             int
	done              bool
}

func (m *Model) newGreedyAnswer(maxTokens int) greedyAnswer {
	return greedyAnswer{f: m.Format, maxTokens: maxTokens, maxLen: m.Config.MaxLen}
}

// take takes tok, picked after the answer's sequence of n items, and
// reports whether the answer goes on: tok is then the next item.
func (a *greedyAnswer) take(tok, n int) bool {
	a.picks++
	t, _ := a.f.TextOf(tok)
	if t == a.f.EOT {
		a.done = true
		return false
	}
	a.ids = append(a.ids, t)
	if a.picks >= a.maxTokens || n+1 >= a.maxLen {
		a.done = true
	}
	return !a.done
}

// text is the answer so far as a string. A model may stop inside a
// character; the text stays printable.
func (a *greedyAnswer) text(tok *text.Tokenizer) (string, error) {
	s, err := tok.Decode(a.ids)
	if err != nil {
		return "", err
	}
	return strings.ToValidUTF8(s, "\uFFFD"), nil
}

// pick chooses the next token from logits among the text ids (and <BOL>
// when images are allowed; never an image code of a VQ-MLLM, which only
// drawCodes draws inside an image): the most likely at temperature 0, else
// a draw from the nucleus of probability topP of softmax(logits/temperature).
func (m *Model) pick(logits []float32, allowImage bool, temperature, topP float64) int {
	return pickToken(logits, m.Format, allowImage, temperature, topP, m.rng)
}

func pickToken(logits []float32, f Format, allowImage bool, temperature, topP float64, rng *rand.Rand) int {
	allowed := func(id int) bool {
		if id == f.Vocab.BOL() {
			return allowImage
		}
		_, ok := f.TextOf(id)
		return ok
	}
	best := -1
	for id, l := range logits {
		if allowed(id) && (best < 0 || l > logits[best]) {
			best = id
		}
	}
	if temperature <= 0 {
		return best
	}
	type cand struct {
		id int
		p  float64
	}
	var cands []cand
	var sum float64
	for id, l := range logits {
		if allowed(id) {
			p := math.Exp((float64(l) - float64(logits[best])) / temperature)
			cands = append(cands, cand{id, p})
			sum += p
		}
	}
	slices.SortFunc(cands, func(a, b cand) int {
		switch {
		case a.p > b.p:
			return -1
		case a.p < b.p:
			return 1
		}
		return a.id - b.id
	})
	// The nucleus: the most likely tokens up to probability topP.
	var mass float64
	keep := len(cands)
	for i, c := range cands {
		mass += c.p / sum
		if mass >= topP {
			keep = i + 1
			break
		}
	}
	cands = cands[:keep]
	var total float64
	for _, c := range cands {
		total += c.p
	}
	u := rng.Float64() * total
	for _, c := range cands {
		if u < c.p {
			return c.id
		}
		u -= c.p
	}
	return cands[len(cands)-1].id
}

// Piece is one part of a completion: text, or an image the model drew
// (Image.Config.Pixels() values in [0, 1]).
type Piece struct {
	Text  string
	Image []float32
}

// Complete continues a prompt, the paper's general-purpose interface: text
// drawn with the options' temperature and top-p, and, where the model
// itself emits <BOL>, an image, after which <EOL> is appended and text goes
// on. It ends at <|endoftext|>, MaxTokens text tokens or max_len. emit
// receives each piece as it is made: text as soon as its bytes form whole
// UTF-8 characters.
//
// Text is generated on one unguided stream. An image is drawn on a guided
// session of its own: the sequence so far with <BOL>, against the same
// sequence with the text since the last document or image boundary (the
// prompt and what the model wrote, its caption) replaced by null tokens —
// the dropped caption of training. The image's items are then stepped into
// the text stream.
func (m *Model) Complete(ctx context.Context, prompt string, emit func(Piece) error) error {
	return m.complete(ctx, prompt, emit, nil)
}

// complete is Complete; the latents of image i are drawn from noise(i)
// (see drawLatents) when noise is not nil.
func (m *Model) complete(ctx context.Context, prompt string, emit func(Piece) error, noise func(image int) *rand.Rand) error {
	if m.engine == nil {
		return errClosed
	}
	ids, err := m.encodePrompt("the prompt", prompt, 2)
	if err != nil {
		return err
	}
	f := m.Format
	history := completionPrompt(f, ids) // every item of the sequence so far
	caption := 1                        // where the text since the last boundary starts
	sess, err := m.engine.Prefill([][]lm.Item{history.Items}, nil)
	if err != nil {
		return err
	}
	defer sess.Close()
	var out runeStream // the bytes of a character not yet whole
	flush := func(final bool) error {
		if s := out.flush(final); s != "" {
			return emit(Piece{Text: s})
		}
		return nil
	}
	step := func(it lm.Item) error {
		history.add(it, nil, true)
		return sess.Step([]lm.Item{it})
	}
	images := 0
	for tokens := 0; tokens < m.opts.MaxTokens && sess.Len() < m.Config.MaxLen; {
		if err := ctx.Err(); err != nil {
			return err
		}
		logits, err := sess.Logits()
		if err != nil {
			return err
		}
		tok := m.pick(logits[0], m.imageFits(sess.Len()), m.opts.TextTemperature, m.opts.TopP)
		if tok == f.Vocab.BOL() {
			if err := flush(true); err != nil {
				return err
			}
			var rng *rand.Rand
			if noise != nil {
				rng = noise(images)
			}
			images++
			img, pixels, err := m.drawImage(ctx, history, caption, rng)
			if err != nil {
				return err
			}
			if err := emit(Piece{Image: pixels}); err != nil {
				return err
			}
			for _, it := range img.Items {
				if sess.Len() >= m.Config.MaxLen {
					return nil
				}
				if err := step(it); err != nil {
					return err
				}
			}
			caption = len(history.Items)
			continue
		}
		t, _ := f.TextOf(tok)
		if t == f.EOT {
			break
		}
		out.write(m.Text.TokenBytes(t))
		if err := flush(false); err != nil {
			return err
		}
		tokens++
		if sess.Len() >= m.Config.MaxLen {
			break
		}
		if err := step(lm.TokenItem(tok)); err != nil {
			return err
		}
	}
	return flush(true)
}

// completionPrompt is the start of a completion: <|endoftext|> and the
// prompt's text ids.
func completionPrompt(f Format, ids []int) Row {
	var r Row
	r.EOT(f)
	r.Text(f, ids)
	return r
}

// imageFits reports whether a completion of n items may open an image:
// the whole image, <BOL> to <EOL>, must fit in max_len.
func (m *Model) imageFits(n int) bool { return m.Config.MaxLen-n >= m.Format.ImageLen() }

// imagePrompt is the prompt of an image that a completion opens after the
// items of history: history and <BOL>, guided by the same sequence whose
// items from caption on (the text since the last document or image
// boundary) are null tokens, the dropped caption of training.
func imagePrompt(f Format, history []lm.Item, caption int) (cond, guide []lm.Item) {
	bol := lm.TokenItem(f.Vocab.BOL())
	cond = append(append([]lm.Item(nil), history...), bol)
	guide = append([]lm.Item(nil), history[:caption]...)
	for range len(history) - caption {
		guide = append(guide, lm.TokenItem(f.Vocab.Null()))
	}
	return cond, append(guide, bol)
}

// drawImage draws an image after the sequence so far (history), guided by
// the same sequence whose items from caption on are null tokens
// (imagePrompt): its latents (LatentLM, from noise unless nil: see
// drawLatents) or codes (a VQ-MLLM). It returns the image's items,
// <BOL> … <EOL>, and its pixels.
func (m *Model) drawImage(ctx context.Context, history Row, caption int, noise *rand.Rand) (Row, []float32, error) {
	f := m.Format
	c, g := imagePrompt(f, history.Items, caption)
	cond, guide := [][]lm.Item{c}, [][]lm.Item{g}
	var img Row
	if m.Arch == VQ {
		codes, err := m.drawCodes(ctx, cond, guide)
		if err != nil {
			return img, nil, err
		}
		pixels, err := m.decodeCodes(codes)
		if err != nil {
			return img, nil, err
		}
		img.ImageCodes(f, codes[0])
		return img, pixels[0], nil
	}
	var rngs []*rand.Rand
	if noise != nil {
		rngs = []*rand.Rand{noise}
	}
	lat, err := m.drawLatents(ctx, cond, guide, rngs)
	if err != nil {
		return img, nil, err
	}
	pixels, err := m.Image.Decode(lat)
	if err != nil {
		return img, nil, err
	}
	img.Image(f, lat[0], nil)
	return img, pixels[0], nil
}

// runeStream turns the bytes of text tokens, as they come, into printable
// pieces: whole UTF-8 characters as soon as their bytes are in (Complete,
// and the sequences' streaming).
type runeStream struct{ pending []byte }

func (s *runeStream) write(b []byte) { s.pending = append(s.pending, b...) }

// flush returns the whole characters held and forgets them ("" if none);
// with final, every byte held, invalid ones replaced by U+FFFD.
func (s *runeStream) flush(final bool) string {
	end := len(s.pending)
	if !final {
		end = wholeRunes(s.pending)
	}
	if end == 0 {
		return ""
	}
	out := strings.ToValidUTF8(string(s.pending[:end]), "\uFFFD")
	s.pending = append(s.pending[:0], s.pending[end:]...)
	return out
}

// wholeRunes is the length of the longest prefix of b that holds no
// incomplete character at its end: every byte except an unfinished UTF-8
// sequence at the very end (invalid bytes in the middle count as whole, so
// one bad byte never holds back the rest of the stream).
func wholeRunes(b []byte) int {
	for k := 1; k <= min(utf8.UTFMax-1, len(b)); k++ {
		i := len(b) - k
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return i
			}
			break
		}
	}
	return len(b)
}

// TextNats is the teacher-forced cross-entropy, in nats, of the text of
// docs (text ids each) under the model: every token of a document is
// predicted once, the first from <|endoftext|>, in windows of max_len
// items whose later windows start from the token before them. Divided by
// the documents' UTF-8 bytes and ln 2 it is bits per byte (text.BitsPerByte).
func (m *Model) TextNats(docs [][]int) (nats float64, tokens int, err error) {
	if m.engine == nil {
		return 0, 0, errClosed
	}
	l := m.Config.MaxLen
	if m.nats == nil {
		cfg := m.Config
		m.nats, err = model.NewExec(m.backend, m.store, func(scope *model.Scope, ids, mask *Node) *Node {
			return SequenceNats(nn.WeightsOf(scope.Store(), ids.Graph()), cfg, ids, mask)
		})
		if err != nil {
			return 0, 0, err
		}
	}
	var windows [][]int32 // items
	var masks [][]float32 // 1 where the item is predicted
	f := m.Format
	for _, doc := range docs {
		for start := 0; start < len(doc); start += l - 1 {
			w := []int32{int32(f.Vocab.Text(f.EOT))}
			if start > 0 {
				w[0] = int32(f.Vocab.Text(doc[start-1]))
			}
			end := min(start+l-1, len(doc))
			for _, t := range doc[start:end] {
				w = append(w, int32(f.Vocab.Text(t)))
			}
			mk := make([]float32, len(w))
			for j := 1; j < len(w); j++ {
				mk[j] = 1
			}
			tokens += len(w) - 1
			windows, masks = append(windows, w), append(masks, mk)
		}
	}
	const batch = 32
	for s := 0; s < len(windows); s += batch {
		e := min(s+batch, len(windows))
		ids := make([]int32, batch*l)
		mask := make([]float32, batch*l)
		for i := s; i < e; i++ {
			copy(ids[(i-s)*l:], windows[i])
			copy(mask[(i-s)*l:], masks[i])
		}
		args := []any{tensors.FromFlatDataAndDimensions(ids, batch, l), tensors.FromFlatDataAndDimensions(mask, batch, l)}
		out, err := m.nats.Call(args...)
		nn.Release(args...)
		if err != nil {
			return 0, 0, fmt.Errorf("multimodal: text cross-entropy: %w", err)
		}
		nats += float64(tensors.ToScalar[float32](out[0]))
		nn.Release(out[0])
	}
	return nats, tokens, nil
}

// SequenceNats is the summed cross-entropy (nats) of a batch of token
// sequences ids [B, L] under the model, counting the items where mask
// [B, L] is 1 (each predicted from the items before it).
func SequenceNats(w nn.Weights, cfg lm.Config, ids, mask *Node) *Node {
	g := ids.Graph()
	dims := ids.Shape().Dimensions
	b, l := dims[0], dims[1]
	it := lm.Items{Ids: ids, Latents: Zeros(g, nn.Shape(dtypes.Float32, b, l, cfg.Latent)), IsLatent: Zeros(g, nn.Shape(dtypes.Float32, b, l))}
	h, _ := cfg.Backbone(w, it.Slice(0, l-1), lm.Positions(g, dtypes.Float32, 0, l-1), nil)
	logp := LogSoftmax(cfg.Logits(w, h), -1)
	next := SliceAxis(ids, 1, AxisRange(1, l))
	nll := Neg(ReduceSum(Mul(logp, OneHot(next, cfg.Vocab.Size(), dtypes.Float32)), -1))
	return ReduceAllSum(Mul(nll, SliceAxis(mask, 1, AxisRange(1, l))))
}
