package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/internal/testspeech"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/speech"
	"github.com/latentlm/latentlm/tts"
	"github.com/latentlm/latentlm/wav"
)

const (
	ttsName   = "tts-tiny"
	ttsMaxLen = 120
	// spl is the samples of one latent frame of the tiny speech tokenizer
	// (hop 128 × 5 frames: 25 frames a second at 16 kHz).
	spl = 640
)

var (
	ttsOnce sync.Once
	ttsTest Model
	ttsDir  string
	ttsErr  error
)

// sine is secs seconds of a sine of hz at 16 kHz.
func sine(hz, secs float64) []float32 {
	out := make([]float32, int(secs*tts.Rate))
	for i := range out {
		out[i] = float32(0.3 * math.Sin(2*math.Pi*hz*float64(i)/tts.Rate))
	}
	return out
}

// testVoices are the named voices of the tiny model: a second of one sine
// and 0.6 s of another.
var testVoices = []Voice{{Name: "test-a", Samples: sine(220, 1), Source: "a sine"}, {Name: "test-b", Samples: sine(330, 0.6), Source: "another sine"}}

// testSpeech is one tiny text-to-speech model with random weights for all
// tests (the plumbing is tested, not the quality), saved with its tiny
// speech tokenizer and read back through LoadSpeechModels: 4 latent
// channels at 25 Hz, a two-block language model with a context of 120
// items, and a softmax head of zeros, so that the model never ends the
// speech itself and max_seconds (or the context) sets its length.
func testSpeech(t *testing.T) Model {
	t.Helper()
	ttsOnce.Do(func() {
		ttsDir, ttsErr = os.MkdirTemp("", "server-tts-")
		if ttsErr == nil {
			ttsErr = saveTinyTTS(t, ttsDir)
		}
		var ms []Model
		if ttsErr == nil {
			ms, ttsErr = LoadSpeechModels(ttsDir, "")
		}
		if ttsErr == nil && len(ms) != 1 {
			ttsErr = errors.New("LoadSpeechModels found no tts-tiny")
		}
		if ttsErr == nil {
			ttsTest = ms[0]
			ttsTest.Voices = testVoices
			ttsTest.Speech.Speech.GriffinLimIterations = 2 // fast decoding
		}
	})
	if ttsErr != nil {
		t.Fatal(ttsErr)
	}
	return ttsTest
}

// saveTinyTTS saves the tiny speech tokenizer as root/speech-vae and the
// tiny text-to-speech model as root/tts-tiny.
func saveTinyTTS(t *testing.T, root string) error {
	vdir := filepath.Join(root, "speech-vae")
	sc, sum := testspeech.Save(t, 0, vdir)
	f, err := tts.NewFormat(tts.Alphabet, sc.Channels, sc.FrameRate())
	if err != nil {
		return err
	}
	cfg := lm.Config{Dim: 32, Depth: 2, Heads: 4, KVHeads: 2, MLPRatio: 2, HeadDepth: 2, HeadDim: 32,
		Latent: f.Channels, MaxLen: ttsMaxLen, Target: tts.Target, Vocab: f.Vocab, Layout: lm.LayoutBOL}
	specs := cfg.Specs()
	for i := range specs {
		specs[i].Std = 0.1
	}
	store := model.NewStore()
	if err := nn.Init(store, specs, 3, dtypes.Float32); err != nil {
		return err
	}
	head := store.GetVariable(nn.WeightsScope + "/lm_head.weight")
	if err := head.SetValue(nn.Tensor(make([]float64, cfg.Vocab.Size()*cfg.Dim), dtypes.Float32, cfg.Vocab.Size(), cfg.Dim)); err != nil {
		return err
	}
	rec := lm.Tokenizer{Path: vdir, SHA256: sum, Kind: sc.Kind.String(), Channels: sc.Channels, Data: "random"}
	return tts.Save(filepath.Join(root, ttsName), cfg, store, rec, tts.Record{Alphabet: f.AlphabetString(), FrameRate: f.FrameRate, PromptSeconds: 3}, nil)
}

// newSpeechServer serves the tiny text-to-speech model and, with class,
// the shipped MNIST model.
func newSpeechServer(t *testing.T, cfg Config, class bool) (*Server, string) {
	t.Helper()
	models := []Model{testSpeech(t)}
	if class {
		models = append(models, Model{Name: "latentlm-mnist", Gen: testGen(t)})
	}
	return serveModels(t, cfg, models...)
}

// wavB64 encodes samples at rate as a base64 16-bit WAV file.
func wavB64(t *testing.T, samples []float32, rate int) string {
	t.Helper()
	var b bytes.Buffer
	if err := wav.Encode(&b, wav.Audio{Rate: rate, Samples: samples}); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b.Bytes())
}

// speak posts body to /v1/speech and decodes the JSON answer, failing the
// test unless it is 200.
func speak(t *testing.T, url, body string) SpeechResponse {
	t.Helper()
	var resp SpeechResponse
	if status, e := postTo(t, url, "/v1/speech", body, &resp); status != 200 {
		t.Fatalf("POST /v1/speech %.100s: %d %+v", body, status, e)
	}
	return resp
}

// pcmOf is the PCM data of a base64 WAV file of 16-bit mono at 16 kHz.
func pcmOf(t *testing.T, b64 string) []byte {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	a, err := wav.Decode(raw)
	if err != nil || a.Rate != tts.Rate || a.Channels != 1 || len(raw) != 44+2*len(a.Samples) {
		t.Fatalf("not a 16 kHz mono 16-bit WAV file: %v, %d Hz, %d channels, %d bytes for %d samples", err, a.Rate, a.Channels, len(raw), len(a.Samples))
	}
	return raw[44:]
}

