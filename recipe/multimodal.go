package recipe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/canvas"
	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/evaluate"
	"github.com/latentlm/latentlm/imageio"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/multimodal"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/plot"
	"github.com/latentlm/latentlm/text"
	"github.com/latentlm/latentlm/train"
	"github.com/latentlm/latentlm/transfusion"
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
	Model lm.Config
	// Arch is how images enter the model: multimodal.Latent (LatentLM,
	// σ-VAE latents and the diffusion head) or multimodal.VQ (the VQ-MLLM
	// baseline: the codes of a vq Tokenizer as vocabulary entries,
	// predicted by the softmax head; BatchMul and DiffusionWeight do not
	// apply). A resumed run must ask for the arch it was started with.
	Arch multimodal.Arch
	// Transfusion, when On, trains the Transfusion baseline instead of
	// LatentLM, over the same latents (TransfusionOptions).
	Transfusion TransfusionOptions
	// SeqLen is the sequence length (max_len). A canvas set needs room for
	// its longest caption or question; for emoji and folders 0 takes the
	// longest caption with its image (captions beyond MaxCaptionTokens,
	// or beyond a SeqLen given, are cut).
	SeqLen int
	// Images say how the pictures of a folder or the emoji are read (fit
	// and background; see LoadImages). The size is always the image
	// tokenizer's, and a zero Fit or Background is the one the tokenizer
	// was trained with when it was trained on the same data.
	Images ImageOptions
	// BatchMul is the number of noise draws per latent item.
	BatchMul int
	// CaptionDropout is the probability that a caption → image sequence
	// has its caption replaced by null tokens (for classifier-free
	// guidance).
	CaptionDropout float64
	// DiffusionWeight is λ of 𝓛_CE + λ·𝓛_diff.
	DiffusionWeight float64
	// ContextImagesUntrained leaves out of the loss the images that image
	// → caption and question sequences read as context: they are inputs
	// only, and only caption → image sequences (and image-only documents)
	// train the drawing. By default every image's latents (or codes) are
	// targets, as docs/DESIGN.md §11 has it: an image that opens a
	// sequence is drawn unconditionally, from <|endoftext|> <BOL>. The
	// ablation asks whether that shares the small model's drawing with
	// images no caption steers (docs/RESULTS.md, "The probe's recipe on
	// the whole mixture": it does not, and captions need it).
	ContextImagesUntrained bool
	// ContextClean is the share, in [0, 1], of the images that image →
	// caption and question sequences read as context that the backbone
	// reads as their σ-VAE mean μ, as Caption and Ask give them in use,
	// instead of a fresh noisy draw; their diffusion targets keep the
	// noise (multimodal.Row.ReadClean). By default (0) every image enters
	// as the draw z = μ + σ·ε that it is trained to generate, as
	// docs/DESIGN.md §11 has it. Reading μ is learnt far sooner, but the
	// backbone then sees noisy inputs, the ones it draws from, in fewer
	// sequences (docs/RESULTS.md, "Reading the image as it is given").
	// With LatentLM only: Transfusion reads every context image as μ, since
	// it does not draw them (transfusion.Losses), and a VQ-MLLM's codes
	// have no noise.
	ContextClean float64
	Mix          Mixture
	EMA          float64
	// SampleEvery is the period in steps of a caption → image grid
	// Out/samples-NNNNNN.png, also drawn at the last step (0: never). It
	// is drawn when the checkpoint is saved, so only at steps that are
	// multiples of both SaveEvery and SampleEvery.
	SampleEvery int64
	// SnapshotEvery also keeps the weights every this many steps in
	// Out/step-NNNNNN (0: never), for `latentlm sweep --over train --task
	// multimodal`.
	SnapshotEvery int64
	// TrainGFLOP, when above 0, sets Steps to the steps whose counted work
	// ("train_gflop") is this many GFLOP: the budget of a comparison of
	// arches at equal training compute (issue 16).
	TrainGFLOP float64
	// MatchParams, when above 0, sets the backbone's depth (Model.Depth)
	// of a new run to the one whose parameter count, for this arch and
	// vocabulary, is nearest to MatchParams: the equal-parameter condition
	// of the paper's comparison (its Table 3), which one width alone does
	// not give, since LatentLM's diffusion head and the VQ-MLLM's image
	// codes weigh differently (MultimodalParams counts a checkpoint's).
	MatchParams int
}

// DefaultMultimodalOptions are the defaults of `latentlm train --task
// multimodal`: MNIST canvases and fortunes, a 2048-id BPE, tasks in equal
// parts. DefaultMultimodalOptionsFor gives those of emoji and folders.
func DefaultMultimodalOptions() MultimodalOptions {
	cfg := lm.DefaultConfig()
	cfg.Dim, cfg.Heads, cfg.KVHeads, cfg.Depth = 256, 4, 4, 6
	cfg.Target = diffusion.Velocity
	cfg.Layout = lm.LayoutBOL
	return MultimodalOptions{
		Options:   Options{Data: "mnist-canvas", Steps: 4000, SaveEvery: 500, Batch: 32, LR: 1e-3, Seed: 1},
		VocabSize: 2048, Model: cfg, SeqLen: 80, BatchMul: 4, CaptionDropout: 0.1, DiffusionWeight: 1,
		Mix: Mixture{Text: 1, T2I: 1, I2T: 1, VQA: 1}, EMA: 0.999, SampleEvery: 1000,
		Transfusion: TransfusionOptions{ContextNoise: transfusion.PaperContextNoise},
	}
}

// ImageSetMixture is the task mixture of emoji and folders: caption →
// image and image → caption in equal parts, no plain text (their captions
// are the text; --text adds a corpus) and no questions (they have none).
// A folder without any caption trains on image-only documents
// <|endoftext|> <BOL> z… <EOL> <|endoftext|> alone: a class-free LatentLM.
var ImageSetMixture = Mixture{T2I: 1, I2T: 1}

// MaxCaptionTokens is the most tokens of a caption an emoji or folder run
// keeps when it sizes its sequences itself (SeqLen 0); longer captions are
// cut.
const MaxCaptionTokens = 48

// DefaultMultimodalOptionsFor are the defaults of `latentlm train --task
// multimodal --data NAME`: DefaultMultimodalOptions for a canvas set, and
// for emoji or a folder the same with ImageSetMixture and SeqLen 0 (sized
// to the longest caption).
func DefaultMultimodalOptionsFor(name string) MultimodalOptions {
	o := DefaultMultimodalOptions()
	o.Data = name
	if !canvas.IsCanvas(name) {
		o.Mix, o.SeqLen = ImageSetMixture, 0
	}
	return o
}

