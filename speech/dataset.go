package speech

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/latentlm/latentlm/internal/atomicfile"
	"github.com/latentlm/latentlm/internal/boundedio"
	"github.com/latentlm/latentlm/internal/jsonerr"
	"github.com/latentlm/latentlm/text"
)

// The splits, by text: a test or validation text is never rendered into
// training audio, in any voice.
const (
	SplitTrain = "train"
	SplitValid = "valid"
	SplitTest  = "test"
)

// Splits lists the splits in order.
var Splits = []string{SplitTrain, SplitValid, SplitTest}

// Files of the data cache.
const (
	ManifestFile   = "manifest.json"
	UtterancesFile = "utterances.tsv"
	utterancesHead = "file\tsplit\tset\tvoice\tseconds\ttext"
)

// Options say which data Build renders.
type Options struct {
	Dir  string // the cache folder, e.g. .deps/speech
	Seed uint64 // draws the number texts and orders the sentences
	// Texts is the number of training texts per set; Eval the number of
	// validation texts and, again, of test texts per set.
	Texts, Eval int
	// Voices are the voices rendered: nil for Voices, the English voices
	// that every judge and model reads, or Timbres for TimbreOptions.
	Voices []Voice
	// TrainOnly renders the training texts alone. The texts are still
	// chosen with Eval held apart, so that a cache of Timbres never reads
	// a validation or test text of the default cache.
	TrainOnly bool
	// Heldout voices render only validation and test texts, never
	// training ones: the voice-cloning test.
	Heldout []string
	// Workers renders this many batches at once (0: one per CPU).
	Workers int
	// FortunesDir and Dictionary default to text.FortunesDir and
	// pocketsphinx-en-us's dictionary.
	FortunesDir, Dictionary string
	Log                     io.Writer // progress lines; nil for none
}

// DefaultOptions is the default cache: 400 training, 50 validation and 50
// test texts per set, in seven voices with flite-rms held out — 6,200
// utterances, about three and a half hours, rendered in minutes.
func DefaultOptions(dir string) Options {
	return Options{Dir: dir, Seed: 1, Texts: 400, Eval: 50, Heldout: []string{DefaultHeldout}}
}

// TimbreOptions is the cache of Timbres: 200 training texts per set,
// chosen as the default cache chooses its training texts, in each of the
// nine voices — 3,600 utterances, for the speech tokenizer and, when
// asked, text-to-speech.
func TimbreOptions(dir string) Options {
	return Options{Dir: dir, Seed: 1, Texts: 200, Eval: 50, Voices: Timbres, TrainOnly: true}
}

// Manifest records what a cache holds and how it was made, so that a
// result can name its data exactly and a cache that no longer matches
// its options or synthesisers is rebuilt.
type Manifest struct {
	Format       int               `json:"format"`
	Rate         int               `json:"rate"`
	Seed         uint64            `json:"seed"`
	Texts        int               `json:"texts"`
	Eval         int               `json:"eval"`
	Heldout      []string          `json:"heldout"`
	TrainOnly    bool              `json:"train_only,omitempty"`
	Versions     map[string]string `json:"versions"` // Debian package → version
	Voices       []VoiceInfo       `json:"voices"`
	TextDigests  map[string]string `json:"text_digests"` // "set/split" → text.Digest of its texts
	Splits       map[string]Count  `json:"splits"`
	Sets         map[string]Count  `json:"sets"`         // "set/split"
	VoiceSplits  map[string]Count  `json:"voice_splits"` // "voice/split"
	BuildSeconds float64           `json:"build_seconds"`
	Built        string            `json:"built"`
}

// VoiceInfo is a voice as the manifest records it.
type VoiceInfo struct {
	Voice
	Heldout   bool `json:"heldout"`
	Resampled bool `json:"resampled"` // rendered at another rate and resampled to 16 kHz
}

// Count is an amount of audio.
type Count struct {
	Utterances int     `json:"utterances"`
	Hours      float64 `json:"hours"`
}

