package recipe

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/evaluate"
	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/multimodal"
)

// writeSolids writes n pictures of 12×12 pixels into dir, red and blue in
// turn, each captioned by a .txt file beside it ("a red picture", "a blue
// picture") when captioned is set.
func writeSolids(t *testing.T, dir string, n int, captioned bool) {
	t.Helper()
	for i := range n {
		c, word := color.NRGBA{230, 30, 30, 255}, "red"
		if i%2 == 1 {
			c, word = color.NRGBA{30, 60, 220, 255}, "blue"
		}
		img := image.NewNRGBA(image.Rect(0, 0, 12, 12))
		for y := range 12 {
			for x := range 12 {
				img.SetNRGBA(x, y, c)
			}
		}
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("pic%02d.png", i)))
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if captioned {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("pic%02d.txt", i)), []byte("a "+word+" picture\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// meanRGB is the mean of each channel of an H×W×3 image.
func meanRGB(img []float32) (r, g, b float64) {
	for k := 0; k < len(img); k += 3 {
		r, g, b = r+float64(img[k]), g+float64(img[k+1]), b+float64(img[k+2])
	}
	n := float64(len(img) / 3)
	return r / n, g / n, b / n
}

// TestMultimodalColourFolder trains a colour tokenizer and a multimodal
// model on a captioned folder of red and blue pictures. The sequences the
// recipe lays out keep each caption with its own picture in the right
// channel order — the latents of a "red" sequence decode red, a "blue"
// one blue — and the model it writes records its captions, draws RGB
// images of its prompts and a colour sample grid.
func TestMultimodalColourFolder(t *testing.T) {
	if testing.Short() {
		t.Skip("trains two tiny models")
	}
	root, dir, cache := t.TempDir(), t.TempDir(), t.TempDir()
	writeSolids(t, dir, 40, true)
	vo := DefaultTokenizerOptions()
	vo.Data, vo.Out, vo.Steps, vo.Batch, vo.Quiet, vo.SaveEvery, vo.LR = dir, filepath.Join(root, "vae"), 150, 16, true, 0, 1e-2
	vo.Images = ImageOptions{Size: 16, CacheDir: cache}
	vo.Model = DefaultTokenizerModelFor(dir, 16)
	vo.Model.Dim, vo.Model.Depth, vo.Model.Channels, vo.Model.Patch = 32, 1, 4, 4
	if _, err := Tokenizer(context.Background(), vo); err != nil {
		t.Fatal(err)
	}
	b := testutil.Backend(t, "")

	// The recipe's own layout: the training set, its moments, a batch.
	set, err := LoadImages(dir, "train", ImageOptions{Size: 16, CacheDir: cache}, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := DefaultMultimodalOptionsFor(dir)
	o.Out, o.Tokenizer, o.Images.CacheDir = filepath.Join(root, "mm"), vo.Out, cache
	o.Steps, o.Batch, o.Quiet, o.SaveEvery, o.SampleEvery, o.VocabSize, o.LR = 3, 8, true, 0, 3, 300, 3e-3
	o.Model.Dim, o.Model.Depth, o.Model.Heads, o.Model.KVHeads, o.Model.HeadDim, o.Model.HeadDepth = 32, 1, 2, 2, 32, 1
	res, err := Multimodal(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	m, err := multimodal.Load(b, res.Dir, "", multimodal.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	mus, scales, err := setMoments(m.Image, set)
	if err != nil {
		t.Fatal(err)
	}
	mo := o
	mo.SeqLen, mo.Seed, mo.Batch = m.Config.MaxLen, 7, 32
	texts := setTexts(m.Text, set)
	if len(texts.captioned) != set.N {
		t.Fatalf("%d of %d images captioned", len(texts.captioned), set.N)
	}
	mix := newMixer(mo, m.Format, m.Text, texts, mus, scales, nil)
	bt, err := mix.batch(0)
	if err != nil {
		t.Fatal(err)
	}
	f, c := m.Format, m.Format.Channels
	checked := map[string]int{}
	for r := range bt.Rows {
		var ids []int
		var z []float32
		for j := range bt.Len {
			k := r*bt.Len + j
			if bt.IsLatent[k] == 1 {
				z = append(z, bt.Latents[k*c:(k+1)*c]...)
			} else if tid, ok := f.Vocab.TextOf(int(bt.Ids[k])); ok && tid != f.EOT {
				ids = append(ids, tid)
			}
		}
		caption, err := m.Text.Decode(ids)
		if err != nil || len(z) != f.Items*c {
			t.Fatalf("row %d: caption %q (%v), %d latent values", r, caption, err, len(z))
		}
		imgs, err := m.Image.Decode([][]float32{z})
		if err != nil {
			t.Fatal(err)
		}
		red, _, blue := meanRGB(imgs[0])
		switch {
		case strings.Contains(caption, "red") && red > blue+0.3, strings.Contains(caption, "blue") && blue > red+0.3:
			checked[caption]++
		case caption == "": // a caption dropped for guidance
		default:
			t.Errorf("row %d: caption %q with an image of mean red %.2f, blue %.2f", r, caption, red, blue)
		}
	}
	t.Logf("sequences checked: %v", checked)
	if len(checked) < 2 {
		t.Errorf("checked %v: want both captions", checked)
	}

	// The model: its record, colour images, the colour grid.
	var cfg lm.Config
	h, err := checkpoint.ReadHeader(res.Dir, multimodal.Kind, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(dir)
	if h.Info["data"] != abs || h.Info["captioned_images"] != float64(set.N) || h.Info["size"] != 16.0 || !m.Captioned() {
		t.Errorf("info %v", h.Info)
	}
	if want := 2 + max(len(m.Text.Encode("a blue picture")), len(m.Text.Encode("a red picture"))) + f.ImageLen(); cfg.MaxLen != want {
		t.Errorf("max_len %d, want the longest caption with its image, %d", cfg.MaxLen, want)
	}
	imgs, err := m.Images(context.Background(), "a red picture", 2)
	if err != nil || len(imgs) != 2 || len(imgs[0]) != 16*16*3 {
		t.Fatalf("Images: %d images, %v", len(imgs), err)
	}
	if caps, err := m.Caption(context.Background(), imgs); err != nil || len(caps) != 2 {
		t.Fatalf("Caption: %q, %v", caps, err)
	}
	// Its evaluation: the captions of the held-out pictures and of seen
	// ones, each with its content word ("red" or "blue", rarer than "a"
	// and "picture"), scored against the held-out pictures.
	e, err := TextToImageEval(m, nil, ImageEvalOptions{PerPrompt: 1, Seen: 4, CacheDir: cache}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := evaluate.TextToImageSet(context.Background(), m, *e)
	if err != nil {
		t.Fatal(err)
	}
	held, seen := rep.Group(GroupHeldOut), rep.Group(GroupSeen)
	if held == nil || seen == nil || held.Prompts != 4 || seen.Prompts != 4 || held.Retrieval == nil || held.Retrieval.N != 4 || rep.Real != 4 || rep.FDImages != 4 {
		t.Fatalf("evaluation %+v", rep)
	}
	for _, p := range rep.Prompts {
		if w := p.Content; !strings.Contains(p.Prompt, w) || (w != "red" && w != "blue") {
			t.Errorf("prompt %q: content word %q", p.Prompt, w)
		}
	}
	t.Logf("evaluation: FD %.3f (training pictures %.3f), retrieval held-out %.2f (chance %.2f)", rep.FD, rep.FDTrain, held.Retrieval.Rate, held.RetrievalChance)

	grid, err := os.Open(filepath.Join(res.Dir, "samples-000003.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer grid.Close()
	g, err := png.Decode(grid)
	if err != nil {
		t.Fatal(err)
	}
	if g.ColorModel() == color.GrayModel {
		t.Error("the sample grid is gray")
	}
}
