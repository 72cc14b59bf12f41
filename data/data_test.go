package data

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRealData(t *testing.T) {
	for _, name := range Names {
		for split, n := range map[string]int{"train": 60000, "test": 10000} {
			d, err := Load(name, split)
			if err != nil {
				t.Fatal(err)
			}
			if d.N != n || d.Height != 28 || d.Width != 28 || len(d.Images) != n*784 {
				t.Fatalf("%s/%s: %d images of %dx%d", name, split, d.N, d.Height, d.Width)
			}
			var hist [Classes]int
			for _, l := range d.Labels {
				hist[l]++
			}
			for c, k := range hist {
				if f := float64(k) / float64(n); f < 0.05 || f > 0.15 {
					t.Errorf("%s/%s: class %d is %.1f%% of the data", name, split, c, 100*f)
				}
			}
			var sum float64
			for _, p := range d.Images[:784*100] {
				sum += float64(p)
			}
			if mean := sum / (784 * 100 * 255); mean < 0.05 || mean > 0.5 {
				t.Errorf("%s/%s: implausible mean pixel %.3f", name, split, mean)
			}
		}
	}
}

func TestPermutationAndBatches(t *testing.T) {
	a, b, c := Permutation(100, 1), Permutation(100, 1), Permutation(100, 2)
	same := true
	for i := range a {
		if a[i] != b[i] {
			t.Fatal("same seed gave different permutations")
		}
		same = same && a[i] == c[i]
	}
	if same {
		t.Error("different seeds gave the same permutation")
	}
	// One epoch of batches covers each index exactly once.
	const n, batch = 100, 10
	seen := make([]int, n)
	for step := range int64(n / batch) {
		for _, i := range BatchIndices(n, batch, step, 7) {
			seen[i]++
		}
	}
	for i, k := range seen {
		if k != 1 {
			t.Fatalf("index %d seen %d times in one epoch", i, k)
		}
	}
	if x, y := BatchIndices(n, batch, 10, 7), BatchIndices(n, batch, 0, 7); x[0] == y[0] && x[1] == y[1] && x[2] == y[2] {
		t.Error("second epoch repeats the first epoch's order")
	}
}

func writeGz(t *testing.T, path string, b []byte) {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBadFiles(t *testing.T) {
	good := func(dir string) {
		img := append([]byte{0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2}, 1, 2, 3, 4, 5, 6, 7, 8)
		writeGz(t, filepath.Join(dir, "t10k-images-idx3-ubyte.gz"), img)
		writeGz(t, filepath.Join(dir, "t10k-labels-idx1-ubyte.gz"), []byte{0, 0, 8, 1, 0, 0, 0, 2, 3, 9})
	}
	dir := t.TempDir()
	good(dir)
	if d, err := LoadDir(dir, "mnist", "test"); err != nil || d.N != 2 {
		t.Fatalf("valid tiny files: %v", err)
	}
	cases := map[string]struct {
		file    string
		content []byte
		gz      bool
		want    string
	}{
		"missing":     {"t10k-labels-idx1-ubyte.gz", nil, false, "missing"},
		"not_gzip":    {"t10k-images-idx3-ubyte.gz", []byte("hello"), false, "not a gzip"},
		"bad_magic":   {"t10k-images-idx3-ubyte.gz", []byte{0, 0, 8, 1, 0, 0, 0, 2}, true, "bad magic"},
		"truncated":   {"t10k-images-idx3-ubyte.gz", []byte{0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2}, true, "truncated"},
		"count":       {"t10k-labels-idx1-ubyte.gz", []byte{0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3}, true, "3 labels for 2 images"},
		"label_range": {"t10k-labels-idx1-ubyte.gz", []byte{0, 0, 8, 1, 0, 0, 0, 2, 1, 12}, true, "out of range"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			good(dir)
			path := filepath.Join(dir, c.file)
			switch {
			case c.content == nil:
				os.Remove(path)
			case c.gz:
				writeGz(t, path, c.content)
			default:
				os.WriteFile(path, c.content, 0o644)
			}
			_, err := LoadDir(dir, "mnist", "test")
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("got %v, want an error naming %s with %q", err, path, c.want)
			}
		})
	}
}
