package speaker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"time"

	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/backend"
	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/plot"
	"github.com/latentlm/latentlm/speech"
	"github.com/latentlm/latentlm/train"
)

// TrainOptions are the settings of Train, the flags of `latentlm speaker
// train`.
type TrainOptions struct {
	// Data is the speech cache ("": .deps/speech).
	Data string
	// Out is the checkpoint folder ("": runs/speaker).
	Out string
	// Model is the architecture; its Voices are replaced by those of the
	// data (a resumed run keeps the saved config).
	Model Config
	// Steps is the length of the run; a resumed run continues to it.
	Steps int64
	// SaveEvery is the checkpoint period in steps; 0 saves only at the end.
	SaveEvery int64
	// Batch is the number of windows per step.
	Batch int
	// LR is the peak learning rate of the cosine schedule.
	LR float64
	// Seed seeds the initialisation and the crops; a resumed run keeps
	// the seed it was started with.
	Seed uint64
	// Resume continues the run saved in Out.
	Resume bool
	// Backend names the compute backend ("": $LATENTLM_BACKEND, else onnx).
	Backend string
	// MemoryLimit bounds the run's planned memory in bytes (0: the default
	// of guard.MemoryLimit).
	MemoryLimit float64
	// Quiet hides the progress bar.
	Quiet bool
	// Log receives what the run is doing and its results; nil: nothing.
	Log io.Writer
	// Command is the command line, recorded in the checkpoint's info so
	// that shipped weights say how they were made.
	Command string
}

// DefaultTrainOptions are the defaults of `latentlm speaker train`: 800
// steps of 32 windows of 1.5 s (about 11 h of audio, three passes over
// the training speech) at a peak rate of 2e-3.
func DefaultTrainOptions() TrainOptions {
	return TrainOptions{Model: DefaultConfig(), Steps: 800, Batch: 32, LR: 2e-3, Seed: 1}
}

// trainingSet chooses the utterances the judge trains on: for each voice,
// those of the train split, or, for a voice without any (the voice held
// out of the speech data's training split, flite-rms by default), those of
// the validation split. The judge must recognise the held-out voice
// because a voice-cloning test asks whether generated speech sounds like
// it, and the validation audio is the only real audio of it outside the
// test split, which stays unseen so that the reported accuracy is honest.
// It returns the voices in the manifest's order, the utterances and the
// split each voice trained on.
func trainingSet(man *speech.Manifest, utts []speech.Utterance) ([]string, []speech.Utterance, map[string]string, error) {
	count := map[string]map[string]int{}
	for _, u := range utts {
		if count[u.Voice] == nil {
			count[u.Voice] = map[string]int{}
		}
		count[u.Voice][u.Split]++
	}
	var voices []string
	for _, v := range man.Voices {
		if count[v.Name] != nil {
			voices = append(voices, v.Name)
		}
	}
	for v := range count {
		if !slices.Contains(voices, v) {
			return nil, nil, nil, fmt.Errorf("speaker: utterances of voice %q, which the manifest does not list", v)
		}
	}
	splits := map[string]string{}
	for _, v := range voices {
		switch {
		case count[v][speech.SplitTrain] > 0:
			splits[v] = speech.SplitTrain
		case count[v][speech.SplitValid] > 0:
			splits[v] = speech.SplitValid
		default:
			return nil, nil, nil, fmt.Errorf("speaker: voice %s has no train or valid utterances to learn it from", v)
		}
	}
	var sel []speech.Utterance
	for _, u := range utts {
		if splits[u.Voice] == u.Split {
			sel = append(sel, u)
		}
	}
	return voices, sel, splits, nil
}

