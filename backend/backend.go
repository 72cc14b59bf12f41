// Package backend chooses and opens the compute backend that runs every graph
// of the program, so that the rest of the code never names one. The backends'
// measured speeds and limits are in docs/DESIGN.md §10.
//
// Three backends are supported:
//
//   - onnx: ONNX Runtime on the CPU, the default and the fastest here;
//   - go:   GoMLX's pure-Go backend, always with ops_sequential, because its
//     default parallel scheduling deadlocks with the AVX-512 matmul;
//   - xla:  XLA through a PJRT plugin (GPUs), for when one is installed.
package backend

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute-onnx" // registers "onnx"
	_ "github.com/gomlx/compute/gobackend"

	"github.com/latentlm/latentlm/internal/deps"
)

// EnvVar selects the backend when no flag does.
const EnvVar = "LATENTLM_BACKEND"

// Default is the backend used when neither flag nor environment names one.
const Default = "onnx"

// Names lists the accepted backend names, for help text.
var Names = []string{"onnx", "go", "xla"}

// Resolve returns the backend name to use: flagValue if set, else $LATENTLM_BACKEND,
// else Default.
func Resolve(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if v := os.Getenv(EnvVar); v != "" {
		return v
	}
	return Default
}

// Config translates one of our backend names into GoMLX's configuration
// string. An optional ":options" suffix is passed through, so that
// "onnx:cuda" or "xla:cuda" still reach the underlying backend.
func Config(name string) (string, error) {
	base, opts, _ := strings.Cut(name, ":")
	switch base {
	case "onnx":
		if opts == "" {
			opts = "cpu"
		}
		return "onnx:" + opts, nil
	case "go":
		// ops_sequential is not optional: the default parallel scheduler
		// deadlocks (docs/DESIGN.md §10), so add it whatever else was asked.
		if opts == "" {
			return "go:ops_sequential", nil
		}
		if !strings.Contains(opts, "ops_sequential") {
			opts += ",ops_sequential"
		}
		return "go:" + opts, nil
	case "xla":
		if opts == "" {
			opts = "cuda"
		}
		return "xla:" + opts, nil
	default:
		return "", fmt.Errorf("unknown backend %q: want one of %s", name, strings.Join(Names, ", "))
	}
}

// Open creates the backend named by name (see Resolve). For onnx it points
// ONNX Runtime at the library that setup installed, and refuses to go on
// without it rather than letting the runtime try a download that cannot work
// on an offline machine.
func Open(name string) (compute.Backend, error) {
	cfg, err := Config(name)
	if err != nil {
		return nil, err
	}
	base, _, _ := strings.Cut(cfg, ":")
	switch base {
	case "onnx":
		if os.Getenv("ONNXRUNTIME_SHARED_LIBRARY_PATH") == "" {
			lib, err := deps.ONNXRuntimeLibrary()
			if err != nil {
				return nil, err
			}
			os.Setenv("ONNXRUNTIME_SHARED_LIBRARY_PATH", lib)
		} else if _, err := os.Stat(os.Getenv("ONNXRUNTIME_SHARED_LIBRARY_PATH")); err != nil {
			return nil, fmt.Errorf("ONNXRUNTIME_SHARED_LIBRARY_PATH: %w", err)
		}
		os.Setenv("GOMLX_NO_AUTO_INSTALL", "1")
	case "xla":
		os.Setenv("GOMLX_NO_AUTO_INSTALL", "1")
		if !registered("xla") {
			return nil, errors.New("backend xla: this binary was built without XLA support; rebuild with `make build-xla` on a machine with a PJRT plugin")
		}
	}
	if base != "go" {
		// ONNX Runtime and XLA allocate with the C library: see
		// keepFreedMemoryReturned.
		returnFreedMemory.Do(keepFreedMemoryReturned)
	}
	b, err := compute.NewWithConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("opening backend %s: %w", cfg, err)
	}
	return b, nil
}

// returnFreedMemory tunes the C allocator once per process.
var returnFreedMemory sync.Once

func registered(name string) bool {
	for _, n := range compute.List() {
		if n == name {
			return true
		}
	}
	return false
}
