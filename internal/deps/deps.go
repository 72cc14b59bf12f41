// Package deps finds the files that scripts/setup.sh installs into .deps/
// (ONNX Runtime, MNIST, Fashion-MNIST), so that no command needs flags or
// environment to run from a checkout, whatever folder it is started in.
package deps

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// EnvVar overrides the search: for installs outside a checkout, and for
// setup.sh, which installs there too.
const EnvVar = "LATENTLM_DEPS"

const setupHint = "run `make setup` (or scripts/setup.sh) in the repository first"

// Dir returns the .deps folder: $LATENTLM_DEPS if set; else the nearest one
// walking up from the working directory, then from the executable's folder.
// On each walk a .deps beside a go.mod wins over a nearer stray one, because
// the repository root is also where the shipped weights are found.
func Dir() (string, error) {
	if d := os.Getenv(EnvVar); d != "" {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			return "", fmt.Errorf("%s=%s is not a folder: %s", EnvVar, d, setupHint)
		}
		return filepath.Abs(d)
	}
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		if exe, err := filepath.EvalSymlinks(exe); err == nil {
			starts = append(starts, filepath.Dir(exe))
		}
	}
	for _, start := range starts {
		if d := walkUp(start, true); d != "" {
			return d, nil
		}
		if d := walkUp(start, false); d != "" {
			return d, nil
		}
	}
	return "", errors.New("no .deps folder found: " + setupHint)
}

// walkUp returns the first start/…/.deps folder, optionally only one that
// has a go.mod beside it, or "".
func walkUp(start string, withGoMod bool) string {
	for dir := start; ; dir = filepath.Dir(dir) {
		if isDir(filepath.Join(dir, ".deps")) {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); !withGoMod || err == nil {
				return filepath.Join(dir, ".deps")
			}
		}
		if filepath.Dir(dir) == dir {
			return ""
		}
	}
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// The layout setup.sh installs; see scripts/checksums.sha256.
const onnxRuntimeLib = "onnxruntime/libonnxruntime.so.1"

var idxFiles = []string{"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}

// ONNXRuntimeLibrary returns the path of the ONNX Runtime shared library, or
// an error that says how to install it.
func ONNXRuntimeLibrary() (string, error) {
	d, err := Dir()
	if err != nil {
		return "", fmt.Errorf("ONNX Runtime library not found: %w", err)
	}
	p := filepath.Join(d, onnxRuntimeLib)
	if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() {
		return "", fmt.Errorf("ONNX Runtime library not found at %s: %s", p, setupHint)
	}
	return p, nil
}

// Item is one dependency as `latentlm info` reports it.
type Item struct {
	Name, Path string
	Present    bool
	Detail     string // what is missing, or the size on disk
}

// Status says which dependencies are installed. It only looks for the files
// (setup.sh verifies their checksums), so that `latentlm info` stays instant.
func Status() []Item {
	items := []Item{
		{Name: "onnxruntime", Path: onnxRuntimeLib},
		{Name: "mnist", Path: "mnist"},
		{Name: "fashion-mnist", Path: "fashion-mnist"},
	}
	d, err := Dir()
	for i := range items {
		it := &items[i]
		if err != nil {
			it.Path, it.Detail = "", err.Error()
			continue
		}
		it.Path = filepath.Join(d, it.Path)
		files := []string{it.Path}
		if it.Name != "onnxruntime" {
			files = files[:0]
			for _, f := range idxFiles {
				files = append(files, filepath.Join(it.Path, f))
			}
		}
		var size int64
		for _, f := range files {
			st, err := os.Stat(f)
			if err != nil || !st.Mode().IsRegular() {
				it.Detail = "missing " + filepath.Base(f) + ": " + setupHint
				break
			}
			size += st.Size()
		}
		if it.Detail == "" {
			it.Present = true
			it.Detail = fmt.Sprintf("%.1f MB", float64(size)/1e6)
		}
	}
	return items
}

// Weights returns the folder of the weights shipped under weights/<name> in
// the repository, which sits beside .deps.
func Weights(name string) (string, error) {
	d, err := Dir()
	if err != nil {
		return "", err
	}
	p := filepath.Join(filepath.Dir(d), "weights", name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("shipped weights %s not found: %w", p, err)
	}
	return p, nil
}