// Train trains the speaker classifier on the speech cache into o.Out,
// then scores the saved (EMA) weights on the test split, records the
// result in the checkpoint's info and draws loss.png. The caller closes
// the returned model.
//
// Each step draws Batch windows: a voice uniformly (so that the held-out
// voice, with an eighth of the others' audio, weighs as much), one of its
// utterances, and a random crop of Frames frames; a quarter of the crops
// keep only their first third to all of their frames, so that short clips
// are scored as in training. The draws depend only on (seed, step), so a
// resumed run sees the same data.
func Train(ctx context.Context, o TrainOptions) (*Model, error) {
	if o.Steps < 1 || o.Batch < 1 {
		return nil, errors.New("speaker: steps and batch must be at least 1")
	}
	if !(o.LR > 0) {
		return nil, fmt.Errorf("speaker: learning rate %v: want > 0", o.LR)
	}
	if err := o.Model.validateShape(); err != nil {
		return nil, err
	}
	var err error
	if o.Data, err = DataDir(o.Data); err != nil {
		return nil, err
	}
	if o.Out == "" {
		o.Out = filepath.Join("runs", "speaker")
	}
	man, utts, err := loadData(o.Data)
	if err != nil {
		return nil, err
	}
	voices, sel, splits, err := trainingSet(man, utts)
	if err != nil {
		return nil, err
	}
	cfg := o.Model
	cfg.Voices = voices
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	bname := backend.Resolve(o.Backend)
	b, err := backend.Open(bname)
	if err != nil {
		return nil, err
	}
	var seconds float64
	for _, u := range sel {
		seconds += u.Seconds
	}
	frames := int(seconds*100) + len(sel)
	run, err := train.StartRun(o.Out, Kind, &cfg, o.Seed, o.Resume, o.MemoryLimit, func() float64 {
		acts := 4 * float64(o.Batch*cfg.Frames) * float64(cfg.Mels+3*sumInts(cfg.Widths))
		return nn.MemoryEstimate(cfg.Specs(), acts, true) + 4*float64(frames*(cfg.Mels+1))
	})
	if err != nil {
		return nil, err
	}
	defer run.Finish()
	if !slices.Equal(cfg.Voices, voices) {
		return nil, fmt.Errorf("speaker: %s was trained on voices %v, the data has %v", o.Out, cfg.Voices, voices)
	}
	started := time.Now()
	logf(o.Log, "speaker: reading %d utterances of %d voices from %s\n", len(sel), len(voices), o.Data)
	clips, err := readClips(o.Data, sel)
	if err != nil {
		return nil, err
	}
	fs, err := cfg.allFeatures(clips, func(i int) string { return sel[i].File })
	if err != nil {
		return nil, err
	}
	frames = 0
	for _, f := range fs {
		frames += f.frames
	}
	stats := computeStats(fs, cfg.Mels)
	for i := range fs {
		stats.normalise(&fs[i])
	}
	byVoice := make([][]int, len(voices))
	for i, u := range sel {
		v := slices.Index(voices, u.Voice)
		byVoice[v] = append(byVoice[v], i)
	}
	logf(o.Log, "speaker: %d utterances, %.2f h (%.1f s of features)\n", len(sel), float64(frames)/100/3600, time.Since(started).Seconds())

	store := run.Store
	o.Seed = run.Seed
	tc := train.DefaultConfig()
	tc.LR, tc.TotalSteps, tc.WarmupSteps, tc.MinLR = o.LR, int(o.Steps), min(100, int(o.Steps)/10), o.LR/50
	tr, err := train.New(b, store, tc, func(_ *model.Scope, w nn.Weights, in []*Node) []*Node {
		loss, acc := cfg.Loss(w, in[0], in[1], in[2])
		return []*Node{loss, acc}
	})
	if err != nil {
		return nil, err
	}
	info := func(step int64) map[string]any {
		trained := map[string]any{}
		for v, idx := range byVoice {
			trained[voices[v]] = map[string]any{"split": splits[voices[v]], "utterances": len(idx)}
		}
		inf := map[string]any{
			"data":  map[string]any{"seed": man.Seed, "texts": man.Texts, "eval": man.Eval, "built": man.Built, "heldout": man.Heldout},
			"train": trained, "steps": step, "batch": o.Batch, "lr": o.LR, "seed": o.Seed, "backend": bname,
		}
		if o.Command != "" {
			inf["command"] = o.Command
		}
		return inf
	}
	save := func(step int64, h []train.Point) error {
		return run.Save(func(dir string) error {
			return checkpoint.Save(dir, Kind, cfg, info(step), store, true, stats.tensors())
		}, h, step)
	}
	win := cfg.Frames * cfg.Mels
	x := make([]float32, o.Batch*win)
	mask := make([]float32, o.Batch*cfg.Frames)
	labels := make([]int32, o.Batch)
	loop := &train.Loop{
		Trainer: tr, Store: store, Steps: o.Steps, History: run.History, Every: o.SaveEvery, Hook: save,
		Desc: "speaker", Quiet: o.Quiet, RecordEvery: 10, Metrics: []string{"acc"},
		Batch: func(step int64) ([]any, int, error) {
			rng := rand.New(rand.NewPCG(o.Seed, uint64(step)))
			for i := range o.Batch {
				v := rng.IntN(len(voices))
				f := fs[byVoice[v][rng.IntN(len(byVoice[v]))]]
				sp := span{0, min(f.frames, cfg.Frames)}
				if f.frames > cfg.Frames {
					sp.start = rng.IntN(f.frames - cfg.Frames + 1)
				}
				if rng.IntN(4) == 0 {
					lo := max(1, sp.n/3)
					sp.n = lo + rng.IntN(sp.n-lo+1)
				}
				cfg.fill(x[i*win:(i+1)*win], mask[i*cfg.Frames:(i+1)*cfg.Frames], f, sp)
				labels[i] = int32(v)
			}
			return []any{tensors.FromFlatDataAndDimensions(x, o.Batch, cfg.Frames, cfg.Mels),
				tensors.FromFlatDataAndDimensions(mask, o.Batch, cfg.Frames),
				tensors.FromFlatDataAndDimensions(labels, o.Batch)}, o.Batch, nil
		},
	}
	if err := run.Train(ctx, loop); err != nil {
		return nil, err
	}
	trainSeconds := time.Since(started).Seconds()
	// Score exactly what was saved (the EMA weights), then record it.
	m, err := Load(b, o.Out)
	if err != nil {
		return nil, err
	}
	r, err := Evaluate(m, o.Data, speech.SplitTest)
	if err != nil {
		m.Close()
		return nil, err
	}
	inf := info(o.Steps)
	inf["train_seconds"] = trainSeconds
	inf["test"] = summary(r)
	if err := m.Save(o.Out, inf); err != nil {
		m.Close()
		return nil, err
	}
	m.Info = inf
	if err := writeLossPlot(filepath.Join(o.Out, "loss.png"), loop.History); err != nil {
		m.Close()
		return nil, err
	}
	logf(o.Log, "saved %s (%d steps in %s): test accuracy %.2f%%, real-speech SIM %.3f (other voices %.3f)\n",
		o.Out, o.Steps, time.Since(started).Round(time.Second), 100*r.Accuracy, r.SIM, r.OtherSIM)
	if o.Log != nil {
		WriteReport(o.Log, r)
	}
	return m, nil
}

