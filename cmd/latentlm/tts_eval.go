package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"

	"github.com/latentlm/latentlm/evaluate"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/speech"
	"github.com/latentlm/latentlm/tts"
)

// runEvalTTS is `latentlm eval --task tts`: the text-to-speech model
// against the real utterances of the same texts (evaluate.TTS).
func runEvalTTS(args []string) error {
	fs := newFlags("eval --task tts", "eval --task tts [--model DIR] [--set numbers|sentences|both] [--n 10] [--split test] [--steps 5] [--cfg 3] [--json]")
	d := tts.DefaultOptions()
	backendName := fs.String("backend", "", "compute backend: onnx, go or xla")
	modelDir := fs.String("model", "", "text-to-speech checkpoint (default: the shipped weights/"+ttsDefault+")")
	speechVAE := fs.String("speech-vae", "", "speech tokenizer (default: the model's own)")
	dataDir := fs.String("data", "", "speech data cache (default .deps/speech)")
	split := fs.String("split", speech.SplitTest, "split whose texts are spoken: train, valid or test")
	set := fs.String("set", speech.SetNumbers, "text set: numbers, sentences or both")
	n := fs.Int("n", 10, "texts per voice and set")
	fs.bound("n", 1, 100000, false)
	fs.bound("steps", 0, 1000, false)
	steps := fs.Int("steps", d.Steps, "DPM-Solver++ steps per frame")
	cfg := fs.Float64("cfg", d.CFG, "classifier-free guidance scale (1: none)")
	seed := fs.Int64("seed", d.Seed, "random seed")
	batch := fs.Int("batch", d.Batch, "utterances generated at once")
	fs.bound("batch", 1, 4096, false)
	maxSeconds := fs.Float64("max-seconds", d.MaxSeconds, "the most speech generated when the model does not end it itself")
	fs.bound("max-seconds", 0, 3600, true)
	noJudge := fs.Bool("no-judge", false, "skip pocketsphinx")
	speakerDir := fs.String("speaker", "", "speaker judge checkpoint (default weights/speaker; none: skip)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !slices.Contains(speech.Splits, *split) {
		return fmt.Errorf("--split %q: want train, valid or test", *split)
	}
	switch *set {
	case speech.SetNumbers, speech.SetSentences:
	case "both":
		*set = ""
	default:
		return fmt.Errorf("--set %q: want numbers, sentences or both", *set)
	}
	dir := *modelDir
	var err error
	if dir == "" {
		if dir, err = weightsDir(ttsDefault); err != nil {
			return fmt.Errorf("no --model given and no shipped %s: %w (train one with `latentlm train --task tts`)", ttsDefault, err)
		}
	}
	b, _, err := openBackend(*backendName)
	if err != nil {
		return err
	}
	// EqualisePrompts: texts of many lengths would otherwise make as many
	// batch shapes, each a compiled graph (the engine keeps at most 32);
	// trimming the longer prompts of a batch (never below 1 s) keeps the
	// batches full and the shapes few.
	opts := tts.Options{SampleOptions: lm.SampleOptions{Steps: *steps, CFG: *cfg, Temperature: d.Temperature, Seed: *seed},
		MaxSeconds: *maxSeconds, PromptSeconds: d.PromptSeconds, Batch: *batch, EqualisePrompts: *batch > 1}
	m, err := tts.Load(b, dir, *speechVAE, opts)
	if err != nil {
		return err
	}
	defer m.Close()
	utts, clips, err := loadSpeechSplit(*dataDir, *split)
	if err != nil {
		return err
	}
	o := evaluate.TTSOptions{Utterances: utts, Clips: clips, Set: *set, N: *n, Seed: uint64(*seed)}
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
	rep, err := evaluate.TTS(ctx, m, o)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"model": dir, "split": *split, "steps": *steps, "cfg": *cfg, "report": rep})
	}
	fmt.Printf("%s on the %s split, %d DPM-Solver++ steps, CFG %g\n", dir, *split, *steps, *cfg)
	fmt.Printf("%-16s %-9s %5s %17s %9s %9s %5s %8s %8s %6s\n", "voice", "set", "utts", "WER orig→gen", "spk gen", "spk orig", "SIM", "stopped", "±20%", "ratio")
	for _, r := range rep.Rows {
		fmt.Printf("%-16s %-9s %5d %17s %8.1f%% %8.1f%% %5.2f %7.0f%% %7.0f%% %6.2f\n", r.Voice, r.Set, r.Utterances,
			fmt.Sprintf("%.1f%%→%.1f%%", 100*r.WEROriginal, 100*r.WERGenerated), 100*r.SpeakerAccuracy, 100*r.SpeakerAccuracyOriginal,
			r.SIM, 100*r.Stopped, 100*r.WithinDuration, r.DurationRatio)
	}
	fmt.Printf("%.0f frames and %.0f head passes per second of audio; real-time factor %.2f at batch %d (%.0f s of audio, %.0f s in all)\n",
		rep.FramesPerSecond, rep.HeadPassesPerSecond, rep.RealTimeFactor, *batch, rep.AudioSeconds, rep.EvalSeconds)
	return nil
}
