package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/phoneme"
	"github.com/latentlm/latentlm/speech"
	"github.com/latentlm/latentlm/text"
	"github.com/latentlm/latentlm/wav"
)

// TestSpeakBadInput: speak refuses empty text, unknown voices, a missing
// voice, and prompt files that are missing, not WAV, empty or too short,
// each with one line that says what is wrong, before any model loads
// (run at package level: runSpeak's error is the line main prints).
func TestSpeakBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	notWAV := write("notes.wav", []byte("these are not samples"))
	silent := filepath.Join(dir, "empty.wav")
	if err := wav.Write(silent, wav.Audio{Rate: speech.Rate}); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "short.wav")
	if err := wav.Write(short, wav.Audio{Rate: speech.Rate, Samples: make([]float32, 800)}); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.wav")
	if err := wav.Write(good, wav.Audio{Rate: speech.Rate, Samples: make([]float32, 16000)}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.wav")
	model := filepath.Join(dir, "no-model")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--text", "", "--voice", "flite-awb"}, "--text is empty"},
		{[]string{"--text", "  \t ", "--prompt", good}, "--text is empty"},
		{[]string{"--text", "hi\xff", "--prompt", good}, "UTF-8"},
		{[]string{"--text", "hi"}, "no voice"},
		{[]string{"--text", "hi", "--voice", "flite-awb", "--prompt", good}, "not both"},
		{[]string{"--text", "hi", "--voice", "hal-9000"}, `no voice "hal-9000"`},
		{[]string{"--text", "hi", "--voice", "flite-awb", "--data", filepath.Join(dir, "nothing")}, "needs the speech data"},
		{[]string{"--text", "hi", "--prompt", filepath.Join(dir, "missing.wav")}, "missing.wav"},
		{[]string{"--text", "hi", "--prompt", notWAV}, "not a WAV file"},
		{[]string{"--text", "hi", "--prompt", silent}, "no samples"},
		{[]string{"--text", "hi", "--prompt", short}, "too short"},
		{[]string{"--text", "hi", "--prompt", good, "--out", good}, "good.wav"},
		{[]string{"--text", "hi", "--prompt", good, "--out", dir}, "is a folder"},
		{[]string{"--text", "hi", "--prompt", good, "--max-seconds", "0"}, "--max-seconds"},
		{[]string{"--text", "hi", "--prompt", good, "--steps", "-1"}, "--steps"},
		{[]string{"--text", "hi", "--prompt", good, "--model", model}, "no-model"},
		{[]string{"--text", "hi", "--prompt", good, "--alignment", filepath.Join(dir, "a.txt")}, "ending in .png"},
		{[]string{"--text", "hi", "--prompt", good, "--alignment", good}, "ending in .png"},
		{[]string{"--text", "hi", "--prompt", good, "--out", filepath.Join(dir, "y.png")}, "ending in .wav"},
		{[]string{"--text", "hi", "--prompt", good, "--prompt-seconds", "0.01"}, "--prompt-seconds 0.01"},
	} {
		args := append(c.args, "--out", out)
		if i := indexOf(c.args, "--out"); i >= 0 {
			args = c.args
		}
		if indexOf(args, "--model") < 0 {
			args = append(args, "--model", model)
		}
		err := runSpeak(args)
		if err == nil {
			t.Errorf("speak %q succeeded", c.args)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, c.want) || strings.Contains(firstLine(msg), "\n") || firstLine(msg) != strings.TrimSpace(msg) {
			t.Errorf("speak %q: %q, want one line with %q", c.args, msg, c.want)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("speak %q wrote %s", c.args, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "good.wav")); err != nil {
		t.Error("the prompt was overwritten")
	}
}

func indexOf(s []string, x string) int {
	for i, v := range s {
		if v == x {
			return i
		}
	}
	return -1
}

