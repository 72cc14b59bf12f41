package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/latentlm/latentlm/backend"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/speech"
	"github.com/latentlm/latentlm/tts"
	"github.com/latentlm/latentlm/wav"
)

// Limits of POST /v1/speech.
const (
	// MaxSpeechText bounds text, in characters after normalisation
	// (tts.Normalize); the model's context (max_len) bounds it first.
	MaxSpeechText = 1000
	// MaxSpeechSeconds bounds max_seconds.
	MaxSpeechSeconds = 60
	// MaxSpeechBodyBytes bounds the body, which may carry a prompt WAV.
	MaxSpeechBodyBytes = 4 << 20
	// MinPromptSeconds and MaxPromptSeconds bound the audio of prompt_wav:
	// a shorter clip carries no voice (the bound of `latentlm speak`), and
	// the model reads only its first seconds (tts.Options.PromptSeconds)
	// anyway.
	MinPromptSeconds = tts.MinPromptSeconds
	MaxPromptSeconds = 30
)

// PromptRates are the sample rates prompt_wav may have: the usual ones.
// Resampling from another rate to 16 kHz can take seconds of CPU for a few
// bytes of body (a prime rate has no polyphase table), before the request
// is even queued.
var PromptRates = []int{8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000, 176400, 192000}

// speechEndpoints are the endpoints a text-to-speech model answers.
var speechEndpoints = []string{"/v1/speech"}

// Voice is a named voice a text-to-speech model offers: the audio of an
// utterance in that voice, which the model imitates (its voice prompt).
type Voice struct {
	Name string
	// Samples are the utterance at 16 kHz (tts.Rate).
	Samples []float32
	// Source says where the utterance comes from (file and text), for the
	// log.
	Source string
}

// LoadSpeech loads the text-to-speech checkpoint in dir, with the speech
// tokenizer it records, on the named backend ("": $LATENTLM_BACKEND, else
// onnx), as a Model named after the folder, without voices (LoadVoices).
// Close its Speech when done.
func LoadSpeech(dir, backendName string) (Model, error) {
	name := backend.Resolve(backendName)
	b, err := backend.Open(name)
	if err != nil {
		return Model{}, fmt.Errorf("server: %w", err)
	}
	opts := tts.DefaultOptions()
	opts.Batch = 1 // the server speaks through Sequences (tts.Model.NewBatch), never Generate
	m, err := tts.Load(b, dir, "", opts)
	if err != nil {
		return Model{}, fmt.Errorf("server: loading %s: %w", dir, err)
	}
	return Model{Name: filepath.Base(filepath.Clean(dir)), Speech: m, Backend: name}, nil
}

// LoadSpeechModels loads every text-to-speech checkpoint in dir (dir itself
// if it is one, else each subfolder of kind tts), as LoadSpeech. A folder
// without one gives none and no error: LoadModels loads the image models of
// the same folder. On error nothing stays loaded.
func LoadSpeechModels(dir, backendName string) ([]Model, error) {
	dirs, err := checkpointDirs(dir, tts.Kind)
	if err != nil {
		return nil, err
	}
	var models []Model
	for _, d := range dirs {
		m, err := LoadSpeech(d, backendName)
		if err != nil {
			for _, l := range models {
				l.Speech.Close()
			}
			return nil, err
		}
		models = append(models, m)
	}
	return models, nil
}

// LoadVoices reads the named voices of the speech data in dataDir (built
// by `latentlm speech data`): for every voice of speech.Voices, its first
// test utterance, the prompt `latentlm speak --voice` uses.
func LoadVoices(dataDir string) ([]Voice, error) {
	_, utts, err := speech.Load(dataDir)
	if err != nil {
		return nil, fmt.Errorf("server: voices: %w", err)
	}
	var voices []Voice
	for _, v := range speech.Voices {
		for _, u := range utts {
			if u.Voice != v.Name || u.Split != speech.SplitTest {
				continue
			}
			a, err := wav.Read(filepath.Join(dataDir, u.File))
			if err == nil {
				a, err = speech.To16k(a)
			}
			if err != nil {
				return nil, fmt.Errorf("server: voice %s: %w", v.Name, err)
			}
			voices = append(voices, Voice{Name: v.Name, Samples: a.Samples, Source: fmt.Sprintf("%s: %q", u.File, u.Text)})
			break
		}
	}
	if len(voices) == 0 {
		return nil, fmt.Errorf("server: voices: the speech data in %s has no test utterances", dataDir)
	}
	return voices, nil
}

