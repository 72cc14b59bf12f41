package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/latentlm/latentlm/internal/deps"
	"github.com/latentlm/latentlm/internal/guard"
	"github.com/latentlm/latentlm/speech"
	"github.com/latentlm/latentlm/wav"
)

func init() {
	register("speech", "build the speech data from synthesised voices, and judge intelligibility with pocketsphinx", runSpeech)
	register("spectrogram", "draw a WAV file's log-mel spectrogram as a PNG", runSpectrogram)
}

func runSpeech(args []string) error {
	return dispatch("speech", "usage: latentlm speech data|judge [flags]\n\n"+
		"  data   render the spoken numbers and fortune sentences in seven voices into .deps/speech (--timbres: nine voices of other languages into .deps/speech-timbres, for the speech tokenizer)\n"+
		"  judge  pocketsphinx's word error rate on the data, per voice and set, or on a folder of WAVs",
		map[string]func([]string) error{"data": speechData, "judge": speechJudge}, args)
}

// speechDir is the data cache: .deps/speech unless --out or --data names
// another folder.
func speechDir(flag string) (string, error) { return depsFolder(flag, "speech") }

// depsFolder is the folder a flag names, or .deps/name.
func depsFolder(flag, name string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	d, err := deps.Dir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, name), nil
}

func speechData(args []string) error {
	fs := newFlags("speech data", "speech data [--out DIR] [--texts 400] [--eval 50] [--seed 1] [--heldout flite-rms] [--force] | --timbres [--out DIR]")
	out := fs.String("out", "", "cache folder (default .deps/speech, or .deps/speech-timbres with --timbres)")
	timbres := fs.Bool("timbres", false, "build the cache of timbres instead: nine Italian, Czech, Catalan and Finnish festival voices reading 200 training texts per set, for speech-vae train --timbres")
	texts := fs.Int("texts", 400, "training texts per set (numbers, sentences), each rendered in every voice not held out")
	eval := fs.Int("eval", 50, "validation texts and test texts per set, each rendered in every voice")
	seed := fs.Uint64("seed", 1, "seed of the number texts and of the order of the sentences")
	heldout := fs.String("heldout", speech.DefaultHeldout, "comma-separated voices rendered only for validation and test (the voice-cloning test)")
	workers := fs.Int("workers", 0, "synthesiser processes at once (0: one per CPU)")
	force := fs.Bool("force", false, "rebuild even if the cache matches these flags and the installed synthesisers")
	quiet := fs.Bool("quiet", false, "no progress lines")
	fs.bound("texts", 1, 100_000, false)
	fs.bound("eval", 1, 10_000, false)
	fs.bound("workers", 0, 1024, false)
	if err := fs.Parse(args); err != nil {
		return err
	}
	var o speech.Options
	if *timbres {
		for _, name := range []string{"texts", "eval", "seed", "heldout"} {
			if fs.isSet(name) {
				return fmt.Errorf("--%s is for the English data: the cache of timbres takes the default cache's training texts and holds no voice out", name)
			}
		}
		dir, err := depsFolder(*out, "speech-timbres")
		if err != nil {
			return err
		}
		o = speech.TimbreOptions(dir)
	} else {
		dir, err := speechDir(*out)
		if err != nil {
			return err
		}
		o = speech.Options{Dir: dir, Seed: *seed, Texts: *texts, Eval: *eval}
		for _, h := range strings.Split(*heldout, ",") {
			if h = strings.TrimSpace(h); h != "" {
				o.Heldout = append(o.Heldout, h)
			}
		}
	}
	o.Workers = *workers
	dir := o.Dir
	if !*quiet {
		o.Log = os.Stderr
	}
	if m, ok := speech.UpToDate(o); ok && !*force {
		fmt.Printf("speech data: %s is up to date (seed %d, built %s); --force rebuilds it\n", dir, m.Seed, m.Built)
		printSpeechCounts(m)
		return nil
	}
	ctx, stop := signalContext()
	defer stop()
	m, err := speech.Build(ctx, o)
	if err != nil {
		return err
	}
	fmt.Printf("speech data: built %s in %.0f s (seed %d)\n", dir, m.BuildSeconds, m.Seed)
	printSpeechCounts(m)
	return nil
}