// TestSpeechLoad: a folder's text-to-speech checkpoints are found by their
// kind (LoadSpeechModels), a folder of them holds no image model for
// LoadModels (a *NoModelsError, which serve tolerates when other models
// load), and New refuses a model of two kinds and voices without names or
// audio or named twice.
func TestSpeechLoad(t *testing.T) {
	m := testSpeech(t)
	if m.Name != ttsName || m.Speech == nil || m.Backend == "" || m.Speech.Format.FrameRate != 25 {
		t.Fatalf("loaded %+v", m)
	}
	_, err := LoadModels(ttsDir)
	var nme *NoModelsError
	if !errors.As(err, &nme) || nme.Dir != ttsDir {
		t.Errorf("LoadModels of a folder of a speech model and its tokenizer: %v, want a NoModelsError", err)
	}
	if ms, err := LoadSpeechModels(t.TempDir(), ""); err != nil || len(ms) != 0 {
		t.Errorf("an empty folder: %d models, %v; want none and no error", len(ms), err)
	}
	if _, err := LoadSpeech(filepath.Join(ttsDir, "speech-vae"), ""); err == nil || !strings.Contains(err.Error(), "speech-vae") {
		t.Errorf("a speech tokenizer loaded as a text-to-speech model: %v", err)
	}
	g := testGen(t)
	for _, c := range []struct {
		models []Model
		want   string
	}{
		{[]Model{{Name: "x", Gen: g, Speech: m.Speech}}, "one of"},
		{[]Model{{Name: "x", Speech: m.Speech, Voices: []Voice{{Name: "a", Samples: []float32{0}}, {Name: "a", Samples: []float32{0}}}}}, `voice "a"`},
		{[]Model{{Name: "x", Speech: m.Speech, Voices: []Voice{{Name: "", Samples: []float32{0}}}}}, `voice ""`},
		{[]Model{{Name: "x", Speech: m.Speech, Voices: []Voice{{Name: "b"}}}}, `voice "b"`},
		{[]Model{{Name: "x", Speech: m.Speech}, {Name: "x", Gen: g}}, "two models"},
	} {
		if _, err := New(c.models, Config{}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%d models): %v, want an error with %q", len(c.models), err, c.want)
		}
	}
}