// speechModel is a served text-to-speech model. Its requests are decoded
// together, each an utterance of one continuous batch (the model's
// seqBatcher); each request decodes its own frames to audio on its own
// goroutine, with the model's one speech tokenizer.
type speechModel struct {
	name, backend string
	m             *tts.Model
	voices        []Voice
	// tok is a mutex (a waiter whose client is gone can abandon its wait)
	// over encoding voice prompts and their cache, prompts. Decoding
	// frames to audio needs none: each request decodes its own.
	tok chan struct{}
	// prompts caches the latent frames of each voice's prompt (they depend
	// only on the model).
	prompts map[string][][]float32
}

func newSpeechModel(m Model) (*speechModel, error) {
	if m.Speech.Speech == nil {
		return nil, fmt.Errorf("server: model %q has no speech tokenizer: it cannot make audio", m.Name)
	}
	sm := &speechModel{name: m.Name, backend: m.Backend, m: m.Speech, prompts: map[string][][]float32{}, tok: make(chan struct{}, 1)}
	seen := map[string]bool{}
	for _, v := range m.Voices {
		if v.Name == "" || seen[v.Name] || len(v.Samples) == 0 {
			return nil, fmt.Errorf("server: model %q: voice %q: want a unique name and audio", m.Name, v.Name)
		}
		seen[v.Name] = true
		sm.voices = append(sm.voices, v)
	}
	return sm, nil
}

