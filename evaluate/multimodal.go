package evaluate

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gomlx/compute"

	"github.com/latentlm/latentlm/canvas"
	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/classifier"
	"github.com/latentlm/latentlm/data"
	"github.com/latentlm/latentlm/metrics"
	"github.com/latentlm/latentlm/multimodal"
	"github.com/latentlm/latentlm/text"
)

// Accuracy counts correct answers.
type Accuracy struct {
	N       int     `json:"n"`
	Correct int     `json:"correct"`
	Rate    float64 `json:"accuracy"`
}

// Add counts one answer, right when ok.
func (a *Accuracy) Add(ok bool) {
	a.N++
	if ok {
		a.Correct++
	}
	a.Rate = float64(a.Correct) / float64(a.N)
}

// MultimodalReport is the score of one task of the multimodal benchmark
// (docs/DESIGN.md §11, the paper's Table 3 at small scale). Seen and
// HeldOut split the canvases by whether their scene was held out of
// training (compositional generalisation).
type MultimodalReport struct {
	Task    string   `json:"task"` // text, t2i, i2t or vqa
	Seen    Accuracy `json:"seen"`
	HeldOut Accuracy `json:"held_out"`
	// Layout counts the answers (t2i, i2t) whose layout — which quadrant,
	// side by side or one above the other — is right, whatever the digits.
	Layout Accuracy `json:"layout"`
	// Single and Pair split t2i's faithfulness (seen and held-out
	// together) by whether the caption asks for one image or two, and
	// Digits counts the classes drawn right (one per single, two per pair)
	// in the images whose layout is right: where drawing fails, they tell a
	// model that cannot draw a legible digit from one that cannot bind two
	// digits to their places.
	Single Accuracy `json:"single,omitzero"`
	Pair   Accuracy `json:"pair,omitzero"`
	Digits Accuracy `json:"digits,omitzero"`
	// FD is the Fréchet distance between the judge's features of the
	// generated canvases and of the real test canvases (t2i).
	FD float64 `json:"fd,omitempty"`
	// Text: validation bits per byte, from the cross-entropy of every
	// token over the documents' UTF-8 bytes.
	BitsPerByte float64 `json:"bits_per_byte,omitempty"`
	Tokens      int     `json:"tokens,omitempty"`
	Bytes       int     `json:"bytes,omitempty"`
	// Examples are a few (truth, model's output) pairs, for reading.
	Examples [][2]string `json:"examples,omitempty"`
}

// MultimodalModel is what the multimodal benchmark asks of a model of text
// and images: multimodal.Model (LatentLM and the VQ-MLLM baseline) and
// transfusion.Model (the Transfusion baseline) both have it, so that the
// three architectures of issue 16 are scored by the same code.
type MultimodalModel interface {
	ImagesFor(ctx context.Context, captions []string) ([][]float32, error)
	Caption(ctx context.Context, images [][]float32) ([]string, error)
	Ask(ctx context.Context, images [][]float32, question string) ([]string, error)
	TextNats(docs [][]int) (nats float64, tokens int, err error)
}

// TextBitsPerByte scores a model on documents: bits per UTF-8 byte, which
// compares models of different tokenizers fairly.
func TextBitsPerByte(m *multimodal.Model, docs []string) (MultimodalReport, error) {
	return TextBitsPerByteOf(m, m.Text, docs)
}

// TextBitsPerByteOf is TextBitsPerByte for any model, whose text tokenizer
// is tok.
func TextBitsPerByteOf(m MultimodalModel, tok *text.Tokenizer, docs []string) (MultimodalReport, error) {
	r := MultimodalReport{Task: "text"}
	ids := make([][]int, len(docs))
	for i, d := range docs {
		ids[i] = tok.Encode(d)
		r.Bytes += len(d)
	}
	nats, tokens, err := m.TextNats(ids)
	if err != nil {
		return r, err
	}
	r.Tokens = tokens
	r.BitsPerByte = text.BitsPerByte(nats, r.Bytes)
	return r, nil
}

