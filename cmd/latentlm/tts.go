package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gomlx/compute"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/internal/guard"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/recipe"
	"github.com/latentlm/latentlm/speech"
	"github.com/latentlm/latentlm/tts"
	"github.com/latentlm/latentlm/valle"
	"github.com/latentlm/latentlm/wav"
)

func init() {
	register("speak", "text → speech with a LatentLM text-to-speech model, in the voice of a prompt", runSpeak)
}

// The shipped text-to-speech models: ttsDefault reads the spoken numbers
// (the numbers targets), ttsSentences other English text (it
// reads phonemes and was trained on sentences alone).
const (
	ttsDefault   = "tts"
	ttsSentences = "tts-sentences"
)

// ttsModel is the text-to-speech checkpoint a command uses: the one named,
// else the shipped one for its text: weights/tts-sentences for sentences
// (where it is shipped), weights/tts for spoken numbers.
func ttsModel(named string, sentences bool) (string, error) {
	if named != "" {
		return named, nil
	}
	if sentences {
		if dir, err := weightsDir(ttsSentences); err == nil {
			return dir, nil
		}
	}
	dir, err := weightsDir(ttsDefault)
	if err != nil {
		return "", fmt.Errorf("no --model given and no shipped %s: %w (train one with `latentlm train --task tts`)", ttsDefault, err)
	}
	return dir, nil
}

// runTrainTTS is `train --task tts`.
func runTrainTTS(args []string) error {
	o := recipe.DefaultTTSOptions()
	fs := newFlags("train", "train --task tts [--set numbers|sentences|both] [--reading characters|phonemes] [--speech-vae DIR] [--data DIR|FILE.safetensors] [--timbres DIR] [--out DIR] [--steps N] [--init DIR] [flags]")
	addTrainFlags(fs, &o.Options, &o.Limit, "checkpoint folder (default runs/tts-<set>)")
	fs.Lookup("data").Usage = "speech data cache (default .deps/speech, built by: latentlm speech data), or a corpus file of its encoded training split (built by: latentlm speech-vae encode-data), read without the audio"
	fs.Lookup("limit").Usage = "use only the first N training utterances of each voice (0: all)"
	fs.StringVar(&o.Set, "set", o.Set, "text set: numbers, sentences or both")
	addReadingFlag(fs, &o.Reading)
	fs.StringVar(&o.SpeechVAE, "speech-vae", "", "speech tokenizer (default: the shipped weights/speech-vae)")
	fs.StringVar(&o.Init, "init", "", "start from the weights of this text-to-speech checkpoint (e.g. weights/tts) with a fresh optimiser and schedule")
	fs.StringVar(&o.Timbres, "timbres", "", "also train on the voices of this cache of other languages' voices (built by: latentlm speech data --timbres, into .deps/speech-timbres), as more speakers to take a voice from a prompt")
	fs.Int64Var(&o.SnapshotEvery, "snapshot-every", 0, "also keep the weights every N steps and at the last in --out/step-NNNNNN, to score them apart with eval --task tts --model")
	fs.Float64Var(&o.PromptSeconds, "prompt-seconds", o.PromptSeconds, "crop each voice prompt to a random window of this length (0: whole utterances)")
	fs.Float64Var(&o.TextDropout, "text-dropout", o.TextDropout, "probability of replacing the text by null tokens (for guidance)")
	fs.IntVar(&o.SeqLen, "seq-len", 0, "sequence length (max_len; 0: the longest sequence of the data)")
	fs.IntVar(&o.BatchMul, "batch-mul", o.BatchMul, "noise draws per latent frame (batch_mul)")
	fs.Float64Var(&o.DiffusionWeight, "diffusion-weight", o.DiffusionWeight, "λ of CE + λ·diffusion")
	fs.Float64Var(&o.InputNoise, "input-noise", o.InputNoise, "standard deviation of noise added to the latent frames the model reads, not to its targets (0: none)")
	fs.Float64Var(&o.Align, "align", o.Align, "weight of the guided attention loss that shows one head where the speech is in the text (0: none)")
	fs.Float64Var(&o.EMA, "ema", o.EMA, "EMA decay of the weights (generation uses the EMA)")
	addTrainGFLOPFlag(fs, &o.TrainGFLOP)
	fs.IntVar(&o.Stack, "stack", 1, "speech tokenizer frames read and written as one model frame (2: 12.5 frames a second of 64 values from the 25 Hz tokenizer; half the decoding steps)")
	addBackboneFlags(fs, &o.Model, "", "diffusion target: v (the paper's for speech; the default) or eps")
	fs.bound("prompt-seconds", 0, 60, false)
	fs.bound("text-dropout", 0, 1, false)
	fs.bound("seq-len", 0, 1<<16, false)
	fs.bound("diffusion-weight", 0, 1e6, false)
	fs.bound("input-noise", 0, 100, false)
	fs.bound("align", 0, 1e6, false)
	fs.bound("stack", 1, 16, false)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkTrainGFLOP(fs); err != nil {
		return err
	}
	if o.TextDropout >= 1 {
		return errors.New("--text-dropout must be below 1")
	}
	if o.SeqLen > 0 && o.SeqLen < 8 {
		return errors.New("--seq-len must be 0 (from the data) or at least 8")
	}
	return runSpeechTask(fs, &o.Options, "tts", args, func(ctx context.Context) error {
		_, err := recipe.TTS(ctx, o)
		return err
	})
}