// printSpeechCounts prints utterances and hours per split and voice.
func printSpeechCounts(m *speech.Manifest) {
	width := len("voice")
	for _, v := range m.Voices {
		width = max(width, len(v.Name)+len(" (held)"))
	}
	fmt.Printf("%-*s", width, "voice")
	for _, s := range speech.Splits {
		fmt.Printf(" %17s", s)
	}
	fmt.Println()
	row := func(name string, count func(split string) speech.Count) {
		fmt.Printf("%-*s", width, name)
		for _, s := range speech.Splits {
			c := count(s)
			fmt.Printf(" %6d  %6.3f h", c.Utterances, c.Hours)
		}
		fmt.Println()
	}
	for _, v := range m.Voices {
		name := v.Name
		if v.Heldout {
			name += " (held)"
		}
		row(name, func(s string) speech.Count { return m.VoiceSplits[v.Name+"/"+s] })
	}
	for _, set := range []string{speech.SetNumbers, speech.SetSentences} {
		row("  "+set, func(s string) speech.Count { return m.Sets[set+"/"+s] })
	}
	row("all", func(s string) speech.Count { return m.Splits[s] })
}

// judgeRow is one line of the judge's report.
type judgeRow struct {
	Voice      string  `json:"voice"`
	Set        string  `json:"set"`
	Utterances int     `json:"utterances"`
	Words      int     `json:"words"`
	Errors     int     `json:"errors"`
	WER        float64 `json:"wer"`
}