// Judge reads canvases: classifiers over the canvas scenes (package
// canvas), trained on canvases of every scene, whose probabilities are
// averaged (an ensemble of several seeds misreads fewer digits than one).
// It must be accurate on real test canvases before it judges anything
// (Check).
type Judge struct {
	Models []*classifier.Model
}

// LoadJudge loads a canvas judge from dir (see LoadClassifiers): one
// classifier checkpoint, or a folder whose sub-folders are classifier
// checkpoints (an ensemble), over the canvas scenes.
func LoadJudge(b compute.Backend, dir string) (Judge, error) {
	j, err := LoadClassifiers(b, dir)
	if err != nil {
		return Judge{}, err
	}
	if c := j.Models[0].Config; c.Classes != canvas.NumScenes || c.ImageSize != canvas.Size || c.ImageChannels() != 1 {
		j.Close()
		return Judge{}, fmt.Errorf("judge %s: a classifier of %d classes over %d×%d images, want the %d canvas scenes over %d×%d", dir,
			c.Classes, c.ImageSize, c.ImageSize, canvas.NumScenes, canvas.Size, canvas.Size)
	}
	return j, nil
}

// LoadClassifiers loads a judge from dir: one classifier checkpoint, or a
// folder whose sub-folders are classifier checkpoints (an ensemble), which
// must agree in image size, channels and classes.
func LoadClassifiers(b compute.Backend, dir string) (_ Judge, err error) {
	var j Judge
	defer func() {
		if err != nil {
			j.Close()
		}
	}()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return Judge{}, fmt.Errorf("judge: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, checkpoint.ConfigFile)); err == nil {
		m, err := classifier.Load(b, dir)
		if err != nil {
			return Judge{}, err
		}
		j.Models, entries = append(j.Models, m), nil
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		m, err := classifier.Load(b, filepath.Join(dir, e.Name()))
		if err != nil {
			return Judge{}, err
		}
		j.Models = append(j.Models, m)
	}
	if len(j.Models) == 0 {
		return Judge{}, fmt.Errorf("judge: %s holds no classifier checkpoint", dir)
	}
	first := j.Models[0].Config
	for _, m := range j.Models[1:] {
		if c := m.Config; c.Classes != first.Classes || c.ImageSize != first.ImageSize || c.ImageChannels() != first.ImageChannels() {
			return Judge{}, fmt.Errorf("judge %s: its classifiers differ (%d and %d classes, %d and %d pixels, %d and %d channels)", dir,
				first.Classes, c.Classes, first.ImageSize, c.ImageSize, first.ImageChannels(), c.ImageChannels())
		}
	}
	return j, nil
}

// Close releases every model's compiled graph.
func (j Judge) Close() {
	for _, m := range j.Models {
		m.Close()
	}
}

// Config is the judge's classifier config (that of its first model).
func (j Judge) Config() classifier.Config { return j.Models[0].Config }

// Predict is the averaged class probabilities of the images and the first
// model's features.
func (j Judge) Predict(images [][]float32) (probs, feats [][]float32, err error) {
	for i, m := range j.Models {
		p, f, err := m.Predict(images)
		if err != nil {
			return nil, nil, err
		}
		if i == 0 {
			probs, feats = p, f
			continue
		}
		for k := range probs {
			for c := range probs[k] {
				probs[k][c] += p[k][c]
			}
		}
	}
	if n := float32(len(j.Models)); n > 1 {
		for _, row := range probs {
			for c := range row {
				row[c] /= n
			}
		}
	}
	return probs, feats, nil
}

// judgeChunk is how many images the judge reads between two looks at the
// context, so that a long pass over the test set stops soon on Ctrl-C:
// one of the classifier's batches, so that every image is read in the
// same batch position as in one pass.
const judgeChunk = classifier.PredictBatch

