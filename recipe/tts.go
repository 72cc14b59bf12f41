package recipe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/speech"
	"github.com/latentlm/latentlm/speechvae"
	"github.com/latentlm/latentlm/train"
	"github.com/latentlm/latentlm/tts"
	"github.com/latentlm/latentlm/vae"
)

// TTSOptions are the settings of TTS, the options of `latentlm train
// --task tts`. Options.Data is the speech cache folder (built by
// `latentlm speech data`).
type TTSOptions struct {
	Options
	// Set is the text set to train on: "numbers", "sentences" or "both".
	Set string
	// Reading is how the model reads its text: tts.ReadCharacters (the
	// default) or tts.ReadPhonemes.
	Reading string
	// SpeechVAE is the speech tokenizer ("": the shipped weights/speech-vae).
	SpeechVAE string
	// PromptSeconds crops each voice prompt to a random window of this
	// length (0: whole utterances).
	PromptSeconds float64
	// TextDropout is the probability that a sequence's text is replaced by
	// null tokens, for classifier-free guidance.
	TextDropout float64
	// Limit trains on the first Limit utterances of each voice only (0:
	// all), for quick runs.
	Limit int
	// Timbres is a cache of other voices (`latentlm speech data
	// --timbres`: speech.Timbres) whose training utterances of the set
	// join the data as voices of their own ("" for none): more speakers to
	// take a voice from a prompt, for the held-out voice's sake (zero-shot
	// cloning, the paper's §3.3). They read the same English texts by
	// their own languages' rules, so a voice's prompt also tells how it
	// reads. They are encoded by the data's speech tokenizer.
	Timbres string
	// Init starts a new run from the weights of another text-to-speech
	// checkpoint, wherever a weight of the same name has the same shape,
	// with a fresh optimiser and learning-rate schedule (a warm restart
	// that needs no optimiser state, such as from the shipped weights/tts).
	// It must have been trained on the same speech tokenizer.
	Init string
	// SnapshotEvery also keeps the weights every this many steps, and at
	// the last, in Out/step-NNNNNN (0: never), so that one run's steps can
	// be scored apart (`latentlm eval --task tts --model Out/step-NNNNNN`).
	SnapshotEvery int64
	// Model is the backbone; vocabulary, latent width and max_len are set
	// here (max_len from SeqLen). A resumed run uses the saved one.
	Model lm.Config
	// SeqLen is the sequence length (max_len; 0: the longest sequence of
	// the data).
	SeqLen int
	// BatchMul is the number of noise draws per latent frame.
	BatchMul int
	// DiffusionWeight is λ of 𝓛_CE + λ·𝓛_diff.
	DiffusionWeight float64
	// InputNoise is the standard deviation of Gaussian noise added to the
	// latent frames the backbone reads, not to its targets (tts.Losses): 0
	// for none.
	InputNoise float64
	// Align is the weight of the guided attention term (tts.Format.Guide,
	// tts.Losses): 0 for none.
	Align float64
	EMA   float64
	// Stack is how many of the speech tokenizer's frames the model reads
	// and writes as one (tts.Format.Stacked; 0 or 1: one).
	Stack int
	// TrainGFLOP, when above 0, sets Steps to the steps whose counted work
	// ("train_gflop", which follows the speech frames each step draws) is
	// nearest this many GFLOP: the budget of the comparison with the
	// VALL-E-style baseline at equal training compute (VALLEOptions.TrainGFLOP).
	TrainGFLOP float64
}

// DefaultTTSOptions are the defaults of `latentlm train --task tts`: the
// spoken numbers, prompts of 3 s, text dropout 0.1, input noise 1 (without
// it the model continues the speech it reads and hardly reads the text;
// docs/RESULTS.md, "Teacher forcing"), guided attention of weight 1 (with
// it the lengths of held-out texts come out right; docs/RESULTS.md,
// "Guided attention"), the v target, and a model the size of the
// class-conditional one with a 192-wide backbone.
func DefaultTTSOptions() TTSOptions {
	cfg := lm.DefaultConfig()
	cfg.Dim, cfg.Heads, cfg.KVHeads, cfg.Depth = 192, 4, 4, 4
	cfg.Target = tts.Target
	cfg.Layout = lm.LayoutBOL
	return TTSOptions{
		Options: Options{Steps: 3000, SaveEvery: 250, Batch: 16, LR: 1e-3, Seed: 1},
		Set:     speech.SetNumbers, PromptSeconds: 3, TextDropout: 0.1, Model: cfg, BatchMul: 4, DiffusionWeight: 1, InputNoise: 1, Align: 1, EMA: 0.999,
	}
}

