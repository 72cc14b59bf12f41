package recipe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/internal/parallel"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/speech"
	"github.com/latentlm/latentlm/speechvae"
	"github.com/latentlm/latentlm/train"
	"github.com/latentlm/latentlm/vae"
	"github.com/latentlm/latentlm/wav"
)

// SpeechTokenizerOptions are the settings of SpeechTokenizer, the options
// of `latentlm speech-vae train`. Options.Data is the speech cache folder
// (built by `latentlm speech data`).
type SpeechTokenizerOptions struct {
	Options
	// Crop is the length of the training clips in latent frames (32 is
	// 1.28 s at 25 Hz); shorter utterances are padded with silence.
	Crop int
	// Model is the tokenizer; a resumed run uses the saved one, and a run
	// from Init that one's, with Model.AdvWeight alone taken from here.
	Model speechvae.Config
	// Init is a speech tokenizer whose config and weights a new run
	// starts from ("" for fresh weights).
	Init string
	// DecoderOnly trains the decoder (and the discriminator, if any) of
	// Init alone. The encoder and the latent statistics stay Init's, so
	// the latents do too: every model trained on Init's latents reads the
	// new tokenizer unchanged (checkpoint.SameLatentsKey), and a better
	// decoder improves them all without retraining them.
	DecoderOnly bool
	// SnapshotEvery also keeps the tokenizer every this many steps, and at
	// the last, in Out/step-NNNNNN, each with its latent statistics, so
	// that a run's steps can be compared on the validation split
	// (`speech-vae eval --split valid`): training the decoder longer trades
	// the held-out voice for the training voices' words (docs/RESULTS.md).
	SnapshotEvery int64
	// SpeedPerturb is the probability that a training clip is played at
	// another speed (speedPerturbRates): its pitch, formants and tempo
	// move as another speaker's would, so that six voices teach the
	// decoder more than six voices (0: every clip as recorded).
	SpeedPerturb float64
	// Timbres is a cache of other voices (`latentlm speech data
	// --timbres`: speech.Timbres) whose training clips are mixed into the
	// batches, TimbreShare of them on average, so that the decoder learns
	// to write voices it has not heard rather than six ("" for none). Only
	// the clips are mixed: the latent statistics stay those of Data.
	Timbres     string
	TimbreShare float64
}

// checkTimbres says how to build the timbres when dir holds none.
func checkTimbres(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, speech.ManifestFile)); err != nil {
		return fmt.Errorf("no timbres in %s: build them with latentlm speech data --timbres", dir)
	}
	return nil
}

// DefaultTimbreShare is the share of the batches' clips that come from the
// timbres when --timbres is given: most clips stay English, the language
// whose words the tokenizer is judged on.
const DefaultTimbreShare = 0.3

// DefaultSpeechTokenizerOptions are the defaults of `latentlm speech-vae train`.
func DefaultSpeechTokenizerOptions() SpeechTokenizerOptions {
	return SpeechTokenizerOptions{
		Options: Options{Steps: 3000, SaveEvery: 500, Batch: 16, LR: 1e-3, Seed: 1},
		Crop:    32,
		Model:   speechvae.DefaultConfig(),
	}
}

// LoadSpeech reads the utterances of a split from the speech cache dir,
// with their samples, in the cache's order.
func LoadSpeech(dir, split string) ([]speech.Utterance, [][]float32, error) {
	_, utts, err := speech.Load(dir)
	if err != nil {
		return nil, nil, err
	}
	var keep []speech.Utterance
	var clips [][]float32
	for _, u := range utts {
		if u.Split != split {
			continue
		}
		a, err := wav.Read(filepath.Join(dir, u.File))
		if err != nil {
			return nil, nil, err
		}
		if a.Rate != speech.Rate {
			return nil, nil, fmt.Errorf("%s: %d Hz, want %d (rebuild the cache with `latentlm speech data --force`)", filepath.Join(dir, u.File), a.Rate, speech.Rate)
		}
		keep = append(keep, u)
		clips = append(clips, a.Samples)
	}
	if len(keep) == 0 {
		return nil, nil, fmt.Errorf("%s: no utterances in split %q", dir, split)
	}
	return keep, clips, nil
}

