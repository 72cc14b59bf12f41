// Package parallel runs independent pieces of host work on every CPU: the
// per-clip feature extraction of the speaker judge and the per-clip STFT
// of a speech tokenizer's training batch, which would otherwise leave all
// but one core idle while the accelerator waits for its next batch.
package parallel

import (
	"runtime"
	"sync"
)

// For runs fn(0), …, fn(n−1) on GOMAXPROCS goroutines and returns the
// error of the lowest index that failed (every index runs regardless), so
// that the error does not depend on scheduling. Each fn(i) must write only
// what belongs to i.
func For(n int, fn func(i int) error) error {
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), max(n, 1)) {
		wg.Go(func() {
			for i := range next {
				errs[i] = fn(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