// TestWAVStream: speak --stream writes a WAV file whose header is completed
// when it closes, holding the chunks end to end; an aborted one is removed.
func TestWAVStream(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.wav")
	w, err := createWAVStream(path)
	if err != nil {
		t.Fatal(err)
	}
	chunks := [][]float32{{0.5, -0.5, 0.25}, {}, {0.125, 1}}
	for _, c := range chunks {
		if err := w.write(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	w.abort() // after close: nothing to do
	a, err := wav.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{0.5, -0.5, 0.25, 0.125, 1}
	if a.Rate != speech.Rate || len(a.Samples) != len(want) {
		t.Fatalf("%d Hz, %d samples", a.Rate, len(a.Samples))
	}
	for i, v := range want {
		if d := a.Samples[i] - v; d > 1e-4 || d < -1e-4 {
			t.Errorf("sample %d: %v, want %v", i, a.Samples[i], v)
		}
	}
	w, err = createWAVStream(path + "2")
	if err != nil {
		t.Fatal(err)
	}
	w.abort()
	if _, err := os.Stat(path + "2"); err == nil {
		t.Error("an aborted stream left its file")
	}
}

// TestShippedTTS: the shipped weights/tts is what speak uses without
// --model, and it does what its record in docs/RESULTS.md says of lengths.
// Prompted with a flite-slt utterance (a training voice), it ends each of
// four held-out spoken numbers itself, and at least three of the four at a
// length within ±20% of flite-slt's own rendering of the same text (the
// model does so for 97% of the 70 held-out texts of eval --task tts).
func TestShippedTTS(t *testing.T) {
	root := repoRoot(t)
	if _, err := os.Stat(filepath.Join(root, "weights", ttsDefault, "model.safetensors")); err != nil {
		t.Fatalf("no shipped text-to-speech model: %v", err)
	}
	// The first five held-out test texts of the speech data (speech data's
	// plan): the first is the prompt's, the other four are spoken.
	o := speech.DefaultOptions(t.TempDir())
	var texts []string
	for _, x := range speech.NumberTexts(o.Seed, o.Eval)[:5] {
		texts = append(texts, x.Words)
	}
	for _, out := range speakLikeFliteSLT(t, root, texts) {
		if strings.Contains(out, ttsSentences) {
			t.Errorf("a spoken number went to the sentence model: %s", out)
		}
	}
}

// TestShippedTTSSentences: speak without --model gives a text that is not
// a spoken number to the shipped weights/tts-sentences, which reads
// phonemes. It speaks sentences no training text holds (the first five of
// the fortunes' validation documents that speech data would render: the
// first is the prompt's) as TestShippedTTS asks of the numbers model: each
// ended by its own <EOL>, and at least three of four within ±20% of
// flite-slt's length (the model does so for 99% of the 70 test sentences
// of eval --task tts).
func TestShippedTTSSentences(t *testing.T) {
	root := repoRoot(t)
	model := filepath.Join(root, "weights", ttsSentences)
	if _, err := os.Stat(filepath.Join(model, "model.safetensors")); err != nil {
		t.Fatalf("no shipped sentence model: %v", err)
	}
	if _, err := os.Stat(filepath.Join(text.FortunesDir, "fortunes.u8")); err != nil {
		t.Skipf("the fortunes are not installed (make setup installs them): %v", err)
	}
	known, err := speech.ReadDictionary(phoneme.DictionaryPath)
	if err != nil {
		t.Skipf("the pronouncing dictionary is not installed (make setup installs it): %v", err)
	}
	_, valid, err := text.Fortunes(text.FortunesDir)
	if err != nil {
		t.Fatal(err)
	}
	texts := speech.Sentences(valid, known)
	if len(texts) < 5 {
		t.Fatalf("%d sentences in the fortunes' validation documents, want at least 5", len(texts))
	}
	for _, out := range speakLikeFliteSLT(t, root, texts[:5]) {
		if !strings.Contains(out, "model "+model+": the shipped model for text that is not a spoken number") {
			t.Errorf("speak did not say it chose %s: %s", model, out)
		}
	}
}

// speakLikeFliteSLT has flite-slt say texts, then speak (without --model)
// say texts[1:] in the voice of its texts[0], and returns what speak
// printed for each. Each must end at the model's own <EOL>, and at least
// three of every four within ±20% of flite-slt's length for the same text.
func speakLikeFliteSLT(t *testing.T, root string, texts []string) []string {
	t.Helper()
	voice, err := speech.VoiceByName("flite-slt")
	if err != nil {
		t.Fatal(err)
	}
	if err := speech.CheckVoice(voice); err != nil {
		t.Skipf("flite-slt is not installed (setup warns when it cannot install the voices): %v", err)
	}
	dir := t.TempDir()
	refs := make([]string, len(texts))
	for i := range refs {
		refs[i] = filepath.Join(dir, fmt.Sprintf("ref%d.wav", i))
	}
	secs, err := speech.Synthesize(context.Background(), voice, texts, refs)
	if err != nil {
		t.Fatal(err)
	}
	var printed []string
	within := 0
	for i := 1; i < len(texts); i++ {
		out := filepath.Join(dir, fmt.Sprintf("out%d.wav", i))
		code, stdout, stderr := cli(t, root, "speak", "--text", texts[i], "--prompt", refs[0], "--out", out, "--seed", "1")
		if code != 0 {
			t.Fatalf("speak %q: exit %d: %s", texts[i], code, stderr)
		}
		printed = append(printed, stdout+stderr)
		if !strings.Contains(stdout+stderr, "ended by the model's <EOL>") {
			t.Errorf("the model did not end %q itself: %s%s", texts[i], stdout, stderr)
		}
		a, err := wav.Read(out)
		if err != nil {
			t.Fatal(err)
		}
		got := float64(len(a.Samples)) / float64(a.Rate)
		r := got / secs[i]
		t.Logf("%q: %.2f s against flite-slt's %.2f s (ratio %.2f)", texts[i], got, secs[i], r)
		if r >= 0.8 && r <= 1.2 {
			within++
		}
	}
	if n := len(texts) - 1; 4*within < 3*n {
		t.Errorf("%d of %d lengths within ±20%% of flite-slt's, want at least three in four", within, n)
	}
	return printed
}

// TestDemoSpeech: demo --task speech says a held-out spoken number and a
// held-out sentence with the shipped models in one WAV, with its
// spectrogram beside it, each utterance ended by the model and judged
// beside flite-slt's own reading; and its --out and --time are checked
// before any work.
func TestDemoSpeech(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"demo", "--task", "class", "--time", "5m"}, "--time is the budget of demo --task speech --train"},
		{[]string{"demo", "--task", "speech", "--time", "5m"}, "--time is the budget of demo --task speech --train"},
		{[]string{"demo", "--task", "speech", "--out", filepath.Join(dir, "d.png")}, "d.png: want a name ending in .wav"},
		{[]string{"demo", "--task", "speech", "--train", "--time", "5m", "--out", filepath.Join(dir, "d.wav")}, "needs at least 10m"},
	} {
		code, _, stderr := cli(t, dir, c.args...)
		expectOneLineError(t, code, stderr, c.want)
	}
	voice, err := speech.VoiceByName("flite-slt")
	if err != nil {
		t.Fatal(err)
	}
	if err := speech.CheckVoice(voice); err != nil {
		t.Skipf("flite-slt is not installed (setup warns when it cannot install the voices): %v", err)
	}
	root := repoRoot(t)
	out := filepath.Join(dir, "demo-speech.wav")
	code, stdout, stderr := cli(t, root, "demo", "--task", "speech", "--out", out)
	if code != 0 {
		t.Fatalf("demo --task speech: exit %d: %s", code, stderr)
	}
	t.Log(stdout)
	if n := strings.Count(stdout, "ended by the model's <EOL>"); n != 2 {
		t.Errorf("%d utterances ended by the model, want the number's and the sentence's:\n%s", n, stdout)
	}
	for _, model := range []string{ttsDefault, ttsSentences} {
		if !strings.Contains(stdout, filepath.Join("weights", model)+" said ") {
			t.Errorf("no utterance of weights/%s:\n%s", model, stdout)
		}
	}
	if _, err := speech.NewJudge(); err == nil && strings.Count(stdout, "pocketsphinx heard") != 2 {
		t.Errorf("want pocketsphinx's transcript of each utterance:\n%s", stdout)
	}
	a, err := wav.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	// Two utterances of at least a second each, half a second between,
	// and far less than the two --max-seconds bounds.
	if secs := float64(len(a.Samples)) / float64(a.Rate); a.Rate != speech.Rate || secs < 2.5 || secs > 15 {
		t.Errorf("the WAV holds %.2f s at %d Hz, want 2.5–15 s at 16 kHz", secs, a.Rate)
	}
	if img := testutil.DecodePNG(t, strings.TrimSuffix(out, ".wav")+".png"); img.Bounds().Dx() < 100 {
		t.Errorf("spectrogram %v, want at least 100 columns", img.Bounds())
	}
}
