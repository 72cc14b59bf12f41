package data

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/latentlm/latentlm/internal/deps"
)

func TestRealData(t *testing.T) {
	if _, err := deps.Dir(); err != nil {
		t.Skipf("no .deps folder (run `make setup`): %v", err)
	}
	for _, name := range Names {
		var first []uint8
		for _, s := range []struct {
			split string
			n     int
		}{{"train", 60000}, {"test", 10000}} {
			d, err := Load(name, s.split)
			if err != nil {
				t.Fatal(err)
			}
			if d.N != s.n || d.Height != 28 || d.Width != 28 || len(d.Images) != s.n*784 || len(d.Labels) != s.n {
				t.Fatalf("%s/%s: %d images of %d×%d", name, s.split, d.N, d.Height, d.Width)
			}
			var hist [Classes]int
			for _, l := range d.Labels {
				hist[l]++
			}
			for c, k := range hist {
				if f := float64(k) / float64(s.n); f < 0.05 || f > 0.15 {
					t.Errorf("%s/%s: class %d is %.1f%% of the data", name, s.split, c, 100*f)
				}
			}
			head := d.Images[:784*1000]
			lo, hi := slices.Min(head), slices.Max(head)
			var sum float64
			for _, p := range head {
				sum += float64(p)
			}
			if mean := sum / float64(len(head)) / 255; lo != 0 || hi != 255 || mean < 0.05 || mean > 0.5 {
				t.Errorf("%s/%s: pixels %d…%d, mean %.3f", name, s.split, lo, hi, mean)
			}
			px, last := make([]float32, 784), d.Image(d.N-1)
			d.Float32(d.N-1, px)
			for k, v := range px {
				if v < 0 || v > 1 || v != float32(last[k])/255 {
					t.Fatalf("%s/%s: Float32 gave %v for pixel %d", name, s.split, v, last[k])
				}
			}
			if first == nil {
				first = d.Image(0)
			} else if bytes.Equal(first, d.Image(0)) {
				t.Errorf("%s: train and test start with the same image", name)
			}
		}
	}
}

func TestPermutation(t *testing.T) {
	a, b, c := Permutation(1000, 1), Permutation(1000, 1), Permutation(1000, 2)
	if !slices.Equal(a, b) {
		t.Fatal("same seed gave different permutations")
	}
	if slices.Equal(a, c) {
		t.Error("different seeds gave the same permutation")
	}
	s := slices.Clone(a)
	slices.Sort(s)
	for i, v := range s {
		if v != i {
			t.Fatalf("not a permutation of 0…999: sorted[%d] = %d", i, v)
		}
	}
	// Resumed and repeated runs rely on the order; a Go release that changed
	// it would show here first.
	if got, want := Permutation(10, 42), []int{4, 0, 8, 7, 9, 2, 3, 5, 6, 1}; !slices.Equal(got, want) {
		t.Errorf("Permutation(10, 42) = %v, was %v", got, want)
	}
}

func TestBatches(t *testing.T) {
	const n, size = 103, 10
	seen := make([]int, n)
	var lens []int
	for b := range Batches(n, size, 7, false) {
		lens = append(lens, len(b))
		for _, i := range b {
			seen[i]++
		}
	}
	for i, k := range seen {
		if k != 1 {
			t.Fatalf("index %d seen %d times in one epoch", i, k)
		}
	}
	if len(lens) != 11 || lens[10] != 3 {
		t.Errorf("batch sizes %v, want ten of 10 and one of 3", lens)
	}
	// dropLast: the same batches as BatchIndices' first epoch.
	step := int64(0)
	for b := range Batches(n, size, 7, true) {
		if want := BatchIndices(n, size, step, 7); !slices.Equal(b, want) {
			t.Fatalf("batch %d: %v, BatchIndices gives %v", step, b, want)
		}
		step++
	}
	if step != n/size {
		t.Errorf("dropLast gave %d batches, want %d", step, n/size)
	}
	// Breaking out early must not panic.
	for range Batches(n, size, 7, false) {
		break
	}
	// BatchIndices: each epoch covers n/size·size distinct indices, and the
	// second epoch is a different order.
	for epoch := range int64(2) {
		seen := map[int]bool{}
		for s := range int64(n / size) {
			for _, i := range BatchIndices(n, size, epoch*(n/size)+s, 7) {
				if seen[i] {
					t.Fatalf("epoch %d: index %d twice", epoch, i)
				}
				seen[i] = true
			}
		}
		if len(seen) != n/size*size {
			t.Fatalf("epoch %d covered %d indices", epoch, len(seen))
		}
	}
	if slices.Equal(BatchIndices(n, size, 0, 7), BatchIndices(n, size, n/size, 7)) {
		t.Error("second epoch repeats the first epoch's order")
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "batch size 11 for 10 items") {
			t.Errorf("BatchIndices(10, 11, …) panicked with %v", r)
		}
	}()
	BatchIndices(10, 11, 0, 1)
}