// TTSSets are the values of TTSOptions.Set.
var TTSSets = []string{speech.SetNumbers, speech.SetSentences, speech.SetBoth}

// ttsCorpus is the training utterances as the mixer draws them: each one's
// text (model ids), σ-VAE means, voice, and every voice's utterances.
type ttsCorpus struct {
	texts   [][]int
	frames  [][][]float32
	voice   []int
	byVoice [][]int
	scale   []float32 // the per-channel noise scale of every frame
}

// checkReading checks that *reading is a way a speech model can read its
// text (tts.ReadCharacters or tts.ReadPhonemes), setting an empty one to
// the default, characters.
func checkReading(reading *string) error {
	if *reading == "" {
		*reading = tts.ReadCharacters
	}
	if *reading != tts.ReadCharacters && *reading != tts.ReadPhonemes {
		return &OptionError{Option: "reading", Problem: fmt.Sprintf("%q: want %s or %s", *reading, tts.ReadCharacters, tts.ReadPhonemes)}
	}
	return nil
}

// checkSpeechOptions checks the options LatentLM's text-to-speech recipe
// and the discrete baseline share, so that both refuse a value alike and
// name its flag: the text set, how the text is read (an empty reading
// becomes the default), the prompt length, the data limits and the guided
// attention weight.
func checkSpeechOptions(set string, reading *string, promptSeconds float64, limit, seqLen int, align float64) error {
	if !slices.Contains(TTSSets, set) {
		return &OptionError{Option: "set", Problem: fmt.Sprintf("%q is an unknown text set: want numbers, sentences or both", set)}
	}
	if err := checkReading(reading); err != nil {
		return err
	}
	switch {
	case !(promptSeconds >= 0 && promptSeconds <= 60):
		return &OptionError{Option: "prompt-seconds", Problem: fmt.Sprintf("%g is out of range 0…60", promptSeconds)}
	case limit < 0:
		return &OptionError{Option: "limit", Problem: fmt.Sprintf("%d is negative", limit)}
	case seqLen < 0:
		return &OptionError{Option: "seq-len", Problem: fmt.Sprintf("%d is negative", seqLen)}
	case !(align >= 0 && align <= 1e6):
		return &OptionError{Option: "align", Problem: fmt.Sprintf("%g is out of range 0…1e6", align)}
	}
	return nil
}