func speechJudge(args []string) error {
	fs := newFlags("speech judge", "speech judge [--data DIR] [--split test] [--n 20] [--json] | --folder DIR [--grammar numbers|none]")
	dataDir := fs.String("data", "", "speech data cache (default .deps/speech)")
	split := fs.String("split", speech.SplitTest, "split to judge: train, valid or test")
	n := fs.Int("n", 20, "utterances per voice and set (the first in file order)")
	folder := fs.String("folder", "", "judge a folder of WAVs with a transcript.tsv (name.wav<TAB>text lines) instead")
	grammar := fs.String("grammar", "none", "with --folder: numbers (the JSGF grammar of the spoken numbers) or none (the default language model)")
	workers := fs.Int("workers", 0, "recogniser processes at once (0: one per CPU)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	verbose := fs.Bool("verbose", false, "print each reference and what the recogniser heard")
	fs.bound("workers", 0, 1024, false)
	if err := fs.Parse(args); err != nil {
		return err
	}
	j, err := speech.NewJudge()
	if err != nil {
		return err
	}
	j.Workers = *workers
	ctx, stop := signalContext()
	defer stop()
	start := time.Now()
	var rows []judgeRow
	if *folder != "" {
		if *grammar != "numbers" && *grammar != "none" {
			return fmt.Errorf("--grammar %q: want numbers or none", *grammar)
		}
		clips, err := speech.ReadFolder(*folder)
		if err != nil {
			return err
		}
		g := ""
		if *grammar == "numbers" {
			g = speech.NumbersGrammar()
		}
		row, err := judgeClips(ctx, j, clips, g, *verbose)
		if err != nil {
			return err
		}
		row.Voice, row.Set = filepath.Base(filepath.Clean(*folder)), *grammar
		rows = append(rows, row)
	} else {
		if !slices.Contains(speech.Splits, *split) {
			return fmt.Errorf("--split %q: want train, valid or test", *split)
		}
		dir, err := speechDir(*dataDir)
		if err != nil {
			return err
		}
		_, utts, err := speech.Load(dir)
		if err != nil {
			return err
		}
		for _, v := range speech.Voices {
			for _, set := range []string{speech.SetNumbers, speech.SetSentences} {
				var clips []speech.Clip
				for _, u := range utts {
					if u.Voice == v.Name && u.Set == set && u.Split == *split && len(clips) < *n {
						clips = append(clips, speech.Clip{Name: filepath.Base(u.File), Path: filepath.Join(dir, u.File), Text: u.Text})
					}
				}
				if len(clips) == 0 {
					continue
				}
				row, err := judgeClips(ctx, j, clips, speech.GrammarFor(set), *verbose)
				if err != nil {
					return err
				}
				row.Voice, row.Set = v.Name, set
				rows = append(rows, row)
			}
		}
		if len(rows) == 0 {
			return fmt.Errorf("no utterances of split %s in %s", *split, dir)
		}
		for _, set := range []string{speech.SetNumbers, speech.SetSentences} {
			all := judgeRow{Voice: "all", Set: set}
			for _, r := range rows {
				if r.Set == set && r.Voice != "all" {
					all.Utterances += r.Utterances
					all.Words += r.Words
					all.Errors += r.Errors
				}
			}
			if all.Utterances > 0 {
				all.WER = speech.WER{Errors: all.Errors, Words: all.Words}.Rate()
				rows = append(rows, all)
			}
		}
	}
	if *asJSON {
		return printJSON(map[string]any{"split": *split, "n": *n, "seconds": time.Since(start).Seconds(), "results": rows})
	}
	fmt.Printf("%-18s %-10s %6s %6s %7s\n", "voice", "set", "utts", "words", "WER")
	for _, r := range rows {
		fmt.Printf("%-18s %-10s %6d %6d %6.1f%%\n", r.Voice, r.Set, r.Utterances, r.Words, 100*r.WER)
	}
	fmt.Printf("(pocketsphinx, %.0f s; numbers with their JSGF grammar, sentences with the default language model)\n", time.Since(start).Seconds())
	return nil
}

// judgeClips reads clips and scores them.
func judgeClips(ctx context.Context, j *speech.Judge, clips []speech.Clip, grammar string, verbose bool) (judgeRow, error) {
	audio := make([]wav.Audio, len(clips))
	refs := make([]string, len(clips))
	for i, c := range clips {
		a, err := wav.Read(c.Path)
		if err != nil {
			return judgeRow{}, err
		}
		audio[i], refs[i] = a, c.Text
	}
	w, hyps, err := j.Score(ctx, audio, refs, grammar)
	if err != nil {
		return judgeRow{}, err
	}
	if verbose {
		for i, c := range clips {
			e := speech.WordErrors(refs[i], hyps[i])
			fmt.Fprintf(os.Stderr, "%s\t%d/%d\t%s\t→ %s\n", c.Path, e.Errors, e.Words, speech.Normalize(refs[i]), hyps[i])
		}
	}
	return judgeRow{Utterances: len(clips), Words: w.Words, Errors: w.Errors, WER: w.Rate()}, nil
}

func runSpectrogram(args []string) error {
	fs := newFlags("spectrogram", "spectrogram FILE.wav [--out FILE.png]").takesArgs()
	out := fs.String("out", "", "PNG to write (default: the WAV's path with .png)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	files := fs.Args()
	if len(files) != 1 {
		return errors.New("want one WAV file (run `latentlm spectrogram -h`)")
	}
	dst := *out
	if dst == "" && !fs.isSet("out") {
		dst = strings.TrimSuffix(files[0], filepath.Ext(files[0])) + ".png"
	}
	if err := guard.CheckOutputFormat(dst, ".png", files[0]); err != nil {
		return err
	}
	a, err := wav.Read(files[0])
	if err != nil {
		return err
	}
	if err := speech.WriteSpectrogram(dst, a); err != nil {
		return fmt.Errorf("%s: %w", files[0], err)
	}
	fmt.Printf("%s: %.2f s at %d Hz → %s\n", files[0], a.Seconds(), a.Rate, dst)
	return nil
}