func TestSubset(t *testing.T) {
	d := &Dataset{Name: "x", N: 3, Height: 1, Width: 2, Images: []uint8{0, 1, 2, 3, 4, 255}, Labels: []uint8{7, 8, 9}}
	s := d.Subset([]int{2, 0})
	if s.N != 2 || !slices.Equal(s.Images, []uint8{4, 255, 0, 1}) || !slices.Equal(s.Labels, []uint8{9, 7}) {
		t.Fatalf("Subset: %+v", s)
	}
	s.Images[0] = 99
	if d.Images[4] != 4 {
		t.Error("Subset shares memory with its source")
	}
	imgs, labels := d.Batch([]int{2})
	if !slices.Equal(imgs, []float32{4.0 / 255, 1}) || !slices.Equal(labels, []int32{9}) {
		t.Errorf("Batch: %v %v", imgs, labels)
	}
	if len(FashionClasses) != Classes || FashionClasses[9] != "Ankle boot" {
		t.Errorf("FashionClasses: %v", FashionClasses)
	}
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// A valid 2-image, 2×2 test split.
var (
	tinyImages = append([]byte{0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2}, 1, 2, 3, 4, 5, 6, 7, 8)
	tinyLabels = []byte{0, 0, 8, 1, 0, 0, 0, 2, 3, 9}
)

const (
	imagesFile = "t10k-images-idx3-ubyte.gz"
	labelsFile = "t10k-labels-idx1-ubyte.gz"
)

func writeTiny(t *testing.T, dir string) {
	t.Helper()
	for name, b := range map[string][]byte{imagesFile: gz(tinyImages), labelsFile: gz(tinyLabels)} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBadFiles(t *testing.T) {
	dir := t.TempDir()
	writeTiny(t, dir)
	d, err := LoadDir(dir, "mnist", "test")
	if err != nil || d.N != 2 || d.Height != 2 || !slices.Equal(d.Image(1), []uint8{5, 6, 7, 8}) || !slices.Equal(d.Labels, []uint8{3, 9}) {
		t.Fatalf("valid tiny files: %v %+v", err, d)
	}
	good := gz(tinyImages)
	badCRC := slices.Clone(good)
	badCRC[len(badCRC)-5] ^= 1 // last byte of the CRC-32
	cases := []struct {
		name, file string
		content    []byte // nil: remove the file
		want       string
	}{
		{"missing images", imagesFile, nil, "missing"},
		{"missing labels", labelsFile, nil, "missing"},
		{"not gzip", imagesFile, []byte("hello"), "not a gzip"},
		{"empty", labelsFile, []byte{}, "not a gzip"},
		{"truncated gzip", imagesFile, good[:len(good)/2], "truncated or corrupt"},
		{"gzip without trailer", imagesFile, good[:len(good)-8], "truncated or corrupt at the end"},
		{"bad crc", imagesFile, badCRC, "truncated or corrupt at the end"},
		{"bad magic", imagesFile, gz([]byte{0, 0, 8, 1, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2}), "bad magic"},
		{"short header", imagesFile, gz([]byte{0, 0, 8, 3, 0, 0}), "truncated header"},
		{"zero dimension", imagesFile, gz([]byte{0, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 2}), "implausible"},
		{"huge dimensions", imagesFile, gz([]byte{0, 0, 8, 3, 0x40, 0, 0, 0, 0x40, 0, 0, 0, 0x40, 0, 0, 0}), "implausible"},
		{"truncated data", imagesFile, gz(tinyImages[:len(tinyImages)-2]), "6 of 8 bytes"},
		{"trailing data", imagesFile, gz(append(slices.Clone(tinyImages), 0)), "1 bytes after"},
		{"wrong count", labelsFile, gz([]byte{0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3}), "3 labels for 2 images"},
		{"label range", labelsFile, gz([]byte{0, 0, 8, 1, 0, 0, 0, 2, 1, 12}), "label 12 of item 1 out of range"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTiny(t, dir)
			path := filepath.Join(dir, c.file)
			if c.content == nil {
				os.Remove(path)
			} else if err := os.WriteFile(path, c.content, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadDir(dir, "mnist", "test")
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("got %v, want an error naming %s with %q", err, path, c.want)
			}
		})
	}
	if _, err := LoadDir(dir, "mnist", "validation"); err == nil || !strings.Contains(err.Error(), "unknown split") {
		t.Errorf("unknown split: %v", err)
	}
	if _, err := Load("cifar", "test"); err == nil || !strings.Contains(err.Error(), "unknown data set") {
		t.Errorf("unknown data set: %v", err)
	}
}

// Every single-byte change and every truncation of a file gives a data set
// or an error, never a panic.
func TestCorruptionNeverPanics(t *testing.T) {
	dir := t.TempDir()
	writeTiny(t, dir)
	path := filepath.Join(dir, imagesFile)
	for _, orig := range [][]byte{gz(tinyImages), tinyImages} {
		var variants [][]byte
		for i := range orig {
			variants = append(variants, orig[:i])
			for _, x := range []byte{0x01, 0xff} {
				v := slices.Clone(orig)
				v[i] ^= x
				variants = append(variants, v)
			}
		}
		for _, v := range variants {
			if err := os.WriteFile(path, v, 0o644); err != nil {
				t.Fatal(err)
			}
			if d, err := LoadDir(dir, "mnist", "test"); err == nil && len(d.Images) != d.N*d.Height*d.Width {
				t.Fatalf("accepted %x with %d bytes for %d×%d×%d", v, len(d.Images), d.N, d.Height, d.Width)
			}
		}
	}
}
