// Package server is the HTTP API of `latentlm serve`: JSON endpoints that
// generate images with loaded LatentLM (or DiT) models, optionally
// streaming every latent as Server-Sent Events, Prometheus metrics, and a
// web page that watches generation as it happens. A multimodal model
// (package multimodal) adds text → image, captions, answers about images
// and completions, one request at a time; a text-to-speech model (package
// tts) speaks text in a named voice or the voice of a prompt, streaming the
// audio in chunks. docs/API.md describes the endpoints.
//
// Only the standard library's net/http is used. Requests pass a bounded
// queue: at most Config.Concurrency generate at once, Config.Queue more
// wait, and the rest are answered 429 with Retry-After.
// With Config.BatchRows, the requests of a model are decoded together:
// those of a LatentLM model join a running decode at the next latent
// (continuous batching), those of a DiT model batch by batch (see
// Config.BatchRows).
package server

import (
	"bytes"
	"context"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io/fs"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/latentlm/latentlm"
	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/multimodal"
	"github.com/latentlm/latentlm/tts"
)

// Limits of one request.
const (
	MaxImages    = 64       // n
	MaxSteps     = 250      // steps
	MaxCFG       = 100      // cfg
	MaxBodyBytes = 64 << 10 // request body
	// MaxSeed is the largest seed: 2^53−1, the largest integer a
	// JavaScript number holds exactly.
	MaxSeed = 1<<53 - 1
	// MaxTemperature bounds temperature (which must be > 0).
	MaxTemperature = 100
)

// Defaults of a request, those of `latentlm sample`.
const (
	DefaultN           = 1
	DefaultSteps       = 20
	DefaultCFG         = 4.0
	DefaultSeed        = 1
	DefaultTemperature = 1.0
)

// Config tunes a Server; the zero value takes the defaults.
type Config struct {
	// Concurrency is how many requests generate at once (default 1; a
	// model's generations run one at a time whatever this says).
	Concurrency int
	// Queue is how many more requests may wait for a slot (default 8);
	// beyond them the server answers 429. Negative means none.
	Queue int
	// Timeout bounds one request's generation, queueing included
	// (default 5 minutes).
	Timeout time.Duration
	// Log receives one line per request; nil logs nothing.
	Log *log.Logger
	// BatchRows, when > 0, decodes the requests of a model together, up
	// to BatchRows images at once (at most latentlm.MaxBatch). A LatentLM
	// model's requests join a running decode at the next latent boundary
	// and leave when their images are done (latentlm.Decoder: continuous
	// batching), in arrival order, while their images fit and their steps
	// are the decode's; guidance scale, temperature and seed are each
	// request's own. A DiT model's requests are batched at batch
	// boundaries: the oldest waiting request and every other waiting one
	// of the same steps form one batch (latentlm.Generator.GenerateBatch).
	// Each image's noise comes from its request's seed and its index in
	// the request, so a request gets the same images alone or batched, and
	// whenever it joins — not Generate's for that seed. Concurrency does
	// not apply to batched models; Concurrency+Queue still bounds the
	// requests admitted. 0 runs each request on its own through Generate,
	// Concurrency at a time.
	BatchRows int
	// BatchSettle is how long, at most, a DiT model's worker waits after a
	// batch of several requests before taking the next, so that the
	// clients just answered can join it: it stops waiting as soon as as
	// many images wait as the batch held (default 50 ms; negative: no
	// wait). It never waits after a batch of one request. A LatentLM
	// model needs no such wait: a request arriving a moment late joins at
	// the next latent.
	BatchSettle time.Duration
}

