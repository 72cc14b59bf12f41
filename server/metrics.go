package server

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// latencyBuckets are the upper bounds, in seconds, of the request latency
// histogram.
var latencyBuckets = []float64{0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// metrics are the server's counters, exposed at /metrics in the
// Prometheus text format.
type metrics struct {
	mu       sync.Mutex
	requests map[[2]string]int64 // endpoint, status → count
	hist     map[string]*histogram
	images   counterVec
	// latents counts the latents drawn for streamed requests (one per
	// image per latent position).
	latents   atomic.Int64
	cancelled atomic.Int64
	// batchRows is the histogram of the images per decode step
	// (Config.BatchRows): a LatentLM model's continuous decode observes
	// every latent boundary, a DiT model every batch. batchRowBuckets are
	// its bounds.
	batchRows histogram
	// joins counts the requests that joined a LatentLM decode already
	// running (continuous batching).
	joins atomic.Int64
	// speech counts the utterances spoken by model, speechSeconds (under
	// mu) their seconds of audio, speechFrames the latent frames drawn
	// (cancelled requests included: the work done).
	speech        counterVec
	speechSeconds map[string]float64
	speechFrames  atomic.Int64
}

func (m *metrics) addSpeechSeconds(model string, secs float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.speechSeconds[model] += secs
}

// batchRowBuckets are the upper bounds of the batch size histogram.
var batchRowBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}

func (m *metrics) observeBatch(rows int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := &m.batchRows
	if h.counts == nil {
		h.counts = make([]int64, len(batchRowBuckets)+1)
	}
	h.counts[sort.SearchFloat64s(batchRowBuckets, float64(rows))]++
	h.sum += float64(rows)
	h.count++
}

type histogram struct {
	counts []int64 // per bucket, not cumulative; the last is +Inf
	sum    float64
	count  int64
}

type counterVec struct {
	mu sync.Mutex
	m  map[string]int64
}

func (c *counterVec) Add(label string, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]int64{}
	}
	c.m[label] += n
}

func newMetrics() *metrics {
	return &metrics{requests: map[[2]string]int64{}, hist: map[string]*histogram{}, speechSeconds: map[string]float64{}}
}

