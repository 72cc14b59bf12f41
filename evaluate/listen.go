package evaluate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"path/filepath"
	"regexp"
	"slices"

	"github.com/latentlm/latentlm/imageio"
	"github.com/latentlm/latentlm/internal/atomicfile"
	"github.com/latentlm/latentlm/metrics"
	"github.com/latentlm/latentlm/speech"
	"github.com/latentlm/latentlm/speechvae"
	"github.com/latentlm/latentlm/wav"
)

// A listening page (issue 18) puts the speech of several systems for the
// same held-out texts side by side, so that a person can hear what the
// WER and speaker scores summarise: one row per text, one column per
// system (the real utterance, its tokenizer reconstruction, LatentLM, a
// baseline), each cell a WAV, its spectrogram, pocketsphinx's transcript
// with its WER and the speaker judge's verdict. Numbers alone hide how a
// system fails (mumbling, the wrong voice, a cut-off end); the page shows
// it, and it is plain HTML so that it opens from a folder, offline.

// ListenItem is the input of one row: a held-out utterance (its text,
// voice and real audio) and the voice prompt the systems imitate, another
// utterance of the same voice.
type ListenItem struct {
	Text, Voice, Set string
	// File is the real utterance, relative to the speech cache; Original
	// its 16 kHz samples.
	File     string
	Original []float32
	// PromptFile and PromptText name the voice prompt; Prompt is its 16 kHz
	// samples.
	PromptFile, PromptText string
	Prompt                 []float32
}

// ListenAudio is what a system made for one row: 16 kHz samples and a
// short note the page prints with them (how the speech ended, say).
type ListenAudio struct {
	Samples []float32
	Note    string
}

// ListenColumn is a system on a listening page. Render makes the audio of
// every row at once (so that a model can batch them), in the rows' order.
// A new system needs only this: SpeakColumn turns a function of text and
// voice prompt into a column.
type ListenColumn struct {
	// Name heads the column ("LatentLM"); Key names its files
	// ("01-latentlm.wav"): lower-case letters, digits and dashes, unique
	// on the page. About is a line under the header (the checkpoint).
	Name, Key, About string
	Render           func(ctx context.Context, items []ListenItem) ([]ListenAudio, error)
}

// OriginalColumn is the real utterances: the floor every judge's score is
// read against.
func OriginalColumn() ListenColumn {
	return ListenColumn{Name: "original", Key: "original", About: "the real utterance of the text",
		Render: func(_ context.Context, items []ListenItem) ([]ListenAudio, error) {
			out := make([]ListenAudio, len(items))
			for i, it := range items {
				out[i] = ListenAudio{Samples: it.Original}
			}
			return out, nil
		}}
}

// ReconstructionColumn is the real utterances through the speech tokenizer
// m and back (the means of its posterior, decoded with Griffin-Lim phases
// of seed): the best any model that generates m's latents can sound.
func ReconstructionColumn(m *speechvae.Model, about string, seed uint64) ListenColumn {
	return ListenColumn{Name: "tokenizer reconstruction", Key: "reconstruction", About: about,
		Render: func(ctx context.Context, items []ListenItem) ([]ListenAudio, error) {
			out := make([]ListenAudio, len(items))
			for i, it := range items {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				z, err := m.Encode(it.Original, false)
				if err != nil {
					return nil, fmt.Errorf("encoding %s: %w", it.File, err)
				}
				y, err := m.Decode(z, len(it.Original), seed)
				if err != nil {
					return nil, fmt.Errorf("decoding %s: %w", it.File, err)
				}
				out[i] = ListenAudio{Samples: y, Note: fmt.Sprintf("%d latent frames", len(z))}
			}
			return out, nil
		}}
}

