package evaluate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode"

	"github.com/latentlm/latentlm/classifier"
	"github.com/latentlm/latentlm/metrics"
	"github.com/latentlm/latentlm/multimodal"
	"github.com/latentlm/latentlm/vae"
)

// This file scores text → image on sets that have no class judge of
// their own: the emoji and a user's folder of pictures (issue 20,
// docs/DESIGN.md §11). The measures are
//
//   - FD, the Fréchet distance between Gaussians fitted to features of the
//     generated images and of the held-out real images, and the k-NN
//     precision, recall, density and coverage of the same features (as
//     Context.Score gives them for the digits). The features are those of
//     the model's own σ-VAE encoder, its posterior means μ (normalised as
//     the language model sees them) averaged over the latent grid: one
//     vector of latent-channel values per image (EncoderFeatures). No
//     network is trained for them, so any folder has them. FD of the
//     training images against the held-out ones gives the scale (the
//     floor a perfect model would reach with as many images);
//   - retrieval, for captioned data: an image is right when the real image
//     nearest to it, by the encoder's whole μ grid, carries the content
//     word of the caption it was drawn from (ContentWord: the caption's
//     rarest word among the real captions); chance is the share of real
//     images that carry it;
//   - judges, where the data has them (the emoji's subcategory and skin
//     tone classifiers): the share of images each judge reads as the class
//     their caption names, and the share of prompts most of whose images
//     it reads so.
//
// Every score is reported per group of prompts (for the emoji: seen
// captions, held-out emoji/skin-tone combinations and unseen emoji), so
// that compositional generalisation is read apart.

// EncoderFeatures encodes images with the tokenizer (posterior means μ,
// normalised, in batches) and returns, per image, their mean over the
// latent grid (pooled: Channels values) and the whole grid (full:
// Items·Channels values).
func EncoderFeatures(tok *vae.Model, images [][]float32) (pooled, full [][]float32, err error) {
	c := tok.Config
	const batch = 500
	for s := 0; s < len(images); s += batch {
		zs, err := tok.Encode(images[s:min(s+batch, len(images))], false)
		if err != nil {
			return nil, nil, err
		}
		for _, z := range zs {
			p := make([]float32, c.Channels)
			for k, v := range z {
				p[k%c.Channels] += v
			}
			for k := range p {
				p[k] /= float32(c.Items())
			}
			pooled, full = append(pooled, p), append(full, z)
		}
	}
	return pooled, full, nil
}

// Frechet is the Fréchet distance between the Gaussians fitted to two sets
// of features (each needs at least two vectors).
func Frechet(a, b [][]float32) (float64, error) {
	mu1, c1, err := metrics.MeanCov(a)
	if err != nil {
		return math.NaN(), err
	}
	mu2, c2, err := metrics.MeanCov(b)
	if err != nil {
		return math.NaN(), err
	}
	return metrics.FrechetDistance(mu1, c1, mu2, c2)
}

// Nearest is, for each query vector, the index of the nearest reference
// vector in Euclidean distance (the first of equals).
func Nearest(query, ref [][]float32) ([]int, error) {
	if len(ref) == 0 {
		return nil, errors.New("evaluate: nearest neighbours among no reference vectors")
	}
	out := make([]int, len(query))
	for i, q := range query {
		best, bestD := -1, math.Inf(1)
		for j, r := range ref {
			if len(r) != len(q) {
				return nil, fmt.Errorf("evaluate: vector of %d values against a reference of %d", len(q), len(r))
			}
			var d float64
			for k, x := range q {
				e := float64(x - r[k])
				d += e * e
			}
			if d < bestD {
				best, bestD = j, d
			}
		}
		out[i] = best
	}
	return out, nil
}

// stopWords are the words ContentWord never picks.
var stopWords = map[string]bool{
	"a": true, "an": true, "the": true, "of": true, "and": true, "or": true, "with": true, "in": true, "on": true,
	"at": true, "to": true, "is": true, "are": true, "for": true, "by": true, "from": true, "its": true,
	"this": true, "that": true, "be": true, "as": true, "it": true,
}

