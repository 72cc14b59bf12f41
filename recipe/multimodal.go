package recipe

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/canvas"
	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/imageio"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/multimodal"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/plot"
	"github.com/latentlm/latentlm/text"
	"github.com/latentlm/latentlm/train"
	"github.com/latentlm/latentlm/vae"
)

// Mixture weighs the tasks of multimodal training: each sequence of a batch
// is one task, drawn with these relative weights.
type Mixture struct {
	Text float64 // plain text: a document of the corpus
	T2I  float64 // caption → image
	I2T  float64 // image → caption
	VQA  float64 // image + question → answer
}

// weights are the mixture's weights in a fixed order: text, caption →
// image, image → caption, question.
func (m Mixture) weights() []float64 { return []float64{m.Text, m.T2I, m.I2T, m.VQA} }

// MultimodalOptions are the settings of Multimodal, the options of
// `latentlm train --task multimodal`.
type MultimodalOptions struct {
	Options
	// Limit trains on the first Limit training canvases only (0: all).
	Limit int
	// Tokenizer is the image tokenizer ("": the shipped one of Data).
	Tokenizer string
	// TextTokenizer is a tokenizer.json to use ("": train a byte-level BPE
	// of VocabSize ids on the corpus and the captions).
	TextTokenizer string
	VocabSize     int
	// Init starts a new run from the weights of another LatentLM
	// checkpoint (a class-conditional one, say) wherever a weight of the
	// same name has the same shape; the rest start fresh.
	Init string
	// TextFiles is the text corpus (nil: the fortunes of Debian's
	// fortunes package, training split).
	TextFiles []string
	// Model is the backbone; vocabulary, latent width and max_len are set
	// here (max_len from SeqLen). A resumed run uses the saved one.
	Model  lm.Config
	SeqLen int
	// BatchMul is the number of noise draws per latent item.
	BatchMul int
	// CaptionDropout is the probability that a caption → image sequence
	// has its caption replaced by null tokens (for classifier-free
	// guidance).
	CaptionDropout float64
	// DiffusionWeight is λ of 𝓛_CE + λ·𝓛_diff.
	DiffusionWeight float64
	Mix             Mixture
	EMA             float64
	// SampleEvery is the period in steps of a caption → image grid
	// Out/samples-NNNNNN.png, also drawn at the last step (0: never). It
	// is drawn when the checkpoint is saved, so only at steps that are
	// multiples of both SaveEvery and SampleEvery.
	SampleEvery int64
}

// DefaultMultimodalOptions are the defaults of `latentlm train --task
// multimodal`: MNIST canvases and fortunes, a 2048-id BPE, tasks in equal
// parts.
func DefaultMultimodalOptions() MultimodalOptions {
	cfg := lm.DefaultConfig()
	cfg.Dim, cfg.Heads, cfg.KVHeads, cfg.Depth = 256, 4, 4, 6
	cfg.Target = diffusion.Velocity
	cfg.Layout = lm.LayoutBOL
	return MultimodalOptions{
		Options:   Options{Data: "mnist-canvas", Steps: 4000, SaveEvery: 500, Batch: 32, LR: 1e-3, Seed: 1},
		VocabSize: 2048, Model: cfg, SeqLen: 80, BatchMul: 4, CaptionDropout: 0.1, DiffusionWeight: 1,
		Mix: Mixture{Text: 1, T2I: 1, I2T: 1, VQA: 1}, EMA: 0.999, SampleEvery: 1000,
	}
}

// SampleCaptions are the captions of the training grids (canonical,
// training scenes).
func sampleCaptions(names canvas.Names) []string {
	var out []string
	for _, id := range []int{3, 17, 40 + 7*10 + 2, 140 + 1*10 + 5} {
		s, err := canvas.SceneOf(id)
		if err == nil && !s.HeldOut() {
			out = append(out, names.Caption(s))
		}
	}
	return out
}