// TTSColumn is a text-to-speech system speaking each row's text in the
// voice of its prompt, through the evaluation's own generation
// (TTSSystem.Speak, so the page hears what `eval --task tts` scores); the
// note says whether the model ended the speech itself.
func TTSColumn(name, key, about string, m TTSSystem, seed uint64) ListenColumn {
	return ListenColumn{Name: name, Key: key, About: about,
		Render: func(ctx context.Context, items []ListenItem) ([]ListenAudio, error) {
			texts, prompts, files := make([]string, len(items)), make([][]float32, len(items)), make([]string, len(items))
			for i, it := range items {
				texts[i], prompts[i], files[i] = it.Text, it.Prompt, it.PromptFile
			}
			spoken, err := m.Speak(ctx, texts, prompts, files, seed)
			if err != nil {
				return nil, err
			}
			out := make([]ListenAudio, len(items))
			for i, sp := range spoken {
				note := fmt.Sprintf("%d frames; cut at the length bound", sp.Frames)
				if sp.Stopped {
					note = fmt.Sprintf("%d frames; the model ended it (<EOL>)", sp.Frames)
				}
				out[i] = ListenAudio{Samples: sp.Samples, Note: note}
			}
			return out, nil
		}}
}

// SpeakColumn is a column of any text-to-speech system given as a function
// of text and 16 kHz voice prompt to 16 kHz speech, one row at a time: the
// way a baseline without batching (the VALL-E-style one) joins the page.
func SpeakColumn(name, key, about string, speak func(ctx context.Context, text string, prompt []float32) ([]float32, error)) ListenColumn {
	return ListenColumn{Name: name, Key: key, About: about,
		Render: func(ctx context.Context, items []ListenItem) ([]ListenAudio, error) {
			out := make([]ListenAudio, len(items))
			for i, it := range items {
				y, err := speak(ctx, it.Text, it.Prompt)
				if err != nil {
					return nil, fmt.Errorf("speaking %q: %w", it.Text, err)
				}
				out[i] = ListenAudio{Samples: y}
			}
			return out, nil
		}}
}

