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
	"strings"
	"time"

	"github.com/latentlm/latentlm/backend"
	"github.com/latentlm/latentlm/imageio"
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
	return Model{Name: filepath.Base(filepath.Clean(dir)), Multimodal: m, Backend: name}, nil
}

// mmModel is a served multimodal model. Its one engine runs one request at
// a time: a request holds lock (a mutex whose wait a gone client can
// abandon) from setting its options to its last piece.
type mmModel struct {
	name, backend string
	m             *multimodal.Model
	lock          chan struct{}
}

func newMMModel(m Model) *mmModel {
	return &mmModel{name: m.Name, backend: m.Backend, m: m.Multimodal, lock: make(chan struct{}, 1)}
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

// optionSetter is multimodal.Model's SetOptions where that package has it:
// it applies a request's options for the calls that follow and restarts
// the model's random streams from the request's seed.
type optionSetter interface {
	SetOptions(multimodal.Options) error
}

// option is one option of a request: its field, and its value as the
// request wants it and as the model holds it.
type option struct {
	field      string
	want, have any
}

// configure gives the model the options o of a request; fields names the
// request's fields of the options it sets (steps, cfg, temperature, seed,
// text_temperature, top_p, max_tokens). A model without SetOptions keeps
// the options it was loaded with, and a request asking for others is
// refused.
func (mm *mmModel) configure(o multimodal.Options, fields map[string]string) (*FieldError, error) {
	if set, ok := any(mm.m).(optionSetter); ok {
		return nil, set.SetOptions(o)
	}
	h := mm.m.Options()
	for _, op := range []option{{"steps", o.Steps, h.Steps}, {"cfg", o.CFG, h.CFG}, {"temperature", o.Temperature, h.Temperature},
		{"seed", o.Seed, h.Seed}, {"text_temperature", o.TextTemperature, h.TextTemperature}, {"top_p", o.TopP, h.TopP},
		{"max_tokens", o.MaxTokens, h.MaxTokens}} {
		if op.want != op.have {
			f := fields[op.field]
			if f == "" {
				f = "body"
			}
			return bad(f, "%v: this build's multimodal model keeps the options it was loaded with (%s %v); leave %s out", op.want, f, op.have, f), nil
		}
	}
	return nil, nil
}

// acquire takes a place in slots (the slots of the class-conditional
// models, or a multimodal model's lock), in turn with the other requests,
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

// take waits for mm (as acquire) and gives it a request's options: set
// changes the model's current ones, fields names the request's fields of
// them (as configure). Where either fails it answers the request and
// returns false; else the caller holds the model until s.release(mm.lock).
// queueMS is the time from t0, the request's arrival, to the model.
func (s *Server) take(w http.ResponseWriter, ctx context.Context, mm *mmModel, t0 time.Time, fields map[string]string, set func(*multimodal.Options)) (queueMS float64, ok bool) {
	if err := s.acquire(ctx, mm.lock); err != nil {
		s.failed(w, ctx, err, false)
		return 0, false
	}
	queueMS = ms(time.Since(t0))
	o := mm.m.Options()
	set(&o)
	ferr, err := mm.configure(o, fields)
	switch {
	case ferr != nil:
		writeFieldError(w, ferr)
	case err != nil:
		s.failed(w, ctx, err, false)
	default:
		return queueMS, true
	}
	s.release(mm.lock)
	return 0, false
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

// imageOptionFields name the options of a text → image request.
var imageOptionFields = map[string]string{"steps": "steps", "cfg": "cfg", "temperature": "temperature", "seed": "seed"}

// promptImages draws req.N images of req.Prompt with the multimodal model
// (text → image). A streamed request gets one "done" event: the model
// reports no progress while it draws.
func (s *Server) promptImages(w http.ResponseWriter, ctx context.Context, req ImagesRequest, t0 time.Time) {
	mm := s.multimodal[req.Model]
	queueMS, ok := s.take(w, ctx, mm, t0, imageOptionFields, func(o *multimodal.Options) {
		o.Steps, o.CFG, o.Temperature, o.Seed = req.Steps, req.CFG, req.Temperature, req.Seed
	})
	if !ok {
		return
	}
	defer s.release(mm.lock)
	tm := Timings{QueueMS: queueMS}
	tg := time.Now()
	captions := make([]string, req.N)
	for i := range captions {
		captions[i] = req.Prompt
	}
	px, err := mm.m.ImagesFor(ctx, captions)
	if err != nil {
		s.mmFailed(w, ctx, err, "prompt", false)
		return
	}
	tm.GenerateMS = ms(time.Since(tg))
	s.metrics.images.Add(mm.name, int64(len(px)))
	te := time.Now()
	enc, err := encodePictures(px, mm.size(), mm.channels())
	if err != nil {
		s.failed(w, ctx, err, false)
		return
	}
	tm.EncodeMS = ms(time.Since(te))
	tm.TotalMS = ms(time.Since(t0))
	resp := PromptImagesResponse{Model: mm.name, Prompt: req.Prompt, Seed: req.Seed, Images: enc, Timings: tm}
	if s.cfg.Log != nil {
		s.cfg.Log.Printf("%s: %d images of %q, %d steps, cfg %g, seed %d, stream %v: %.0f ms", mm.name, req.N, req.Prompt, req.Steps, req.CFG, req.Seed, req.Stream, tm.TotalMS)
	}
	if req.Stream {
		startStream(w)
	}
	sendDone(w, req.Stream, resp)
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
}

var (
	captionsFields = fieldKinds{{"model", "a string"}, {"images", "an array of base64 PNGs"}, {"max_tokens", "an integer"}}
	answersFields  = fieldKinds{{"model", "a string"}, {"images", "an array of base64 PNGs"}, {"question", "a string"}, {"max_tokens", "an integer"}}
)

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
	queueMS, ok := s.take(w, ctx, mm, t0, map[string]string{"max_tokens": "max_tokens"}, func(o *multimodal.Options) { o.MaxTokens = maxTokens })
	if !ok {
		return
	}
	defer s.release(mm.lock)
	tm := TextTimings{QueueMS: queueMS}
	tg := time.Now()
	var texts []string
	var err error
	if ask {
		texts, err = mm.m.Ask(ctx, imgs, question)
	} else {
		texts, err = mm.m.Caption(ctx, imgs)
	}
	if err != nil {
		s.mmFailed(w, ctx, err, "question", false)
		return
	}
	tm.GenerateMS = ms(time.Since(tg))
	tm.TotalMS = ms(time.Since(t0))
	if s.cfg.Log != nil {
		if ask {
			s.cfg.Log.Printf("%s: answers about %d images to %q: %.0f ms", mm.name, len(imgs), question, tm.TotalMS)
		} else {
			s.cfg.Log.Printf("%s: captions of %d images: %.0f ms", mm.name, len(imgs), tm.TotalMS)
		}
	}
	if ask {
		for i, a := range texts {
			texts[i] = strings.TrimSpace(a)
		}
		writeJSON(w, http.StatusOK, AnswersResponse{Model: mm.name, Question: question, Answers: texts, Timings: tm})
		return
	}
	writeJSON(w, http.StatusOK, CaptionsResponse{Model: mm.name, Captions: texts, Timings: tm})
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
	if ferr := intField("seed", &req.Seed, wire.Seed, 0, MaxSeed); ferr != nil {
		return req, ferr
	}
	if ferr := intField("steps", &req.Steps, wire.Steps, 1, MaxSteps); ferr != nil {
		return req, ferr
	}
	if ferr := cfgField(&req.CFG, wire.CFG); ferr != nil {
		return req, ferr
	}
	setIf(&req.Stream, wire.Stream)
	return req, nil
}

// completionOptionFields name the options of a completion.
var completionOptionFields = map[string]string{"steps": "steps", "cfg": "cfg", "seed": "seed",
	"text_temperature": "temperature", "top_p": "top_p", "max_tokens": "max_tokens"}

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
	queueMS, ok := s.take(w, ctx, mm, t0, completionOptionFields, func(o *multimodal.Options) {
		o.Steps, o.CFG, o.Temperature, o.Seed = req.Steps, req.CFG, DefaultTemperature, req.Seed
		o.TextTemperature, o.TopP, o.MaxTokens = req.Temperature, req.TopP, req.MaxTokens
	})
	if !ok {
		return
	}
	defer s.release(mm.lock)
	tm := TextTimings{QueueMS: queueMS}
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
	rc := http.NewResponseController(w)
	started := false
	send := func(event string, v any) error {
		if !started {
			startStream(w)
			started = true
		}
		if err := writeEvent(w, event, v); err != nil {
			return err
		}
		return rc.Flush()
	}
	tg := time.Now()
	err := mm.m.Complete(ctx, req.Prompt, func(p multimodal.Piece) error {
		if s.onPiece != nil {
			defer s.onPiece(ctx)
		}
		if tm.FirstPieceMS == 0 {
			tm.FirstPieceMS = ms(time.Since(tg))
		}
		if p.Image == nil {
			text.WriteString(p.Text)
			pieceText.WriteString(p.Text)
			if req.Stream {
				return send("text", TextEvent{Text: p.Text})
			}
			return nil
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
			return send("image", ImageEvent{Index: i, Image: enc[0]})
		}
		return nil
	})
	if err != nil {
		s.mmFailed(w, ctx, err, "prompt", started)
		return
	}
	endText()
	resp.Text = text.String()
	tm.GenerateMS = ms(time.Since(tg))
	tm.TotalMS = ms(time.Since(t0))
	resp.Timings = tm
	if s.cfg.Log != nil {
		s.cfg.Log.Printf("%s: completion of %q, %d bytes of text and %d images, seed %d, stream %v: %.0f ms", mm.name, req.Prompt, len(resp.Text), len(resp.Images), req.Seed, req.Stream, tm.TotalMS)
	}
	if req.Stream {
		send("done", resp)
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