// runSpeechTask runs `train --task task` (text-to-speech or the VALL-E
// baseline) on the speech data o.Data names (default: the cache of
// `latentlm speech data`), cancelled by Ctrl-C with a checkpoint saved.
func runSpeechTask(fs *flags, o *recipe.Options, task string, args []string, run func(ctx context.Context) error) error {
	dir, err := speechDir(o.Data)
	if err != nil {
		return err
	}
	o.Data = dir
	if !o.Quiet {
		o.Log = os.Stderr
	}
	ctx, cancel := signalContext()
	defer cancel()
	return runRecipe(fs, o, append([]string{"train", "--task", task}, args...), func() error { return run(ctx) })
}

// speakRequest is what speak was asked, checked before any model loads.
type speakRequest struct {
	text   string
	prompt []float32 // 16 kHz
	source string    // where the prompt came from
}

// checkSpeak checks speak's text, voice or prompt and output, reading the
// prompt's audio: every problem is one line, found before the model loads.
func checkSpeak(text, voice, promptPath, dataDir, out, modelDir string) (*speakRequest, error) {
	if tts.Normalize(text) == "" {
		return nil, errors.New("--text is empty: give the words to speak")
	}
	if !utf8.ValidString(text) {
		return nil, errors.New("--text is not valid UTF-8")
	}
	switch {
	case voice == "" && promptPath == "":
		return nil, errors.New("no voice: give --voice NAME (a voice of the speech data) or --prompt x.wav (an utterance to imitate)")
	case voice != "" && promptPath != "":
		return nil, errors.New("give --voice or --prompt, not both")
	}
	r := &speakRequest{text: text}
	if voice != "" {
		if _, err := speech.VoiceByName(voice); err != nil {
			return nil, fmt.Errorf("--voice: %w", err)
		}
		cache, err := speechDir(dataDir)
		if err != nil {
			return nil, err
		}
		_, utts, err := speech.Load(cache)
		if err != nil {
			return nil, fmt.Errorf("--voice %s needs the speech data: %w", voice, err)
		}
		for _, u := range utts {
			if u.Voice == voice && u.Split == speech.SplitTest {
				promptPath = filepath.Join(cache, u.File)
				r.source = fmt.Sprintf("%s (%s: %q)", voice, u.File, u.Text)
				break
			}
		}
		if promptPath == "" {
			return nil, fmt.Errorf("--voice %s: the speech data in %s has no test utterance of it", voice, cache)
		}
	} else {
		r.source = promptPath
	}
	x, err := readSpeech(promptPath)
	if err != nil {
		if voice != "" {
			return nil, fmt.Errorf("--voice %s: its utterance in the speech data: %w", voice, err)
		}
		return nil, fmt.Errorf("--prompt: %w", err)
	}
	if float64(len(x)) < tts.MinPromptSeconds*speech.Rate {
		return nil, fmt.Errorf("--prompt %s: %.3f s of audio is too short to carry a voice (want at least %v s)", promptPath, float64(len(x))/speech.Rate, tts.MinPromptSeconds)
	}
	r.prompt = x
	if err := guard.CheckOutputFormat(out, ".wav", promptPath, modelDir); err != nil {
		return nil, err
	}
	return r, nil
}