// Model is a loaded model served under Name: a class-conditional generator
// (Gen), a multimodal model (Multimodal) or a text-to-speech model
// (Speech), exactly one of the three.
type Model struct {
	Name string
	Gen  *latentlm.Generator
	// Multimodal reads and writes text and images. The server decodes its
	// requests continuously, each a sequence of one running decode.
	Multimodal *multimodal.Model
	// Speech speaks text (POST /v1/speech); it needs its speech tokenizer.
	// The server decodes its requests continuously, each an utterance
	// (tts.Sequence) of one running decode with its own options; it never
	// calls SetOptions.
	Speech *tts.Model
	// Voices are the named voices Speech offers (LoadVoices); without
	// them requests send their own prompt_wav.
	Voices []Voice
	// Backend names the compute backend of Multimodal or Speech for GET
	// /v1/models (a Gen reports its own).
	Backend string
}

// Server serves the API over a fixed set of models. Create it with New;
// it is an http.Handler.
type Server struct {
	cfg    Config
	models map[string]*latentlm.Generator
	names  []string // of the class-conditional models, sorted
	// multimodal holds the multimodal models, mmNames their sorted names.
	multimodal map[string]*mmModel
	mmNames    []string
	// speech holds the text-to-speech models, speechNames their sorted
	// names.
	speech      map[string]*speechModel
	speechNames []string
	mux         *http.ServeMux
	slots       chan struct{}
	// admitted counts the requests holding or waiting for a slot.
	admitted atomic.Int64
	waiting  atomic.Int64
	running  atomic.Int64
	metrics  *metrics
	// batchers decode each batched model's requests (Config.BatchRows).
	batchers map[string]*batcher
	// seqBatchers decode each multimodal and text-to-speech model's
	// requests (Config.BatchRows), as sequences of one continuous decode.
	seqBatchers map[string]*seqBatcher
	closeOnce   sync.Once
	// beforeGenerate, when set (by tests), runs once a request holds its
	// slot (batched, once requests join a decode).
	beforeGenerate func()
	// beforeStep, when set (by tests), runs before every step of a
	// continuous decode, on the model's worker.
	beforeStep func()
	// onPiece, when set (by tests), runs after every piece of a
	// completion, with the request's context.
	onPiece func(context.Context)
	// onFrame, when set (by tests), runs after every speech frame, with
	// the request's context.
	onFrame func(context.Context)
}

//go:embed web
var webFS embed.FS

