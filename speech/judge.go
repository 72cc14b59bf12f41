package speech

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/latentlm/latentlm/phoneme"
	"github.com/latentlm/latentlm/wav"
)

// PocketsphinxModel is where Debian's pocketsphinx-en-us puts the US
// English acoustic model, language model and dictionary.
const PocketsphinxModel = "/usr/share/pocketsphinx/model/en-us"

// Judge transcribes speech with pocketsphinx (Debian's 0.8+5prealpha
// package, whose CLI is pocketsphinx_batch), a recogniser no one here
// trained: its word error rate on our reconstructions and generations,
// next to its rate on the original audio, measures intelligibility
// without grading our models with our own models.
type Judge struct {
	Batch string // the pocketsphinx_batch program
	HMM   string // acoustic model folder
	LM    string // default language model, for sentences
	Dict  string // pronunciation dictionary
	// Workers is how many recogniser processes run at once (0: one per
	// CPU); each loads the model once and transcribes its share.
	Workers int
}

// NewJudge finds pocketsphinx_batch and the en-us model, or says how to
// install them.
func NewJudge() (*Judge, error) {
	batch, err := exec.LookPath("pocketsphinx_batch")
	if err != nil {
		return nil, errors.New("speech: judge: no pocketsphinx_batch: run make setup, which installs Debian's pocketsphinx and pocketsphinx-en-us")
	}
	j := &Judge{
		Batch: batch,
		HMM:   filepath.Join(PocketsphinxModel, "en-us"),
		LM:    filepath.Join(PocketsphinxModel, "en-us.lm.bin"),
		Dict:  filepath.Join(PocketsphinxModel, "cmudict-en-us.dict"),
	}
	for _, p := range []string{j.HMM, j.LM, j.Dict} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("speech: judge: no %s: run make setup, which installs Debian's pocketsphinx-en-us", p)
		}
	}
	return j, nil
}

// ReadDictionary returns the words of a CMU-style pronunciation dictionary
// ("word PHONES…" lines; variants written "word(2)"), in lower case.
func ReadDictionary(path string) (map[string]bool, error) {
	d, err := phoneme.ReadDictionary(path)
	if err != nil {
		return nil, fmt.Errorf("speech: %w", err)
	}
	return d.Words(), nil
}

// Transcribe returns pocketsphinx's transcript of each clip (resampled to
// 16 kHz first), in order. With a grammar (JSGF text, e.g.
// NumbersGrammar()) the recogniser may only say what it allows; without,
// it uses the default trigram language model. A clip it cannot decode is
// an empty transcript, which scores as all deletions.
func (j *Judge) Transcribe(ctx context.Context, clips []wav.Audio, grammar string) ([]string, error) {
	out := make([]string, len(clips))
	if len(clips) == 0 {
		return out, nil
	}
	workers := j.Workers
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	workers = min(workers, len(clips))
	tmp, err := os.MkdirTemp("", "latentlm-judge-")
	if err != nil {
		return nil, fmt.Errorf("speech: judge: %w", err)
	}
	defer os.RemoveAll(tmp)
	if grammar != "" {
		if err := os.WriteFile(filepath.Join(tmp, "grammar.gram"), []byte(grammar), 0o644); err != nil {
			return nil, fmt.Errorf("speech: judge: %w", err)
		}
	}
	// Raw 16-bit PCM rather than WAV: the recogniser skips a fixed header
	// size, which only a raw file states for certain.
	for i, c := range clips {
		c, err := To16k(c)
		if err != nil {
			return nil, fmt.Errorf("speech: judge: clip %d: %w", i, err)
		}
		if err := os.WriteFile(filepath.Join(tmp, fmt.Sprintf("u%06d.raw", i)), wav.PCM16(c.Samples), 0o644); err != nil {
			return nil, fmt.Errorf("speech: judge: %w", err)
		}
	}
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[w] = j.run(ctx, tmp, w, workers, len(clips), grammar != "", out)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// run transcribes clips w, w+workers, … in one pocketsphinx_batch process
// and stores the transcripts in out.
func (j *Judge) run(ctx context.Context, dir string, w, workers, n int, grammar bool, out []string) error {
	var ctl strings.Builder
	for i := w; i < n; i += workers {
		fmt.Fprintf(&ctl, "u%06d\n", i)
	}
	ctlPath := filepath.Join(dir, fmt.Sprintf("w%d.ctl", w))
	hypPath := filepath.Join(dir, fmt.Sprintf("w%d.hyp", w))
	logPath := filepath.Join(dir, fmt.Sprintf("w%d.log", w))
	if err := os.WriteFile(ctlPath, []byte(ctl.String()), 0o644); err != nil {
		return fmt.Errorf("speech: judge: %w", err)
	}
	args := []string{"-adcin", "yes", "-adchdr", "0", "-cepdir", dir, "-cepext", ".raw", "-ctl", ctlPath,
		"-hyp", hypPath, "-logfn", logPath, "-hmm", j.HMM, "-dict", j.Dict, "-samprate", "16000"}
	if grammar {
		args = append(args, "-jsgf", filepath.Join(dir, "grammar.gram"))
	} else {
		args = append(args, "-lm", j.LM)
	}
	cmd := exec.CommandContext(ctx, j.Batch, args...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("speech: judge: pocketsphinx_batch: %v: %s", err, lastLines(logPath, msg))
	}
	hyp, err := os.ReadFile(hypPath)
	if err != nil {
		return fmt.Errorf("speech: judge: pocketsphinx_batch wrote no transcripts: %v: %s", err, lastLines(logPath, nil))
	}
	for line := range strings.Lines(string(hyp)) {
		// "words of the hypothesis (u000012 -4390)"
		line = strings.TrimSpace(line)
		open := strings.LastIndex(line, " (")
		if open < 0 && strings.HasPrefix(line, "(") {
			open = 0
		}
		if open < 0 {
			continue
		}
		var id, score int
		if _, err := fmt.Sscanf(strings.TrimSpace(line[open:]), "(u%d %d)", &id, &score); err != nil || id < 0 || id >= n {
			continue
		}
		out[id] = strings.TrimSpace(line[:open])
	}
	return nil
}

// lastLines is the end of the recogniser's log, for an error message.
func lastLines(logPath string, msg []byte) string {
	b, err := os.ReadFile(logPath)
	if err != nil || len(b) == 0 {
		b = msg
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	return strings.Join(lines, "; ")
}

// GrammarFor is the judge's grammar for a text set: NumbersGrammar for the
// spoken numbers, none (the default language model) for sentences.
func GrammarFor(set string) string {
	if set == SetNumbers {
		return NumbersGrammar()
	}
	return ""
}

// Score transcribes clips and counts their word errors against refs.
func (j *Judge) Score(ctx context.Context, clips []wav.Audio, refs []string, grammar string) (WER, []string, error) {
	if len(clips) != len(refs) {
		return WER{}, nil, fmt.Errorf("speech: judge: %d clips for %d transcripts", len(clips), len(refs))
	}
	hyps, err := j.Transcribe(ctx, clips, grammar)
	if err != nil {
		return WER{}, nil, err
	}
	var total WER
	for i, h := range hyps {
		total = total.Add(WordErrors(refs[i], h))
	}
	return total, hyps, nil
}
