package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/latentlm/latentlm/internal/guard"
	"github.com/latentlm/latentlm/phoneme"
	"github.com/latentlm/latentlm/recipe"
	"github.com/latentlm/latentlm/speech"
	"github.com/latentlm/latentlm/text"
	"github.com/latentlm/latentlm/tts"
	"github.com/latentlm/latentlm/wav"
)

// The speech demo's recipe (`demo --task speech --train`): text-to-speech
// on the spoken numbers of the default speech data, in one hour of the
// command on two cores (the CPU recipe), reading the shipped speech
// tokenizer. Batch 8 instead of train's 16: at this budget the model is
// short of steps, not of examples, and a batch of 8 takes 0.57 of the time
// of 16 on two cores. The default data's 400 texts, not more: in an hour
// each is seen about 21 times, and four times the texts read worse at a
// like step. The hour reaches 41.6% WER on 70 held-out texts, where the
// first recipe (batch 16, before guided attention) had reached 93.3%
// (docs/RESULTS.md, "The CPU recipe in one hour").
const (
	demoSpeechBudget = time.Hour
	demoSpeechBatch  = 8
	// demoSpeechReserve is kept from the budget for what follows training:
	// eval --task tts on 70 held-out texts (≈ 35 s), loading and speaking.
	demoSpeechReserve = 2 * time.Minute
	// demoSpeechVoice speaks the prompt; it is one of the training voices.
	demoSpeechVoice = "flite-slt"
)

// demoUtterance is one text the speech demo speaks, and what it got.
type demoUtterance struct {
	text, set, model string
	speech           *tts.Speech
	elapsed          time.Duration
}

