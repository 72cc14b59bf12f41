package recipe

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"time"

	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/speech"
	"github.com/latentlm/latentlm/speechvae"
	"github.com/latentlm/latentlm/train"
	"github.com/latentlm/latentlm/vae"
	"github.com/latentlm/latentlm/valle"
)

// VALLEOptions are the settings of VALLE, the options of `latentlm train
// --task valle`. Options.Data is the speech cache folder.
type VALLEOptions struct {
	Options
	// Set is the text set: "numbers", "sentences" or "both".
	Set string
	// Codec is the residual-VQ speech codec (`speech-vae train --kind
	// rvq`); there is no shipped one, so it is required.
	Codec string
	// PromptSeconds crops each voice prompt to a random window of this
	// length (0: whole utterances), as TTSOptions.PromptSeconds.
	PromptSeconds float64
	// Limit trains on the first Limit utterances of each voice (0: all).
	Limit int
	// Dim, Depth and Heads are the width, blocks and heads of each of the
	// AR and the NAR (the TTS model's backbone by default).
	Dim, Depth, Heads int
	// SeqLen is max_len (0: the longest sequence of the data).
	SeqLen int
	EMA    float64
	// Align is the weight of the AR's guided attention term (valle.Config.Losses;
	// 0: none), the one TTSOptions.Align gives LatentLM.
	Align float64
	// Reading is how the baseline reads its text: tts.ReadCharacters (the
	// default) or tts.ReadPhonemes, as TTSOptions.Reading.
	Reading string
	// TrainGFLOP, when above 0, sets Steps to the steps whose counted work
	// ("train_gflop") is nearest this many GFLOP, as TTSOptions.TrainGFLOP.
	TrainGFLOP float64
}

// DefaultVALLEOptions are the defaults of `latentlm train --task valle`:
// the TTS model's backbone (d192 × 4 blocks, 4 heads) for each of the AR
// and the NAR, its prompts, set, batch, learning rate, steps and guided
// attention weight.
func DefaultVALLEOptions() VALLEOptions {
	t := DefaultTTSOptions()
	return VALLEOptions{Options: t.Options, Set: t.Set, Reading: t.Reading, PromptSeconds: t.PromptSeconds, Dim: t.Model.Dim, Depth: t.Model.Depth,
		Heads: t.Model.Heads, EMA: t.EMA, Align: t.Align}
}

// valleCorpus is the training utterances: text ids, codes and voices.
type valleCorpus struct {
	texts   [][]int
	codes   [][][]int32
	voice   []int
	byVoice [][]int
}