// ListenItems picks the n rows of a page from a split (recipe.LoadSpeech)
// of text set set ("" both): round-robin over the voices, so that few rows
// still cover every voice, within a voice alternating the sets (each voice
// starting with a different one), and preferring texts not yet on the
// page, so that the rows say different things even where every voice
// reads the same texts. Each text is prompted as the TTS evaluation
// prompts it (the voice's previous utterance, ttsPrompts), so a row sounds
// as the table's utterance of the same text and voice.
func ListenItems(utts []speech.Utterance, clips [][]float32, set string, n int) ([]ListenItem, error) {
	if len(utts) != len(clips) {
		return nil, fmt.Errorf("listening page: %d utterances for %d clips", len(utts), len(clips))
	}
	sets := []string{speech.SetNumbers, speech.SetSentences}
	if set != "" {
		sets = []string{set}
	}
	prompts := ttsPrompts(utts)
	voices := voiceOrder(utts)
	queues := make([][]int, len(voices))
	for v, voice := range voices {
		per := make([][]int, len(sets))
		for i, u := range utts {
			if k := slices.Index(sets, u.Set); u.Voice == voice && k >= 0 && prompts[i] >= 0 {
				per[k] = append(per[k], i)
			}
		}
		for r := 0; ; r++ {
			more := false
			for s := range sets {
				if k := (v + s) % len(sets); r < len(per[k]) {
					queues[v], more = append(queues[v], per[k][r]), true
				}
			}
			if !more {
				break
			}
		}
	}
	var out []ListenItem
	used := map[string]bool{}
	for len(out) < n {
		took := false
		for v := range voices {
			if len(out) == n || len(queues[v]) == 0 {
				continue
			}
			// The voice's next utterance of a text not yet on the page (the
			// data's voices often read the same texts), else its next.
			q := queues[v]
			k := max(0, slices.IndexFunc(q, func(i int) bool { return !used[utts[i].Text] }))
			i, p := q[k], prompts[q[k]]
			queues[v] = slices.Delete(q, k, k+1)
			used[utts[i].Text] = true
			u := utts[i]
			out = append(out, ListenItem{Text: u.Text, Voice: u.Voice, Set: u.Set, File: u.File, Original: clips[i],
				PromptFile: utts[p].File, PromptText: utts[p].Text, Prompt: clips[p]})
			took = true
		}
		if !took {
			break
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("listening page: no utterances of set %q with another utterance of their voice for a prompt", set)
	}
	return out, nil
}

// ListenOptions are the settings of WriteListenPage.
type ListenOptions struct {
	Items   []ListenItem
	Columns []ListenColumn
	// Judge transcribes every cell (nil: no transcripts); Speaker names
	// the voice of every cell among SpeakerVoices (nil: no verdicts), as
	// in TTSOptions.
	Judge         *speech.Judge
	Speaker       func(clips [][]float32) (probs, embeddings [][]float32, err error)
	SpeakerVoices []string
	// Title heads the page; Facts are the lines of its header (model,
	// command line, date, machine, seed), in order.
	Title string
	Facts []ListenFact
	Log   io.Writer
}

// ListenFact is one line of a page's header.
type ListenFact struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// ListenPage is what a page shows, as WriteListenPage writes it to
// listen.json beside index.html.
type ListenPage struct {
	Title   string         `json:"title"`
	Facts   []ListenFact   `json:"facts"`
	Columns []ListenHeader `json:"columns"`
	Rows    []ListenRow    `json:"rows"`
	Totals  []ListenTotal  `json:"totals"`
	Judged  bool           `json:"transcribed"`
	Voiced  bool           `json:"speaker_judged"`
	// Files are the WAVs and pictures the page refers to, in its order.
	Files []string `json:"files"`
}

// ListenHeader is a column of a page.
type ListenHeader struct {
	Name  string `json:"name"`
	Key   string `json:"key"`
	About string `json:"about"`
}

// ListenRow is one text on a page, with a cell per column.
type ListenRow struct {
	Text       string       `json:"text"`
	Voice      string       `json:"voice"`
	Set        string       `json:"set"`
	File       string       `json:"file"`
	PromptFile string       `json:"prompt_file"`
	PromptText string       `json:"prompt_text"`
	Cells      []ListenCell `json:"cells"`
}

// ListenCell is one system's speech of one text: its files (names in the
// page's folder), duration and note, pocketsphinx's transcript and word
// errors (Judged), and the speaker judge's verdict (Voiced): the voice it
// hears with its probability, whether that is the row's voice (Known: the
// judge knows that voice at all), and SIM, the cosine of its embedding to
// the original's (HasSIM; not for the original itself).
type ListenCell struct {
	WAV         string  `json:"wav"`
	Spectrogram string  `json:"spectrogram"`
	Width       int     `json:"width"`
	Height      int     `json:"height"`
	Seconds     float64 `json:"seconds"`
	Note        string  `json:"note,omitempty"`
	Judged      bool    `json:"transcribed"`
	Transcript  string  `json:"transcript"`
	Errors      int     `json:"word_errors"`
	Words       int     `json:"words"`
	WER         float64 `json:"wer"`
	Voiced      bool    `json:"speaker_judged"`
	HeardAs     string  `json:"heard_as,omitempty"`
	Probability float64 `json:"probability,omitempty"`
	Known       bool    `json:"voice_known"`
	Right       bool    `json:"speaker_right"`
	HasSIM      bool    `json:"has_sim"`
	SIM         float64 `json:"sim_to_original,omitempty"`
}

// ListenTotal sums a column over the rows: word errors over reference
// words (the corpus WER, as the evaluation reports it), speaker verdicts
// right out of those of known voices, and seconds of audio.
type ListenTotal struct {
	Errors  int     `json:"word_errors"`
	Words   int     `json:"words"`
	WER     float64 `json:"wer"`
	Right   int     `json:"speaker_right"`
	Known   int     `json:"speaker_known"`
	Seconds float64 `json:"seconds"`
}

// listenKey is what a column's Key may be: it becomes part of file names.
var listenKey = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// WriteListenPage renders every column for every item, judges the audio
// and writes the page into dir, an existing folder that the caller makes
// appear atomically (atomicfile.WriteDir): NN-<key>.wav (16 kHz, 16-bit),
// NN-<key>.png (speech.SpectrogramImage), index.html and listen.json.
func WriteListenPage(ctx context.Context, dir string, o ListenOptions) (*ListenPage, error) {
	if len(o.Items) == 0 || len(o.Columns) == 0 {
		return nil, fmt.Errorf("listening page: %d rows and %d columns: want some of each", len(o.Items), len(o.Columns))
	}
	p := &ListenPage{Title: o.Title, Facts: o.Facts, Judged: o.Judge != nil, Voiced: o.Speaker != nil}
	keys := map[string]bool{}
	for _, c := range o.Columns {
		if !listenKey.MatchString(c.Key) || keys[c.Key] {
			return nil, fmt.Errorf("listening page: column key %q: want a unique name of lower-case letters, digits and dashes", c.Key)
		}
		if c.Render == nil {
			return nil, fmt.Errorf("listening page: column %q has nothing to render it", c.Name)
		}
		keys[c.Key] = true
		p.Columns = append(p.Columns, ListenHeader{Name: c.Name, Key: c.Key, About: c.About})
	}
	p.Rows = make([]ListenRow, len(o.Items))
	sets := make([]string, len(o.Items))
	for i, it := range o.Items {
		p.Rows[i] = ListenRow{Text: it.Text, Voice: it.Voice, Set: it.Set, File: it.File, PromptFile: it.PromptFile,
			PromptText: it.PromptText, Cells: make([]ListenCell, len(o.Columns))}
		sets[i] = it.Set
	}
	p.Totals = make([]ListenTotal, len(o.Columns))
	// The original's embeddings, for every other cell's SIM.
	var origEmb [][]float32
	for c, col := range o.Columns {
		if o.Log != nil {
			fmt.Fprintf(o.Log, "listening page: %s for %d texts\n", col.Name, len(o.Items))
		}
		audio, err := col.Render(ctx, o.Items)
		if err != nil {
			return nil, fmt.Errorf("listening page, column %s: %w", col.Name, err)
		}
		if len(audio) != len(o.Items) {
			return nil, fmt.Errorf("listening page, column %s: %d clips for %d texts", col.Name, len(audio), len(o.Items))
		}
		clips := make([][]float32, len(audio))
		for i, a := range audio {
			clips[i] = a.Samples
			cell := &p.Rows[i].Cells[c]
			cell.Note = a.Note
			if len(a.Samples) == 0 {
				// Silence stands in, so that the judges and the picture
				// still have audio; the note says so.
				clips[i] = make([]float32, speech.Rate/10)
				cell.Note = "the system gave no audio: 0.1 s of silence stands in"
			}
			if err := writeListenCell(dir, fmt.Sprintf("%02d-%s", i+1, col.Key), clips[i], cell); err != nil {
				return nil, err
			}
			p.Totals[c].Seconds += cell.Seconds
		}
		if o.Judge != nil {
			hyps, err := transcribe(ctx, o.Judge, clips, sets, o.Log, col.Name)
			if err != nil {
				return nil, fmt.Errorf("listening page, column %s: %w", col.Name, err)
			}
			for i, h := range hyps {
				w := speech.WordErrors(o.Items[i].Text, h)
				cell := &p.Rows[i].Cells[c]
				cell.Judged, cell.Transcript, cell.Errors, cell.Words, cell.WER = true, h, w.Errors, w.Words, w.Rate()
				p.Totals[c].Errors += w.Errors
				p.Totals[c].Words += w.Words
			}
			p.Totals[c].WER = speech.WER{Errors: p.Totals[c].Errors, Words: p.Totals[c].Words}.Rate()
		}
		if o.Speaker != nil {
			probs, emb, err := o.Speaker(clips)
			if err != nil {
				return nil, fmt.Errorf("listening page, column %s: speaker judge: %w", col.Name, err)
			}
			if len(probs) != len(clips) || len(emb) != len(clips) {
				return nil, fmt.Errorf("listening page, column %s: the speaker judge gave %d verdicts for %d clips", col.Name, len(probs), len(clips))
			}
			if col.Key == "original" {
				origEmb = emb
			}
			for i := range clips {
				cell := &p.Rows[i].Cells[c]
				k := metrics.Argmax(probs[i])
				cell.Voiced = true
				if k >= 0 && k < len(o.SpeakerVoices) {
					cell.HeardAs, cell.Probability = o.SpeakerVoices[k], float64(probs[i][k])
				}
				if slices.Contains(o.SpeakerVoices, o.Items[i].Voice) {
					cell.Known, cell.Right = true, cell.HeardAs == o.Items[i].Voice
					p.Totals[c].Known++
					if cell.Right {
						p.Totals[c].Right++
					}
				}
				if origEmb != nil && col.Key != "original" {
					cell.HasSIM, cell.SIM = true, cosine(emb[i], origEmb[i])
				}
			}
		}
	}
	for _, row := range p.Rows {
		for _, cell := range row.Cells {
			p.Files = append(p.Files, cell.WAV, cell.Spectrogram)
		}
	}
	page, err := renderListenPage(p)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteBytes(filepath.Join(dir, "index.html"), page); err != nil {
		return nil, err
	}
	js, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("listening page: %w", err)
	}
	if err := atomicfile.WriteBytes(filepath.Join(dir, "listen.json"), append(js, '\n')); err != nil {
		return nil, err
	}
	return p, nil
}

