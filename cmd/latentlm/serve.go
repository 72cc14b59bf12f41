package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/latentlm/latentlm"
	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/server"
	"github.com/latentlm/latentlm/tts"
)

func init() {
	register("serve", "serve an HTTP API and a web page that stream generation as it happens", runServe)
}

func runServe(args []string) error {
	fs := newFlags("serve", "serve [--addr 127.0.0.1:8080] [--models weights/] [--multimodal weights/multimodal-mnist] [--speech runs/tts-numbers] [--concurrency 1] [--queue 8] [--batch-rows 64] [--timeout 5m]")
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on (loopback by default; 0.0.0.0:8080 exposes the server to the network)")
	modelsDir := fs.String("models", "", "folder of LatentLM/DiT (and text-to-speech) checkpoints, each served under its folder name, or one checkpoint folder (default: the shipped weights/)")
	mmDir := fs.String("multimodal", "", "multimodal checkpoint served for text → image, captions, answers and completions (default: the shipped weights/"+multimodalDefault+" if present; none: no multimodal model)")
	speechModel := fs.String("speech", "", "text-to-speech checkpoint served for POST /v1/speech (default: the shipped weights/"+ttsDefault+" if present; none: no speech model beyond those in --models)")
	speechData := fs.String("speech-data", "", "speech data whose voices are offered by name, the first test utterance of each (default .deps/speech, built by: latentlm speech data); without it requests send their own prompt_wav")
	backendName := fs.String("backend", "", "compute backend: onnx, go or xla")
	concurrency := fs.Int("concurrency", 1, "requests generating at once")
	queue := fs.Int("queue", 8, "requests that may wait for a slot before the server answers 429")
	batchRows := fs.Int("batch-rows", 64, "decode the requests of a model continuously, each joining the running decode of its solver steps, up to this many images, captions or utterances at once (0: one request at a time)")
	timeout := fs.Duration("timeout", 5*time.Minute, "limit of one request, queueing included")
	shutdown := fs.Duration("shutdown-timeout", 10*time.Second, "on SIGTERM or Ctrl-C, how long requests in flight may take to finish")
	fs.bound("concurrency", 1, 64, false)
	fs.bound("queue", 0, 10000, false)
	fs.bound("batch-rows", 0, latentlm.MaxBatch, false)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *timeout <= 0 || *shutdown < 0 {
		return errors.New("--timeout must be > 0 and --shutdown-timeout ≥ 0")
	}
	dir := *modelsDir
	if dir == "" {
		mnist, err := weightsDir("latentlm-mnist")
		if err != nil {
			return err
		}
		dir = filepath.Dir(mnist)
	}
	var opts []latentlm.Option
	opts = append(opts, latentlm.WithBatch(server.MaxImages))
	if *backendName != "" {
		opts = append(opts, latentlm.WithBackend(*backendName))
	}
	models, err := server.LoadModels(dir, opts...)
	// A folder without image models is served if it, --multimodal or
	// --speech gives another model.
	var noImages *server.NoModelsError
	if err != nil && !errors.As(err, &noImages) {
		return errors.New(strings.TrimPrefix(err.Error(), "server: "))
	}
	defer func() {
		for _, m := range models {
			if m.Gen != nil {
				m.Gen.Close()
			}
			if m.Multimodal != nil {
				m.Multimodal.Close()
			}
			if m.Speech != nil {
				m.Speech.Close()
			}
		}
	}()
	speechModels, err := server.LoadSpeechModels(dir, *backendName)
	if err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "server: "))
	}
	models = append(models, speechModels...)
	mm := *mmDir
	if mm == "" {
		// The shipped model when it is there (a whole checkpoint).
		if d, err := weightsDir(multimodalDefault); err == nil {
			if _, err := os.Stat(filepath.Join(d, checkpoint.ConfigFile)); err == nil {
				mm = d
			}
		}
	} else if mm == "none" {
		mm = ""
	}
	if mm != "" {
		m, err := server.LoadMultimodal(mm, *backendName)
		if err != nil {
			return fmt.Errorf("--multimodal: %s", strings.TrimPrefix(err.Error(), "server: "))
		}
		models = append(models, m)
	}
	sp := *speechModel
	if sp == "" {
		// The shipped model when it is there (a whole checkpoint) and
		// --models did not already serve it.
		if d, err := weightsDir(ttsDefault); err == nil {
			if _, err := os.Stat(filepath.Join(d, checkpoint.ConfigFile)); err == nil && !servesDir(speechModels, d) {
				sp = d
			}
		}
	} else if sp == "none" {
		sp = ""
	}
	if sp != "" {
		m, err := server.LoadSpeech(sp, *backendName)
		if err != nil {
			return fmt.Errorf("--speech: %s", strings.TrimPrefix(err.Error(), "server: "))
		}
		models = append(models, m)
	}
	if noImages != nil && len(models) == 0 {
		return fmt.Errorf("%s (nor a text-to-speech one; give --multimodal or --speech to serve other models)", strings.TrimPrefix(noImages.Error(), "server: "))
	}
	if err := addVoices(models, *speechData); err != nil {
		return err
	}
	var need float64
	for _, m := range models {
		if m.Gen != nil {
			need += m.Gen.MemoryEstimate(server.MaxImages)
			continue
		}
		// A decode holds up to batch-rows sequences (a larger request
		// runs alone), each with a guidance stream at most.
		rows := max(*batchRows, 1)
		if m.Speech != nil {
			need += server.SpeechMemory(m.Speech, rows)
			continue
		}
		px := m.Multimodal.Image.Config.ImageSize * m.Multimodal.Image.Config.ImageSize
		rows = max(rows, server.MaxImages)
		need += float64(rows*px)*4*4 + m.Multimodal.Config.Activations(2*rows, m.Multimodal.Config.MaxLen, 1, false)
	}
	if err := fs.checkMemory(fmt.Sprintf("serving %d models at up to %d images a request", len(models), server.MaxImages), need); err != nil {
		return err
	}
	logger := log.New(os.Stderr, "latentlm serve: ", log.LstdFlags)
	q := *queue
	if q == 0 {
		q = -1 // server.Config's 0 is its default
	}
	srv, err := server.New(models, server.Config{Concurrency: *concurrency, Queue: q, Timeout: *timeout, Log: logger, BatchRows: *batchRows})
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("--addr %s: %w", *addr, err)
	}
	// Requests run under base, cancelled when the shutdown deadline passes.
	base, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
		MaxHeaderBytes: 64 << 10, BaseContext: func(net.Listener) context.Context { return base }}
	for _, m := range models {
		if m.Speech != nil {
			voices := fmt.Sprintf("%d voices", len(m.Voices))
			if len(m.Voices) == 0 {
				voices = "no named voices: requests send prompt_wav"
			}
			fmt.Printf("serving %s (text-to-speech at %d Hz, %s, one request at a time) on %s\n", m.Name, tts.Rate, voices, m.Backend)
			continue
		}
		if m.Multimodal != nil {
			size := m.Multimodal.Image.Config.ImageSize
			fmt.Printf("serving %s (multimodal: text and %d×%d images, one request at a time) on %s\n", m.Name, size, size, m.Backend)
			continue
		}
		fmt.Printf("serving %s (%s, %d classes) on %s\n", m.Name, m.Gen.Kind(), m.Gen.Classes(), m.Gen.Backend())
	}
	fmt.Printf("listening on http://%s/ (Ctrl-C to stop)\n", ln.Addr())
	ctx, stop := signalContext()
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	stop()
	fmt.Println("shutting down: waiting for requests in flight")
	sctx, cancel := context.WithTimeout(context.Background(), *shutdown)
	defer cancel()
	err = hs.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		cancelBase() // stop the generations still running at their next latent
		hs.Close()
		return fmt.Errorf("shutdown: requests still running after --shutdown-timeout %s were cancelled", *shutdown)
	}
	return err
}

