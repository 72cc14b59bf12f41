package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gomlx/compute"

	"github.com/latentlm/latentlm/benchmark"
	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/evaluate"
	"github.com/latentlm/latentlm/internal/atomicfile"
	"github.com/latentlm/latentlm/internal/guard"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/speech"
	"github.com/latentlm/latentlm/tts"
	"github.com/latentlm/latentlm/valle"
)

// runEvalTTS is `latentlm eval --task tts`: the text-to-speech model
// against the real utterances of the same texts (evaluate.TTS).
func runEvalTTS(args []string) error {
	fs := newFlags("eval --task tts", "eval --task tts [--model DIR] [--set numbers|sentences|both] [--n 10] [--split test] [--steps 5] [--cfg 3] [--seeds 1] [--json] [--listen DIR [--listen-n 8] [--baseline DIR] [--force]]")
	d := tts.DefaultOptions()
	backendName := fs.String("backend", "", "compute backend: onnx, go or xla")
	modelDir := fs.String("model", "", "text-to-speech checkpoint, LatentLM's or the VALL-E-style baseline's (train --task valle; --steps and --cfg do not apply to it) (default: the shipped weights/"+ttsSentences+" for --set sentences, else weights/"+ttsDefault+")")
	speechVAE := fs.String("speech-vae", "", "speech tokenizer (default: the model's own)")
	dataDir := fs.String("data", "", "speech data cache (default .deps/speech)")
	split := fs.String("split", speech.SplitTest, "split whose texts are spoken: train, valid or test")
	set := fs.String("set", speech.SetNumbers, "text set: numbers, sentences or both")
	n := fs.Int("n", 10, "texts per voice and set")
	fs.bound("n", 1, 100000, false)
	gen := addTTSFlags(fs)
	batch := fs.Int("batch", d.Batch, "utterances generated at once")
	fs.bound("batch", 1, 4096, false)
	seeds := fs.Int("seeds", 1, "speak every text with this many sampling seeds (--seed, --seed+1, …) and pool the scores: one seed's draw moves the WER of 350 spoken numbers by up to 1.3 points")
	fs.bound("seeds", 1, 100, false)
	noJudge := fs.Bool("no-judge", false, "skip pocketsphinx")
	speakerDir := fs.String("speaker", "", "speaker judge checkpoint (default weights/speaker; none: skip)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	listen := fs.String("listen", "", "write a listening page into this folder instead of the table: index.html with the WAVs and spectrograms of the first --listen-n texts, original, reconstruction, LatentLM (and --baseline)")
	listenN := fs.Int("listen-n", 8, "texts on the listening page, taken round-robin over the voices")
	fs.bound("listen-n", 1, 100, false)
	baseline := fs.String("baseline", "", "a second text-to-speech checkpoint for the listening page's baseline column")
	force := fs.Bool("force", false, "let --listen replace a listening page written before")
	teacher := fs.Bool("teacher-forced", false, "a diagnostic: draw each frame from the real utterance's frames before it (teacher forcing) instead of the model's own, so the scores judge its one-step predictions apart from the drift of free generation (LatentLM models only; not with --listen)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *listen == "" {
		var needs []string
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "listen-n" || f.Name == "baseline" || f.Name == "force" {
				needs = append(needs, "--"+f.Name)
			}
		})
		if len(needs) > 0 {
			return fmt.Errorf("%s only make sense with --listen DIR (the listening page)", strings.Join(needs, " and "))
		}
	}
	if *seeds > 1 && *listen != "" {
		return fmt.Errorf("--seeds pools the table's scores; the listening page plays one seed (leave out --seeds)")
	}
	if *teacher && *listen != "" {
		return fmt.Errorf("--teacher-forced is a diagnostic of the scores; the listening page plays free generation (leave out --listen)")
	}
	if !slices.Contains(speech.Splits, *split) {
		return fmt.Errorf("--split %q: want train, valid or test", *split)
	}
	switch *set {
	case speech.SetNumbers, speech.SetSentences:
	case speech.SetBoth:
		*set = ""
	default:
		return fmt.Errorf("--set %q: want numbers, sentences or both", *set)
	}
	dir, err := ttsModel(*modelDir, *set == speech.SetSentences)
	if err != nil {
		return err
	}
	var baselineKind string
	if *listen != "" {
		if baselineKind, err = checkListen(*listen, *force, *baseline, *dataDir, *speakerDir, dir, *speechVAE); err != nil {
			return err
		}
	}
	b, backendUsed, err := openBackend(*backendName)
	if err != nil {
		return err
	}
	opts := gen.options(*batch)
	kind, err := checkpoint.ReadKind(dir)
	if err != nil {
		return err
	}
	// The discrete baseline is scored by the same evaluation; its page
	// column joins a LatentLM model's page (--baseline).
	if kind == valle.Kind && *listen != "" {
		return fmt.Errorf("--model %s is a VALL-E-style baseline: its listening page is LatentLM's, with --baseline %s", dir, dir)
	}
	system, m, closeSystem, err := loadTTSSystem(b, kind, dir, *speechVAE, opts)
	if err != nil {
		return err
	}
	defer func() { closeSystem() }() // the system of the last seed
	utts, clips, err := loadSpeechSplit(*dataDir, *split)
	if err != nil {
		return err
	}
	o := evaluate.TTSOptions{Utterances: utts, Clips: clips, Set: *set, N: *n, Seed: uint64(*gen.seed), TeacherForced: *teacher}
	if !*asJSON {
		o.Log = os.Stderr
	}
	if !*noJudge {
		if o.Judge, err = speech.NewJudge(); err != nil {
			return err
		}
	}
	var so evaluate.SpeechTokenizerOptions
	if err := attachSpeakerJudge(&so, *backendName, *speakerDir); err != nil {
		return err
	}
	o.Speaker, o.SpeakerVoices = so.Speaker, so.SpeakerVoices
	ctx, stop := signalContext()
	defer stop()
	if *listen != "" {
		lo := listenRun{dir: *listen, force: *force, n: *listenN, set: *set, split: *split, baseline: *baseline, baselineKind: baselineKind,
			speechVAE: *speechVAE, speaker: *speakerDir, backend: backendUsed, opts: opts, asJSON: *asJSON,
			command: commandLine(append([]string{"latentlm", "eval", "--task", "tts"}, args...))}
		return lo.run(ctx, b, m, utts, clips, o)
	}
	// Each seed speaks with a model loaded afresh with it, so that seed k's
	// scores are those of `eval --seed k` alone.
	var reps []*evaluate.TTSReport
	var bySeed []seedScores
	for k := range *seeds {
		seed := *gen.seed + int64(k)
		if k > 0 {
			closeSystem()
			opts.Seed = seed
			if system, _, closeSystem, err = loadTTSSystem(b, kind, dir, *speechVAE, opts); err != nil {
				closeSystem = func() {}
				return err
			}
		}
		o.Seed = uint64(seed)
		r, err := evaluate.TTS(ctx, system, o)
		if err != nil {
			return err
		}
		reps = append(reps, r)
		bySeed = append(bySeed, seedScores{Seed: seed, Rows: seedRows(r)})
	}
	rep, err := evaluate.MergeTTSReports(reps)
	if err != nil {
		return err
	}
	if *asJSON {
		out := map[string]any{"model": dir, "kind": kind, "split": *split, "steps": *gen.steps, "cfg": *gen.cfg, "temperature": *gen.temp, "prompt_seconds": *gen.promptS, "teacher_forced": *teacher, "report": rep}
		if *seeds > 1 {
			out["seeds"], out["by_seed"] = *seeds, bySeed
		}
		if *speechVAE != "" {
			out["speech_vae"] = *speechVAE // the model's own is in its config.json
		}
		return printJSON(out)
	}
	if *seeds > 1 {
		fmt.Printf("pooled over %d sampling seeds; each seed's WER on all voices:", *seeds)
		for _, s := range bySeed {
			for _, r := range s.Rows {
				fmt.Printf(" %.1f%% (seed %d, %s)", 100*r.WERGenerated, s.Seed, r.Set)
			}
		}
		fmt.Println()
	}
	if kind == valle.Kind {
		vo := valleOptions(opts)
		fmt.Printf("%s (VALL-E-style) on the %s split, codes drawn at temperature %g among the %d likeliest\n", dir, *split, vo.Temperature, vo.TopK)
	} else {
		how := ""
		if *teacher {
			how = ", teacher-forced (each frame drawn from the real utterance's frames before it)"
		}
		fmt.Printf("%s on the %s split, %d DPM-Solver++ steps, CFG %g%s\n", dir, *split, *gen.steps, *gen.cfg, how)
	}
	fmt.Printf("%-16s %-9s %5s %17s %9s %9s %5s %8s %8s %6s\n", "voice", "set", "utts", "WER orig→gen", "spk gen", "spk orig", "SIM", "stopped", "±20%", "ratio")
	for _, r := range rep.Rows {
		fmt.Printf("%-16s %-9s %5d %17s %8.1f%% %8.1f%% %5.2f %7.0f%% %7.0f%% %6.2f\n", r.Voice, r.Set, r.Utterances,
			fmt.Sprintf("%.1f%%→%.1f%%", 100*r.WEROriginal, 100*r.WERGenerated), 100*r.SpeakerAccuracy, 100*r.SpeakerAccuracyOriginal,
			r.SIM, 100*r.Stopped, 100*r.WithinDuration, r.DurationRatio)
	}
	fmt.Printf("%.0f frames, %.1f decoding steps and %.0f head passes per second of audio; real-time factor %.2f at batch %d (%.0f s of audio, %.0f s in all)\n",
		rep.FramesPerSecond, rep.DecodingStepsPerSecond, rep.HeadPassesPerSecond, rep.RealTimeFactor, *batch, rep.AudioSeconds, rep.EvalSeconds)
	return nil
}