// lockTokenizer takes sm.tok until ctx ends; unlockTokenizer gives it
// back.
func (sm *speechModel) lockTokenizer(ctx context.Context) error {
	select {
	case sm.tok <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (sm *speechModel) unlockTokenizer() { <-sm.tok }

// prompt is the latent frames of a request's voice prompt: the named
// voice's, cached, or those of samples; took is the time spent encoding
// them (0 when cached).
func (sm *speechModel) prompt(ctx context.Context, voice string, samples []float32) (frames [][]float32, took time.Duration, err error) {
	if err := sm.lockTokenizer(ctx); err != nil {
		return nil, 0, err
	}
	defer sm.unlockTokenizer()
	if p := sm.prompts[voice]; voice != "" && p != nil {
		return p, 0, nil
	}
	t := time.Now()
	if frames, err = sm.m.Prompt(samples); err != nil {
		return nil, 0, err
	}
	if voice != "" {
		sm.prompts[voice] = frames
	}
	return frames, time.Since(t), nil
}

func (sm *speechModel) voiceNames() []string {
	names := make([]string, len(sm.voices))
	for i, v := range sm.voices {
		names[i] = v.Name
	}
	return names
}

func (sm *speechModel) voice(name string) (Voice, bool) {
	for _, v := range sm.voices {
		if v.Name == name {
			return v, true
		}
	}
	return Voice{}, false
}

func (sm *speechModel) info() ModelInfo {
	return ModelInfo{Name: sm.name, Kind: tts.Kind, Params: nn.CountParams(sm.m.Config.Specs()), Backend: sm.backend, MaxLen: sm.m.Config.MaxLen,
		Endpoints: speechEndpoints, Rate: tts.Rate, FrameRate: sm.m.Format.FrameRate, Voices: sm.voiceNames(), Reading: sm.m.Format.Reading, Alphabet: sm.m.Format.AlphabetString(), Set: sm.set()}
}

// promptFrames is how many latent frames the model reads of a voice prompt
// of n samples: tts.Model.Prompt keeps its first PromptSeconds.
func (sm *speechModel) promptFrames(n int) int {
	per := sm.m.SamplesPerFrame()
	if ps := sm.m.Options().PromptSeconds; ps > 0 {
		n = min(n, max(1, int(math.Round(ps*sm.m.Format.FrameRate)))*per)
	}
	return (n + per - 1) / per
}

// checkText refuses text the model cannot read: a character outside its
// alphabet, or more than its context holds beside a voice prompt of
// promptSamples samples (the rule of tts.Model.Generate: the prompt gives
// way to the text down to a second, and one frame of speech must fit).
func (sm *speechModel) checkText(text string, promptSamples int) *FieldError {
	f := sm.m.Format
	ids, err := f.Encode(text)
	if err != nil {
		return bad("text", "%v", err)
	}
	maxLen := sm.m.Config.MaxLen
	need := min(sm.promptFrames(promptSamples), int(math.Ceil(f.FrameRate)))
	if room := maxLen - tts.PrefixLen(0, len(ids)) - 1; room < need {
		return bad("text", "%d %s: with a voice prompt of %d frames model %s (max_len %d) takes at most %d", len(ids), f.Reading, need, sm.name, maxLen,
			max(maxLen-tts.PrefixLen(need, 0)-1, 0))
	}
	return nil
}

// SpeechRequest is the body of POST /v1/speech. Fields left out take the
// defaults of `latentlm speak` (steps 5, cfg 3, seed 1, max_seconds 10);
// model may be left out when the server holds one text-to-speech model. A
// request names a voice of the model or sends prompt_wav, not both.
type SpeechRequest struct {
	Model      string  `json:"model"`
	Text       string  `json:"text"`
	Voice      string  `json:"voice"`
	Steps      int     `json:"steps"`
	CFG        float64 `json:"cfg"`
	Seed       int64   `json:"seed"`
	MaxSeconds float64 `json:"max_seconds"`
	Stream     bool    `json:"stream"`
	// Prompt is prompt_wav decoded: the voice prompt at 16 kHz, mono (nil
	// with a voice).
	Prompt []float32 `json:"-"`
}

type wireSpeech struct {
	Model      *string  `json:"model"`
	Text       *string  `json:"text"`
	Voice      *string  `json:"voice"`
	PromptWAV  *string  `json:"prompt_wav"`
	Steps      *int     `json:"steps"`
	CFG        *float64 `json:"cfg"`
	Seed       *int64   `json:"seed"`
	MaxSeconds *float64 `json:"max_seconds"`
	Stream     *bool    `json:"stream"`
}

var speechFields = fieldKinds{{"model", "a string"}, {"text", "a string"}, {"voice", "a string"}, {"prompt_wav", "a base64 WAV file"},
	{"steps", "an integer"}, {"cfg", "a number"}, {"seed", "an integer"}, {"max_seconds", "a number"}, {"stream", "true or false"}}

// DecodeSpeechRequest reads a SpeechRequest from body as POST /v1/speech
// does: one JSON object of valid UTF-8, no unknown fields, every value of
// its type and inside its range, a text of 1…MaxSpeechText characters,
// a voice or a prompt_wav of MinPromptSeconds…MaxPromptSeconds of 16-bit
// PCM (the model, the voice's name and the text's characters are checked
// against the served models by the server). It reads at most
// MaxSpeechBodyBytes. Errors are *FieldError.
func DecodeSpeechRequest(body io.Reader) (SpeechRequest, error) {
	req, ferr := decodeSpeech(io.LimitReader(body, MaxSpeechBodyBytes+1), "")
	if ferr != nil {
		return req, ferr
	}
	return req, nil
}

func decodeSpeech(body io.Reader, contentType string) (SpeechRequest, *FieldError) {
	d := tts.DefaultOptions()
	req := SpeechRequest{Steps: d.Steps, CFG: d.CFG, Seed: d.Seed, MaxSeconds: d.MaxSeconds}
	var w wireSpeech
	if ferr := decodeBody(body, contentType, MaxSpeechBodyBytes, `{"text": "four hundred twelve", "voice": "flite-awb"}`, speechFields, &w); ferr != nil {
		return req, ferr
	}
	setIf(&req.Model, w.Model)
	var ferr *FieldError
	if req.Text, ferr = textField("text", w.Text, "the words to speak, numbers spelt out"); ferr != nil {
		return req, ferr
	}
	switch n := utf8.RuneCountInString(tts.Normalize(req.Text)); {
	case n == 0:
		return req, bad("text", "only white space: give the words to speak")
	case n > MaxSpeechText:
		return req, bad("text", "%d characters, at most %d (the model's context bounds it further)", n, MaxSpeechText)
	}
	switch {
	case w.Voice != nil && w.PromptWAV != nil:
		return req, bad("prompt_wav", "give voice (a voice of the model) or prompt_wav (an utterance to imitate), not both")
	case w.Voice == nil && w.PromptWAV == nil:
		return req, bad("voice", "required: voice (a voice of the model, GET /v1/models) or prompt_wav (a base64 WAV of another utterance of the speaker)")
	case w.Voice != nil:
		if req.Voice = *w.Voice; req.Voice == "" {
			return req, bad("voice", "empty: give a voice of the model (GET /v1/models)")
		}
	default:
		if req.Prompt, ferr = decodePromptWAV(*w.PromptWAV); ferr != nil {
			return req, ferr
		}
	}
	if ferr := samplingFields(&req.Steps, &req.CFG, &req.Seed, w.Steps, w.CFG, w.Seed); ferr != nil {
		return req, ferr
	}
	setIf(&req.MaxSeconds, w.MaxSeconds)
	if !(req.MaxSeconds > 0 && req.MaxSeconds <= MaxSpeechSeconds) { // NaN too
		return req, bad("max_seconds", "%v out of range: want > 0 and ≤ %d", req.MaxSeconds, MaxSpeechSeconds)
	}
	setIf(&req.Stream, w.Stream)
	return req, nil
}

// decodePromptWAV decodes the field prompt_wav: base64 (a data: URL prefix
// allowed) of a 16-bit PCM WAV file, mono or stereo, at one of
// PromptRates (resampled to 16 kHz), MinPromptSeconds…MaxPromptSeconds
// long.
func decodePromptWAV(s string) ([]float32, *FieldError) {
	if s == "" {
		return nil, bad("prompt_wav", "empty: give a base64 WAV file of another utterance of the speaker")
	}
	if rest, ok := strings.CutPrefix(s, "data:"); ok {
		mt, data, ok := strings.Cut(rest, ",")
		if !ok || !strings.HasSuffix(mt, ";base64") {
			return nil, bad("prompt_wav", "a data: URL that is not base64")
		}
		s = data
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, bad("prompt_wav", "not base64 (%v)", err)
	}
	a, err := wav.Decode(raw)
	if err != nil {
		return nil, bad("prompt_wav", "%v", err)
	}
	if !slices.Contains(PromptRates, a.Rate) {
		return nil, bad("prompt_wav", "sample rate %d Hz: want one of %s Hz", a.Rate, strings.ReplaceAll(strings.Trim(fmt.Sprint(PromptRates), "[]"), " ", ", "))
	}
	if secs := a.Seconds(); secs < MinPromptSeconds || secs > MaxPromptSeconds {
		return nil, bad("prompt_wav", "%.3f s of audio: want %g…%d s (a shorter clip carries no voice; the model reads its first %g s)",
			secs, MinPromptSeconds, MaxPromptSeconds, tts.DefaultOptions().PromptSeconds)
	}
	if a, err = speech.To16k(a); err != nil {
		return nil, bad("prompt_wav", "resampling to 16 kHz: %v", err)
	}
	return a.Samples, nil
}

// speechFor returns the text-to-speech model a request names. When it
// names none: the only one, else the only one trained for its text (the
// "set" its checkpoint records: numbers for a spoken number, sentences or
// both for other text), as speak chooses between the shipped weights/tts
// and weights/tts-sentences.
func (s *Server) speechFor(name, text string) (*speechModel, *FieldError) {
	if name == "" {
		if len(s.speechNames) == 1 {
			name = s.speechNames[0]
		} else if name = s.speechForText(text); name == "" {
			return nil, bad("model", "required: one of %s", strings.Join(s.speechNames, ", "))
		}
	}
	if sm := s.speech[name]; sm != nil {
		return sm, nil
	}
	kind := ""
	switch {
	case s.models[name] != nil:
		kind = "class-conditional (POST /v1/images with a class)"
	case s.multimodal[name] != nil:
		kind = "multimodal (images and text)"
	}
	if kind != "" {
		return nil, bad("model", "model %s is %s, not text-to-speech; the speech models are %s", name, kind, strings.Join(s.speechNames, ", "))
	}
	return nil, bad("model", "unknown model %q: want one of %s", name, strings.Join(s.speechNames, ", "))
}

// set is the text set the model was trained on (ModelInfo.Set).
func (sm *speechModel) set() string {
	set, _ := sm.m.Info["set"].(string)
	return set
}

// speechForText is the one speech model trained for text (see speechFor),
// or "" when none or several are.
func (s *Server) speechForText(text string) string {
	want := []string{speech.SetSentences, speech.SetBoth}
	if speech.IsNumberText(text) {
		want = []string{speech.SetNumbers}
	}
	found := ""
	for _, name := range s.speechNames {
		if slices.Contains(want, s.speech[name].set()) {
			if found != "" {
				return ""
			}
			found = name
		}
	}
	return found
}

// SpeechTimings are the phases of a speech request, in milliseconds, and
// its real-time factor.
type SpeechTimings struct {
	QueueMS      float64 `json:"queue_ms"`       // waiting for the model
	FirstChunkMS float64 `json:"first_chunk_ms"` // from the start of generation to the first chunk of audio
	GenerateMS   float64 `json:"generate_ms"`    // generation and decoding to audio
	TotalMS      float64 `json:"total_ms"`       // from arrival to the answer
	// RealTimeFactor is generation time over the seconds of speech: below
	// 1, the audio is made faster than it plays.
	RealTimeFactor float64 `json:"real_time_factor"`
}

// SpeechResponse is the answer of POST /v1/speech, and without Audio the
// data of the final "done" event of a streamed one.
type SpeechResponse struct {
	Model string `json:"model"`
	Text  string `json:"text"`            // as the model read it (tts.Normalize)
	Voice string `json:"voice,omitempty"` // absent for prompt_wav
	Seed  int64  `json:"seed"`
	Rate  int    `json:"rate"` // samples per second
	// Samples and Seconds are the length of the speech, Frames its latent
	// frames.
	Samples int     `json:"samples"`
	Seconds float64 `json:"seconds"`
	Frames  int     `json:"frames"`
	// Stopped reports that the model ended the speech itself; false means
	// that max_seconds or the model's context cut it.
	Stopped bool `json:"stopped"`
	// PromptSeconds is the part of the voice prompt the model read.
	PromptSeconds float64 `json:"prompt_seconds"`
	// Audio is a base64 WAV file: 16-bit PCM, mono, at Rate.
	Audio   string        `json:"audio,omitempty"`
	Timings SpeechTimings `json:"timings"`
}

// AudioEvent is the data of a streamed "audio" event: one chunk of speech.
type AudioEvent struct {
	Index   int    `json:"index"`   // of the chunk, from 0
	Start   int    `json:"start"`   // index of its first sample in the utterance
	Samples int    `json:"samples"` // in the chunk
	Rate    int    `json:"rate"`
	PCM     string `json:"pcm"` // base64 of little-endian 16-bit PCM, mono
}

// wantsWAV reports whether the Accept header asks for audio/wav (or its
// aliases audio/wave and audio/x-wav) rather than JSON.
func wantsWAV(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil || params["q"] == "0" {
			continue
		}
		switch mt {
		case "audio/wav", "audio/wave", "audio/x-wav":
			return true
		}
	}
	return false
}

// handleSpeech answers POST /v1/speech: text → speech in the voice of a
// named voice or of a prompt. The audio is always decoded in chunks while
// the frames are drawn (tts.Stream), so that it is the same streamed or
// not; streamed, each chunk is an event as soon as it is decoded, and the
// stream begins with the first, so that a text too long for the model is
// still answered 400. The utterance is one tts.Sequence of the model's
// continuous batch (seqBatcher): it joins the requests being spoken at
// the next step, with its own seed, guidance and length, and its speech is
// what it gets alone. The batcher's goroutine only draws frames; this one
// decodes them to audio and sends it.
func (s *Server) handleSpeech(w http.ResponseWriter, r *http.Request) {
	t0 := time.Now()
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST")
		return
	}
	req, ferr := decodeSpeech(http.MaxBytesReader(w, r.Body, MaxSpeechBodyBytes), contentType(r))
	var sm *speechModel
	if ferr == nil {
		sm, ferr = s.speechFor(req.Model, req.Text)
	}
	var voice Voice
	if ferr == nil && req.Voice != "" {
		var ok bool
		if voice, ok = sm.voice(req.Voice); !ok {
			if len(sm.voices) == 0 {
				ferr = bad("voice", "model %s has no named voices on this server (started without the speech data): send prompt_wav", sm.name)
			} else {
				ferr = bad("voice", "unknown voice %q: want one of %s", req.Voice, strings.Join(sm.voiceNames(), ", "))
			}
		}
		req.Prompt = voice.Samples
	}
	if ferr == nil {
		ferr = sm.checkText(req.Text, len(req.Prompt))
	}
	ctx, done, ok := s.enter(w, r, ferr)
	if !ok {
		return
	}
	defer done()
	req.Model = sm.name
	prompt, promptTook, err := sm.prompt(ctx, req.Voice, req.Prompt)
	if err != nil {
		s.speechFailed(w, ctx, err, false)
		return
	}
	// jctx ends the request in the batcher (at its next step) when the
	// client goes or this handler fails.
	jctx, stop := context.WithCancel(ctx)
	defer stop()
	// The batcher's goroutine hands each frame over (never waiting: the
	// channel holds them all), and this one decodes them to audio.
	var frames chan []float32
	seq, err := sm.m.NewSequence(tts.Request{Text: req.Text, Prompt: prompt}, uint64(req.Seed), tts.SequenceOptions{
		CFG: req.CFG, Temperature: DefaultTemperature, MaxSeconds: req.MaxSeconds,
		OnFrame: func(_ int, z []float32) error {
			s.metrics.speechFrames.Add(1)
			frames <- z
			if s.onFrame != nil {
				s.onFrame(jctx)
			}
			return nil
		}})
	if err != nil {
		s.speechFailed(w, ctx, err, false)
		return
	}
	frames = make(chan []float32, seq.MaxItems()+1) // more than its frames
	es := newEventStream(w)
	var samples []float32
	var firstChunk time.Time
	var chunks []AudioEvent // decoded, not yet sent
	st := sm.m.NewStream(func(y []float32) error {
		if firstChunk.IsZero() {
			firstChunk = time.Now()
		}
		ev := AudioEvent{Index: len(chunks), Start: len(samples), Samples: len(y), Rate: tts.Rate}
		samples = append(samples, y...)
		if req.Stream {
			ev.PCM = base64.StdEncoding.EncodeToString(wav.PCM16(y))
		}
		chunks = append(chunks, ev)
		return nil
	})
	st.Seed = uint64(req.Seed)
	sent := 0
	// decode feeds the stream frame z (nil: the end), then sends the
	// chunks it decoded. Requests decode side by side: the tokenizer's
	// decoder is a compiled graph (safe for concurrent calls) and
	// Griffin-Lim a pure function of its input and seed.
	decode := func(z []float32) error {
		var err error
		if z != nil {
			err = st.Add(z)
		} else {
			err = st.Close()
		}
		if err != nil || !req.Stream {
			return err
		}
		for ; sent < len(chunks); sent++ {
			if err := es.send("audio", chunks[sent]); err != nil {
				return err
			}
		}
		return nil
	}
	type outcome struct {
		start time.Time
		err   error
	}
	result := make(chan outcome, 1)
	go func() {
		start, err := s.seqBatchers[sm.name].submit(jctx, req.Steps, 1, &speechTask{seq: seq}, nil)
		result <- outcome{start, err}
	}()
	var out outcome
	for waiting := true; waiting && err == nil; {
		select {
		case z := <-frames:
			err = decode(z)
		case out = <-result:
			waiting, err = false, out.err
		}
	}
	for drained := false; err == nil && !drained; { // the frames sent before the request finished
		select {
		case z := <-frames:
			err = decode(z)
		default:
			drained = true
		}
	}
	if err == nil {
		err = decode(nil)
	}
	if err == nil && len(samples) == 0 {
		err = errors.New("the model made no speech frames")
	}
	if err != nil {
		stop() // the batcher ends the request at its next step
		s.speechFailed(w, ctx, err, es.started)
		return
	}
	res := seq.Result()
	// Generation starts with encoding the voice prompt; the time before it
	// is the wait for the model.
	tg := out.start.Add(-promptTook)
	tm := SpeechTimings{QueueMS: ms(tg.Sub(t0)), FirstChunkMS: ms(firstChunk.Sub(tg)), GenerateMS: ms(time.Since(tg))}
	secs := float64(len(samples)) / tts.Rate
	tm.RealTimeFactor = tm.GenerateMS / 1000 / secs
	s.metrics.speech.Add(sm.name, 1)
	s.metrics.addSpeechSeconds(sm.name, secs)
	resp := SpeechResponse{Model: sm.name, Text: tts.Normalize(req.Text), Voice: req.Voice, Seed: req.Seed, Rate: tts.Rate, Samples: len(samples),
		Seconds: secs, Frames: len(res.Frames), Stopped: res.Stopped, PromptSeconds: sm.m.Format.Seconds(res.PromptFrames)}
	if s.cfg.Log != nil {
		who := req.Voice
		if who == "" {
			who = fmt.Sprintf("a %.2f s prompt", float64(len(req.Prompt))/tts.Rate)
		}
		s.cfg.Log.Printf("%s: %.2f s of speech of %q in %s, %d steps, cfg %g, seed %d, stream %v: %.0f ms (real-time factor %.2f)",
			sm.name, secs, resp.Text, who, req.Steps, req.CFG, req.Seed, req.Stream, ms(time.Since(t0)), tm.RealTimeFactor)
	}
	if req.Stream {
		tm.TotalMS = ms(time.Since(t0))
		resp.Timings = tm
		es.open() // a request with speech has sent a chunk already
		sendDone(w, true, resp)
		return
	}
	var buf bytes.Buffer
	if err := wav.Encode(&buf, wav.Audio{Rate: tts.Rate, Samples: samples}); err != nil {
		s.failed(w, ctx, fmt.Errorf("encoding WAV: %w", err), false)
		return
	}
	tm.TotalMS = ms(time.Since(t0))
	if wantsWAV(r) {
		h := w.Header()
		h.Set("Content-Type", "audio/wav")
		h.Set("Content-Length", strconv.Itoa(buf.Len()))
		h.Set("X-Speech-Seconds", strconv.FormatFloat(secs, 'f', 3, 64))
		h.Set("X-Speech-Frames", strconv.Itoa(resp.Frames))
		h.Set("X-Speech-Stopped", strconv.FormatBool(resp.Stopped))
		h.Set("Server-Timing", fmt.Sprintf("queue;dur=%.1f, first-chunk;dur=%.1f, generate;dur=%.1f, total;dur=%.1f", tm.QueueMS, tm.FirstChunkMS, tm.GenerateMS, tm.TotalMS))
		w.WriteHeader(http.StatusOK)
		w.Write(buf.Bytes())
		return
	}
	resp.Audio = base64.StdEncoding.EncodeToString(buf.Bytes())
	resp.Timings = tm
	writeJSON(w, http.StatusOK, resp)
}