func (c *Count) add(seconds float64) {
	c.Utterances++
	c.Hours += seconds / 3600
}

// manifestFormat changes when the layout of the cache does.
const manifestFormat = 1

// Utterance is one rendered text.
type Utterance struct {
	File    string // relative to the cache: wav/<voice>/<set>-<split>-<nnnn>.wav
	Split   string
	Set     string
	Voice   string
	Seconds float64
	Text    string
}

// basePackages are the Debian packages besides the voices' own whose
// versions decide the data: the synthesisers, the texts and the judge's
// dictionary, which chooses the sentences.
var basePackages = []string{"flite", "festival", "fortunes", "pocketsphinx-en-us"}

// Versions returns the installed version of each package that makes the
// default data (dpkg-query), or "unknown" where dpkg cannot say.
func Versions() map[string]string { return versions(Voices) }

// versions is Versions for a cache of the given voices.
func versions(voices []Voice) map[string]string {
	packages := slices.Clone(basePackages)
	for _, v := range voices {
		if !slices.Contains(packages, v.Package) {
			packages = append(packages, v.Package)
		}
	}
	out := map[string]string{}
	for _, p := range packages {
		v, err := exec.Command("dpkg-query", "-W", "-f=${Version}", p).Output()
		if err != nil || len(bytes.TrimSpace(v)) == 0 {
			out[p] = "unknown"
			continue
		}
		out[p] = string(bytes.TrimSpace(v))
	}
	return out
}

// plan is the texts of each set and split.
type plan map[string]map[string][]Text // set → split → texts

// planTexts chooses the texts. Numbers: NumberTexts(seed), the first Eval
// for test, the next Eval for validation, the rest for training (all
// distinct). Sentences: those of the fortunes' validation documents go to
// test and validation, those of the training documents to training, minus
// any that also occur in a validation document; each list shuffled by seed.
// So sentence test texts are unseen by a text model trained on the
// fortunes, too.
func planTexts(o Options, known map[string]bool) (plan, error) {
	p := plan{SetNumbers: {}, SetSentences: {}}
	nums := NumberTexts(o.Seed, o.Texts+2*o.Eval)
	p[SetNumbers][SplitTest] = nums[:o.Eval]
	p[SetNumbers][SplitValid] = nums[o.Eval : 2*o.Eval]
	p[SetNumbers][SplitTrain] = nums[2*o.Eval:]

	trainDocs, validDocs, err := text.Fortunes(o.FortunesDir)
	if err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(o.Seed, 0x73656e74656e6365)) // "sentence"
	held := Sentences(validDocs, known)
	heldKeys := map[string]bool{}
	for _, s := range held {
		heldKeys[Normalize(s)] = true
	}
	var train []string
	for _, s := range Sentences(trainDocs, known) {
		if !heldKeys[Normalize(s)] {
			train = append(train, s)
		}
	}
	if len(held) < 2*o.Eval || len(train) < o.Texts {
		return nil, fmt.Errorf("speech: the fortunes hold %d plain sentences for validation and test and %d for training; asked for %d and %d", len(held), len(train), 2*o.Eval, o.Texts)
	}
	r.Shuffle(len(held), func(i, j int) { held[i], held[j] = held[j], held[i] })
	r.Shuffle(len(train), func(i, j int) { train[i], train[j] = train[j], train[i] })
	asTexts := func(s []string) []Text {
		out := make([]Text, len(s))
		for i, x := range s {
			out[i] = Text{Set: SetSentences, Kind: "sentence", Words: x}
		}
		return out
	}
	p[SetSentences][SplitTest] = asTexts(held[:o.Eval])
	p[SetSentences][SplitValid] = asTexts(held[o.Eval : 2*o.Eval])
	p[SetSentences][SplitTrain] = asTexts(train[:o.Texts])
	return p, nil
}

// batch is one unit of rendering work: texts of one voice.
type batch struct {
	voice Voice
	utts  []Utterance
}