// demoSpeech is `demo --task speech`: flite-slt says a held-out spoken
// number, which becomes the voice prompt; LatentLM then says another
// held-out number (weights/tts) and a sentence of the fortunes' validation
// documents (weights/tts-sentences) in that voice. It writes both into one
// WAV with its spectrogram beside it, and pocketsphinx says what it heard.
// With retrain it first trains the numbers model from scratch within the
// time budget (data, training and the held-out scores together), scores it
// on 70 held-out texts, and speaks the number with it.
func demoSpeech(fs *flags, backendName, dir, out string, seed uint64, retrain, quiet bool, budget time.Duration) error {
	start := time.Now()
	if err := guard.CheckOutputFormat(out, ".wav"); err != nil {
		return fmt.Errorf("--out: %w (its spectrogram goes beside it as .png)", err)
	}
	picture := strings.TrimSuffix(out, filepath.Ext(out)) + ".png"
	if err := guard.CheckOutput(picture); err != nil {
		return err
	}
	voice, err := speech.VoiceByName(demoSpeechVoice)
	if err != nil {
		return err
	}
	if err := speech.CheckVoice(voice); err != nil {
		return fmt.Errorf("the speech demo's voice prompt is spoken by %s: %w (make setup installs it)", voice.Name, err)
	}
	numbersModel, sentenceModel := "", ""
	if retrain {
		if budget < 10*time.Minute {
			return fmt.Errorf("--time %s: the speech recipe needs at least 10m (the data, training, then %s for the held-out scores)", budget, demoSpeechReserve)
		}
		if numbersModel, err = demoTrainTTS(fs, backendName, dir, seed, quiet, start.Add(budget-demoSpeechReserve)); err != nil {
			return err
		}
		fmt.Printf("trained %s in %s; its scores on 70 held-out texts (eval --task tts --model %s --n 10):\n", numbersModel, time.Since(start).Round(time.Second), numbersModel)
		evalArgs := []string{"--model", numbersModel, "--set", speech.SetNumbers, "--n", "10"}
		if backendName != "" {
			evalArgs = append(evalArgs, "--backend", backendName)
		}
		if err := runEvalTTS(evalArgs); err != nil {
			return fmt.Errorf("scoring %s: %w", numbersModel, err)
		}
	} else {
		if numbersModel, err = weightsDir(ttsDefault); err != nil {
			return fmt.Errorf("no shipped text-to-speech model: %w (train one with demo --task speech --train)", err)
		}
		if sentenceModel, err = weightsDir(ttsSentences); err != nil {
			fmt.Fprintf(os.Stderr, "no shipped %s (%v): the demo says a number only\n", ttsSentences, err)
		}
	}

	// Held-out texts: the test split's spoken numbers of speech data's plan
	// (the first is the prompt's), and a sentence no training text holds.
	plan := speech.DefaultOptions("")
	numbers := speech.NumberTexts(plan.Seed, plan.Eval)
	utts := []demoUtterance{{text: numbers[1].Words, set: speech.SetNumbers, model: numbersModel}}
	if sentenceModel != "" {
		if s, err := demoSentence(); err != nil {
			fmt.Fprintf(os.Stderr, "no sentence to say: %v; the demo says a number only\n", err)
		} else {
			utts = append(utts, demoUtterance{text: s, set: speech.SetSentences, model: sentenceModel})
		}
	}

	ctx, cancel := signalContext()
	defer cancel()
	tmp, err := os.MkdirTemp("", "latentlm-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// The prompt, and flite-slt's own reading of each text: the judge's
	// score on it is the yardstick of the model's.
	texts, paths := []string{numbers[0].Words}, []string{filepath.Join(tmp, "prompt.wav")}
	for i, u := range utts {
		texts, paths = append(texts, u.text), append(paths, filepath.Join(tmp, fmt.Sprintf("original%d.wav", i)))
	}
	if _, err := speech.Synthesize(ctx, voice, texts, paths); err != nil {
		return fmt.Errorf("%s reading the prompt and the texts: %w", voice.Name, err)
	}
	prompt, err := readSpeech(paths[0])
	if err != nil {
		return fmt.Errorf("the voice prompt: %w", err)
	}
	originals := make([][]float32, len(utts))
	for i := range utts {
		if originals[i], err = readSpeech(paths[i+1]); err != nil {
			return err
		}
	}
	fmt.Printf("voice prompt: %s says %q (%.2f s)\n", voice.Name, numbers[0].Words, float64(len(prompt))/speech.Rate)

	b, _, err := openBackend(backendName)
	if err != nil {
		return err
	}
	opts := tts.DefaultOptions()
	opts.Batch = 1
	var joined []float32
	for i := range utts {
		u := &utts[i]
		m, err := tts.Load(b, u.model, "", opts)
		if err != nil {
			return err
		}
		t0 := time.Now()
		u.speech, err = m.Speak(ctx, u.text, prompt, nil)
		m.Close()
		if err != nil {
			return fmt.Errorf("speaking %q with %s: %w", u.text, u.model, err)
		}
		u.elapsed = time.Since(t0)
		if i > 0 {
			joined = append(joined, make([]float32, speech.Rate/2)...) // half a second between
		}
		joined = append(joined, u.speech.Samples...)
	}
	audio := wav.Audio{Rate: tts.Rate, Samples: joined}
	if err := wav.Write(out, audio); err != nil {
		return err
	}
	if err := speech.WriteSpectrogram(picture, audio); err != nil {
		return err
	}

	// What an independent listener heard.
	judge, jerr := speech.NewJudge()
	if jerr != nil {
		fmt.Fprintf(os.Stderr, "pocketsphinx is not installed (%v): what was said is not judged\n", jerr)
	}
	for i, u := range utts {
		secs := float64(len(u.speech.Samples)) / tts.Rate
		fmt.Printf("%s said %q: %.2f s (%s's own: %.2f s), %s, real-time factor %.2f\n", u.model, u.text, secs, voice.Name,
			float64(len(originals[i]))/speech.Rate, howEnded(u.speech.Stopped, opts.MaxSeconds), u.elapsed.Seconds()/max(secs, 1e-9))
		if judge == nil {
			continue
		}
		// The model's utterance and flite's, in one pocketsphinx run.
		clips := []wav.Audio{{Rate: tts.Rate, Samples: u.speech.Samples}, {Rate: speech.Rate, Samples: originals[i]}}
		heard, err := judge.Transcribe(ctx, clips, speech.GrammarFor(u.set))
		if err != nil {
			return fmt.Errorf("judging %q: %w", u.text, err)
		}
		w, wo := speech.WordErrors(u.text, heard[0]), speech.WordErrors(u.text, heard[1])
		fmt.Printf("  pocketsphinx heard %q (%d of %d words wrong); from %s itself %q (%d wrong)\n", heard[0], w.Errors, w.Words, voice.Name, heard[1], wo.Errors)
	}
	fmt.Printf("wrote %s (%.2f s) and its spectrogram %s\n", out, float64(len(joined))/tts.Rate, picture)
	return nil
}

// demoSentence is the first sentence of the fortunes' validation documents
// that speech data would render: text no training run has read.
func demoSentence() (string, error) {
	known, err := speech.ReadDictionary(phoneme.DictionaryPath)
	if err != nil {
		return "", fmt.Errorf("the pronouncing dictionary (make setup installs it): %w", err)
	}
	_, valid, err := text.Fortunes(text.FortunesDir)
	if err != nil {
		return "", err
	}
	s := speech.Sentences(valid, known)
	if len(s) == 0 {
		return "", errors.New("the fortunes' validation documents hold no sentence to say")
	}
	return s[0], nil
}

// demoTrainTTS is the training of `demo --task speech --train`: the speech
// data (rendered once into .deps/speech), then `train --task tts --set
// numbers --batch 8` until deadline, into dir/tts-numbers.
func demoTrainTTS(fs *flags, backendName, dir string, seed uint64, quiet bool, deadline time.Time) (string, error) {
	dataArgs := []string{}
	if quiet {
		dataArgs = append(dataArgs, "--quiet")
	}
	if err := speechData(dataArgs); err != nil {
		return "", fmt.Errorf("the speech data: %w", err)
	}
	if left := time.Until(deadline); left < 5*time.Minute {
		return "", fmt.Errorf("the speech data took the time budget: %s left for training, want at least 5m (give a longer --time)", left.Round(time.Second))
	}
	o := recipe.DefaultTTSOptions()
	cache, err := speechDir("")
	if err != nil {
		return "", err
	}
	o.Backend, o.Data, o.Out, o.Quiet, o.Seed = backendName, cache, filepath.Join(dir, "tts-numbers"), quiet, seed
	o.Batch, o.Steps, o.Deadline = demoSpeechBatch, 1_000_000, deadline
	if !quiet {
		o.Log = os.Stderr
	}
	ctx, cancel := signalContext()
	defer cancel()
	command := []string{"train", "--task", "tts", "--set", o.Set, "--batch", fmt.Sprint(o.Batch), "--out", o.Out, "--seed", fmt.Sprint(seed)}
	if err := runRecipe(fs, &o.Options, command, func() error {
		_, err := recipe.TTS(ctx, o)
		return err
	}); err != nil {
		return "", err
	}
	return o.Out, nil
}
