package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"image/png"
	"math"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/latentlm/latentlm/backend"
	"github.com/latentlm/latentlm/imageio"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/multimodal"
	"github.com/latentlm/latentlm/nn"
)

// Limits of the multimodal endpoints (n, steps, cfg, seed and the body of
// a request without images are bounded as for /v1/images).
const (
	// MaxTokens bounds max_tokens, the text tokens of one answer (the
	// model's context, max_len items, bounds it too).
	MaxTokens = 4096
	// MaxImageBodyBytes bounds the body of /v1/captions and /v1/answers,
	// which carry up to MaxImages base64 PNGs.
	MaxImageBodyBytes = 4 << 20
)

// multimodalEndpoints are the endpoints a multimodal model answers.
var multimodalEndpoints = []string{"/v1/images", "/v1/captions", "/v1/answers", "/v1/completions"}

// LoadMultimodal loads the multimodal checkpoint in dir, with the image
// tokenizer it records, on the named backend ("": $LATENTLM_BACKEND, else
// onnx), as a Model named after the folder. Close its Multimodal when done.
func LoadMultimodal(dir, backendName string) (Model, error) {
	name := backend.Resolve(backendName)
	b, err := backend.Open(name)
	if err != nil {
		return Model{}, fmt.Errorf("server: %w", err)
	}
	m, err := multimodal.Load(b, dir, "", multimodal.DefaultOptions())
	if err != nil {
		return Model{}, fmt.Errorf("server: %w", err)
	}
	if _, err := m.SampleTemperature(); err != nil {
		m.Close()
		return Model{}, fmt.Errorf("server: %w", err)
	}
	return Model{Name: filepath.Base(filepath.Clean(dir)), Multimodal: m, Backend: name}, nil
}

// mmModel is a served multimodal model. Its requests run as sequences of
// one continuous decode, its seqBatcher's (s.seqBatchers[name]), each with
// its own options: see runTask.
type mmModel struct {
	name, backend string
	m             *multimodal.Model
	// tok serialises the image tokenizer (m.Image): the handlers encode
	// the images of captions and answers and decode drawn images on their
	// own goroutines, and the batcher's goroutine decodes a completion's
	// image inside Take (completionTask).
	tok sync.Mutex
	// ownTemperature is the checkpoint's scale of the initial noise
	// (multimodal.Model.SampleTemperature), read once.
	ownTemperature float64
}

// newMMModel serves m. LoadMultimodal refuses a checkpoint whose own
// temperature is not a positive number, so the plain sampler's 1 stands in
// only for a model loaded some other way.
func newMMModel(m Model) *mmModel {
	own, err := m.Multimodal.SampleTemperature()
	if err != nil {
		own = DefaultTemperature
	}
	return &mmModel{name: m.Name, backend: m.Backend, m: m.Multimodal, ownTemperature: own}
}

// temperature is the scale of the initial noise of a request's images:
// the request's own if given, else the checkpoint's.
func (mm *mmModel) temperature(given bool, t float64) float64 {
	if given {
		return t
	}
	return mm.ownTemperature
}

func (mm *mmModel) size() int { return mm.m.Image.Config.ImageSize }

// channels is 1 for a gray model, 3 for a colour one (H×W×C pixels).
func (mm *mmModel) channels() int { return mm.m.Image.Config.ImageChannels() }

func (mm *mmModel) info() ModelInfo {
	ch := 0
	if mm.channels() > 1 {
		ch = mm.channels()
	}
	return ModelInfo{Name: mm.name, Kind: multimodal.Kind, ImageSize: mm.size(), ImageChannels: ch, Params: nn.CountParams(mm.m.Config.Specs()),
		Backend: mm.backend, MaxLen: mm.m.Config.MaxLen, Endpoints: multimodalEndpoints}
}

// multimodalFor returns the multimodal model a request names, or the only
// one when it names none; what is what the request sends, for messages.
func (s *Server) multimodalFor(name, what string) (*mmModel, *FieldError) {
	if s.speech[name] != nil {
		return nil, bad("model", "model %s is text-to-speech: it takes no %s; POST text to /v1/speech", name, what)
	}
	if len(s.mmNames) == 0 {
		return nil, bad("prompt", "this server holds no multimodal model: send a class to one of %s", strings.Join(s.names, ", "))
	}
	if name == "" {
		if len(s.mmNames) != 1 {
			return nil, bad("model", "required: one of %s", strings.Join(s.mmNames, ", "))
		}
		name = s.mmNames[0]
	}
	if mm := s.multimodal[name]; mm != nil {
		return mm, nil
	}
	if s.models[name] != nil {
		return nil, bad("model", "model %s is class-conditional: it takes a class, not %s; the multimodal models are %s", name, what, strings.Join(s.mmNames, ", "))
	}
	return nil, bad("model", "unknown model %q: want one of %s", name, strings.Join(s.mmNames, ", "))
}

