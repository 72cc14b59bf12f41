package transfusion

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/latentlm/latentlm/multimodal"
)

// Layout is what a Transfusion step needs of a packed batch beyond
// multimodal.Batch, each [B, L] flat: the attention mask (Visible), each
// latent's image timestep, and where the diffusion loss applies.
type Layout struct {
	Visible   []float32
	Timesteps []float32 // the image's t at its latents (integers), else 0
	Noisy     []float32 // 1 at the latents that are noised and trained to denoise
}

// Inputs are the three tensors of the layout of a batch of rows × length
// items, in the order Losses takes them: timesteps, visibility, noisy.
func (l Layout) Inputs(rows, length int) []any {
	return []any{
		tensors.FromFlatDataAndDimensions(l.Timesteps, rows, length),
		tensors.FromFlatDataAndDimensions(l.Visible, rows, length),
		tensors.FromFlatDataAndDimensions(l.Noisy, rows, length),
	}
}

// PaperContextNoise is the Transfusion paper's context noise for NewLayout:
// images read as context are noised at t < 500 of 1000 in training
// (Transfusion §4.3, image noising), so that the text after them learns
// from images that are mostly intact, as they are in use, while the image
// still carries a diffusion loss. It is the default of train --arch
// transfusion; on this benchmark it reads far better than context images
// given clean and loss-free (docs/RESULTS.md, "Transfusion reading its
// context as in use").
const PaperContextNoise = 0.5

// NewLayout lays out the images of a packed batch for training: one
// timestep per image, as Transfusion noises each image at a single t
// (§3, "Training Objective"), drawn from rng (the batch's generator, so
// that a resumed run sees the same draws).
//
// An image that is read as context — some text token other than
// <|endoftext|>, or another image, follows it in its row, as in image →
// caption and image + question → answer — is the condition of that text,
// and in use it is always given clean (captioning, questions: Model.Caption
// and Ask). Text after a noisy image would learn to read noisy images it
// never sees in use; Transfusion met this by limiting such images' noise to
// t < 500 of 1000 in its image-noising ablation (§4.3). With contextNoise
// in (0, 1] context images are noised at t uniform over the first
// contextNoise·T steps and trained to denoise, as in the paper at
// PaperContextNoise (the default of train --arch transfusion). With
// contextNoise 0 they go one step further: they enter clean, at t = 0,
// exactly as in use, and carry no diffusion loss (at t = 0 the noise is
// invisible and its prediction ill-posed); the diffusion loss then comes
// from the images that end their row, the caption → image rows. That reads
// worse: learning to denoise an image teaches the text after it to read
// it. Every image not read as context is noised at t uniform over 0…T−1.
func NewLayout(b *multimodal.Batch, f multimodal.Format, T int, contextNoise float64, rng *rand.Rand) (Layout, error) {
	if !(contextNoise >= 0 && contextNoise <= 1) {
		return Layout{}, fmt.Errorf("transfusion: context noise %v out of range [0, 1]", contextNoise)
	}
	n := b.Rows * b.Len
	lay := Layout{Visible: make([]float32, n), Timesteps: make([]float32, n), Noisy: make([]float32, n)}
	ctxT := int(math.Ceil(contextNoise * float64(T)))
	for r := range b.Rows {
		row := r * b.Len
		isLat := make([]bool, b.Len)
		for j := range isLat {
			isLat[j] = b.IsLatent[row+j] != 0
		}
		copy(lay.Visible[row:], Visible(isLat, 0))
		for j := 0; j < b.Len; {
			if !isLat[j] {
				j++
				continue
			}
			end := j
			for end+1 < b.Len && isLat[end+1] {
				end++
			}
			t, noisy := rng.IntN(T), true
			if readAsContext(b, f, row, end+1) {
				t, noisy = 0, ctxT > 0
				if noisy {
					t = rng.IntN(ctxT)
				}
			}
			for k := j; k <= end; k++ {
				lay.Timesteps[row+k] = float32(t)
				if noisy && b.Valid[row+k] != 0 {
					lay.Noisy[row+k] = 1
				}
			}
			j = end + 1
		}
	}
	return lay, nil
}

// readAsContext reports whether the items of a row from index from on (its last
// latent's successor, the <EOL>, and beyond) hold text other than
// <|endoftext|>, or a latent: whether the image before them is read as
// context.
func readAsContext(b *multimodal.Batch, f multimodal.Format, row, from int) bool {
	for j := from; j < b.Len; j++ {
		if b.IsLatent[row+j] != 0 {
			return true
		}
		if t, ok := f.Vocab.TextOf(int(b.Ids[row+j])); ok && t != f.EOT {
			return true
		}
	}
	return false
}
