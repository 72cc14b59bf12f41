package recipe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/evaluate"
	"github.com/latentlm/latentlm/internal/testspeech"
	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/speech"
	"github.com/latentlm/latentlm/tts"
	"github.com/latentlm/latentlm/wav"
)

// tinySpeechData writes a speech cache of two voices, three training and
// one test utterance each (tones whose pitch is the voice and whose length
// follows the text), and a tiny untrained speech tokenizer; it returns
// both folders.
func tinySpeechData(t *testing.T) (cache, tokenizer string) {
	t.Helper()
	root := t.TempDir()
	cache = filepath.Join(root, "speech")
	texts := []string{"one", "twenty two", "three hundred", "four"}
	var tsv strings.Builder
	tsv.WriteString("file\tsplit\tset\tvoice\tseconds\ttext\n")
	for v, voice := range []string{"flite-awb", "flite-slt"} {
		if err := os.MkdirAll(filepath.Join(cache, "wav", voice), 0o755); err != nil {
			t.Fatal(err)
		}
		for i, text := range texts {
			split := speech.SplitTrain
			if i == len(texts)-1 {
				split = speech.SplitTest
			}
			n := 2000 + 900*len(text)
			x := make([]float32, n)
			for k := range x {
				x[k] = float32(0.3 * math.Sin(2*math.Pi*float64(150+100*v)*float64(k)/speech.Rate))
			}
			file := fmt.Sprintf("wav/%s/numbers-%s-%04d.wav", voice, split, i)
			if err := wav.Write(filepath.Join(cache, file), wav.Audio{Rate: speech.Rate, Samples: x}); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&tsv, "%s\t%s\t%s\t%s\t%.4f\t%s\n", file, split, speech.SetNumbers, voice, float64(n)/speech.Rate, text)
		}
	}
	if err := os.WriteFile(filepath.Join(cache, speech.UtterancesFile), []byte(tsv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cache, speech.ManifestFile), []byte(`{"format": 1, "rate": 16000}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tokenizer = filepath.Join(root, "speech-vae")
	testspeech.Save(t, 0, tokenizer)
	return cache, tokenizer
}

func tinyTTSOptions(cache, tokenizer, out string, steps int64) TTSOptions {
	o := DefaultTTSOptions()
	o.Data, o.SpeechVAE, o.Out, o.Quiet = cache, tokenizer, out, true
	o.Steps, o.SaveEvery, o.Batch, o.BatchMul = steps, 0, 4, 2
	o.Model.Dim, o.Model.Depth, o.Model.Heads, o.Model.KVHeads, o.Model.HeadDim, o.Model.HeadDepth = 32, 1, 2, 2, 32, 1
	return o
}

// resumeIsExact trains with train straight to 4 steps in root/straight,
// and to 2 steps, then resumed to 4, in root/resumed, and fails the test
// (naming the run what) unless both end with the same weights: the
// batches and noise of a recipe depend on its seed and step alone.
func resumeIsExact(t *testing.T, what, root string, train func(out string, steps int64, resume bool) error) {
	t.Helper()
	straight, resumed := filepath.Join(root, "straight"), filepath.Join(root, "resumed")
	for _, run := range []struct {
		out    string
		steps  int64
		resume bool
	}{{straight, 4, false}, {resumed, 2, false}, {resumed, 4, true}} {
		if err := train(run.out, run.steps, run.resume); err != nil {
			t.Fatal(err)
		}
	}
	a, err := os.ReadFile(filepath.Join(straight, checkpoint.WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(resumed, checkpoint.WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("%s stopped at step 2 and resumed to 4 differs from one run straight to 4", what)
	}
}

// TestTTS: a tiny run on a synthetic speech cache writes a checkpoint that
// records its alphabet, frame rate and speech tokenizer, loads and speaks;
// a run (with input noise) stopped and resumed ends with the weights of the run that was not
// stopped (the batches depend only on seed and step); bad options are
// refused.
func TestTTS(t *testing.T) {
	cache, tokenizer := tinySpeechData(t)
	ctx := context.Background()
	root := t.TempDir()
	straight := tinyTTSOptions(cache, tokenizer, filepath.Join(root, "straight"), 4)
	resumeIsExact(t, "a run", root, func(out string, steps int64, resume bool) error {
		o := tinyTTSOptions(cache, tokenizer, out, steps)
		o.Resume, o.InputNoise, o.Align = resume, 0.3, 2 // the input noise's draws resume too
		_, err := TTS(ctx, o)
		return err
	})

	opts := tts.DefaultOptions()
	opts.MaxSeconds = 0.4
	m, err := tts.Load(testutil.Backend(t, ""), straight.Out, "", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if got := m.Info["input_noise"]; got != 0.3 {
		t.Errorf("the checkpoint records input noise %v, want 0.3", got)
	}
	if got := m.Info["align"]; got != 2.0 {
		t.Errorf("the checkpoint records alignment weight %v, want 2", got)
	}
	if m.Format.AlphabetString() != tts.Alphabet || m.Format.FrameRate != 25 || m.Config.MaxLen%8 != 0 {
		t.Errorf("format %q at %g Hz, max_len %d", m.Format.AlphabetString(), m.Format.FrameRate, m.Config.MaxLen)
	}
	// The longest row, counted with each voice's longest utterance as the
	// prompt: 13 700 samples (22 frames), and its text of 13 characters.
	if want := (tts.RowLen(22, 13, 22) + 7) / 8 * 8; m.Config.MaxLen != want {
		t.Errorf("max_len %d, want %d", m.Config.MaxLen, want)
	}
	// A budget of the straight run's counted work trains its 4 steps,
	// whatever --steps says, and records the same work.
	work, _ := m.Info["train_gflop"].(float64)
	budget := tinyTTSOptions(cache, tokenizer, filepath.Join(root, "budget"), 9)
	budget.TrainGFLOP = work
	if _, err := TTS(ctx, budget); err != nil {
		t.Fatal(err)
	}
	if info, err := evaluate.SnapshotInfo(budget.Out); err != nil || info.Steps != 4 || math.Abs(info.GFLOP-work) > 1e-9*work || work <= 0 {
		t.Errorf("a budget of %g GFLOP (4 steps) trained %+v (%v)", work, info, err)
	}
	prompt := make([]float32, 8000)
	s, err := m.Speak(ctx, "twenty two", prompt, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Samples) != len(s.Frames)*640 || len(s.Frames) == 0 || len(s.Frames) > 10 {
		t.Errorf("%d frames, %d samples", len(s.Frames), len(s.Samples))
	}

	for _, c := range []struct {
		change func(*TTSOptions)
		want   string
	}{
		{func(o *TTSOptions) { o.Set = "poems" }, "unknown text set"},
		{func(o *TTSOptions) { o.SeqLen = 10 }, "too short"},
		{func(o *TTSOptions) { o.TextDropout = 1 }, "dropout"},
		{func(o *TTSOptions) { o.InputNoise = -1 }, "input noise"},
		{func(o *TTSOptions) { o.Align = -1 }, "align -1 is out of range"},
		{func(o *TTSOptions) { o.PromptSeconds = 61 }, "prompt-seconds 61 is out of range"},
		{func(o *TTSOptions) { o.Set = speech.SetSentences }, "no training utterances"},
	} {
		o := tinyTTSOptions(cache, tokenizer, filepath.Join(root, "bad"), 1)
		c.change(&o)
		if _, err := TTS(ctx, o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error with %q", c, err, c.want)
		}
	}
}

// TestTTSStacked: a run that stacks two frames of the speech tokenizer
// trains on frames of twice the channels at half the rate, records the
// stacking, so that the loaded model reads and speaks 12.5 Hz frames of
// 1280 samples, and counts its sequences in stacked frames.
func TestTTSStacked(t *testing.T) {
	cache, tokenizer := tinySpeechData(t)
	ctx := context.Background()
	o := tinyTTSOptions(cache, tokenizer, filepath.Join(t.TempDir(), "stacked"), 2)
	o.Stack = 2
	if _, err := TTS(ctx, o); err != nil {
		t.Fatal(err)
	}
	opts := tts.DefaultOptions()
	opts.MaxSeconds = 0.4
	m, err := tts.Load(testutil.Backend(t, ""), o.Out, "", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Format.Stack != 2 || m.Format.FrameRate != 12.5 || m.Config.Latent != 2*testspeech.Channels {
		t.Fatalf("stack %d at %g Hz, %d channels; want 2 at 12.5 Hz, %d", m.Format.Stack, m.Format.FrameRate, m.Config.Latent, 2*testspeech.Channels)
	}
	// The longest utterance, 22 of the tokenizer's frames, is 11 stacked.
	if want := (tts.RowLen(11, 13, 11) + 7) / 8 * 8; m.Config.MaxLen != want {
		t.Errorf("max_len %d, want %d", m.Config.MaxLen, want)
	}
	s, err := m.Speak(ctx, "twenty two", make([]float32, 8000), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Frames) == 0 || len(s.Frames) > 5 || len(s.Samples) != len(s.Frames)*1280 || s.PromptFrames != 7 {
		t.Errorf("%d frames, %d samples, prompt of %d frames; want 1 to 5 frames of 1280 samples after 7", len(s.Frames), len(s.Samples), s.PromptFrames)
	}
	// A resumed run keeps its stacking; an unstacked run cannot be resumed
	// stacked (its weights read frames of half the width).
	o.Stack, o.Resume, o.Steps = 1, true, 3
	if _, err := TTS(ctx, o); err != nil {
		t.Fatalf("resuming a stacked run: %v", err)
	}
	if m, err := tts.Load(testutil.Backend(t, ""), o.Out, "", opts); err != nil || m.Format.Stack != 2 {
		t.Errorf("resumed without --stack: %v", err)
	} else {
		m.Close()
	}
	plain := tinyTTSOptions(cache, tokenizer, filepath.Join(t.TempDir(), "plain"), 1)
	if _, err := TTS(ctx, plain); err != nil {
		t.Fatal(err)
	}
	plain.Stack, plain.Resume, plain.Steps = 2, true, 2
	if _, err := TTS(ctx, plain); err == nil || !strings.Contains(err.Error(), "channels") {
		t.Errorf("an unstacked run resumed stacked: %v", err)
	}
}

// TestTTSTrainFLOPs: the work a TTS run records counts, for every step,
// the diffusion head on the rows the batch gathers for it (tts.Batch
// HeadRows), which trainGFLOP recounts from the steps' picks alone.
func TestTTSTrainFLOPs(t *testing.T) {
	f, err := tts.NewFormat("abc ", 3, 25)
	if err != nil {
		t.Fatal(err)
	}
	c := &ttsCorpus{scale: make([]float32, 3)}
	for i := range 12 {
		c.texts = append(c.texts, make([]int, 1+i%4))
		c.frames = append(c.frames, make([][]float32, 3+5*i))
		for k := range c.frames[i] {
			c.frames[i][k] = make([]float32, 3)
		}
		c.voice = append(c.voice, i%3)
	}
	c.byVoice = [][]int{{0, 3, 6, 9}, {1, 4, 7, 10}, {2, 5, 8, 11}}
	o := DefaultTTSOptions()
	o.Batch, o.BatchMul, o.SeqLen = 5, 4, 140
	const promptMax, steps = 20, 6
	cfg := o.Model
	cfg.Vocab, cfg.Latent, cfg.MaxLen = f.Vocab, f.Channels, o.SeqLen
	var want float64
	sizes := map[int]bool{}
	for step := range int64(steps) {
		bt, err := c.batch(f, o, promptMax, step)
		if err != nil {
			t.Fatal(err)
		}
		sizes[len(bt.HeadRows)] = true
		want += 3 * cfg.ForwardFLOPsRows(o.Batch, o.SeqLen, len(bt.HeadRows), o.BatchMul) / 1e9
	}
	got := c.trainGFLOP(cfg, o, promptMax, 0, 2) + c.trainGFLOP(cfg, o, promptMax, 2, steps)
	if math.Abs(got-want) > 1e-9*want {
		t.Errorf("trainGFLOP %.9g, the batches' head rows give %.9g", got, want)
	}
	if all := 3 * cfg.ForwardFLOPs(o.Batch, o.SeqLen, o.BatchMul) * steps / 1e9; got >= all {
		t.Errorf("trainGFLOP %.6g: not below the head at every position (%.6g)", got, all)
	}
	t.Logf("%d steps: %.4g GFLOP (%d sizes of head rows)", steps, got, len(sizes))
}

// TestTTSInit: a run started with Init from another text-to-speech
// checkpoint begins with its weights (at a learning rate of nearly 0 it
// ends with them, although its own seed would draw others) and records
// where it began; a checkpoint of another kind, or one trained on another
// speech tokenizer, is refused.
func TestTTSInit(t *testing.T) {
	cache, tokenizer := tinySpeechData(t)
	ctx := context.Background()
	root := t.TempDir()
	from := filepath.Join(root, "from")
	if _, err := TTS(ctx, tinyTTSOptions(cache, tokenizer, from, 2)); err != nil {
		t.Fatal(err)
	}
	o := tinyTTSOptions(cache, tokenizer, filepath.Join(root, "init"), 1)
	o.Init, o.LR, o.Seed = from, 1e-12, 7
	if _, err := TTS(ctx, o); err != nil {
		t.Fatal(err)
	}
	weight := func(dir string) []float32 {
		store, _, _, err := lm.LoadKind(dir, tts.Kind, &lm.Config{})
		if err != nil {
			t.Fatal(err)
		}
		return weightValues(t, store, "blocks.0.attn.qkv.weight")
	}
	want, got := weight(from), weight(o.Out)
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > 1e-6 {
			t.Fatalf("weight %d is %g, want %g (the init checkpoint's)", i, got[i], want[i])
		}
	}
	opts := tts.DefaultOptions()
	m, err := tts.Load(testutil.Backend(t, ""), o.Out, "", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Info["init"] != from {
		t.Errorf("the checkpoint records init %v, want %s", m.Info["init"], from)
	}

	// A model that reads phonemes, started from the one that reads
	// characters: the same backbone, its own text embedding and softmax
	// head (another vocabulary), and a checkpoint that spells its texts.
	ph := tinyTTSOptions(cache, tokenizer, filepath.Join(root, "phonemes"), 1)
	ph.Init, ph.LR, ph.Reading = from, 1e-12, tts.ReadPhonemes
	if _, err := TTS(ctx, ph); err != nil {
		t.Fatal(err)
	}
	for i, v := range weight(ph.Out) {
		if math.Abs(float64(v-want[i])) > 1e-6 {
			t.Fatalf("the phoneme model's weight %d is %g, want %g: its backbone did not start from the character model's", i, v, want[i])
		}
	}
	pm, err := tts.Load(testutil.Backend(t, ""), ph.Out, "", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	if pm.Format.Reading != tts.ReadPhonemes || pm.Info["reading"] != tts.ReadPhonemes || pm.Format.Vocab == m.Format.Vocab {
		t.Errorf("the phoneme model reads %q (info %v), vocabulary %+v", pm.Format.Reading, pm.Info["reading"], pm.Format.Vocab)
	}
	if ids, err := pm.Format.Encode("twenty one"); err != nil || pm.Format.Decode(ids) != "twɛnti wʌn" {
		t.Errorf("the phoneme model reads twenty one as %q (%v)", pm.Format.Decode(ids), err)
	}
	// It speaks a word no dictionary holds (festival spells it), and
	// refuses digits with the text error speak and the server pass on.
	prompt := make([][]float32, 10)
	for i := range prompt {
		prompt[i] = make([]float32, pm.Format.Channels)
	}
	res, err := pm.Generate(ctx, []tts.Request{{Text: "Blorptastic twenty.", Prompt: prompt}}, nil)
	if err != nil || len(res) != 1 || len(res[0].Frames) == 0 {
		t.Errorf("the phoneme model on a word outside the dictionary: %v", err)
	}
	var te *tts.TextError
	if _, err := pm.Generate(ctx, []tts.Request{{Text: "room 101", Prompt: prompt}}, nil); !errors.As(err, &te) || !strings.Contains(err.Error(), "spell numbers out") {
		t.Errorf("the phoneme model on digits: %v, want a TextError asking for words", err)
	}
	bad := tinyTTSOptions(cache, tokenizer, filepath.Join(root, "bad-reading"), 1)
	bad.Reading = "runes"
	var oe *OptionError
	if _, err := TTS(ctx, bad); !errors.As(err, &oe) || oe.Option != "reading" {
		t.Errorf("reading runes: %v, want an OptionError naming reading", err)
	}

	// The same tokenizer but for one value: another SHA-256.
	other := filepath.Join(root, "other-vae")
	if err := os.CopyFS(other, os.DirFS(tokenizer)); err != nil {
		t.Fatal(err)
	}
	weights := filepath.Join(other, checkpoint.WeightsFile)
	b, err := os.ReadFile(weights)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 1
	if err := os.WriteFile(weights, b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ speechVAE, init, want string }{
		{other, from, "trained on the speech tokenizer"},
		{tokenizer, tokenizer, "want tts"},
	} {
		o := tinyTTSOptions(cache, c.speechVAE, filepath.Join(root, "bad"), 1)
		o.Init = c.init
		if _, err := TTS(ctx, o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("init %s with speech tokenizer %s: %v, want an error with %q", c.init, c.speechVAE, err, c.want)
		}
		os.RemoveAll(o.Out)
	}
}

// TestTTSFromCorpus: a run that reads a corpus file (EncodeSpeechCorpus)
// records the same tokenizer and follows the same losses, step by step,
// as the run that encodes the audio itself (the file's halves move each
// frame by at most 2⁻¹¹ of itself); a corpus of another split, or of
// another tokenizer than --speech-vae, is refused.
func TestTTSFromCorpus(t *testing.T) {
	cache, tokenizer := tinySpeechData(t)
	ctx := context.Background()
	root := t.TempDir()
	corpus := filepath.Join(root, "train.safetensors")
	co := SpeechCorpusOptions{Data: cache, Split: speech.SplitTrain, Set: speech.SetNumbers, SpeechVAE: tokenizer, Out: corpus}
	c, err := EncodeSpeechCorpus(ctx, co)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Utterances) != 6 {
		t.Fatalf("%d training utterances encoded, want 6", len(c.Utterances))
	}
	fromAudio := tinyTTSOptions(cache, tokenizer, filepath.Join(root, "audio"), 20)
	fromFile := tinyTTSOptions(corpus, "", filepath.Join(root, "file"), 20)
	var hist [2][]float64
	var toks [2]lm.Tokenizer
	for i, o := range []TTSOptions{fromAudio, fromFile} {
		r, err := TTS(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range r.History {
			hist[i] = append(hist[i], p.Loss)
		}
		raw, err := os.ReadFile(filepath.Join(o.Out, "config.json"))
		if err != nil {
			t.Fatal(err)
		}
		var rec struct {
			Info struct {
				Tokenizer lm.Tokenizer `json:"tokenizer"`
			} `json:"info"`
		}
		if err := json.Unmarshal(raw, &rec); err != nil {
			t.Fatal(err)
		}
		toks[i] = rec.Info.Tokenizer
	}
	if toks[0].Path != toks[1].Path || toks[0].SHA256 != toks[1].SHA256 || toks[0].Path != tokenizer {
		t.Errorf("tokenizer records differ: from audio %+v, from the corpus %+v", toks[0], toks[1])
	}
	if len(hist[0]) != 2 || len(hist[1]) != 2 { // a point every 10 steps
		t.Fatalf("histories of %d and %d points, want 2", len(hist[0]), len(hist[1]))
	}
	for s := range hist[0] {
		if d := math.Abs(hist[0][s] - hist[1][s]); !(d <= 1e-3*math.Abs(hist[0][s])) {
			t.Errorf("point %d: loss %v from the audio, %v from the corpus", s+1, hist[0][s], hist[1][s])
		}
	}

	test := filepath.Join(root, "test.safetensors")
	co.Split, co.Out = speech.SplitTest, test
	if _, err := EncodeSpeechCorpus(ctx, co); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(root, "other-vae")
	testspeech.Save(t, 2, other) // a codec: other weights
	for _, c := range []struct {
		data, vae, want string
	}{
		{test, "", "training split"},
		{corpus, other, "not by --speech-vae"},
	} {
		o := tinyTTSOptions(c.data, c.vae, filepath.Join(root, "bad"), 1)
		if _, err := TTS(ctx, o); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.data) {
			t.Errorf("%s with --speech-vae %q: %v, want an error naming it with %q", c.data, c.vae, err, c.want)
		}
	}
}

// A run with SnapshotEvery keeps a checkpoint at each multiple and at the
// last step, which is the run's own, and ends as the same run without
// snapshots; a snapshot loads as a model.
func TestTTSSnapshots(t *testing.T) {
	cache, tokenizer := tinySpeechData(t)
	root := t.TempDir()
	o := tinyTTSOptions(cache, tokenizer, filepath.Join(root, "run"), 5)
	o.SnapshotEvery = 2
	plain := tinyTTSOptions(cache, tokenizer, filepath.Join(root, "plain"), 5)
	for _, run := range []TTSOptions{o, plain} {
		if _, err := TTS(context.Background(), run); err != nil {
			t.Fatal(err)
		}
	}
	checkSnapshots(t, o.Out, plain.Out, "")
	m, err := tts.Load(testutil.Backend(t, ""), filepath.Join(o.Out, "step-000002"), "", tts.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
}

// A run that --time ends early keeps its last step as a snapshot too, as
// one that reaches its --steps does: the step the deadline ended it at, not
// the most it was allowed.
func TestTTSSnapshotAtDeadline(t *testing.T) {
	cache, tokenizer := tinySpeechData(t)
	o := tinyTTSOptions(cache, tokenizer, filepath.Join(t.TempDir(), "cut"), 50)
	o.SnapshotEvery, o.Deadline = 20, time.Now() // a deadline already past leaves one step
	if _, err := TTS(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if names := testutil.DirNames(t, o.Out); !slices.Contains(names, "step-000001") {
		t.Errorf("%s holds %v, want the snapshot of the last step, step-000001", o.Out, names)
	}
}

// A resumed run keeps its own data and options whatever the resuming
// command gives (here none of them: the defaults, and no data folder),
// and ends with the weights of the run that was not stopped.
func TestTTSResumeKeepsOptions(t *testing.T) {
	cache, tokenizer := tinySpeechData(t)
	resumeIsExact(t, "a run resumed with other options", t.TempDir(), func(out string, steps int64, resume bool) error {
		o := tinyTTSOptions(cache, tokenizer, out, steps)
		o.Batch, o.BatchMul, o.TextDropout, o.InputNoise, o.Align, o.EMA = 3, 3, 0.3, 0.5, 2, 0.9
		if resume {
			d := DefaultTTSOptions()
			o.Data, o.Batch, o.BatchMul, o.TextDropout, o.InputNoise, o.Align, o.EMA = "", d.Batch, d.BatchMul, d.TextDropout, d.InputNoise, d.Align, d.EMA
			o.Resume = true
		}
		_, err := TTS(context.Background(), o)
		return err
	})
}

// TestTTSTimbres: a run given timbres trains on their utterances as voices
// of their own (two of the data and two of the timbres, though their names
// are the same), prompts every utterance with another of its own voice,
// records the timbres and keeps them on a resume that leaves them out; a
// folder without timbres is refused with a message that says how to build
// them.
func TestTTSTimbres(t *testing.T) {
	cache, tokenizer := tinySpeechData(t)
	timbres, _ := tinySpeechData(t)
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "run")
	o := tinyTTSOptions(cache, tokenizer, out, 2)
	o.Timbres = timbres
	if _, err := TTS(ctx, o); err != nil {
		t.Fatal(err)
	}
	o = tinyTTSOptions(cache, tokenizer, out, 3)
	o.Resume = true
	if _, err := TTS(ctx, o); err != nil {
		t.Fatal(err)
	}
	info, err := checkpoint.RecordedInfo(out)
	if err != nil {
		t.Fatal(err)
	}
	if info["timbres"] != timbres || info["voices"] != 4.0 || info["utterances"] != 12.0 || info["steps"] != 3.0 {
		t.Errorf("resumed run records timbres %v, %v voices, %v utterances after %v steps; want %s, 4, 12 after 3", info["timbres"], info["voices"], info["utterances"], info["steps"], timbres)
	}

	b := testutil.Backend(t, "")
	data, err := encodeSpeechSplit(ctx, b, tokenizer, cache, speech.SplitTrain, nil, nil, checkTTSTokenizer)
	if err != nil {
		t.Fatal(err)
	}
	more, err := encodeSpeechSplit(ctx, b, tokenizer, timbres, speech.SplitTrain, nil, nil, checkTTSTokenizer)
	if err != nil {
		t.Fatal(err)
	}
	o = tinyTTSOptions(cache, tokenizer, out, 1)
	f, err := tts.NewReadingFormat(tts.ReadCharacters, data.Tokenizer.Config.Channels, 25)
	if err != nil {
		t.Fatal(err)
	}
	c, err := newTTSCorpus(f, o, data, more)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.texts) != 12 || len(c.byVoice) != 4 {
		t.Fatalf("%d utterances in %d voices, want 12 in 4", len(c.texts), len(c.byVoice))
	}
	for v, idx := range c.byVoice {
		for _, k := range idx {
			if c.voice[k] != v || (k >= 6) != (v >= 2) {
				t.Errorf("utterance %d of voice %d is listed under voice %d", k, c.voice[k], v)
			}
		}
	}
	o.Batch = 64
	for step := range int64(20) {
		for _, pk := range c.picks(o, 0, step) {
			if c.voice[pk.p] != c.voice[pk.k] || pk.p == pk.k {
				t.Fatalf("step %d: utterance %d (voice %d) prompted by %d (voice %d)", step, pk.k, c.voice[pk.k], pk.p, c.voice[pk.p])
			}
		}
	}

	bad := tinyTTSOptions(cache, tokenizer, filepath.Join(t.TempDir(), "bad"), 1)
	bad.Timbres = filepath.Join(t.TempDir(), "none")
	if _, err := TTS(ctx, bad); err == nil || !strings.Contains(err.Error(), "speech data --timbres") {
		t.Errorf("missing timbres: error %v, want one saying how to build them", err)
	}
}

// TestCheckSpeechOptions: the checks LatentLM's text-to-speech recipe and
// the discrete baseline share name the flag of the value they refuse, and
// an empty reading becomes characters.
func TestCheckSpeechOptions(t *testing.T) {
	for _, c := range []struct {
		set, reading          string
		prompt, align         float64
		limit, seqLen         int
		wantOption, wantWords string
	}{
		{"poems", "", 3, 0, 0, 0, "set", `"poems" is an unknown text set`},
		{"numbers", "braille", 3, 0, 0, 0, "reading", `"braille"`},
		{"numbers", "", -1, 0, 0, 0, "prompt-seconds", "-1 is out of range"},
		{"numbers", "", math.NaN(), 0, 0, 0, "prompt-seconds", "NaN is out of range"},
		{"numbers", "", 3, 0, -2, 0, "limit", "-2 is negative"},
		{"numbers", "", 3, 0, 0, -1, "seq-len", "-1 is negative"},
		{"numbers", "", 3, 2e6, 0, 0, "align", "2e+06 is out of range"},
	} {
		reading := c.reading
		err := checkSpeechOptions(c.set, &reading, c.prompt, c.limit, c.seqLen, c.align)
		var oe *OptionError
		if !errors.As(err, &oe) || oe.Option != c.wantOption || !strings.Contains(oe.Problem, c.wantWords) {
			t.Errorf("%+v: %v, want --%s refused with %q", c, err, c.wantOption, c.wantWords)
		}
	}
	reading := ""
	if err := checkSpeechOptions("sentences", &reading, 0, 10, 100, 1); err != nil || reading != tts.ReadCharacters {
		t.Errorf("good options: %v, reading %q (want nil and %q)", err, reading, tts.ReadCharacters)
	}
}