// flite starts in milliseconds, festival in about a second: festival's
// batches are larger so that its start-up stays a small share.
const (
	fliteBatch    = 20
	festivalBatch = 100
)

func (o *Options) fill() error {
	if o.FortunesDir == "" {
		o.FortunesDir = text.FortunesDir
	}
	if o.Dictionary == "" {
		o.Dictionary = filepath.Join(PocketsphinxModel, "cmudict-en-us.dict")
	}
	if o.Workers <= 0 {
		o.Workers = runtime.NumCPU()
	}
	if o.Voices == nil {
		o.Voices = Voices
	}
	if o.Texts < 1 || o.Eval < 1 {
		return fmt.Errorf("speech: %d training and %d evaluation texts per set: want at least 1 of each", o.Texts, o.Eval)
	}
	if o.Texts > 100_000 || o.Eval > 10_000 {
		return fmt.Errorf("speech: %d training and %d evaluation texts per set: at most 100000 and 10000", o.Texts, o.Eval)
	}
	for _, h := range o.Heldout {
		if _, err := voiceIn(o.Voices, h); err != nil {
			return err
		}
	}
	if len(o.Heldout) >= len(o.Voices) {
		return errors.New("speech: every voice held out: none left to train on")
	}
	return nil
}

// UpToDate returns the cache's manifest if it was built with o's settings,
// the synthesisers installed now and the texts o selects now (their
// digests), so that a change to the text rules also rebuilds it.
func UpToDate(o Options) (*Manifest, bool) {
	if err := o.fill(); err != nil {
		return nil, false
	}
	m, err := ReadManifest(o.Dir)
	if err != nil {
		return nil, false
	}
	if m.Seed != o.Seed || m.Texts != o.Texts || m.Eval != o.Eval || m.TrainOnly != o.TrainOnly ||
		!slices.Equal(m.Heldout, sortedCopy(o.Heldout)) || !mapsEqual(m.Versions, versions(o.Voices)) || !sameVoices(m.Voices, o.Voices) {
		return m, false
	}
	if _, err := os.Stat(filepath.Join(o.Dir, UtterancesFile)); err != nil {
		return m, false
	}
	known, err := ReadDictionary(o.Dictionary)
	if err != nil {
		return m, false
	}
	p, err := planTexts(o, known)
	if err != nil {
		return m, false
	}
	return m, mapsEqual(m.TextDigests, p.digests())
}

// sameVoices says whether a manifest's voices are voices, in order.
func sameVoices(got []VoiceInfo, voices []Voice) bool {
	return slices.EqualFunc(got, voices, func(a VoiceInfo, b Voice) bool { return a.Voice == b })
}