// VALLE trains the VALL-E-style discrete baseline (package valle) on the
// training split of the speech cache into o.Out (default
// runs/valle-<set>): the same utterances, prompts (another utterance of
// the voice, cropped) and character texts as TTS, as codes of the codec
// o.Codec, encoded once; every step trains the AR on the first codebook
// and the NAR on one codebook 2…N drawn per utterance.
func VALLE(ctx context.Context, o VALLEOptions) (*Result, error) {
	if err := checkSpeechOptions(o.Set, &o.Reading, o.PromptSeconds, o.Limit, o.SeqLen, o.Align); err != nil {
		return nil, err
	}
	switch {
	case o.Batch < 1:
		return nil, errors.New("batch must be at least 1")
	case o.Codec == "":
		return nil, &OptionError{Option: "codec", Problem: "is required: a residual-VQ speech codec (latentlm speech-vae train --kind rvq)"}
	}
	if o.Out == "" {
		o.Out = filepath.Join("runs", "valle-"+o.Set)
	}
	if o.Resume {
		if err := keepRecorded(o.Out, func(k *keptOptions) {
			k.speechData(&o.Options, &o.Set, &o.Limit)
			k.number("prompt_seconds", &o.PromptSeconds)
			k.number("align", &o.Align)
			k.text("reading", &o.Reading)
		}); err != nil {
			return nil, err
		}
	}
	b, bname, err := openBackend(o.Backend)
	if err != nil {
		return nil, err
	}
	codec, err := speechvae.Load(b, o.Codec)
	if err != nil {
		return nil, err
	}
	defer codec.Close()
	if codec.Config.Kind != vae.VQ {
		return nil, fmt.Errorf("%s is a %s speech tokenizer: the discrete baseline needs a residual-VQ codec (latentlm speech-vae train --kind rvq)", o.Codec, codec.Config.KindName())
	}
	logf(o.Log, "reading the training split of %s\n", o.Data)
	utts, clips, err := LoadSpeech(o.Data, speech.SplitTrain)
	if err != nil {
		return nil, err
	}
	started := time.Now()
	// The model's config but for max_len, which the data decide below.
	probe, err := valle.NewConfig(codec.Config, o.Dim, o.Depth, o.Heads, 8).ReadingAs(o.Reading)
	if err != nil {
		return nil, err
	}
	f, err := probe.Format()
	if err != nil {
		return nil, err
	}
	sel := selectVoices(utts, o.Set, o.Limit)
	corpus := &valleCorpus{voice: sel.voice, byVoice: sel.byVoice}
	for _, i := range sel.index {
		u := utts[i]
		ids, err := f.Text.Encode(u.Text)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", u.File, err)
		}
		codes, err := codec.Codes(clips[i])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", u.File, err)
		}
		corpus.texts, corpus.codes = append(corpus.texts, ids), append(corpus.codes, codes)
	}
	if len(corpus.texts) == 0 {
		return nil, fmt.Errorf("%s: no training utterances of the set %q", o.Data, o.Set)
	}
	logf(o.Log, "encoded %d utterances in %d voices into codes (%.0f s)\n", len(corpus.texts), len(corpus.byVoice), time.Since(started).Seconds())
	promptMax := 0
	if o.PromptSeconds > 0 {
		promptMax = max(1, int(math.Round(o.PromptSeconds*codec.Config.FrameRate())))
	}
	need := 0
	for i := range corpus.texts {
		longest := 0
		for _, j := range corpus.byVoice[corpus.voice[i]] {
			longest = max(longest, len(corpus.codes[j]))
		}
		if promptMax > 0 {
			longest = min(longest, promptMax)
		}
		need = max(need, valle.RowLen(longest, len(corpus.texts[i]), len(corpus.codes[i])))
	}
	if o.SeqLen == 0 {
		o.SeqLen = (need + 7) / 8 * 8
	} else if o.SeqLen < need {
		return nil, &OptionError{Option: "seq-len", Problem: fmt.Sprintf("%d is too short: the longest prompt, text and speech take %d items", o.SeqLen, need)}
	}
	cfg := probe
	cfg.LM.MaxLen = o.SeqLen
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	run, err := train.StartRun(o.Out, valle.Kind, &cfg, o.Seed, o.Resume, o.MemoryLimit, func() float64 {
		return 2 * cfg.LM.TrainBytes(o.Batch, cfg.LM.MaxLen, 1)
	})
	if err != nil {
		return nil, err
	}
	defer run.Finish()
	if cfg.Alphabet != probe.Alphabet {
		return nil, fmt.Errorf("%s: the saved model's text units %q are not those of --reading %s", o.Out, cfg.Alphabet, o.Reading)
	}
	if cfg.Codebooks != codec.Config.Codebooks || cfg.CodebookSize != codec.Config.CodebookSize || cfg.LM.MaxLen < need {
		return nil, fmt.Errorf("%s: the saved model (%d codebooks of %d, max_len %d) does not fit the codec %s and the data (%d of %d, %d items)", o.Out,
			cfg.Codebooks, cfg.CodebookSize, cfg.LM.MaxLen, o.Codec, codec.Config.Codebooks, codec.Config.CodebookSize, need)
	}
	o.SeqLen = cfg.LM.MaxLen
	store := run.Store
	o.Seed = run.Seed
	sum, err := checkpoint.FileSHA256(filepath.Join(o.Codec, checkpoint.WeightsFile))
	if err != nil {
		return nil, err
	}
	codecRec := lm.Tokenizer{Path: o.Codec, SHA256: sum, Kind: codec.Config.KindName(), Channels: codec.Config.Channels, Data: o.Set}
	stepGFLOP := 3 * cfg.ForwardFLOPs(o.Batch, cfg.LM.MaxLen) / 1e9
	if o.TrainGFLOP > 0 {
		if o.Steps, err = budgetSteps(o.TrainGFLOP, func(int64) float64 { return stepGFLOP }); err != nil {
			return nil, err
		}
		logf(o.Log, "a budget of %g GFLOP: %d steps of %.3f GFLOP\n", o.TrainGFLOP, o.Steps, stepGFLOP)
	}
	trc := train.DefaultConfig()
	trc.LR, trc.MinLR, trc.TotalSteps, trc.WarmupSteps, trc.EMADecay = o.LR, o.LR/20, int(o.Steps), 100, o.EMA
	tr, err := train.New(b, store, trc, func(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
		return cfg.TrainingLosses(w, in, o.Align)
	})
	if err != nil {
		return nil, err
	}
	started = time.Now()
	save := func(step int64, h []train.Point) error {
		info := map[string]any{"data": o.Data, "set": o.Set, "steps": step, "backend": bname, "seed": o.Seed, "batch": o.Batch,
			"prompt_seconds": o.PromptSeconds, "align": o.Align, "reading": cfg.Reading, "train_seconds": time.Since(started).Seconds(), "utterances": len(corpus.texts), "limit": o.Limit,
			"train_gflop": stepGFLOP * float64(step), "tokenizer": codecRec}
		return run.Save(func(dir string) error { return valle.Save(dir, cfg, store, info) }, h, step)
	}
	metrics := []string{"ar", "nar"}
	if o.Align > 0 {
		metrics = append(metrics, "align")
	}
	loop := &train.Loop{
		Trainer: tr, Store: store, Steps: o.Steps, Deadline: o.Deadline, History: run.History, Every: o.SaveEvery, Hook: save,
		Desc: "valle " + o.Set, Quiet: o.Quiet, RecordEvery: 10, Metrics: metrics,
		Batch: func(step int64) ([]any, int, error) {
			return corpus.batch(f, cfg, o, promptMax, step)
		},
	}
	if err := run.Train(ctx, loop); err != nil {
		return nil, err
	}
	if err := writeTermsPlot(filepath.Join(o.Out, "loss.png"), "VALL-E-style baseline training loss ("+o.Set+")", loop.History, loop.Metrics); err != nil {
		return nil, err
	}
	logf(o.Log, "saved %s (%d steps in %s)\n", o.Out, loop.Steps, time.Since(started).Round(time.Second))
	return &Result{Dir: o.Out, History: loop.History}, nil
}