// SpeechTokenizer trains the speech tokenizer (package speechvae) on the
// training split of the speech cache o.Data into o.Out (default
// runs/speech-vae-<kind>-<domain>), on random crops of o.Crop latent
// frames, then records the statistics of its latents over the training
// utterances, which the language model normalises them with.
func SpeechTokenizer(ctx context.Context, o SpeechTokenizerOptions) (*Result, error) {
	cfg := o.Model
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if o.Crop < 1 || o.Crop > 4096 {
		return nil, fmt.Errorf("crop of %d latent frames: want 1…4096", o.Crop)
	}
	if o.Out == "" {
		o.Out = filepath.Join("runs", fmt.Sprintf("speech-vae-%s-%s", cfg.KindName(), cfg.Domain))
	}
	if o.Resume {
		if err := keepRecorded(o.Out, func(k *keptOptions) {
			k.path("data", &o.Data)
			k.count("crop", &o.Crop)
			k.count("batch", &o.Batch)
			k.number("speed_perturb", &o.SpeedPerturb)
			k.path("timbres", &o.Timbres)
			k.number("timbre_share", &o.TimbreShare)
		}); err != nil {
			return nil, err
		}
	}
	if !(o.SpeedPerturb >= 0 && o.SpeedPerturb <= 1) {
		return nil, fmt.Errorf("speed perturbation probability %g: want 0…1", o.SpeedPerturb)
	}
	if !(o.TimbreShare >= 0 && o.TimbreShare < 1) {
		return nil, fmt.Errorf("timbre share %g: want 0 or more and under 1 (most clips must be the data's)", o.TimbreShare)
	}
	if o.Timbres == "" {
		o.TimbreShare = 0
	}
	b, bname, err := openBackend(o.Backend)
	if err != nil {
		return nil, err
	}
	logf(o.Log, "reading the training split of %s\n", o.Data)
	_, clips, err := LoadSpeech(o.Data, speech.SplitTrain)
	if err != nil {
		return nil, err
	}
	draw := cropDraw{clips: clips, perturb: o.SpeedPerturb, share: o.TimbreShare, seed: o.Seed}
	if o.Timbres != "" {
		logf(o.Log, "reading the timbres of %s (%.0f%% of the clips)\n", o.Timbres, 100*o.TimbreShare)
		if err := checkTimbres(o.Timbres); err != nil {
			return nil, err
		}
		if _, draw.timbres, err = LoadSpeech(o.Timbres, speech.SplitTrain); err != nil {
			return nil, fmt.Errorf("the timbres: %w", err)
		}
	}
	// from is the tokenizer a new run starts from (o.Init), and kept, for
	// a decoder-only run, the latents it keeps.
	var from *speechvae.Model
	var kept *keptLatents
	switch {
	case o.Resume:
		// The saved run's config rules, field for field: one its
		// config.json leaves out (omitempty) is zero there, not what this
		// call's options say, so that --resume never adds, say, an
		// adversarial term halfway through a run saved without one.
		cfg = speechvae.Config{}
		if o.Init, err = resumedInit(o.Out, o.Init); err != nil {
			return nil, err
		}
	case o.Init != "":
		if from, err = speechvae.Load(b, o.Init); err != nil {
			return nil, fmt.Errorf("--init: %w", err)
		}
		defer func() {
			from.Close()
			nn.ReleaseStores(from.Store)
		}()
		if from.Config.Kind == vae.VQ {
			// Its codebooks follow moving averages kept in the training
			// state, which a tokenizer checkpoint does not hold.
			return nil, fmt.Errorf("--init: %s is a residual-VQ codec, whose codebooks' moving averages only its own run keeps (continue it with --resume)", o.Init)
		}
		adv, decoderDepth := cfg.AdvWeight, cfg.DecoderDepth
		cfg = from.Config
		cfg.AdvWeight = adv
		if decoderDepth > 0 {
			if decoderDepth < from.Config.DecoderBlocks() {
				return nil, fmt.Errorf("--decoder-depth %d: the decoder of %s has %d blocks already, and a run from --init may add blocks, not take them away", decoderDepth, o.Init, from.Config.DecoderBlocks())
			}
			if cfg.DecoderDepth = decoderDepth; decoderDepth == cfg.Depth {
				cfg.DecoderDepth = 0
			}
		}
		if o.DecoderOnly {
			if kept, err = keepLatents(o.Init, from); err != nil {
				return nil, err
			}
		}
	case o.DecoderOnly:
		return nil, errors.New("--decoder-only needs --init DIR: the tokenizer whose encoder and latents it keeps")
	}
	run, err := train.StartRun(o.Out, speechvae.Kind, &cfg, o.Seed, o.Resume, o.MemoryLimit, func() float64 {
		tokens := float64(o.Batch) * float64(o.Crop) * 2
		act := tokens * float64(cfg.Dim) * float64(cfg.Depth+cfg.DecoderBlocks()) * (12 + 4*cfg.MLPRatio)
		spec := float64(o.Batch*o.Crop*cfg.FramesPerLatent*cfg.Bins()) * 4 * 12
		return nn.MemoryEstimate(cfg.Specs(), act+spec, true)
	})
	if err != nil {
		return nil, err
	}
	defer run.Finish()
	if err := cfg.CheckCrop(o.Crop); err != nil {
		return nil, err
	}
	spl := cfg.SamplesPerLatent()
	cropSamples := o.Crop * spl
	store := run.Store
	o.Seed = run.Seed
	if o.Resume {
		// A decoder-only run says so in its saves, with what it keeps.
		if kept, err = resumedLatents(b, o.Out); err != nil {
			return nil, err
		}
		if o.DecoderOnly && kept == nil {
			return nil, fmt.Errorf("--decoder-only: the run in %s trains its encoder too", o.Out)
		}
	}
	if from != nil {
		copied, total, err := copyWeights(store, from.Store)
		if err != nil {
			return nil, fmt.Errorf("--init %s: %w", o.Init, err)
		}
		logf(o.Log, "started %d of %d weights from %s\n", copied, total, o.Init)
		if grown := cfg.GrownDecoderOutputs(from.Config.DecoderBlocks()); len(grown) > 0 {
			if err := nn.ZeroWeights(store, grown); err != nil {
				return nil, fmt.Errorf("--decoder-depth: %w", err)
			}
			logf(o.Log, "grew the decoder from %d to %d blocks; the new ones start as identities\n", from.Config.DecoderBlocks(), cfg.DecoderBlocks())
		}
	}
	if kept != nil {
		frozen := kept.freeze(store)
		logf(o.Log, "decoder only: %d encoder weights kept as they are, and the latent statistics\n", frozen)
	}
	tc := train.DefaultConfig()
	tc.LR, tc.TotalSteps, tc.WarmupSteps, tc.MinLR = o.LR, int(o.Steps), 100, o.LR/20
	tc.EMADecay = 0 // the tokenizer ships its live weights
	// A rvq tokenizer's codebooks follow moving averages, outside the
	// optimiser; their averages are created (or kept, when resumed).
	if err := cfg.PrepareTraining(store); err != nil {
		return nil, err
	}
	tr, err := train.New(b, store, tc, func(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
		var target *Node
		if len(in) > 1 {
			target = in[1]
		}
		l := cfg.Loss(scope, w, in[0], target)
		return append([]*Node{l.Total, l.Convergence, l.LogMag, l.Mel, l.Reg}, cfg.TrainingOutputs(scope, l)...)
	})
	if err != nil {
		return nil, err
	}
	started := time.Now()
	// runInfo is what a save records of the run at step.
	runInfo := func(step int64) map[string]any {
		info := map[string]any{"data": o.Data, "steps": step, "backend": bname, "seed": o.Seed, "crop": o.Crop, "batch": o.Batch, "speed_perturb": o.SpeedPerturb,
			// Recorded when empty too, so that a resume keeps a run without timbres without.
			"timbres": o.Timbres, "timbre_share": o.TimbreShare}
		if o.Init != "" {
			info[checkpoint.InitKey] = o.Init
		}
		return info
	}
	// loop.Steps is the run's last step: o.Steps, or where --time ends it.
	var loop *train.Loop
	save := func(step int64, h []train.Point) error {
		m, err := speechvae.NewModel(b, cfg, store)
		if err != nil {
			return err
		}
		defer m.Close()
		info := runInfo(step)
		kept.apply(m, info)
		if err := run.Save(func(dir string) error { return m.Save(dir, info) }, h, step); err != nil {
			return err
		}
		if !snapshotDue(o.SnapshotEvery, step, loop.Steps) {
			return nil
		}
		// A snapshot is a tokenizer to evaluate: it gets the statistics of
		// its own latents (a decoder-only run's are kept), as the last
		// save does. They are drawn with the run's random state, which is
		// put back so that the run goes on as it would without snapshots.
		if kept == nil {
			if err := keepingRNG(store, func() error { return m.ComputeStats(statClips(clips, 400, o.Seed)) }); err != nil {
				return err
			}
		}
		return keepSnapshot(o.Out, step, func(dir string) error { return m.Save(dir, info) })
	}
	loop = &train.Loop{
		Trainer: tr, Store: store, Steps: o.Steps, Deadline: o.Deadline, History: run.History, Every: hookEvery(o.SaveEvery, o.SnapshotEvery), Hook: save,
		Desc: fmt.Sprintf("speech-vae %s/%s", cfg.KindName(), cfg.Domain), Quiet: o.Quiet, RecordEvery: 20,
		// The batch reads only the clips and makes new tensors: it can be
		// made on the host while the previous step trains.
		Prefetch: true,
		Metrics:  append([]string{"sc", "logmag", "mel", "reg"}, cfg.TrainingMetrics()...),
		Batch: func(step int64) ([]any, int, error) {
			crops, err := draw.crops(o.Batch, cropSamples, step)
			if err != nil {
				return nil, 0, err
			}
			x, wave, err := speechBatch(cfg, crops, o.Crop)
			if err != nil {
				return nil, 0, err
			}
			inputs := []any{tensors.FromFlatDataAndDimensions(x, o.Batch, o.Crop, cfg.InputWidth())}
			if cfg.Domain == speechvae.Wave {
				inputs = append(inputs, tensors.FromFlatDataAndDimensions(wave, o.Batch, cropSamples))
			}
			return inputs, o.Batch * o.Crop, nil
		},
	}
	if err := run.Train(ctx, loop); err != nil {
		return nil, err
	}
	m, err := speechvae.NewModel(b, cfg, store)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	info := runInfo(loop.Steps)
	info["train_seconds"] = time.Since(started).Seconds()
	if kept != nil {
		kept.apply(m, info)
	} else if err := m.ComputeStats(statClips(clips, 400, o.Seed)); err != nil {
		return nil, err
	}
	if err := m.Save(o.Out, info); err != nil {
		return nil, err
	}
	if err := writeLossPlot(filepath.Join(o.Out, "loss.png"), "speech tokenizer training loss", loop.History); err != nil {
		return nil, err
	}
	logf(o.Log, "saved %s (%d steps in %s)\n", o.Out, loop.Steps, time.Since(started).Round(time.Second))
	return &Result{Dir: o.Out, History: loop.History}, nil
}