// Multimodal trains LatentLM on mixed sequences of text and image latents
// (docs/DESIGN.md §11) into o.Out (default runs/multimodal-<data>): plain
// text from the corpus, and the captions, images and questions of a canvas
// data set ("mnist-canvas" or "fashion-canvas"), whose held-out scenes
// never appear.
func Multimodal(ctx context.Context, o MultimodalOptions) (*Result, error) {
	if !canvas.IsCanvas(o.Data) {
		return nil, fmt.Errorf("multimodal training needs a canvas data set (mnist-canvas or fashion-canvas), not %q", o.Data)
	}
	ws := o.Mix.weights()
	var wsum float64
	for _, w := range ws {
		if w < 0 {
			return nil, errors.New("mixture weights must be ≥ 0")
		}
		wsum += w
	}
	if wsum <= 0 {
		return nil, errors.New("mixture weights are all 0: nothing to train on")
	}
	if o.Batch < 1 || o.BatchMul < 1 {
		return nil, errors.New("batch and batch-mul must be at least 1")
	}
	if !(o.CaptionDropout >= 0 && o.CaptionDropout < 1) || !(o.DiffusionWeight >= 0) {
		return nil, errors.New("caption dropout must be in [0, 1) and the diffusion weight ≥ 0")
	}
	if o.Out == "" {
		o.Out = filepath.Join("runs", "multimodal-"+o.Data)
	}
	names, err := canvas.NamesOf(o.Data)
	if err != nil {
		return nil, err
	}
	b, bname, err := openBackend(o.Backend)
	if err != nil {
		return nil, err
	}
	// The corpus, which text sequences and the BPE need.
	var docs, valid []string
	switch {
	case o.Mix.Text == 0 && o.TextTokenizer != "":
	case len(o.TextFiles) > 0:
		if docs, err = text.ReadFiles(o.TextFiles); err != nil {
			return nil, err
		}
	default:
		if docs, valid, err = text.Fortunes(text.FortunesDir); err != nil {
			return nil, err
		}
	}
	// The image tokenizer and the canvases' latent moments.
	if o.Tokenizer == "" {
		if o.Tokenizer, err = shippedWeights("vae-" + o.Data); err != nil {
			return nil, err
		}
	}
	imageTok, err := vae.Load(b, o.Tokenizer)
	if err != nil {
		return nil, err
	}
	defer imageTok.Close()
	tc := imageTok.Config
	ds, err := LoadSplit(o.Data, "train", o.Limit)
	if err != nil {
		return nil, err
	}
	if ds.Height != tc.ImageSize || ds.Width != tc.ImageSize {
		return nil, fmt.Errorf("tokenizer %s takes %d×%d images, %s has %d×%d", o.Tokenizer, tc.ImageSize, tc.ImageSize, o.Data, ds.Height, ds.Width)
	}
	// The text tokenizer: given, or trained on the corpus and the captions
	// of the training scenes (a resumed run reads the one it saved).
	var tok *text.Tokenizer
	saved := filepath.Join(o.Out, multimodal.TokenizerFile)
	switch {
	case o.Resume && fileExists(saved):
		tok, err = text.ReadFile(saved)
	case o.TextTokenizer != "":
		tok, err = text.ReadFile(o.TextTokenizer)
	default:
		logf(o.Log, "training a byte-level BPE of %d ids on %d documents and the captions...\n", o.VocabSize, len(docs))
		tok, err = text.Train(append(append([]string(nil), docs...), captionTexts(names)...), o.VocabSize)
	}
	if err != nil {
		return nil, err
	}
	o.Model.Vocab = lm.Vocab{Classes: 0, Extra: tok.Size()}
	o.Model.Latent = tc.Channels
	o.Model.MaxLen = o.SeqLen
	o.Model.Layout = lm.LayoutBOL
	f := multimodal.Format{Vocab: o.Model.Vocab, EOT: tok.EOT(), Items: tc.Items(), Channels: tc.Channels}
	need := longestRow(f, tok, names)
	if o.SeqLen < need {
		return nil, &OptionError{Option: "seq-len", Problem: fmt.Sprintf("%d is too short: the longest caption or question with its image takes %d items with this tokenizer", o.SeqLen, need)}
	}
	cfg := o.Model
	run, err := train.StartRun(o.Out, multimodal.Kind, &cfg, o.Seed, o.Resume, o.MemoryLimit, func() float64 {
		dataset := float64(ds.N) * float64(tc.Items()*tc.Channels) * 8
		return dataset + cfg.TrainBytes(o.Batch, o.SeqLen, o.BatchMul)
	})
	if err != nil {
		return nil, err
	}
	defer run.Finish()
	if cfg.Vocab != o.Model.Vocab || cfg.Latent != tc.Channels {
		return nil, fmt.Errorf("%s: the saved model (vocabulary %d, %d channels) does not match its tokenizers (%d, %d)", o.Out, cfg.Vocab.Extra, cfg.Latent, tok.Size(), tc.Channels)
	}
	// A resumed run keeps the sequence length it was started with.
	if o.SeqLen = cfg.MaxLen; o.SeqLen < need {
		return nil, fmt.Errorf("%s: the saved max_len %d is shorter than the longest sequence (%d items)", o.Out, cfg.MaxLen, need)
	}
	store := run.Store
	o.Seed = run.Seed
	if o.Init != "" && train.StepCount(store) == 0 {
		copied, total, err := initFrom(store, o.Init)
		if err != nil {
			return nil, err
		}
		logf(o.Log, "started %d of %d weights from %s (the others differ in shape or are new)\n", copied, total, o.Init)
	}
	tokSum, err := checkpoint.FileSHA256(filepath.Join(o.Tokenizer, checkpoint.WeightsFile))
	if err != nil {
		return nil, err
	}
	rec := lm.Tokenizer{Path: o.Tokenizer, SHA256: tokSum, Kind: tc.Kind.String(), Items: tc.Items(), Channels: tc.Channels, Data: o.Data}

	logf(o.Log, "encoding %d training canvases with the image tokenizer...\n", ds.N)
	mus, scales, err := imageTok.DatasetMoments(ds)
	if err != nil {
		return nil, err
	}
	mix := newMixer(o, f, tok, names, ds.Labels, mus, scales, docs)
	lambda := o.DiffusionWeight
	sched := diffusion.Cosine(1000)
	trc := train.DefaultConfig()
	trc.LR, trc.MinLR, trc.TotalSteps, trc.WarmupSteps, trc.EMADecay = o.LR, o.LR/20, int(o.Steps), 100, o.EMA
	tr, err := train.New(b, store, trc, func(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
		return multimodal.Losses(scope, w, cfg, tc, sched, o.BatchMul, lambda, in[0], in[1], in[2], in[3], in[4])
	})
	if err != nil {
		return nil, err
	}
	started := time.Now()
	save := func(step int64, h []train.Point) error {
		info := map[string]any{"data": o.Data, "steps": step, "backend": bname, "seed": o.Seed,
			"train_seconds": time.Since(started).Seconds(), "batch": o.Batch, "batch_mul": o.BatchMul,
			"mix": []float64{o.Mix.Text, o.Mix.T2I, o.Mix.I2T, o.Mix.VQA}, "caption_dropout": o.CaptionDropout,
			"diffusion_weight": lambda, "text_docs": len(docs), "text_bytes": mix.textBytes, "text_valid_docs": len(valid),
			"train_gflop": 3 * cfg.ForwardFLOPs(o.Batch, o.SeqLen, o.BatchMul) * float64(step) / 1e9}
		if err := run.Save(func(dir string) error { return multimodal.Save(dir, cfg, store, rec, tok, info) }, h, step); err != nil {
			return err
		}
		if o.SampleEvery > 0 && (step%o.SampleEvery == 0 || step == o.Steps) {
			return CaptionGrid(ctx, o.Backend, o.Out, filepath.Join(o.Out, fmt.Sprintf("samples-%06d.png", step)), sampleCaptions(names), 4)
		}
		return nil
	}
	loop := &train.Loop{
		Trainer: tr, Store: store, Steps: o.Steps, History: run.History, Every: o.SaveEvery, Hook: save,
		Desc: "multimodal " + o.Data, Quiet: o.Quiet, RecordEvery: 10, Metrics: []string{"ce", "diff"},
		Batch: func(step int64) ([]any, int, error) {
			bt, err := mix.batch(step)
			if err != nil {
				return nil, 0, err
			}
			n, l, c := bt.Rows, bt.Len, f.Channels
			return []any{
				tensors.FromFlatDataAndDimensions(bt.Ids, n, l),
				tensors.FromFlatDataAndDimensions(bt.Latents, n, l, c),
				tensors.FromFlatDataAndDimensions(bt.Scales, n, l, c),
				tensors.FromFlatDataAndDimensions(bt.IsLatent, n, l),
				tensors.FromFlatDataAndDimensions(bt.Valid, n, l),
			}, bt.Tokens + bt.LatentItems, nil
		},
	}
	if err := run.Train(ctx, loop); err != nil {
		return nil, err
	}
	if err := writeTermsPlot(filepath.Join(o.Out, "loss.png"), "multimodal training loss ("+o.Data+")", loop.History, loop.Metrics); err != nil {
		return nil, err
	}
	logf(o.Log, "saved %s (%d steps in %s)\n", o.Out, o.Steps, time.Since(started).Round(time.Second))
	return &Result{Dir: o.Out, History: loop.History}, nil
}