// New serves models (at least one, names unique and non-empty) with cfg.
// The models stay the caller's to close; the server closes none, and uses a
// multimodal or text-to-speech model only from the requests it answers.
func New(models []Model, cfg Config) (*Server, error) {
	if len(models) == 0 {
		return nil, errors.New("server: no models to serve")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 1
	}
	if cfg.Queue == 0 {
		cfg.Queue = 8
	}
	if cfg.Queue < 0 {
		cfg.Queue = 0
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Minute
	}
	s := &Server{cfg: cfg, models: map[string]*latentlm.Generator{}, multimodal: map[string]*mmModel{}, speech: map[string]*speechModel{},
		slots: make(chan struct{}, cfg.Concurrency), metrics: newMetrics()}
	for _, m := range models {
		kinds := 0
		for _, set := range []bool{m.Gen != nil, m.Multimodal != nil, m.Speech != nil} {
			if set {
				kinds++
			}
		}
		if m.Name == "" || kinds != 1 {
			return nil, fmt.Errorf("server: model %q: want a name and one of a generator, a multimodal model or a text-to-speech model", m.Name)
		}
		if s.models[m.Name] != nil || s.multimodal[m.Name] != nil || s.speech[m.Name] != nil {
			return nil, fmt.Errorf("server: two models named %q", m.Name)
		}
		if m.Speech != nil {
			sm, err := newSpeechModel(m)
			if err != nil {
				return nil, err
			}
			s.speech[m.Name] = sm
			s.speechNames = append(s.speechNames, m.Name)
			continue
		}
		if m.Multimodal != nil {
			s.multimodal[m.Name] = newMMModel(m)
			s.mmNames = append(s.mmNames, m.Name)
			continue
		}
		s.models[m.Name] = m.Gen
		s.names = append(s.names, m.Name)
	}
	if cfg.BatchRows > latentlm.MaxBatch {
		cfg.BatchRows = latentlm.MaxBatch
		s.cfg.BatchRows = cfg.BatchRows
	}
	if cfg.BatchRows > 0 {
		settle := cfg.BatchSettle
		if settle == 0 {
			settle = 50 * time.Millisecond
		}
		s.batchers = map[string]*batcher{}
		for _, m := range models {
			if m.Gen != nil && m.Gen.SupportsBatch() {
				s.batchers[m.Name] = newBatcher(s, m.Name, m.Gen, cfg.BatchRows, settle)
			}
		}
	}
	// Multimodal and text-to-speech requests always run through their
	// model's sequence batcher, one at a time where batching is off. The
	// batcher admits requests by their sequences (seqRows); the batches
	// themselves take any number (a request larger than seqRows runs
	// alone), as their size costs nothing until sequences fill it.
	seqRows := max(cfg.BatchRows, 1)
	s.seqBatchers = map[string]*seqBatcher{}
	for name, mm := range s.multimodal {
		s.seqBatchers[name] = newSeqBatcher(s, name, seqRows, func(steps int, guided bool) (*lm.Batch, error) {
			return mm.m.NewBatch(steps, latentlm.MaxBatch, guided)
		})
	}
	for name, sm := range s.speech {
		s.seqBatchers[name] = newSeqBatcher(s, name, seqRows, func(steps int, guided bool) (*lm.Batch, error) {
			return sm.m.NewBatch(steps, latentlm.MaxBatch, guided)
		})
	}
	sort.Strings(s.names)
	sort.Strings(s.mmNames)
	sort.Strings(s.speechNames)
	web, err := fs.Sub(webFS, "web")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/images", s.instrument("/v1/images", s.handleImages))
	if len(s.mmNames) > 0 {
		mux.HandleFunc("/v1/captions", s.instrument("/v1/captions", s.handleCaptions))
		mux.HandleFunc("/v1/answers", s.instrument("/v1/answers", s.handleAnswers))
		mux.HandleFunc("/v1/completions", s.instrument("/v1/completions", s.handleCompletions))
	}
	if len(s.speechNames) > 0 {
		mux.HandleFunc("/v1/speech", s.instrument("/v1/speech", s.handleSpeech))
	}
	mux.HandleFunc("/v1/models", s.instrument("/v1/models", s.handleModels))
	mux.HandleFunc("/healthz", s.instrument("/healthz", s.handleHealth))
	mux.HandleFunc("/metrics", s.instrument("/metrics", s.handleMetrics))
	files := http.FileServerFS(web)
	mux.HandleFunc("/", s.instrument("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" && r.URL.Path != "/index.html" && r.URL.Path != "/app.js" && r.URL.Path != "/style.css" {
			writeError(w, http.StatusNotFound, "path", "no such endpoint: "+r.URL.Path+" (see docs/API.md)")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			methodNotAllowed(w, "GET, HEAD")
			return
		}
		// media-src blob: lets the page play back and offer the speech it
		// assembled from streamed chunks.
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; media-src 'self' blob:")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	}))
	s.mux = mux
	return s, nil
}

// Close stops the batch workers: requests still waiting fail, and so do
// those in a running decode (at its next step; a DiT batch in progress
// finishes). It waits for the workers of multimodal and text-to-speech
// models to close their batches, so that the models can be closed after
// it; it does not close the models. Call it once the HTTP server has
// stopped; it is safe to call more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		for _, b := range s.batchers {
			close(b.stop)
		}
		for _, b := range s.seqBatchers {
			b.close()
		}
	})
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// NoModelsError is LoadModels' error for a folder that holds no LatentLM or
// DiT checkpoint, so that a caller serving other models (multimodal,
// text-to-speech) can tell it from a checkpoint that failed to load.
type NoModelsError struct{ Dir string }

func (e *NoModelsError) Error() string {
	return fmt.Sprintf("server: %s holds no LatentLM or DiT checkpoint (a folder with a config.json of kind latentlm or dit)", e.Dir)
}