// writeListenCell writes one cell's WAV and spectrogram as base.wav and
// base.png in dir and records them in cell.
func writeListenCell(dir, base string, samples []float32, cell *ListenCell) error {
	a := wav.Audio{Rate: speech.Rate, Samples: samples}
	cell.WAV, cell.Spectrogram, cell.Seconds = base+".wav", base+".png", a.Seconds()
	if err := wav.Write(filepath.Join(dir, cell.WAV), a); err != nil {
		return fmt.Errorf("listening page: %w", err)
	}
	img, h, w, err := speech.SpectrogramImage(a)
	if err != nil {
		return fmt.Errorf("listening page: spectrogram of %s: %w", cell.WAV, err)
	}
	if err := imageio.WriteGray(filepath.Join(dir, cell.Spectrogram), img, h, w); err != nil {
		return fmt.Errorf("listening page: %w", err)
	}
	cell.Width, cell.Height = w, h
	return nil
}

// renderListenPage is the page's HTML: plain, self-contained (no script,
// no font or style from elsewhere), and well-formed as XML too, so that
// any parser reads it; the table has a caption and header cells for the
// columns and rows, and every picture says in words what it shows.
func renderListenPage(p *ListenPage) ([]byte, error) {
	var b bytes.Buffer
	if err := listenTemplate.Execute(&b, p); err != nil {
		return nil, fmt.Errorf("listening page: %w", err)
	}
	return b.Bytes(), nil
}