// options are the model's options with a request's set: a sequence's
// own (the solver steps are its decode's).
func (mm *mmModel) options(set func(*multimodal.Options)) multimodal.Options {
	o := mm.m.Options()
	set(&o)
	return o
}

// decode decodes the first k latents (a VQ-MLLM: codes) of each image,
// zeros (the mean latent) in the places still to come, with the image
// tokenizer: the partial images of a stream and, with k = Format.Items,
// the finished images, as ImageSequence.Decode makes them. latents holds
// each image's latents (LatentLM), codes its codes (a VQ-MLLM).
func (mm *mmModel) decode(latents [][]float32, codes [][]int32, k int) ([][]float32, error) {
	f := mm.m.Format
	var z [][]float32
	mm.tok.Lock()
	defer mm.tok.Unlock()
	if mm.m.Arch == multimodal.VQ {
		full := make([][]int32, len(codes))
		for i, c := range codes {
			full[i] = make([]int32, f.Items)
			copy(full[i], c[:k])
		}
		var err error
		if z, err = mm.m.Image.CodeLatents(full); err != nil {
			return nil, err
		}
		for _, zi := range z {
			clear(zi[k*f.Channels:])
		}
	} else {
		z = make([][]float32, len(latents))
		for i, l := range latents {
			z[i] = make([]float32, f.Items*f.Channels)
			copy(z[i], l[:k*f.Channels])
		}
	}
	return mm.m.Image.Decode(z)
}

// acquire takes a place in slots (the slots of the class-conditional
// models served without batching), in turn with the other requests,
// until ctx ends. The request counts as waiting meanwhile and as running
// after. Call release after.
func (s *Server) acquire(ctx context.Context, slots chan struct{}) error {
	s.waiting.Add(1)
	select {
	case slots <- struct{}{}:
		s.waiting.Add(-1)
	case <-ctx.Done():
		s.waiting.Add(-1)
		return ctx.Err()
	}
	s.running.Add(1)
	if s.beforeGenerate != nil {
		s.beforeGenerate()
	}
	return nil
}

func (s *Server) release(slots chan struct{}) {
	s.running.Add(-1)
	<-slots
}

// enter answers a request refused (ferr) with its error, and one beyond
// the queue with 429; else it takes a place among the requests admitted
// (generating or waiting) and gives the request a context bounded by the
// timeout. Call done, which gives both back, when ok.
func (s *Server) enter(w http.ResponseWriter, r *http.Request, ferr *FieldError) (ctx context.Context, done func(), ok bool) {
	if ferr != nil {
		writeFieldError(w, ferr)
		return nil, nil, false
	}
	if s.admitted.Add(1) > int64(s.cfg.Concurrency+s.cfg.Queue) {
		s.admitted.Add(-1)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "", fmt.Sprintf("server busy: %d requests generating and %d waiting; retry later", s.cfg.Concurrency, s.cfg.Queue))
		return nil, nil, false
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	return ctx, func() { cancel(); s.admitted.Add(-1) }, true
}

// runTask decodes task in mm's continuous decode (its seqBatcher) and waits
// for it: steps are its solver steps (0: any, for text), rows the most
// sequences it holds at once. The task's callbacks run on the batcher's
// goroutine and never write the answer: they hand what they make to the
// handler (under a lock of their own) and signal wake, and runTask calls
// drain on the handler's goroutine at every signal and once more when the
// task is done. So only the handler writes to the client: a slow client
// never holds up the decode, and callbacks that run after the handler has
// left (its client gone, until the decode drops the request at its next
// step) write nothing. It returns when the task ends (start: when it
// joined the decode), when ctx ends, or when drain fails.
func (s *Server) runTask(ctx context.Context, mm *mmModel, steps, rows int, task seqTask, wake <-chan struct{}, drain func() error) (time.Time, error) {
	type result struct {
		start time.Time
		err   error
	}
	done := make(chan result, 1)
	go func() {
		start, err := s.seqBatchers[mm.name].submit(ctx, steps, rows, task, nil)
		done <- result{start, err}
	}()
	for {
		select {
		case r := <-done:
			if r.err == nil && drain != nil {
				r.err = drain()
			}
			return r.start, r.err
		case <-wake: // nil without drain: never
			if err := drain(); err != nil {
				return time.Time{}, err
			}
		}
	}
}

// signal wakes a handler waiting in runTask, without blocking.
func signal(wake chan struct{}) {
	select {
	case wake <- struct{}{}:
	default:
	}
}