// TTS trains LatentLM's text-to-speech model (package tts; the paper's
// §3.3) on the training split of the speech cache o.Data into o.Out
// (default runs/tts-<set>): every sequence is a voice prompt (another
// utterance of the same voice, cropped), the text in characters or
// phonemes (o.Reading) and the utterance's speech latents, encoded once by
// the speech tokenizer (their σ-VAE means; the noise is redrawn every step
// as for images).
func TTS(ctx context.Context, o TTSOptions) (*Result, error) {
	if err := checkSpeechOptions(o.Set, &o.Reading, o.PromptSeconds, o.Limit, o.SeqLen, o.Align); err != nil {
		return nil, err
	}
	if o.Batch < 1 || o.BatchMul < 1 {
		return nil, errors.New("batch and batch-mul must be at least 1")
	}
	switch {
	case !(o.TextDropout >= 0 && o.TextDropout < 1):
		return nil, errors.New("text dropout must be in [0, 1)")
	case !(o.DiffusionWeight >= 0):
		return nil, errors.New("the diffusion weight must be ≥ 0")
	case !(o.InputNoise >= 0 && o.InputNoise <= 100):
		return nil, errors.New("the input noise must be in [0, 100]")
	case o.Stack < 0 || o.Stack > 16:
		return nil, errors.New("stack must be in [0, 16]")
	}
	if o.Out == "" {
		o.Out = filepath.Join("runs", "tts-"+o.Set)
	}
	if o.Resume {
		if err := keepRecorded(o.Out, func(k *keptOptions) {
			k.speechData(&o.Options, &o.Set, &o.Limit)
			k.path("timbres", &o.Timbres)
			k.text("reading", &o.Reading)
			k.count("batch_mul", &o.BatchMul)
			k.number("text_dropout", &o.TextDropout)
			k.number("diffusion_weight", &o.DiffusionWeight)
			k.number("input_noise", &o.InputNoise)
			k.number("align", &o.Align)
			k.number("ema", &o.EMA)
			k.number(tts.Kind+".prompt_seconds", &o.PromptSeconds)
			k.count(tts.Kind+".stack", &o.Stack)
		}); err != nil {
			return nil, err
		}
	}
	if o.Timbres != "" { // before the data is read and encoded
		if err := checkTimbres(o.Timbres); err != nil {
			return nil, err
		}
	}
	b, bname, err := openBackend(o.Backend)
	if err != nil {
		return nil, err
	}
	lat, err := ttsLatents(ctx, b, o)
	if err != nil {
		return nil, err
	}
	tok := lat.Tokenizer
	sc := tok.Config
	corpora := []*speechvae.Corpus{lat}
	if o.Timbres != "" {
		more, err := timbreLatents(ctx, b, o, tok)
		if err != nil {
			return nil, err
		}
		corpora = append(corpora, more)
	}
	f, err := tts.NewReadingFormat(o.Reading, sc.Channels, sc.FrameRate())
	if err != nil {
		return nil, err
	}
	if o.Stack > 1 {
		if f, err = f.Stacked(o.Stack); err != nil {
			return nil, err
		}
	}
	corpus, err := newTTSCorpus(f, o, corpora...)
	if err != nil {
		return nil, err
	}
	promptMax := 0
	if o.PromptSeconds > 0 {
		promptMax = max(1, int(math.Round(o.PromptSeconds*f.FrameRate)))
	}
	longest := make([]int, len(corpus.byVoice)) // each voice's longest prompt
	for v, idx := range corpus.byVoice {
		for _, j := range idx {
			longest[v] = max(longest[v], len(corpus.frames[j]))
		}
		if promptMax > 0 {
			longest[v] = min(longest[v], promptMax)
		}
	}
	need := 0
	for i := range corpus.texts {
		need = max(need, tts.RowLen(longest[corpus.voice[i]], len(corpus.texts[i]), len(corpus.frames[i])))
	}
	if o.SeqLen == 0 {
		o.SeqLen = (need + 7) / 8 * 8
	} else if o.SeqLen < need {
		return nil, &OptionError{Option: "seq-len", Problem: fmt.Sprintf("%d is too short: the longest prompt, text and speech take %d items", o.SeqLen, need)}
	}
	o.Model.Vocab = f.Vocab
	o.Model.Latent = f.Channels
	o.Model.MaxLen = o.SeqLen
	o.Model.Layout = lm.LayoutBOL
	cfg := o.Model
	if o.Resume {
		if o.Init, err = resumedInit(o.Out, o.Init); err != nil {
			return nil, err
		}
	}
	run, err := train.StartRun(o.Out, tts.Kind, &cfg, o.Seed, o.Resume, o.MemoryLimit, func() float64 {
		var dataset float64
		for _, fr := range corpus.frames {
			dataset += float64(len(fr)*f.Channels) * 4
		}
		return dataset + cfg.TrainBytes(o.Batch, cfg.MaxLen, o.BatchMul)
	})
	if err != nil {
		return nil, err
	}
	defer run.Finish()
	if cfg.Vocab != f.Vocab || cfg.Latent != f.Channels {
		return nil, fmt.Errorf("%s: the saved model (vocabulary %d, %d channels) does not match the alphabet and speech tokenizer (%d, %d)", o.Out, cfg.Vocab.Size(), cfg.Latent, f.Vocab.Size(), f.Channels)
	}
	if o.SeqLen = cfg.MaxLen; o.SeqLen < need {
		return nil, fmt.Errorf("%s: the saved max_len %d is shorter than the longest sequence (%d items)", o.Out, cfg.MaxLen, need)
	}
	store := run.Store
	o.Seed = run.Seed
	sum := tok.SHA256
	tokRec := lm.Tokenizer{Path: tok.Path, SHA256: sum, Kind: sc.Kind.String(), Channels: sc.Channels, Data: o.Set}
	if o.Init != "" && train.StepCount(store) == 0 {
		copied, total, initTok, err := initFrom(store, o.Init, tts.Kind)
		if err != nil {
			return nil, err
		}
		if !sharesLatents(tok.Path, sum, initTok.SHA256) {
			return nil, fmt.Errorf("--init %s was trained on the speech tokenizer %s (sha256 %.12s…), not on %s (%.12s…): its weights read other latents", o.Init, initTok.Path, initTok.SHA256, tok.Path, sum)
		}
		logf(o.Log, "started %d of %d weights from %s\n", copied, total, o.Init)
	}
	rec := tts.Record{Alphabet: f.AlphabetString(), Reading: f.Reading, FrameRate: f.FrameRate, PromptSeconds: o.PromptSeconds, Stack: f.Stack}

	if o.TrainGFLOP > 0 {
		if o.Steps, err = budgetSteps(o.TrainGFLOP, func(step int64) float64 {
			return corpus.trainGFLOP(cfg, o, promptMax, step, step+1)
		}); err != nil {
			return nil, err
		}
		logf(o.Log, "a budget of %g GFLOP: %d steps\n", o.TrainGFLOP, o.Steps)
	}
	sched := diffusion.Cosine(1000)
	lambda, kind := o.DiffusionWeight, sc.Kind
	trc := train.DefaultConfig()
	trc.LR, trc.MinLR, trc.TotalSteps, trc.WarmupSteps, trc.EMADecay = o.LR, o.LR/20, int(o.Steps), 100, o.EMA
	tr, err := train.New(b, store, trc, func(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
		var guide *Node
		if o.Align > 0 {
			guide = in[8]
		}
		return tts.Losses(scope, w, cfg, kind, sched, o.BatchMul, lambda, o.InputNoise, o.Align, in[0], in[1], in[2], in[3], in[4], in[5], in[6], in[7], guide)
	})
	if err != nil {
		return nil, err
	}
	started := time.Now()
	var gflop float64 // the work of steps [0, counted), added to at each save
	var counted int64
	// loop.Steps is the run's last step: o.Steps, or where --time ends it.
	var loop *train.Loop
	save := func(step int64, h []train.Point) error {
		gflop += corpus.trainGFLOP(cfg, o, promptMax, counted, step)
		counted = step
		info := map[string]any{"data": o.Data, "set": o.Set, "reading": f.Reading, "steps": step, "backend": bname, "seed": o.Seed,
			"train_seconds": time.Since(started).Seconds(), "batch": o.Batch, "batch_mul": o.BatchMul,
			"text_dropout": o.TextDropout, "diffusion_weight": lambda, "input_noise": o.InputNoise, "align": o.Align, "ema": o.EMA, "utterances": len(corpus.texts), "limit": o.Limit,
			"timbres": o.Timbres, "voices": len(corpus.byVoice),
			"train_gflop": gflop}
		if o.Init != "" { // a continuation: its weights began as these
			info[checkpoint.InitKey] = o.Init
		}
		write := func(dir string) error { return tts.Save(dir, cfg, store, tokRec, rec, info) }
		if err := run.Save(write, h, step); err != nil {
			return err
		}
		if snapshotDue(o.SnapshotEvery, step, loop.Steps) {
			return keepSnapshot(o.Out, step, write)
		}
		return nil
	}
	metrics := []string{"ce", "diff"}
	if o.Align > 0 {
		metrics = append(metrics, "align")
	}
	loop = &train.Loop{
		Trainer: tr, Store: store, Steps: o.Steps, Deadline: o.Deadline, History: run.History, Every: hookEvery(o.SaveEvery, o.SnapshotEvery), Hook: save,
		Desc: "tts " + o.Set, Quiet: o.Quiet, RecordEvery: 10, Metrics: metrics,
		Batch: func(step int64) ([]any, int, error) {
			bt, err := corpus.batch(f, o, promptMax, step)
			if err != nil {
				return nil, 0, err
			}
			return bt.Inputs(f.Channels), bt.Tokens + bt.Continues + bt.LatentItems, nil
		},
	}
	if err := run.Train(ctx, loop); err != nil {
		return nil, err
	}
	if err := writeTermsPlot(filepath.Join(o.Out, "loss.png"), "text-to-speech training loss ("+o.Set+")", loop.History, loop.Metrics); err != nil {
		return nil, err
	}
	logf(o.Log, "saved %s (%d steps in %s)\n", o.Out, loop.Steps, time.Since(started).Round(time.Second))
	return &Result{Dir: o.Out, History: loop.History}, nil
}

