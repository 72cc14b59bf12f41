// Package deps finds the files that setup installs into .deps/ (ONNX Runtime,
// MNIST, Fashion-MNIST), so that no command needs to be told where they are.
package deps

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// EnvVar overrides the location of the .deps folder.
const EnvVar = "LATENTLM_DEPS"

const setupHint = "run `make setup` (or scripts/setup.sh) in the repository first"

// Dir returns the .deps folder: $LATENTLM_DEPS, else the first .deps found
// walking up from the working directory, else from the executable's folder.
func Dir() (string, error) {
	if d := os.Getenv(EnvVar); d != "" {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			return "", fmt.Errorf("%s=%s is not a folder", EnvVar, d)
		}
		return d, nil
	}
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, start := range starts {
		for dir := start; ; dir = filepath.Dir(dir) {
			cand := filepath.Join(dir, ".deps")
			if st, err := os.Stat(cand); err == nil && st.IsDir() {
				return cand, nil
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	return "", errors.New("no .deps folder found: " + setupHint)
}

// ONNXRuntimeLibrary returns the path of the ONNX Runtime shared library.
func ONNXRuntimeLibrary() (string, error) {
	d, err := Dir()
	if err != nil {
		return "", fmt.Errorf("ONNX Runtime library not found: %w", err)
	}
	p := filepath.Join(d, "onnxruntime", "libonnxruntime.so.1")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("ONNX Runtime library not found at %s: %s", p, setupHint)
	}
	return p, nil
}

// Item is one installed dependency, for `latentlm info`.
type Item struct {
	Name, Path string
	Present    bool
	Detail     string
}

// Status lists the dependencies and whether each is present.
func Status() []Item {
	d, err := Dir()
	if err != nil {
		return []Item{{Name: ".deps", Detail: err.Error()}}
	}
	check := func(name string, parts ...string) Item {
		p := filepath.Join(append([]string{d}, parts...)...)
		_, err := os.Stat(p)
		return Item{Name: name, Path: p, Present: err == nil}
	}
	return []Item{
		check("onnxruntime", "onnxruntime", "libonnxruntime.so.1"),
		check("mnist", "mnist"),
		check("fashion-mnist", "fashion-mnist"),
	}
}
