package transfusion

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/multimodal"
	"github.com/latentlm/latentlm/nn"
)

// Denoise is one full pass of the Transformer over an image block being
// drawn: noisy latents x [S, N, C] at timesteps t [S] (float) after a
// prefix already in caches (one per layer, [S, MaxLen, KVHeads, hd]) that
// holds start items (a float scalar node). The block's items sit at
// positions start…start+N−1, see the whole prefix and each other
// (Visible), and carry the embedding of t; the block's keys and values
// are written into copies of the caches, which are dropped, so every
// solver step reads the same cached prefix. It returns the prediction
// (ε or v) [S, N, C].
func (c Config) Denoise(w nn.Weights, x, t *Node, caches []*nn.KV, start *Node) *Node {
	g := x.Graph()
	dims := x.Shape().Dimensions
	s, n := dims[0], dims[1]
	pos := Add(Iota(g, nn.Shape(dtypes.Float32, n), 0), BroadcastToDims(start, n))
	vis := BroadcastToDims(AddScalar(start, float64(n-1)), s, n)
	ts := BroadcastToDims(InsertAxes(t, -1), s, n)
	it := lm.Items{Ids: Zeros(g, nn.Shape(dtypes.Int32, s, n)), Latents: x, IsLatent: Ones(g, nn.Shape(dtypes.Float32, s, n))}
	h, _ := c.Backbone(w, it, ts, vis, pos, caches)
	return c.Output(w, h)
}

// solverGraphs is the model as the solver runs it. The solver's inputs
// are the prefix's caches (K, V per layer, S streams: with guidance the n
// conditional streams, then their n unconditional partners, as
// diffusion.Guided orders them) and the prefix length, a float scalar.
func (m *Model) solverGraphs(guided bool) diffusion.SolverGraphs {
	c, items := m.Config, m.Format.Items
	return diffusion.SolverGraphs{
		Noise: func(scope *model.Scope, in []*Node) *Node {
			n := in[0].Shape().Dimensions[0]
			if guided {
				n /= 2
			}
			x := scope.RandomNormal(in[0].Graph(), nn.Shape(dtypes.Float32, n, items, c.Latent))
			return MulScalar(x, m.opts.Temperature)
		},
		Denoiser: func(scope *model.Scope, conds []*Node) diffusion.Denoiser {
			w := nn.WeightsOf(scope.Store(), conds[0].Graph())
			caches := make([]*nn.KV, c.Depth)
			for i := range caches {
				caches[i] = &nn.KV{K: conds[2*i], V: conds[2*i+1]}
			}
			start := conds[2*c.Depth]
			denoise := func(x, t *Node) *Node { return c.Denoise(w, x, t, caches, start) }
			if guided {
				return diffusion.Guided(denoise, m.opts.CFG)
			}
			return func(x, t *Node) *Node { return denoise(x, BroadcastToDims(t, x.Shape().Dimensions[0])) }
		},
	}
}

// Images draws n images from a caption (text → image), or unconditionally
// from the empty caption; see ImagesFor.
func (m *Model) Images(ctx context.Context, caption string, n int) ([][]float32, error) {
	return m.ImagesFor(ctx, slices.Repeat([]string{caption}, n))
}

// ImagesFor draws one image per caption (text → image), as
// multimodal.Model.ImagesFor lays it out: the prefix <|endoftext|> caption
// <BOL>, guided by the same prefix with the caption replaced by null
// tokens (the dropped caption of training), and the empty caption drawn
// from <|endoftext|> <BOL> without guidance. The prefix runs once into the
// KV cache; then each solver step of DPM-Solver++ (or DDPM with 0 steps)
// is one pass of the whole Transformer over the N latents of the image,
// both streams at once, combined by classifier-free guidance
// (Transfusion §3, "Inference"; docs/DESIGN.md §7). Captions of one token
// length share a batch. The latents are decoded by the image tokenizer.
func (m *Model) ImagesFor(ctx context.Context, captions []string) ([][]float32, error) {
	if m.step == nil {
		return nil, errClosed
	}
	return multimodal.DrawByBatch(ctx, m.Format, m.Text, m.Config.MaxLen, captions, m.opts.Batch, func(b multimodal.ImageBatch) ([][]float32, error) {
		rows := append(append([][]lm.Item(nil), b.Cond...), b.Guide...)
		lat, err := m.drawImages(rows, b.Guide != nil)
		if err != nil {
			return nil, err
		}
		return m.Image.Decode(lat)
	})
}

// drawImages prefills rows (each ending in <BOL>; with guided, the
// conditional rows then their unconditional partners) and solves the
// image block after them: each image's latents, flat [N·C].
func (m *Model) drawImages(rows [][]lm.Item, guided bool) ([][]float32, error) {
	sess, err := m.prefill(rows)
	if err != nil {
		return nil, err
	}
	defer sess.close()
	if sess.pos+m.Format.Items > m.Config.MaxLen {
		return nil, fmt.Errorf("transfusion: %d items and an image of %d latents exceed max_len %d", sess.pos, m.Format.Items, m.Config.MaxLen)
	}
	in := make([]*tensors.Tensor, 0, len(sess.caches)+1)
	for _, c := range sess.caches {
		in = append(in, c.(*tensors.Tensor))
	}
	start := tensors.FromScalar(float32(sess.pos))
	defer nn.Release(start)
	in = append(in, start)
	solver := m.plain
	if guided {
		solver = m.guided
	}
	z, err := solver.Solve(in...)
	if err != nil {
		return nil, fmt.Errorf("transfusion: drawing an image: %w", err)
	}
	defer nn.Release(z)
	flat := tensors.MustCopyFlatData[float32](z)
	n := sess.streams
	if guided {
		n /= 2
	}
	per := m.Format.Items * m.Format.Channels
	lat := make([][]float32, n)
	for i := range lat {
		lat[i] = flat[i*per : (i+1)*per : (i+1)*per]
	}
	return lat, nil
}

