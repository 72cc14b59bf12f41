package server

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/latentlm/latentlm"
)

// batchKey is what requests must share to be decoded together: the
// solver steps, which the compiled graphs unroll. Guidance scale,
// temperature and seed are each image's own (graph inputs and host noise).
type batchKey struct {
	steps int
}

// job is one request waiting for, or decoded in, a batch.
type job struct {
	ctx      context.Context
	req      ImagesRequest
	key      batchKey
	onLatent func(latentlm.Progress) error
	// begin runs (on the model's worker) when the job starts decoding.
	begin func()
	start time.Time      // set by the worker when the job starts
	done  chan jobResult // buffered: the worker never waits for the handler
}

func (j *job) context() context.Context { return j.ctx }

func (j *job) fail(err error) { j.done <- jobResult{BatchResult: latentlm.BatchResult{Err: err}} }

type jobResult struct {
	latentlm.BatchResult
	start time.Time // of the job's decoding
}

// item is the job as a latentlm.BatchItem, and its options.
func (j *job) item() (latentlm.BatchItem, latentlm.SampleOptions) {
	opts := latentlm.SampleOptions{Steps: j.req.Steps, CFG: j.req.CFG, Temperature: j.req.Temperature, Seed: j.req.Seed}
	return latentlm.BatchItem{Ctx: j.ctx, Request: latentlm.Request{Class: j.req.Class, N: j.req.N}, Seed: j.req.Seed, Options: &opts, OnLatent: j.onLatent}, opts
}

// batcher runs one model's requests on its own goroutine.
//
// A LatentLM model is batched continuously (latentlm.Decoder): a running
// decode takes waiting requests in at every latent boundary, each image at
// its own position with its own guidance scale, temperature and seed, and
// a request leaves as soon as its images are done, so a request arriving
// while others are mid-image starts at the next latent instead of waiting
// for them to end. Requests are admitted in arrival order while their
// images fit in maxRows and their steps are the decode's; the first that
// does not fit waits, and the requests behind it wait too (first come,
// first served: a large request, or one of other steps, is not overtaken
// for ever). Once a decode empties it ends, and the next starts with the
// steps of the oldest waiting request.
//
// A DiT model is batched at batch boundaries (Generator.GenerateBatch): a
// DiT denoises the whole image at every solver step, so there is no item
// boundary inside a batch for a request to join at. At every batch start
// the worker takes the oldest waiting request and every other waiting one
// of the same steps, up to maxRows images.
type batcher struct {
	s       *Server
	name    string
	gen     *latentlm.Generator
	maxRows int
	settle  time.Duration // DiT: pause after a batch before taking the next
	queue   *waitQueue[*job]
	stop    chan struct{}
}

func newBatcher(s *Server, name string, gen *latentlm.Generator, maxRows int, settle time.Duration) *batcher {
	b := &batcher{s: s, name: name, gen: gen, maxRows: maxRows, settle: settle, queue: newWaitQueue[*job](s), stop: make(chan struct{})}
	go b.run()
	return b
}

// enqueue adds a job; the handler then waits for its result.
func (b *batcher) enqueue(j *job) { b.queue.push(j) }