// TestLoadVoices: the named voices are the first test utterance of every
// voice of the speech data, in speech.Voices order, resampled to 16 kHz;
// data without test utterances, or none at all, is an error.
func TestLoadVoices(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, a wav.Audio) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := wav.Write(p, a); err != nil {
			t.Fatal(err)
		}
	}
	write("wav/festival-kal/numbers-test-0000.wav", wav.Audio{Rate: 32000, Samples: make([]float32, 32000)}) // 1 s at 32 kHz
	write("wav/flite-awb/numbers-train-0000.wav", wav.Audio{Rate: 16000, Samples: make([]float32, 100)})
	write("wav/flite-awb/numbers-test-0000.wav", wav.Audio{Rate: 16000, Samples: make([]float32, 8000)})
	write("wav/flite-awb/numbers-test-0001.wav", wav.Audio{Rate: 16000, Samples: make([]float32, 4000)})
	if err := os.WriteFile(filepath.Join(dir, speech.ManifestFile), []byte(`{"format":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tsv := "file\tsplit\tset\tvoice\tseconds\ttext\n" +
		"wav/festival-kal/numbers-test-0000.wav\ttest\tnumbers\tfestival-kal\t1\tseven\n" +
		"wav/flite-awb/numbers-train-0000.wav\ttrain\tnumbers\tflite-awb\t0.01\tone\n" +
		"wav/flite-awb/numbers-test-0000.wav\ttest\tnumbers\tflite-awb\t0.5\ttwo\n" +
		"wav/flite-awb/numbers-test-0001.wav\ttest\tnumbers\tflite-awb\t0.25\tthree\n"
	if err := os.WriteFile(filepath.Join(dir, speech.UtterancesFile), []byte(tsv), 0o644); err != nil {
		t.Fatal(err)
	}
	voices, err := LoadVoices(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(voices) != 2 || voices[0].Name != "flite-awb" || voices[1].Name != "festival-kal" {
		t.Fatalf("voices %+v, want flite-awb then festival-kal", voices)
	}
	if len(voices[0].Samples) != 8000 || !strings.Contains(voices[0].Source, `"two"`) {
		t.Errorf("flite-awb: %d samples from %s, want the first test utterance (8000 samples, \"two\")", len(voices[0].Samples), voices[0].Source)
	}
	if n := len(voices[1].Samples); n < 15900 || n > 16100 {
		t.Errorf("festival-kal: %d samples, want 1 s resampled to 16 kHz", n)
	}
	if _, err := LoadVoices(t.TempDir()); err == nil || !strings.Contains(err.Error(), "speech data") {
		t.Errorf("no speech data: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, speech.UtterancesFile), []byte(tsv[:strings.Index(tsv, "\n")+1]), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadVoices(dir); err == nil || !strings.Contains(err.Error(), "no test utterances") {
		t.Errorf("speech data without test utterances: %v", err)
	}
}

// TestSpeechModelsAndMetrics: GET /v1/models lists the speech model (kind,
// rate, voices, alphabet, endpoint) with the defaults and limits of
// /v1/speech; /healthz counts it; /metrics counts its utterances, seconds
// and frames.
func TestSpeechModelsAndMetrics(t *testing.T) {
	_, url := newSpeechServer(t, Config{}, false)
	r, err := http.Get(url + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Models   []ModelInfo
		Defaults Defaults
		Limits   Limits
	}
	err = json.NewDecoder(r.Body).Decode(&body)
	r.Body.Close()
	if err != nil || len(body.Models) != 1 {
		t.Fatalf("models: %v %+v", err, body.Models)
	}
	m := body.Models[0]
	if m.Name != ttsName || m.Kind != "tts" || m.Rate != 16000 || m.FrameRate != 25 || strings.Join(m.Voices, ",") != "test-a,test-b" ||
		m.Alphabet != tts.Alphabet || m.Reading != tts.ReadCharacters || strings.Join(m.Endpoints, ",") != "/v1/speech" || m.MaxLen != ttsMaxLen || m.Params <= 0 || m.Classes != 0 {
		t.Errorf("speech model: %+v", m)
	}
	if d := body.Defaults.Speech; d == nil || d.Steps != 5 || d.CFG != 3 || d.Seed != 1 || d.MaxSeconds != 10 {
		t.Errorf("speech defaults: %+v", d)
	}
	if l := body.Limits; l.SpeechText != MaxSpeechText || l.SpeechSeconds != MaxSpeechSeconds || l.SpeechBodyBytes != MaxSpeechBodyBytes ||
		l.PromptSeconds == nil || *l.PromptSeconds != [2]float64{MinPromptSeconds, MaxPromptSeconds} {
		t.Errorf("speech limits: %+v", l)
	}
	if b := get(t, url+"/healthz"); !strings.Contains(b, `"models":1`) {
		t.Errorf("healthz: %s", b)
	}
	speak(t, url, `{"text":"hi","voice":"test-b","max_seconds":0.2,"steps":2}`)
	mb := get(t, url+"/metrics")
	for _, line := range []string{`latentlm_speech_requests_total{model="tts-tiny"} 1`, `latentlm_speech_seconds_total{model="tts-tiny"} 0.2`,
		"latentlm_speech_frames_total 5", `latentlm_http_requests_total{endpoint="/v1/speech",code="200"} 1`} {
		if !strings.Contains(mb, line) {
			t.Errorf("metrics lack %q:\n%s", line, mb)
		}
	}
}

// TestSpeechModelForText: a request that names no model, on a server of
// several speech models, goes to the one trained for its text (the "set"
// of its checkpoint, which /v1/models gives): a spoken number to the
// numbers model, other text to the sentence model. Where that is not one
// model, the model is required.
func TestSpeechModelForText(t *testing.T) {
	_, url := serveModels(t, Config{}, speechModelOfSet(t, "says-numbers", speech.SetNumbers), speechModelOfSet(t, "says-sentences", speech.SetSentences))
	if b := get(t, url+"/v1/models"); !strings.Contains(b, `"name":"says-numbers"`) || strings.Count(b, `"set":"numbers"`) != 1 || strings.Count(b, `"set":"sentences"`) != 1 {
		t.Errorf("/v1/models does not give each model's set: %s", b)
	}
	for text, want := range map[string]string{"seven three nine": "says-numbers", "Twelve forty-five.": "says-numbers", "hi there": "says-sentences", "seven cats": "says-sentences"} {
		r := speak(t, url, `{"text":"`+text+`","voice":"test-b","max_seconds":0.2,"steps":2}`)
		if r.Model != want {
			t.Errorf("%q went to %s, want %s", text, r.Model, want)
		}
	}
	_, url = serveModels(t, Config{}, speechModelOfSet(t, "numbers-a", speech.SetNumbers), speechModelOfSet(t, "numbers-b", speech.SetNumbers))
	status, e := postTo(t, url, "/v1/speech", `{"text":"seven","voice":"test-b","max_seconds":0.2,"steps":2}`, nil)
	if status != 400 || e.Error.Field != "model" || !strings.Contains(e.Error.Message, "required: one of numbers-a, numbers-b") {
		t.Errorf("two numbers models, no model named: %d %+v; want 400 requiring the model", status, e)
	}
	if r := speak(t, url, `{"text":"seven","voice":"test-b","model":"numbers-b","max_seconds":0.2,"steps":2}`); r.Model != "numbers-b" {
		t.Errorf("the model named went to %s", r.Model)
	}
}

// speechModelOfSet is the tiny speech model served as name, recorded as
// trained on the text set set.
func speechModelOfSet(t *testing.T, name, set string) Model {
	t.Helper()
	testSpeech(t) // the tiny checkpoint on disk
	m, err := LoadSpeech(filepath.Join(ttsDir, ttsName), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Speech.Close() })
	m.Name, m.Voices = name, testVoices
	m.Speech.Speech.GriffinLimIterations = 2
	m.Speech.Info = map[string]any{"set": set}
	return m
}

// get returns the body of GET url.
func get(t *testing.T, url string) string {
	t.Helper()
	r, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return string(b)
}

// TestSpeechStreamMatchesJSON: a request's speech is a WAV file of 16-bit
// PCM at 16 kHz as long as its frames; the same request streamed arrives
// in chunks of 8 frames, contiguous, whose PCM end to end is byte for byte
// the WAV's, then a done event with the timings; with Accept: audio/wav the
// answer is the WAV file itself. The same seed gives the same audio after
// other requests (each draws its own noise from its seed), another
// seed other audio; a prompt_wav (here as a data: URL) serves as the voice.
func TestSpeechStreamMatchesJSON(t *testing.T) {
	_, url := newSpeechServer(t, Config{}, false)
	const body = `{"text":"Twenty-one, please!","voice":"test-a","seed":7,"steps":3,"cfg":2,"max_seconds":0.4}`
	start := time.Now()
	resp := speak(t, url, body)
	t.Logf("0.4 s of speech in %v (%+v)", time.Since(start).Round(time.Millisecond), resp.Timings)
	pcm := pcmOf(t, resp.Audio)
	if resp.Model != ttsName || resp.Text != "twenty-one, please!" || resp.Voice != "test-a" || resp.Seed != 7 || resp.Rate != 16000 ||
		resp.Frames != 10 || resp.Samples != 10*spl || len(pcm) != 2*resp.Samples || resp.Seconds != 0.4 || resp.Stopped || resp.PromptSeconds != 1 {
		t.Errorf("answer %+v, want 10 frames (max_seconds) of %d samples, not stopped, a 1 s prompt", resp, spl)
	}
	if tm := resp.Timings; tm.FirstChunkMS <= 0 || tm.FirstChunkMS > tm.GenerateMS || tm.GenerateMS > tm.TotalMS || tm.RealTimeFactor <= 0 {
		t.Errorf("timings %+v", tm)
	}
	if bytes.Equal(pcm, make([]byte, len(pcm))) {
		t.Error("the speech is silence")
	}

	// Streamed: two chunks (8 frames, then 2) and done.
	r, err := http.Post(url+"/v1/speech", "application/json", strings.NewReader(strings.Replace(body, "}", `,"stream":true}`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if ct := r.Header.Get("Content-Type"); r.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("stream: %d %s", r.StatusCode, ct)
	}
	events := readEvents(t, r.Body, nil)
	r.Body.Close()
	if len(events) != 3 {
		t.Fatalf("%d events, want 2 audio and done", len(events))
	}
	var streamed []byte
	for i, e := range events[:2] {
		var ev AudioEvent
		if err := json.Unmarshal(e.data, &ev); err != nil || e.name != "audio" {
			t.Fatalf("event %d %q: %v", i, e.name, err)
		}
		chunk, err := base64.StdEncoding.DecodeString(ev.PCM)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Index != i || ev.Start != len(streamed)/2 || ev.Rate != 16000 || ev.Samples != []int{8, 2}[i]*spl || len(chunk) != 2*ev.Samples {
			t.Errorf("chunk %d: %+v with %d bytes of PCM", i, ev, len(chunk))
		}
		streamed = append(streamed, chunk...)
	}
	if !bytes.Equal(streamed, pcm) {
		t.Error("the streamed chunks differ from the WAV of the same request")
	}
	var done SpeechResponse
	if err := json.Unmarshal(events[2].data, &done); err != nil || events[2].name != "done" {
		t.Fatalf("final event %q: %v", events[2].name, err)
	}
	if done.Audio != "" || done.Frames != 10 || done.Samples != resp.Samples || done.Timings.FirstChunkMS <= 0 ||
		done.Timings.FirstChunkMS > done.Timings.GenerateMS || done.Timings.RealTimeFactor <= 0 {
		t.Errorf("done: %+v", done)
	}
	t.Logf("streamed: first chunk after %.1f ms of generation, real-time factor %.2f", done.Timings.FirstChunkMS, done.Timings.RealTimeFactor)

	// Accept: audio/wav.
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/speech", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "audio/wav, application/json;q=0.5")
	r, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != 200 || r.Header.Get("Content-Type") != "audio/wav" || r.Header.Get("X-Speech-Frames") != "10" ||
		!strings.Contains(r.Header.Get("Server-Timing"), "first-chunk;dur=") || !bytes.Equal(pcmOf(t, base64.StdEncoding.EncodeToString(raw)), pcm) {
		t.Errorf("Accept: audio/wav: %d %q, headers %v, %d bytes", r.StatusCode, r.Header.Get("Content-Type"), r.Header, len(raw))
	}

	// Another seed, then the first again.
	other := speak(t, url, strings.Replace(body, `"seed":7`, `"seed":8`, 1))
	if bytes.Equal(pcmOf(t, other.Audio), pcm) {
		t.Error("seed 8 gave the audio of seed 7")
	}
	if again := speak(t, url, body); !bytes.Equal(pcmOf(t, again.Audio), pcm) {
		t.Error("seed 7 again, after other requests, gave other audio")
	}

	// A prompt of one's own: 4000 samples at 8 kHz, 0.5 s.
	own := speak(t, url, `{"text":"hi","prompt_wav":"data:audio/wav;base64,`+wavB64(t, sine(150, 0.25), 8000)+`","max_seconds":0.2,"steps":2}`)
	if own.Voice != "" || own.Frames != 5 || own.PromptSeconds != 0.52 {
		t.Errorf("prompt_wav: voice %q, %d frames, prompt %.2f s; want no voice, 5 frames, 0.52 s (13 frames)", own.Voice, own.Frames, own.PromptSeconds)
	}
}

// TestSpeechValidation: every refusal is a 4xx JSON error naming the field
// at fault, with a message that says what is wrong, before anything is
// generated.
func TestSpeechValidation(t *testing.T) {
	s, url := newSpeechServer(t, Config{}, true)
	short := wavB64(t, sine(200, 0.05), 16000)
	long := wavB64(t, make([]float32, 31*8000), 8000)
	prime := wavB64(t, make([]float32, 8009), 8009)
	cases := []struct {
		body   string
		status int
		field  string
		want   string
	}{
		{`{"text":"hi"}`, 400, "voice", "required"},
		{`{"text":"hi","voice":"test-a","prompt_wav":"` + short + `"}`, 400, "prompt_wav", "not both"},
		{`{"voice":"test-a"}`, 400, "text", "required"},
		{`{"text":"","voice":"test-a"}`, 400, "text", "empty"},
		{`{"text":" \t ","voice":"test-a"}`, 400, "text", "white space"},
		{`{"text":"room 101","voice":"test-a"}`, 400, "text", "'1'"},
		{`{"text":"naïve","voice":"test-a"}`, 400, "text", "'ï'"},
		{`{"text":"` + strings.Repeat("a", MaxSpeechText+1) + `","voice":"test-a"}`, 400, "text", "at most 1000"},
		{`{"text":"` + strings.Repeat("a", 105) + `","voice":"test-a"}`, 400, "text", "takes at most 91"},
		{`{"text":"` + strings.Repeat("a", 105) + `","voice":"test-b"}`, 400, "text", "takes at most 101"},
		{`{"text":5,"voice":"test-a"}`, 400, "text", "want a string"},
		{`{"text":"hi","voice":"hal-9000"}`, 400, "voice", "test-a, test-b"},
		{`{"text":"hi","voice":""}`, 400, "voice", "empty"},
		{`{"text":"hi","prompt_wav":""}`, 400, "prompt_wav", "empty"},
		{`{"text":"hi","prompt_wav":"not base64!"}`, 400, "prompt_wav", "not base64"},
		{`{"text":"hi","prompt_wav":"data:audio/wav,UklGRg=="}`, 400, "prompt_wav", "not base64"},
		{`{"text":"hi","prompt_wav":"aGVsbG8gd29ybGQ="}`, 400, "prompt_wav", "not a WAV file"},
		{`{"text":"hi","prompt_wav":"` + short + `"}`, 400, "prompt_wav", "0.050 s"},
		{`{"text":"hi","prompt_wav":"` + long + `"}`, 400, "prompt_wav", "31.000 s"},
		{`{"text":"hi","prompt_wav":"` + prime + `"}`, 400, "prompt_wav", "sample rate 8009 Hz: want one of 8000, 11025,"},
		{`{"text":"hi","voice":"test-a","steps":0}`, 400, "steps", "out of range 1…250"},
		{`{"text":"hi","voice":"test-a","steps":251}`, 400, "steps", "out of range"},
		{`{"text":"hi","voice":"test-a","steps":"five"}`, 400, "steps", "an integer"},
		{`{"text":"hi","voice":"test-a","cfg":-1}`, 400, "cfg", "out of range"},
		{`{"text":"hi","voice":"test-a","cfg":101}`, 400, "cfg", "out of range"},
		{`{"text":"hi","voice":"test-a","cfg":"NaN"}`, 400, "cfg", "a number"},
		{`{"text":"hi","voice":"test-a","cfg":NaN}`, 400, "body", "malformed"},
		{`{"text":"hi","voice":"test-a","seed":-1}`, 400, "seed", "out of range"},
		{`{"text":"hi","voice":"test-a","max_seconds":0}`, 400, "max_seconds", "want > 0"},
		{`{"text":"hi","voice":"test-a","max_seconds":61}`, 400, "max_seconds", "≤ 60"},
		{`{"text":"hi","voice":"test-a","max_seconds":1e400}`, 400, "max_seconds", "a number"},
		{`{"text":"hi","voice":"test-a","stream":1}`, 400, "stream", "true or false"},
		{`{"text":"hi","voice":"test-a","speed":2}`, 400, "speed", "unknown field"},
		{`{"text":"hi","voice":"test-a","model":"nope"}`, 400, "model", `unknown model "nope"`},
		{`{"text":"hi","voice":"test-a","model":"latentlm-mnist"}`, 400, "model", "class-conditional"},
		{`{"text":"hi","voice":"test-a"} {}`, 400, "body", "trailing data"},
		{``, 400, "body", "empty body"},
		{`{"text":"hi","voice":"test-a","pad":"` + strings.Repeat("x", MaxSpeechBodyBytes) + `"}`, 413, "body", "over"},
	}
	for _, c := range cases {
		status, e := postTo(t, url, "/v1/speech", c.body, nil)
		if status != c.status || e.Error.Field != c.field || !strings.Contains(e.Error.Message, c.want) {
			t.Errorf("%.70s: %d, field %q, message %q; want %d naming %q with %q", c.body, status, e.Error.Field, e.Error.Message, c.status, c.field, c.want)
		}
	}
	// The speech model is not an image model, nor the other way round.
	if status, e := postTo(t, url, "/v1/images", `{"model":"tts-tiny","class":1}`, nil); status != 400 || e.Error.Field != "model" || !strings.Contains(e.Error.Message, "/v1/speech") {
		t.Errorf("a class for the speech model: %d %+v", status, e)
	}
	if s.metrics.speechFrames.Load() != 0 {
		t.Errorf("refused requests drew %d frames", s.metrics.speechFrames.Load())
	}
	// Method, content type, and a server without image models.
	r, _ := http.Get(url + "/v1/speech")
	if r.StatusCode != 405 || r.Header.Get("Allow") != "POST" {
		t.Errorf("GET /v1/speech: %d, Allow %q", r.StatusCode, r.Header.Get("Allow"))
	}
	r.Body.Close()
	if r, _ := http.Post(url+"/v1/speech", "text/plain", strings.NewReader(`{"text":"hi","voice":"test-a"}`)); r.StatusCode != 415 {
		t.Errorf("text/plain: %d, want 415", r.StatusCode)
	}
	_, only := newSpeechServer(t, Config{}, false)
	if status, e := postTo(t, only, "/v1/images", `{"class":1}`, nil); status != 400 || e.Error.Field != "model" || !strings.Contains(e.Error.Message, "no image model") {
		t.Errorf("a class to a server of speech only: %d %+v", status, e)
	}
	if status, e := postTo(t, only, "/v1/images", `{"model":"tts-tiny","prompt":"a three"}`, nil); status != 400 || e.Error.Field != "model" || !strings.Contains(e.Error.Message, "text-to-speech") {
		t.Errorf("a prompt to the speech model: %d %+v", status, e)
	}
	_, images := newTestServer(t, Config{})
	if r, _ := http.Post(images.URL+"/v1/speech", "application/json", strings.NewReader(`{"text":"hi","voice":"test-a"}`)); r.StatusCode != 404 {
		t.Errorf("/v1/speech on a server without speech models: %d, want 404", r.StatusCode)
	}
}

// TestSpeechCancel: a client that goes away stops its speech at the next
// frame, streamed (after its first chunk) or not: the frame hook holds the
// generation after a frame until the request's context ends, and no frame
// is reported after it (the next frame's check of the context stops the
// generation). The model then serves the next request.
func TestSpeechCancel(t *testing.T) {
	for _, stream := range []bool{true, false} {
		s, url := newSpeechServer(t, Config{}, false)
		hold := int64(3) // frames drawn when the non-streamed client goes
		if stream {
			hold = 8 // the first chunk (8 frames) has just been sent
		}
		reached := make(chan struct{})
		s.onFrame = func(ctx context.Context) {
			if s.metrics.speechFrames.Load() == hold {
				close(reached)
				select {
				case <-ctx.Done():
				case <-time.After(10 * time.Second):
				}
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		body := `{"text":"hi","voice":"test-a","max_seconds":3,"steps":2,"stream":` + map[bool]string{true: "true", false: "false"}[stream] + `}`
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/speech", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		errc := make(chan error, 1)
		go func() {
			r, err := http.DefaultClient.Do(req)
			if err == nil {
				events := readEvents(t, r.Body, func(e sseEvent) bool { return e.name == "audio" })
				if len(events) != 1 || events[0].name != "audio" {
					err = errors.New("no audio event before cancelling")
				}
				r.Body.Close()
			}
			errc <- err
		}()
		if stream { // the client has its first chunk
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
		}
		select {
		case <-reached:
		case err := <-errc:
			t.Fatalf("stream %v: the request ended (%v) before frame %d", stream, err, hold)
		case <-time.After(30 * time.Second):
			t.Fatalf("stream %v: no frame %d after 30 s", stream, hold)
		}
		cancel()
		waitFor(t, "the cancelled request to end", func() bool { return s.admitted.Load() == 0 && s.metrics.cancelled.Load() == 1 })
		if n := s.metrics.speechFrames.Load(); n != hold {
			t.Errorf("stream %v: %d frames drawn and reported, want %d: cancelled at the frame after the client went", stream, n, hold)
		}
		s.onFrame = nil
		if resp := speak(t, url, `{"text":"hi","voice":"test-a","max_seconds":0.2,"steps":2}`); resp.Frames != 5 {
			t.Errorf("after a cancelled request: %d frames, want 5", resp.Frames)
		}
		if !stream {
			<-errc
		}
	}
}

// TestSpeechQueueAndTimeout: speech requests share the server's bound of
// requests admitted (429 with Retry-After beyond it) and, with batching
// off, run one at a time on the model, the next waiting for it; one past
// the timeout is 503.
func TestSpeechQueueAndTimeout(t *testing.T) {
	s, url := newSpeechServer(t, Config{Concurrency: 1, Queue: 1}, false)
	release := make(chan struct{})
	s.beforeGenerate = func() { <-release }
	const body = `{"text":"hi","voice":"test-b","max_seconds":0.1,"steps":1}`
	statuses := make(chan int, 2)
	send := func() { statuses <- statusOf(url+"/v1/speech", body) }
	go send()
	waitFor(t, "a running request", func() bool { return s.running.Load() == 1 })
	go send()
	waitFor(t, "a waiting request", func() bool { return s.waiting.Load() == 1 })
	r, err := http.Post(url+"/v1/speech", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != 429 || r.Header.Get("Retry-After") == "" {
		t.Errorf("third request with one running and one waiting: %d, Retry-After %q", r.StatusCode, r.Header.Get("Retry-After"))
	}
	close(release)
	for range 2 {
		if st := <-statuses; st != 200 {
			t.Errorf("queued speech request: %d", st)
		}
	}
	s2, url2 := newSpeechServer(t, Config{Timeout: 30 * time.Millisecond}, false)
	s2.beforeGenerate = func() { time.Sleep(60 * time.Millisecond) }
	if status, e := postTo(t, url2, "/v1/speech", body, nil); status != 503 || !strings.Contains(e.Error.Message, "timed out") {
		t.Errorf("timed-out speech request: %d %+v", status, e)
	}
}

// speechBytes posts a speech request and returns its audio as it came —
// the WAV file (decoded from JSON, or the body itself with Accept:
// audio/wav), or for "stream":true the PCM of the chunks end to end — and
// its frames. It may run on any goroutine.
func speechBytes(url, body string, acceptWAV bool) ([]byte, int, error) {
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/speech", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if acceptWAV {
		req.Header.Set("Accept", "audio/wav")
	}
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer r.Body.Close()
	if r.StatusCode != 200 {
		b, _ := io.ReadAll(r.Body)
		return nil, 0, fmt.Errorf("%d %s", r.StatusCode, b)
	}
	switch {
	case acceptWAV:
		b, err := io.ReadAll(r.Body)
		frames, _ := strconv.Atoi(r.Header.Get("X-Speech-Frames"))
		return b, frames, err
	case strings.Contains(body, `"stream":true`):
		var pcm []byte
		sc := bufio.NewScanner(r.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		name := ""
		for sc.Scan() {
			line := sc.Text()
			if n, ok := strings.CutPrefix(line, "event: "); ok {
				name = n
				continue
			}
			data, ok := strings.CutPrefix(line, "data: ")
			if !ok {
				continue
			}
			switch name {
			case "audio":
				var ev AudioEvent
				if err := json.Unmarshal([]byte(data), &ev); err != nil {
					return nil, 0, err
				}
				chunk, err := base64.StdEncoding.DecodeString(ev.PCM)
				if err != nil || ev.Start != len(pcm)/2 {
					return nil, 0, fmt.Errorf("chunk %d at sample %d after %d bytes: %v", ev.Index, ev.Start, len(pcm), err)
				}
				pcm = append(pcm, chunk...)
			case "done":
				var done SpeechResponse
				if err := json.Unmarshal([]byte(data), &done); err != nil {
					return nil, 0, err
				}
				if done.Samples*2 != len(pcm) {
					return nil, 0, fmt.Errorf("done after %d bytes of PCM: %+v", len(pcm), done)
				}
				return pcm, done.Frames, nil
			default:
				return nil, 0, fmt.Errorf("event %q: %s", name, data)
			}
		}
		return nil, 0, fmt.Errorf("the stream ended without done (%v)", sc.Err())
	}
	var resp SpeechResponse
	if err := json.NewDecoder(r.Body).Decode(&resp); err != nil {
		return nil, 0, err
	}
	b, err := base64.StdEncoding.DecodeString(resp.Audio)
	return b, resp.Frames, err
}

// speechAnswer is a speech request's audio and frames, or its error.
type speechAnswer struct {
	audio  []byte
	frames int
	err    error
}

// TestServerSpeechBatchedSameAsAlone: a streamed utterance runs; six more
// requests — other texts, named voices and prompt WAVs, seeds (one the
// same as the first's), guidance scales (1 and 0 among them), lengths,
// answered as JSON, WAV or streams — join its running decode in two waves,
// the first as it draws its first frames (its prefix read in one block),
// the second later, each at its own position. All seven share the decode (six joins, steps
// of more than one utterance) and each gets byte for byte the audio it
// gets alone.
func TestServerSpeechBatchedSameAsAlone(t *testing.T) {
	s, url := newSpeechServer(t, Config{BatchRows: 16, Queue: 16}, false)
	own := wavB64(t, sine(150, 0.25), 8000)
	other := wavB64(t, sine(410, 0.8), 16000)
	reqs := []struct {
		body string
		wav  bool
	}{
		{`{"text":"one two three four","voice":"test-a","seed":3,"steps":3,"cfg":2,"max_seconds":2,"stream":true}`, false},
		// The first wave.
		{`{"text":"hi","voice":"test-b","seed":5,"steps":3,"cfg":1,"max_seconds":0.6}`, false},
		{`{"text":"five","prompt_wav":"` + own + `","seed":3,"steps":3,"cfg":3,"max_seconds":0.4,"stream":true}`, false},
		{`{"text":"seven eight","voice":"test-a","seed":9,"steps":3,"cfg":1,"max_seconds":0.3}`, true},
		// The second.
		{`{"text":"nine","voice":"test-b","seed":3,"steps":3,"cfg":2.5,"max_seconds":0.5,"stream":true}`, false},
		{`{"text":"ten","voice":"test-a","seed":0,"steps":3,"cfg":0,"max_seconds":0.2}`, false},
		{`{"text":"hello there","prompt_wav":"` + other + `","seed":11,"steps":3,"cfg":1,"max_seconds":0.36,"stream":true}`, false},
	}
	alone := make([]speechAnswer, len(reqs))
	for i, r := range reqs {
		a := &alone[i]
		if a.audio, a.frames, a.err = speechBytes(url, r.body, r.wav); a.err != nil || a.frames == 0 {
			t.Fatalf("request %d alone: %v, %d frames", i, a.err, a.frames)
		}
	}
	if bytes.Equal(alone[0].audio, alone[4].audio) || bytes.Equal(alone[1].audio, alone[3].audio) {
		t.Fatal("requests of other texts gave the same audio")
	}
	// Guidance counts: the first request without it speaks otherwise.
	if b, _, err := speechBytes(url, strings.Replace(reqs[0].body, `"cfg":2`, `"cfg":1`, 1), false); err != nil || bytes.Equal(b, alone[0].audio) {
		t.Fatalf("request 0 with cfg 1: %v, the same audio as with cfg 2: %v", err, bytes.Equal(b, alone[0].audio))
	}
	joins := s.metrics.joins.Load()

	got := make([]speechAnswer, len(reqs))
	var wg sync.WaitGroup
	send := func(from, to int) {
		for i := from; i < to; i++ {
			wg.Go(func() {
				a := &got[i]
				a.audio, a.frames, a.err = speechBytes(url, reqs[i].body, reqs[i].wav)
			})
		}
	}
	// The decode's worker sends each wave and waits until it is queued, so
	// that it joins at the next step: at step 2 the first has read its
	// prefix (one block) and drawn a frame, at step 20 twenty.
	var step atomic.Int64
	var holding atomic.Bool
	holding.Store(true)
	s.beforeStep = func() {
		if !holding.Load() {
			return
		}
		switch step.Add(1) {
		case 2:
			send(1, 4)
			hold(t, "the first wave", func() bool { return s.waiting.Load() == 3 })
		case 20:
			send(4, len(reqs))
			hold(t, "the second wave", func() bool { return s.waiting.Load() == 3 })
			holding.Store(false)
		}
	}
	send(0, 1)
	wg.Wait()
	if holding.Load() {
		t.Fatalf("the decode ended after %d steps, before the second wave", step.Load())
	}
	if n := s.metrics.joins.Load() - joins; n != 6 {
		t.Errorf("%d requests joined the running decode, want 6", n)
	}
	s.metrics.mu.Lock()
	h := s.metrics.batchRows
	s.metrics.mu.Unlock()
	if h.count == 0 || h.counts[0] == h.count || h.sum <= float64(h.count) {
		t.Errorf("batch size histogram %+v: no step of more than one utterance", h)
	}
	for i := range reqs {
		if got[i].err != nil {
			t.Errorf("request %d batched: %v", i, got[i].err)
			continue
		}
		if got[i].frames != alone[i].frames || !bytes.Equal(got[i].audio, alone[i].audio) {
			t.Errorf("request %d (%.60s…): %d frames, %d bytes batched; %d frames, %d bytes alone: the audio differs",
				i, reqs[i].body, got[i].frames, len(got[i].audio), alone[i].frames, len(alone[i].audio))
		}
	}
}

// TestServerSpeechBatchCancel: a streamed utterance whose client leaves
// after its first chunk, while two others share its decode, is cancelled
// at the next step — it draws no frame after the one it was at — and the
// two others finish with the audio they get alone.
func TestServerSpeechBatchCancel(t *testing.T) {
	s, url := newSpeechServer(t, Config{BatchRows: 4, Queue: 8}, false)
	others := []struct {
		body string
		wav  bool
	}{
		{`{"text":"twenty","voice":"test-a","seed":4,"steps":2,"cfg":2,"max_seconds":1.2,"stream":true}`, false},
		{`{"text":"thirty","voice":"test-a","seed":6,"steps":2,"cfg":1,"max_seconds":1}`, true},
	}
	alone := make([]speechAnswer, len(others))
	for i, o := range others {
		a := &alone[i]
		if a.audio, a.frames, a.err = speechBytes(url, o.body, o.wav); a.err != nil {
			t.Fatalf("request %d alone: %v", i, a.err)
		}
	}
	frames0 := s.metrics.speechFrames.Load()

	// The leaving request starts first and, with the shorter prefix (a
	// 0.6 s voice), draws its frames first: the first context to reach
	// frame 8 is its. The hook then holds the decode until it is gone.
	const hold8 = 8
	var step atomic.Int64
	var mu sync.Mutex
	count := map[context.Context]int{}
	var gone context.Context
	reached := make(chan struct{})
	s.onFrame = func(ctx context.Context) {
		mu.Lock()
		count[ctx]++
		n := count[ctx]
		first := n == hold8 && gone == nil
		if first {
			gone = ctx
		}
		mu.Unlock()
		if first {
			close(reached)
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Second):
			}
		}
	}
	got := make([]speechAnswer, len(others))
	var wg sync.WaitGroup
	s.beforeStep = func() {
		if step.Add(1) != 3 {
			return
		}
		for i, o := range others {
			wg.Go(func() {
				a := &got[i]
				a.audio, a.frames, a.err = speechBytes(url, o.body, o.wav)
			})
		}
		hold(t, "the other requests", func() bool { return s.waiting.Load() == 2 })
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/speech",
		strings.NewReader(`{"text":"hi","voice":"test-b","seed":2,"steps":2,"cfg":3,"max_seconds":3,"stream":true}`))
	req.Header.Set("Content-Type", "application/json")
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	events := readEvents(t, r.Body, func(e sseEvent) bool { return e.name == "audio" })
	if len(events) != 1 || events[0].name != "audio" {
		t.Fatalf("events %v, want the first chunk", events)
	}
	select {
	case <-reached:
	case <-time.After(30 * time.Second):
		t.Fatal("no frame 8")
	}
	if s.running.Load() != 3 {
		t.Errorf("%d requests in the decode when the client goes, want 3", s.running.Load())
	}
	cancel()
	r.Body.Close()
	wg.Wait()
	waitFor(t, "the cancelled request to end", func() bool { return s.admitted.Load() == 0 && s.metrics.cancelled.Load() == 1 })
	drawn := s.metrics.speechFrames.Load() - frames0
	mu.Lock()
	var ns []int
	for c, n := range count {
		if c != gone {
			ns = append(ns, n)
		}
	}
	left := count[gone]
	mu.Unlock()
	slices.Sort(ns)
	if want := int64(hold8 + alone[0].frames + alone[1].frames); drawn != want || left != hold8 ||
		!slices.Equal(ns, []int{min(alone[0].frames, alone[1].frames), max(alone[0].frames, alone[1].frames)}) {
		t.Errorf("%d frames drawn (%d by the request that left, %v by the others), want %d: %d by the request that left (cancelled at the next step), the others' %d and %d",
			drawn, left, ns, want, hold8, alone[0].frames, alone[1].frames)
	}
	for i := range others {
		if got[i].err != nil || got[i].frames != alone[i].frames || !bytes.Equal(got[i].audio, alone[i].audio) {
			t.Errorf("request %d beside the one cancelled: %v, %d frames (%d alone), same audio %v", i, got[i].err, got[i].frames, alone[i].frames,
				bytes.Equal(got[i].audio, alone[i].audio))
		}
	}
}