// Caption writes a caption for each image (image → text): the prefix
// <|endoftext|> <BOL> z₀ … <EOL>, the image clean (t = 0) and attended to
// bidirectionally inside itself, then text, taken greedily, up to
// <|endoftext|>. Images are Image.Config.Pixels() values in [0, 1].
func (m *Model) Caption(ctx context.Context, images [][]float32) ([]string, error) {
	return m.answer(ctx, images, nil)
}

// Ask answers a question about each image: the prefix <|endoftext|> <BOL>
// z₀ … <EOL> question (the image clean), then the answer, taken greedily.
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
	if m.step == nil {
		return nil, errClosed
	}
	f := m.Format
	out := make([]string, 0, len(images))
	for start := 0; start < len(images); start += m.opts.Batch {
		batch := images[start:min(start+m.opts.Batch, len(images))]
		lat, err := m.Image.Encode(batch, false)
		if err != nil {
			return nil, err
		}
		rows := make([][]lm.Item, len(batch))
		for i, z := range lat {
			var r multimodal.Row
			r.EOT(f)
			r.Image(f, z, nil)
			r.Text(f, question)
			rows[i] = r.Items
		}
		sess, err := m.prefill(rows)
		if err != nil {
			return nil, err
		}
		texts, err := m.greedyText(ctx, sess)
		sess.close()
		if err != nil {
			return nil, err
		}
		out = append(out, texts...)
	}
	return out, nil
}

// greedyText extends every stream of sess with its most likely text token
// until <|endoftext|>, MaxTokens or max_len (multimodal.Model's rule).
func (m *Model) greedyText(ctx context.Context, sess *session) ([]string, error) {
	f, n := m.Format, sess.streams
	ids := make([][]int, n)
	done := make([]bool, n)
	for step := 0; step < m.opts.MaxTokens && sess.pos < m.Config.MaxLen; step++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		logits, err := sess.logits()
		if err != nil {
			return nil, err
		}
		rows := make([][]lm.Item, n)
		left := 0
		for i, l := range logits {
			tok := bestText(l, f.Vocab)
			rows[i] = []lm.Item{lm.TokenItem(tok)}
			t, _ := f.Vocab.TextOf(tok)
			if t == f.EOT {
				done[i] = true
			}
			if !done[i] {
				ids[i] = append(ids[i], t)
				left++
			}
		}
		if left == 0 || step == m.opts.MaxTokens-1 || sess.pos+1 >= m.Config.MaxLen {
			break
		}
		if err := sess.advance(rows); err != nil {
			return nil, err
		}
	}
	out := make([]string, n)
	for i, t := range ids {
		s, err := m.Text.Decode(t)
		if err != nil {
			return nil, err
		}
		out[i] = strings.ToValidUTF8(s, "\uFFFD")
	}
	return out, nil
}

// bestText is the most likely text id of logits.
func bestText(logits []float32, v lm.Vocab) int {
	best := -1
	for id, l := range logits {
		if _, ok := v.TextOf(id); ok && (best < 0 || l > logits[best]) {
			best = id
		}
	}
	return best
}

// TextNats is the teacher-forced cross-entropy, in nats, of the text of
// docs under the model, windowed exactly as multimodal.Model.TextNats does
// (so bits per byte compare across the architectures). Text alone has no
// image, so the mask is causal and the pass is LatentLM's
// (multimodal.SequenceNats) on the weights both share.
func (m *Model) TextNats(docs [][]int) (nats float64, tokens int, err error) {
	if m.step == nil {
		return 0, 0, errClosed
	}
	l := m.Config.MaxLen
	if m.nats == nil {
		cfg := m.Config.LM()
		m.nats, err = model.NewExec(m.backend, m.store, func(scope *model.Scope, ids, mask *Node) *Node {
			return multimodal.SequenceNats(nn.WeightsOf(scope.Store(), ids.Graph()), cfg, ids, mask)
		})
		if err != nil {
			return 0, 0, err
		}
	}
	f := m.Format
	var windows [][]int32
	for _, doc := range docs {
		for start := 0; start < len(doc); start += l - 1 {
			w := []int32{int32(f.Vocab.Text(f.EOT))}
			if start > 0 {
				w[0] = int32(f.Vocab.Text(doc[start-1]))
			}
			for _, t := range doc[start:min(start+l-1, len(doc))] {
				w = append(w, int32(f.Vocab.Text(t)))
			}
			tokens += len(w) - 1
			windows = append(windows, w)
		}
	}
	const batch = 32
	for s := 0; s < len(windows); s += batch {
		ids := make([]int32, batch*l)
		mask := make([]float32, batch*l)
		for i := s; i < min(s+batch, len(windows)); i++ {
			copy(ids[(i-s)*l:], windows[i])
			for j := 1; j < len(windows[i]); j++ {
				mask[(i-s)*l+j] = 1
			}
		}
		args := []any{tensors.FromFlatDataAndDimensions(ids, batch, l), tensors.FromFlatDataAndDimensions(mask, batch, l)}
		out, err := m.nats.Call(args...)
		nn.Release(args...)
		if err != nil {
			return 0, 0, fmt.Errorf("transfusion: text cross-entropy: %w", err)
		}
		nats += float64(tensors.ToScalar[float32](out[0]))
		nn.Release(out[0])
	}
	return nats, tokens, nil
}