func runSpeak(args []string) error {
	fs := newFlags("speak", `speak --text "four hundred twelve" (--voice NAME | --prompt x.wav) [--out y.wav] [--model DIR] [--cfg 3] [--steps 5] [--max-seconds 10] [--seed 1] [--stream] [--alignment a.png]`)
	d := tts.DefaultOptions()
	backendName := fs.String("backend", "", "compute backend: onnx, go or xla")
	modelDir := fs.String("model", "", "text-to-speech checkpoint: LatentLM's, or the VALL-E-style baseline's (train --task valle; --steps, --cfg and --stream are LatentLM's) (default: the shipped weights/"+ttsDefault+" for spoken numbers, weights/"+ttsSentences+" for other text)")
	speechVAE := fs.String("speech-vae", "", "speech tokenizer (default: the model's own)")
	text := fs.String("text", "", "the words to speak, numbers spelt out")
	voice := fs.String("voice", "", "speak in this voice of the speech data, imitating its first test utterance ("+voiceNames()+")")
	prompt := fs.String("prompt", "", "speak in the voice of this WAV file (another utterance of the speaker)")
	dataDir := fs.String("data", "", "speech data cache for --voice (default .deps/speech)")
	out := fs.String("out", "speech.wav", "the WAV file to write (16 kHz mono)")
	fs.bound("steps", 0, 1000, false)
	steps := fs.Int("steps", d.Steps, "DPM-Solver++ steps per frame (the paper's TTS uses few: try 3, 5, 10; 0: DDPM over all 1000)")
	cfg := fs.Float64("cfg", d.CFG, "classifier-free guidance scale (the unconditional stream drops the text; 1: none)")
	temperature := fs.Float64("temperature", d.Temperature, "scale of the initial noise of each frame")
	seed := fs.Int64("seed", d.Seed, "random seed")
	maxSeconds := fs.Float64("max-seconds", d.MaxSeconds, "the most speech generated when the model does not end it itself")
	promptSeconds := fs.Float64("prompt-seconds", d.PromptSeconds, "keep the first seconds of the prompt (0: all that fits)")
	stream := fs.Bool("stream", false, "write the WAV in chunks while the frames are generated (the file grows; its header is completed at the end)")
	alignment := fs.String("alignment", "", "also draw where the guided attention head looked in the text while speaking, as this PNG (frames left to right, text units — characters or phonemes — top to bottom)")
	fs.bound("max-seconds", 0, 3600, true)
	fs.bound("prompt-seconds", 0, 3600, false)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if p := *promptSeconds; p > 0 && p < tts.MinPromptSeconds {
		return fmt.Errorf("--prompt-seconds %v: want 0 (all of the prompt) or at least %v s, the least that carries a voice", p, tts.MinPromptSeconds)
	}
	req, err := checkSpeak(*text, *voice, *prompt, *dataDir, *out, *modelDir)
	if err != nil {
		return err
	}
	if *alignment != "" {
		if err := guard.CheckOutputFormat(*alignment, ".png", *out, *modelDir); err != nil {
			return fmt.Errorf("--alignment: %w", err)
		}
	}
	opts := tts.Options{SampleOptions: lm.SampleOptions{Steps: *steps, CFG: *cfg, Temperature: *temperature, Seed: *seed},
		MaxSeconds: *maxSeconds, PromptSeconds: *promptSeconds, Batch: 1}
	sentences := !speech.IsNumberText(req.text)
	dir, err := ttsModel(*modelDir, sentences)
	if err != nil {
		return err
	}
	if *modelDir == "" && filepath.Base(dir) == ttsSentences { // not where ttsModel fell back to weights/tts
		fmt.Printf("model %s: the shipped model for text that is not a spoken number\n", dir)
	}
	b, _, err := openBackend(*backendName)
	if err != nil {
		return err
	}
	kind, err := checkpoint.ReadKind(dir)
	if err != nil {
		return err
	}
	if kind == valle.Kind {
		if *stream {
			return fmt.Errorf("--stream: %s is a VALL-E-style baseline, whose audio exists only once its NAR has filled every codebook; stream with a LatentLM model", dir)
		}
		if *alignment != "" {
			return fmt.Errorf("--alignment: %s is a VALL-E-style baseline, and --alignment draws LatentLM models only", dir)
		}
		vo := valleOptions(opts)
		vo.Temperature = *temperature
		return speakVALLE(b, dir, *speechVAE, opts, vo, req, *out)
	}
	m, err := tts.Load(b, dir, *speechVAE, opts)
	if err != nil {
		return err
	}
	defer m.Close()
	if _, err := m.Format.Encode(req.text); err != nil {
		return fmt.Errorf("--text: %w", err)
	}
	if err := fs.checkMemory("speaking", m.Config.Activations(2, m.Config.MaxLen, 1, false)+*maxSeconds*speech.Rate*4*8); err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	var ws *wavStream
	var firstChunk time.Duration
	var onChunk func([]float32) error
	start := time.Now()
	if *stream {
		if ws, err = createWAVStream(*out); err != nil {
			return err
		}
		defer ws.abort()
		onChunk = func(y []float32) error {
			if firstChunk == 0 {
				firstChunk = time.Since(start)
			}
			return ws.write(y)
		}
	}
	s, err := m.Speak(ctx, req.text, req.prompt, onChunk)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	if ws != nil {
		err = ws.close()
	} else {
		err = wav.Write(*out, wav.Audio{Rate: tts.Rate, Samples: s.Samples})
	}
	if err != nil {
		return err
	}
	secs := float64(len(s.Samples)) / tts.Rate
	how := howEnded(s.Stopped, *maxSeconds)
	fmt.Printf("wrote %s: %.2f s of speech, %d frames, %s; voice prompt %.2f s from %s\n", *out, secs, len(s.Frames), how, m.Format.Seconds(s.PromptFrames), req.source)
	rtf := elapsed.Seconds() / max(secs, 1e-9)
	fmt.Printf("generated in %.2f s: real-time factor %.3f (%d solver steps, guidance %g)", elapsed.Seconds(), rtf, *steps, *cfg)
	if ws != nil {
		fmt.Printf("; first audio after %.2f s", firstChunk.Seconds())
	}
	fmt.Println()
	if *alignment != "" {
		frames, err := m.Prompt(req.prompt)
		if err != nil {
			return err
		}
		a, err := m.Alignment(tts.Request{Text: req.text, Prompt: frames}, s.Frames)
		if err != nil {
			return err
		}
		if err := a.WritePNG(*alignment); err != nil {
			return err
		}
		fmt.Printf("wrote %s: the guided head's reading of the text (a diagonal when it reads in step)\n", *alignment)
	}
	return nil
}