// ttsLatents is the training corpus: read from o.Data when it names a
// corpus file (`latentlm speech-vae encode-data`; its tokenizer must be
// o.SpeechVAE's when that is given), else encoded now from the training
// split of the speech cache o.Data by o.SpeechVAE (default the shipped
// weights/speech-vae), only the utterances o's set and limit keep.
func ttsLatents(ctx context.Context, b compute.Backend, o TTSOptions) (*speechvae.Corpus, error) {
	if isSpeechCorpus(o.Data) {
		lat, err := speechvae.LoadCorpus(o.Data)
		if err != nil {
			return nil, err
		}
		if lat.Split != speech.SplitTrain {
			return nil, fmt.Errorf("%s holds the %q split of %s: text-to-speech trains on the training split", o.Data, lat.Split, lat.Data)
		}
		if o.SpeechVAE != "" {
			sum, err := checkpoint.FileSHA256(filepath.Join(o.SpeechVAE, checkpoint.WeightsFile))
			if err != nil {
				return nil, err
			}
			if !sharesLatents(o.SpeechVAE, sum, lat.Tokenizer.SHA256) {
				return nil, fmt.Errorf("%s was encoded by the speech tokenizer %s (sha256 %.12s…), not by --speech-vae %s (%.12s…)", o.Data, lat.Tokenizer.Path, lat.Tokenizer.SHA256, o.SpeechVAE, sum)
			}
		}
		logf(o.Log, "read %d encoded utterances from %s\n", len(lat.Utterances), o.Data)
		return lat, checkTTSTokenizer(lat.Tokenizer.Config, o.Data)
	}
	started := time.Now()
	lat, err := encodeSpeechSplit(ctx, b, o.SpeechVAE, o.Data, speech.SplitTrain, o.Log, o.kept, checkTTSTokenizer)
	if err != nil {
		return nil, err
	}
	logf(o.Log, "encoded %d utterances into latent frames (%.0f s)\n", len(lat.Utterances), time.Since(started).Seconds())
	return lat, nil
}

