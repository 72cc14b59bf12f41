package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/latentlm/latentlm/canvas"
	"github.com/latentlm/latentlm/data"
	"github.com/latentlm/latentlm/evaluate"
	"github.com/latentlm/latentlm/imageio"
	"github.com/latentlm/latentlm/internal/guard"
	"github.com/latentlm/latentlm/multimodal"
	"github.com/latentlm/latentlm/recipe"
	"github.com/latentlm/latentlm/text"
	"github.com/latentlm/latentlm/vae"
)

func init() {
	register("generate", "draw images from a caption with a multimodal model (text → image)", runGenerate)
	register("caption", "caption images with a multimodal model (image → text)", runCaption)
	register("ask", "answer a question about images with a multimodal model", runAsk)
	register("complete", "continue a prompt with text, and images where the model draws them", runComplete)
}

// multimodalDefault is the shipped multimodal model.
const multimodalDefault = "multimodal-mnist"

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// taskOf finds --task in a command line (train and eval dispatch on it
// before parsing the rest).
func taskOf(args []string) string {
	for i, a := range args {
		for _, p := range []string{"--task=", "-task="} {
			if strings.HasPrefix(a, p) {
				return strings.TrimPrefix(a, p)
			}
		}
		if (a == "--task" || a == "-task") && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// withoutTask removes --task and its value.
func withoutTask(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "--task=") || strings.HasPrefix(a, "-task=") {
			continue
		}
		if a == "--task" || a == "-task" {
			i++
			continue
		}
		out = append(out, a)
	}
	return out
}

