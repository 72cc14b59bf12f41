package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
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

	"github.com/latentlm/latentlm"
)

// BenchOptions configure Bench.
type BenchOptions struct {
	Clients   int     // concurrent clients (default 16)
	Requests  int     // requests per client (default 4)
	N         int     // images per request (default 1)
	Steps     int     // solver steps (default 20)
	CFG       float64 // guidance scale (default 4)
	BatchRows int     // Config.BatchRows of the server (default 64)
}

// BenchPhase is the outcome of one way of sending the requests.
type BenchPhase struct {
	Requests   int     `json:"requests"`
	Lost       int     `json:"lost"` // not answered 200 with every image
	Seconds    float64 `json:"seconds"`
	P50MS      float64 `json:"p50_ms"`
	P99MS      float64 `json:"p99_ms"`
	ImagesPerS float64 `json:"images_per_s"`
	// MeanBatch is the images per decode step: per latent boundary of a
	// LatentLM model's continuous decode, per batch of a DiT model.
	MeanBatch   float64 `json:"mean_batch_rows"`
	BatchesSeen int     `json:"batches"` // decode steps
}

// BenchResult compares concurrent with sequential serving.
type BenchResult struct {
	Options    BenchOptions `json:"options"`
	Concurrent BenchPhase   `json:"concurrent"`
	Sequential BenchPhase   `json:"sequential"`
	Ratio      float64      `json:"throughput_ratio"` // concurrent / sequential images/s
	// FirstLatentIdleMS is the median time, at the client, from sending a
	// streamed request to its first latent event with the server idle;
	// FirstLatentBusyMS the same for a request sent while Clients−1 others
	// decode (it joins their decode at the next latent).
	FirstLatentIdleMS float64 `json:"first_latent_idle_ms"`
	FirstLatentBusyMS float64 `json:"first_latent_busy_ms"`
	WarmupS           float64 `json:"warmup_s"`
	PeakRSSMiB        float64 `json:"peak_rss_mib"` // VmHWM of this process
	Backend           string  `json:"backend"`
	CPUFeatures       string  `json:"cpu_features,omitempty"`
}

// Bench serves gen on 127.0.0.1 in this process with batching on, and sends
// Clients×Requests requests of distinct seeds and classes: first from
// Clients concurrent clients (after one untimed round of the same shape, so
// that the batch shapes are compiled), then the same requests one at a
// time. It reports lost requests, latencies and throughput of both, and
// the time to the first streamed latent of a request sent alone and of one
// sent while Clients−1 others decode.
func Bench(gen *latentlm.Generator, o BenchOptions) (BenchResult, error) {
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
	res := BenchResult{Options: o, Backend: gen.Backend()}
	if o.N > MaxImages {
		return res, fmt.Errorf("bench serve: n %d over %d", o.N, MaxImages)
	}
	s, err := New([]Model{{Name: "bench", Gen: gen}}, Config{BatchRows: o.BatchRows, Queue: o.Clients + 1, Timeout: time.Hour})
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
	url := "http://" + ln.Addr().String() + "/v1/images"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.Clients}}
	// send posts request i and returns its latency, or an error.
	send := func(i int) (time.Duration, error) {
		body := fmt.Sprintf(`{"class":%d,"n":%d,"steps":%d,"cfg":%g,"seed":%d}`, i%gen.Classes(), o.N, o.Steps, o.CFG, 1000+i)
		t0 := time.Now()
		r, err := client.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		defer r.Body.Close()
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return 0, err
		}
		if r.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("status %d: %s", r.StatusCode, bytes.TrimSpace(b))
		}
		var resp ImagesResponse
		if err := json.Unmarshal(b, &resp); err != nil {
			return 0, err
		}
		if len(resp.Images) != o.N {
			return 0, fmt.Errorf("%d images, want %d", len(resp.Images), o.N)
		}
		return time.Since(t0), nil
	}
	total := o.Clients * o.Requests
	concurrent := func(first int) BenchPhase {
		lat := make([]time.Duration, total)
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
					lat[i], errs[i] = send(first + i)
				}
			}()
		}
		wg.Wait()
		return phase(lat, errs, time.Since(t0), o.N, s.metrics.batchSnapshot().sub(b0))
	}
	t0 := time.Now()
	if _, err := send(2 * total); err != nil {
		return res, fmt.Errorf("bench serve: warm-up request: %w", err)
	}
	warm := concurrent(total) // the batch shapes compile here
	if warm.Lost > 0 {
		return res, fmt.Errorf("bench serve: %d of %d warm-up requests lost", warm.Lost, total)
	}
	res.WarmupS = time.Since(t0).Seconds()
	res.Concurrent = concurrent(0)
	lat := make([]time.Duration, total)
	errs := make([]error, total)
	b0 := s.metrics.batchSnapshot()
	t1 := time.Now()
	for i := range total {
		lat[i], errs[i] = send(i)
	}
	res.Sequential = phase(lat, errs, time.Since(t1), o.N, s.metrics.batchSnapshot().sub(b0))
	if res.Sequential.ImagesPerS > 0 {
		res.Ratio = res.Concurrent.ImagesPerS / res.Sequential.ImagesPerS
	}
	// firstLatent sends streamed request i and returns the time to its
	// first latent event, reading the stream to its end.
	firstLatent := func(i int) (time.Duration, error) {
		body := fmt.Sprintf(`{"class":%d,"n":%d,"steps":%d,"cfg":%g,"seed":%d,"stream":true}`, i%gen.Classes(), o.N, o.Steps, o.CFG, 1000+i)
		t0 := time.Now()
		r, err := client.Post(url, "application/json", strings.NewReader(body))
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
			if first == 0 && sc.Text() == "event: latent" {
				first = time.Since(t0)
			}
		}
		if first == 0 {
			return 0, fmt.Errorf("streamed request: no latent event (%v)", sc.Err())
		}
		return first, sc.Err()
	}
	const probes = 5
	var idle, busy []float64
	for k := range probes {
		d, err := firstLatent(3*total + k)
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
				send(4*total + k*o.Clients + c)
			}()
		}
		// Once the others are in their decode, a streamed request joins.
		for deadline := time.Now().Add(time.Minute); s.running.Load() < int64(o.Clients-1) && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		d, err := firstLatent(4*total + k*o.Clients + o.Clients - 1)
		wg.Wait()
		if err != nil {
			return res, fmt.Errorf("bench serve: %w", err)
		}
		busy = append(busy, float64(d.Microseconds())/1000)
	}
	sort.Float64s(idle)
	sort.Float64s(busy)
	res.FirstLatentIdleMS, res.FirstLatentBusyMS = idle[probes/2], busy[probes/2]
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

func phase(lat []time.Duration, errs []error, wall time.Duration, n int, b batchStats) BenchPhase {
	p := BenchPhase{Requests: len(lat), Seconds: wall.Seconds(), BatchesSeen: int(b.count)}
	var ok []float64
	for i, err := range errs {
		if err != nil {
			p.Lost++
			continue
		}
		ok = append(ok, float64(lat[i].Microseconds())/1000)
	}
	sort.Float64s(ok)
	if len(ok) > 0 {
		p.P50MS = ok[(len(ok)-1)/2]
		p.P99MS = ok[min(len(ok)-1, int(0.99*float64(len(ok))))]
	}
	p.ImagesPerS = float64(len(ok)*n) / wall.Seconds()
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
