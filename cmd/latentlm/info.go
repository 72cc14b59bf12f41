package main

import (
	"fmt"
	"runtime"

	"github.com/latentlm/latentlm/backend"
	"github.com/latentlm/latentlm/benchmark"
	"github.com/latentlm/latentlm/internal/deps"
)

func runInfo(args []string) error {
	fs := newFlags("info", "info [--backend onnx|go|xla]")
	backendName := fs.String("backend", "", "compute backend: onnx, go or xla (default $LATENTLM_BACKEND or onnx)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	name := backend.Resolve(*backendName)
	cfg, err := backend.Config(name)
	if err != nil {
		return err
	}
	fmt.Printf("latentlm %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Printf("backend:   %s (GoMLX config %q)\n", name, cfg)
	if b, err := backend.Open(name); err != nil {
		fmt.Printf("           not usable: %v\n", err)
	} else {
		fmt.Printf("           %s\n", b.Description())
	}
	if lib, err := deps.ONNXRuntimeLibrary(); err == nil {
		fmt.Printf("onnxruntime: %s\n", lib)
	} else {
		fmt.Printf("onnxruntime: missing (%v)\n", err)
	}
	fmt.Printf("cpu:       %d cores; %s\n", runtime.NumCPU(), benchmark.CPUFeatures())
	fmt.Printf("simd build: %v (GOEXPERIMENT=simd)\n", simdBuild)
	fmt.Println("data:")
	for _, it := range deps.Status() {
		state := "missing"
		if it.Present {
			state = "present"
		}
		line := fmt.Sprintf("  %-14s %-8s %s", it.Name, state, it.Path)
		if it.Detail != "" {
			line += " (" + it.Detail + ")"
		}
		fmt.Println(line)
	}
	return nil
}