func runTrainMultimodal(args []string) error {
	o := recipe.DefaultMultimodalOptions()
	fs := newFlags("train", `train --task multimodal [--data mnist-canvas|fashion-canvas|emoji|DIR] [--vae DIR] [--text FILE]… [--out DIR] [--steps N] [flags]

Trains LatentLM on text and images (docs/DESIGN.md §11). A canvas set
mixes text, captions, images and questions; emoji and a folder of
pictures (read at the --vae tokenizer's size, with the captions of its
captions.jsonl or .txt files) mix caption → image and image → caption.
A folder without captions trains a class-free model on image-only
documents, which generate draws from without --prompt.`)
	var texts stringList
	addTrainFlags(fs, &o.Options, &o.Limit, "checkpoint folder (default runs/multimodal-<data>, a folder's name for a folder)")
	fs.Lookup("data").Usage = "data: mnist-canvas, fashion-canvas, emoji or a folder of PNG and JPEG pictures (default: the --vae tokenizer's, else mnist-canvas)"
	fs.StringVar(&o.Tokenizer, "vae", "", "image tokenizer (default: the shipped vae-<data>; a folder needs the one trained on it)")
	fs.Var(&texts, "text", "a UTF-8 text file of the corpus; repeat for several (default: Debian's fortunes, training split)")
	fs.StringVar(&o.Init, "init", "", "start from the weights of this LatentLM checkpoint (e.g. a class-conditional one) wherever the shapes allow")
	fs.StringVar(&o.TextTokenizer, "tokenizer", "", "a tokenizer.json to use (default: train a byte-level BPE of --vocab ids)")
	fs.IntVar(&o.VocabSize, "vocab", o.VocabSize, "ids of the byte-level BPE trained on the corpus and captions")
	fs.IntVar(&o.SeqLen, "seq-len", o.SeqLen, "sequence length (max_len; emoji and folders: the longest caption with its image, at most 48 caption tokens)")
	fs.IntVar(&o.BatchMul, "batch-mul", o.BatchMul, "noise draws per latent item (batch_mul)")
	fs.Float64Var(&o.Mix.Text, "mix-text", o.Mix.Text, "weight of plain-text sequences (emoji and folders: 0, or 1 with --text)")
	fs.Float64Var(&o.Mix.T2I, "mix-t2i", o.Mix.T2I, "weight of caption → image sequences")
	fs.Float64Var(&o.Mix.I2T, "mix-i2t", o.Mix.I2T, "weight of image → caption sequences")
	fs.Float64Var(&o.Mix.VQA, "mix-vqa", o.Mix.VQA, "weight of image + question → answer sequences (canvases only)")
	fs.Float64Var(&o.CaptionDropout, "caption-dropout", o.CaptionDropout, "probability of replacing a caption by null tokens (for guidance)")
	fs.Float64Var(&o.DiffusionWeight, "diffusion-weight", o.DiffusionWeight, "λ of CE + λ·diffusion")
	contextLoss := fs.Bool("context-image-loss", true, "also train drawing on the images that image → caption and question sequences read (drawn unconditionally: every latent is a diffusion target); =false leaves them out of that loss")
	fs.Float64Var(&o.ContextClean, "context-clean", o.ContextClean, "share of the images of image → caption and question sequences that the backbone reads as their σ-VAE mean μ, as captioning gives them in use, instead of the draw z = μ + σ·ε it is trained to generate (the draw stays the diffusion target; LatentLM only)")
	fs.Var(archFlag{&o.Arch, &o.Transfusion.On}, "arch", "how images enter the model: latentlm (σ-VAE latents, diffusion head; default) or vq (the VQ-MLLM baseline: the codes of a --vae trained with --kind vq, predicted by the softmax head)"+archUsage)
	addTransfusionFlags(fs, &o)
	fs.Float64Var(&o.EMA, "ema", o.EMA, "EMA decay of the weights (sampling uses the EMA)")
	fs.Int64Var(&o.SampleEvery, "sample-every", o.SampleEvery, "caption → image grid period in steps (0: never)")
	fs.Int64Var(&o.SnapshotEvery, "snapshot-every", 0, "also keep the weights every N steps and at the last in --out/step-NNNNNN (for latentlm sweep --over train --task multimodal)")
	addTrainGFLOPFlag(fs, &o.TrainGFLOP)
	matchParams := fs.String("match-params", "", "instead of --depth, the depth whose parameter count is nearest to this: a number, or a multimodal or Transfusion checkpoint's (the equal-size condition of latentlm vs --arch vq|transfusion)")
	addBackboneFlags(fs, &o.Model, "", "diffusion target: eps or v")
	fs.bound("vocab", 258, 65536, false)
	fs.bound("seq-len", 8, 4096, false)
	for _, m := range []string{"mix-text", "mix-t2i", "mix-i2t", "mix-vqa", "diffusion-weight"} {
		fs.bound(m, 0, 1e6, false)
	}
	fs.bound("caption-dropout", 0, 1, false)
	fs.bound("context-clean", 0, 1, false)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkTrainGFLOP(fs); err != nil {
		return err
	}
	o.ContextImagesUntrained = !*contextLoss
	if *matchParams != "" {
		if err := setMatchParams(&o, *matchParams, fs.isSet("depth")); err != nil {
			return err
		}
	}
	if !fs.isSet("data") && o.Tokenizer != "" {
		// The data the tokenizer was trained on.
		name, _, err := recipe.TokenizerData(o.Tokenizer)
		if err != nil {
			return err
		}
		if name != "" {
			o.Data = name
		}
	}
	if !canvas.IsCanvas(o.Data) {
		if err := recipe.CheckImageData(o.Data); err != nil {
			return err
		}
		if !recipe.IsImageFolder(o.Data) && o.Data != recipe.EmojiData {
			return fmt.Errorf("--data %q: multimodal training takes mnist-canvas or fashion-canvas, emoji or a folder of pictures", o.Data)
		}
		// The defaults of emoji and folders, for the flags not given.
		d := recipe.DefaultMultimodalOptionsFor(o.Data)
		if !fs.isSet("mix-text") && len(texts) == 0 {
			o.Mix.Text = d.Mix.Text
		}
		if !fs.isSet("mix-vqa") {
			o.Mix.VQA = d.Mix.VQA
		}
		if !fs.isSet("seq-len") {
			o.SeqLen = d.SeqLen
		}
	}
	if err := checkTransfusionFlags(fs, o); err != nil {
		return err
	}
	if o.Arch == multimodal.VQ {
		// A VQ-MLLM predicts image codes by softmax: it has no diffusion head.
		for _, name := range []string{"batch-mul", "diffusion-weight", "head-dim", "head-depth", "target"} {
			if fs.isSet(name) {
				return fmt.Errorf("--%s is for the diffusion head, which --arch vq does not have", name)
			}
		}
	}
	if o.CaptionDropout >= 1 {
		return errors.New("--caption-dropout must be below 1")
	}
	o.TextFiles = texts
	if !o.Quiet {
		o.Log = os.Stderr
	}
	ctx, cancel := signalContext()
	defer cancel()
	return runRecipe(fs, &o.Options, append([]string{"train", "--task", "multimodal"}, args...), func() error {
		_, err := recipe.Multimodal(ctx, o)
		return err
	})
}