// seedScores are one seed's rows over all voices in `eval --seeds`.
type seedScores struct {
	Seed int64                `json:"seed"`
	Rows []evaluate.TTSScores `json:"rows"`
}

// seedRows are a report's rows over all voices ("all"), one per text set:
// what `eval --seeds` lists for each seed.
func seedRows(r *evaluate.TTSReport) []evaluate.TTSScores {
	var out []evaluate.TTSScores
	for _, row := range r.Rows {
		if row.Voice == "all" {
			out = append(out, row)
		}
	}
	return out
}

// A listening page is written by `eval --task tts --listen DIR` rather than
// by a speak-family command because it needs what the evaluation already
// loads and checks: the held-out split with its real utterances and
// prompts, the model's speech tokenizer for the reconstructions, and both
// judges. Its rows are prompted as the table's utterances are and spoken
// with the same code (evaluate.TTSColumn), so what one hears is what the
// table scores.

// listenBaselines make the baseline column of a listening page from a
// checkpoint, by the kind its config.json records. A column needs only a
// function of text and voice prompt to speech (evaluate.SpeakColumn), so
// another system — the VALL-E-style baseline — joins the page by adding
// its kind here. The returned function releases the model.
var listenBaselines = map[string]func(b compute.Backend, dir string, opts tts.Options, seed uint64) (evaluate.ListenColumn, func(), error){
	tts.Kind: func(b compute.Backend, dir string, opts tts.Options, seed uint64) (evaluate.ListenColumn, func(), error) {
		m, err := tts.Load(b, dir, "", opts)
		if err != nil {
			return evaluate.ListenColumn{}, nil, fmt.Errorf("--baseline: %w", err)
		}
		about := fmt.Sprintf("%s (%s, %s)", dir, tts.Kind, ttsSettings(opts))
		return evaluate.TTSColumn("baseline", "baseline", about, evaluate.LatentLMTTS(m), seed), m.Close, nil
	},
	valle.Kind: func(b compute.Backend, dir string, opts tts.Options, seed uint64) (evaluate.ListenColumn, func(), error) {
		s, err := valleSpeaker(b, dir, "", opts)
		if err != nil {
			return evaluate.ListenColumn{}, nil, fmt.Errorf("--baseline: %w", err)
		}
		vo := valleOptions(opts)
		about := fmt.Sprintf("%s (%s, temperature %g among the %d likeliest codes, at most %g s, prompts of up to %g s)", dir, valle.Kind, vo.Temperature, vo.TopK, vo.MaxSeconds, s.PromptSeconds)
		return evaluate.TTSColumn("VALL-E-style", "valle", about, evaluate.VALLETTS(s, vo), seed), s.Close, nil
	},
}

