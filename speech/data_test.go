package speech

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latentlm/latentlm/wav"
)

// needVoices skips a test where the synthesisers setup installs are
// missing, so that a machine without them still passes.
func needVoices(t *testing.T) {
	t.Helper()
	for _, v := range Voices {
		if err := CheckVoice(v); err != nil {
			t.Skipf("synthesiser not installed: %v", err)
		}
	}
}

// fakeFortunes writes a small fortunes folder: plain sentences, enough
// fortunes that the FNV split puts some in validation; and a dictionary
// that knows their words.
func fakeFortunes(t *testing.T) (dir, dictionary string) {
	t.Helper()
	dir = t.TempDir()
	nouns := []string{"cat", "dog", "bird", "fish", "horse", "mouse", "goat", "sheep"}
	verbs := []string{"sees", "likes", "finds", "hears", "follows"}
	words := map[string]bool{"the": true, "today": true}
	var b strings.Builder
	for i := range 200 {
		n1, v, n2 := nouns[i%8], verbs[(i/8)%5], nouns[(i/40+i)%8]
		fmt.Fprintf(&b, "The %s %s the %s today.\n%%\n", n1, v, n2)
		words[n1], words[v], words[n2] = true, true, true
	}
	if err := os.WriteFile(filepath.Join(dir, "animals.u8"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	dictionary = filepath.Join(t.TempDir(), "dict")
	var d strings.Builder
	for w := range words {
		fmt.Fprintf(&d, "%s AH\n", w) // the words are what counts here, not their sounds
	}
	if err := os.WriteFile(dictionary, []byte(d.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, dictionary
}

func TestBuildSmallCache(t *testing.T) {
	if testing.Short() {
		t.Skip("renders 52 utterances in seven voices (seconds)")
	}
	needVoices(t)
	fdir, dict := fakeFortunes(t)
	o := Options{Dir: filepath.Join(t.TempDir(), "speech"), Seed: 3, Texts: 2, Eval: 1, Heldout: []string{DefaultHeldout},
		FortunesDir: fdir, Dictionary: dict}
	m, err := Build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	m2, utts, err := Load(o.Dir)
	if err != nil {
		t.Fatal(err)
	}
	// 6 voices × 2 sets × (2+1+1) texts, and the held-out voice's 2 × 2.
	if len(utts) != 6*2*4+2*2 {
		t.Fatalf("%d utterances", len(utts))
	}
	if m2.Seed != 3 || m.Splits[SplitTrain].Utterances != 6*2*2 || m2.Splits[SplitTest].Utterances != 7*2 {
		t.Errorf("manifest: seed %d, splits %+v", m2.Seed, m2.Splits)
	}
	evalTexts := map[string]bool{}
	for _, u := range utts {
		if u.Split != SplitTrain {
			evalTexts[Normalize(u.Text)] = true
		}
	}
	for _, u := range utts {
		if u.Voice == DefaultHeldout && u.Split == SplitTrain {
			t.Fatalf("held-out voice in training: %s", u.File)
		}
		if u.Split == SplitTrain && evalTexts[Normalize(u.Text)] {
			t.Fatalf("evaluation text %q also in training", u.Text)
		}
		a, err := wav.Read(filepath.Join(o.Dir, u.File))
		if err != nil {
			t.Fatal(err)
		}
		if a.Rate != Rate || a.Channels != 1 || a.Seconds() < 0.3 || abs(a.Seconds()-u.Seconds) > 1e-3 {
			t.Fatalf("%s: %d Hz, %d channels, %.3f s (index says %.3f)", u.File, a.Rate, a.Channels, a.Seconds(), u.Seconds)
		}
	}
	if _, ok := UpToDate(o); !ok {
		t.Error("a fresh cache is not up to date")
	}
	o.Seed = 4
	if _, ok := UpToDate(o); ok {
		t.Error("a cache of another seed is up to date")
	}
	clips, err := ReadFolder(filepath.Join(o.Dir, "wav", "festival-slt-hts"))
	if err != nil || len(clips) != 8 {
		t.Fatalf("voice folder: %d clips, %v", len(clips), err)
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func TestReadFolder(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"a.wav", "b.WAV"} {
		if err := wav.Write(filepath.Join(dir, n), wav.Audio{Rate: 8000, Samples: make([]float32, 80)}); err != nil {
			t.Fatal(err)
		}
	}
	write := func(s string) {
		if err := os.WriteFile(filepath.Join(dir, TranscriptFile), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("# my recordings\n\na.wav\tSeven three nine.\r\nb.WAV\tHello, world\n")
	clips, err := ReadFolder(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(clips) != 2 || clips[0].Text != "Seven three nine." || clips[1].Path != filepath.Join(dir, "b.WAV") {
		t.Fatalf("got %+v", clips)
	}
	bad := map[string]string{
		"a.wav seven\n":            "no tab",
		"../x.wav\tseven\n":        "not a file name",
		"a.mp3\tseven\n":           "does not end in .wav",
		"a.wav\t!!\n":              "no words",
		"a.wav\tone\na.wav\ttwo\n": "already on line 1",
		"c.wav\tseven\n":           "c.wav",
		"# nothing\n":              "names no clips",
		"a.wav\tone\ttwo\n":        "more than one tab",
	}
	for content, want := range bad {
		write(content)
		if _, err := ReadFolder(dir); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), TranscriptFile) {
			t.Errorf("%q: got %v, want an error naming %s and containing %q", content, err, TranscriptFile, want)
		}
	}
	if _, err := ReadFolder(t.TempDir()); err == nil || !strings.Contains(err.Error(), "name.wav<TAB>text") {
		t.Errorf("no transcript: %v", err)
	}
}

// TestJudgeParsesBatchOutput runs the judge against a stand-in for
// pocketsphinx_batch that writes a known hypothesis file, so the parsing
// and ordering are tested where pocketsphinx is not installed.
func TestJudgeParsesBatchOutput(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh for the stand-in recogniser")
	}
	dir := t.TempDir()
	fake := filepath.Join(dir, "fake_batch")
	// Echo each id of the control file back with words naming it; the
	// second clip gets an empty hypothesis, as pocketsphinx writes one.
	script := `#!/bin/sh
while [ $# -gt 0 ]; do case "$1" in -ctl) ctl=$2;; -hyp) hyp=$2;; esac; shift; done
while read id; do
  case $id in u000001) echo " ($id -5)";; *) echo "seven(2) three ($id -4390)";; esac
done < "$ctl" > "$hyp"
`
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	j := &Judge{Batch: fake, Workers: 2}
	clips := []wav.Audio{{Rate: 16000, Samples: make([]float32, 160)}, {Rate: 8000, Samples: make([]float32, 80)}, {Rate: 16000, Samples: make([]float32, 16)}}
	w, hyps, err := j.Score(context.Background(), clips, []string{"seven three", "one", "seven three nine"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if hyps[0] != "seven(2) three" || hyps[1] != "" || hyps[2] != "seven(2) three" {
		t.Fatalf("hypotheses %q", hyps)
	}
	if w != (WER{Errors: 2, Words: 6}) {
		t.Fatalf("WER %+v, want 2 errors in 6 words", w)
	}
	j.Batch = filepath.Join(dir, "missing")
	if _, err := j.Transcribe(context.Background(), clips, ""); err == nil {
		t.Fatal("a missing recogniser gave no error")
	}
}

// TestJudgeOnFlite checks the real judge on a few flite renderings: with
// the numbers grammar it must hear most words right.
func TestJudgeOnFlite(t *testing.T) {
	j, err := NewJudge()
	if err != nil {
		t.Skipf("judge not installed: %v", err)
	}
	v, _ := VoiceByName("flite-slt")
	if err := CheckVoice(v); err != nil {
		t.Skipf("synthesiser not installed: %v", err)
	}
	texts := []string{"seven three nine", "twelve forty-five", "march third nineteen ninety-nine"}
	dir := t.TempDir()
	paths := make([]string, len(texts))
	for i := range paths {
		paths[i] = filepath.Join(dir, fmt.Sprintf("%d.wav", i))
	}
	if _, err := Synthesize(context.Background(), v, texts, paths); err != nil {
		t.Fatal(err)
	}
	clips := make([]wav.Audio, len(paths))
	for i, p := range paths {
		if clips[i], err = wav.Read(p); err != nil {
			t.Fatal(err)
		}
	}
	w, hyps, err := j.Score(context.Background(), clips, texts, NumbersGrammar())
	if err != nil {
		t.Fatal(err)
	}
	if w.Words != 11 || w.Rate() > 0.3 {
		t.Fatalf("WER %+v (%.0f%%): heard %q", w, 100*w.Rate(), hyps)
	}
}

// TestGrammarWordsInDictionary: pocketsphinx refuses a grammar with a word
// its dictionary lacks, so every word of the numbers grammar must be in it.
func TestGrammarWordsInDictionary(t *testing.T) {
	j, err := NewJudge()
	if err != nil {
		t.Skipf("judge not installed: %v", err)
	}
	known, err := ReadDictionary(j.Dict)
	if err != nil {
		t.Fatal(err)
	}
	vocab := numbersVocabulary()
	if len(vocab) < 60 {
		t.Fatalf("grammar vocabulary of %d words", len(vocab))
	}
	for _, w := range vocab {
		if !known[w] {
			t.Errorf("%q is not in %s", w, j.Dict)
		}
	}
}

// The cache of timbres renders the English cache's training texts, and
// only those, in each of the nine voices at 16 kHz; it records that it is
// train-only, so English options never take it for theirs.
func TestBuildTimbres(t *testing.T) {
	if testing.Short() {
		t.Skip("renders 36 utterances in nine voices (seconds)")
	}
	for _, v := range Timbres {
		if err := CheckVoice(v); err != nil {
			t.Skipf("timbre not installed: %v", err)
		}
	}
	fdir, dict := fakeFortunes(t)
	o := TimbreOptions(filepath.Join(t.TempDir(), "timbres"))
	o.Seed, o.Texts, o.Eval, o.FortunesDir, o.Dictionary = 3, 2, 1, fdir, dict
	m, err := Build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	_, utts, err := Load(o.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(utts) != len(Timbres)*2*2 || !m.TrainOnly || m.Splits[SplitTest].Utterances != 0 {
		t.Fatalf("%d utterances (want %d), train-only %v, splits %+v", len(utts), len(Timbres)*2*2, m.TrainOnly, m.Splits)
	}
	english := Options{Seed: 3, Texts: 2, Eval: 1, FortunesDir: fdir, Dictionary: dict}
	if err := english.fill(); err != nil {
		t.Fatal(err)
	}
	known, err := ReadDictionary(dict)
	if err != nil {
		t.Fatal(err)
	}
	p, err := planTexts(english, known)
	if err != nil {
		t.Fatal(err)
	}
	train := map[string]bool{}
	for _, set := range p {
		for _, x := range set[SplitTrain] {
			train[x.Words] = true
		}
	}
	for _, u := range utts {
		if u.Split != SplitTrain || !train[u.Text] {
			t.Fatalf("%s: %s text %q, not one of the English cache's training texts", u.File, u.Split, u.Text)
		}
		a, err := wav.Read(filepath.Join(o.Dir, u.File))
		if err != nil {
			t.Fatal(err)
		}
		if a.Rate != Rate || a.Channels != 1 || a.Seconds() < 0.3 {
			t.Fatalf("%s: %d Hz, %d channels, %.3f s", u.File, a.Rate, a.Channels, a.Seconds())
		}
	}
	if _, ok := UpToDate(o); !ok {
		t.Error("a fresh cache of timbres is not up to date")
	}
	english.Dir = o.Dir
	if _, ok := UpToDate(english); ok {
		t.Error("the cache of timbres passes for the English cache")
	}
}

// An Italian voice reads a question as a statement: festival's Italian
// front end stops with a Scheme error on '?'.
func TestTimbreReadsQuestions(t *testing.T) {
	v := Timbres[0]
	if err := CheckVoice(v); err != nil {
		t.Skipf("timbre not installed: %v", err)
	}
	path := filepath.Join(t.TempDir(), "q.wav")
	secs, err := Synthesize(context.Background(), v, []string{"Does it know its place?"}, []string{path})
	if err != nil {
		t.Fatal(err)
	}
	if a, err := wav.Read(path); err != nil || a.Rate != Rate || secs[0] < 0.5 {
		t.Fatalf("%s: %v, %.2f s", path, err, secs[0])
	}
}
