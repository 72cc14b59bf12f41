package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/latentlm/latentlm"
	"github.com/latentlm/latentlm/lm"
)

// seqEntry is a sequence to decode, in the guided batch (classifier-free
// guidance: text → image, speech with CFG) or the plain one (text).
type seqEntry struct {
	seq    lm.Sequence
	guided bool
}

// seqTask is one request decoded as lm.Sequences: a caption, an answer, a
// completion, the images of a prompt, an utterance. It runs on the
// batcher's goroutine.
type seqTask interface {
	// pending is called before every decoding step: the sequences to add
	// now (all of them on the first call; later, those that the request's
	// own sequences asked for, such as the image of a completion).
	pending() []seqEntry
	// ended tells the task that one of its sequences ended (err: its own
	// error; the model's ends the whole request). It reports whether the
	// task is finished.
	ended(s lm.Sequence, err error) (finished bool, taskErr error)
}

// seqJob is one request waiting for, or decoded by, a seqBatcher.
type seqJob struct {
	ctx   context.Context
	steps int // solver steps: the graphs of a batch unroll them; 0: any (no latents)
	rows  int // the most sequences it holds at once
	task  seqTask
	// begin runs (on the batcher's goroutine) when the job starts.
	begin func()
	start time.Time
	live  map[lm.Sequence]bool // its sequences in the batches
	done  chan seqResult       // buffered: the batcher never waits
}

type seqResult struct {
	err   error
	start time.Time
}

func (j *seqJob) context() context.Context { return j.ctx }

func (j *seqJob) fail(err error) { j.done <- seqResult{err: err, start: j.start} }

// seqBatcher decodes one model's sequence requests (multimodal and
// speech) continuously, as batcher does class-to-image requests: before
// every decoding step it admits waiting requests (first come, first
// served, while their sequences fit in maxRows and their steps are the
// decode's, or any for a request without latents), and each request
// leaves as soon as it is done. All sequences
// run in two lm.Batches, one with guidance streams and one without, at
// their own positions, each with its own seed, guidance scale and
// temperature; a request's results are those it gets alone. Once the
// decode empties it ends, and the next takes the steps of the oldest
// waiting request (DefaultSteps for one without latents).
type seqBatcher struct {
	s       *Server
	name    string
	maxRows int
	// open makes an empty batch for a decode of steps solver steps.
	open  func(steps int, guided bool) (*lm.Batch, error)
	queue *waitQueue[*seqJob]
	stop  chan struct{}
	// exited is closed when run returns: the batches are closed.
	exited chan struct{}
}

func newSeqBatcher(s *Server, name string, maxRows int, open func(steps int, guided bool) (*lm.Batch, error)) *seqBatcher {
	b := &seqBatcher{s: s, name: name, maxRows: maxRows, open: open, queue: newWaitQueue[*seqJob](s), stop: make(chan struct{}),
		exited: make(chan struct{})}
	go b.run()
	return b
}

// close stops the batcher: the requests it holds fail with ErrClosed. It
// returns once the batcher has closed its batches (after the step under
// way), so that the model may be closed then.
func (b *seqBatcher) close() {
	close(b.stop)
	<-b.exited
}

func (b *seqBatcher) run() {
	defer close(b.exited)
	for {
		select {
		case <-b.queue.wake:
		case <-b.stop:
			b.queue.failAll(latentlm.ErrClosed)
			return
		}
		if !b.decode() {
			return
		}
	}
}

func (b *seqBatcher) stopped() bool {
	select {
	case <-b.stop:
		return true
	default:
		return false
	}
}

// seqDecode is one continuous decode of a seqBatcher: its steps, batches
// and jobs.
type seqDecode struct {
	steps   int
	batches [2]*lm.Batch // plain, guided
	jobs    []*seqJob
	owner   map[lm.Sequence]*seqJob
}

// fits reports whether j's steps are the decode's (or any).
func (d *seqDecode) fits(j *seqJob) bool { return j.steps == 0 || j.steps == d.steps }

func (d *seqDecode) rows() int {
	n := 0
	for _, j := range d.jobs {
		n += j.rows
	}
	return n
}

// decode runs decodes until no request waits; false when the server
// closes (the requests it holds then fail).
func (b *seqBatcher) decode() bool {
	var d *seqDecode
	defer func() {
		if d != nil {
			b.endDecode(d, latentlm.ErrClosed)
		}
	}()
	for {
		if b.stopped() {
			b.queue.failAll(latentlm.ErrClosed)
			return false
		}
		head, waiting := b.queue.head()
		if d != nil && len(d.jobs) == 0 && (!waiting || !d.fits(head)) {
			b.endDecode(d, nil)
			d = nil
		}
		if d == nil {
			if !waiting {
				return true
			}
			steps := head.steps
			if steps == 0 {
				steps = DefaultSteps
			}
			d = &seqDecode{steps: steps, owner: map[lm.Sequence]*seqJob{}}
		}
		b.admit(d)
		b.cancelGone(d)
		if len(d.jobs) == 0 {
			continue
		}
		if b.s.beforeStep != nil {
			b.s.beforeStep()
		}
		if err := b.step(d); err != nil {
			// The model failed: every request of the decode has its error.
			b.endDecode(d, err)
			d = nil
		}
	}
}