// seqsTask decodes a fixed set of sequences, all added at the first step
// (the images of a prompt, captions, answers); it is finished when every
// sequence of main has ended (a VQ-MLLM image's guidance stream is not
// one: it leaves with its image).
type seqsTask struct {
	entries []seqEntry
	main    map[lm.Sequence]bool
	added   bool
}

func (t *seqsTask) add(seq lm.Sequence, guided, main bool) {
	t.entries = append(t.entries, seqEntry{seq: seq, guided: guided})
	if main {
		if t.main == nil {
			t.main = map[lm.Sequence]bool{}
		}
		t.main[seq] = true
	}
}

func (t *seqsTask) pending() []seqEntry {
	if t.added {
		return nil
	}
	t.added = true
	return t.entries
}

func (t *seqsTask) ended(seq lm.Sequence, err error) (bool, error) {
	if err != nil {
		return true, err
	}
	delete(t.main, seq)
	return len(t.main) == 0, nil
}

// mmFailed answers a multimodal request that did not finish: a prompt or
// question the model refuses (*multimodal.PromptError) is the client's
// error, 400 naming field; the rest is as failed.
func (s *Server) mmFailed(w http.ResponseWriter, ctx context.Context, err error, field string, streaming bool) {
	var pe *multimodal.PromptError
	if errors.As(err, &pe) && !streaming {
		writeError(w, http.StatusBadRequest, field, pe.Problem)
		return
	}
	s.failed(w, ctx, err, streaming)
}

// PromptImagesResponse is the answer of POST /v1/images with a prompt (and
// the data of the "done" event of a streamed one).
type PromptImagesResponse struct {
	Model   string   `json:"model"`
	Prompt  string   `json:"prompt"`
	Seed    int64    `json:"seed"`
	Images  []string `json:"images"` // base64 PNGs
	Timings Timings  `json:"timings"`
}

// latentStream carries the latents of a streamed request's images from
// the batcher's goroutine (OnLatent) to its handler, which decodes and
// sends them: one event per latent, once every image has drawn it.
type latentStream struct {
	mu      sync.Mutex
	latents [][]float32 // each image's latents so far (LatentLM)
	codes   [][]int32   // each image's codes so far (a VQ-MLLM)
	count   []int       // each image's latents so far
	ready   int         // latents every image has drawn
	first   time.Time   // when the first was
	wake    chan struct{}
}

func newLatentStream(n int) *latentStream {
	return &latentStream{latents: make([][]float32, n), codes: make([][]int32, n), count: make([]int, n), wake: make(chan struct{}, 1)}
}

// add takes latent p of image i (on the batcher's goroutine: p.Latent is
// valid only during the call).
func (l *latentStream) add(i int, p multimodal.ImageProgress) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p.Latent != nil {
		l.latents[i] = append(l.latents[i], p.Latent...)
	} else {
		l.codes[i] = append(l.codes[i], int32(p.Code))
	}
	l.count[i] = p.Index + 1
	if n := slices.Min(l.count); n > l.ready {
		if l.ready == 0 {
			l.first = time.Now()
		}
		l.ready = n
		signal(l.wake)
	}
}

// drawn is what the images have drawn so far. Drawn latents never change,
// so the handler reads the slices without the lock.
func (l *latentStream) drawn() (latents [][]float32, codes [][]int32, ready int, first time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.latents), slices.Clone(l.codes), l.ready, l.first
}