// ttsFlags are the generation flags of the commands that score or time
// text-to-speech (eval --task tts, bench speak), which must speak alike.
type ttsFlags struct {
	steps                          *int
	cfg, temp, maxSeconds, promptS *float64
	seed                           *int64
}

// addTTSFlags declares --steps, --cfg, --temperature, --seed, --max-seconds
// and --prompt-seconds with tts.DefaultOptions' values.
func addTTSFlags(fs *flags) ttsFlags {
	d := tts.DefaultOptions()
	fs.bound("steps", 0, 1000, false)
	fs.bound("max-seconds", 0, 3600, true)
	fs.bound("prompt-seconds", 0, 3600, false)
	return ttsFlags{
		steps:      fs.Int("steps", d.Steps, "DPM-Solver++ steps per frame"),
		cfg:        fs.Float64("cfg", d.CFG, "classifier-free guidance scale (1: none)"),
		temp:       fs.Float64("temperature", d.Temperature, "scale of the initial noise of each frame (LatentLM; below 1 trades variety for steadiness)"),
		seed:       fs.Int64("seed", d.Seed, "random seed"),
		maxSeconds: fs.Float64("max-seconds", d.MaxSeconds, "the most speech generated when the model does not end it itself"),
		promptS:    fs.Float64("prompt-seconds", d.PromptSeconds, "keep the first seconds of each voice prompt (0: the whole utterance; the paper's two column groups are 3 s and whole)"),
	}
}