// keepingRNG runs f, then sets store's random state back to what it was.
func keepingRNG(store *model.Store, f func() error) error {
	v := store.GetVariable(model.JoinPath("/", model.RNGStateVariableName))
	if v == nil {
		return f()
	}
	saved, err := nn.CopyValue(v)
	if err != nil {
		return err
	}
	if err := f(); err != nil {
		return err
	}
	return v.SetValue(saved)
}

// keptLatents is what a decoder-only run keeps of the tokenizer it starts
// from: the encoder, the latent statistics, and so the latents, whose
// lineage every save records (checkpoint.SameLatentsKey).
type keptLatents struct {
	mean, std []float32
	lineage   []string
}

// keepLatents is what a decoder-only run from the tokenizer m, read from
// dir, keeps.
func keepLatents(dir string, m *speechvae.Model) (*keptLatents, error) {
	lineage, err := checkpoint.LatentLineage(dir)
	if err != nil {
		return nil, err
	}
	return &keptLatents{mean: slices.Clone(m.Mean), std: slices.Clone(m.Std), lineage: lineage}, nil
}

// resumedLatents is what the decoder-only run saved in dir keeps, or nil
// when that run trains its encoder too.
func resumedLatents(b compute.Backend, dir string) (*keptLatents, error) {
	lineage, err := checkpoint.LatentLineage(dir)
	if err != nil {
		return nil, err
	}
	if len(lineage) == 1 { // only its own checksum: no latents kept
		return nil, nil
	}
	m, err := speechvae.Load(b, dir)
	if err != nil {
		return nil, err
	}
	defer func() {
		m.Close()
		nn.ReleaseStores(m.Store)
	}()
	// lineage[0] is the checksum of the run's own last save, whose
	// latents are the others'.
	return &keptLatents{mean: slices.Clone(m.Mean), std: slices.Clone(m.Std), lineage: lineage[1:]}, nil
}