// modelFlags are the flags of the commands that use a multimodal model.
type modelFlags struct {
	fs                  *flags
	model, vae, backend *string
	sample              sampleFlags
	textTemp, topP      *float64
	maxTokens, topK     *int
}

func addModelFlags(fs *flags) modelFlags {
	d := multimodal.DefaultOptions()
	f := modelFlags{fs: fs, backend: fs.String("backend", "", "compute backend: onnx, go or xla")}
	f.sample = addSampleFlags(fs, "multimodal checkpoint (default: the shipped weights/"+multimodalDefault+")", "image tokenizer (default: the model's own)", multimodal.DefaultBatch)
	f.model, f.vae = f.sample.model, f.sample.vae
	fs.Lookup("temperature").Usage = "scale of the initial noise of each latent; for a VQ-MLLM, the temperature of the image codes' softmax (default: the checkpoint's own, else 1)"
	f.textTemp = fs.Float64("text-temperature", d.TextTemperature, "temperature of text tokens (0: the most likely)")
	f.topP = fs.Float64("top-p", d.TopP, "nucleus of text sampling: keep the likeliest tokens up to this probability")
	f.maxTokens = fs.Int("max-tokens", d.MaxTokens, "most text tokens per answer")
	fs.bound("text-temperature", 0, 100, false)
	fs.bound("top-p", 0, 1, true)
	fs.bound("max-tokens", 1, 1<<20, false)
	f.topK = fs.Int("top-k", d.TopK, "a VQ-MLLM draws each image code among this many likeliest (0: all), at --temperature, guided by --cfg on the logits")
	fs.bound("top-k", 0, 1<<20, false)
	return f
}

// open loads the model of the flags; greedy text for captions and answers.
func (f modelFlags) open(greedy bool) (*multimodal.Model, error) {
	dir := *f.model
	if dir == "" {
		var err error
		if dir, err = weightsDir(multimodalDefault); err != nil {
			return nil, fmt.Errorf("no --model given and no shipped %s: %w", multimodalDefault, err)
		}
	}
	o := multimodal.Options{SampleOptions: f.sample.options(), TextTemperature: *f.textTemp, TopP: *f.topP, MaxTokens: *f.maxTokens, Batch: *f.sample.batch, TopK: *f.topK}
	if greedy {
		o.TextTemperature = 0
	}
	b, _, err := openBackend(*f.backend)
	if err != nil {
		return nil, err
	}
	m, err := multimodal.Load(b, dir, *f.vae, o)
	if err != nil || f.fs.isSet("temperature") {
		return m, err
	}
	// Without --temperature, the checkpoint's own scale of the noise.
	if o.Temperature, err = m.SampleTemperature(); err == nil {
		err = m.SetOptions(o)
	}
	if err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

func runGenerate(args []string) error {
	fs := newFlags("generate", `generate --prompt "the digit 3 is to the left of the digit 7" [--n 8] [--out x.png] [flags]

Draws images of the caption, gray or in colour as the model's images
(emoji: --model weights/latentlm-emoji --prompt "red apple"). A model
trained on a folder without captions draws without --prompt.`)
	mf := addModelFlags(fs)
	prompt := fs.String("prompt", "", "the caption to draw (none for a model trained without captions)")
	n := fs.Int("n", 8, "images to draw")
	out := fs.String("out", "generated.png", "PNG grid of the images (one image: the image itself)")
	cols := fs.Int("cols", 8, "images per row of the grid")
	fs.bound("cols", 1, 1<<16, false)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if strings.TrimSpace(*prompt) == "" && fs.isSet("prompt") {
		return errors.New("--prompt is empty: give the caption to draw")
	}
	if err := guard.CheckOutputFormat(*out, ".png"); err != nil {
		return err
	}
	if done, err := transfusionGenerate(fs, mf, *prompt, *n, *out, *cols); done {
		return err
	}
	m, err := mf.open(false)
	if err != nil {
		return err
	}
	defer m.Close()
	if *prompt == "" && m.Captioned() {
		return errors.New("no --prompt: give the caption to draw (only a model trained without captions draws without one)")
	}
	ic := m.Image.Config
	if err := fs.checkMemory(fmt.Sprintf("generating %d images", *n), float64(*n)*float64(ic.Pixels())*4*4+m.Config.Activations(2*min(*n, multimodal.DefaultBatch), m.Config.MaxLen, 1, false)); err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	imgs, err := m.Images(ctx, *prompt, *n)
	if err != nil {
		return err
	}
	// One image is written as itself, so that caption and ask can read it.
	if *n == 1 {
		err = writeImage(*out, imgs[0], ic)
	} else {
		err = imageio.WriteGridOpts(*out, imgs, ic.ImageSize, ic.ImageSize, min(*cols, *n), imageio.GridOptions{Channels: ic.ImageChannels()})
	}
	if err != nil {
		return err
	}
	what := fmt.Sprintf("%d images", *n)
	if *n == 1 {
		what = "an image"
	}
	if *prompt == "" {
		fmt.Fprintf(os.Stderr, "wrote %s (%s, drawn without a caption)\n", *out, what)
		return nil
	}
	fmt.Fprintf(os.Stderr, "wrote %s (%s of %q)\n", *out, what, *prompt)
	return nil
}

// writeImage writes one image of the tokenizer c's kind: gray or RGB.
func writeImage(path string, img []float32, c vae.Config) error {
	if c.ImageChannels() == 3 {
		return imageio.WriteRGB(path, img, c.ImageSize, c.ImageSize)
	}
	return imageio.WriteGray(path, img, c.ImageSize, c.ImageSize)
}

// readImages reads PNGs of the image tokenizer c's size: gray, or RGB for
// a colour tokenizer (any PNG colour type then; transparency is an error).
func readImages(c vae.Config, paths []string) ([][]float32, error) {
	read := imageio.ReadGray
	if c.ImageChannels() == 3 {
		read = imageio.ReadRGB
	}
	imgs := make([][]float32, len(paths))
	for i, p := range paths {
		img, err := read(p, c.ImageSize, c.ImageSize)
		if err != nil {
			return nil, err
		}
		imgs[i] = img
	}
	return imgs, nil
}

func runCaption(args []string) error {
	fs := newFlags("caption", "caption [flags] IMAGE.png…\n\nPrints one caption per image, as `path: caption`.").takesArgs()
	mf := addModelFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("no images: give PNG files to caption")
	}
	if done, err := transfusionAnswer(mf, fs.Args(), ""); done {
		return err
	}
	m, err := mf.open(true)
	if err != nil {
		return err
	}
	defer m.Close()
	imgs, err := readImages(m.Image.Config, fs.Args())
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	caps, err := m.Caption(ctx, imgs)
	if err != nil {
		return err
	}
	for i, c := range caps {
		fmt.Printf("%s: %s\n", fs.Arg(i), c)
	}
	return nil
}