// LoadModels loads every LatentLM or DiT checkpoint in dir: dir itself if
// it is one, else each subfolder whose config.json is of kind latentlm or
// dit, named after the folder (other kinds — tokenizers, classifiers — are
// skipped; LoadSpeechModels loads the text-to-speech ones). opts go to
// latentlm.Load. On error nothing stays loaded; a folder without one is a
// *NoModelsError.
func LoadModels(dir string, opts ...latentlm.Option) ([]Model, error) {
	dirs, err := checkpointDirs(dir, latentlm.KindLatentLM, latentlm.KindDiT)
	if err != nil {
		return nil, err
	}
	if len(dirs) == 0 {
		return nil, &NoModelsError{Dir: dir}
	}
	var models []Model
	for _, d := range dirs {
		g, err := latentlm.Load(d, opts...)
		if err != nil {
			for _, m := range models {
				m.Gen.Close()
			}
			return nil, fmt.Errorf("server: loading %s: %w", d, err)
		}
		models = append(models, Model{Name: filepath.Base(filepath.Clean(d)), Gen: g})
	}
	return models, nil
}

// checkpointDirs lists the checkpoints of the given kinds in dir: dir
// itself if it is one, else each subfolder whose config.json is of one of
// them, in name order. Other kinds (tokenizers, classifiers) are skipped.
func checkpointDirs(dir string, kinds ...string) ([]string, error) {
	isKind := func(d string) bool {
		kind, err := checkpoint.ReadKind(d)
		return err == nil && slices.Contains(kinds, kind)
	}
	if isKind(dir) {
		return []string{dir}, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("server: models folder: %w", err)
	}
	var dirs []string
	for _, e := range entries {
		if d := filepath.Join(dir, e.Name()); e.IsDir() && isKind(d) {
			dirs = append(dirs, d)
		}
	}
	return dirs, nil
}

// ModelInfo describes a served model in GET /v1/models.
type ModelInfo struct {
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	Classes   int    `json:"classes"`
	ImageSize int    `json:"image_size"`
	// ImageChannels is 3 for a colour model's RGB images, absent for gray.
	ImageChannels int    `json:"image_channels,omitempty"`
	Params        int    `json:"params"`
	Backend       string `json:"backend"`
	// MaxLen is a multimodal model's context in items (text tokens and
	// image latents): prompt and answer must fit in it.
	MaxLen int `json:"max_len,omitempty"`
	// Endpoints are those a multimodal or text-to-speech model answers.
	Endpoints []string `json:"endpoints,omitempty"`
	// Rate is a text-to-speech model's samples per second, FrameRate its
	// latent frames per second.
	Rate      int     `json:"rate,omitempty"`
	FrameRate float64 `json:"frame_rate,omitempty"`
	// Voices are the named voices of a text-to-speech model (requests may
	// send their own prompt_wav instead).
	Voices []string `json:"voices,omitempty"`
	// Reading is how a text-to-speech model reads its text: "characters"
	// or "phonemes" (each word spelt by the server's pronouncing
	// dictionary, so any words of letters will do).
	Reading string `json:"reading,omitempty"`
	// Set is the text set a text-to-speech model was trained on, as its
	// checkpoint records it: "numbers", "sentences" or "both" (empty when
	// it records none). A speech request that names no model goes to the
	// one trained for its text.
	Set string `json:"set,omitempty"`
	// Alphabet is the units a text-to-speech model reads: for characters,
	// the characters after upper case is folded to lower case (numbers are
	// spelt out); for phonemes, one rune per phoneme.
	Alphabet string `json:"alphabet,omitempty"`
}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	out := struct {
		Models   []ModelInfo `json:"models"`
		Defaults Defaults    `json:"defaults"`
		Limits   Limits      `json:"limits"`
	}{Defaults: Defaults{N: DefaultN, Steps: DefaultSteps, CFG: DefaultCFG, Seed: DefaultSeed, Temperature: DefaultTemperature},
		Limits: Limits{N: MaxImages, Steps: MaxSteps, CFG: MaxCFG, Seed: MaxSeed, Temperature: MaxTemperature, BodyBytes: MaxBodyBytes}}
	for _, n := range s.names {
		g := s.models[n]
		out.Models = append(out.Models, ModelInfo{Name: n, Kind: g.Kind(), Classes: g.Classes(), ImageSize: g.ImageSize(), Params: g.Params(), Backend: g.Backend()})
	}
	for _, n := range s.mmNames {
		out.Models = append(out.Models, s.multimodal[n].info())
	}
	for _, n := range s.speechNames {
		out.Models = append(out.Models, s.speech[n].info())
	}
	sort.Slice(out.Models, func(i, j int) bool { return out.Models[i].Name < out.Models[j].Name })
	if len(s.mmNames) > 0 {
		d := multimodal.DefaultOptions()
		out.Defaults.Completion = &CompletionDefaults{MaxTokens: d.MaxTokens, Temperature: d.TextTemperature, TopP: d.TopP}
		out.Limits.MaxTokens, out.Limits.Images, out.Limits.ImageBodyBytes = MaxTokens, MaxImages, MaxImageBodyBytes
	}
	if len(s.speechNames) > 0 {
		out.Defaults.Speech = speechDefaults()
		out.Limits.SpeechText, out.Limits.SpeechSeconds, out.Limits.SpeechBodyBytes = MaxSpeechText, MaxSpeechSeconds, MaxSpeechBodyBytes
		out.Limits.PromptSeconds = &[2]float64{MinPromptSeconds, MaxPromptSeconds}
	}
	writeJSON(w, http.StatusOK, out)
}