// inChunks runs predict over images judgeChunk at a time, stopping when
// ctx is done, and returns the rows of all chunks in order.
func inChunks(ctx context.Context, images [][]float32, predict func([][]float32) ([][]float32, error)) ([][]float32, error) {
	out := make([][]float32, 0, len(images))
	for start := 0; start < len(images); start += judgeChunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rows, err := predict(images[start:min(start+judgeChunk, len(images))])
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
	}
	return out, nil
}

// Check measures the judge on the first n real test canvases and refuses it
// below minAccuracy.
func (j Judge) Check(ctx context.Context, test *data.Dataset, n int, minAccuracy float64) (float64, error) {
	n = min(n, test.N)
	imgs, labels := DatasetImages(test)
	probs, err := inChunks(ctx, imgs[:n], func(x [][]float32) ([][]float32, error) {
		p, _, err := j.Predict(x)
		return p, err
	})
	if err != nil {
		return 0, err
	}
	correct := 0
	for i, p := range probs {
		if metrics.Argmax(p) == labels[i] {
			correct++
		}
	}
	acc := float64(correct) / float64(n)
	if acc < minAccuracy {
		return acc, fmt.Errorf("the judge reads %.2f%% of %d real test canvases right, below the %.0f%% it needs to judge anything", 100*acc, n, 100*minAccuracy)
	}
	return acc, nil
}

// TextToImage draws perSeen images for every training scene and perHeldOut
// for every held-out one from their canonical captions, and counts an
// image correct when the judge reads its caption's scene. FD compares the
// judge's features of the seen scenes' images with those of the real test
// canvases of seen scenes (the test split draws its scenes evenly, as
// perSeen does).
func TextToImage(ctx context.Context, m MultimodalModel, judge Judge, names canvas.Names, test *data.Dataset, perSeen, perHeldOut int) (MultimodalReport, error) {
	return TextToImageWith(ctx, m, judge, names, test, perSeen, perHeldOut, nil)
}

// SeenFeatures are the judge's features (its first model's, as Predict
// gives them) of the real test canvases of seen scenes, which TextToImage
// compares the generated images with.
func (j Judge) SeenFeatures(ctx context.Context, test *data.Dataset) ([][]float32, error) {
	var real [][]float32
	all, labels := DatasetImages(test)
	for i, img := range all {
		if s, err := canvas.SceneOf(labels[i]); err == nil && !s.HeldOut() {
			real = append(real, img)
		}
	}
	return inChunks(ctx, real, func(x [][]float32) ([][]float32, error) {
		_, f, err := j.Models[0].Predict(x)
		return f, err
	})
}

// TextToImageWith is TextToImage with the judge's SeenFeatures of test
// computed once for several models (nil: computed here).
func TextToImageWith(ctx context.Context, m MultimodalModel, judge Judge, names canvas.Names, test *data.Dataset, perSeen, perHeldOut int, realFeats [][]float32) (MultimodalReport, error) {
	r := MultimodalReport{Task: "t2i"}
	var captions []string
	var scenes []canvas.Scene
	for _, s := range canvas.AllScenes() {
		k := perSeen
		if s.HeldOut() {
			k = perHeldOut
		}
		for range k {
			captions = append(captions, names.Caption(s))
			scenes = append(scenes, s)
		}
	}
	imgs, err := m.ImagesFor(ctx, captions)
	if err != nil {
		return r, err
	}
	probs, feats, err := judge.Predict(imgs)
	if err != nil {
		return r, err
	}
	for i, p := range probs {
		got := metrics.Argmax(p)
		ok := got == scenes[i].ID()
		gs, _ := canvas.SceneOf(got)
		want := scenes[i]
		r.Layout.Add(gs.Layout == want.Layout)
		if want.HeldOut() {
			r.HeldOut.Add(ok)
		} else {
			r.Seen.Add(ok)
		}
		if want.Layout.Single() {
			r.Single.Add(ok)
		} else {
			r.Pair.Add(ok)
		}
		if gs.Layout == want.Layout {
			r.Digits.Add(gs.A == want.A)
			if !want.Layout.Single() {
				r.Digits.Add(gs.B == want.B)
			}
		}
		if !ok && len(r.Examples) < 8 {
			r.Examples = append(r.Examples, [2]string{captions[i], names.Caption(gs)})
		}
	}
	// FD of the seen scenes' images against the real test canvases of
	// seen scenes: both drawn evenly over the same scenes.
	var seenFeats [][]float32
	for i, s := range scenes {
		if !s.HeldOut() {
			seenFeats = append(seenFeats, feats[i])
		}
	}
	if realFeats == nil {
		if realFeats, err = judge.SeenFeatures(ctx, test); err != nil {
			return r, err
		}
	}
	if len(seenFeats) > 1 {
		if r.FD, err = Frechet(seenFeats, realFeats); err != nil {
			return r, err
		}
	}
	return r, nil
}