// kept is the utterances of utts that o trains on: those of its set, the
// first o.Limit of each voice.
func (o TTSOptions) kept(utts []speech.Utterance) []int {
	return selectVoices(utts, o.Set, o.Limit).index
}

// timbreLatents is the training utterances of o's set in the timbres
// o.Timbres, encoded by the tokenizer tok that encoded the data, whose
// latents they must share.
func timbreLatents(ctx context.Context, b compute.Backend, o TTSOptions, tok speechvae.CorpusTokenizer) (*speechvae.Corpus, error) {
	started := time.Now()
	more, err := encodeSpeechSplit(ctx, b, tok.Path, o.Timbres, speech.SplitTrain, o.Log, o.kept, checkTTSTokenizer)
	if err != nil {
		return nil, fmt.Errorf("the timbres: %w", err)
	}
	if !sharesLatents(tok.Path, more.Tokenizer.SHA256, tok.SHA256) {
		return nil, fmt.Errorf("the timbres: the speech tokenizer %s (sha256 %.12s…) no longer writes the latents of the data (%.12s…)", tok.Path, more.Tokenizer.SHA256, tok.SHA256)
	}
	logf(o.Log, "encoded %d utterances of %s into latent frames (%.0f s)\n", len(more.Utterances), o.Timbres, time.Since(started).Seconds())
	return more, nil
}

// checkTTSTokenizer refuses tokenizers text-to-speech cannot train on.
func checkTTSTokenizer(cfg speechvae.Config, where string) error {
	if cfg.Kind == vae.VAE {
		return fmt.Errorf("speech tokenizer of %s is a plain VAE: text-to-speech trains on σ-VAE (or AE) tokenizers, whose noise scale needs no posterior variances", where)
	}
	return nil
}

