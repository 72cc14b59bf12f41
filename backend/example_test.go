package backend_test

import (
	"fmt"
	"log"
	"os"

	"github.com/gomlx/gomlx/core/graph"

	"github.com/latentlm/latentlm/backend"
)

// Open the backend a command would use (its --backend flag, else
// $LATENTLM_BACKEND, else onnx) and run a small graph on it. Integer sums are
// exact, so every backend prints the same.
func ExampleOpen() {
	b, err := backend.Open(backend.Resolve(""))
	if err != nil {
		log.Fatal(err)
	}
	defer b.Finalize()
	sum, err := graph.CallOnce(b, func(x *graph.Node) *graph.Node {
		return graph.ReduceAllSum(x)
	}, []int32{1, 2, 3, 4})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(sum.Value())
	// Output: 10
}

// Resolve gives a command's --backend flag precedence over the environment,
// and the environment over the default, so that one variable switches a
// whole session while a flag still overrides it for one run.
func ExampleResolve() {
	old, had := os.LookupEnv(backend.EnvVar)
	defer func() {
		if had {
			os.Setenv(backend.EnvVar, old)
		} else {
			os.Unsetenv(backend.EnvVar)
		}
	}()

	os.Unsetenv(backend.EnvVar)
	fmt.Println(backend.Resolve(""))
	os.Setenv(backend.EnvVar, "go")
	fmt.Println(backend.Resolve(""))
	fmt.Println(backend.Resolve("xla"))
	// Output:
	// onnx
	// go
	// xla
}

// Config fills in each backend's defaults and keeps options given after a
// colon. The pure-Go backend always gets ops_sequential, since its parallel
// scheduler deadlocks; an unknown name is an error listing the known ones.
func ExampleConfig() {
	for _, name := range []string{"onnx", "onnx:cuda", "go", "go:foo", "xla", "tpu"} {
		cfg, err := backend.Config(name)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(name, "→", cfg)
	}
	// Output:
	// onnx → onnx:cpu
	// onnx:cuda → onnx:cuda
	// go → go:ops_sequential
	// go:foo → go:foo,ops_sequential
	// xla → xla:cuda
	// unknown backend "tpu": want one of onnx, go, xla
}