// freeze marks the encoder's weights of store as not trainable, so that
// neither the gradients nor the optimiser's weight decay move them, and
// counts them.
func (k *keptLatents) freeze(store *model.Store) int {
	n := 0
	for _, v := range nn.Trainable(store) {
		if speechvae.IsEncoderWeight(nn.WeightName(v)) {
			v.SetTrainable(false)
			n++
		}
	}
	return n
}

// apply gives the tokenizer m about to be saved the kept statistics, and
// its info the lineage of its latents. It does nothing on a nil k.
func (k *keptLatents) apply(m *speechvae.Model, info map[string]any) {
	if k == nil {
		return
	}
	copy(m.Mean, k.mean)
	copy(m.Std, k.std)
	info[checkpoint.SameLatentsKey] = k.lineage
}

// speechBatch is the encoder inputs of crops, each crop frames latent
// frames long, laid end to end, and the crops' samples, the wave domain's
// target. The spectrum domain's inputs are STFT magnitudes computed on the
// host, about 3 ms a 1.28 s crop on one core of the 2-core CPU
// (BenchmarkSpeechBatch: 206 ms for a batch of 64, 2026-12-05): serially
// that would cap a GPU run near five steps a second, so the crops are
// spread over every CPU.
func speechBatch(cfg speechvae.Config, crops [][]float32, frames int) (x, wave []float32, err error) {
	width := frames * cfg.InputWidth()
	x = make([]float32, len(crops)*width)
	err = parallel.For(len(crops), func(i int) error {
		in, err := cfg.Inputs(crops[i])
		if err != nil {
			return err
		}
		if len(in) != width {
			return fmt.Errorf("speech-vae: a crop gave %d inputs, want %d", len(in), width)
		}
		copy(x[i*width:], in)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	for _, c := range crops {
		wave = append(wave, c...)
	}
	return x, wave, nil
}

// cropDraw is where a speech tokenizer's training clips come from: the
// data's clips, and a share of timbres' clips.
type cropDraw struct {
	clips, timbres [][]float32
	perturb, share float64 // the probabilities of a speed change and of a timbre's clip
	seed           uint64
}

// crops draws the clips of one step: n utterances and, in each, a window
// of size samples at a random offset (zero-padded when the utterance is
// shorter), all from (seed, step) so that a resumed run sees the same
// data. With probability share an utterance is one of the timbres'; with
// probability perturb it is then played at another speed
// (speedPerturbRates). At 0 each option draws nothing, so the crops are
// exactly those of a run without it.
func (d cropDraw) crops(n, size int, step int64) ([][]float32, error) {
	rng := rand.New(rand.NewPCG(d.seed, uint64(step)))
	out := make([][]float32, n)
	for i := range out {
		pool := d.clips
		if d.share > 0 && len(d.timbres) > 0 && rng.Float64() < d.share {
			pool = d.timbres
		}
		c := pool[rng.IntN(len(pool))]
		if d.perturb > 0 && rng.Float64() < d.perturb {
			var err error
			if c, err = speech.Resample(c, speech.Rate, speedPerturbRates[rng.IntN(len(speedPerturbRates))]); err != nil {
				return nil, err
			}
		}
		crop := make([]float32, size)
		if len(c) > size {
			off := rng.IntN(len(c) - size + 1)
			copy(crop, c[off:off+size])
		} else {
			copy(crop, c)
		}
		out[i] = crop
	}
	return out, nil
}

// speedPerturbRates are the rates a speed-perturbed training clip is
// resampled to and then read as 16 kHz audio: 7/8, 15/16, 17/16 and 9/8
// of the true rate, which raise its pitch and formants by 14% and 7% or
// lower them by 6% and 11%, and change its tempo alike. That is the
// speed perturbation of Ko et al. (2015, "Audio augmentation for speech
// recognition": 0.9, 1.0 and 1.1): a vocal tract 6–14% longer or shorter
// is another speaker's, from the same real recordings. Ratios of small
// whole numbers keep the resampler on its polyphase table (about 4 ms
// for a 3 s utterance).
var speedPerturbRates = []int{14000, 15000, 17000, 18000}

// statClips is an evenly spread subset of at most n clips.
func statClips(clips [][]float32, n int, seed uint64) [][]float32 {
	if len(clips) <= n {
		return clips
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	idx := rng.Perm(len(clips))[:n]
	out := make([][]float32, n)
	for i, j := range idx {
		out[i] = clips[j]
	}
	return out
}

// SpeechCorpusOptions are the settings of EncodeSpeechCorpus, the options
// of `latentlm speech-vae encode-data`.
type SpeechCorpusOptions struct {
	Backend   string    // compute backend ("" for the default)
	Data      string    // the speech cache folder
	Split     string    // speech.SplitTrain, SplitValid or SplitTest
	Set       string    // numbers, sentences or both
	SpeechVAE string    // the tokenizer ("" for the shipped weights/speech-vae)
	Out       string    // the corpus file (.safetensors)
	Log       io.Writer // progress lines; nil for none
}

// EncodeSpeechCorpus encodes one split and text set of a speech cache
// with a speech tokenizer into a corpus file (speechvae.Corpus), which
// `train --task tts --data FILE` reads instead of the audio: a run then
// needs neither the WAVs nor the tokenizer's weights, nor the encoding
// time (110 s for the 9600 training utterances of four times the texts).
func EncodeSpeechCorpus(ctx context.Context, o SpeechCorpusOptions) (*speechvae.Corpus, error) {
	switch {
	case !slices.Contains(speech.Splits, o.Split):
		return nil, fmt.Errorf("unknown split %q: want train, valid or test", o.Split)
	case !slices.Contains(TTSSets, o.Set):
		return nil, fmt.Errorf("unknown text set %q: want numbers, sentences or both", o.Set)
	case !isSpeechCorpus(o.Out):
		return nil, fmt.Errorf("the corpus file %q must end in .safetensors", o.Out)
	}
	b, _, err := openBackend(o.Backend)
	if err != nil {
		return nil, err
	}
	c, err := encodeSpeechSplit(ctx, b, o.SpeechVAE, o.Data, o.Split, o.Log, func(utts []speech.Utterance) []int {
		return selectVoices(utts, o.Set, 0).index
	}, func(speechvae.Config, string) error { return nil })
	if err != nil {
		return nil, err
	}
	if len(c.Utterances) == 0 {
		return nil, fmt.Errorf("%s: no %s utterances of the set %q", o.Data, o.Split, o.Set)
	}
	if err := c.Save(o.Out); err != nil {
		return nil, err
	}
	return c, nil
}