// Words splits a caption into its lower-case words: runs of letters and
// digits (so "thumbs up sign, dark skin tone" has six, and "medium-dark"
// two).
func Words(caption string) []string {
	return strings.FieldsFunc(strings.ToLower(caption), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsNumber(r) })
}

// DocumentFrequency counts, for each word, the captions that hold it.
func DocumentFrequency(captions []string) map[string]int {
	df := map[string]int{}
	for _, c := range captions {
		seen := map[string]bool{}
		for _, w := range Words(c) {
			if !seen[w] {
				seen[w] = true
				df[w]++
			}
		}
	}
	return df
}

// ContentWord is the word of a caption that retrieval looks for: of its
// words that are not stop words and that some reference caption holds
// (df, see DocumentFrequency), the rarest — the most telling — then the
// longest, then the first. It is "" when no word qualifies (the caption is
// then not scored).
func ContentWord(caption string, df map[string]int) string {
	best := ""
	for _, w := range Words(caption) {
		n := df[w]
		if stopWords[w] || n == 0 {
			continue
		}
		if best == "" || n < df[best] || n == df[best] && len(w) > len(best) {
			best = w
		}
	}
	return best
}

// HasWord says whether a caption holds the word.
func HasWord(caption, word string) bool { return slices.Contains(Words(caption), word) }

// Prompt is one caption an image-set evaluation draws from.
type Prompt struct {
	// Text is the caption; "" draws unconditionally (a folder without
	// captions).
	Text string
	// Group names the prompts reported together ("seen", "held-out", …).
	Group string
	// Content is the word retrieval looks for (see ContentWord); "" is not
	// scored.
	Content string
	// Want is, per judge, the class its images should have; a judge
	// absent from it does not judge the prompt.
	Want map[string]int
	// Real marks a prompt that stands for one held-out real image: the
	// first image drawn from each such prompt joins the set FD and the
	// k-NN scores compare with the held-out images, so that both sets hold
	// the same captions.
	Real bool
	// Source, if not nil, is the real image the caption was taken from.
	// The judges read it too (JudgeScore.Real): what they make of the
	// real picture is the ceiling of what they can credit a drawing with,
	// as a judge that misreads a real emoji cannot score its drawing right.
	Source []float32
}

// NamedJudge is a judge with the name its scores go under (the
// subcategory or tone of an emoji).
type NamedJudge struct {
	Name  string
	Judge Judge
}

// ImageSetEval is what TextToImageSet measures a model against.
type ImageSetEval struct {
	// Data names the set in the report.
	Data string
	// Encoder gives the features (the model's own image tokenizer).
	Encoder *vae.Model
	// Test is the held-out real images; Train, if not nil, training
	// images for the FD floor.
	Test, Train [][]float32
	// Reference and ReferenceCaptions are the real images retrieval
	// searches (the training and held-out images, so that every content
	// word has images to find).
	Reference         [][]float32
	ReferenceCaptions []string
	// Prompts are drawn PerPrompt times each.
	Prompts   []Prompt
	PerPrompt int
	Judges    []NamedJudge
}

// JudgeScore is a judge's reading of one group.
type JudgeScore struct {
	// Images counts the images it reads as their prompt's class.
	Images Accuracy `json:"images"`
	// Prompts counts the prompts more than half of whose images it reads
	// so (with one image per prompt, the same as Images).
	Prompts Accuracy `json:"prompts"`
	// Real counts the prompts' real images (Prompt.Source) it reads as
	// their class: the judge's ceiling on the group, reported when every
	// judged prompt of the group has its real image.
	Real *Accuracy `json:"real,omitempty"`
}