// Defaults are the values of the fields a request leaves out.
type Defaults struct {
	N           int     `json:"n"`
	Steps       int     `json:"steps"`
	CFG         float64 `json:"cfg"`
	Seed        int64   `json:"seed"`
	Temperature float64 `json:"temperature"`
	// Completion holds the text defaults of the multimodal endpoints
	// (only when the server holds a multimodal model).
	Completion *CompletionDefaults `json:"completion,omitempty"`
	// Speech holds those of POST /v1/speech (only when the server holds a
	// text-to-speech model).
	Speech *SpeechDefaults `json:"speech,omitempty"`
}

// CompletionDefaults are the defaults of POST /v1/completions that
// Defaults lacks (captions and answers take max_tokens).
type CompletionDefaults struct {
	MaxTokens   int     `json:"max_tokens"`
	Temperature float64 `json:"temperature"` // of text tokens
	TopP        float64 `json:"top_p"`
}

// Limits are the largest values a request may ask for.
type Limits struct {
	N           int     `json:"n"`
	Steps       int     `json:"steps"`
	CFG         float64 `json:"cfg"`
	Seed        int64   `json:"seed"`
	Temperature float64 `json:"temperature"`
	BodyBytes   int     `json:"body_bytes"`
	// The limits of the multimodal endpoints (only when the server holds
	// a multimodal model): text tokens an answer, images a request and the
	// body of a request with images.
	MaxTokens      int `json:"max_tokens,omitempty"`
	Images         int `json:"images,omitempty"`
	ImageBodyBytes int `json:"image_body_bytes,omitempty"`
	// The limits of POST /v1/speech (only when the server holds a
	// text-to-speech model): characters of text, max_seconds, the body,
	// and the shortest and longest prompt_wav in seconds.
	SpeechText      int         `json:"speech_text,omitempty"`
	SpeechSeconds   float64     `json:"speech_seconds,omitempty"`
	SpeechBodyBytes int         `json:"speech_body_bytes,omitempty"`
	PromptSeconds   *[2]float64 `json:"prompt_seconds,omitempty"`
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "models": len(s.names) + len(s.mmNames) + len(s.speechNames),
		"running": s.running.Load(), "waiting": s.waiting.Load()})
}

