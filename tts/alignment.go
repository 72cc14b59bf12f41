package tts

import (
	"fmt"

	"github.com/latentlm/latentlm/imageio"
	"github.com/latentlm/latentlm/lm"
)

// Alignment is where the guided head (lm.GuidedHead of the last layer,
// which the guided attention loss trains to read the character being
// said; Format.Guide) looks in the text while the speech is spoken:
// Weights[n][j] is its attention on character j from the position that
// predicts speech frame n (the speech's <BOL> for n = 0, frame n−1 after
// it; the last row predicts <EOL>). A row sums to at most 1: the rest
// went to the prompt and the speech.
type Alignment struct {
	Text    string
	Weights [][]float32 // [frames+1][characters]
}

// Alignment reads the guided head's attention over req's text while it
// says frames (generated frames, Result.Frames, or real ones), the
// sequence read causally as generation read it: for generated frames it
// is what the head did during generation. A model trained without
// guidance has no head that reads the text in order, but its head 0 can
// still be drawn.
func (m *Model) Alignment(req Request, frames [][]float32) (*Alignment, error) {
	if m.engine == nil {
		return nil, errClosed
	}
	if err := m.checkFrames("alignment", frames); err != nil {
		return nil, err
	}
	p, err := m.prepare("the alignment's request", req) // the prompt cut as generation cut it
	if err != nil {
		return nil, err
	}
	text := p.text
	if len(text) == 0 {
		return nil, fmt.Errorf("tts: alignment: empty text")
	}
	items := m.Format.Prefix(p.prompt, text, false)
	start := len(items) - 1 - len(text) // the first character; the speech's <BOL> is the last item
	for _, z := range frames {
		items = append(items, lm.LatentItem(z))
	}
	if len(items) > m.Config.MaxLen {
		return nil, fmt.Errorf("tts: alignment: %d items, the model reads at most %d", len(items), m.Config.MaxLen)
	}
	probs, err := m.engine.Attention(items, m.Config.Depth-1)
	if err != nil {
		return nil, fmt.Errorf("tts: alignment: %w", err)
	}
	a := &Alignment{Text: req.Text, Weights: make([][]float32, len(frames)+1)}
	for n := range a.Weights {
		row := probs[lm.GuidedHead][start+len(text)+n]
		a.Weights[n] = append([]float32(nil), row[start:start+len(text)]...)
	}
	return a, nil
}

// alignmentCell is the size in pixels of one character × frame cell of
// the picture.
const alignmentCell = 4

// WritePNG draws the alignment as a grayscale picture: frames left to
// right, characters top to bottom, white where the head looks. A head
// that reads the text in step with the speech draws a diagonal from the
// top left to the bottom right.
func (a *Alignment) WritePNG(path string) error {
	if len(a.Weights) == 0 || len(a.Weights[0]) == 0 {
		return fmt.Errorf("%s: an empty alignment", path)
	}
	frames, chars := len(a.Weights), len(a.Weights[0])
	h, w := chars*alignmentCell, frames*alignmentCell
	img := make([]float32, h*w)
	for n, row := range a.Weights {
		for j, v := range row {
			for y := j * alignmentCell; y < (j+1)*alignmentCell; y++ {
				for x := n * alignmentCell; x < (n+1)*alignmentCell; x++ {
					img[y*w+x] = v
				}
			}
		}
	}
	return imageio.WriteGray(path, img, h, w)
}