// mixer lays out the training sequences of the task mixture.
type mixer struct {
	o         MultimodalOptions
	f         multimodal.Format
	weights   []float64
	wsum      float64
	texts     [][]int // the corpus, tokenized
	textBytes int
	labels    []uint8 // scene of each canvas
	mus       []float32
	scales    []float32
	captions  [][][]int // per scene: every variant, canonical first
	questions [][]qa    // per scene
}

type qa struct{ q, a []int }

func newMixer(o MultimodalOptions, f multimodal.Format, tok *text.Tokenizer, names canvas.Names, labels []uint8, mus, scales []float32, docs []string) *mixer {
	m := &mixer{o: o, f: f, weights: o.Mix.weights(), labels: labels, mus: mus, scales: scales,
		texts: make([][]int, len(docs)), captions: make([][][]int, canvas.NumScenes), questions: make([][]qa, canvas.NumScenes)}
	for _, w := range m.weights {
		m.wsum += w
	}
	for i, d := range docs {
		m.texts[i] = tok.Encode(d)
		m.textBytes += len(d)
	}
	for id := range canvas.NumScenes {
		s, _ := canvas.SceneOf(id)
		for _, c := range names.Captions(s) {
			m.captions[id] = append(m.captions[id], tok.Encode(c))
		}
		for _, x := range names.Questions(s) {
			m.questions[id] = append(m.questions[id], qa{tok.Encode(x.Question), tok.Encode(" " + x.Answer)})
		}
	}
	return m
}

