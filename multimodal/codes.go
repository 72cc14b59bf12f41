package multimodal

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/latentlm/latentlm/lm"
)

// This file is the image side of a VQ-MLLM (Arch VQ): an image is drawn
// code by code with the softmax head, as the discrete-token models the
// paper compares LatentLM with (Table 3), with classifier-free guidance on
// the logits (Guide) and temperature and top-k sampling (SampleCode).

// Guide is classifier-free guidance on logits (Ho & Salimans 2022,
// https://arxiv.org/abs/2207.12598, applied to the logits of an
// autoregressive token model as in Make-A-Scene, Gafni et al. 2022,
// https://arxiv.org/abs/2203.13131, §3.2): uncond + scale·(cond − uncond)
// for each id. Scale 1 is the conditional model, 0 the unconditional one,
// and larger values sharpen the condition. Since softmax ignores a constant
// added to every logit, guiding the logits or the log-probabilities gives
// the same distribution.
func Guide(cond, uncond []float32, scale float64) []float32 {
	out := make([]float32, len(cond))
	for i := range cond {
		out[i] = float32(float64(uncond[i]) + scale*(float64(cond[i])-float64(uncond[i])))
	}
	return out
}

// SampleCode draws an image code from the logits (over the whole
// vocabulary) restricted to the f.Codes code ids: from softmax(l/temperature)
// over the topK likeliest codes (all of them when topK is 0 or at least
// Codes). It returns the code k (model id f.Code(k)). Ties among the
// likeliest are kept in code order, so the draw is reproducible from rng.
func SampleCode(logits []float32, f Format, temperature float64, topK int, rng *rand.Rand) int {
	codes := logits[f.Code(0) : f.Code(0)+f.Codes]
	order := make([]int, len(codes))
	for k := range order {
		order[k] = k
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case codes[a] > codes[b]:
			return -1
		case codes[a] < codes[b]:
			return 1
		}
		return 0
	})
	if topK > 0 && topK < len(order) {
		order = order[:topK]
	}
	top := float64(codes[order[0]])
	p := make([]float64, len(order))
	var sum float64
	for i, k := range order {
		p[i] = math.Exp((float64(codes[k]) - top) / temperature)
		sum += p[i]
	}
	u := rng.Float64() * sum
	for i, k := range order {
		if u < p[i] {
			return k
		}
		u -= p[i]
	}
	return order[len(order)-1]
}

// pickCode draws the next image code of a VQ-MLLM from the conditional
// logits, guided by the unconditional ones (Guide with scale; nil for no
// guidance), by SampleCode's top-k rule at temperature: the rule of
// drawCodes and of an ImageSequence alike.
func pickCode(cond, uncond []float32, f Format, scale, temperature float64, topK int, rng *rand.Rand) int {
	if uncond != nil {
		cond = Guide(cond, uncond, scale)
	}
	return SampleCode(cond, f, temperature, topK, rng)
}

// drawCodes draws the Items codes of one image after each prefix of cond
// (each ending in <BOL>), guided by the prefixes of guide (the same
// lengths; nil for none) with the options' CFG scale, temperature and
// top-k. The conditional and unconditional sequences run as one batch of
// the engine's plain session, so that the logits of both are at hand for
// Guide, and each drawn code is appended to both.
func (m *Model) drawCodes(ctx context.Context, cond, guide [][]lm.Item) ([][]int32, error) {
	f, n := m.Format, len(cond)
	rows := append(append([][]lm.Item(nil), cond...), guide...)
	sess, err := m.engine.Prefill(rows, nil)
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	if sess.Len()+f.Items > m.Config.MaxLen {
		return nil, fmt.Errorf("multimodal: an image of %d codes after %d items exceeds max_len %d", f.Items, sess.Len(), m.Config.MaxLen)
	}
	codes := make([][]int32, n)
	for i := range codes {
		codes[i] = make([]int32, 0, f.Items)
	}
	for j := range f.Items {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		logits, err := sess.Logits()
		if err != nil {
			return nil, err
		}
		items := make([]lm.Item, len(rows))
		for i := range n {
			var uncond []float32
			if guide != nil {
				uncond = logits[n+i]
			}
			k := pickCode(logits[i], uncond, f, m.opts.CFG, m.opts.Temperature, m.opts.TopK, m.rng)
			codes[i] = append(codes[i], int32(k))
			items[i] = lm.TokenItem(f.Code(k))
			if guide != nil {
				items[n+i] = items[i]
			}
		}
		if j < f.Items-1 {
			if err := sess.Step(items); err != nil {
				return nil, err
			}
		}
	}
	return codes, nil
}

// decodeCodes turns images' codes into pixels with the vq image tokenizer.
func (m *Model) decodeCodes(codes [][]int32) ([][]float32, error) {
	z, err := m.Image.CodeLatents(codes)
	if err != nil {
		return nil, err
	}
	return m.Image.Decode(z)
}