// options are the flags' tts.Options for batches of batch utterances.
// EqualisePrompts: texts of many lengths would otherwise make as many batch
// shapes, each a compiled graph (the engine keeps at most 32); trimming the
// longer prompts of a batch (never below 1 s) keeps the batches full and
// the shapes few.
func (f ttsFlags) options(batch int) tts.Options {
	return tts.Options{SampleOptions: lm.SampleOptions{Steps: *f.steps, CFG: *f.cfg, Temperature: *f.temp, Seed: *f.seed},
		MaxSeconds: *f.maxSeconds, PromptSeconds: *f.promptS, Batch: batch, EqualisePrompts: batch > 1}
}

// loadTTSSystem loads the text-to-speech checkpoint in dir, of kind (a
// LatentLM model, or the VALL-E-style baseline with its codec), as the
// evaluation's TTSSystem under opts; m is the LatentLM model (nil for the
// baseline). release frees what it loaded.
func loadTTSSystem(b compute.Backend, kind, dir, speechVAE string, opts tts.Options) (system evaluate.TTSSystem, m *tts.Model, release func(), err error) {
	if kind == valle.Kind {
		s, err := valleSpeaker(b, dir, speechVAE, opts)
		if err != nil {
			return nil, nil, nil, err
		}
		return evaluate.VALLETTS(s, valleOptions(opts)), nil, s.Close, nil
	}
	if m, err = tts.Load(b, dir, speechVAE, opts); err != nil {
		return nil, nil, nil, err
	}
	return evaluate.LatentLMTTS(m), m, m.Close, nil
}

