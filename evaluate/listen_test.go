package evaluate

import (
	"bytes"
	"context"
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

	"github.com/latentlm/latentlm/speech"
	"github.com/latentlm/latentlm/wav"
)

// listenSplit is a tiny split: voice test-a with three numbers and two
// sentences, test-b with two numbers and one sentence, and test-c with one
// utterance (no other to prompt it with), each clip a sine of its own
// pitch and length.
func listenSplit() ([]speech.Utterance, [][]float32) {
	type u struct{ voice, set, text string }
	list := []u{
		{"test-a", speech.SetNumbers, "one"}, {"test-b", speech.SetNumbers, "two"}, {"test-a", speech.SetSentences, "a cat sat"},
		{"test-c", speech.SetNumbers, "three"}, {"test-a", speech.SetNumbers, "four five"}, {"test-b", speech.SetSentences, "the dog ran"},
		{"test-a", speech.SetNumbers, "six"}, {"test-b", speech.SetNumbers, "seven"}, {"test-a", speech.SetSentences, "it is late"},
	}
	utts := make([]speech.Utterance, len(list))
	clips := make([][]float32, len(list))
	for i, x := range list {
		n := 4000 + 1000*i
		clips[i] = make([]float32, n)
		for k := range clips[i] {
			clips[i][k] = float32(0.3 * math.Sin(2*math.Pi*float64(200+50*i)*float64(k)/speech.Rate))
		}
		utts[i] = speech.Utterance{File: fmt.Sprintf("wav/%s/%d.wav", x.voice, i), Split: speech.SplitTest, Set: x.set, Voice: x.voice,
			Seconds: float64(n) / speech.Rate, Text: x.text}
	}
	return utts, clips
}

// TestListenItems: rows go round-robin over the voices, each voice
// alternating the text sets from a different one; a voice with a single
// utterance is left out (nothing to prompt it with); every prompt is the
// voice's previous utterance, never the text itself.
func TestListenItems(t *testing.T) {
	utts, clips := listenSplit()
	texts := func(items []ListenItem) string {
		var s []string
		for _, it := range items {
			s = append(s, it.Voice+":"+it.Text)
		}
		return strings.Join(s, ", ")
	}
	for _, c := range []struct {
		set  string
		n    int
		want string
	}{
		{"", 5, "test-a:one, test-b:the dog ran, test-a:a cat sat, test-b:two, test-a:four five"},
		{speech.SetNumbers, 3, "test-a:one, test-b:two, test-a:four five"},
		{speech.SetSentences, 100, "test-a:a cat sat, test-b:the dog ran, test-a:it is late"},
		{"", 100, "test-a:one, test-b:the dog ran, test-a:a cat sat, test-b:two, test-a:four five, test-b:seven, test-a:it is late, test-a:six"},
	} {
		items, err := ListenItems(utts, clips, c.set, c.n)
		if err != nil {
			t.Fatal(err)
		}
		if got := texts(items); got != c.want {
			t.Errorf("set %q, n %d: %s\nwant %s", c.set, c.n, got, c.want)
		}
		for _, it := range items {
			if it.PromptFile == it.File || it.PromptText == it.Text || len(it.Prompt) == 0 || len(it.Original) == 0 ||
				!strings.HasPrefix(it.PromptFile, "wav/"+it.Voice+"/") {
				t.Errorf("%s %q is prompted with %s %q", it.Voice, it.Text, it.PromptFile, it.PromptText)
			}
		}
	}
	// The prompt is the voice's previous utterance, cyclically.
	items, _ := ListenItems(utts, clips, speech.SetNumbers, 1)
	if items[0].PromptText != "it is late" {
		t.Errorf("the first utterance of test-a is prompted with %q, want its last, %q", items[0].PromptText, "it is late")
	}
	// Voices that read the same texts: the rows still say different ones
	// while there are any.
	same := []speech.Utterance{{File: "a/0", Voice: "a", Set: speech.SetNumbers, Text: "x"}, {File: "a/1", Voice: "a", Set: speech.SetNumbers, Text: "y"},
		{File: "b/0", Voice: "b", Set: speech.SetNumbers, Text: "x"}, {File: "b/1", Voice: "b", Set: speech.SetNumbers, Text: "y"}}
	sameClips := [][]float32{{1}, {2}, {3}, {4}}
	items, err := ListenItems(same, sameClips, "", 4)
	if err != nil {
		t.Fatal(err)
	}
	if got := texts(items); got != "a:x, b:y, a:y, b:x" {
		t.Errorf("shared texts: %s, want a:x, b:y, a:y, b:x", got)
	}
	if _, err := ListenItems(utts[3:4], clips[3:4], "", 8); err == nil {
		t.Error("a voice with one utterance made a row")
	}
	if _, err := ListenItems(utts, clips[1:], "", 8); err == nil {
		t.Error("more utterances than clips were accepted")
	}
}