// ImageGroupReport is the score of one group of prompts.
type ImageGroupReport struct {
	Group   string `json:"group"`
	Prompts int    `json:"prompts"`
	Images  int    `json:"images"`
	// Retrieval counts the images whose nearest real image carries their
	// prompt's content word; RetrievalChance is the share of real images
	// that carry it, averaged over the images.
	Retrieval       *Accuracy `json:"retrieval,omitempty"`
	RetrievalChance float64   `json:"retrieval_chance,omitempty"`
	// Judges is per judge name.
	Judges map[string]*JudgeScore `json:"judges,omitempty"`
}

// PromptReport is the score of one prompt.
type PromptReport struct {
	Prompt string `json:"prompt"`
	Group  string `json:"group"`
	Images int    `json:"images"`
	// Content is the content word and Retrieved the images whose nearest
	// real image carries it; Nearest is the caption of the first image's
	// nearest real image.
	Content   string `json:"content,omitempty"`
	Retrieved int    `json:"retrieved,omitempty"`
	Nearest   string `json:"nearest,omitempty"`
	// Want and Got are per judge: the class wanted, and what the judge
	// read of each image; Right counts the images read right.
	Want  map[string]string   `json:"want,omitempty"`
	Got   map[string][]string `json:"got,omitempty"`
	Right map[string]int      `json:"right,omitempty"`
}

// ImageSetReport is the text → image score of a model on emoji or a folder
// (`latentlm eval --task t2i` on such a model).
type ImageSetReport struct {
	Task string `json:"task"` // t2i
	Data string `json:"data"`
	// Generated is the number of images drawn; Real the held-out real
	// images FD and the k-NN scores compare with, from FDImages of them.
	Generated int `json:"generated"`
	Real      int `json:"real"`
	FDImages  int `json:"fd_images"`
	// FD is that of the encoder features (see the file's comment);
	// FDTrain the FD of the training images against the same held-out
	// ones, its floor; FeatureDim the features' width.
	FD         float64 `json:"fd"`
	FDTrain    float64 `json:"fd_train,omitempty"`
	FeatureDim int     `json:"feature_dim"`
	// The k-NN scores (k = K) of the same features.
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	Density   float64 `json:"density"`
	Coverage  float64 `json:"coverage"`
	K         int     `json:"k"`
	// Groups are in the order of the prompts' first appearance.
	Groups  []ImageGroupReport `json:"groups"`
	Prompts []PromptReport     `json:"prompts"`
}

// Group is the report of the named group, or nil.
func (r *ImageSetReport) Group(name string) *ImageGroupReport {
	for i := range r.Groups {
		if r.Groups[i].Group == name {
			return &r.Groups[i]
		}
	}
	return nil
}

// Validate reports an evaluation that cannot be scored.
func (e *ImageSetEval) Validate() error {
	switch {
	case e.Encoder == nil:
		return errors.New("evaluate: no image tokenizer for the features")
	case len(e.Prompts) == 0:
		return errors.New("evaluate: no prompts")
	case e.PerPrompt < 1:
		return fmt.Errorf("evaluate: %d images per prompt: want at least 1", e.PerPrompt)
	case len(e.Test) <= K:
		return fmt.Errorf("evaluate: %d held-out real images: need more than %d for precision/recall", len(e.Test), K)
	case len(e.Reference) != len(e.ReferenceCaptions):
		return fmt.Errorf("evaluate: %d reference images with %d captions", len(e.Reference), len(e.ReferenceCaptions))
	}
	for _, j := range e.Judges {
		if len(j.Judge.Models) == 0 {
			return fmt.Errorf("evaluate: judge %s has no classifier", j.Name)
		}
		if c, t := j.Judge.Config(), e.Encoder.Config; c.ImageSize != t.ImageSize || c.ImageChannels() != t.ImageChannels() {
			return fmt.Errorf("evaluate: judge %s reads %d×%d images of %d channel(s), the model draws %d×%d of %d", j.Name,
				c.ImageSize, c.ImageSize, c.ImageChannels(), t.ImageSize, t.ImageSize, t.ImageChannels())
		}
	}
	real := 0
	for _, p := range e.Prompts {
		if p.Real {
			real++
		}
		for name := range p.Want {
			if !slices.ContainsFunc(e.Judges, func(j NamedJudge) bool { return j.Name == name }) {
				return fmt.Errorf("evaluate: prompt %q wants a class of the judge %q, which is not given", p.Text, name)
			}
		}
	}
	if real*e.PerPrompt <= K {
		return fmt.Errorf("evaluate: %d prompts stand for held-out images: need more than %d for precision/recall", real, K)
	}
	return nil
}