// servesDir reports whether one of models is the checkpoint in d, so that
// the shipped speech model, also found in the --models folder, is not
// loaded twice under one name.
func servesDir(models []server.Model, d string) bool {
	want, err := filepath.Abs(d)
	if err != nil {
		return false
	}
	for _, m := range models {
		if m.Speech == nil {
			continue
		}
		if have, err := filepath.Abs(m.Speech.Dir); err == nil && have == want {
			return true
		}
	}
	return false
}

// addVoices gives the text-to-speech models among models the named voices
// of the speech data in dataDir (default .deps/speech). Where the data is
// missing it says so and serves them without: requests then send their own
// prompt_wav.
func addVoices(models []server.Model, dataDir string) error {
	speaks := false
	for _, m := range models {
		speaks = speaks || m.Speech != nil
	}
	if !speaks {
		return nil
	}
	dir, err := speechDir(dataDir)
	if err != nil {
		return err
	}
	voices, err := server.LoadVoices(dir)
	if err != nil {
		if dataDir != "" {
			return fmt.Errorf("--speech-data: %s", strings.TrimPrefix(err.Error(), "server: "))
		}
		fmt.Fprintf(os.Stderr, "latentlm serve: no named voices (%s); build them with `latentlm speech data`\n", strings.TrimPrefix(err.Error(), "server: "))
		return nil
	}
	for i := range models {
		if models[i].Speech != nil {
			models[i].Voices = voices
		}
	}
	return nil
}