// htmlPage is what checkHTML reads from a page.
type htmlPage struct {
	lang, caption string
	headers       []string   // the column headers
	rows          [][]string // per body row: the tag of each cell (th, td)
	srcs          []string   // audio and img sources, in order
	alts          []string
	text          string
}

// checkHTML parses a page as strict XML (every element closed, attributes
// quoted, entities known: a well-formed page) and gathers its table.
func checkHTML(t *testing.T, b []byte) htmlPage {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict, d.Entity = true, xml.HTMLEntity
	var p htmlPage
	var stack []string
	in := func(name string) bool {
		for _, s := range stack {
			if s == name {
				return true
			}
		}
		return false
	}
	var text strings.Builder
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the page is not well-formed: %v", err)
		}
		switch x := tok.(type) {
		case xml.StartElement:
			attr := map[string]string{}
			for _, a := range x.Attr {
				attr[a.Name.Local] = a.Value
			}
			switch n := x.Name.Local; {
			case n == "html":
				p.lang = attr["lang"]
			case n == "th" && in("thead"):
				if attr["scope"] != "col" {
					t.Errorf("a column header without scope=col: %v", x.Attr)
				}
				p.headers = append(p.headers, "")
			case n == "tr" && in("tbody"):
				p.rows = append(p.rows, nil)
			case (n == "td" || n == "th") && in("tbody"):
				if n == "th" && attr["scope"] != "row" {
					t.Errorf("a row header without scope=row: %v", x.Attr)
				}
				p.rows[len(p.rows)-1] = append(p.rows[len(p.rows)-1], n)
			case n == "audio" || n == "img":
				if attr["src"] == "" {
					t.Errorf("<%s> without src", n)
				}
				p.srcs = append(p.srcs, attr["src"])
				if n == "img" {
					p.alts = append(p.alts, attr["alt"])
				}
				if n == "audio" && attr["controls"] == "" {
					t.Error("<audio> without controls")
				}
			case n == "script" || n == "link" || n == "iframe":
				t.Errorf("the page has a <%s>: it must be self-contained", n)
			}
			stack = append(stack, x.Name.Local)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			text.Write(x)
			if len(stack) > 0 && stack[len(stack)-1] == "caption" {
				p.caption += string(x)
			}
			if in("thead") && len(p.headers) > 0 {
				p.headers[len(p.headers)-1] += string(x)
			}
		}
	}
	if len(stack) != 0 {
		t.Fatalf("unclosed elements %v", stack)
	}
	p.text = text.String()
	return p
}