// admit moves the waiting requests that fit into the decode, in arrival
// order, up to the first that does not (other steps, or more sequences
// than are free; the first of an empty decode always fits).
func (b *seqBatcher) admit(d *seqDecode) {
	free, empty, n := b.maxRows-d.rows(), len(d.jobs) == 0, 0
	took := b.queue.take(true, func(j *seqJob) bool {
		if !d.fits(j) || (j.rows > free && !(empty && n == 0)) {
			return false
		}
		free -= j.rows
		n++
		return true
	})
	for _, j := range took {
		j.start = time.Now()
		j.live = map[lm.Sequence]bool{}
		j.begin()
		d.jobs = append(d.jobs, j)
		b.s.running.Add(1)
		if !empty {
			b.s.metrics.joins.Add(1)
		}
	}
	if len(took) > 0 && b.s.beforeGenerate != nil {
		b.s.beforeGenerate()
	}
}

// cancelGone ends the requests whose client is gone.
func (b *seqBatcher) cancelGone(d *seqDecode) {
	for _, j := range append([]*seqJob(nil), d.jobs...) {
		if err := j.ctx.Err(); err != nil {
			b.finish(d, j, fmt.Errorf("generation cancelled: %w", err))
		}
	}
}

// step adds the sequences the requests ask for and runs one decoding step
// of each batch that holds any.
func (b *seqBatcher) step(d *seqDecode) error {
	for _, j := range append([]*seqJob(nil), d.jobs...) {
		for _, e := range j.task.pending() {
			k := 0
			if e.guided {
				k = 1
			}
			if d.batches[k] == nil {
				bt, err := b.open(d.steps, e.guided)
				if err != nil {
					return err
				}
				d.batches[k] = bt
			}
			if err := d.batches[k].Add(e.seq); err != nil {
				b.finish(d, j, err)
				break
			}
			j.live[e.seq] = true
			d.owner[e.seq] = j
		}
		if j.live != nil && len(j.live) == 0 { // a task must decode something
			b.finish(d, j, errors.New("server: a request with nothing to decode"))
		}
	}
	rows := 0
	for _, bt := range d.batches {
		if bt != nil {
			rows += bt.Len()
		}
	}
	b.s.metrics.observeBatch(rows)
	for _, bt := range d.batches {
		if bt == nil || bt.Len() == 0 {
			continue
		}
		ended, err := bt.Step()
		if err != nil {
			return err
		}
		for _, e := range ended {
			j := d.owner[e.Seq]
			delete(d.owner, e.Seq)
			if j == nil || !j.live[e.Seq] {
				continue // its request ended already
			}
			delete(j.live, e.Seq)
			finished, err := j.task.ended(e.Seq, e.Err)
			if err == nil && e.Err != nil {
				err = e.Err
			}
			if finished || err != nil {
				b.finish(d, j, err)
			}
		}
	}
	return nil
}

// finish ends request j of the decode with err (nil: done), removing its
// sequences from the batches.
func (b *seqBatcher) finish(d *seqDecode, j *seqJob, err error) {
	for s := range j.live {
		for _, bt := range d.batches {
			if bt != nil {
				bt.Remove(s)
			}
		}
		delete(d.owner, s)
	}
	j.live = nil
	for i, x := range d.jobs {
		if x == j {
			d.jobs = append(d.jobs[:i], d.jobs[i+1:]...)
			break
		}
	}
	b.s.running.Add(-1)
	j.done <- seqResult{err: err, start: j.start}
}

// endDecode closes the decode's batches; the requests left fail with err.
func (b *seqBatcher) endDecode(d *seqDecode, err error) {
	if err == nil {
		err = errors.New("decode ended")
	}
	for len(d.jobs) > 0 {
		b.finish(d, d.jobs[0], err)
	}
	for _, bt := range d.batches {
		if bt != nil {
			bt.Close()
		}
	}
}

// submit runs a request's task through the batcher and waits for it: its
// error, and the time it started decoding. begin runs on the batcher's
// goroutine when it starts. If ctx ends first, submit returns ctx's error
// at once: a request still waiting leaves the queue, one decoding is
// cancelled at the next step; until then the task's callbacks may still
// run, so what they share with the handler needs a lock.
func (b *seqBatcher) submit(ctx context.Context, steps, rows int, task seqTask, begin func()) (start time.Time, err error) {
	if begin == nil {
		begin = func() {}
	}
	j := &seqJob{ctx: ctx, steps: steps, rows: max(rows, 1), task: task, begin: begin, done: make(chan seqResult, 1)}
	b.queue.push(j)
	select {
	case r := <-j.done:
		return r.start, r.err
	case <-ctx.Done():
		b.queue.drop(j)
		return time.Time{}, ctx.Err()
	}
}