func runAsk(args []string) error {
	fs := newFlags("ask", `ask [flags] IMAGE.png… "QUESTION"

Answers the question (the last argument) about each image, as `+"`path: answer`.").takesArgs()
	mf := addModelFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() < 2 {
		return errors.New(`want one or more images and then the question, e.g. ask x.png "which digit is on the left?"`)
	}
	paths, question := fs.Args()[:fs.NArg()-1], strings.TrimSpace(fs.Arg(fs.NArg()-1))
	if question == "" {
		return errors.New("the question (the last argument) is empty")
	}
	if st, err := os.Stat(question); err == nil && !st.IsDir() {
		return fmt.Errorf("the last argument %s is a file, and the question comes last: ask x.png \"which digit is on the left?\"", question)
	}
	if done, err := transfusionAnswer(mf, paths, question); done {
		return err
	}
	m, err := mf.open(true)
	if err != nil {
		return err
	}
	defer m.Close()
	imgs, err := readImages(m.Image.Config, paths)
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	answers, err := m.Ask(ctx, imgs, question)
	if err != nil {
		return err
	}
	for i, a := range answers {
		fmt.Printf("%s: %s\n", paths[i], strings.TrimSpace(a))
	}
	return nil
}

func runComplete(args []string) error {
	fs := newFlags("complete", `complete --prompt "…" [--images DIR] [flags]

Streams the continuation to stdout as it is generated. Where the model draws
an image it is written to --images as image-N.png and its path printed inline
as [image: PATH].`)
	mf := addModelFlags(fs)
	prompt := fs.String("prompt", "", "the text to continue")
	dir := fs.String("images", ".", "folder for the images the model draws")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if st, err := os.Stat(*dir); err != nil || !st.IsDir() {
		return fmt.Errorf("--images %s: not a folder", *dir)
	}
	if err := refuseTransfusion(mf, "complete"); err != nil {
		return err
	}
	m, err := mf.open(false)
	if err != nil {
		return err
	}
	defer m.Close()
	// The prompt is checked before it is echoed, so that a refused one
	// prints only its error.
	if _, err := multimodal.EncodePrompt(m.Text, m.Config.MaxLen, "--prompt", *prompt, 2); err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	images := 0
	fmt.Print(*prompt)
	err = m.Complete(ctx, *prompt, func(p multimodal.Piece) error {
		if p.Image == nil {
			fmt.Print(p.Text)
			return nil
		}
		images++
		path := filepath.Join(*dir, fmt.Sprintf("image-%d.png", images))
		if err := writeImage(path, p.Image, m.Image.Config); err != nil {
			return err
		}
		fmt.Printf(" [image: %s] ", path)
		return nil
	})
	fmt.Println()
	return err
}

