package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/gomlx/compute"

	"github.com/latentlm/latentlm/backend"
	"github.com/latentlm/latentlm/data"
	"github.com/latentlm/latentlm/internal/deps"
)

// openBackend opens the backend named by the flag or the environment.
func openBackend(flagValue string) (compute.Backend, string, error) {
	name := backend.Resolve(flagValue)
	b, err := backend.Open(name)
	return b, name, err
}

// signalContext is cancelled by Ctrl-C or SIGTERM, so that training loops
// can save before they stop.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// weightsDir is where the shipped weights live: weights/<name> in the
// repository (found like .deps, from the working directory or the binary).
func weightsDir(name string) (string, error) {
	d, err := deps.Dir()
	if err != nil {
		return "", err
	}
	p := filepath.Join(filepath.Dir(d), "weights", name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("shipped weights %s not found: %w", p, err)
	}
	return p, nil
}

// checkDataName validates a --data flag.
func checkDataName(name string) error {
	for _, n := range data.Names {
		if n == name {
			return nil
		}
	}
	return fmt.Errorf("unknown data set %q: want mnist or fashion", name)
}

// batches yields the images of d, n at a time, scaled to [0, 1].
func batches(d *data.Dataset, n int, limit int) func(yield func([][]float32) error) error {
	return func(yield func([][]float32) error) error {
		total := d.N
		if limit > 0 && limit < total {
			total = limit
		}
		px := d.Height * d.Width
		for start := 0; start < total; start += n {
			end := min(start+n, total)
			batch := make([][]float32, end-start)
			for i := range batch {
				batch[i] = make([]float32, px)
				d.Float32(start+i, batch[i])
			}
			if err := yield(batch); err != nil {
				return err
			}
		}
		return nil
	}
}

// newNormal returns a seeded standard normal generator, for noise added on
// the host (evaluation perturbations).
func newNormal(seed uint64) func() float64 {
	r := rand.New(rand.NewPCG(seed, 0x6e6f697365))
	return r.NormFloat64
}