// canvases returns the first n test canvases as pixels, with their scenes.
func canvases(test *data.Dataset, n int) ([][]float32, []canvas.Scene, error) {
	n = min(n, test.N)
	all, labels := DatasetImages(test)
	imgs := all[:n]
	scenes := make([]canvas.Scene, n)
	for i := range imgs {
		s, err := canvas.SceneOf(labels[i])
		if err != nil {
			return nil, nil, fmt.Errorf("test canvas %d: %w", i, err)
		}
		scenes[i] = s
	}
	return imgs, scenes, nil
}

// ImageToText captions the first n real test canvases; a caption is
// correct when it parses (canvas.Names.Parse) to the canvas's scene — any
// template variant of the right caption counts, exactly as written.
func ImageToText(ctx context.Context, m MultimodalModel, names canvas.Names, test *data.Dataset, n int) (MultimodalReport, error) {
	r := MultimodalReport{Task: "i2t"}
	imgs, scenes, err := canvases(test, n)
	if err != nil {
		return r, err
	}
	got, err := m.Caption(ctx, imgs)
	if err != nil {
		return r, err
	}
	for i, c := range got {
		s, perr := names.Parse(c)
		ok := perr == nil && s == scenes[i]
		r.Layout.Add(perr == nil && s.Layout == scenes[i].Layout)
		if scenes[i].HeldOut() {
			r.HeldOut.Add(ok)
		} else {
			r.Seen.Add(ok)
		}
		if len(r.Examples) < 8 && (!ok || i < 3) {
			r.Examples = append(r.Examples, [2]string{names.Caption(scenes[i]), c})
		}
	}
	return r, nil
}

// VisualQuestions asks one question about each of the first n real test
// canvases, the i-th of its scene's questions in turn, and counts exact
// answers (the small analogue of the paper's VQAv2 column).
func VisualQuestions(ctx context.Context, m MultimodalModel, names canvas.Names, test *data.Dataset, n int) (MultimodalReport, error) {
	r := MultimodalReport{Task: "vqa"}
	imgs, scenes, err := canvases(test, n)
	if err != nil {
		return r, err
	}
	byQuestion := map[string][]int{}
	var order []string
	answers := make([]string, len(imgs))
	for i, s := range scenes {
		qs := names.Questions(s)
		x := qs[i%len(qs)]
		if byQuestion[x.Question] == nil {
			order = append(order, x.Question)
		}
		byQuestion[x.Question] = append(byQuestion[x.Question], i)
		answers[i] = x.Answer
	}
	for _, q := range order {
		idx := byQuestion[q]
		batch := make([][]float32, len(idx))
		for j, i := range idx {
			batch[j] = imgs[i]
		}
		got, err := m.Ask(ctx, batch, q)
		if err != nil {
			return r, err
		}
		for j, i := range idx {
			ok := strings.TrimSpace(got[j]) == answers[i]
			if scenes[i].HeldOut() {
				r.HeldOut.Add(ok)
			} else {
				r.Seen.Add(ok)
			}
			if !ok && len(r.Examples) < 8 {
				r.Examples = append(r.Examples, [2]string{q + " " + answers[i], got[j]})
			}
		}
	}
	return r, nil
}