// TestWriteListenPage: every row has a cell per column with a valid WAV
// and PNG that the page refers to; the speaker judge's verdicts are right,
// wrong or "voice unknown" as they should be, with SIM beside the
// original only; a system that gives no audio gets silence and a note;
// pocketsphinx's transcripts and WER (when it is installed) add up to the
// totals; the HTML is well-formed, accessible and self-contained.
func TestWriteListenPage(t *testing.T) {
	utts, clips := listenSplit()
	items, err := ListenItems(utts, clips, "", 3)
	if err != nil {
		t.Fatal(err)
	}
	byText := map[string][]float32{}
	for _, it := range items {
		byText[it.Text] = it.Original
	}
	echo := SpeakColumn("echo", "echo", "says the original again", func(_ context.Context, text string, _ []float32) ([]float32, error) {
		return byText[text], nil
	})
	mute := SpeakColumn("mute", "mute", "says nothing", func(context.Context, string, []float32) ([]float32, error) { return nil, nil })
	o := ListenOptions{Items: items, Columns: []ListenColumn{OriginalColumn(), echo, mute},
		// The judge knows test-a only, and hears it in everything; its
		// embedding is a clip's mean square and length, so equal clips
		// have SIM 1.
		Speaker: func(clips [][]float32) ([][]float32, [][]float32, error) {
			probs, emb := make([][]float32, len(clips)), make([][]float32, len(clips))
			for i, c := range clips {
				var ss float64
				for _, v := range c {
					ss += float64(v * v)
				}
				probs[i], emb[i] = []float32{0.75}, []float32{float32(ss / float64(len(c))), float32(len(c)) / speech.Rate}
			}
			return probs, emb, nil
		},
		SpeakerVoices: []string{"test-a"},
		Title:         "test <page>", Facts: []ListenFact{{"seed", "7"}, {"command", "latentlm eval --task tts --listen 'x y'"}}}
	if j, err := speech.NewJudge(); err == nil {
		j.Workers = 1
		o.Judge = j
	} else {
		t.Logf("no transcripts: %v", err)
	}
	dir := t.TempDir()
	p, err := WriteListenPage(context.Background(), dir, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Rows) != 3 || len(p.Columns) != 3 || len(p.Totals) != 3 || len(p.Files) != 18 {
		t.Fatalf("%d rows, %d columns, %d totals, %d files", len(p.Rows), len(p.Columns), len(p.Totals), len(p.Files))
	}
	for r, row := range p.Rows {
		for c, cell := range row.Cells {
			base := fmt.Sprintf("%02d-%s", r+1, p.Columns[c].Key)
			if cell.WAV != base+".wav" || cell.Spectrogram != base+".png" {
				t.Errorf("row %d column %d: files %s, %s", r, c, cell.WAV, cell.Spectrogram)
			}
			a, err := wav.Read(filepath.Join(dir, cell.WAV))
			if err != nil {
				t.Fatal(err)
			}
			want := len(items[r].Original)
			if c == 2 {
				want = speech.Rate / 10
			}
			if a.Rate != speech.Rate || len(a.Samples) != want || math.Abs(cell.Seconds-float64(want)/speech.Rate) > 1e-9 {
				t.Errorf("%s: %d Hz, %d samples, %.3f s; want %d samples", cell.WAV, a.Rate, len(a.Samples), cell.Seconds, want)
			}
			f, err := os.Open(filepath.Join(dir, cell.Spectrogram))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := png.DecodeConfig(f)
			f.Close()
			if err != nil {
				t.Fatalf("%s: %v", cell.Spectrogram, err)
			}
			if cfg.Width != cell.Width || cfg.Height != cell.Height || cfg.Height != speech.DefaultMel.Mels*speech.SpectrogramBandPixels {
				t.Errorf("%s: %d×%d, the page says %d×%d", cell.Spectrogram, cfg.Width, cfg.Height, cell.Width, cell.Height)
			}
			// test-a is known and heard: right; test-b is unknown.
			if !cell.Voiced || cell.HeardAs != "test-a" || cell.Probability != 0.75 || cell.Known != (row.Voice == "test-a") || cell.Right != cell.Known {
				t.Errorf("row %d (%s) column %d: verdict %+v", r, row.Voice, c, cell)
			}
			if cell.HasSIM != (c > 0) || (c == 1 && math.Abs(cell.SIM-1) > 1e-6) {
				t.Errorf("row %d column %d: SIM %v %v", r, c, cell.HasSIM, cell.SIM)
			}
			if o.Judge != nil {
				w := speech.WordErrors(row.Text, cell.Transcript)
				if !cell.Judged || cell.Words != len(strings.Fields(row.Text)) || cell.Errors != w.Errors {
					t.Errorf("row %d column %d: transcript %+v", r, c, cell)
				}
			} else if cell.Judged {
				t.Errorf("row %d column %d: transcribed without a judge", r, c)
			}
		}
		if !strings.Contains(row.Cells[2].Note, "no audio") || row.Cells[1].Note != "" {
			t.Errorf("row %d: notes %q, %q", r, row.Cells[1].Note, row.Cells[2].Note)
		}
	}
	for c, tot := range p.Totals {
		var errs, words int
		var secs float64
		for _, row := range p.Rows {
			errs, words, secs = errs+row.Cells[c].Errors, words+row.Cells[c].Words, secs+row.Cells[c].Seconds
		}
		if tot.Errors != errs || tot.Words != words || math.Abs(tot.Seconds-secs) > 1e-9 || tot.Known != 2 || tot.Right != 2 {
			t.Errorf("column %d: totals %+v, want %d/%d words, %.2f s, 2 of 2 voices", c, tot, errs, words, secs)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	h := checkHTML(t, b)
	if h.lang != "en" || !strings.Contains(h.caption, "Held-out texts") {
		t.Errorf("lang %q, caption %q", h.lang, h.caption)
	}
	if len(h.headers) != 4 || !strings.HasPrefix(h.headers[1], "original") || !strings.HasPrefix(h.headers[3], "mute") {
		t.Errorf("column headers %q", h.headers)
	}
	if len(h.rows) != 3 {
		t.Fatalf("%d body rows", len(h.rows))
	}
	for _, r := range h.rows {
		if strings.Join(r, " ") != "th td td td" {
			t.Errorf("body row cells %v", r)
		}
	}
	if len(h.srcs) != len(p.Files) {
		t.Errorf("%d sources for %d files", len(h.srcs), len(p.Files))
	}
	for i, s := range h.srcs {
		if s != p.Files[i] {
			t.Errorf("source %d is %s, want %s", i, s, p.Files[i])
		}
		if _, err := os.Stat(filepath.Join(dir, s)); err != nil {
			t.Error(err)
		}
	}
	for _, a := range h.alts {
		if !strings.Contains(a, "spectrogram") || !strings.Contains(a, "voice test-") {
			t.Errorf("alt text %q", a)
		}
	}
	for _, want := range []string{"test <page>", "'x y'", "speaker judge:", "✓ right", "the judge does not know test-b", "SIM to the original 1.00", "all rows"} {
		if !strings.Contains(h.text, want) {
			t.Errorf("the page does not say %q", want)
		}
	}
	if (o.Judge != nil) != strings.Contains(h.text, "heard: ") {
		t.Errorf("transcripts shown: %v, judge: %v", strings.Contains(h.text, "heard: "), o.Judge != nil)
	}
	var back ListenPage
	if js, err := os.ReadFile(filepath.Join(dir, "listen.json")); err != nil {
		t.Fatal(err)
	} else if err := json.Unmarshal(js, &back); err != nil || len(back.Rows) != 3 || back.Rows[0].Cells[0].WAV != "01-original.wav" {
		t.Errorf("listen.json: %v, %d rows", err, len(back.Rows))
	}
}

// TestWriteListenPageRefuses: no rows, no columns, a bad or repeated key, a
// column without a renderer, a renderer's error or a wrong number of clips
// are errors that name the column.
func TestWriteListenPageRefuses(t *testing.T) {
	utts, clips := listenSplit()
	items, _ := ListenItems(utts, clips, "", 2)
	orig := OriginalColumn()
	short := ListenColumn{Name: "short", Key: "short", Render: func(context.Context, []ListenItem) ([]ListenAudio, error) {
		return make([]ListenAudio, 1), nil
	}}
	failing := SpeakColumn("failing", "failing", "", func(context.Context, string, []float32) ([]float32, error) {
		return nil, errors.New("no voice today")
	})
	for _, c := range []struct {
		items []ListenItem
		cols  []ListenColumn
		want  string
	}{
		{nil, []ListenColumn{orig}, "0 rows"},
		{items, nil, "0 columns"},
		{items, []ListenColumn{orig, orig}, `key "original"`},
		{items, []ListenColumn{{Name: "x", Key: "Bad Key", Render: orig.Render}}, `key "Bad Key"`},
		{items, []ListenColumn{{Name: "x", Key: "x"}}, "nothing to render"},
		{items, []ListenColumn{orig, short}, "column short: 1 clips for 2 texts"},
		{items, []ListenColumn{failing}, "no voice today"},
	} {
		_, err := WriteListenPage(context.Background(), t.TempDir(), ListenOptions{Items: c.items, Columns: c.cols})
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%d rows, %d columns: %v, want one line with %q", len(c.items), len(c.cols), err, c.want)
		}
	}
}
