package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// BenchOptions configure Bench.
type BenchOptions struct {
	Clients   int     // concurrent clients (default 16)
	Requests  int     // requests per client (default 4)
	N         int     // images per request (default 1; class and text → image)
	Steps     int     // solver steps (default 20)
	CFG       float64 // guidance scale (default 4)
	BatchRows int     // Config.BatchRows of the server (default 64)
	// Task is what the requests ask of the model: "images" (class →
	// image, the default for a class model), "t2i" (text → image from
	// Prompts), "captions" (of Images) or "speech" (Texts, in Voices).
	Task string
	// The inputs of the multimodal and speech tasks, request i taking
	// number i modulo their count: captions of text → image requests,
	// base64 PNGs to caption, texts to speak and the named voices to
	// speak them in.
	Prompts, Images, Texts, Voices []string
}

// BenchPhase is the outcome of one way of sending the requests.
type BenchPhase struct {
	Requests int     `json:"requests"`
	Lost     int     `json:"lost"` // not answered 200 with every output
	Seconds  float64 `json:"seconds"`
	P50MS    float64 `json:"p50_ms"`
	P99MS    float64 `json:"p99_ms"`
	// PerS is the outputs a second: images, captions, or seconds of
	// speech (BenchResult.Units).
	PerS float64 `json:"per_s"`
	// MeanBatch is the sequences per decode step (an image of a class
	// model, a caption, an utterance): per latent boundary of a
	// continuous decode, per batch of a DiT model.
	MeanBatch   float64 `json:"mean_batch_rows"`
	BatchesSeen int     `json:"batches"` // decode steps
}

// BenchResult compares concurrent with sequential serving.
type BenchResult struct {
	Options    BenchOptions `json:"options"`
	Units      string       `json:"units"` // of BenchPhase.PerS
	Concurrent BenchPhase   `json:"concurrent"`
	Sequential BenchPhase   `json:"sequential"`
	Ratio      float64      `json:"throughput_ratio"` // concurrent / sequential outputs a second
	// FirstEvent names the streamed event whose arrival FirstIdleMS and
	// FirstBusyMS time (latent, audio; none for captions, which do not
	// stream): the median time, at the client, from sending a streamed
	// request to its first such event with the server idle, and for a
	// request sent while Clients−1 others decode (it joins their decode
	// at the next step).
	FirstEvent  string  `json:"first_event,omitempty"`
	FirstIdleMS float64 `json:"first_idle_ms"`
	FirstBusyMS float64 `json:"first_busy_ms"`
	WarmupS     float64 `json:"warmup_s"`
	PeakRSSMiB  float64 `json:"peak_rss_mib"` // VmHWM of this process
	Backend     string  `json:"backend"`
	CPUFeatures string  `json:"cpu_features,omitempty"`
}

// workload is what Bench sends: request i's path and body, and how its
// answer is checked and counted.
type workload struct {
	path  string
	body  func(i int, stream bool) string
	count func(answer []byte) (float64, error) // outputs in the answer
	units string
	first string // the first streamed event of an answer ("": none)
}

