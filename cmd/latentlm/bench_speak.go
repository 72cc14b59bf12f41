package main

import (
	"fmt"

	"github.com/latentlm/latentlm/benchmark"
	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/evaluate"
	"github.com/latentlm/latentlm/speech"
)

const benchSpeakSynopsis = `bench speak [--model DIR] [--batches 1,16] [--reps 3] [--set numbers] [--steps 5] [--cfg 3] [--json]

Times text-to-speech from text to 16 kHz audio (the audio decoder included),
as the paper's Table 4 reports its speed: for each batch size B, the first
B test texts of the set are spoken together, each in the voice of another
test utterance of its voice (the texts and prompts of eval --task tts), once
to compile and then --reps times. It reports the median call's time over
the seconds of audio it spoke (the real-time factor: below 1 is faster than
real time) and the sequential backbone passes per second of audio. DIR is a
LatentLM model or the VALL-E-style baseline (--steps and --cfg are
LatentLM's).`

// runBenchSpeak is `latentlm bench speak`.
func runBenchSpeak(args []string) error {
	fs := newFlags("bench speak", benchSpeakSynopsis)
	backendName := fs.String("backend", "", "compute backend: onnx, go or xla")
	modelDir := fs.String("model", "", "text-to-speech checkpoint: LatentLM's or the VALL-E-style baseline's (default: the shipped weights/"+ttsDefault+")")
	speechVAE := fs.String("speech-vae", "", "speech tokenizer or codec (default: the model's own)")
	dataDir := fs.String("data", "", "speech data cache (default .deps/speech)")
	set := fs.String("set", speech.SetNumbers, "text set: numbers or sentences")
	batchList := fs.String("batches", "1,16", "comma-separated batch sizes")
	reps := fs.Int("reps", 3, "timed calls per batch size (after one compiling call)")
	fs.bound("reps", 1, 1000, false)
	gen := addTTSFlags(fs)
	asJSON := fs.Bool("json", false, "print results as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := ttsModel(*modelDir, false)
	if err != nil {
		return err
	}
	if *set != speech.SetNumbers && *set != speech.SetSentences {
		return fmt.Errorf("--set %q: want numbers or sentences", *set)
	}
	sizes, err := parseInts(*batchList)
	if err != nil {
		return fmt.Errorf("--batches: %w", err)
	}
	kind, err := checkpoint.ReadKind(dir)
	if err != nil {
		return err
	}
	utts, clips, err := loadSpeechSplit(*dataDir, speech.SplitTest)
	if err != nil {
		return err
	}
	pick, prompt, err := evaluate.TTSPicks(utts, *set, len(utts))
	if err != nil {
		return err
	}
	b, name, err := openBackend(*backendName)
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	var results []benchmark.Result
	for _, n := range sizes {
		if n > len(pick) {
			return fmt.Errorf("--batches: %d texts, the test split has %d of set %s", n, len(pick), *set)
		}
		texts, prompts, files := make([]string, n), make([][]float32, n), make([]string, n)
		for j := range n {
			texts[j], prompts[j], files[j] = utts[pick[j]].Text, clips[prompt[j]], utts[prompt[j]].File
		}
		system, _, closeSystem, err := loadTTSSystem(b, kind, dir, *speechVAE, gen.options(n))
		if err != nil {
			return err
		}
		var audio float64
		var passes int
		res := benchmark.Result{Name: fmt.Sprintf("%s_speak_b%d", kind, n), Arch: kind, Batch: n}
		r, err := benchmark.Measure(b, res, 0, n, *reps, func() error {
			spoken, err := system.Speak(ctx, texts, prompts, files, uint64(*gen.seed))
			audio, passes = 0, 0
			for _, s := range spoken {
				audio += float64(len(s.Samples)) / speech.Rate
				passes += s.Steps
			}
			return err
		})
		closeSystem()
		if err != nil {
			return err
		}
		r.Backend = name
		r.AudioSeconds = audio
		if audio > 0 {
			r.RealTimeFactor, r.DecodingStepsPerAudio = r.MedianS/audio, float64(passes)/audio
		}
		results = append(results, r)
		if !*asJSON {
			fmt.Printf("%-22s backend=%s batch=%d first=%.2fs median=%.3fs audio=%.2fs real-time factor=%.3f decoding steps/s of audio=%.1f cpu=%s\n",
				r.Name, r.Backend, r.Batch, r.FirstCallS, r.MedianS, r.AudioSeconds, r.RealTimeFactor, r.DecodingStepsPerAudio, r.CPUFeatures)
		}
	}
	if *asJSON {
		return printJSON(results)
	}
	return nil
}