// Timings are the phases of one request, in milliseconds.
type Timings struct {
	QueueMS       float64 `json:"queue_ms"`        // waiting for a slot
	FirstLatentMS float64 `json:"first_latent_ms"` // from the start of generation to the first latent (streamed requests)
	GenerateMS    float64 `json:"generate_ms"`     // generation, decoding included
	EncodeMS      float64 `json:"encode_ms"`       // PNG encoding of the final images
	TotalMS       float64 `json:"total_ms"`        // from arrival to the answer
}

// ImagesResponse is the answer of POST /v1/images (and the data of the
// final "done" event of a streamed one).
type ImagesResponse struct {
	Model   string   `json:"model"`
	Class   int      `json:"class"`
	Seed    int64    `json:"seed"`
	Images  []string `json:"images"` // base64 PNGs
	Timings Timings  `json:"timings"`
}

// LatentEvent is the data of a streamed "latent" event: the latent just
// drawn and the partial images of the batch it belongs to.
type LatentEvent struct {
	Index   int      `json:"index"`
	Row     int      `json:"row"`
	Col     int      `json:"col"`
	Latents int      `json:"latents"`
	Grid    int      `json:"grid"`
	Offset  int      `json:"offset"` // index of the first image of Images in the request
	Images  []string `json:"images"` // base64 PNGs
}

func (s *Server) handleImages(w http.ResponseWriter, r *http.Request) {
	t0 := time.Now()
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST")
		return
	}
	req, ferr := decodeRequest(http.MaxBytesReader(w, r.Body, MaxBodyBytes), contentType(r))
	if ferr == nil {
		ferr = s.check(&req)
	}
	// A refusal, or the queue: a slot, a place among the waiting, or 429.
	ctx, done, ok := s.enter(w, r, ferr)
	if !ok {
		return
	}
	defer done()
	if req.Prompt != "" {
		s.promptImages(w, ctx, req, t0)
		return
	}
	if b := s.batchers[req.Model]; b != nil {
		var tm Timings
		imgs, streaming, err := s.generateBatched(ctx, w, b, req, &tm, t0)
		if err != nil {
			s.failed(w, ctx, err, streaming)
			return
		}
		s.answer(w, ctx, req, imgs, tm, t0)
		return
	}
	if err := s.acquire(ctx, s.slots); err != nil {
		s.failed(w, ctx, err, false)
		return
	}
	defer s.release(s.slots)
	tm := Timings{QueueMS: ms(time.Since(t0))}
	g := s.models[req.Model]
	lreq := latentlm.Request{Class: req.Class, N: req.N}
	opts := latentlm.SampleOptions{Steps: req.Steps, CFG: req.CFG, Temperature: req.Temperature, Seed: req.Seed}
	tg := time.Now()
	var imgs []latentlm.Image
	var err error
	if !req.Stream {
		imgs, err = g.Generate(ctx, lreq, opts)
		if err != nil {
			s.failed(w, ctx, err, false)
			return
		}
	} else {
		rc := http.NewResponseController(w)
		startStream(w)
		if err := rc.Flush(); err != nil {
			return
		}
		imgs, err = g.GenerateStream(ctx, lreq, opts, func(p latentlm.Progress) error {
			if p.Offset == 0 && p.Index == 0 {
				tm.FirstLatentMS = ms(time.Since(tg))
			}
			return s.sendLatent(w, rc, p)
		})
		if err != nil {
			s.failed(w, ctx, err, true)
			return
		}
	}
	tm.GenerateMS = ms(time.Since(tg))
	s.answer(w, ctx, req, imgs, tm, t0)
}

// answer encodes a finished request's images and sends them: as JSON, or
// as the final "done" event of a stream.
func (s *Server) answer(w http.ResponseWriter, ctx context.Context, req ImagesRequest, imgs []latentlm.Image, tm Timings, t0 time.Time) {
	s.metrics.images.Add(req.Model, int64(len(imgs)))
	te := time.Now()
	enc, err := encodeAll(imgs)
	if err != nil {
		s.failed(w, ctx, err, req.Stream)
		return
	}
	tm.EncodeMS = ms(time.Since(te))
	tm.TotalMS = ms(time.Since(t0))
	resp := ImagesResponse{Model: req.Model, Class: req.Class, Seed: req.Seed, Images: enc, Timings: tm}
	if s.cfg.Log != nil {
		s.cfg.Log.Printf("%s: %d images of class %d, %d steps, cfg %g, seed %d, stream %v: %.0f ms", req.Model, req.N, req.Class, req.Steps, req.CFG, req.Seed, req.Stream, tm.TotalMS)
	}
	sendDone(w, req.Stream, resp)
}

