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
)

// DefaultBatch is the default of Options.Batch.
const DefaultBatch = 64

// Images draws n images from a caption (text → image), or unconditionally
// from the empty caption; see ImagesFor.
func (m *Model) Images(ctx context.Context, caption string, n int) ([][]float32, error) {
	captions := make([]string, n)
	for i := range captions {
		captions[i] = caption
	}
	return m.ImagesFor(ctx, captions)
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
	batches, err := ImageBatches(m.Format, m.Text, m.Config.MaxLen, captions, m.opts.Batch)
	if err != nil {
		return nil, err
	}
	out := make([][]float32, len(captions))
	for _, b := range batches {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		imgs, err := m.drawImages(ctx, b.Cond, b.Guide)
		if err != nil {
			return nil, err
		}
		for j, i := range b.Index {
			out[i] = imgs[j]
		}
	}
	return out, nil
}

// drawImages draws the images after the prompt rows cond (guided by
// guide, unless nil) and decodes them: a VQ-MLLM samples codes, LatentLM
// solves each latent with the diffusion head.
func (m *Model) drawImages(ctx context.Context, cond, guide [][]lm.Item) ([][]float32, error) {
	if m.Arch == VQ {
		codes, err := m.drawCodes(ctx, cond, guide)
		if err != nil {
			return nil, err
		}
		return m.decodeCodes(codes)
	}
	sess, err := m.engine.Prefill(cond, guide)
	if err != nil {
		return nil, err
	}
	lat, err := sess.Latents(lm.Segment{Max: m.Format.Items, AfterLatent: func(int, [][]float32) error { return ctx.Err() }})
	sess.Close()
	if err != nil {
		return nil, err
	}
	return m.Image.Decode(lat)
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
	ids, err := m.encodePrompt("the question", question, m.Format.ImageLen()+3)
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
	f := m.Format
	out := make([]string, 0, len(images))
	for start := 0; start < len(images); start += m.opts.Batch {
		batch := images[start:min(start+m.opts.Batch, len(images))]
		rows := make([][]lm.Item, len(batch))
		if m.Arch == VQ { // the image's codes, read as tokens
			codes, err := m.Image.Codes(batch)
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
		} else {
			lat, err := m.Image.Encode(batch, false)
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

// greedyText extends every sequence of sess with its most likely text
// tokens until <|endoftext|>, MaxTokens or max_len.
func (m *Model) greedyText(ctx context.Context, sess *lm.Session, n int) ([]string, error) {
	f := m.Format
	ids := make([][]int, n)
	done := make([]bool, n)
	for step := 0; step < m.opts.MaxTokens && sess.Len() < m.Config.MaxLen; step++ {
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
			tok := m.pick(l, false, 0, 1)
			items[i] = lm.TokenItem(tok)
			t, _ := f.TextOf(tok)
			if t == f.EOT {
				done[i] = true
			}
			if !done[i] {
				ids[i] = append(ids[i], t)
				left++
			}
		}
		if left == 0 || step == m.opts.MaxTokens-1 || sess.Len()+1 >= m.Config.MaxLen {
			break
		}
		if err := sess.Step(items); err != nil {
			return nil, err
		}
	}
	out := make([]string, n)
	for i, t := range ids {
		s, err := m.Text.Decode(t)
		if err != nil {
			return nil, err
		}
		// A model may stop inside a character; the text stays printable.
		out[i] = strings.ToValidUTF8(s, "\uFFFD")
	}
	return out, nil
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
	if m.engine == nil {
		return errClosed
	}
	ids, err := m.encodePrompt("the prompt", prompt, 2)
	if err != nil {
		return err
	}
	f := m.Format
	var history Row // every item of the sequence so far
	history.EOT(f)
	history.Text(f, ids)
	caption := 1 // where the text since the last boundary starts
	sess, err := m.engine.Prefill([][]lm.Item{history.Items}, nil)
	if err != nil {
		return err
	}
	defer sess.Close()
	var pending []byte // the bytes of a character not yet whole
	flush := func(final bool) error {
		end := len(pending)
		if !final {
			end = wholeRunes(pending)
		}
		if end == 0 {
			return nil
		}
		s := strings.ToValidUTF8(string(pending[:end]), "\uFFFD")
		pending = append(pending[:0], pending[end:]...)
		return emit(Piece{Text: s})
	}
	step := func(it lm.Item) error {
		history.add(it, nil, true)
		return sess.Step([]lm.Item{it})
	}
	for tokens := 0; tokens < m.opts.MaxTokens && sess.Len() < m.Config.MaxLen; {
		if err := ctx.Err(); err != nil {
			return err
		}
		logits, err := sess.Logits()
		if err != nil {
			return err
		}
		room := m.Config.MaxLen - sess.Len()
		tok := m.pick(logits[0], room >= f.ImageLen(), m.opts.TextTemperature, m.opts.TopP)
		if tok == f.Vocab.BOL() {
			if err := flush(true); err != nil {
				return err
			}
			img, pixels, err := m.drawImage(ctx, history, caption)
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
		pending = append(pending, m.Text.TokenBytes(t)...)
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

// drawImage draws an image after the sequence so far (history), guided by
// the same sequence whose items from caption on are null tokens: its
// latents (LatentLM) or codes (a VQ-MLLM). It returns the image's items,
// <BOL> … <EOL>, and its pixels.
func (m *Model) drawImage(ctx context.Context, history Row, caption int) (Row, []float32, error) {
	f := m.Format
	bol := lm.TokenItem(f.Vocab.BOL())
	cond := append(append([]lm.Item(nil), history.Items...), bol)
	guide := append([]lm.Item(nil), history.Items[:caption]...)
	for range len(history.Items) - caption {
		guide = append(guide, lm.TokenItem(f.Vocab.Null()))
	}
	guide = append(guide, bol)
	var img Row
	if m.Arch == VQ {
		codes, err := m.drawCodes(ctx, [][]lm.Item{cond}, [][]lm.Item{guide})
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
	sess, err := m.engine.Prefill([][]lm.Item{cond}, [][]lm.Item{guide})
	if err != nil {
		return img, nil, err
	}
	defer sess.Close()
	lat, err := sess.Latents(lm.Segment{Max: f.Items, AfterLatent: func(int, [][]float32) error { return ctx.Err() }})
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
		out, err := m.nats.Call(tensors.FromFlatDataAndDimensions(ids, batch, l), tensors.FromFlatDataAndDimensions(mask, batch, l))
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