// promptImages draws req.N images of req.Prompt with the multimodal model
// (text → image), image i an ImageSequence of the model's continuous
// decode with the request's seed, guidance scale and temperature, as it
// draws alone. Streamed, each latent is a "latent" event as for a class
// (the partial images, once every image has drawn it), then the "done"
// event.
func (s *Server) promptImages(w http.ResponseWriter, ctx context.Context, req ImagesRequest, t0 time.Time) {
	mm := s.multimodal[req.Model]
	o := mm.options(func(o *multimodal.Options) {
		o.Steps, o.CFG, o.Temperature, o.Seed = req.Steps, req.CFG, mm.temperature(req.temperatureGiven, req.Temperature), req.Seed
	})
	var ls *latentStream
	if req.Stream {
		ls = newLatentStream(req.N)
	}
	seqs := make([]*multimodal.ImageSequence, req.N)
	task := &seqsTask{}
	for i := range seqs {
		q, err := mm.m.NewImageSequence(req.Prompt, i, o)
		if err != nil {
			s.mmFailed(w, ctx, err, "prompt", false)
			return
		}
		if ls != nil {
			q.OnLatent = func(p multimodal.ImageProgress) error {
				ls.add(i, p)
				return nil
			}
		}
		for j, seq := range q.Sequences() {
			task.add(seq, q.Guided(), j == 0)
		}
		seqs[i] = q
	}
	items, grid := mm.m.Format.Items, mm.m.Image.Config.Grid()
	es, sent := newEventStream(w), 0
	var wake chan struct{}
	var drain func() error
	if ls != nil {
		wake = ls.wake
		drain = func() error {
			latents, codes, ready, _ := ls.drawn()
			for ; sent < ready; sent++ {
				px, err := mm.decode(latents, codes, sent+1)
				if err != nil {
					return err
				}
				enc, err := encodePictures(px, mm.size(), mm.channels())
				if err != nil {
					return err
				}
				es.open()
				ev := LatentEvent{Index: sent, Row: sent / grid, Col: sent % grid, Latents: items, Grid: grid, Images: enc}
				if err := s.writeLatent(w, es.rc, ev, req.N); err != nil {
					return err
				}
			}
			return nil
		}
	}
	start, err := s.runTask(ctx, mm, req.Steps, len(task.entries), task, wake, drain)
	if err != nil {
		s.failed(w, ctx, err, es.started)
		return
	}
	tm := Timings{QueueMS: ms(start.Sub(t0))}
	if ls != nil {
		_, _, _, first := ls.drawn()
		tm.FirstLatentMS = ms(first.Sub(start))
	}
	latents, codes := make([][]float32, req.N), make([][]int32, req.N)
	for i, q := range seqs {
		latents[i], codes[i] = q.Latents(), q.Codes()
	}
	px, err := mm.decode(latents, codes, items)
	if err != nil {
		s.failed(w, ctx, err, es.started)
		return
	}
	tm.GenerateMS = ms(time.Since(start))
	s.metrics.images.Add(mm.name, int64(len(px)))
	te := time.Now()
	enc, err := encodePictures(px, mm.size(), mm.channels())
	if err != nil {
		s.failed(w, ctx, err, es.started)
		return
	}
	tm.EncodeMS = ms(time.Since(te))
	tm.TotalMS = ms(time.Since(t0))
	resp := PromptImagesResponse{Model: mm.name, Prompt: req.Prompt, Seed: req.Seed, Images: enc, Timings: tm}
	if s.cfg.Log != nil {
		s.cfg.Log.Printf("%s: %d images of %q, %d steps, cfg %g, seed %d, stream %v: %.0f ms", mm.name, req.N, req.Prompt, req.Steps, req.CFG, req.Seed, req.Stream, tm.TotalMS)
	}
	if req.Stream {
		es.open()
	}
	sendDone(w, req.Stream, resp)
}

// eventStream writes the Server-Sent Events of one answer. The stream
// opens with the first event, so that a request refused before it is still
// answered with a status and a JSON error (started tells which happened).
type eventStream struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
}

func newEventStream(w http.ResponseWriter) *eventStream {
	return &eventStream{w: w, rc: http.NewResponseController(w)}
}

// open sends the stream's headers, once.
func (e *eventStream) open() {
	if !e.started {
		startStream(e.w)
		e.started = true
	}
}

// send writes one event and flushes it to the client.
func (e *eventStream) send(event string, v any) error {
	e.open()
	if err := writeEvent(e.w, event, v); err != nil {
		return err
	}
	return e.rc.Flush()
}

// startStream sends the headers of an event stream.
func startStream(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
}

// TextTimings are the phases of a request that writes text, in
// milliseconds.
type TextTimings struct {
	QueueMS      float64 `json:"queue_ms"`                 // waiting for the model
	FirstPieceMS float64 `json:"first_piece_ms,omitempty"` // from the start of generation to the first piece (completions)
	GenerateMS   float64 `json:"generate_ms"`              // generation, PNG encoding included
	TotalMS      float64 `json:"total_ms"`                 // from arrival to the answer
}

// CaptionsRequest is the body of POST /v1/captions.
type CaptionsRequest struct {
	Model     string   `json:"model"`
	Images    []string `json:"images"` // base64 PNGs of the model's image size
	MaxTokens int      `json:"max_tokens"`
}

// CaptionsResponse is the answer of POST /v1/captions: one caption per
// image, in order.
type CaptionsResponse struct {
	Model    string      `json:"model"`
	Captions []string    `json:"captions"`
	Timings  TextTimings `json:"timings"`
}

// AnswersRequest is the body of POST /v1/answers.
type AnswersRequest struct {
	Model     string   `json:"model"`
	Images    []string `json:"images"`
	Question  string   `json:"question"`
	MaxTokens int      `json:"max_tokens"`
}

// AnswersResponse is the answer of POST /v1/answers: one answer per image,
// in order.
type AnswersResponse struct {
	Model    string      `json:"model"`
	Question string      `json:"question"`
	Answers  []string    `json:"answers"`
	Timings  TextTimings `json:"timings"`
}