// speechTask is a speech request for its model's seqBatcher: one
// utterance, in the guided batch when its guidance needs it.
type speechTask struct {
	seq   *tts.Sequence
	added bool
}

func (t *speechTask) pending() []seqEntry {
	if t.added {
		return nil
	}
	t.added = true
	return []seqEntry{{seq: t.seq, guided: t.seq.Guided()}}
}

func (t *speechTask) ended(lm.Sequence, error) (bool, error) { return true, nil }

// speechFailed answers a speech request that did not finish: text the
// model refuses (*tts.TextError, which checkText should have caught) is
// the client's error, 400 naming text; the rest is as failed.
func (s *Server) speechFailed(w http.ResponseWriter, ctx context.Context, err error, streaming bool) {
	var te *tts.TextError
	if errors.As(err, &te) && !streaming && ctx.Err() == nil {
		writeError(w, http.StatusBadRequest, "text", te.Problem)
		return
	}
	s.failed(w, ctx, fmt.Errorf("speaking: %w", err), streaming)
}

// speechDefaults are the defaults of POST /v1/speech, for GET /v1/models.
func speechDefaults() *SpeechDefaults {
	d := tts.DefaultOptions()
	return &SpeechDefaults{Steps: d.Steps, CFG: d.CFG, Seed: d.Seed, MaxSeconds: d.MaxSeconds}
}

// SpeechDefaults are the defaults of POST /v1/speech.
type SpeechDefaults struct {
	Steps      int     `json:"steps"`
	CFG        float64 `json:"cfg"`
	Seed       int64   `json:"seed"`
	MaxSeconds float64 `json:"max_seconds"`
}

// SpeechMemory estimates, generously, the memory in bytes that rows
// utterances decoded together by m may take beside the weights: the
// engine's activations at the model's context, a guidance stream each,
// and the audio of MaxSpeechSeconds each, so that `latentlm serve` can
// refuse to start where that does not fit.
func SpeechMemory(m *tts.Model, rows int) float64 {
	return m.Config.Activations(2*rows, m.Config.MaxLen, 1, false) + float64(rows)*MaxSpeechSeconds*tts.Rate*4*8
}