// batch lays out the inputs of one step from (seed, step) only, so that a
// resumed run sees the same data, as ttsCorpus.batch: random utterances,
// each with another utterance of its voice as the prompt (cropped to
// promptMax frames), and a NAR stage 1…N−1 per utterance.
func (c *valleCorpus) batch(f valle.Format, cfg valle.Config, o VALLEOptions, promptMax int, step int64) ([]any, int, error) {
	rng := rand.New(rand.NewPCG(o.Seed, uint64(step)))
	utts := make([]valle.Utterance, o.Batch)
	stages := make([]int, o.Batch)
	for i := range utts {
		k := rng.IntN(len(c.texts))
		same := c.byVoice[c.voice[k]]
		p := k
		if len(same) > 1 {
			for p == k {
				p = same[rng.IntN(len(same))]
			}
		}
		prompt := c.codes[p]
		if promptMax > 0 && len(prompt) > promptMax {
			off := rng.IntN(len(prompt) - promptMax + 1)
			prompt = prompt[off : off+promptMax]
		}
		utts[i] = valle.Utterance{Text: c.texts[k], Prompt: prompt, Speech: c.codes[k]}
		stages[i] = 1 + rng.IntN(cfg.Codebooks-1)
	}
	l := o.SeqLen
	ar, err := f.PackAR(utts, l)
	if err != nil {
		return nil, 0, err
	}
	nar, err := f.PackNAR(utts, stages, l)
	if err != nil {
		return nil, 0, err
	}
	var guide []float32
	if o.Align > 0 {
		guide = f.ARGuide(utts, l)
	}
	return valle.TrainingInputs(ar, nar, guide), ar.TargetsNum + nar.TargetsNum, nil
}