// speakVALLE is speak for the VALL-E-style baseline in dir (package valle):
// the same request, prompt crop and report, its codes drawn as vo says.
func speakVALLE(b compute.Backend, dir, codecDir string, opts tts.Options, vo valle.Options, req *speakRequest, out string) error {
	s, err := valleSpeaker(b, dir, codecDir, opts)
	if err != nil {
		return err
	}
	defer s.Close()
	if _, err := s.Model.Format.Text.Encode(req.text); err != nil {
		return fmt.Errorf("--text: %w", err)
	}
	ctx, cancel := signalContext()
	defer cancel()
	start := time.Now()
	sp, err := s.Speak(ctx, req.text, req.prompt, vo, uint64(opts.Seed))
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	if err := wav.Write(out, wav.Audio{Rate: tts.Rate, Samples: sp.Samples}); err != nil {
		return err
	}
	secs := float64(len(sp.Samples)) / tts.Rate
	how := howEnded(sp.Stopped, vo.MaxSeconds)
	fmt.Printf("wrote %s: %.2f s of speech, %d frames of %d codes, %s; voice prompt from %s\n", out, secs, len(sp.Codes), s.Model.Config.Codebooks, how, req.source)
	fmt.Printf("generated in %.2f s: real-time factor %.3f (VALL-E-style: %d AR steps and %d NAR passes, codes at temperature %g among the %d likeliest)\n",
		elapsed.Seconds(), elapsed.Seconds()/max(secs, 1e-9), sp.ARSteps, sp.NARPasses, vo.Temperature, vo.TopK)
	return nil
}

// howEnded says how speak's utterance ended: by the model, or cut by the
// length bound.
func howEnded(stopped bool, maxSeconds float64) string {
	if stopped {
		return "ended by the model's <EOL>"
	}
	return fmt.Sprintf("cut at --max-seconds %g or max_len: the model did not end it", maxSeconds)
}

// voiceNames lists the voices of the speech data.
func voiceNames() string {
	names := make([]string, len(speech.Voices))
	for i, v := range speech.Voices {
		names[i] = v.Name
	}
	return strings.Join(names, ", ")
}

// wavStream writes a 16 kHz mono WAV file as its audio arrives: the header
// first (with no data), the samples as they come, and the sizes when it
// is closed. Unlike wav.Write it is not atomic: the file grows, so that a
// player can start on it.
type wavStream struct {
	f    *os.File
	n    int
	done bool
}

func createWAVStream(path string) (*wavStream, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	w := &wavStream{f: f}
	if err := wav.Encode(f, wav.Audio{Rate: tts.Rate}); err != nil {
		w.abort()
		return nil, err
	}
	return w, nil
}

func (w *wavStream) write(y []float32) error {
	if w.n+len(y) > wav.MaxSamples {
		return fmt.Errorf("%s: more audio than a WAV file holds", w.f.Name())
	}
	if _, err := w.f.Write(wav.PCM16(y)); err != nil {
		return err
	}
	w.n += len(y)
	return nil
}

// close writes the sizes into the header and closes the file.
func (w *wavStream) close() error {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], uint32(36+2*w.n))
	if _, err := w.f.WriteAt(b[:], 4); err != nil {
		return err
	}
	binary.LittleEndian.PutUint32(b[:], uint32(2*w.n))
	if _, err := w.f.WriteAt(b[:], 40); err != nil {
		return err
	}
	if err := w.f.Sync(); err != nil {
		return err
	}
	w.done = true
	return w.f.Close()
}

// abort removes a file that was not completed.
func (w *wavStream) abort() {
	if !w.done {
		w.f.Close()
		os.Remove(w.f.Name())
		w.done = true
	}
}