// digests are text.Digest of the texts of each "set/split".
func (p plan) digests() map[string]string {
	out := map[string]string{}
	for set, splits := range p {
		for split, texts := range splits {
			words := make([]string, len(texts))
			for i, t := range texts {
				words[i] = t.Words
			}
			out[set+"/"+split] = text.Digest(words)
		}
	}
	return out
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	if c == nil {
		c = []string{}
	}
	return c
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// Build renders the cache described by o into o.Dir, replacing what is
// there. It renders into a temporary sibling folder and renames it into
// place only when every utterance is rendered, so an interrupted build
// leaves the previous cache (or none), never a partial one; leftovers of a
// killed build are removed at the start (two builds of one folder at once
// are not supported).
func Build(ctx context.Context, o Options) (*Manifest, error) {
	if err := o.fill(); err != nil {
		return nil, err
	}
	start := time.Now()
	for _, v := range o.Voices {
		if err := CheckVoice(v); err != nil {
			return nil, err
		}
	}
	known, err := ReadDictionary(o.Dictionary)
	if err != nil {
		return nil, fmt.Errorf("%w (the sentences keep only words the judge knows: run make setup, which installs Debian's pocketsphinx-en-us)", err)
	}
	p, err := planTexts(o, known)
	if err != nil {
		return nil, err
	}
	dir := filepath.Clean(o.Dir)
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("speech: %w", err)
	}
	stale, _ := filepath.Glob(filepath.Join(parent, "."+filepath.Base(dir)+".*.tmp"))
	for _, s := range stale {
		_ = os.RemoveAll(s)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("speech: %w", err)
	}
	done := false
	defer func() {
		if !done {
			_ = os.RemoveAll(tmp)
		}
	}()

	heldout := map[string]bool{}
	for _, h := range o.Heldout {
		heldout[h] = true
	}
	var batches []batch
	total := 0
	for _, v := range o.Voices {
		if err := os.MkdirAll(filepath.Join(tmp, "wav", v.Name), 0o755); err != nil {
			return nil, fmt.Errorf("speech: %w", err)
		}
		var all []Utterance
		for _, set := range []string{SetNumbers, SetSentences} {
			for _, split := range Splits {
				if (split == SplitTrain && heldout[v.Name]) || (split != SplitTrain && o.TrainOnly) {
					continue
				}
				for i, t := range p[set][split] {
					all = append(all, Utterance{
						File:  filepath.ToSlash(filepath.Join("wav", v.Name, fmt.Sprintf("%s-%s-%04d.wav", set, split, i))),
						Split: split, Set: set, Voice: v.Name, Text: t.Words,
					})
				}
			}
		}
		size := fliteBatch
		if v.Synth == "festival" {
			size = festivalBatch
		}
		for lo := 0; lo < len(all); lo += size {
			batches = append(batches, batch{voice: v, utts: all[lo:min(lo+size, len(all))]})
		}
		total += len(all)
	}
	if err := render(ctx, tmp, batches, total, o.Workers, o.Log); err != nil {
		return nil, err
	}

	var utts []Utterance
	for _, b := range batches {
		utts = append(utts, b.utts...)
	}
	m := &Manifest{
		Format: manifestFormat, Rate: Rate, Seed: o.Seed, Texts: o.Texts, Eval: o.Eval, Heldout: sortedCopy(o.Heldout),
		TrainOnly: o.TrainOnly, Versions: versions(o.Voices), TextDigests: p.digests(),
		Splits: map[string]Count{}, Sets: map[string]Count{}, VoiceSplits: map[string]Count{},
	}
	for _, v := range o.Voices {
		m.Voices = append(m.Voices, VoiceInfo{Voice: v, Heldout: heldout[v.Name], Resampled: v.Rate != Rate})
	}
	for _, u := range utts {
		c := m.Splits[u.Split]
		c.add(u.Seconds)
		m.Splits[u.Split] = c
		c = m.Sets[u.Set+"/"+u.Split]
		c.add(u.Seconds)
		m.Sets[u.Set+"/"+u.Split] = c
		c = m.VoiceSplits[u.Voice+"/"+u.Split]
		c.add(u.Seconds)
		m.VoiceSplits[u.Voice+"/"+u.Split] = c
	}
	if err := writeIndex(tmp, utts); err != nil {
		return nil, err
	}
	m.BuildSeconds = time.Since(start).Seconds()
	m.Built = time.Now().UTC().Format(time.RFC3339)
	js, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("speech: %w", err)
	}
	if err := atomicfile.WriteBytes(filepath.Join(tmp, ManifestFile), append(js, '\n')); err != nil {
		return nil, fmt.Errorf("speech: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("speech: %w", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("speech: removing the old cache: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("speech: %w", err)
	}
	done = true
	return m, atomicfile.SyncDir(parent)
}

