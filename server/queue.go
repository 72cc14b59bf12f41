package server

import (
	"context"
	"sync"
)

// queued is a request waiting in a waitQueue.
type queued interface {
	// context is the request's: when it ends, the request leaves the queue.
	context() context.Context
	// fail answers the request with err; it must not block (the handler
	// may have left).
	fail(err error)
}

// waitQueue is a model's first-come, first-served queue of requests
// waiting for its worker goroutine. It counts them in the server's
// waiting gauge, answers those whose client is gone, and wakes the worker
// when one arrives. The bound on waiting requests is the server's (enter),
// so a queue never refuses.
type waitQueue[J queued] struct {
	s       *Server
	mu      sync.Mutex
	pending []J
	wake    chan struct{}
}

func newWaitQueue[J queued](s *Server) *waitQueue[J] {
	return &waitQueue[J]{s: s, wake: make(chan struct{}, 1)}
}

// push adds a request and wakes the worker.
func (q *waitQueue[J]) push(j J) {
	q.s.waiting.Add(1)
	q.mu.Lock()
	q.pending = append(q.pending, j)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// failAll answers every waiting request with err (the server is closing).
func (q *waitQueue[J]) failAll(err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, j := range q.pending {
		q.s.waiting.Add(-1)
		j.fail(err)
	}
	q.pending = nil
}

// dropGone answers and removes the requests whose client is gone (with
// q.mu held).
func (q *waitQueue[J]) dropGone() {
	rest := q.pending[:0]
	for _, j := range q.pending {
		if err := j.context().Err(); err != nil {
			q.s.waiting.Add(-1)
			j.fail(err)
			continue
		}
		rest = append(rest, j)
	}
	clear(q.pending[len(rest):])
	q.pending = rest
}

// head is the oldest request whose client is still there.
func (q *waitQueue[J]) head() (j J, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.dropGone()
	if len(q.pending) == 0 {
		return j, false
	}
	return q.pending[0], true
}

// remove takes j out of the queue and answers it with err.
func (q *waitQueue[J]) remove(j J, err error) {
	q.mu.Lock()
	for i, p := range q.pending {
		if any(p) == any(j) {
			q.pending = append(q.pending[:i], q.pending[i+1:]...)
			q.s.waiting.Add(-1)
			break
		}
	}
	q.mu.Unlock()
	j.fail(err)
}

// drop takes j out of the queue, if it still waits there, without
// answering it: its handler has left. (A request the worker has taken
// already is the worker's to end.)
func (q *waitQueue[J]) drop(j J) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, p := range q.pending {
		if any(p) == any(j) {
			q.pending = append(q.pending[:i], q.pending[i+1:]...)
			q.s.waiting.Add(-1)
			return
		}
	}
}

// take removes the requests that keep selects, in arrival order; with
// prefix it stops at the first that keep refuses (first come, first
// served), else it looks at them all.
func (q *waitQueue[J]) take(prefix bool, keep func(J) bool) []J {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.dropGone()
	var took, rest []J
	for i, j := range q.pending {
		if keep(j) {
			took = append(took, j)
			continue
		}
		if prefix {
			rest = append(rest, q.pending[i:]...)
			break
		}
		rest = append(rest, j)
	}
	clear(q.pending)
	q.pending = rest
	q.s.waiting.Add(-int64(len(took)))
	return took
}

// sum adds up f over the waiting requests.
func (q *waitQueue[J]) sum(f func(J) int) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, j := range q.pending {
		n += f(j)
	}
	return n
}