func (m *metrics) observe(endpoint string, status int, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests[[2]string{endpoint, fmt.Sprint(status)}]++
	h := m.hist[endpoint]
	if h == nil {
		h = &histogram{counts: make([]int64, len(latencyBuckets)+1)}
		m.hist[endpoint] = h
	}
	sec := d.Seconds()
	i := sort.SearchFloat64s(latencyBuckets, sec) // first bound ≥ sec
	h.counts[i]++
	h.sum += sec
	h.count++
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	var b strings.Builder
	m := s.metrics
	m.mu.Lock()
	b.WriteString("# HELP latentlm_http_requests_total HTTP requests answered, by endpoint and status code.\n# TYPE latentlm_http_requests_total counter\n")
	keys := make([][2]string, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i][0] != keys[j][0] {
			return keys[i][0] < keys[j][0]
		}
		return keys[i][1] < keys[j][1]
	})
	for _, k := range keys {
		fmt.Fprintf(&b, "latentlm_http_requests_total{endpoint=%q,code=%q} %d\n", k[0], k[1], m.requests[k])
	}
	b.WriteString("# HELP latentlm_http_request_duration_seconds Latency of HTTP requests, by endpoint.\n# TYPE latentlm_http_request_duration_seconds histogram\n")
	eps := make([]string, 0, len(m.hist))
	for e := range m.hist {
		eps = append(eps, e)
	}
	sort.Strings(eps)
	for _, e := range eps {
		h := m.hist[e]
		var cum int64
		for i, le := range latencyBuckets {
			cum += h.counts[i]
			fmt.Fprintf(&b, "latentlm_http_request_duration_seconds_bucket{endpoint=%q,le=\"%g\"} %d\n", e, le, cum)
		}
		fmt.Fprintf(&b, "latentlm_http_request_duration_seconds_bucket{endpoint=%q,le=\"+Inf\"} %d\n", e, h.count)
		fmt.Fprintf(&b, "latentlm_http_request_duration_seconds_sum{endpoint=%q} %g\n", e, h.sum)
		fmt.Fprintf(&b, "latentlm_http_request_duration_seconds_count{endpoint=%q} %d\n", e, h.count)
	}
	if s.batchers != nil {
		b.WriteString("# HELP latentlm_batch_rows Sequences per decode step (images, captions, completions and utterances decoded together): every step of a continuous decode, every batch of a DiT model.\n# TYPE latentlm_batch_rows histogram\n")
		h := &m.batchRows
		var cum int64
		for i, le := range batchRowBuckets {
			if h.counts != nil {
				cum += h.counts[i]
			}
			fmt.Fprintf(&b, "latentlm_batch_rows_bucket{le=\"%g\"} %d\n", le, cum)
		}
		fmt.Fprintf(&b, "latentlm_batch_rows_bucket{le=\"+Inf\"} %d\nlatentlm_batch_rows_sum %g\nlatentlm_batch_rows_count %d\n", h.count, h.sum, h.count)
		fmt.Fprintf(&b, "# HELP latentlm_batch_joins_total Requests that joined a decode already running (continuous batching).\n# TYPE latentlm_batch_joins_total counter\nlatentlm_batch_joins_total %d\n", m.joins.Load())
	}
	if len(s.speechNames) > 0 {
		b.WriteString("# HELP latentlm_speech_seconds_total Seconds of speech generated, by model.\n# TYPE latentlm_speech_seconds_total counter\n")
		for _, name := range s.speechNames {
			fmt.Fprintf(&b, "latentlm_speech_seconds_total{model=%q} %g\n", name, m.speechSeconds[name])
		}
	}
	m.mu.Unlock()
	if len(s.speechNames) > 0 {
		b.WriteString("# HELP latentlm_speech_requests_total Utterances spoken (requests answered), by model.\n# TYPE latentlm_speech_requests_total counter\n")
		m.speech.mu.Lock()
		for _, name := range s.speechNames {
			fmt.Fprintf(&b, "latentlm_speech_requests_total{model=%q} %d\n", name, m.speech.m[name])
		}
		m.speech.mu.Unlock()
		fmt.Fprintf(&b, "# HELP latentlm_speech_frames_total Latent speech frames drawn, cancelled requests included.\n# TYPE latentlm_speech_frames_total counter\nlatentlm_speech_frames_total %d\n", m.speechFrames.Load())
	}
	b.WriteString("# HELP latentlm_images_generated_total Images generated, by model.\n# TYPE latentlm_images_generated_total counter\n")
	m.images.mu.Lock()
	names := append(append([]string(nil), s.names...), s.mmNames...)
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(&b, "latentlm_images_generated_total{model=%q} %d\n", name, m.images.m[name])
	}
	m.images.mu.Unlock()
	fmt.Fprintf(&b, "# HELP latentlm_streamed_latents_total Latents drawn for streamed requests (per image).\n# TYPE latentlm_streamed_latents_total counter\nlatentlm_streamed_latents_total %d\n", m.latents.Load())
	fmt.Fprintf(&b, "# HELP latentlm_requests_cancelled_total Generations stopped because the client went away.\n# TYPE latentlm_requests_cancelled_total counter\nlatentlm_requests_cancelled_total %d\n", m.cancelled.Load())
	fmt.Fprintf(&b, "# HELP latentlm_queue_length Requests waiting for a generation slot.\n# TYPE latentlm_queue_length gauge\nlatentlm_queue_length %d\n", s.waiting.Load())
	fmt.Fprintf(&b, "# HELP latentlm_requests_running Requests generating now.\n# TYPE latentlm_requests_running gauge\nlatentlm_requests_running %d\n", s.running.Load())
	fmt.Fprintf(&b, "# HELP latentlm_queue_capacity Requests that may wait for a slot.\n# TYPE latentlm_queue_capacity gauge\nlatentlm_queue_capacity %d\n", s.cfg.Queue)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Write([]byte(b.String()))
}