// batch lays out the sequences of one step. It depends only on (seed,
// step), so a resumed run sees the same data, and it draws canvases only
// from the data set it was given (the "train" split, which holds no
// held-out scene).
func (m *mixer) batch(step int64) (*multimodal.Batch, error) {
	o, f := m.o, m.f
	per := f.Items * f.Channels
	rng := rand.New(rand.NewPCG(o.Seed, uint64(step)))
	rows := make([]multimodal.Row, o.Batch)
	for i := range rows {
		r := &rows[i]
		task := pickWeighted(rng, m.weights, m.wsum)
		if task == 0 {
			if len(m.texts) > 0 {
				r.Items, r.Scales, r.NotTarget = textRow(f, m.texts[rng.IntN(len(m.texts))], o.SeqLen, rng)
			}
			continue
		}
		k := rng.IntN(len(m.labels))
		id := int(m.labels[k])
		mu, sc := m.mus[k*per:(k+1)*per], m.scales[k*per:(k+1)*per]
		r.EOT(f)
		switch task {
		case 1: // caption → image, the caption dropped now and then
			c := m.captions[id][rng.IntN(len(m.captions[id]))]
			if rng.Float64() < o.CaptionDropout {
				r.Null(f, len(c))
			} else {
				r.Text(f, c)
			}
			r.Image(f, mu, sc)
		case 2: // image → caption, canonical
			r.Image(f, mu, sc)
			r.Text(f, m.captions[id][0])
		case 3: // image + question → answer
			x := m.questions[id][rng.IntN(len(m.questions[id]))]
			r.Image(f, mu, sc)
			r.Prompt(f, x.q) // an input, not a target: after <EOL> the model learns captions only
			r.Text(f, x.a)
		}
		r.EOT(f)
	}
	return f.Pack(rows, o.SeqLen)
}

// longestRow is the most items a caption → image, image → caption or
// question sequence takes with this tokenizer.
func longestRow(f multimodal.Format, tok *text.Tokenizer, names canvas.Names) int {
	longest := 0
	for _, s := range canvas.AllScenes() {
		for _, c := range names.Captions(s) {
			longest = max(longest, 2+len(tok.Encode(c))+f.ImageLen())
		}
		for _, x := range names.Questions(s) {
			longest = max(longest, 2+f.ImageLen()+len(tok.Encode(x.Question))+len(tok.Encode(" "+x.Answer)))
		}
	}
	return longest
}