const evalMultimodalSynopsis = `eval --task text|t2i|i2t|vqa [--model DIR] [--judge DIR] [--n N] [--json]

Scores a multimodal model on the canvas benchmark (docs/DESIGN.md §11):
  text  validation bits per byte of the fortunes (or --text files)
  t2i   text → image: --per-seen images of every training scene and
        --per-held-out of every held-out scene, drawn from their captions and
        read by the judge (a canvas classifier, which must first read ≥ 98% of
        real test canvases right); also FD of the judge's features
  i2t   captions of the first --n real test canvases, exact (parsed) match
  vqa   one question about each of the first --n real test canvases

A model of emoji or of a folder takes --task t2i: --per-prompt images of
the caption of every held-out image (--limit: of that many) and of --seen
training captions, scored against the held-out images by FD and k-NN
precision/recall of the σ-VAE encoder's features (mean-pooled μ), by
retrieval (does the nearest real image carry the caption's content word?)
and, for the emoji, by the judges of subcategory (--judge) and skin tone
(--tone-judge), reported per group: seen, held-out emoji/skin-tone
combinations, unseen emoji. A model trained without captions draws --n
images unconditionally (default: as many as the held-out images).`

func runEvalMultimodal(task string, args []string) error {
	fs := newFlags("eval", evalMultimodalSynopsis)
	mf := addModelFlags(fs)
	dataName := fs.String("data", "mnist-canvas", "canvas data set: mnist-canvas or fashion-canvas (default: the model's own)")
	judgeDir := fs.String("judge", "", "canvas classifier, or a folder of several (an ensemble; default: the shipped weights/judge-<data>)")
	n := fs.Int("n", 1000, "test canvases (i2t, vqa)")
	perSeen := fs.Int("per-seen", 2, "images per training scene (t2i)")
	perHeld := fs.Int("per-held-out", 8, "images per held-out scene (t2i)")
	var texts stringList
	fs.Var(&texts, "text", "score these UTF-8 files instead of the fortunes' validation split (text)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	fs.bound("per-seen", 0, 1<<16, false)
	fs.bound("per-held-out", 0, 1<<16, false)
	var sf imageEvalFlags
	sf.perPrompt = fs.Int("per-prompt", 1, "images per caption (t2i on emoji or a folder)")
	sf.seen = fs.Int("seen", 100, "training captions also drawn, the group seen (t2i on emoji or a folder)")
	sf.limit = fs.Int("limit", 0, "held-out images whose captions are drawn, spread over the test split (0: all; t2i on emoji or a folder)")
	sf.toneJudge = fs.String("tone-judge", "", "skin-tone judge of the emoji (default: the shipped weights/judge-emoji-tone, if any)")
	fs.Lookup("judge").Usage += "; emoji: the subcategory judge (default: the shipped weights/judge-emoji-subcategory, if any)"
	fs.bound("per-prompt", 1, 1<<16, false)
	fs.bound("seen", 0, 1<<20, false)
	fs.bound("limit", 0, 1<<30, false)
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch task {
	case "text", "t2i", "i2t", "vqa":
	default:
		return fmt.Errorf("unknown --task %q: want text, t2i, i2t or vqa (or class, the class → image scores)", task)
	}
	if done, err := transfusionEval(mf, transfusionEvalOptions{task: task, data: *dataName, dataSet: fs.isSet("data"), judge: *judgeDir,
		n: *n, perSeen: *perSeen, perHe: *perHeld, texts: texts, asJSON: *asJSON}); done {
		return err
	}
	m, err := mf.open(true)
	if err != nil {
		return err
	}
	defer m.Close()
	if d, _ := m.Info["data"].(string); d != "" && !canvas.IsCanvas(d) {
		if task != "t2i" {
			return fmt.Errorf("--task %s: a model of emoji or a folder is scored on t2i", task)
		}
		if fs.isSet("data") {
			return errors.New("--data is for canvas models: a model of emoji or a folder is scored on its own data")
		}
		sf.judge, sf.n = judgeDir, n
		if !fs.isSet("n") {
			*n = 0
		}
		return evalImageSet(fs, mf, m, sf, *asJSON)
	}
	if d, ok := m.Info["data"].(string); ok && !fs.isSet("data") {
		*dataName = d // the model's own canvases
	}
	names, err := canvas.NamesOf(*dataName)
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	var r evaluate.MultimodalReport
	switch task {
	case "text":
		var docs []string
		if len(texts) > 0 {
			docs, err = text.ReadFiles(texts)
		} else {
			_, docs, err = text.Fortunes(text.FortunesDir)
		}
		if err != nil {
			return err
		}
		r, err = evaluate.TextBitsPerByte(m, docs)
	case "t2i", "i2t", "vqa":
		test, lerr := recipe.LoadSplit(*dataName, "test", 0)
		if lerr != nil {
			return lerr
		}
		switch task {
		case "t2i":
			judge, jerr := canvasJudge(ctx, *mf.backend, *judgeDir, *dataName, test)
			if jerr != nil {
				return jerr
			}
			r, err = evaluate.TextToImage(ctx, m, judge, names, test, *perSeen, *perHeld)
		case "i2t":
			r, err = evaluate.ImageToText(ctx, m, names, test, *n)
		case "vqa":
			r, err = evaluate.VisualQuestions(ctx, m, names, test, *n)
		}
	default:
		return fmt.Errorf("unknown --task %q: want text, t2i, i2t or vqa", task)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		b, _ := json.MarshalIndent(r, "", "  ")
		fmt.Println(string(b))
		return nil
	}
	printMultimodalReport(r)
	return nil
}

func printMultimodalReport(r evaluate.MultimodalReport) {
	if r.Task == "text" {
		fmt.Printf("text: %.4f bits per byte (%d tokens, %d bytes)\n", r.BitsPerByte, r.Tokens, r.Bytes)
		return
	}
	fmt.Printf("%s: seen %.2f%% (%d/%d), held-out %.2f%% (%d/%d)", r.Task, 100*r.Seen.Rate, r.Seen.Correct, r.Seen.N,
		100*r.HeldOut.Rate, r.HeldOut.Correct, r.HeldOut.N)
	if r.Task == "t2i" || r.Task == "i2t" {
		fmt.Printf(", layout right %.2f%%", 100*r.Layout.Rate)
	}
	if r.Task == "t2i" {
		fmt.Printf(", FD %.2f\n  single images %.2f%% (%d/%d), pairs %.2f%% (%d/%d); digits right where the layout is %.2f%% (%d/%d)",
			r.FD, 100*r.Single.Rate, r.Single.Correct, r.Single.N, 100*r.Pair.Rate, r.Pair.Correct, r.Pair.N,
			100*r.Digits.Rate, r.Digits.Correct, r.Digits.N)
	}
	fmt.Println()
	for _, e := range r.Examples {
		fmt.Printf("  want %q, got %q\n", e[0], e[1])
	}
}

// captionsPath is the caption grid's file beside the class grid out.
func captionsPath(out string) string {
	return strings.TrimSuffix(out, filepath.Ext(out)) + "-captions.png"
}

// demoCaptions are the rows of the caption → image demo: each layout, and
// two held-out scenes the model never saw (the last two rows).
var demoCaptions = []canvas.Scene{
	{Layout: canvas.TopLeft, A: 3}, {Layout: canvas.BottomRight, A: 5},
	{Layout: canvas.Horizontal, A: 7, B: 2}, {Layout: canvas.Vertical, A: 1, B: 6},
	{Layout: canvas.TopLeft, A: 7}, {Layout: canvas.Horizontal, A: 2, B: 1},
}

// captionDemo draws 8 images of each demo caption with the multimodal model
// in dir into out, one row per caption, and prints the captions.
func captionDemo(backendName, dir, out string) error {
	if err := guard.CheckOutputFormat(out, ".png", dir); err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	var captions []string
	for _, s := range demoCaptions {
		captions = append(captions, canvas.MNIST.Caption(s))
	}
	if err := recipe.CaptionGrid(ctx, backendName, dir, out, captions, 8); err != nil {
		return err
	}
	fmt.Printf("wrote %s: 8 images of each caption (rows; the last two were held out of training):\n", out)
	for i, c := range captions {
		fmt.Printf("  %d. %s\n", i+1, c)
	}
	return nil
}

// demoMultimodalSteps is the length of the multimodal model's training in
// `demo --train --task multimodal`, sized to fit the whole demo (tokenizer
// included) in 30 minutes on 2 cores (docs/BENCHMARKS.md, "multimodal demo").
const demoMultimodalSteps = 1000

// demoMultimodal writes the caption → image grid of the shipped multimodal
// model, or with retrain of one trained from scratch: the canvas σ-VAE on
// its defaults, then the multimodal model on the CPU recipe.
func demoMultimodal(fs *flags, backendName, dir, out string, seed uint64, retrain, quiet bool) error {
	modelDir := ""
	if retrain {
		vaeDir := filepath.Join(dir, "vae-mnist-canvas")
		if err := demoTrainVAE(fs, vaeDir, "mnist-canvas", seed, backendName, quiet); err != nil {
			return err
		}
		o := recipe.DefaultMultimodalOptions()
		o.Backend, o.Tokenizer, o.Out, o.Quiet, o.Seed, o.Steps = backendName, vaeDir, filepath.Join(dir, "multimodal-mnist"), quiet, seed, demoMultimodalSteps
		if !quiet {
			o.Log = os.Stderr
		}
		ctx, cancel := signalContext()
		defer cancel()
		command := []string{"train", "--task", "multimodal", "--vae", vaeDir, "--out", o.Out, "--steps", fmt.Sprint(o.Steps), "--seed", fmt.Sprint(seed)}
		if err := runRecipe(fs, &o.Options, command, func() error {
			_, err := recipe.Multimodal(ctx, o)
			return err
		}); err != nil {
			return err
		}
		modelDir = o.Out
	} else {
		var err error
		if modelDir, err = weightsDir(multimodalDefault); err != nil {
			return err
		}
	}
	return captionDemo(backendName, modelDir, out)
}

// imageEvalFlags are the flags of eval --task t2i on a model of emoji or a
// folder.
type imageEvalFlags struct {
	perPrompt, seen, limit, n *int
	judge, toneJudge          *string
}

// evalImageSet scores a model of emoji or a folder on text → image
// (recipe.TextToImageEval, evaluate.TextToImageSet).
func evalImageSet(fs *flags, mf modelFlags, m *multimodal.Model, f imageEvalFlags, asJSON bool) error {
	b, _, err := openBackend(*mf.backend)
	if err != nil {
		return err
	}
	judges := map[string]evaluate.Judge{}
	if d, _ := m.Info["data"].(string); d == recipe.EmojiData {
		for _, j := range []struct {
			target string
			dir    *string
			flag   string
		}{{recipe.TargetSubcategory, f.judge, "judge"}, {recipe.TargetTone, f.toneJudge, "tone-judge"}} {
			dir := *j.dir
			if dir == "" {
				if dir, err = weightsDir("judge-emoji-" + j.target); err != nil {
					fmt.Fprintf(os.Stderr, "no %s judge (--%s, or a shipped weights/judge-emoji-%s): not judged\n", j.target, j.flag, j.target)
					continue
				}
			}
			judge, err := evaluate.LoadClassifiers(b, dir)
			if err != nil {
				return err
			}
			if t, _ := judge.Models[0].Info["target"].(string); t != j.target {
				judge.Close()
				return fmt.Errorf("--%s %s: a classifier of the emoji's %q, want their %s", j.flag, dir, t, j.target)
			}
			if acc, ok := judge.Models[0].Info["held_out_accuracy"].(float64); ok {
				fmt.Fprintf(os.Stderr, "%s judge %s: %.2f%% right on the held-out real emoji/skin-tone combinations\n", j.target, dir, 100*acc)
			}
			judges[j.target] = judge
		}
	} else if fs.isSet("judge") || fs.isSet("tone-judge") {
		return errors.New("--judge and --tone-judge are for a model of the emoji")
	}
	o := recipe.ImageEvalOptions{PerPrompt: *f.perPrompt, Limit: *f.limit, Seen: *f.seen, Unconditional: *f.n}
	e, err := recipe.TextToImageEval(m, judges, o, os.Stderr)
	if err != nil {
		return err
	}
	n := len(e.Prompts) * e.PerPrompt
	if err := fs.checkMemory(fmt.Sprintf("drawing %d images", n), float64(n+len(e.Reference)+len(e.Train))*float64(m.Image.Config.Pixels())*4*4+
		m.Config.Activations(2*min(n, m.Options().Batch), m.Config.MaxLen, 1, false)); err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	r, err := evaluate.TextToImageSet(ctx, m, *e)
	if err != nil {
		return err
	}
	if asJSON {
		out, _ := json.MarshalIndent(r, "", "  ")
		fmt.Println(string(out))
		return nil
	}
	printImageSetReport(r)
	return nil
}

func printImageSetReport(r *evaluate.ImageSetReport) {
	fmt.Printf("t2i on %s: %d images; FD %.3f of the encoder's mean-pooled μ (%d values) against %d held-out images (training images: %.3f), from %d images\n",
		r.Data, r.Generated, r.FD, r.FeatureDim, r.Real, r.FDTrain, r.FDImages)
	fmt.Printf("  k-NN (k=%d): precision %.3f, recall %.3f, density %.3f, coverage %.3f\n", r.K, r.Precision, r.Recall, r.Density, r.Coverage)
	fmt.Println("  per group: retrieval (the nearest real image carries the caption's content word), and each judge's share of images and of prompts read right")
	fmt.Println("  (and of the real images the prompts' captions were taken from: the judge's ceiling):")
	for _, g := range r.Groups {
		fmt.Printf("  %-14s %5d prompts, %5d images", g.Group, g.Prompts, g.Images)
		if g.Retrieval != nil {
			fmt.Printf("; retrieval %.2f%% (chance %.2f%%)", 100*g.Retrieval.Rate, 100*g.RetrievalChance)
		}
		names := make([]string, 0, len(g.Judges))
		for name := range g.Judges {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			j := g.Judges[name]
			fmt.Printf("; %s %.2f%% of images (%d/%d), %.2f%% of prompts", name, 100*j.Images.Rate, j.Images.Correct, j.Images.N, 100*j.Prompts.Rate)
			if j.Real != nil {
				fmt.Printf(" (of their real images %.2f%%)", 100*j.Real.Rate)
			}
		}
		fmt.Println()
	}
	shown := 0
	for _, p := range r.Prompts {
		var want, got []string
		wrong := false
		for _, name := range slices.Sorted(maps.Keys(p.Want)) {
			wrong = wrong || 2*p.Right[name] <= p.Images
			want = append(want, name+" "+p.Want[name])
			got = append(got, name+" "+strings.Join(p.Got[name], ", "))
		}
		if !wrong || shown == 8 {
			continue
		}
		shown++
		fmt.Printf("    %s %q: want %s; got %s\n", p.Group, p.Prompt, strings.Join(want, ", "), strings.Join(got, "; "))
	}
}

// setMatchParams reads --match-params: a parameter count, or a checkpoint
// whose count the new run matches in size (recipe.MultimodalParams).
func setMatchParams(o *recipe.MultimodalOptions, value string, depthSet bool) error {
	switch {
	case depthSet:
		return errors.New("--match-params sets the depth: give it or --depth, not both")
	case o.Resume:
		return errors.New("--match-params is for a new run: a resumed run keeps its saved depth")
	}
	if n, err := strconv.Atoi(value); err == nil {
		if n < 1 {
			return fmt.Errorf("--match-params %d: want a positive parameter count or a checkpoint folder", n)
		}
		o.MatchParams = n
		return nil
	}
	n, err := recipe.MultimodalParams(value)
	if err != nil {
		return fmt.Errorf("--match-params: %w", err)
	}
	o.MatchParams = n
	return nil
}

// judgeMinAccuracy is how much of the real test canvases a judge must read
// right before it judges anything (docs/DESIGN.md §11).
const judgeMinAccuracy = 0.98

// canvasJudge loads the canvas judge in dir (default: the shipped
// judge-DATA) on the backend named by backendArg and checks it first on
// every real test canvas: below judgeMinAccuracy it is refused.
func canvasJudge(ctx context.Context, backendArg, dir, data string, test *data.Dataset) (evaluate.Judge, error) {
	if dir == "" {
		var err error
		if dir, err = weightsDir("judge-" + data); err != nil {
			return evaluate.Judge{}, err
		}
	}
	b, _, err := openBackend(backendArg)
	if err != nil {
		return evaluate.Judge{}, err
	}
	judge, err := evaluate.LoadJudge(b, dir)
	if err != nil {
		return evaluate.Judge{}, err
	}
	acc, err := judge.Check(ctx, test, test.N, judgeMinAccuracy)
	if err != nil {
		return evaluate.Judge{}, fmt.Errorf("judge %s: %w", dir, err)
	}
	fmt.Fprintf(os.Stderr, "judge %s reads %.2f%% of the %d real test canvases right\n", dir, 100*acc, test.N)
	return judge, nil
}