// isSpeechCorpus says whether a --data argument names a corpus file of
// encoded speech (speechvae.Corpus) rather than a speech cache folder.
func isSpeechCorpus(path string) bool { return strings.HasSuffix(path, ".safetensors") }

// encodeSpeechSplit reads a split of the speech cache data and encodes the
// utterances keep picks (nil: all) with the tokenizer at tokDir (default
// the shipped weights/speech-vae), after check accepts its config.
func encodeSpeechSplit(ctx context.Context, b compute.Backend, tokDir, data, split string, log io.Writer, keep func([]speech.Utterance) []int, check func(speechvae.Config, string) error) (*speechvae.Corpus, error) {
	if tokDir == "" {
		var err error
		if tokDir, err = shippedWeights("speech-vae"); err != nil {
			return nil, fmt.Errorf("no speech tokenizer: %w (train one with `latentlm speech-vae train` and name it with --speech-vae)", err)
		}
	}
	sp, err := speechvae.Load(b, tokDir)
	if err != nil {
		return nil, err
	}
	defer sp.Close()
	if err := check(sp.Config, tokDir); err != nil {
		return nil, err
	}
	sum, err := checkpoint.FileSHA256(filepath.Join(tokDir, checkpoint.WeightsFile))
	if err != nil {
		return nil, err
	}
	logf(log, "reading the %s split of %s\n", split, data)
	utts, clips, err := LoadSpeech(data, split)
	if err != nil {
		return nil, err
	}
	if keep != nil {
		idx := keep(utts)
		u2, c2 := make([]speech.Utterance, len(idx)), make([][]float32, len(idx))
		for j, i := range idx {
			u2[j], c2[j] = utts[i], clips[i]
		}
		utts, clips = u2, c2
	}
	return speechvae.EncodeCorpus(ctx, sp, tokDir, sum, data, split, utts, clips, log)
}

// newTTSCorpus keeps the utterances of o's set (the first o.Limit of each
// voice) of every corpus, each corpus's voices apart from the others', and
// spells their texts. The first corpus is the data, whose tokenizer gives
// the noise scale.
func newTTSCorpus(f tts.Format, o TTSOptions, corpora ...*speechvae.Corpus) (*ttsCorpus, error) {
	c := &ttsCorpus{scale: make([]float32, f.Channels)}
	tok := corpora[0].Tokenizer
	if tok.Config.Kind == vae.Sigma {
		// z′ = (μ + σ·ε − mean)/std with σ = C_σ·|N(0,1)| per sequence:
		// in normalised units the noise scale is C_σ/std per channel, and
		// vae.Config.Redraw draws the |N(0,1)| (vae.Model.EncodeMoments).
		for k := range c.scale { // a stacked frame repeats the channels
			c.scale[k] = float32(tok.Config.CSigma) / tok.Std[k%len(tok.Std)]
		}
	}
	for _, lat := range corpora {
		sel := selectVoices(lat.Utterances, o.Set, o.Limit)
		first, base := len(c.byVoice), len(c.texts)
		for _, idx := range sel.byVoice {
			moved := make([]int, len(idx))
			for j, k := range idx {
				moved[j] = base + k
			}
			c.byVoice = append(c.byVoice, moved)
		}
		for j, i := range sel.index {
			u := lat.Utterances[i]
			ids, err := f.Encode(u.Text)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", u.File, err)
			}
			c.texts = append(c.texts, ids)
			c.frames = append(c.frames, f.StackFrames(lat.Frames[i]))
			c.voice = append(c.voice, first+sel.voice[j])
		}
	}
	if len(c.texts) == 0 {
		return nil, fmt.Errorf("%s: no training utterances of the set %q", o.Data, o.Set)
	}
	return c, nil
}

// ttsPick is one sequence of a step: utterance k, spoken after a prompt
// cut from utterance p at frame off (length promptMax, or all of it), its
// text dropped or not.
type ttsPick struct {
	k, p, off int
	drop      bool
}