// benchWorkload is o's workload for model m.
func benchWorkload(m Model, o BenchOptions) (workload, error) {
	pick := func(xs []string, i int) string { return xs[i%len(xs)] }
	need := func(what string, xs []string) error {
		if len(xs) == 0 {
			return fmt.Errorf("bench serve: task %s needs %s", o.Task, what)
		}
		return nil
	}
	images := func(b []byte) (float64, error) {
		var r struct{ Images []string }
		if err := json.Unmarshal(b, &r); err != nil {
			return 0, err
		}
		if len(r.Images) != o.N {
			return 0, fmt.Errorf("%d images, want %d", len(r.Images), o.N)
		}
		return float64(o.N), nil
	}
	switch {
	case o.Task == "images" && m.Gen != nil:
		classes := m.Gen.Classes()
		return workload{path: "/v1/images", units: "images", first: "latent", count: images, body: func(i int, stream bool) string {
			return fmt.Sprintf(`{"model":%q,"class":%d,"n":%d,"steps":%d,"cfg":%g,"seed":%d,"stream":%v}`, m.Name, i%classes, o.N, o.Steps, o.CFG, 1000+i, stream)
		}}, nil
	case o.Task == "t2i" && m.Multimodal != nil:
		if err := need("prompts", o.Prompts); err != nil {
			return workload{}, err
		}
		return workload{path: "/v1/images", units: "images", first: "latent", count: images, body: func(i int, stream bool) string {
			return fmt.Sprintf(`{"model":%q,"prompt":%q,"n":%d,"steps":%d,"cfg":%g,"seed":%d,"stream":%v}`, m.Name, pick(o.Prompts, i), o.N, o.Steps, o.CFG, 1000+i, stream)
		}}, nil
	case o.Task == "captions" && m.Multimodal != nil:
		if err := need("images", o.Images); err != nil {
			return workload{}, err
		}
		return workload{path: "/v1/captions", units: "captions", body: func(i int, _ bool) string {
			return fmt.Sprintf(`{"model":%q,"images":[%q]}`, m.Name, pick(o.Images, i))
		}, count: func(b []byte) (float64, error) {
			var r CaptionsResponse
			if err := json.Unmarshal(b, &r); err != nil {
				return 0, err
			}
			if len(r.Captions) != 1 {
				return 0, fmt.Errorf("%d captions, want 1", len(r.Captions))
			}
			return 1, nil
		}}, nil
	case o.Task == "speech" && m.Speech != nil:
		if err := need("texts", o.Texts); err != nil {
			return workload{}, err
		}
		if err := need("voices", o.Voices); err != nil {
			return workload{}, err
		}
		return workload{path: "/v1/speech", units: "seconds of speech", first: "audio", body: func(i int, stream bool) string {
			return fmt.Sprintf(`{"model":%q,"text":%q,"voice":%q,"steps":%d,"cfg":%g,"seed":%d,"stream":%v}`, m.Name, pick(o.Texts, i), pick(o.Voices, i/len(o.Texts)), o.Steps, o.CFG, 1000+i, stream)
		}, count: func(b []byte) (float64, error) {
			var r SpeechResponse
			if err := json.Unmarshal(b, &r); err != nil {
				return 0, err
			}
			if r.Seconds <= 0 {
				return 0, errors.New("no speech")
			}
			return r.Seconds, nil
		}}, nil
	}
	return workload{}, fmt.Errorf("bench serve: model %s cannot serve task %q (images: a class model; t2i, captions: a multimodal one; speech: a text-to-speech one)", m.Name, o.Task)
}