// summary is what the checkpoint's info records of a report: the overall
// figures and each voice's, without the confusion matrix.
func summary(r *Report) map[string]any {
	voices := map[string]any{}
	for _, v := range r.Voices {
		voices[v.Voice] = map[string]any{"accuracy": v.Accuracy, "sim": v.SIM, "other_sim": v.OtherSIM, "utterances": v.Utterances}
	}
	return map[string]any{"split": r.Split, "accuracy": r.Accuracy, "sim": r.SIM, "other_sim": r.OtherSIM, "utterances": r.Utterances, "voices": voices}
}

// WriteReport prints a report as a table: one line per voice, then all.
func WriteReport(w io.Writer, r *Report) {
	fmt.Fprintf(w, "%-18s %6s %9s %7s %9s\n", "voice", "utts", "accuracy", "SIM", "other SIM")
	for _, v := range r.Voices {
		fmt.Fprintf(w, "%-18s %6d %8.2f%% %7.3f %9.3f\n", v.Voice, v.Utterances, 100*v.Accuracy, v.SIM, v.OtherSIM)
	}
	fmt.Fprintf(w, "%-18s %6d %8.2f%% %7.3f %9.3f\n", "all", r.Utterances, 100*r.Accuracy, r.SIM, r.OtherSIM)
}

// writeLossPlot draws the loss history; a run too short to have one gets
// no plot.
func writeLossPlot(path string, h []train.Point) error {
	if len(h) == 0 {
		return nil
	}
	s := plot.Series{Name: "loss"}
	for _, p := range h {
		s.X = append(s.X, float64(p.Step))
		s.Y = append(s.Y, p.Loss)
	}
	return plot.Write(path, "speaker classifier training loss", "step", "cross-entropy", []plot.Series{s}, plot.Axes{LogY: true})
}

func sumInts(xs []int) int {
	s := 0
	for _, x := range xs {
		s += x
	}
	return s
}

func logf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format, args...)
	}
}