// TokenizerData reads, from the config.json of the image tokenizer in
// dir, the data it was trained on and how its pictures were read (see
// ImageDataOf): the data a multimodal run on it defaults to.
func TokenizerData(dir string) (string, ImageOptions, error) {
	h, err := checkpoint.ReadHeader(dir, vae.Kind, &vae.Config{})
	if err != nil {
		return "", ImageOptions{}, err
	}
	name, o := ImageDataOf(h.Info)
	return name, o, nil
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
// (docs/DESIGN.md §11) into o.Out (default runs/multimodal-<data>, a
// folder's last path element for a folder). The images are
//
//   - a canvas set ("mnist-canvas" or "fashion-canvas"), with its
//     captions and questions and plain text from the corpus; its held-out
//     scenes never appear;
//   - the emoji ("emoji"), captioned by their names and skin tones, whose
//     held-out emoji/skin-tone combinations and test emoji never appear
//     (the train split of LoadImages);
//   - a folder of pictures, captioned by its captions.jsonl or .txt files
//     where it has them (the train split of LoadImages; one picture in 10
//     is held out). A picture without a caption is an image-only document
//     <|endoftext|> <BOL> z… <EOL> <|endoftext|>, which is also what a
//     caption → image sequence whose caption is dropped (with no null
//     tokens left) looks like; so a folder without captions trains the
//     class-free LatentLM that `latentlm generate` without --prompt draws
//     from, on the same mechanism as a captioned one.
//
// Emoji and folders are read at the image tokenizer's size, in its
// channels (gray or RGB); DefaultMultimodalOptionsFor gives their task
// mixture.
func Multimodal(ctx context.Context, o MultimodalOptions) (*Result, error) {
	if o.Transfusion.On {
		o.BatchMul = 1 // one noise draw per image and pass, as its checkpoint records
	}
	// A resumed run named by --out keeps its own data and options; one
	// found at the default folder was found through the data given.
	if o.Resume && o.Out != "" {
		if err := keepRecorded(o.Out, func(k *keptOptions) {
			k.path("data", &o.Data)
			k.count("batch", &o.Batch)
			k.count("batch_mul", &o.BatchMul)
			k.numbers("mix", &o.Mix.Text, &o.Mix.T2I, &o.Mix.I2T, &o.Mix.VQA)
			k.number("caption_dropout", &o.CaptionDropout)
			k.number("diffusion_weight", &o.DiffusionWeight)
			trained := !o.ContextImagesUntrained
			k.flag("context_images_trained", &trained)
			o.ContextImagesUntrained = !trained
			k.number("context_clean", &o.ContextClean)
			k.number("context_noise", &o.Transfusion.ContextNoise)
		}); err != nil {
			return nil, err
		}
	}
	if o.Data == "" {
		if o.Tokenizer == "" {
			return nil, errors.New("multimodal training needs data: a canvas set, emoji or a folder of pictures")
		}
		name, _, err := TokenizerData(o.Tokenizer)
		if err != nil {
			return nil, err
		}
		if name == "" {
			return nil, fmt.Errorf("tokenizer %s records no data set: name the data", o.Tokenizer)
		}
		o.Data = name
	}
	isCanvas := canvas.IsCanvas(o.Data)
	if !isCanvas {
		if err := CheckImageData(o.Data); err != nil {
			return nil, err
		}
		if isNamed(o.Data) {
			return nil, fmt.Errorf("multimodal training takes mnist-canvas or fashion-canvas, emoji or a folder of pictures, not %q", o.Data)
		}
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
	if isCanvas && o.SeqLen < 1 {
		return nil, &OptionError{Option: "seq-len", Problem: fmt.Sprintf("%d: a canvas set needs a sequence length", o.SeqLen)}
	}
	if !isCanvas && !isFolderOrEmoji(o.Data) {
		return nil, fmt.Errorf("multimodal training takes mnist-canvas or fashion-canvas, emoji or a folder of pictures, not %q", o.Data)
	}
	if !isCanvas && o.Mix.VQA > 0 {
		return nil, &OptionError{Option: "mix-vqa", Problem: fmt.Sprintf("%g: %s has no questions (only the canvas sets do); set 0", o.Mix.VQA, o.Data)}
	}
	if !(o.ContextClean >= 0 && o.ContextClean <= 1) {
		return nil, &OptionError{Option: "context-clean", Problem: fmt.Sprintf("%v: want a share in [0, 1]", o.ContextClean)}
	}
	if o.ContextClean > 0 && (o.Arch == multimodal.VQ || o.Transfusion.On) {
		return nil, &OptionError{Option: "context-clean", Problem: "is for LatentLM: a VQ-MLLM's codes carry no noise, and Transfusion reads every context image as its mean already, since it does not draw them"}
	}
	if o.Tokenizer == "" && o.Arch == multimodal.VQ {
		return nil, &OptionError{Option: "vae", Problem: fmt.Sprintf("is needed with --arch vq: a vq tokenizer, trained with `latentlm vae train --kind vq --data %s`", o.Data)}
	}
	if o.Tokenizer == "" {
		if IsImageFolder(o.Data) {
			return nil, &OptionError{Option: "vae", Problem: fmt.Sprintf("is needed: no tokenizer is shipped for the folder %s; train one with `latentlm vae train --data %s` and pass it", o.Data, o.Data)}
		}
		var err error
		if o.Tokenizer, err = shippedWeights("vae-" + o.Data); err != nil {
			return nil, err
		}
	}
	if o.Out == "" {
		o.Out = filepath.Join("runs", "multimodal-"+dataLabel(o.Data))
	}
	b, bname, err := openBackend(o.Backend)
	if err != nil {
		return nil, err
	}
	// The corpus, which text sequences and the BPE need: a canvas run
	// always reads one (the fortunes by default), an emoji or folder run
	// only when it trains on text or is given files.
	var docs, valid []string
	switch {
	case o.Mix.Text == 0 && o.TextTokenizer != "":
	case len(o.TextFiles) > 0:
		if docs, err = text.ReadFiles(o.TextFiles); err != nil {
			return nil, err
		}
	case !isCanvas && o.Mix.Text == 0:
	default:
		if docs, valid, err = text.Fortunes(text.FortunesDir); err != nil {
			return nil, err
		}
	}
	// The image tokenizer and the images.
	imageTok, err := vae.Load(b, o.Tokenizer)
	if err != nil {
		return nil, err
	}
	defer imageTok.Close()
	tc := imageTok.Config
	isVQ := o.Arch == multimodal.VQ
	if isVQ && tc.Kind != vae.VQ {
		return nil, &OptionError{Option: "vae", Problem: fmt.Sprintf("%s is a %v tokenizer: --arch vq needs a vq one (`latentlm vae train --kind vq`)", o.Tokenizer, tc.Kind)}
	}
	var set *ImageSet
	var names canvas.Names
	var labels []uint8
	if isCanvas {
		if names, err = canvas.NamesOf(o.Data); err != nil {
			return nil, err
		}
		ds, err := LoadSplit(o.Data, "train", o.Limit)
		if err != nil {
			return nil, err
		}
		if set, err = ImageSetOf(ds); err != nil {
			return nil, err
		}
		labels = ds.Labels
	} else {
		imgOpts := o.Images
		if tname, topts := ImageDataOf(imageTok.Info); sameData(tname, o.Data) && imgOpts.Background == "" {
			imgOpts.Fit, imgOpts.Background = topts.Fit, topts.Background
		}
		imgOpts.Size = tc.ImageSize
		if set, err = LoadImages(o.Data, "train", imgOpts, o.Limit, o.Log); err != nil {
			return nil, err
		}
	}
	if set.Size != tc.ImageSize {
		return nil, fmt.Errorf("tokenizer %s takes %d×%d images, %s has %d×%d", o.Tokenizer, tc.ImageSize, tc.ImageSize, o.Data, set.Size, set.Size)
	}
	if set.Channels != tc.ImageChannels() {
		return nil, fmt.Errorf("tokenizer %s takes %s, %s has %s", o.Tokenizer, channelWords(tc.ImageChannels()), o.Data, channelWords(set.Channels))
	}
	// The text tokenizer: given, or trained on the corpus and the captions
	// of the training images (a resumed run reads the one it saved).
	var tok *text.Tokenizer
	saved := filepath.Join(o.Out, multimodal.TokenizerFile)
	switch {
	case o.Resume && fileExists(saved):
		tok, err = text.ReadFile(saved)
	case o.TextTokenizer != "":
		tok, err = text.ReadFile(o.TextTokenizer)
	default:
		captions := set.Captions
		if isCanvas {
			captions = captionTexts(names)
		}
		logf(o.Log, "training a byte-level BPE of %d ids on %d documents and the captions...\n", o.VocabSize, len(docs))
		tok, err = text.Train(append(append([]string(nil), docs...), nonEmpty(captions)...), o.VocabSize)
	}
	if err != nil {
		return nil, err
	}
	o.Model.Vocab = lm.Vocab{Classes: 0, Extra: tok.Size()}
	o.Model.Latent = tc.Channels
	o.Model.Layout = lm.LayoutBOL
	codes := 0
	if isVQ {
		// The image codes follow the text ids; there are no latent
		// items, so x_embedder (kept by the shared embedding) is d×1.
		codes = tc.Codebook
		o.Model.Vocab.Extra += codes
		o.Model.Latent = 1
	}
	f := multimodal.Format{Vocab: o.Model.Vocab, EOT: tok.EOT(), Items: tc.Items(), Channels: tc.Channels, Codes: codes}
	var texts *imageTexts
	if isCanvas {
		texts = canvasTexts(tok, names, labels)
	} else {
		texts = setTexts(tok, set)
	}
	need := texts.longestRow(f)
	if !isCanvas {
		switch {
		case o.SeqLen == 0:
			o.SeqLen = min(need, 2+f.ImageLen()+MaxCaptionTokens)
		case o.SeqLen < 2+f.ImageLen():
			return nil, &OptionError{Option: "seq-len", Problem: fmt.Sprintf("%d is too short: an image alone takes %d items with this tokenizer", o.SeqLen, 2+f.ImageLen())}
		}
		need = min(need, o.SeqLen)
	}
	o.Model.MaxLen = o.SeqLen
	if o.SeqLen < need {
		return nil, &OptionError{Option: "seq-len", Problem: fmt.Sprintf("%d is too short: the longest caption or question with its image takes %d items with this tokenizer", o.SeqLen, need)}
	}
	if o.MatchParams > 0 && !o.Resume {
		var params int
		o.Model.Depth, params = depthForParams(o, codes)
		logf(o.Log, "depth %d: %d parameters, the nearest to the %d asked for (%+.1f%%)\n",
			o.Model.Depth, params, o.MatchParams, 100*(float64(params)/float64(o.MatchParams)-1))
	}
	mcfg := multimodal.Config{LM: o.Model, Arch: o.Arch, Codes: codes}
	tf, err := newTransfusionRun(o)
	if err != nil {
		return nil, err
	}
	kind, runCfg := multimodal.Kind, checkpoint.Model(&mcfg)
	if tf != nil {
		kind, runCfg = transfusion.Kind, &tf.cfg
	}
	if o.Resume {
		if o.Init, err = resumedInit(o.Out, o.Init); err != nil {
			return nil, err
		}
	}
	run, err := train.StartRun(o.Out, kind, runCfg, o.Seed, o.Resume, o.MemoryLimit, func() float64 {
		dataset := float64(set.N) * float64(tc.Items()*tc.Channels) * 8
		if tf != nil {
			return dataset + tf.cfg.TrainBytes(o.Batch, o.SeqLen)
		}
		return dataset + mcfg.TrainBytes(o.Batch, o.SeqLen, o.BatchMul)
	})
	if err != nil {
		return nil, err
	}
	defer run.Finish()
	if tf != nil {
		mcfg.LM = tf.cfg.LM() // a resumed run's saved backbone
	}
	cfg := mcfg.LM
	if mcfg.Arch != o.Arch {
		return nil, fmt.Errorf("%s: the saved model is arch %v, not %v", o.Out, mcfg.Arch, o.Arch)
	}
	if cfg.Vocab != o.Model.Vocab || cfg.Latent != o.Model.Latent {
		return nil, fmt.Errorf("%s: the saved model (vocabulary %d, %d channels) does not match its tokenizers (%d, %d)", o.Out, cfg.Vocab.Extra, cfg.Latent, o.Model.Vocab.Extra, o.Model.Latent)
	}
	// A resumed run keeps the sequence length it was started with.
	if o.SeqLen = cfg.MaxLen; o.SeqLen < need && (isCanvas || o.SeqLen < 2+f.ImageLen()) {
		return nil, fmt.Errorf("%s: the saved max_len %d is shorter than the longest sequence (%d items)", o.Out, cfg.MaxLen, need)
	}
	if cut := texts.cut(o.SeqLen - 2 - f.ImageLen()); cut > 0 {
		logf(o.Log, "%d caption(s) cut to %d tokens to fit sequences of %d items (--seq-len)\n", cut, o.SeqLen-2-f.ImageLen(), o.SeqLen)
	}
	if !isCanvas && len(texts.captioned) == 0 {
		// Nothing to caption: every image is an image-only document.
		if o.Mix.I2T > 0 {
			logf(o.Log, "%s has no captions: training on image-only documents (a class-free model)\n", o.Data)
		}
		if o.Mix.I2T = 0; o.Mix.Text+o.Mix.T2I == 0 {
			return nil, errors.New("the folder has no captions, and the mixture trains on nothing but image → caption: nothing to train on")
		}
	}
	store := run.Store
	o.Seed = run.Seed
	if o.Init != "" && train.StepCount(store) == 0 {
		copied, total, _, err := initFrom(store, o.Init, lm.Kind, multimodal.Kind)
		if err != nil {
			return nil, err
		}
		logf(o.Log, "started %d of %d weights from %s (the others differ in shape or are new)\n", copied, total, o.Init)
	}
	tokSum, err := checkpoint.FileSHA256(filepath.Join(o.Tokenizer, checkpoint.WeightsFile))
	if err != nil {
		return nil, err
	}
	rec := lm.Tokenizer{Path: o.Tokenizer, SHA256: tokSum, Kind: tc.Kind.String(), Items: tc.Items(), Channels: tc.Channels, Data: set.Name}

	logf(o.Log, "encoding %d training images with the image tokenizer...\n", set.N)
	var mus, scales []float32
	var imageCodes []int32
	if isVQ {
		imageCodes, err = setCodes(imageTok, set)
	} else {
		mus, scales, err = setMoments(imageTok, set)
	}
	if err != nil {
		return nil, err
	}
	mix := newMixer(o, f, tok, texts, mus, scales, docs)
	mix.codes = imageCodes
	// LatentLM's diffusion head runs on the latent targets alone
	// (multimodal.Batch.HeadRows), so a step's work follows its batch.
	headRows := !isVQ && tf == nil
	work := &stepWork{mix: mix, fixed: 3 * mcfg.ForwardFLOPs(o.Batch, o.SeqLen, o.BatchMul) / 1e9}
	switch {
	case tf != nil:
		work.fixed = 3 * tf.cfg.ForwardFLOPs(o.Batch, o.SeqLen) / 1e9
	case headRows:
		work.count = func(bt *multimodal.Batch) float64 {
			return 3 * mcfg.LM.ForwardFLOPsRows(o.Batch, o.SeqLen, len(bt.HeadRows), o.BatchMul) / 1e9
		}
	}
	if o.TrainGFLOP > 0 {
		if o.Steps, err = budgetSteps(o.TrainGFLOP, work.at); work.err != nil {
			return nil, work.err
		} else if err != nil {
			return nil, err
		}
		logf(o.Log, "a budget of %g GFLOP: %d steps of %.3f GFLOP on average\n", o.TrainGFLOP, o.Steps, work.upTo(o.Steps)/float64(o.Steps))
	}
	lambda := o.DiffusionWeight
	sched := diffusion.Cosine(1000)
	trc := train.DefaultConfig()
	trc.LR, trc.MinLR, trc.TotalSteps, trc.WarmupSteps, trc.EMADecay = o.LR, o.LR/20, int(o.Steps), 100, o.EMA
	loss := func(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
		if isVQ {
			return multimodal.CodeLosses(w, cfg, in[0], in[1], nil)
		}
		return multimodal.Losses(scope, w, cfg, tc, sched, o.BatchMul, lambda, multimodal.InputsOf(in, o.ContextClean > 0, headRows))
	}
	if tf != nil {
		loss = tf.loss(tc, sched, lambda)
	}
	tr, err := train.New(b, store, trc, loss)
	if err != nil {
		return nil, err
	}
	var grid []string
	if isCanvas {
		grid = sampleCaptions(names)
	} else {
		grid = setSampleCaptions(set)
	}
	started := time.Now()
	// loop.Steps is the run's last step: o.Steps, or where --time ends it.
	var loop *train.Loop
	save := func(step int64, h []train.Point) error {
		info := set.Info()
		for k, v := range map[string]any{"steps": step, "backend": bname, "seed": o.Seed,
			"train_seconds": time.Since(started).Seconds(), "batch": o.Batch, "batch_mul": o.BatchMul,
			"mix": []float64{o.Mix.Text, o.Mix.T2I, o.Mix.I2T, o.Mix.VQA}, "caption_dropout": o.CaptionDropout,
			"context_images_trained": !o.ContextImagesUntrained, "context_clean": o.ContextClean, "diffusion_weight": lambda,
			"text_docs": len(docs), "text_bytes": mix.textBytes, "text_valid_docs": len(valid),
			"train_gflop": work.upTo(step),
			// The items (text tokens, image latents or codes, padding) of
			// the sequences trained on, as the FLOPs count them: the x of
			// the paper's Figure 8.
			"train_tokens": float64(step) * float64(o.Batch) * float64(o.SeqLen)} {
			info[k] = v
		}
		if !isCanvas {
			info["images"], info["captioned_images"] = set.N, len(texts.captioned)
		}
		// A resumed run's own rate, whatever --lr said (train.New).
		info["lr"] = tr.Config().LR
		if o.Init != "" { // a continuation: its weights began as these
			info[checkpoint.InitKey] = o.Init
		}
		saveTo := func(dir string) error {
			if tf != nil {
				return tf.save(dir, store, rec, tok, info, o.Batch, o.SeqLen, step)
			}
			return multimodal.SaveConfig(dir, mcfg, store, rec, tok, info)
		}
		if err := run.Save(saveTo, h, step); err != nil {
			return err
		}
		if snapshotDue(o.SnapshotEvery, step, loop.Steps) {
			// The last step is kept too, so that a sweep ends where the run did.
			if err := keepSnapshot(o.Out, step, saveTo); err != nil {
				return err
			}
		}
		if o.SampleEvery > 0 && (step%o.SampleEvery == 0 || step == loop.Steps) {
			return CaptionGrid(ctx, o.Backend, o.Out, filepath.Join(o.Out, fmt.Sprintf("samples-%06d.png", step)), grid, 4)
		}
		return nil
	}
	metrics, desc := []string{"ce", "diff"}, "multimodal "+dataLabel(o.Data)
	if isVQ {
		metrics, desc = []string{"ce"}, "multimodal vq "+dataLabel(o.Data)
	}
	if tf != nil {
		desc = "multimodal transfusion " + dataLabel(o.Data)
	}
	loop = &train.Loop{
		Trainer: tr, Store: store, Steps: o.Steps, Deadline: o.Deadline, History: run.History, Every: hookEvery(o.SaveEvery, o.SnapshotEvery), Hook: save,
		Desc: desc, Quiet: o.Quiet, RecordEvery: 10, Metrics: metrics,
		Batch: func(step int64) ([]any, int, error) {
			bt, err := mix.batch(step)
			if err != nil {
				return nil, 0, err
			}
			if isVQ { // every item a token
				n, l := bt.Rows, bt.Len
				return []any{tensors.FromFlatDataAndDimensions(bt.Ids, n, l), tensors.FromFlatDataAndDimensions(bt.Valid, n, l)}, bt.Tokens, nil
			}
			in := bt.Inputs(f.Channels, o.contextClean() > 0, headRows)
			if tf != nil {
				lay, err := tf.inputs(bt, f, step)
				if err != nil {
					return nil, 0, err
				}
				in = append(in, lay...)
			}
			return in, bt.Tokens + bt.LatentItems, nil
		},
	}
	if err := run.Train(ctx, loop); err != nil {
		return nil, err
	}
	if err := writeTermsPlot(filepath.Join(o.Out, "loss.png"), "multimodal training loss ("+dataLabel(o.Data)+")", loop.History, loop.Metrics); err != nil {
		return nil, err
	}
	logf(o.Log, "saved %s (%d steps in %s)\n", o.Out, loop.Steps, time.Since(started).Round(time.Second))
	return &Result{Dir: o.Out, History: loop.History}, nil
}

// isFolderOrEmoji says whether name is the emoji or a folder of pictures.
func isFolderOrEmoji(name string) bool { return name == EmojiData || IsImageFolder(name) }

// sameData says whether two data names are the same set: equal names, or
// the same folder however it is spelt.
func sameData(a, b string) bool {
	if a == b {
		return true
	}
	if !IsImageFolder(a) || !IsImageFolder(b) {
		return false
	}
	pa, ea := filepath.Abs(a)
	pb, eb := filepath.Abs(b)
	return ea == nil && eb == nil && pa == pb
}

// nonEmpty is the strings that are not "".
func nonEmpty(s []string) []string {
	var out []string
	for _, x := range s {
		if x != "" {
			out = append(out, x)
		}
	}
	return out
}

// momentsBatch is how many images setMoments encodes at once.
const momentsBatch = 1000

// setMoments encodes every image of set with EncodeMoments, in order, and
// returns the means and noise scales of all of them, each flat: image i's
// items·channels values start at i·items·channels (as
// vae.Model.DatasetMoments does for a data set of one channel).
func setMoments(m *vae.Model, set *ImageSet) (mu, scale []float32, err error) {
	per := m.Config.Items() * m.Config.Channels
	mu = make([]float32, 0, set.N*per)
	scale = make([]float32, 0, set.N*per)
	err = set.Batches(momentsBatch, 0)(func(imgs [][]float32) error {
		bm, bs, err := m.EncodeMoments(imgs)
		if err != nil {
			return err
		}
		for i := range bm {
			mu = append(mu, bm[i]...)
			scale = append(scale, bs[i]...)
		}
		return nil
	})
	return mu, scale, err
}

// setCodes encodes every image of set into its codes with a vq tokenizer
// (vae.Model.Codes), in order, flat: image i's Items codes start at
// i·Items.
func setCodes(m *vae.Model, set *ImageSet) ([]int32, error) {
	out := make([]int32, 0, set.N*m.Config.Items())
	err := set.Batches(momentsBatch, 0)(func(imgs [][]float32) error {
		codes, err := m.Codes(imgs)
		if err != nil {
			return err
		}
		for _, c := range codes {
			out = append(out, c...)
		}
		return nil
	})
	return out, err
}

// imageTexts is the text of the training images, tokenized: each image
// belongs to a group (a canvas's scene; an emoji's or a picture's own),
// whose captions (every variant, canonical first; none for a picture
// without one) and questions it has.
type imageTexts struct {
	group     []int     // per image
	captions  [][][]int // per group
	questions [][]qa    // per group
	// captioned and questioned are the images with a caption, with a
	// question.
	captioned, questioned []int
}

func (t *imageTexts) index() {
	t.captioned, t.questioned = nil, nil
	for i, g := range t.group {
		if len(t.captions[g]) > 0 {
			t.captioned = append(t.captioned, i)
		}
		if len(t.questions[g]) > 0 {
			t.questioned = append(t.questioned, i)
		}
	}
}

// canvasTexts are the captions and questions of the canvases' scenes
// (labels: the scene of each training canvas).
func canvasTexts(tok *text.Tokenizer, names canvas.Names, labels []uint8) *imageTexts {
	t := &imageTexts{group: make([]int, len(labels)), captions: make([][][]int, canvas.NumScenes), questions: make([][]qa, canvas.NumScenes)}
	for i, l := range labels {
		t.group[i] = int(l)
	}
	for id := range canvas.NumScenes {
		s, _ := canvas.SceneOf(id)
		for _, c := range names.Captions(s) {
			t.captions[id] = append(t.captions[id], tok.Encode(c))
		}
		for _, x := range names.Questions(s) {
			t.questions[id] = append(t.questions[id], qa{tok.Encode(x.Question), tok.Encode(" " + x.Answer)})
		}
	}
	t.index()
	return t
}

// setTexts are the captions of an emoji or folder set: each image is its
// own group, with its caption or none.
func setTexts(tok *text.Tokenizer, set *ImageSet) *imageTexts {
	t := &imageTexts{group: make([]int, set.N), captions: make([][][]int, set.N), questions: make([][]qa, set.N)}
	for i := range set.N {
		t.group[i] = i
		if i < len(set.Captions) && set.Captions[i] != "" {
			t.captions[i] = [][]int{tok.Encode(set.Captions[i])}
		}
	}
	t.index()
	return t
}

// longestRow is the most items a caption → image, image → caption or
// question sequence takes.
func (t *imageTexts) longestRow(f multimodal.Format) int {
	longest := 2 + f.ImageLen()
	for g := range t.captions {
		for _, c := range t.captions[g] {
			longest = max(longest, 2+len(c)+f.ImageLen())
		}
		for _, x := range t.questions[g] {
			longest = max(longest, 2+f.ImageLen()+len(x.q)+len(x.a))
		}
	}
	return longest
}

// cut shortens the captions longer than room tokens to room, and returns
// how many it cut.
func (t *imageTexts) cut(room int) int {
	n := 0
	for g := range t.captions {
		for k, c := range t.captions[g] {
			if len(c) > room {
				t.captions[g][k] = c[:max(room, 0)]
				n++
			}
		}
	}
	return n
}

// setSampleCaptions are the captions of an emoji or folder run's sample
// grids: up to four captions of training images, spread over the set
// ("red apple" first when the set has it, the emoji the issue draws), or
// the empty caption, drawn unconditionally, when no image has one.
func setSampleCaptions(set *ImageSet) []string {
	var out []string
	if slices.Contains(set.Captions, "red apple") {
		out = append(out, "red apple")
	}
	caps := nonEmpty(set.Captions)
	for k := 0; k < 4 && len(caps) > 0 && len(out) < 4; k++ {
		c := caps[(2*k+1)*len(caps)/8]
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return []string{""}
	}
	return out
}

// mixer lays out the training sequences of the task mixture.
type mixer struct {
	o         MultimodalOptions
	f         multimodal.Format
	weights   []float64
	wsum      float64
	texts     [][]int // the corpus, tokenized
	textBytes int
	images    *imageTexts
	mus       []float32
	scales    []float32
	// codes are the images' codes (Items each) when the model is a
	// VQ-MLLM (f.Codes > 0); mus and scales are then unused.
	codes []int32
}

type qa struct{ q, a []int }

func newMixer(o MultimodalOptions, f multimodal.Format, tok *text.Tokenizer, images *imageTexts, mus, scales []float32, docs []string) *mixer {
	m := &mixer{o: o, f: f, weights: o.Mix.weights(), images: images, mus: mus, scales: scales, texts: make([][]int, len(docs))}
	for _, w := range m.weights {
		m.wsum += w
	}
	for i, d := range docs {
		m.texts[i] = tok.Encode(d)
		m.textBytes += len(d)
	}
	return m
}

// batch lays out the sequences of one step. It depends only on (seed,
// step), so a resumed run sees the same data, and it draws images only
// from the set it was given (the "train" split, which holds no held-out
// scene, emoji/skin-tone combination or picture). An image without a
// caption makes an image-only document where a caption → image sequence
// is drawn; image → caption and question sequences draw from the images
// that have captions and questions.
func (m *mixer) batch(step int64) (*multimodal.Batch, error) {
	o, f, im := m.o, m.f, m.images
	per := f.Items * f.Channels
	rng := rand.New(rand.NewPCG(o.Seed, uint64(step)))
	rows := make([]multimodal.Row, o.Batch)
	for i := range rows {
		r := &rows[i]
		task := pickWeighted(rng, m.weights, m.wsum)
		if task == 0 {
			if len(m.texts) > 0 {
				*r = textRow(f, m.texts[rng.IntN(len(m.texts))], o.SeqLen, rng)
			}
			continue
		}
		pool := im.captioned
		switch task {
		case 1:
			pool = nil // every image
		case 3:
			pool = im.questioned
		}
		var k int
		switch {
		case pool == nil:
			k = rng.IntN(len(im.group))
		case len(pool) == 0:
			continue // no image for this task (its weight is 0)
		default:
			k = pool[rng.IntN(len(pool))]
		}
		g := im.group[k]
		// image appends image k; one the sequence reads as context is
		// left out of the loss with ContextImagesUntrained, and read as
		// its mean in a share ContextClean of sequences (a draw of the
		// step's stream only where the share is strictly between 0 and 1,
		// so that 0 and 1 lay out the same data).
		image := func(context bool) {
			from := len(r.Items)
			if f.Codes > 0 {
				r.ImageCodes(f, m.codes[k*f.Items:(k+1)*f.Items])
			} else {
				r.Image(f, m.mus[k*per:(k+1)*per], m.scales[k*per:(k+1)*per])
			}
			if context && o.ContextImagesUntrained {
				r.AsContext(from+1, len(r.Items)-1) // <BOL> and <EOL> stay targets
			}
			if p := o.contextClean(); context && (p == 1 || (p > 0 && rng.Float64() < p)) {
				r.ReadClean(from+1, len(r.Items)-1)
			}
		}
		r.EOT(f)
		switch task {
		case 1: // caption → image, the caption dropped now and then
			if caps := im.captions[g]; len(caps) > 0 {
				c := caps[rng.IntN(len(caps))]
				if rng.Float64() < o.CaptionDropout {
					r.Null(f, len(c))
				} else {
					r.Text(f, c)
				}
			}
			image(false)
		case 2: // image → caption, canonical
			image(true)
			r.Text(f, im.captions[g][0])
		case 3: // image + question → answer
			x := im.questions[g][rng.IntN(len(im.questions[g]))]
			image(true)
			r.Prompt(f, x.q) // an input, not a target: after <EOL> the model learns captions only
			r.Text(f, x.a)
		}
		r.EOT(f)
	}
	return f.Pack(rows, o.SeqLen)
}

// stepWork counts a run's training work step by step, in GFLOP, as the
// checkpoint's train_gflop records it. LatentLM's diffusion head runs on
// the latent targets of each batch (Batch.HeadRows), so its step's work is
// a function of the batch, which depends only on (seed, step): the batches
// are laid out again to count them, once each. The baselines' steps all
// cost the same.
type stepWork struct {
	mix   *mixer
	count func(*multimodal.Batch) float64 // nil: every step costs fixed
	fixed float64
	cum   []float64 // cum[i]: the work of steps [0, i)
	err   error     // of the first batch that could not be laid out
}

// upTo is the work of steps [0, step).
func (w *stepWork) upTo(step int64) float64 {
	if w.count == nil {
		return w.fixed * float64(step)
	}
	if w.cum == nil {
		w.cum = []float64{0}
	}
	for int64(len(w.cum)) <= step {
		i := int64(len(w.cum)) - 1
		bt, err := w.mix.batch(i)
		if err != nil {
			w.err = fmt.Errorf("step %d: %w", i, err)
			return math.NaN()
		}
		w.cum = append(w.cum, w.cum[i]+w.count(bt))
	}
	return w.cum[step]
}

// at is the work of step `step`.
func (w *stepWork) at(step int64) float64 { return w.upTo(step+1) - w.upTo(step) }

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
func textRow(f multimodal.Format, doc []int, l int, rng *rand.Rand) multimodal.Row {
	var r multimodal.Row
	r.EOT(f)
	r.Text(f, doc)
	r.EOT(f)
	if len(r.Items) > l {
		return r.Window(rng.IntN(len(r.Items)-l+1), l)
	}
	return r
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
// model in dir (a multimodal or Transfusion checkpoint, on the named
// backend) and writes them to out as a grid, one
// row per caption, gray or RGB as the model's images: the training runs'
// sample grids and the demo's. The empty caption draws unconditionally.
func CaptionGrid(ctx context.Context, backendName, dir, out string, captions []string, perCaption int) error {
	var all []string
	for _, c := range captions {
		for range perCaption {
			all = append(all, c)
		}
	}
	if done, err := transfusionGrid(ctx, backendName, dir, out, all, perCaption); done {
		return err
	}
	b, _, err := openBackend(backendName)
	if err != nil {
		return err
	}
	m, err := multimodal.Load(b, dir, "", multimodal.DefaultOptions())
	if err != nil {
		return err
	}
	defer m.Close()
	imgs, err := m.ImagesFor(ctx, all)
	if err != nil {
		return err
	}
	size := m.Image.Config.ImageSize
	return imageio.WriteGridOpts(out, imgs, size, size, perCaption, imageio.GridOptions{Channels: m.Image.Config.ImageChannels()})
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

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// ImageEvalOptions size the text → image evaluation of an emoji or folder
// model (TextToImageEval).
type ImageEvalOptions struct {
	// PerPrompt is the number of images drawn from each prompt.
	PerPrompt int
	// Limit keeps at most this many held-out images (spread evenly over
	// the test split; 0: all).
	Limit int
	// Seen also draws from this many captions of training images (spread
	// evenly; the group "seen").
	Seen int
	// Unconditional is the number of images drawn without a caption from
	// a model trained without any (0: as many as the held-out images).
	Unconditional int
	// CacheDir is that of LoadImages.
	CacheDir string
}

// The groups of the prompts of TextToImageEval.
const (
	// GroupHeldOut is the captions of held-out images: for the emoji, the
	// held-out emoji/skin-tone combinations.
	GroupHeldOut = "held-out"
	// GroupUnseen is the captions of the emoji of the test split that are
	// no held-out combination: emoji never trained on in any tone.
	GroupUnseen = "unseen emoji"
	// GroupSeen is captions of training images.
	GroupSeen = "seen"
	// GroupUnconditional is images drawn without a caption.
	GroupUnconditional = "unconditional"
)

// TextToImageEval builds the text → image evaluation (evaluate.ImageSetEval)
// of a multimodal model trained on emoji or a folder: the images read again
// as the model's training read them (its data, size, fit and background),
// one prompt for each held-out image — its caption, or the empty caption
// for one without — in the group GroupHeldOut (for the emoji, GroupHeldOut
// for the held-out emoji/skin-tone combinations and GroupUnseen for the
// other test emoji), and o.Seen captions of training images (GroupSeen).
// A model trained without captions draws o.Unconditional images from the
// empty caption (GroupUnconditional). Retrieval searches the training and
// held-out images that have captions; the content word of an emoji's
// caption is taken from its name, leaving its skin tone to the tone judge.
//
// judges, by name (TargetSubcategory, TargetTone), are the emoji judges;
// each must name the classes EmojiClasses gives for its target. Only
// emoji prompts that name a skin tone are judged for it.
func TextToImageEval(m *multimodal.Model, judges map[string]evaluate.Judge, o ImageEvalOptions, log io.Writer) (*evaluate.ImageSetEval, error) {
	name, opts := ImageDataOf(m.Info)
	if name == "" || canvas.IsCanvas(name) {
		return nil, fmt.Errorf("%s is not a model of emoji or a folder (its data: %q)", m.Dir, name)
	}
	if err := CheckImageData(name); err != nil {
		return nil, fmt.Errorf("%s was trained on %s: %w", m.Dir, name, err)
	}
	if o.PerPrompt < 1 {
		return nil, &OptionError{Option: "per-prompt", Problem: fmt.Sprintf("%d: want at least 1", o.PerPrompt)}
	}
	isEmoji := name == EmojiData
	if len(judges) > 0 && !isEmoji {
		return nil, fmt.Errorf("judges are for the emoji; %s has none", name)
	}
	opts.Size, opts.CacheDir = m.Image.Config.ImageSize, o.CacheDir
	train, err := LoadImages(name, "train", opts, 0, log)
	if err != nil {
		return nil, err
	}
	test, err := LoadImages(name, "test", opts, 0, log)
	if err != nil {
		return nil, err
	}
	if test.Channels != m.Image.Config.ImageChannels() {
		return nil, fmt.Errorf("%s draws %s, %s has %s", m.Dir, channelWords(m.Image.Config.ImageChannels()), name, channelWords(test.Channels))
	}
	e := &evaluate.ImageSetEval{Data: name, Encoder: m.Image, PerPrompt: o.PerPrompt}
	images := func(s *ImageSet, idx []int) [][]float32 {
		out := make([][]float32, len(idx))
		for j, i := range idx {
			out[j] = make([]float32, s.PerImage())
			s.Float32(i, out[j])
		}
		return out
	}
	all := func(s *ImageSet) []int {
		idx := make([]int, s.N)
		for i := range idx {
			idx[i] = i
		}
		return idx
	}
	e.Train = images(train, spread(all(train), 5000))
	testIdx := spread(all(test), o.Limit)
	e.Test = images(test, testIdx)
	// Retrieval's reference: every captioned image.
	for _, s := range []*ImageSet{train, test} {
		var idx []int
		for i, c := range s.Captions {
			if c != "" {
				idx = append(idx, i)
				e.ReferenceCaptions = append(e.ReferenceCaptions, c)
			}
		}
		e.Reference = append(e.Reference, images(s, idx)...)
	}
	df := evaluate.DocumentFrequency(e.ReferenceCaptions)
	var index *EmojiIndex
	classes := map[string][]string{}
	if isEmoji {
		if index, err = LoadEmojiIndex(); err != nil {
			return nil, err
		}
		for _, t := range Targets {
			j, ok := judges[t]
			if !ok {
				continue
			}
			if classes[t], err = EmojiClasses(index.Entries, t); err != nil {
				return nil, err
			}
			if !slices.Equal(j.Config().Labels, classes[t]) {
				return nil, fmt.Errorf("the %s judge names %d classes, not the %d %s classes of the emoji", t, j.Config().Classes, len(classes[t]), t)
			}
			e.Judges = append(e.Judges, evaluate.NamedJudge{Name: t, Judge: j})
		}
		for t := range judges {
			if !slices.Contains(Targets, t) {
				return nil, fmt.Errorf("unknown judge %q: want %s", t, strings.Join(Targets, " or "))
			}
		}
	}
	prompt := func(s *ImageSet, i int, group string, real bool) (evaluate.Prompt, error) {
		c := s.Captions[i]
		p := evaluate.Prompt{Text: c, Group: group, Real: real, Source: images(s, []int{i})[0]}
		if c == "" {
			p.Group = GroupUnconditional
			return p, nil
		}
		p.Content = evaluate.ContentWord(c, df)
		if !isEmoji {
			return p, nil
		}
		en, ok := index.ByFile[s.Files[i]]
		if !ok {
			return p, fmt.Errorf("emoji image %s has no entry in emoji.json", s.Files[i])
		}
		p.Content = evaluate.ContentWord(strings.TrimSuffix(en.Caption, ", "+en.SkinTone), df)
		if group == GroupHeldOut && !index.HeldOut[en.File] {
			p.Group = GroupUnseen
		}
		p.Want = map[string]int{}
		for t, cl := range classes {
			if t == TargetTone && en.Tone == "" {
				continue // only a prompt that names a tone is judged for it
			}
			p.Want[t] = EmojiClass(en, t, cl)
		}
		return p, nil
	}
	if len(nonEmpty(train.Captions)) == 0 && len(nonEmpty(test.Captions)) == 0 {
		n := o.Unconditional
		if n <= 0 {
			n = len(testIdx)
		}
		for range n {
			e.Prompts = append(e.Prompts, evaluate.Prompt{Group: GroupUnconditional, Real: true})
		}
		return e, nil
	}
	for _, i := range testIdx {
		p, err := prompt(test, i, GroupHeldOut, true)
		if err != nil {
			return nil, err
		}
		e.Prompts = append(e.Prompts, p)
	}
	var captioned []int
	for i, c := range train.Captions {
		if c != "" {
			captioned = append(captioned, i)
		}
	}
	if o.Seen > 0 {
		for _, i := range spread(captioned, o.Seen) {
			p, err := prompt(train, i, GroupSeen, false)
			if err != nil {
				return nil, err
			}
			e.Prompts = append(e.Prompts, p)
		}
	}
	// The groups in a fixed order, so that reports read alike.
	order := []string{GroupSeen, GroupHeldOut, GroupUnseen, GroupUnconditional}
	slices.SortStableFunc(e.Prompts, func(a, b evaluate.Prompt) int {
		return slices.Index(order, a.Group) - slices.Index(order, b.Group)
	})
	return e, nil
}

// spread keeps n of idx spread evenly over it (all of them when n is 0 or
// at least their number).
func spread(idx []int, n int) []int {
	if n <= 0 || n >= len(idx) {
		return idx
	}
	out := make([]int, n)
	for k := range out {
		out[k] = idx[k*len(idx)/n]
	}
	return out
}

// contextClean is the share of the images read as context (image →
// caption, questions) that the backbone reads as their σ-VAE mean:
// ContextClean for LatentLM, which trades reading against drawing; every
// one for Transfusion, which does not draw them (transfusion.Losses), so
// reading them as in use costs it nothing.
func (o MultimodalOptions) contextClean() float64 {
	if o.Transfusion.On {
		return 1
	}
	return o.ContextClean
}

// paramsOf counts the parameters of the model o trains (the arch's
// weights: multimodal.Config.Specs, or transfusion.Config.Specs).
func paramsOf(o MultimodalOptions, codes int) int {
	if o.Transfusion.On {
		return nn.CountParams(transfusion.FromLM(o.Model).Specs())
	}
	return nn.CountParams(multimodal.Config{LM: o.Model, Arch: o.Arch, Codes: codes}.Specs())
}

// maxMatchDepth bounds the depths depthForParams tries.
const maxMatchDepth = 64

// depthForParams is the backbone depth, among 1…maxMatchDepth, whose
// parameter count is nearest to o.MatchParams (the shallower on a tie),
// and that count.
func depthForParams(o MultimodalOptions, codes int) (depth, params int) {
	best := math.MaxInt
	for d := 1; d <= maxMatchDepth; d++ {
		o.Model.Depth = d
		p := paramsOf(o, codes)
		if off := max(p-o.MatchParams, o.MatchParams-p); off < best {
			best, depth, params = off, d, p
		}
	}
	return depth, params
}

// MultimodalParams is the parameter count of the multimodal or
// Transfusion checkpoint in dir, read from its config.json alone: what
// MultimodalOptions.MatchParams takes to train another arch at the same
// size.
func MultimodalParams(dir string) (int, error) {
	kind, err := checkpoint.ReadKind(dir)
	if err != nil {
		return 0, err
	}
	switch kind {
	case multimodal.Kind:
		var c multimodal.Config
		if _, err := checkpoint.ReadHeader(dir, kind, &c); err != nil {
			return 0, err
		}
		return nn.CountParams(c.Specs()), nil
	case transfusion.Kind:
		var c transfusion.Config
		if _, err := checkpoint.ReadHeader(dir, kind, &c); err != nil {
			return 0, err
		}
		return nn.CountParams(c.Specs()), nil
	}
	return 0, fmt.Errorf("%s: a %s checkpoint, not a multimodal or Transfusion one", dir, kind)
}
