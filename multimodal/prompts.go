package multimodal

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/text"
)

// EncodePrompt is tok's ids of the prompt part s (named what in errors),
// refused as a *PromptError when it is empty (or only white space), not
// UTF-8, or longer than a model of maxLen items allows when room items must
// follow it. Every
// architecture reads its prompts through it, so they refuse the same text
// with the same words.
func EncodePrompt(tok *text.Tokenizer, maxLen int, what, s string, room int) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, &PromptError{what + " is empty"}
	}
	if !utf8.ValidString(s) {
		for i, r := range s {
			if r == utf8.RuneError {
				if _, n := utf8.DecodeRuneInString(s[i:]); n <= 1 {
					return nil, &PromptError{fmt.Sprintf("%s is not valid UTF-8 (byte %d)", what, i)}
				}
			}
		}
	}
	ids := tok.Encode(s)
	if limit := maxLen - room; len(ids) > limit {
		return nil, &PromptError{fmt.Sprintf("%s is %d tokens long; this model takes at most %d here (max_len %d)", what, len(ids), max(limit, 0), maxLen)}
	}
	return ids, nil
}

// ImageBatch is text → image prompts decoded together: Cond[j] is the
// prefix <|endoftext|> caption <BOL> of captions[Index[j]], Guide[j] the
// same prefix with the caption replaced by null tokens (the dropped
// caption of training), which classifier-free guidance contrasts with it.
// Guide is nil for the empty caption: an unconditional image has nothing
// to be guided away from.
type ImageBatch struct {
	Index       []int
	Cond, Guide [][]lm.Item
}

// DrawByBatch draws one image per caption, batch by batch of
// ImageBatches, with draw, which returns one image per prompt of its
// batch; the images come back in the captions' order. It stops with the
// context's error when ctx is done. Every architecture's ImagesFor is
// this loop around its own draw.
func DrawByBatch(ctx context.Context, f Format, tok *text.Tokenizer, maxLen int, captions []string, batch int, draw func(ImageBatch) ([][]float32, error)) ([][]float32, error) {
	batches, err := ImageBatches(f, tok, maxLen, captions, batch)
	if err != nil {
		return nil, err
	}
	out := make([][]float32, len(captions))
	for _, b := range batches {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		imgs, err := draw(b)
		if err != nil {
			return nil, err
		}
		if len(imgs) != len(b.Index) {
			return nil, fmt.Errorf("multimodal: a batch of %d prompts drew %d images", len(b.Index), len(imgs))
		}
		for j, i := range b.Index {
			out[i] = imgs[j]
		}
	}
	return out, nil
}

// ImageBatches lays out one text → image prompt per caption (the empty
// caption draws an image unconditionally, from <|endoftext|> <BOL> alone)
// and groups them into batches of at most batch prompts of one token
// length, in the order the lengths first appear: the sequence engine
// decodes rows of one length together. Every architecture draws images
// from these prompts, so they are compared on the same sequences.
func ImageBatches(f Format, tok *text.Tokenizer, maxLen int, captions []string, batch int) ([]ImageBatch, error) {
	conds := make([][]lm.Item, len(captions))
	guides := make([][]lm.Item, len(captions))
	byLen := map[int][]int{}
	var lengths []int
	for i, c := range captions {
		var ids []int
		if c != "" {
			var err error
			if ids, err = EncodePrompt(tok, maxLen, "the caption", c, 2+f.Items); err != nil {
				return nil, err
			}
		}
		var cond, guide Row
		cond.EOT(f)
		cond.Text(f, ids)
		cond.add(lm.TokenItem(f.Vocab.BOL()), nil, true)
		guide.EOT(f)
		guide.Null(f, len(ids))
		guide.add(lm.TokenItem(f.Vocab.BOL()), nil, true)
		conds[i], guides[i] = cond.Items, guide.Items
		if byLen[len(ids)] == nil {
			lengths = append(lengths, len(ids))
		}
		byLen[len(ids)] = append(byLen[len(ids)], i)
	}
	var out []ImageBatch
	for _, l := range lengths {
		idx := byLen[l]
		for s := 0; s < len(idx); s += batch {
			b := ImageBatch{Index: idx[s:min(s+batch, len(idx))]}
			for _, i := range b.Index {
				b.Cond = append(b.Cond, conds[i])
				if l > 0 {
					b.Guide = append(b.Guide, guides[i])
				}
			}
			out = append(out, b)
		}
	}
	return out, nil
}