// sendDone sends a finished request's answer resp: as JSON, or, in a
// stream (its headers sent), as its final "done" event.
func sendDone(w http.ResponseWriter, streaming bool, resp any) {
	if streaming {
		if writeEvent(w, "done", resp) == nil {
			http.NewResponseController(w).Flush()
		}
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// failed answers a generation that did not finish: timed out (503),
// cancelled by the client (nothing to answer), or broken (500). In a
// stream, whose status is already sent, the answer is an "error" event.
func (s *Server) failed(w http.ResponseWriter, ctx context.Context, err error, streaming bool) {
	status, msg := http.StatusInternalServerError, err.Error()
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		status, msg = http.StatusServiceUnavailable, fmt.Sprintf("generation timed out after %s", s.cfg.Timeout)
	case ctx.Err() != nil:
		s.metrics.cancelled.Add(1)
		if !streaming { // the client is gone: recorded as nginx's 499
			writeError(w, 499, "", "client closed the request")
		}
		return
	}
	if s.cfg.Log != nil {
		s.cfg.Log.Printf("request failed: %s", msg)
	}
	if streaming {
		writeEvent(w, "error", errorBody{Error: errorDetail{Message: msg, Status: status}})
		http.NewResponseController(w).Flush()
		return
	}
	writeError(w, status, "", msg)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// encodeAll encodes images as base64 PNGs.
func encodeAll(imgs []latentlm.Image) ([]string, error) {
	out := make([]string, len(imgs))
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	for i, im := range imgs {
		buf.Reset()
		if err := enc.Encode(&buf, im); err != nil {
			return nil, fmt.Errorf("encoding PNG: %w", err)
		}
		out[i] = base64.StdEncoding.EncodeToString(buf.Bytes())
	}
	return out, nil
}

// writeEvent writes one Server-Sent Event whose data is v as JSON.
func writeEvent(w http.ResponseWriter, event string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b)
	return err
}

type errorDetail struct {
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
	Status  int    `json:"status"`
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"message":"encoding the answer failed","status":500}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, field, msg string) {
	writeJSON(w, status, errorBody{Error: errorDetail{Field: field, Message: msg, Status: status}})
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, http.StatusMethodNotAllowed, "method", "method not allowed: use "+allow)
}

// statusWriter records the status code of an answer for the metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (Flush).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// instrument counts a handler's requests by status and times them.
func (s *Server) instrument(endpoint string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		s.metrics.observe(endpoint, sw.status, time.Since(t0))
	}
}

// sendLatent streams one latent event: the partial images of the batch in
// progress, decoded with the latents drawn so far.
func (s *Server) sendLatent(w http.ResponseWriter, rc *http.ResponseController, p latentlm.Progress) error {
	partial, err := p.Partial()
	if err != nil {
		return err
	}
	enc, err := encodeAll(partial)
	if err != nil {
		return err
	}
	return s.writeLatent(w, rc, LatentEvent{Index: p.Index, Row: p.Row, Col: p.Col, Latents: p.Latents, Grid: p.Grid, Offset: p.Offset, Images: enc}, p.Count)
}

// writeLatent streams latent event ev, of images images (a class's, or a
// prompt's: promptImages).
func (s *Server) writeLatent(w http.ResponseWriter, rc *http.ResponseController, ev LatentEvent, images int) error {
	s.metrics.latents.Add(int64(images))
	if err := writeEvent(w, "latent", ev); err != nil {
		return err
	}
	return rc.Flush()
}