// captionTexts is every caption, question and answer of the training
// scenes, for the BPE.
func captionTexts(names canvas.Names) []string {
	var out []string
	for _, s := range canvas.AllScenes() {
		if s.HeldOut() {
			continue
		}
		out = append(out, names.Captions(s)...)
		for _, x := range names.Questions(s) {
			out = append(out, x.Question+" "+x.Answer)
		}
	}
	return out
}

// textRow lays out a document as <|endoftext|> text <|endoftext|>, a random
// window of length l when longer.
func textRow(f multimodal.Format, doc []int, l int, rng *rand.Rand) ([]lm.Item, [][]float32, []bool) {
	var r multimodal.Row
	r.EOT(f)
	r.Text(f, doc)
	r.EOT(f)
	if len(r.Items) > l {
		s := rng.IntN(len(r.Items) - l + 1)
		return r.Items[s : s+l], r.Scales[s : s+l], r.NotTarget[s : s+l]
	}
	return r.Items, r.Scales, r.NotTarget
}

func pickWeighted(rng *rand.Rand, ws []float64, sum float64) int {
	u := rng.Float64() * sum
	for i, w := range ws {
		if u < w {
			return i
		}
		u -= w
	}
	for i := len(ws) - 1; i >= 0; i-- {
		if ws[i] > 0 {
			return i
		}
	}
	return 0
}

// CaptionGrid draws perCaption images of each caption with the multimodal
// model in dir (on the named backend) and writes them to out as a grid, one
// row per caption: the training runs' sample grids and the demo's.
func CaptionGrid(ctx context.Context, backendName, dir, out string, captions []string, perCaption int) error {
	b, _, err := openBackend(backendName)
	if err != nil {
		return err
	}
	m, err := multimodal.Load(b, dir, "", multimodal.DefaultOptions())
	if err != nil {
		return err
	}
	defer m.Close()
	var all []string
	for _, c := range captions {
		for range perCaption {
			all = append(all, c)
		}
	}
	imgs, err := m.ImagesFor(ctx, all)
	if err != nil {
		return err
	}
	size := m.Image.Config.ImageSize
	return imageio.WriteGrid(out, imgs, size, size, perCaption)
}

// writeTermsPlot draws a run's loss history with each named term as its own
// series; a run too short to have one gets no plot.
func writeTermsPlot(path, title string, h []train.Point, terms []string) error {
	if len(h) == 0 {
		return nil
	}
	series := []plot.Series{{Name: "total"}}
	for _, t := range terms {
		series = append(series, plot.Series{Name: t})
	}
	for _, p := range h {
		series[0].X = append(series[0].X, float64(p.Step))
		series[0].Y = append(series[0].Y, p.Loss)
		for i := range terms {
			if i < len(p.Metrics) {
				series[i+1].X = append(series[i+1].X, float64(p.Step))
				series[i+1].Y = append(series[i+1].Y, p.Metrics[i])
			}
		}
	}
	return plot.Write(path, title, "step", "loss", series, plot.Axes{LogY: true})
}

// initFrom copies into store every weight of the LatentLM checkpoint in
// dir (class-conditional or multimodal) that has a weight of the same name
// and shape there.
func initFrom(store *model.Store, dir string) (copied, total int, err error) {
	kind, err := checkpoint.ReadKind(dir)
	if err != nil {
		return 0, 0, err
	}
	if kind != lm.Kind && kind != multimodal.Kind {
		return 0, 0, fmt.Errorf("--init %s: a %q checkpoint, want a LatentLM one (%s or %s)", dir, kind, lm.Kind, multimodal.Kind)
	}
	var cfg lm.Config
	src, _, err := lm.LoadKind(dir, kind, &cfg)
	if err != nil {
		return 0, 0, err
	}
	from := map[string]*model.Variable{}
	for _, v := range nn.Trainable(src) {
		from[nn.WeightName(v)] = v
	}
	for _, v := range nn.Trainable(store) {
		total++
		sv := from[nn.WeightName(v)]
		if sv == nil || !sv.Shape().Equal(v.Shape()) {
			continue
		}
		val, err := sv.Value()
		if err != nil {
			return 0, 0, err
		}
		clone, err := val.LocalClone()
		if err != nil {
			return 0, 0, err
		}
		if err := v.SetValue(clone); err != nil {
			return 0, 0, err
		}
		copied++
	}
	return copied, total, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