// Bench serves model m on 127.0.0.1 in this process with batching on, and
// sends Clients×Requests requests of o.Task, of distinct seeds and inputs:
// first from Clients concurrent clients (after one untimed round of the
// same shape, so that the batch shapes are compiled), then the same
// requests one at a time. It reports lost requests, latencies and
// throughput of both, and the time to the first streamed output of a
// request sent alone and of one sent while Clients−1 others decode.
func Bench(m Model, backend string, o BenchOptions) (BenchResult, error) {
	if o.Clients <= 0 {
		o.Clients = 16
	}
	if o.Requests <= 0 {
		o.Requests = 4
	}
	if o.N <= 0 {
		o.N = 1
	}
	if o.Steps <= 0 {
		o.Steps = 20
	}
	if o.CFG == 0 {
		o.CFG = 4
	}
	if o.BatchRows <= 0 {
		o.BatchRows = 64
	}
	if o.Task == "" {
		o.Task = "images"
	}
	res := BenchResult{Options: o, Backend: backend}
	if o.N > MaxImages {
		return res, fmt.Errorf("bench serve: n %d over %d", o.N, MaxImages)
	}
	wl, err := benchWorkload(m, o)
	if err != nil {
		return res, err
	}
	res.Units, res.FirstEvent = wl.units, wl.first
	s, err := New([]Model{m}, Config{BatchRows: o.BatchRows, Queue: o.Clients + 1, Timeout: time.Hour})
	if err != nil {
		return res, err
	}
	defer s.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, err
	}
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	defer hs.Shutdown(context.Background())
	url := "http://" + ln.Addr().String() + wl.path
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.Clients}}
	// send posts request i and returns its latency and outputs, or an
	// error.
	send := func(i int) (time.Duration, float64, error) {
		t0 := time.Now()
		r, err := client.Post(url, "application/json", strings.NewReader(wl.body(i, false)))
		if err != nil {
			return 0, 0, err
		}
		defer r.Body.Close()
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return 0, 0, err
		}
		if r.StatusCode != http.StatusOK {
			return 0, 0, fmt.Errorf("status %d: %s", r.StatusCode, bytes.TrimSpace(b))
		}
		n, err := wl.count(b)
		if err != nil {
			return 0, 0, err
		}
		return time.Since(t0), n, nil
	}
	total := o.Clients * o.Requests
	concurrent := func(first int) BenchPhase {
		lat := make([]time.Duration, total)
		outs := make([]float64, total)
		errs := make([]error, total)
		b0 := s.metrics.batchSnapshot()
		t0 := time.Now()
		var wg sync.WaitGroup
		for c := range o.Clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := range o.Requests {
					i := c*o.Requests + r
					lat[i], outs[i], errs[i] = send(first + i)
				}
			}()
		}
		wg.Wait()
		return phase(lat, outs, errs, time.Since(t0), s.metrics.batchSnapshot().sub(b0))
	}
	t0 := time.Now()
	if _, _, err := send(2 * total); err != nil {
		return res, fmt.Errorf("bench serve: warm-up request: %w", err)
	}
	warm := concurrent(total) // the batch shapes compile here
	if warm.Lost > 0 {
		return res, fmt.Errorf("bench serve: %d of %d warm-up requests lost", warm.Lost, total)
	}
	res.WarmupS = time.Since(t0).Seconds()
	res.Concurrent = concurrent(0)
	lat := make([]time.Duration, total)
	outs := make([]float64, total)
	errs := make([]error, total)
	b0 := s.metrics.batchSnapshot()
	t1 := time.Now()
	for i := range total {
		lat[i], outs[i], errs[i] = send(i)
	}
	res.Sequential = phase(lat, outs, errs, time.Since(t1), s.metrics.batchSnapshot().sub(b0))
	if res.Sequential.PerS > 0 {
		res.Ratio = res.Concurrent.PerS / res.Sequential.PerS
	}
	if wl.first == "" {
		res.PeakRSSMiB = peakRSSMiB()
		return res, nil
	}
	// firstEvent sends streamed request i and returns the time to its
	// first output event, reading the stream to its end.
	firstEvent := func(i int) (time.Duration, error) {
		t0 := time.Now()
		r, err := client.Post(url, "application/json", strings.NewReader(wl.body(i, true)))
		if err != nil {
			return 0, err
		}
		defer r.Body.Close()
		if r.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("streamed request: status %d", r.StatusCode)
		}
		sc := bufio.NewScanner(r.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		var first time.Duration
		for sc.Scan() {
			if first == 0 && sc.Text() == "event: "+wl.first {
				first = time.Since(t0)
			}
		}
		if first == 0 {
			return 0, fmt.Errorf("streamed request: no %s event (%v)", wl.first, sc.Err())
		}
		return first, sc.Err()
	}
	const probes = 5
	var idle, busy []float64
	for k := range probes {
		d, err := firstEvent(3*total + k)
		if err != nil {
			return res, fmt.Errorf("bench serve: %w", err)
		}
		idle = append(idle, float64(d.Microseconds())/1000)
	}
	for k := range probes {
		var wg sync.WaitGroup
		for c := range o.Clients - 1 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				send(4*total + k*o.Clients + c) //nolint:errcheck // the probe times the streamed request
			}()
		}
		// Once the others are in their decode, a streamed request joins.
		for deadline := time.Now().Add(time.Minute); s.running.Load() < int64(o.Clients-1) && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		d, err := firstEvent(4*total + k*o.Clients + o.Clients - 1)
		wg.Wait()
		if err != nil {
			return res, fmt.Errorf("bench serve: %w", err)
		}
		busy = append(busy, float64(d.Microseconds())/1000)
	}
	sort.Float64s(idle)
	sort.Float64s(busy)
	res.FirstIdleMS, res.FirstBusyMS = idle[probes/2], busy[probes/2]
	res.PeakRSSMiB = peakRSSMiB()
	return res, nil
}

type batchStats struct {
	count int64
	rows  float64
}

func (b batchStats) sub(o batchStats) batchStats {
	return batchStats{b.count - o.count, b.rows - o.rows}
}

func (m *metrics) batchSnapshot() batchStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return batchStats{m.batchRows.count, m.batchRows.sum}
}

func phase(lat []time.Duration, outs []float64, errs []error, wall time.Duration, b batchStats) BenchPhase {
	p := BenchPhase{Requests: len(lat), Seconds: wall.Seconds(), BatchesSeen: int(b.count)}
	var ok []float64
	var made float64
	for i, err := range errs {
		if err != nil {
			p.Lost++
			continue
		}
		ok = append(ok, float64(lat[i].Microseconds())/1000)
		made += outs[i]
	}
	sort.Float64s(ok)
	if len(ok) > 0 {
		p.P50MS = ok[(len(ok)-1)/2]
		p.P99MS = ok[min(len(ok)-1, int(0.99*float64(len(ok))))]
	}
	p.PerS = made / wall.Seconds()
	if b.count > 0 {
		p.MeanBatch = b.rows / float64(b.count)
	}
	return p
}

// peakRSSMiB is the VmHWM of /proc/self/status, in MiB (0 where absent).
func peakRSSMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, err := strconv.ParseFloat(f[0], 64)
				if err == nil {
					return kb / 1024
				}
			}
		}
	}
	return 0
}