// valleSpeaker loads the VALL-E-style baseline in dir with its codec
// (codecDir, or the one it records), its voice prompts cropped as LatentLM's
// are (opts.PromptSeconds), so that both systems hear the same prompts.
func valleSpeaker(b compute.Backend, dir, codecDir string, opts tts.Options) (*valle.Speaker, error) {
	s, err := valle.LoadSpeaker(b, dir, codecDir)
	if err != nil {
		return nil, err
	}
	s.PromptSeconds = opts.PromptSeconds
	return s, nil
}

// valleOptions are the VALL-E-style baseline's sampling (valle.DefaultOptions:
// temperature 1 among the 50 likeliest codes) under the evaluation's
// length bound, seed and batch.
func valleOptions(o tts.Options) valle.Options {
	vo := valle.DefaultOptions()
	vo.MaxSeconds, vo.Seed, vo.Batch = o.MaxSeconds, uint64(o.Seed), o.Batch
	return vo
}

// checkListen checks the listening page's folder and baseline before any
// model loads, and returns the baseline's kind ("" for none). The folder
// must be new or empty, or with --force hold only a page written before
// (so that --force can never wipe a folder of other things), and may not
// lie inside an input.
func checkListen(dst string, force bool, baseline, dataDir, speakerDir string, inputs ...string) (string, error) {
	dst = filepath.Clean(dst)
	cache, err := speechDir(dataDir)
	if err != nil {
		return "", err
	}
	inputs = append(inputs, cache, baseline)
	if speakerDir != "none" {
		inputs = append(inputs, speakerDir)
	}
	if st, err := os.Stat(dst); err == nil && !st.IsDir() {
		return "", fmt.Errorf("--listen %s is a file: give a folder for the page", dst)
	}
	entries, err := os.ReadDir(dst)
	switch {
	case err != nil && !os.IsNotExist(err):
		return "", fmt.Errorf("--listen %s: %w", dst, err)
	case len(entries) > 0 && !force:
		return "", fmt.Errorf("--listen %s already exists and is not empty: choose another folder, or --force to replace a listening page", dst)
	case len(entries) > 0:
		if err := isListenPage(dst, entries); err != nil {
			return "", err
		}
		if err := guard.CheckOutput(filepath.Join(dst, "index.html"), inputs...); err != nil {
			return "", fmt.Errorf("--listen: %w", err)
		}
	default:
		if err := guard.CheckOutputDir(dst, inputs...); err != nil {
			return "", fmt.Errorf("--listen: %w", err)
		}
	}
	if baseline == "" {
		return "", nil
	}
	kind, err := checkpoint.ReadKind(baseline)
	if err != nil {
		return "", fmt.Errorf("--baseline: %w", err)
	}
	if listenBaselines[kind] == nil {
		known := slices.Sorted(maps.Keys(listenBaselines))
		return "", fmt.Errorf("--baseline %s is a %q checkpoint: the page can speak with %s", baseline, kind, strings.Join(known, ", "))
	}
	return kind, nil
}

// listenFile is the name of a file a listening page holds.
var listenFile = regexp.MustCompile(`^(index\.html|listen\.json|[0-9]{2,}-[a-z0-9-]+\.(wav|png))$`)

// isListenPage reports why the folder dir (with entries) is not a
// listening page that --force may replace.
func isListenPage(dir string, entries []os.DirEntry) error {
	hasIndex := false
	for _, e := range entries {
		if !e.Type().IsRegular() || !listenFile.MatchString(e.Name()) {
			return fmt.Errorf("--listen %s holds %s, which no listening page holds: --force replaces only a page written before (index.html, listen.json, .wav and .png files)", dir, e.Name())
		}
		hasIndex = hasIndex || e.Name() == "index.html"
	}
	if !hasIndex {
		return fmt.Errorf("--listen %s has no index.html: --force replaces only a listening page written before", dir)
	}
	return nil
}