// TextToImageSet draws e.PerPrompt images of every prompt with the model
// and scores them (Score).
func TextToImageSet(ctx context.Context, m *multimodal.Model, e ImageSetEval) (*ImageSetReport, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	captions := make([]string, 0, len(e.Prompts)*e.PerPrompt)
	for _, p := range e.Prompts {
		for range e.PerPrompt {
			captions = append(captions, p.Text)
		}
	}
	imgs, err := m.ImagesFor(ctx, captions)
	if err != nil {
		return nil, err
	}
	return e.Score(imgs)
}

// Score measures images drawn from the prompts, PerPrompt of each in the
// order of the prompts (as TextToImageSet draws them).
func (e *ImageSetEval) Score(images [][]float32) (*ImageSetReport, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	if len(images) != len(e.Prompts)*e.PerPrompt {
		return nil, fmt.Errorf("evaluate: %d images for %d prompts × %d", len(images), len(e.Prompts), e.PerPrompt)
	}
	genPooled, genFull, err := EncoderFeatures(e.Encoder, images)
	if err != nil {
		return nil, err
	}
	testPooled, _, err := EncoderFeatures(e.Encoder, e.Test)
	if err != nil {
		return nil, err
	}
	r := &ImageSetReport{Task: "t2i", Data: e.Data, Generated: len(images), Real: len(e.Test), FeatureDim: e.Encoder.Config.Channels, K: K}
	// FD and k-NN: the first image of each prompt that stands for a
	// held-out image (all of them if there are too few such prompts).
	var fdFeats [][]float32
	for i, p := range e.Prompts {
		if p.Real {
			fdFeats = append(fdFeats, genPooled[i*e.PerPrompt])
		}
	}
	if len(fdFeats) <= K {
		fdFeats = nil
		for i, p := range e.Prompts {
			if p.Real {
				fdFeats = append(fdFeats, genPooled[i*e.PerPrompt:(i+1)*e.PerPrompt]...)
			}
		}
	}
	r.FDImages = len(fdFeats)
	if r.FD, err = Frechet(fdFeats, testPooled); err != nil {
		return nil, err
	}
	knn, err := metrics.KNN(testPooled, fdFeats, K)
	if err != nil {
		return nil, err
	}
	r.Precision, r.Recall, r.Density, r.Coverage = knn.Precision, knn.Recall, knn.Density, knn.Coverage
	if len(e.Train) > 1 {
		trainPooled, _, err := EncoderFeatures(e.Encoder, e.Train)
		if err != nil {
			return nil, err
		}
		if r.FDTrain, err = Frechet(trainPooled, testPooled); err != nil {
			return nil, err
		}
	}
	// Retrieval.
	var nearest []int
	var df map[string]int
	if len(e.Reference) > 0 {
		_, refFull, err := EncoderFeatures(e.Encoder, e.Reference)
		if err != nil {
			return nil, err
		}
		if nearest, err = Nearest(genFull, refFull); err != nil {
			return nil, err
		}
		df = DocumentFrequency(e.ReferenceCaptions)
	}
	// The judges' readings.
	reads := map[string][]int{}
	labels := map[string]classifier.Config{}
	for _, j := range e.Judges {
		probs, _, err := j.Judge.Predict(images)
		if err != nil {
			return nil, fmt.Errorf("judge %s: %w", j.Name, err)
		}
		got := make([]int, len(probs))
		for i, p := range probs {
			got[i] = metrics.Argmax(p)
		}
		reads[j.Name] = got
		labels[j.Name] = j.Judge.Config()
	}
	sources, sourced := e.sources()
	realReads := map[string][]int{}
	if sourced {
		for _, j := range e.Judges {
			probs, _, err := j.Judge.Predict(sources)
			if err != nil {
				return nil, fmt.Errorf("judge %s on the prompts' real images: %w", j.Name, err)
			}
			realReads[j.Name] = make([]int, len(probs))
			for i, p := range probs {
				realReads[j.Name][i] = metrics.Argmax(p)
			}
		}
	}
	t := newTally(e.Judges)
	for i, p := range e.Prompts {
		pr := PromptReport{Prompt: p.Text, Group: p.Group, Images: e.PerPrompt, Content: p.Content}
		g := t.group(r, p.Group)
		g.Prompts++
		g.Images += e.PerPrompt
		for k := i * e.PerPrompt; k < (i+1)*e.PerPrompt; k++ {
			if nearest == nil || p.Content == "" {
				break
			}
			if k == i*e.PerPrompt {
				pr.Nearest = e.ReferenceCaptions[nearest[k]]
			}
			ok := HasWord(e.ReferenceCaptions[nearest[k]], p.Content)
			if ok {
				pr.Retrieved++
			}
			if g.Retrieval == nil {
				g.Retrieval = &Accuracy{}
			}
			g.Retrieval.Add(ok)
			t.chance[p.Group] += float64(df[p.Content]) / float64(len(e.ReferenceCaptions))
		}
		for _, j := range e.Judges {
			want, judged := p.Want[j.Name]
			if !judged {
				continue
			}
			cfg := labels[j.Name]
			if pr.Want == nil {
				pr.Want, pr.Got, pr.Right = map[string]string{}, map[string][]string{}, map[string]int{}
			}
			pr.Want[j.Name] = cfg.Label(want)
			right := 0
			for k := i * e.PerPrompt; k < (i+1)*e.PerPrompt; k++ {
				got := reads[j.Name][k]
				pr.Got[j.Name] = append(pr.Got[j.Name], cfg.Label(got))
				if got == want {
					right++
				}
				g.Judges[j.Name].Images.Add(got == want)
			}
			pr.Right[j.Name] = right
			g.Judges[j.Name].Prompts.Add(2*right > e.PerPrompt)
			if sourced {
				if g.Judges[j.Name].Real == nil {
					g.Judges[j.Name].Real = &Accuracy{}
				}
				g.Judges[j.Name].Real.Add(realReads[j.Name][i] == want)
			}
		}
		r.Prompts = append(r.Prompts, pr)
	}
	for i := range r.Groups {
		g := &r.Groups[i]
		if g.Retrieval != nil && g.Retrieval.N > 0 {
			g.RetrievalChance = t.chance[g.Group] / float64(g.Retrieval.N)
		}
		for name, s := range g.Judges {
			if s.Images.N == 0 {
				delete(g.Judges, name)
			}
		}
		if len(g.Judges) == 0 {
			g.Judges = nil
		}
	}
	return r, nil
}

// sources is the prompts' real images (Prompt.Source), in their order,
// and whether every prompt has one.
func (e *ImageSetEval) sources() ([][]float32, bool) {
	out := make([][]float32, len(e.Prompts))
	for i, p := range e.Prompts {
		if p.Source == nil {
			return nil, false
		}
		out[i] = p.Source
	}
	return out, len(out) > 0
}

// tally gathers the groups of a report.
type tally struct {
	judges []NamedJudge
	chance map[string]float64
}

func newTally(judges []NamedJudge) *tally {
	return &tally{judges: judges, chance: map[string]float64{}}
}

// group is the report's group of that name, added on first use.
func (t *tally) group(r *ImageSetReport, name string) *ImageGroupReport {
	if g := r.Group(name); g != nil {
		return g
	}
	g := ImageGroupReport{Group: name, Judges: map[string]*JudgeScore{}}
	for _, j := range t.judges {
		g.Judges[j.Name] = &JudgeScore{}
	}
	r.Groups = append(r.Groups, g)
	return &r.Groups[len(r.Groups)-1]
}