var listenTemplate = template.Must(template.New("listen").Funcs(template.FuncMap{
	"pct": func(v float64) string { return fmt.Sprintf("%.0f%%", 100*v) },
	"errors": func(n int) string {
		if n == 1 {
			return "1 error"
		}
		return fmt.Sprintf("%d errors", n)
	},
	"secs": func(v float64) string { return fmt.Sprintf("%.2f s", v) },
	"prob": func(v float64) string { return fmt.Sprintf("%.2f", v) },
	"col":  func(p *ListenPage, c int) ListenHeader { return p.Columns[c] },
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8"/>
<meta name="viewport" content="width=device-width, initial-scale=1"/>
<meta name="generator" content="latentlm eval --task tts --listen"/>
<title>{{.Title}}</title>
<style>
body { font-family: sans-serif; margin: 1em; color: #111; background: #fff; }
table { border-collapse: collapse; }
th, td { border: 1px solid #999; padding: 0.4em; vertical-align: top; text-align: left; }
td { min-width: 14em; }
img { display: block; max-width: 100%; height: auto; margin: 0.3em 0; }
audio { width: 100%; }
dt { font-weight: bold; }
dd { margin: 0 0 0.3em 1.5em; font-family: monospace; overflow-wrap: anywhere; }
.ok { color: #064; }
.bad { color: #a00; }
.small { font-size: 90%; color: #333; }
p { margin: 0.2em 0; }
</style>
</head>
<body>
<main>
<h1>{{.Title}}</h1>
<dl>
{{range .Facts}}<dt>{{.Name}}</dt><dd>{{.Value}}</dd>
{{end}}</dl>
<p>Each row is a held-out text, spoken in one voice. The systems imitate that voice from a prompt, another utterance of the same voice (named under the text). Each cell holds the audio (16 kHz), its log-mel spectrogram (80 mel bands up to 8 kHz, low frequencies at the bottom, 80 dB from black to white, 10 ms per two pixel columns){{if .Judged}}, what pocketsphinx heard and its word error rate against the text{{end}}{{if .Voiced}}, and the voice the speaker judge names, with its probability (and, beside the original, the cosine similarity SIM of the judge's embeddings to the original's){{end}}.</p>
<table>
<caption>Held-out texts (rows) spoken by each system (columns){{if .Judged}}, with pocketsphinx's transcripts{{end}}{{if .Voiced}} and the speaker judge's verdicts{{end}}</caption>
<thead>
<tr><th scope="col">text and voice</th>{{range .Columns}}<th scope="col">{{.Name}}<br/><span class="small">{{.About}}</span></th>{{end}}</tr>
</thead>
<tbody>
{{range $r, $row := .Rows}}<tr>
<th scope="row"><p>“{{$row.Text}}”</p><p class="small">voice {{$row.Voice}}, {{$row.Set}}</p><p class="small">prompt: {{$row.PromptFile}} (“{{$row.PromptText}}”)</p></th>
{{range $c, $cell := $row.Cells}}{{$h := col $ $c}}<td>
<audio controls="controls" preload="none" src="{{$cell.WAV}}" aria-label="{{$h.Name}}: “{{$row.Text}}”, voice {{$row.Voice}}"><a href="{{$cell.WAV}}">{{$cell.WAV}}</a></audio>
<img src="{{$cell.Spectrogram}}" width="{{$cell.Width}}" height="{{$cell.Height}}" alt="Log-mel spectrogram, {{$h.Name}}: “{{$row.Text}}”, voice {{$row.Voice}}, {{secs $cell.Seconds}}"/>
<p class="small">{{secs $cell.Seconds}}{{if $cell.Note}}; {{$cell.Note}}{{end}}</p>
{{if $cell.Judged}}<p>heard: “{{$cell.Transcript}}”<br/>WER {{pct $cell.WER}} ({{errors $cell.Errors}} in {{$cell.Words}} words)</p>
{{end}}{{if $cell.Voiced}}<p>speaker judge: {{if $cell.Known}}{{if $cell.Right}}<span class="ok">{{$cell.HeardAs}} ✓ right</span>{{else}}<span class="bad">{{$cell.HeardAs}} ✗ wrong</span>{{end}}{{else}}{{$cell.HeardAs}} (the judge does not know {{$row.Voice}}){{end}} ({{prob $cell.Probability}}){{if $cell.HasSIM}}<br/>SIM to the original {{prob $cell.SIM}}{{end}}</p>
{{end}}</td>
{{end}}</tr>
{{end}}</tbody>
<tfoot>
<tr><th scope="row">all rows</th>{{range .Totals}}<td>{{secs .Seconds}} of audio{{if $.Judged}}<br/>WER {{pct .WER}} ({{errors .Errors}} in {{.Words}} words){{end}}{{if $.Voiced}}<br/>speaker judge right {{.Right}} of {{.Known}}{{end}}</td>{{end}}</tr>
</tfoot>
</table>
</main>
</body>
</html>
`))