type wireImageText struct {
	Model     *string   `json:"model"`
	Images    *[]string `json:"images"`
	Question  *string   `json:"question"`
	MaxTokens *int      `json:"max_tokens"`
	Stream    *bool     `json:"stream"`
}

var (
	captionsFields = fieldKinds{{"model", "a string"}, {"images", "an array of base64 PNGs"}, {"max_tokens", "an integer"}, {"stream", "true or false"}}
	answersFields  = fieldKinds{{"model", "a string"}, {"images", "an array of base64 PNGs"}, {"question", "a string"}, {"max_tokens", "an integer"}, {"stream", "true or false"}}
)

// CaptionTextEvent is the data of a streamed "text" event of a caption or
// an answer: the next text of image Index's, whole UTF-8 characters.
type CaptionTextEvent struct {
	Index int    `json:"index"`
	Text  string `json:"text"`
}

func (s *Server) handleCaptions(w http.ResponseWriter, r *http.Request) { s.imageText(w, r, false) }

func (s *Server) handleAnswers(w http.ResponseWriter, r *http.Request) { s.imageText(w, r, true) }

// imageText answers POST /v1/captions (image → text) and, with ask, POST
// /v1/answers (image and question → text).
func (s *Server) imageText(w http.ResponseWriter, r *http.Request, ask bool) {
	t0 := time.Now()
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST")
		return
	}
	fields, example := captionsFields, `{"images": ["iVBORw0KGgo…"]}`
	if ask {
		fields, example = answersFields, `{"images": ["iVBORw0KGgo…"], "question": "which digit is on the left?"}`
	}
	var wire wireImageText
	ferr := decodeBody(http.MaxBytesReader(w, r.Body, MaxImageBodyBytes), contentType(r), MaxImageBodyBytes, example, fields, &wire)
	var mm *mmModel
	var imgs [][]float32
	maxTokens := multimodal.DefaultOptions().MaxTokens
	question := ""
	if ferr == nil {
		ferr = intField("max_tokens", &maxTokens, wire.MaxTokens, 1, MaxTokens)
	}
	if ferr == nil && ask {
		question, ferr = textField("question", wire.Question, "the question to ask about every image")
	}
	if ferr == nil && !ask && wire.Question != nil {
		ferr = bad("question", "unknown field (known: %s); questions go to /v1/answers", fields.names())
	}
	if ferr == nil {
		name := ""
		setIf(&name, wire.Model)
		mm, ferr = s.multimodalFor(name, "images")
	}
	if ferr == nil {
		imgs, ferr = decodeImages(wire.Images, mm.size(), mm.channels())
	}
	ctx, done, ok := s.enter(w, r, ferr)
	if !ok {
		return
	}
	defer done()
	stream := false
	setIf(&stream, wire.Stream)
	// One sequence per image, its image encoded here, on the handler's
	// goroutine; they run in the unguided batch beside whatever decodes.
	o := mm.options(func(o *multimodal.Options) { o.MaxTokens = maxTokens })
	seqs := make([]*multimodal.AnswerSequence, len(imgs))
	task := &seqsTask{}
	q := newPieceQueue[CaptionTextEvent]()
	var err error
	mm.tok.Lock()
	for i, img := range imgs {
		if ask {
			seqs[i], err = mm.m.NewAskSequence(img, question, o)
		} else {
			seqs[i], err = mm.m.NewCaptionSequence(img, o)
		}
		if err != nil {
			break
		}
		if stream {
			seqs[i].OnText = func(t string) error {
				if err := ctx.Err(); err != nil {
					return err
				}
				q.push(CaptionTextEvent{Index: i, Text: t})
				return nil
			}
		}
		task.add(seqs[i], false, true)
	}
	mm.tok.Unlock()
	if err != nil {
		s.mmFailed(w, ctx, err, "question", false)
		return
	}
	// Streamed, each piece of text is a "text" event as soon as it is
	// made; the stream begins with the first.
	es := newEventStream(w)
	var wake chan struct{}
	var drain func() error
	if stream {
		wake = q.wake
		drain = func() error {
			for _, ev := range q.take() {
				if err := es.send("text", ev); err != nil {
					return err
				}
			}
			return nil
		}
	}
	start, err := s.runTask(ctx, mm, 0, len(seqs), task, wake, drain)
	if err != nil {
		s.failed(w, ctx, err, es.started)
		return
	}
	tm := TextTimings{QueueMS: ms(start.Sub(t0)), GenerateMS: ms(time.Since(start))}
	texts := make([]string, len(seqs))
	for i, q := range seqs {
		texts[i] = q.Text()
	}
	tm.TotalMS = ms(time.Since(t0))
	if s.cfg.Log != nil {
		if ask {
			s.cfg.Log.Printf("%s: answers about %d images to %q: %.0f ms", mm.name, len(imgs), question, tm.TotalMS)
		} else {
			s.cfg.Log.Printf("%s: captions of %d images: %.0f ms", mm.name, len(imgs), tm.TotalMS)
		}
	}
	var resp any = CaptionsResponse{Model: mm.name, Captions: texts, Timings: tm}
	if ask {
		for i, a := range texts {
			texts[i] = strings.TrimSpace(a)
		}
		resp = AnswersResponse{Model: mm.name, Question: question, Answers: texts, Timings: tm}
	}
	if stream {
		es.send("done", resp)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// CompletionsRequest is the body of POST /v1/completions.
type CompletionsRequest struct {
	Model       string  `json:"model"`
	Prompt      string  `json:"prompt"`
	MaxTokens   int     `json:"max_tokens"`
	Temperature float64 `json:"temperature"` // of text tokens; 0 takes the most likely
	TopP        float64 `json:"top_p"`
	Seed        int64   `json:"seed"`
	Steps       int     `json:"steps"` // of the images the model draws
	CFG         float64 `json:"cfg"`
	Stream      bool    `json:"stream"`
}

type wireCompletion struct {
	Model       *string  `json:"model"`
	Prompt      *string  `json:"prompt"`
	MaxTokens   *int     `json:"max_tokens"`
	Temperature *float64 `json:"temperature"`
	TopP        *float64 `json:"top_p"`
	Seed        *int64   `json:"seed"`
	Steps       *int     `json:"steps"`
	CFG         *float64 `json:"cfg"`
	Stream      *bool    `json:"stream"`
}

var completionFields = fieldKinds{{"model", "a string"}, {"prompt", "a string"}, {"max_tokens", "an integer"}, {"temperature", "a number"},
	{"top_p", "a number"}, {"seed", "an integer"}, {"steps", "an integer"}, {"cfg", "a number"}, {"stream", "true or false"}}

// CompletionPiece is one piece of a completion, in order: text, or the
// index of an image in CompletionResponse.Images.
type CompletionPiece struct {
	Text  *string `json:"text,omitempty"`
	Image *int    `json:"image,omitempty"`
}

// CompletionResponse is the answer of POST /v1/completions (and the data
// of the final "done" event of a streamed one).
type CompletionResponse struct {
	Model   string            `json:"model"`
	Seed    int64             `json:"seed"`
	Text    string            `json:"text"`   // all the text, without the images
	Images  []string          `json:"images"` // base64 PNGs of the images drawn, in order
	Pieces  []CompletionPiece `json:"pieces"` // text and images in order (consecutive text joined)
	Timings TextTimings       `json:"timings"`
}

// TextEvent is the data of a streamed "text" event.
type TextEvent struct {
	Text string `json:"text"`
}

// ImageEvent is the data of a streamed "image" event.
type ImageEvent struct {
	Index int    `json:"index"` // in CompletionResponse.Images
	Image string `json:"image"` // base64 PNG
}

// decodeCompletion reads and checks a CompletionsRequest.
func decodeCompletion(w http.ResponseWriter, r *http.Request) (CompletionsRequest, *FieldError) {
	d := multimodal.DefaultOptions()
	req := CompletionsRequest{MaxTokens: d.MaxTokens, Temperature: d.TextTemperature, TopP: d.TopP, Seed: DefaultSeed, Steps: DefaultSteps, CFG: DefaultCFG}
	var wire wireCompletion
	if ferr := decodeBody(http.MaxBytesReader(w, r.Body, MaxBodyBytes), contentType(r), MaxBodyBytes, `{"prompt": "the digit 3"}`, completionFields, &wire); ferr != nil {
		return req, ferr
	}
	setIf(&req.Model, wire.Model)
	var ferr *FieldError
	if req.Prompt, ferr = textField("prompt", wire.Prompt, "the text to continue"); ferr != nil {
		return req, ferr
	}
	if ferr := intField("max_tokens", &req.MaxTokens, wire.MaxTokens, 1, MaxTokens); ferr != nil {
		return req, ferr
	}
	setIf(&req.Temperature, wire.Temperature)
	if math.IsNaN(req.Temperature) || math.IsInf(req.Temperature, 0) || req.Temperature < 0 || req.Temperature > MaxTemperature {
		return req, bad("temperature", "%v out of range 0…%d (0 takes the most likely token)", req.Temperature, MaxTemperature)
	}
	setIf(&req.TopP, wire.TopP)
	if !(req.TopP > 0 && req.TopP <= 1) {
		return req, bad("top_p", "%v out of range: want > 0 and ≤ 1", req.TopP)
	}
	if ferr := samplingFields(&req.Steps, &req.CFG, &req.Seed, wire.Steps, wire.CFG, wire.Seed); ferr != nil {
		return req, ferr
	}
	setIf(&req.Stream, wire.Stream)
	return req, nil
}

// completionTask decodes a completion: the CompleteSequence in the
// unguided batch and, each time it opens one, its image (TakeImage), in
// the batch of the image's kind. The completion decodes the image inside
// the image's last Take, with the image tokenizer, which the handlers use
// too: the image's last latent takes mm.tok, and the completion's image
// piece (or, should decoding fail, the image's end) gives it back.
type completionTask struct {
	mm     *mmModel
	seq    *multimodal.CompleteSequence
	added  bool
	locked bool // mm.tok is held for the image being decoded
}

// unlock gives back mm.tok if the task holds it.
func (t *completionTask) unlock() {
	if t.locked {
		t.locked = false
		t.mm.tok.Unlock()
	}
}

func (t *completionTask) pending() []seqEntry {
	t.unlock()
	if !t.added {
		t.added = true
		return []seqEntry{{seq: t.seq}}
	}
	img := t.seq.TakeImage()
	if img == nil {
		return nil
	}
	last := t.mm.m.Format.Items - 1
	img.OnLatent = func(p multimodal.ImageProgress) error {
		if p.Index == last && !t.locked {
			t.mm.tok.Lock()
			t.locked = true
		}
		return nil
	}
	var out []seqEntry
	for _, seq := range img.Sequences() {
		out = append(out, seqEntry{seq: seq, guided: img.Guided()})
	}
	return out
}

func (t *completionTask) ended(seq lm.Sequence, err error) (bool, error) {
	t.unlock()
	return seq == lm.Sequence(t.seq) || err != nil, err
}

// rows is the most sequences a completion holds: itself and its image
// (a VQ-MLLM's, with its guidance stream).
func (mm *mmModel) completionRows() int {
	if mm.m.Arch == multimodal.VQ {
		return 3
	}
	return 2
}

// pieceQueue carries what a request's sequences make (a completion's
// pieces, the text of captions) from the batcher's goroutine, where their
// callbacks run, to its handler, which runTask wakes to write it.
type pieceQueue[T any] struct {
	mu     sync.Mutex
	pieces []T
	first  time.Time
	wake   chan struct{}
}

func newPieceQueue[T any]() *pieceQueue[T] { return &pieceQueue[T]{wake: make(chan struct{}, 1)} }

func (q *pieceQueue[T]) push(p T) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.first.IsZero() {
		q.first = time.Now()
	}
	q.pieces = append(q.pieces, p)
	signal(q.wake)
}