func (b *batcher) run() {
	for {
		select {
		case <-b.queue.wake:
		case <-b.stop:
			b.queue.failAll(latentlm.ErrClosed)
			return
		}
		if b.gen.SupportsDecoder() {
			if !b.continuous() {
				return
			}
			continue
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

// stopped reports whether the server is closing.
func (b *batcher) stopped() bool {
	select {
	case <-b.stop:
		return true
	default:
		return false
	}
}

// continuous decodes the waiting requests on Decoders, one decode step (a
// latent of every image) at a time, admitting new requests before every
// step, until none is left. It returns false when the server closes: the
// requests in the decode and those waiting then fail.
func (b *batcher) continuous() bool {
	var dec *latentlm.Decoder
	jobs := map[int]*job{} // in the decode, by Decoder id
	defer func() {
		if dec != nil {
			dec.Close()
		}
		for _, j := range jobs {
			b.s.running.Add(-1)
			j.done <- jobResult{BatchResult: latentlm.BatchResult{Err: latentlm.ErrClosed}, start: j.start}
		}
	}()
	for {
		if b.stopped() {
			b.queue.failAll(latentlm.ErrClosed)
			return false
		}
		head, waiting := b.queue.head()
		if dec != nil && dec.Len() == 0 && (!waiting || head.key != (batchKey{dec.Steps()})) {
			dec.Close()
			dec = nil
		}
		if dec == nil {
			if !waiting {
				return true
			}
			var err error
			if dec, err = b.gen.NewDecoder(head.key.steps, b.maxRows); err != nil {
				b.queue.remove(head, err)
				continue
			}
		}
		running := dec.Len() > 0
		if joined := b.admit(dec, jobs); running {
			b.s.metrics.joins.Add(int64(joined))
		}
		if dec.Len() == 0 {
			continue
		}
		if b.s.beforeStep != nil {
			b.s.beforeStep()
		}
		b.s.metrics.observeBatch(dec.Rows())
		fin, err := dec.Step()
		for _, f := range fin {
			j := jobs[f.ID]
			delete(jobs, f.ID)
			b.s.running.Add(-1)
			j.done <- jobResult{BatchResult: f.BatchResult, start: j.start}
		}
		if err != nil {
			dec.Close() // every job of the decode was in fin
			dec = nil
		}
	}
}

// admit moves the waiting jobs that fit into dec, in arrival order, up to
// the first that does not (other steps, or more images than are free; the
// first job of an empty decode always fits), and returns how many joined.
func (b *batcher) admit(dec *latentlm.Decoder, jobs map[int]*job) int {
	free, empty := dec.Free(), dec.Len() == 0
	n := 0
	take := b.queue.take(true, func(j *job) bool {
		if j.key != (batchKey{dec.Steps()}) || (j.req.N > free && !(empty && n == 0)) {
			return false
		}
		free -= j.req.N
		n++
		return true
	})
	joined := 0
	for _, j := range take {
		it, opts := j.item()
		id, err := dec.Add(it, opts)
		if err != nil {
			j.done <- jobResult{BatchResult: latentlm.BatchResult{Err: err}}
			continue
		}
		j.start = time.Now()
		j.begin()
		jobs[id] = j
		b.s.running.Add(1)
		joined++
	}
	if joined > 0 && b.s.beforeGenerate != nil {
		b.s.beforeGenerate()
	}
	return joined
}

// await waits until the waiting requests hold rows images, or settle
// passes.
func (b *batcher) await(rows int) {
	deadline := time.NewTimer(b.settle)
	defer deadline.Stop()
	for {
		if b.queue.sum(func(j *job) int { return j.req.N }) >= rows {
			return
		}
		select {
		case <-b.queue.wake:
		case <-deadline.C:
			return
		case <-b.stop:
			return
		}
	}
}

// take removes the next batch-boundary batch from the waiting jobs,
// answering those whose client is gone.
func (b *batcher) take() []*job {
	var first *job
	rows := 0
	return b.queue.take(false, func(j *job) bool {
		if first == nil || (j.key == first.key && rows+j.req.N <= b.maxRows) {
			if first == nil {
				first = j
			}
			rows += j.req.N
			return true
		}
		return false
	})
}

// decode runs one batch-boundary batch, hands each job its result and
// returns the batch's images.
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
		items[i], _ = j.item()
		rows += j.req.N
	}
	b.s.metrics.observeBatch(rows)
	res := b.gen.GenerateBatch(latentlm.SampleOptions{Steps: batch[0].key.steps, CFG: DefaultCFG, Temperature: DefaultTemperature, Seed: 1}, items)
	for i, j := range batch {
		j.done <- jobResult{BatchResult: res[i], start: start}
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
	gone, sent, first := false, false, true
	var start time.Time
	rc := http.NewResponseController(w)
	j := &job{ctx: ctx, req: req, key: batchKey{req.Steps}, done: make(chan jobResult, 1)}
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
			if first { // latent 0, or a DiT's one event
				tm.FirstLatentMS, first = ms(time.Since(start)), false
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