// writeListenDir makes dst hold what fill writes, all or nothing: fill
// writes into a temporary sibling folder that is renamed into place
// (atomicfile.WriteDir); with force, an old page in dst is swapped out
// only after the new one is complete, and removed then.
func writeListenDir(dst string, force bool, fill func(dir string) error) error {
	dst = filepath.Clean(dst)
	entries, err := os.ReadDir(dst)
	if !force || os.IsNotExist(err) || (err == nil && len(entries) == 0) {
		return atomicfile.WriteDir(dst, fill)
	}
	parent, base := filepath.Dir(dst), filepath.Base(dst)
	stage, err := os.MkdirTemp(parent, "."+base+".*.tmp")
	if err != nil {
		return fmt.Errorf("writing %s: %w", dst, err)
	}
	if err := atomicfile.WriteDir(stage, fill); err != nil {
		_ = os.RemoveAll(stage)
		return err
	}
	old, err := os.MkdirTemp(parent, "."+base+".*.tmp")
	if err != nil {
		_ = os.RemoveAll(stage)
		return fmt.Errorf("writing %s: %w", dst, err)
	}
	// old reserved a free name for the old page; os.Rename does not move
	// a folder onto another, so the reservation goes first.
	if err := os.Remove(old); err != nil {
		_ = os.RemoveAll(stage)
		return fmt.Errorf("replacing %s: %w", dst, err)
	}
	if err := os.Rename(dst, old); err != nil {
		_ = os.RemoveAll(stage)
		return fmt.Errorf("replacing %s: %w", dst, err)
	}
	if err := os.Rename(stage, dst); err != nil {
		_ = os.Rename(old, dst)
		_ = os.RemoveAll(stage)
		return fmt.Errorf("replacing %s: %w", dst, err)
	}
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("removing the old page %s: %w", old, err)
	}
	return atomicfile.SyncDir(parent)
}

// listenRun is a listening page to write, with what its header records.
type listenRun struct {
	dir, set, split, baseline, baselineKind, speechVAE, speaker, backend, command string
	force, asJSON                                                                 bool
	n                                                                             int
	opts                                                                          tts.Options
}

// ttsSettings are the generation settings a page's header records.
func ttsSettings(o tts.Options) string {
	s := fmt.Sprintf("%d DPM-Solver++ steps, CFG %g, temperature %g, at most %g s, prompts of up to %g s, batch %d",
		o.Steps, o.CFG, o.Temperature, o.MaxSeconds, o.PromptSeconds, o.Batch)
	if o.EqualisePrompts {
		s += " (longer prompts of a batch trimmed to one length, as the evaluation does)"
	}
	return s
}