// take hands out the pieces queued.
func (q *pieceQueue[T]) take() []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	p := q.pieces
	q.pieces = nil
	return p
}

// handleCompletions answers POST /v1/completions: the model continues the
// prompt with text and, where it opens one, an image. Streamed, every piece
// is an event as soon as it is made; the stream begins with the first
// piece, so that a prompt the model refuses is still answered 400.
func (s *Server) handleCompletions(w http.ResponseWriter, r *http.Request) {
	t0 := time.Now()
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST")
		return
	}
	req, ferr := decodeCompletion(w, r)
	var mm *mmModel
	if ferr == nil {
		mm, ferr = s.multimodalFor(req.Model, "a prompt")
	}
	ctx, done, ok := s.enter(w, r, ferr)
	if !ok {
		return
	}
	defer done()
	req.Model = mm.name
	o := mm.options(func(o *multimodal.Options) {
		o.Steps, o.CFG, o.Temperature, o.Seed = req.Steps, req.CFG, mm.temperature(false, 0), req.Seed
		o.TextTemperature, o.TopP, o.MaxTokens = req.Temperature, req.TopP, req.MaxTokens
	})
	seq, err := mm.m.NewCompleteSequence(req.Prompt, o)
	if err != nil {
		s.mmFailed(w, ctx, err, "prompt", false)
		return
	}
	task := &completionTask{mm: mm, seq: seq}
	q := newPieceQueue[multimodal.Piece]()
	seq.OnPiece = func(p multimodal.Piece) error {
		if p.Image != nil {
			task.unlock() // decoded
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		q.push(p)
		if s.onPiece != nil {
			s.onPiece(ctx)
		}
		return nil
	}
	resp := CompletionResponse{Model: mm.name, Seed: req.Seed, Images: []string{}, Pieces: []CompletionPiece{}}
	var text strings.Builder
	var pieceText strings.Builder // the text piece being joined
	endText := func() {
		if pieceText.Len() > 0 {
			t := pieceText.String()
			resp.Pieces = append(resp.Pieces, CompletionPiece{Text: &t})
			pieceText.Reset()
		}
	}
	es := newEventStream(w)
	drain := func() error {
		for _, p := range q.take() {
			if p.Image == nil {
				text.WriteString(p.Text)
				pieceText.WriteString(p.Text)
				if req.Stream {
					if err := es.send("text", TextEvent{Text: p.Text}); err != nil {
						return err
					}
				}
				continue
			}
			endText()
			enc, err := encodePictures([][]float32{p.Image}, mm.size(), mm.channels())
			if err != nil {
				return err
			}
			i := len(resp.Images)
			resp.Images = append(resp.Images, enc[0])
			resp.Pieces = append(resp.Pieces, CompletionPiece{Image: &i})
			s.metrics.images.Add(mm.name, 1)
			if req.Stream {
				if err := es.send("image", ImageEvent{Index: i, Image: enc[0]}); err != nil {
					return err
				}
			}
		}
		return nil
	}
	start, err := s.runTask(ctx, mm, req.Steps, mm.completionRows(), task, q.wake, drain)
	if err != nil {
		s.mmFailed(w, ctx, err, "prompt", es.started)
		return
	}
	tm := TextTimings{QueueMS: ms(start.Sub(t0)), GenerateMS: ms(time.Since(start))}
	q.mu.Lock()
	if !q.first.IsZero() {
		tm.FirstPieceMS = ms(q.first.Sub(start))
	}
	q.mu.Unlock()
	endText()
	resp.Text = text.String()
	tm.TotalMS = ms(time.Since(t0))
	resp.Timings = tm
	if s.cfg.Log != nil {
		s.cfg.Log.Printf("%s: completion of %q, %d bytes of text and %d images, seed %d, stream %v: %.0f ms", mm.name, req.Prompt, len(resp.Text), len(resp.Images), req.Seed, req.Stream, tm.TotalMS)
	}
	if req.Stream {
		es.send("done", resp)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// contentType is the request's Content-Type, "none" when it has none.
func contentType(r *http.Request) string {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		return ct
	}
	return "none"
}

// encodePictures encodes images of size×size×channels values in [0, 1]
// (clamped, NaN as 0, as imageio.Picture does) as base64 8-bit PNGs, gray
// or RGB.
func encodePictures(imgs [][]float32, size, channels int) ([]string, error) {
	out := make([]string, len(imgs))
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	for i, px := range imgs {
		m, err := imageio.Picture(px, size, size, channels)
		if err != nil {
			return nil, fmt.Errorf("image %d: %w", i, err)
		}
		buf.Reset()
		if err := enc.Encode(&buf, m); err != nil {
			return nil, fmt.Errorf("encoding PNG: %w", err)
		}
		out[i] = base64.StdEncoding.EncodeToString(buf.Bytes())
	}
	return out, nil
}

// decodeImages decodes the field images: 1…MaxImages base64 PNGs (a
// data: URL prefix allowed) of size×size opaque pixels, the rules of
// imageio.DecodeGray (channels 1) or imageio.DecodeRGB (channels 3).
func decodeImages(b64 *[]string, size, channels int) ([][]float32, *FieldError) {
	switch {
	case b64 == nil:
		return nil, bad("images", "required: an array of base64 PNGs of %d×%d pixels", size, size)
	case len(*b64) == 0:
		return nil, bad("images", "empty: give 1…%d base64 PNGs", MaxImages)
	case len(*b64) > MaxImages:
		return nil, bad("images", "%d images, at most %d a request", len(*b64), MaxImages)
	}
	out := make([][]float32, len(*b64))
	for i, s := range *b64 {
		px, err := decodePicture(s, size, channels)
		if err != nil {
			return nil, bad("images", "images[%d]: %v", i, err)
		}
		out[i] = px
	}
	return out, nil
}

// decodePicture decodes one image of the field images: base64 (a data:
// URL prefix allowed) of a PNG that imageio.DecodeGray (channels 1) or
// imageio.DecodeRGB (channels 3) takes.
func decodePicture(s string, size, channels int) ([]float32, error) {
	if rest, ok := strings.CutPrefix(s, "data:"); ok {
		mt, data, ok := strings.Cut(rest, ",")
		if !ok || !strings.HasSuffix(mt, ";base64") {
			return nil, errors.New("a data: URL that is not base64")
		}
		s = data
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not base64 (%v)", err)
	}
	decode := imageio.DecodeGray
	if channels == 3 {
		decode = imageio.DecodeRGB
	}
	px, err := decode(raw, size, size)
	var se *imageio.SizeError
	if errors.As(err, &se) {
		return nil, fmt.Errorf("%d×%d pixels, want %d×%d", se.Width, se.Height, size, size)
	}
	return px, err
}
