package server

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/latentlm/latentlm"
)

// batchKey is what requests must share to be decoded together: the model's
// compiled sampler depends on these.
type batchKey struct {
	steps            int
	cfg, temperature float64
}

// job is one request waiting for, or decoded in, a batch.
type job struct {
	ctx      context.Context
	req      ImagesRequest
	key      batchKey
	onLatent func(latentlm.Progress) error
	// begin runs (on the model's worker) when the job's batch starts.
	begin func()
	done  chan jobResult // buffered: the worker never waits for the handler
}

type jobResult struct {
	latentlm.BatchResult
	start time.Time // of the batch
	rows  int       // of the batch
	jobs  int       // requests in the batch
}

// batcher runs one model's batches, one at a time, on its own goroutine:
// at every batch start it takes the oldest waiting request and every other
// waiting one of the same steps, cfg and temperature, up to maxRows images.
type batcher struct {
	s       *Server
	name    string
	gen     *latentlm.Generator
	maxRows int
	settle  time.Duration // pause after a batch before taking the next
	mu      sync.Mutex
	pending []*job
	wake    chan struct{}
	stop    chan struct{}
}

func newBatcher(s *Server, name string, gen *latentlm.Generator, maxRows int, settle time.Duration) *batcher {
	b := &batcher{s: s, name: name, gen: gen, maxRows: maxRows, settle: settle, wake: make(chan struct{}, 1), stop: make(chan struct{})}
	go b.run()
	return b
}

// enqueue adds a job; the handler then waits for its result.
func (b *batcher) enqueue(j *job) {
	b.s.waiting.Add(1)
	b.mu.Lock()
	b.pending = append(b.pending, j)
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

func (b *batcher) run() {
	for {
		select {
		case <-b.wake:
		case <-b.stop:
			b.mu.Lock()
			for _, j := range b.pending {
				b.s.waiting.Add(-1)
				j.done <- jobResult{BatchResult: latentlm.BatchResult{Err: latentlm.ErrClosed}}
			}
			b.pending = nil
			b.mu.Unlock()
			return
		}
		for {
			batch := b.take()
			if len(batch) == 0 {
				break
			}
			rows := b.decode(batch)
			// The clients of a batch of several requests often send their
			// next request as soon as they are answered: give them a moment
			// to join the next batch rather than split the clients into two
			// alternating halves. A lone client is not kept waiting.
			if b.settle > 0 && len(batch) > 1 {
				b.await(rows)
			}
		}
	}
}

// await waits until the waiting requests hold rows images, or settle
// passes.
func (b *batcher) await(rows int) {
	deadline := time.NewTimer(b.settle)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		n := 0
		for _, j := range b.pending {
			n += j.req.N
		}
		b.mu.Unlock()
		if n >= rows {
			return
		}
		select {
		case <-b.wake:
		case <-deadline.C:
			return
		case <-b.stop:
			return
		}
	}
}

// take removes the next batch from the waiting jobs, answering those whose
// client is gone.
func (b *batcher) take() []*job {
	b.mu.Lock()
	defer b.mu.Unlock()
	var batch, rest []*job
	rows := 0
	for _, j := range b.pending {
		switch {
		case j.ctx.Err() != nil:
			b.s.waiting.Add(-1)
			j.done <- jobResult{BatchResult: latentlm.BatchResult{Err: j.ctx.Err()}}
		case len(batch) == 0 || (j.key == batch[0].key && rows+j.req.N <= b.maxRows):
			batch = append(batch, j)
			rows += j.req.N
		default:
			rest = append(rest, j)
		}
	}
	b.pending = rest
	b.s.waiting.Add(-int64(len(batch)))
	return batch
}

// decode runs one batch, hands each job its result and returns the
// batch's images.
func (b *batcher) decode(batch []*job) int {
	b.s.running.Add(int64(len(batch)))
	defer b.s.running.Add(-int64(len(batch)))
	if b.s.beforeGenerate != nil {
		b.s.beforeGenerate()
	}
	start := time.Now()
	items := make([]latentlm.BatchItem, len(batch))
	rows := 0
	for i, j := range batch {
		j.begin()
		items[i] = latentlm.BatchItem{Ctx: j.ctx, Request: latentlm.Request{Class: j.req.Class, N: j.req.N}, Seed: j.req.Seed, OnLatent: j.onLatent}
		rows += j.req.N
	}
	b.s.metrics.observeBatch(rows)
	k := batch[0].key
	res := b.gen.GenerateBatch(latentlm.SampleOptions{Steps: k.steps, CFG: k.cfg, Temperature: k.temperature, Seed: 1}, items)
	for i, j := range batch {
		j.done <- jobResult{BatchResult: res[i], start: start, rows: rows, jobs: len(batch)}
	}
	return rows
}

// generateBatched runs req through its model's batcher. It returns the
// images, or an error and whether the answer has become a stream (its
// headers sent).
func (s *Server) generateBatched(ctx context.Context, w http.ResponseWriter, b *batcher, req ImagesRequest, tm *Timings, t0 time.Time) (imgs []latentlm.Image, streaming bool, err error) {
	// mu guards w and the fields below between the worker (begin and the
	// callback) and this handler, which may leave before the batch ends.
	var mu sync.Mutex
	gone, sent := false, false
	var start time.Time
	rc := http.NewResponseController(w)
	j := &job{ctx: ctx, req: req, key: batchKey{req.Steps, req.CFG, req.Temperature}, done: make(chan jobResult, 1)}
	j.begin = func() {
		mu.Lock()
		defer mu.Unlock()
		start = time.Now()
		if gone || !req.Stream {
			return
		}
		startStream(w)
		sent = true
		rc.Flush()
	}
	if req.Stream {
		j.onLatent = func(p latentlm.Progress) error {
			mu.Lock()
			defer mu.Unlock()
			if gone {
				return context.Canceled
			}
			if p.Index == 0 {
				tm.FirstLatentMS = ms(time.Since(start))
			}
			return s.sendLatent(w, rc, p)
		}
	}
	b.enqueue(j)
	select {
	case r := <-j.done:
		// The worker is done with this job: no more locking needed.
		if r.Err != nil {
			return nil, sent, r.Err
		}
		tm.QueueMS = ms(r.start.Sub(t0))
		tm.GenerateMS = ms(time.Since(r.start))
		return r.Images, sent, nil
	case <-ctx.Done():
		mu.Lock()
		gone = true
		streaming = sent
		mu.Unlock()
		return nil, streaming, ctx.Err()
	}
}