// picks draws the sequences of one step from (seed, step) only, so a
// resumed run sees the same data: for each, a random utterance; as its
// prompt another random utterance of the same voice (itself only if the
// voice has no other), cropped to a random window of promptMax frames;
// and whether its text is dropped.
func (c *ttsCorpus) picks(o TTSOptions, promptMax int, step int64) []ttsPick {
	rng := rand.New(rand.NewPCG(o.Seed, uint64(step)))
	out := make([]ttsPick, o.Batch)
	for i := range out {
		k := rng.IntN(len(c.texts))
		same := c.byVoice[c.voice[k]]
		p := k
		if len(same) > 1 {
			for p == k {
				p = same[rng.IntN(len(same))]
			}
		}
		off := 0
		if n := len(c.frames[p]); promptMax > 0 && n > promptMax {
			off = rng.IntN(n - promptMax + 1)
		}
		out[i] = ttsPick{k: k, p: p, off: off, drop: rng.Float64() < o.TextDropout}
	}
	return out
}

// batch lays out the sequences of one step (picks).
func (c *ttsCorpus) batch(f tts.Format, o TTSOptions, promptMax int, step int64) (*tts.Batch, error) {
	picks := c.picks(o, promptMax, step)
	rows := make([]tts.Row, len(picks))
	for i, pk := range picks {
		prompt := c.frames[pk.p]
		if promptMax > 0 && len(prompt) > promptMax {
			prompt = prompt[pk.off : pk.off+promptMax]
		}
		rows[i] = f.TrainingRow(prompt, c.texts[pk.k], c.frames[pk.k], c.scale, pk.drop)
	}
	b, err := f.Pack(rows, o.SeqLen)
	if err == nil && o.Align > 0 {
		b.Guide = f.Guide(rows, o.SeqLen)
	}
	return b, err
}

// trainGFLOP counts the matmul work of steps [from, to) (3× the forward
// pass, lm.Config.ForwardFLOPsRows): every step's diffusion head ran on
// its speech frames, padded as lm.HeadRows pads them, which the picks give
// without laying the batches out again.
func (c *ttsCorpus) trainGFLOP(cfg lm.Config, o TTSOptions, promptMax int, from, to int64) float64 {
	var flops float64
	limit := o.Batch * (o.SeqLen - 1)
	for step := from; step < to; step++ {
		frames := 0
		for _, pk := range c.picks(o, promptMax, step) {
			frames += len(c.frames[pk.k])
		}
		flops += 3 * cfg.ForwardFLOPsRows(o.Batch, o.SeqLen, lm.HeadRowBucket(frames, limit), o.BatchMul)
	}
	return flops / 1e9
}

// voiceSelection is the training utterances of a text set, the first
// limit of each voice (0: all), grouped by voice in the order the voices
// first appear: what both speech recipes, LatentLM's text-to-speech and
// the VALL-E-style baseline, train on, so that they are compared on the
// same data.
type voiceSelection struct {
	index   []int   // of each kept utterance, into the utterances
	voice   []int   // the voice number of each kept utterance
	byVoice [][]int // each voice's kept utterances, as positions in index
}

func selectVoices(utts []speech.Utterance, set string, limit int) voiceSelection {
	var sel voiceSelection
	voices := map[string]int{}
	count := map[string]int{}
	for i, u := range utts {
		if (set != speech.SetBoth && u.Set != set) || (limit > 0 && count[u.Voice] >= limit) {
			continue
		}
		count[u.Voice]++
		v, ok := voices[u.Voice]
		if !ok {
			v = len(sel.byVoice)
			voices[u.Voice] = v
			sel.byVoice = append(sel.byVoice, nil)
		}
		sel.byVoice[v] = append(sel.byVoice[v], len(sel.index))
		sel.index = append(sel.index, i)
		sel.voice = append(sel.voice, v)
	}
	return sel
}

// sharesLatents reports whether the speech tokenizer whose weights have
// checksum sum, found in dir, writes the latents of the one whose weights
// have checksum want (checkpoint.SharesLatents). dir must still hold the
// weights of checksum sum for its lineage to count.
func sharesLatents(dir, sum, want string) bool {
	if sum == want {
		return true
	}
	own, ok, err := checkpoint.SharesLatents(dir, want)
	return err == nil && own == sum && ok
}
