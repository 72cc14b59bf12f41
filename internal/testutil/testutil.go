// Package testutil opens compute backends once per test binary, since opening
// ONNX Runtime and compiling graphs dominate the time of small tests.
package testutil

import (
	"math"
	"sync"
	"testing"

	"github.com/gomlx/compute"

	"github.com/latentlm/latentlm/backend"
)

var (
	mu     sync.Mutex
	opened = map[string]compute.Backend{}
)

// Backend returns the named backend ("onnx", "go"), or the one the
// environment selects when name is empty, failing the test if it cannot open.
func Backend(t testing.TB, name string) compute.Backend {
	t.Helper()
	name = backend.Resolve(name)
	mu.Lock()
	defer mu.Unlock()
	if b, ok := opened[name]; ok {
		return b
	}
	b, err := backend.Open(name)
	if err != nil {
		t.Fatalf("opening backend %s: %v", name, err)
	}
	opened[name] = b
	return b
}

// RelErr is the normwise relative difference max|a−b| / max|b|: elementwise
// ratios explode near zero, which says nothing about the computation.
func RelErr(a, b []float64) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var diff, scale float64
	for i := range a {
		diff = math.Max(diff, math.Abs(a[i]-b[i]))
		scale = math.Max(scale, math.Abs(b[i]))
	}
	if scale == 0 {
		return diff
	}
	return diff / scale
}