// run writes the page of m's speech (with o's judges) for the first r.n
// texts of the split and prints where it is and what the columns scored.
func (r listenRun) run(ctx context.Context, b compute.Backend, m *tts.Model, utts []speech.Utterance, clips [][]float32, o evaluate.TTSOptions) error {
	items, err := evaluate.ListenItems(utts, clips, r.set, r.n)
	if err != nil {
		return err
	}
	tok := r.speechVAE
	if tok == "" {
		if rec, ok := m.Info["tokenizer"].(map[string]any); ok {
			tok, _ = rec["path"].(string)
		}
	}
	seed := uint64(r.opts.Seed)
	cols := []evaluate.ListenColumn{evaluate.OriginalColumn(),
		evaluate.ReconstructionColumn(m.Speech, fmt.Sprintf("%s, LatentLM's speech tokenizer", tok), seed),
		evaluate.TTSColumn("LatentLM", "latentlm", fmt.Sprintf("%s (this model)", m.Dir), evaluate.LatentLMTTS(m), seed)}
	if r.baseline != "" {
		col, release, err := listenBaselines[r.baselineKind](b, r.baseline, r.opts, seed)
		if err != nil {
			return err
		}
		defer release()
		cols = append(cols, col)
	}
	set := r.set
	if set == "" {
		set = "numbers and sentences"
	}
	judge, spk := "none (--no-judge)", "none"
	if o.Judge != nil {
		judge = "pocketsphinx (" + o.Judge.Batch + "), the numbers grammar for numbers, its language model for sentences"
	}
	if o.Speaker != nil {
		spk = r.speaker
		if spk == "" {
			spk, _ = weightsDir("speaker")
		}
		if wd, err := os.Getwd(); err == nil {
			if rel, err := filepath.Rel(wd, spk); err == nil && filepath.IsLocal(rel) {
				spk = rel // the page names paths as a reader of the repository sees them
			}
		}
		spk = fmt.Sprintf("%s (%d voices: %s)", spk, len(o.SpeakerVoices), strings.Join(o.SpeakerVoices, ", "))
	}
	facts := []evaluate.ListenFact{
		{Name: "model", Value: fmt.Sprintf("%s: %d × %d backbone, %g Hz × %d-channel speech latents", m.Dir, m.Config.Dim, m.Config.Depth, m.Format.FrameRate, m.Format.Channels)},
		{Name: "generation", Value: ttsSettings(r.opts)},
	}
	if r.baseline != "" {
		facts = append(facts, evaluate.ListenFact{Name: "baseline", Value: fmt.Sprintf("%s (%s)", r.baseline, r.baselineKind)})
	}
	facts = append(facts,
		evaluate.ListenFact{Name: "speech tokenizer", Value: tok},
		evaluate.ListenFact{Name: "texts", Value: fmt.Sprintf("%d of the %s split, %s, round-robin over the voices", len(items), r.split, set)},
		evaluate.ListenFact{Name: "word judge", Value: judge},
		evaluate.ListenFact{Name: "speaker judge", Value: spk},
		evaluate.ListenFact{Name: "command", Value: r.command},
		evaluate.ListenFact{Name: "date", Value: time.Now().Format(time.RFC3339)},
		evaluate.ListenFact{Name: "machine", Value: fmt.Sprintf("%s/%s, %d cores, CPU flags: %s; backend %s; GOEXPERIMENT=simd build: %v",
			runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), benchmark.CPUFeatures(), r.backend, simdBuild)},
		evaluate.ListenFact{Name: "seed", Value: strconv.FormatInt(r.opts.Seed, 10)},
	)
	lo := evaluate.ListenOptions{Items: items, Columns: cols, Judge: o.Judge, Speaker: o.Speaker, SpeakerVoices: o.SpeakerVoices,
		Title: "LatentLM text-to-speech: listening page", Facts: facts, Log: o.Log}
	t0 := time.Now()
	var page *evaluate.ListenPage
	if err := writeListenDir(r.dir, r.force, func(tmp string) error {
		var err error
		page, err = evaluate.WriteListenPage(ctx, tmp, lo)
		return err
	}); err != nil {
		return err
	}
	size, err := folderBytes(r.dir)
	if err != nil {
		return err
	}
	if r.asJSON {
		return printJSON(map[string]any{"dir": r.dir, "bytes": size, "seconds": time.Since(t0).Seconds(), "page": page})
	}
	fmt.Printf("wrote %s: %d texts × %d columns, %d files, %.1f MB, in %.0f s\n", filepath.Join(r.dir, "index.html"), len(page.Rows), len(page.Columns),
		len(page.Files)+2, float64(size)/1e6, time.Since(t0).Seconds())
	for c, h := range page.Columns {
		t := page.Totals[c]
		line := fmt.Sprintf("  %-26s %6.1f s of audio", h.Name, t.Seconds)
		if page.Judged {
			line += fmt.Sprintf("  WER %5.1f%% (%d/%d words)", 100*t.WER, t.Errors, t.Words)
		}
		if page.Voiced {
			line += fmt.Sprintf("  speaker judge right %d of %d", t.Right, t.Known)
		}
		fmt.Println(line)
	}
	return nil
}

// folderBytes is the size of the files in dir (not below it).
func folderBytes(dir string) (int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			return 0, err
		}
		n += info.Size()
	}
	return n, nil
}

// commandLine is args as a shell would need them typed, for a page's
// header.
func commandLine(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./=:,+-@") == "" {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}
