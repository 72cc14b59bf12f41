package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/benchmark"
	"github.com/latentlm/latentlm/evaluate"
	"github.com/latentlm/latentlm/internal/testspeech"
	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/speech"
	"github.com/latentlm/latentlm/tts"
	"github.com/latentlm/latentlm/valle"
	"github.com/latentlm/latentlm/wav"
)

// listenFixture is a speech cache with a test split of two voices and
// three numbers each (tones: the pitch is the voice, the length follows
// the text), a tiny untrained speech tokenizer, and a tiny random
// text-to-speech model on it whose softmax head is zero, so that it never
// ends the speech itself and --max-seconds sets its length.
type listenFixture struct {
	root, cache, vae, model string
}

// valleBaseline writes beside the fixture a tiny random VALL-E-style
// baseline on a tiny untrained residual-VQ codec of 3 codebooks, and
// returns its folder.
func (f listenFixture) valleBaseline(t *testing.T) string {
	t.Helper()
	codecDir, dir := filepath.Join(f.root, "codec"), filepath.Join(f.root, "valle")
	sc, sum := testspeech.Save(t, 3, codecDir)
	cfg := valle.NewConfig(sc, 32, 1, 2, 160)
	store := model.NewStore()
	if err := nn.Init(store, cfg.Specs(), 4, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	rec := lm.Tokenizer{Path: codecDir, SHA256: sum, Kind: sc.KindName(), Channels: sc.Channels, Data: "random"}
	if err := valle.Save(dir, cfg, store, map[string]any{"tokenizer": rec, "prompt_seconds": 3.0}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func newListenFixture(t *testing.T) listenFixture {
	t.Helper()
	root := t.TempDir()
	f := listenFixture{root: root, cache: filepath.Join(root, "speech"), vae: filepath.Join(root, "speech-vae"), model: filepath.Join(root, "tts")}
	var tsv strings.Builder
	tsv.WriteString("file\tsplit\tset\tvoice\tseconds\ttext\n")
	for v, voice := range []string{"flite-awb", "flite-slt"} {
		if err := os.MkdirAll(filepath.Join(f.cache, "wav", voice), 0o755); err != nil {
			t.Fatal(err)
		}
		for i, text := range []string{"one", "twenty two", "three hundred"} {
			n := 4000 + 400*len(text)
			x := make([]float32, n)
			for k := range x {
				x[k] = float32(0.3 * math.Sin(2*math.Pi*float64(150+100*v)*float64(k)/speech.Rate))
			}
			file := fmt.Sprintf("wav/%s/numbers-test-%04d.wav", voice, i)
			if err := wav.Write(filepath.Join(f.cache, file), wav.Audio{Rate: speech.Rate, Samples: x}); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&tsv, "%s\ttest\t%s\t%s\t%.4f\t%s\n", file, speech.SetNumbers, voice, float64(n)/speech.Rate, text)
		}
	}
	if err := os.WriteFile(filepath.Join(f.cache, speech.UtterancesFile), []byte(tsv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.cache, speech.ManifestFile), []byte(`{"format": 1, "rate": 16000}`), 0o644); err != nil {
		t.Fatal(err)
	}
	sc, sum := testspeech.Save(t, 0, f.vae)
	tf, err := tts.NewFormat(tts.Alphabet, sc.Channels, sc.FrameRate())
	if err != nil {
		t.Fatal(err)
	}
	cfg := lm.Config{Dim: 32, Depth: 1, Heads: 2, KVHeads: 2, MLPRatio: 2, HeadDepth: 1, HeadDim: 32,
		Latent: tf.Channels, MaxLen: 160, Target: tts.Target, Vocab: tf.Vocab, Layout: lm.LayoutBOL}
	specs := cfg.Specs()
	for i := range specs {
		specs[i].Std = 0.1
	}
	store := model.NewStore()
	if err := nn.Init(store, specs, 3, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	head := store.GetVariable(nn.WeightsScope + "/lm_head.weight")
	if err := head.SetValue(nn.Tensor(make([]float64, cfg.Vocab.Size()*cfg.Dim), dtypes.Float32, cfg.Vocab.Size(), cfg.Dim)); err != nil {
		t.Fatal(err)
	}
	rec := lm.Tokenizer{Path: f.vae, SHA256: sum, Kind: sc.Kind.String(), Channels: sc.Channels, Data: "random"}
	if err := tts.Save(f.model, cfg, store, rec, tts.Record{Alphabet: tf.AlphabetString(), FrameRate: tf.FrameRate, PromptSeconds: 3}, nil); err != nil {
		t.Fatal(err)
	}
	return f
}

// args are the flags of a fast listening run on the fixture, without
// judges: 0.2 s of speech (5 frames) with 2 solver steps.
func (f listenFixture) args(more ...string) []string {
	return append([]string{"--model", f.model, "--data", f.cache, "--split", "test", "--no-judge", "--speaker", "none",
		"--steps", "2", "--max-seconds", "0.2", "--batch", "2", "--seed", "5"}, more...)
}

// listenHTML is what readListenHTML finds in a page.
type listenHTML struct {
	headers int
	rows    [][]string // per body row: its cells' tags
	srcs    []string
	alts    []string
	text    string
}

// readListenHTML parses dir/index.html as strict XML (a well-formed page:
// every element closed, attributes quoted) and gathers its table.
func readListenHTML(t *testing.T, dir string) listenHTML {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict, d.Entity = true, xml.HTMLEntity
	var h listenHTML
	var stack []string
	var text strings.Builder
	section := ""
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s/index.html is not well-formed: %v", dir, err)
		}
		switch x := tok.(type) {
		case xml.StartElement:
			n := x.Name.Local
			stack = append(stack, n)
			switch {
			case n == "thead" || n == "tbody" || n == "tfoot":
				section = n
			case n == "th" && section == "thead":
				h.headers++
			case n == "tr" && section == "tbody":
				h.rows = append(h.rows, nil)
			case (n == "th" || n == "td") && section == "tbody":
				h.rows[len(h.rows)-1] = append(h.rows[len(h.rows)-1], n)
			}
			for _, a := range x.Attr {
				switch {
				case a.Name.Local == "src":
					h.srcs = append(h.srcs, a.Value)
				case a.Name.Local == "alt" && n == "img":
					h.alts = append(h.alts, a.Value)
				}
			}
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			text.Write(x)
		}
	}
	if len(stack) > 0 {
		t.Fatalf("unclosed %v", stack)
	}
	h.text = text.String()
	return h
}

// checkListenPage checks a page of rows texts and cols systems: the table's
// shape, that every WAV and PNG it names is in the folder and valid, that
// every picture has alt text, that the header records what it must, and
// that listen.json agrees.
func checkListenPage(t *testing.T, dir string, rows, cols int) {
	t.Helper()
	h := readListenHTML(t, dir)
	if h.headers != cols+1 || len(h.rows) != rows {
		t.Fatalf("%d column headers and %d rows, want %d and %d", h.headers, len(h.rows), cols+1, rows)
	}
	for _, r := range h.rows {
		if len(r) != cols+1 || r[0] != "th" {
			t.Errorf("a row's cells: %v", r)
		}
	}
	if len(h.srcs) != 2*rows*cols || len(h.alts) != rows*cols {
		t.Errorf("%d sources and %d alt texts for %d cells", len(h.srcs), len(h.alts), rows*cols)
	}
	for _, a := range h.alts {
		if !strings.Contains(a, "spectrogram") {
			t.Errorf("alt text %q", a)
		}
	}
	for _, s := range h.srcs {
		p := filepath.Join(dir, s)
		switch filepath.Ext(s) {
		case ".wav":
			if a, err := wav.Read(p); err != nil || a.Rate != speech.Rate || len(a.Samples) == 0 {
				t.Errorf("%s: %v, %d Hz, %d samples", s, err, a.Rate, len(a.Samples))
			}
		case ".png":
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(f)
			f.Close()
			if err != nil || img.Bounds().Dy() != speech.DefaultMel.Mels*speech.SpectrogramBandPixels || img.Bounds().Dx() == 0 {
				t.Errorf("%s: %v", s, err)
			}
		default:
			t.Errorf("the page refers to %s", s)
		}
	}
	for _, want := range []string{"model", "command", "latentlm eval --task tts", "--listen", "date", "machine", "CPU flags", "seed", "original", "tokenizer reconstruction", "LatentLM"} {
		if !strings.Contains(h.text, want) {
			t.Errorf("the page does not say %q", want)
		}
	}
	var page evaluate.ListenPage
	b, err := os.ReadFile(filepath.Join(dir, "listen.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &page); err != nil || len(page.Rows) != rows || len(page.Columns) != cols || len(page.Files) != len(h.srcs) {
		t.Errorf("listen.json: %v; %d rows, %d columns, %d files", err, len(page.Rows), len(page.Columns), len(page.Files))
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(h.srcs)+2 {
		t.Errorf("%d files in %s, want the page's %d and index.html and listen.json", len(entries), dir, len(h.srcs))
	}
}

// TestEvalTTSListen: `eval --task tts --listen` writes a page with a row
// per text and columns original, reconstruction, LatentLM and, with
// --baseline, the baseline; without it the column is left out; --force
// replaces a page written before; the parent folder keeps no temporaries.
func TestEvalTTSListen(t *testing.T) {
	f := newListenFixture(t)
	out := filepath.Join(f.root, "page")
	if err := runEvalTTS(f.args("--listen", out, "--listen-n", "3", "--baseline", f.model)); err != nil {
		t.Fatal(err)
	}
	checkListenPage(t, out, 3, 4)
	if b, _ := os.ReadFile(filepath.Join(out, "index.html")); !strings.Contains(string(b), "baseline") {
		t.Error("the page has no baseline column")
	}
	out2 := filepath.Join(f.root, "page2")
	if err := runEvalTTS(f.args("--listen", out2, "--listen-n", "2")); err != nil {
		t.Fatal(err)
	}
	checkListenPage(t, out2, 2, 3)
	// --force: the old page (3 rows, 4 columns) gives way to the new one.
	if err := runEvalTTS(f.args("--listen", out, "--listen-n", "2", "--force")); err != nil {
		t.Fatal(err)
	}
	checkListenPage(t, out, 2, 3)
	entries, err := os.ReadDir(f.root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("%s left in %s", e.Name(), f.root)
		}
	}
}

// TestEvalTTSListenBadFlags: listening flags without --listen, bad counts,
// a file or a folder of other things as the page, a page inside an input,
// and a missing or foreign baseline are refused with one line each, before
// any model loads and without creating the folder.
func TestEvalTTSListenBadFlags(t *testing.T) {
	f := newListenFixture(t)
	file := filepath.Join(f.root, "notes.txt")
	if err := os.WriteFile(file, []byte("notes"), 0o644); err != nil {
		t.Fatal(err)
	}
	full := filepath.Join(f.root, "full")
	if err := os.MkdirAll(full, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(full, "thesis.tex"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	page := filepath.Join(f.root, "page")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--listen-n", "3"}, "--listen-n only make sense with --listen"},
		{[]string{"--force", "--baseline", f.model}, "--baseline and --force only make sense with --listen"},
		{[]string{"--listen", page, "--listen-n", "0"}, "--listen-n 0"},
		{[]string{"--listen", page, "--listen-n", "101"}, "--listen-n 101"},
		{[]string{"--listen", file}, "is a file"},
		{[]string{"--listen", full}, "already exists and is not empty"},
		{[]string{"--listen", full, "--force"}, "holds thesis.tex"},
		{[]string{"--listen", filepath.Join(f.model, "page")}, "inside the input folder"},
		{[]string{"--listen", filepath.Join(f.cache, "page")}, "inside the input folder"},
		{[]string{"--listen", filepath.Join(f.root, "no", "page")}, "does not exist"},
		{[]string{"--listen", page, "--baseline", filepath.Join(f.root, "nothing")}, "--baseline"},
		{[]string{"--listen", page, "--baseline", f.vae}, `is a "speech-vae" checkpoint`},
		{[]string{"--listen", page, "--set", "poems"}, "--set"},
	} {
		err := runEvalTTS(f.args(c.args...))
		if err == nil {
			t.Errorf("%q succeeded", c.args)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, c.want) || strings.Contains(strings.TrimSpace(msg), "\n") {
			t.Errorf("%q: %q, want one line with %q", c.args, msg, c.want)
		}
		if _, err := os.Stat(page); err == nil {
			t.Fatalf("%q created %s", c.args, page)
		}
	}
	if _, err := os.Stat(filepath.Join(full, "thesis.tex")); err != nil {
		t.Error("--force touched a folder that is not a page")
	}
}

// TestWriteListenDir: a page whose writing fails leaves no folder and no
// temporaries, and with --force leaves the old page as it was.
func TestWriteListenDir(t *testing.T) {
	root := t.TempDir()
	dst := filepath.Join(root, "page")
	boom := errors.New("boom")
	half := func(dir string) error {
		if err := os.WriteFile(filepath.Join(dir, "01-original.wav"), []byte("half"), 0o644); err != nil {
			return err
		}
		return boom
	}
	if err := writeListenDir(dst, false, half); !errors.Is(err, boom) {
		t.Fatalf("error %v", err)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Fatalf("a failed page left %v", entries)
	}
	whole := func(dir string) error { return os.WriteFile(filepath.Join(dir, "index.html"), []byte("old"), 0o644) }
	if err := writeListenDir(dst, false, whole); err != nil {
		t.Fatal(err)
	}
	if err := writeListenDir(dst, true, half); !errors.Is(err, boom) {
		t.Fatalf("error %v", err)
	}
	entries, _ := os.ReadDir(root)
	if b, err := os.ReadFile(filepath.Join(dst, "index.html")); err != nil || string(b) != "old" || len(entries) != 1 {
		t.Errorf("a failed --force changed the old page: %q, %v; %d entries", b, err, len(entries))
	}
	if _, err := os.Stat(filepath.Join(dst, "01-original.wav")); err == nil {
		t.Error("a failed --force added to the old page")
	}
	if err := writeListenDir(dst, true, func(dir string) error { return os.WriteFile(filepath.Join(dir, "index.html"), []byte("new"), 0o644) }); err != nil {
		t.Fatal(err)
	}
	entries, _ = os.ReadDir(root)
	if b, err := os.ReadFile(filepath.Join(dst, "index.html")); err != nil || string(b) != "new" || len(entries) != 1 {
		t.Errorf("--force gave %q, %v; %d entries in the parent", b, err, len(entries))
	}
}

// TestCommandLine: the header's command line quotes what a shell would
// split or expand.
func TestCommandLine(t *testing.T) {
	got := commandLine([]string{"latentlm", "eval", "--listen", "my page", "--text", "it's", "--n=3", ""})
	want := `latentlm eval --listen 'my page' --text 'it'\''s' --n=3 ''`
	if got != want {
		t.Errorf("%s\nwant %s", got, want)
	}
}

// TestEvalTTSTable: the evaluation the listening page shares its code with
// (prompts, generation, decoding) still scores every picked utterance: the
// first --n texts of each voice, prompted by another utterance of the
// voice, none ended by the never-ending model, each --max-seconds long.
func TestEvalTTSTable(t *testing.T) {
	f := newListenFixture(t)
	code, stdout, stderr := cli(t, f.root, append([]string{"eval", "--task", "tts"}, f.args("--n", "2", "--json")...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var out struct {
		Report evaluate.TTSReport `json:"report"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	rows := map[string]evaluate.TTSScores{}
	for _, r := range out.Report.Rows {
		rows[r.Voice] = r
	}
	if len(rows) != 3 || rows["flite-awb"].Utterances != 2 || rows["flite-slt"].Utterances != 2 || rows["all"].Utterances != 4 {
		t.Fatalf("rows %+v", out.Report.Rows)
	}
	// 0.2 s of speech each: 5 frames of 640 samples.
	if a := rows["all"]; a.Stopped != 0 || math.Abs(out.Report.AudioSeconds-4*0.2) > 1e-9 {
		t.Errorf("stopped %v, %v s of audio; want 0 and 0.8 s", a.Stopped, out.Report.AudioSeconds)
	}
	// A backbone step per frame: the model never ends its speech.
	if r := out.Report; r.DecodingStepsPerSecond != r.FramesPerSecond {
		t.Errorf("%v decoding steps a second at %v frames a second, want equal", r.DecodingStepsPerSecond, r.FramesPerSecond)
	}
	// Teacher-forced: a frame per frame of the real utterance, whatever
	// --max-seconds says, so every length is the real one.
	code, stdout, stderr = cli(t, f.root, append([]string{"eval", "--task", "tts"}, f.args("--n", "2", "--json", "--teacher-forced")...)...)
	var forced struct {
		Report evaluate.TTSReport `json:"report"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &forced) != nil || len(forced.Report.Rows) != 3 {
		t.Fatalf("--teacher-forced: exit %d, %s%s", code, stdout, stderr)
	}
	if a := forced.Report.Rows[2]; a.Voice != "all" || a.WithinDuration != 1 || math.Abs(a.DurationRatio-1) > 0.1 || a.Stopped != 0 || forced.Report.AudioSeconds < 1 {
		t.Errorf("--teacher-forced: %+v, %v s of audio; want the real lengths (over 1 s in all), none stopped", a, forced.Report.AudioSeconds)
	}
	code, _, stderr = cli(t, f.root, append([]string{"eval", "--task", "tts"}, f.args("--teacher-forced", "--listen", filepath.Join(f.root, "tf"))...)...)
	expectOneLineError(t, code, stderr, "--teacher-forced is a diagnostic")
	code, _, stderr = cli(t, f.root, "eval", "--task", "tts", "--listen-n", "3")
	expectOneLineError(t, code, stderr, "--listen-n only make sense with --listen")
	// Whole utterances as prompts (the paper's second column group).
	code, stdout, stderr = cli(t, f.root, append([]string{"eval", "--task", "tts"}, f.args("--n", "1", "--json", "--prompt-seconds", "0")...)...)
	var whole struct {
		PromptSeconds *float64 `json:"prompt_seconds"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &whole) != nil || whole.PromptSeconds == nil || *whole.PromptSeconds != 0 {
		t.Errorf("--prompt-seconds 0: exit %d, %s%s", code, stdout, stderr)
	}

	// Two seeds pooled (the fixture's 5, then 6): each seed's row is that
	// of the same evaluation with that --seed alone, and the pool holds
	// both seeds' utterances. (Without judges the rows carry no
	// seed-dependent score; evaluate.TestMergeTTSReports checks the
	// pooling arithmetic.)
	var pooled struct {
		Report evaluate.TTSReport `json:"report"`
		Seeds  int                `json:"seeds"`
		BySeed []struct {
			Seed int64                `json:"seed"`
			Rows []evaluate.TTSScores `json:"rows"`
		} `json:"by_seed"`
	}
	code, stdout, stderr = cli(t, f.root, append([]string{"eval", "--task", "tts"}, f.args("--n", "2", "--json", "--seeds", "2")...)...)
	if code != 0 || json.Unmarshal([]byte(stdout), &pooled) != nil {
		t.Fatalf("--seeds 2: exit %d, %s%s", code, stdout, stderr)
	}
	var second struct {
		Report evaluate.TTSReport `json:"report"`
	}
	code, stdout, stderr = cli(t, f.root, append([]string{"eval", "--task", "tts"}, f.args("--n", "2", "--json", "--seed", "6")...)...)
	if code != 0 || json.Unmarshal([]byte(stdout), &second) != nil {
		t.Fatalf("--seed 6: exit %d, %s%s", code, stdout, stderr)
	}
	first := out.Report.Rows[2]
	if pooled.Seeds != 2 || len(pooled.BySeed) != 2 || pooled.BySeed[0].Seed != 5 || pooled.BySeed[1].Seed != 6 || len(pooled.BySeed[1].Rows) != 1 {
		t.Fatalf("--seeds 2: %+v", pooled)
	}
	if got, want := pooled.BySeed[1].Rows[0], second.Report.Rows[2]; got != want {
		t.Errorf("seed 6 in the pool: %+v\nalone: %+v", got, want)
	}
	if got := pooled.BySeed[0].Rows[0]; got != first {
		t.Errorf("seed 5 in the pool: %+v\nalone: %+v", got, first)
	}
	if a := pooled.Report.Rows[2]; a.Voice != "all" || a.Utterances != 8 || math.Abs(a.SIM-(first.SIM+second.Report.Rows[2].SIM)/2) > 1e-9 {
		t.Errorf("pooled: %+v; want 8 utterances and the mean SIM of the two seeds", a)
	}
	code, _, stderr = cli(t, f.root, append([]string{"eval", "--task", "tts"}, f.args("--seeds", "2", "--listen", filepath.Join(f.root, "s"))...)...)
	expectOneLineError(t, code, stderr, "--seeds pools the table's scores")
}

// TestEvalTTSVALLE: the VALL-E-style baseline is scored by the same
// evaluation (its kind read from the checkpoint), its decoding steps
// counting the NAR's passes, and joins a LatentLM page as --baseline; it
// has no page of its own.
func TestEvalTTSVALLE(t *testing.T) {
	f := newListenFixture(t)
	baseline := f.valleBaseline(t)
	args := f.args("--n", "2", "--json")
	args[1] = baseline // --model
	code, stdout, stderr := cli(t, f.root, append([]string{"eval", "--task", "tts"}, args...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var out struct {
		Kind   string             `json:"kind"`
		Report evaluate.TTSReport `json:"report"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	r := out.Report
	if out.Kind != valle.Kind || len(r.Rows) != 3 || r.Rows[2].Utterances != 4 || r.HeadPassesPerSecond != 0 {
		t.Fatalf("kind %q, report %+v", out.Kind, r)
	}
	// At most 0.2 s (5 frames at 25 Hz) each; the NAR's 2 passes for
	// codebooks 2 and 3 come on top of the AR's step per frame.
	if r.AudioSeconds > 4*0.2+1e-9 || r.FramesPerSecond != 25 || r.DecodingStepsPerSecond <= r.FramesPerSecond+2/0.2-1e-9 {
		t.Errorf("%v s of audio, %v frames and %v decoding steps a second", r.AudioSeconds, r.FramesPerSecond, r.DecodingStepsPerSecond)
	}
	page := filepath.Join(f.root, "page")
	if err := runEvalTTS(f.args("--listen", page, "--listen-n", "2", "--baseline", baseline)); err != nil {
		t.Fatal(err)
	}
	checkListenPage(t, page, 2, 4)
	if b, _ := os.ReadFile(filepath.Join(page, "index.html")); !strings.Contains(string(b), "VALL-E-style") {
		t.Error("the page has no VALL-E-style column")
	}
	args = f.args("--listen", filepath.Join(f.root, "page2"))
	args[1] = baseline
	code, _, stderr = cli(t, f.root, append([]string{"eval", "--task", "tts"}, args...)...)
	expectOneLineError(t, code, stderr, "with --baseline")

	// speak dispatches on the checkpoint's kind too: a WAV and the
	// baseline's counts; no streaming, and its own alphabet.
	speak := func(extra ...string) (int, string, string) {
		return cli(t, f.root, append([]string{"speak", "--model", baseline, "--voice", "flite-slt", "--data", f.cache, "--max-seconds", "0.2"}, extra...)...)
	}
	said := filepath.Join(f.root, "said.wav")
	code, stdout, stderr = speak("--text", "two", "--out", said)
	if code != 0 {
		t.Fatalf("speak: exit %d: %s", code, stderr)
	}
	a, err := wav.Read(said)
	if err != nil || len(a.Samples) == 0 || !strings.Contains(stdout, "VALL-E-style") || !strings.Contains(stdout, "NAR passes") {
		t.Errorf("speak wrote %d samples (%v) and said %q", len(a.Samples), err, stdout)
	}
	code, _, stderr = speak("--text", "two", "--out", said, "--stream")
	expectOneLineError(t, code, stderr, "VALL-E-style baseline")
	code, _, stderr = speak("--text", "t\u00e9", "--out", said)
	expectOneLineError(t, code, stderr, "alphabet")
	picture := filepath.Join(f.root, "alignment.png")
	code, _, stderr = speak("--text", "two", "--out", said, "--alignment", picture)
	expectOneLineError(t, code, stderr, "draws LatentLM models only")

	// A LatentLM model draws its alignment: frames+1 columns of 4 pixels
	// (the speech's <BOL> and each frame), a row of 4 per character.
	code, stdout, stderr = cli(t, f.root, "speak", "--model", f.model, "--voice", "flite-slt", "--data", f.cache, "--max-seconds", "0.2",
		"--text", "two", "--out", said, "--alignment", picture)
	if code != 0 {
		t.Fatalf("speak --alignment: exit %d: %s", code, stderr)
	}
	a, err = wav.Read(said)
	if err != nil {
		t.Fatal(err)
	}
	if b := testutil.DecodePNG(t, picture).Bounds(); b.Dy() != 3*4 || b.Dx() < 2*4 || !strings.Contains(stdout, picture) {
		t.Errorf("alignment picture of %v for %d samples; speak said %q", b, len(a.Samples), stdout)
	}

	// bench speak times both kinds on the same texts: the real-time factor
	// is the median call over the audio it spoke.
	for _, dir := range []string{baseline, f.model} {
		code, stdout, stderr = cli(t, f.root, "bench", "speak", "--model", dir, "--data", f.cache, "--batches", "1,2", "--reps", "1",
			"--steps", "2", "--max-seconds", "0.2", "--json")
		if code != 0 {
			t.Fatalf("bench speak %s: exit %d: %s", dir, code, stderr)
		}
		var res []benchmark.Result
		if err := json.Unmarshal([]byte(stdout), &res); err != nil {
			t.Fatalf("%v: %s", err, stdout)
		}
		if len(res) != 2 || res[1].Batch != 2 {
			t.Fatalf("bench speak %s: %+v", dir, res)
		}
		for _, r := range res {
			if r.AudioSeconds <= 0 || r.AudioSeconds > float64(r.Batch)*0.2+1e-9 || math.Abs(r.RealTimeFactor-r.MedianS/r.AudioSeconds) > 1e-9 ||
				r.DecodingStepsPerAudio < 25 || r.CPUFeatures == "" {
				t.Errorf("bench speak %s, batch %d: %+v", dir, r.Batch, r)
			}
		}
	}
	code, _, stderr = cli(t, f.root, "bench", "speak", "--model", baseline, "--data", f.cache, "--batches", "7")
	expectOneLineError(t, code, stderr, "the test split has 6")
}