// render runs the batches on workers goroutines, each batch one
// synthesiser process (or a few, for flite), and fills in each
// utterance's duration.
func render(ctx context.Context, dir string, batches []batch, total, workers int, log io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan int)
	var (
		mu       sync.Mutex
		firstErr error
		done     int
		last     time.Time
		start    = time.Now()
		wg       sync.WaitGroup
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				b := &batches[i]
				texts := make([]string, len(b.utts))
				paths := make([]string, len(b.utts))
				for j, u := range b.utts {
					texts[j], paths[j] = u.Text, filepath.Join(dir, filepath.FromSlash(u.File))
				}
				secs, err := Synthesize(ctx, b.voice, texts, paths)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
					cancel()
				}
				for j := range secs {
					b.utts[j].Seconds = secs[j]
				}
				done += len(secs)
				if log != nil && (time.Since(last) > 10*time.Second || done == total) {
					last = time.Now()
					fmt.Fprintf(log, "speech data: %d/%d utterances rendered (%.0f s)\n", done, total, time.Since(start).Seconds())
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for i := range batches {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// writeIndex writes utterances.tsv (every utterance with its split, set,
// voice and duration) and a transcript.tsv in each voice's folder, so that
// one voice reads like a user's folder (ReadFolder).
func writeIndex(dir string, utts []Utterance) error {
	var b strings.Builder
	b.WriteString(utterancesHead + "\n")
	perVoice := map[string][]Clip{}
	for _, u := range utts {
		fmt.Fprintf(&b, "%s\t%s\t%s\t%s\t%.4f\t%s\n", u.File, u.Split, u.Set, u.Voice, u.Seconds, u.Text)
		perVoice[u.Voice] = append(perVoice[u.Voice], Clip{Name: filepath.Base(u.File), Text: u.Text})
	}
	if err := atomicfile.WriteBytes(filepath.Join(dir, UtterancesFile), []byte(b.String())); err != nil {
		return fmt.Errorf("speech: %w", err)
	}
	for v, clips := range perVoice {
		if err := WriteTranscript(filepath.Join(dir, "wav", v), clips); err != nil {
			return err
		}
	}
	return nil
}

// ReadManifest reads dir/manifest.json.
func ReadManifest(dir string) (*Manifest, error) {
	path := filepath.Join(dir, ManifestFile)
	b, err := boundedio.ReadFile(path, 16<<20)
	if err != nil {
		return nil, fmt.Errorf("speech: reading %s: %w (run `latentlm speech data` to build the speech data)", path, err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("speech: reading %s: %w", path, jsonerr.Describe(err))
	}
	if m.Format != manifestFormat {
		return nil, fmt.Errorf("speech: %s has format %d, want %d: run `latentlm speech data` to rebuild it", path, m.Format, manifestFormat)
	}
	return &m, nil
}

// Load reads a cache's manifest and utterances. Utterance files are
// relative to dir; join them with filepath.Join(dir, u.File).
func Load(dir string) (*Manifest, []Utterance, error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, nil, err
	}
	path := filepath.Join(dir, UtterancesFile)
	b, err := boundedio.ReadFile(path, 1<<30)
	if err != nil {
		return nil, nil, fmt.Errorf("speech: reading %s: %w", path, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	var utts []Utterance
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if n == 1 {
			if line != utterancesHead {
				return nil, nil, fmt.Errorf("speech: %s: header %q, want %q", path, line, utterancesHead)
			}
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 6 {
			return nil, nil, fmt.Errorf("speech: %s line %d: %d fields, want 6", path, n, len(f))
		}
		secs, err := strconv.ParseFloat(f[4], 64)
		if err != nil || secs < 0 {
			return nil, nil, fmt.Errorf("speech: %s line %d: duration %q", path, n, f[4])
		}
		if !slices.Contains(Splits, f[1]) || (f[2] != SetNumbers && f[2] != SetSentences) || strings.Contains(f[0], "..") {
			return nil, nil, fmt.Errorf("speech: %s line %d: bad file, split or set", path, n)
		}
		utts = append(utts, Utterance{File: f[0], Split: f[1], Set: f[2], Voice: f[3], Seconds: secs, Text: f[5]})
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("speech: reading %s: %w", path, err)
	}
	return m, utts, nil
}
