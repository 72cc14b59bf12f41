// Package data loads the image data sets of the project — MNIST and
// Fashion-MNIST — from the idx files that setup installs, with seeded
// shuffling and batching.
//
// Every file is validated (magic number, dimensions, length, label range),
// and every failure names the file, because a corrupt download should be
// fixed by re-running setup, not debugged.
package data

import (
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/latentlm/latentlm/internal/deps"
)

// Names lists the data sets.
var Names = []string{"mnist", "fashion"}

// FashionClasses names the Fashion-MNIST labels.
var FashionClasses = []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}

// Dataset is a set of 8-bit grayscale images with labels 0…9.
type Dataset struct {
	Name          string
	Split         string
	N             int
	Height, Width int
	Images        []uint8 // N×Height×Width, row-major
	Labels        []uint8
}

// Classes is the number of labels.
const Classes = 10

// Image returns the pixels of image i.
func (d *Dataset) Image(i int) []uint8 {
	s := d.Height * d.Width
	return d.Images[i*s : (i+1)*s]
}

// Float32 writes image i scaled to [0, 1] into dst (length Height·Width).
func (d *Dataset) Float32(i int, dst []float32) {
	for k, p := range d.Image(i) {
		dst[k] = float32(p) / 255
	}
}

// Batch gathers the images (scaled to [0, 1]) and labels of indices.
func (d *Dataset) Batch(indices []int) (images []float32, labels []int32) {
	s := d.Height * d.Width
	images = make([]float32, len(indices)*s)
	labels = make([]int32, len(indices))
	for j, i := range indices {
		d.Float32(i, images[j*s:(j+1)*s])
		labels[j] = int32(d.Labels[i])
	}
	return images, labels
}

// Subset returns a data set of the given images (sharing nothing).
func (d *Dataset) Subset(indices []int) *Dataset {
	s := d.Height * d.Width
	out := &Dataset{Name: d.Name, Split: d.Split, N: len(indices), Height: d.Height, Width: d.Width,
		Images: make([]uint8, 0, len(indices)*s), Labels: make([]uint8, 0, len(indices))}
	for _, i := range indices {
		out.Images = append(out.Images, d.Image(i)...)
		out.Labels = append(out.Labels, d.Labels[i])
	}
	return out
}

// Permutation is a seeded permutation of 0…n−1: the same seed gives the
// same order on every machine.
func Permutation(n int, seed uint64) []int {
	return rand.New(rand.NewPCG(seed, 0x6d6e697374)).Perm(n)
}

// BatchIndices returns the indices of batch number step (0-based) of size
// batch, over epochs of a fresh permutation each (seeded by seed and the
// epoch). It depends only on its arguments, so a resumed run sees exactly
// the batches it would have seen.
func BatchIndices(n, batch int, step int64, seed uint64) []int {
	perEpoch := n / batch
	epoch := step / int64(perEpoch)
	pos := int(step%int64(perEpoch)) * batch
	perm := Permutation(n, seed+uint64(epoch)*0x9e3779b97f4a7c15)
	return perm[pos : pos+batch]
}

var files = map[string]map[string][2]string{
	"mnist": {
		"train": {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"},
		"test":  {"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"},
	},
}

func init() { files["fashion"] = files["mnist"] }

// Folder is the .deps sub-folder of each data set.
var Folder = map[string]string{"mnist": "mnist", "fashion": "fashion-mnist"}

// Load reads a split ("train" or "test") of a data set ("mnist" or
// "fashion") from the folder setup installed.
func Load(name, split string) (*Dataset, error) {
	folder, ok := Folder[name]
	if !ok {
		return nil, fmt.Errorf("unknown data set %q: want mnist or fashion", name)
	}
	dir, err := deps.Dir()
	if err != nil {
		return nil, err
	}
	return LoadDir(filepath.Join(dir, folder), name, split)
}

// LoadDir reads a split from the idx files in dir.
func LoadDir(dir, name, split string) (*Dataset, error) {
	f, ok := files[name][split]
	if !ok {
		return nil, fmt.Errorf("unknown split %q of %s: want train or test", split, name)
	}
	imgPath, lblPath := filepath.Join(dir, f[0]), filepath.Join(dir, f[1])
	images, dims, err := readIdx(imgPath, 0x803, 3)
	if err != nil {
		return nil, err
	}
	labels, ldims, err := readIdx(lblPath, 0x801, 1)
	if err != nil {
		return nil, err
	}
	if ldims[0] != dims[0] {
		return nil, fmt.Errorf("%s: %d labels for %d images in %s", lblPath, ldims[0], dims[0], imgPath)
	}
	for i, l := range labels {
		if l >= Classes {
			return nil, fmt.Errorf("%s: label %d of item %d out of range 0…9", lblPath, l, i)
		}
	}
	return &Dataset{Name: name, Split: split, N: dims[0], Height: dims[1], Width: dims[2], Images: images, Labels: labels}, nil
}

// readIdx reads a gzipped idx file with the given magic and rank.
func readIdx(path string, magic uint32, rank int) ([]uint8, []int, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("%s: missing (run `make setup`)", path)
		}
		return nil, nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: not a gzip file: %v", path, err)
	}
	var hdr [4]byte
	if _, err := io.ReadFull(zr, hdr[:]); err != nil {
		return nil, nil, fmt.Errorf("%s: truncated header: %v", path, err)
	}
	if got := binary.BigEndian.Uint32(hdr[:]); got != magic {
		return nil, nil, fmt.Errorf("%s: bad magic number 0x%x, want 0x%x", path, got, magic)
	}
	dims := make([]int, rank)
	size := 1
	for i := range dims {
		if _, err := io.ReadFull(zr, hdr[:]); err != nil {
			return nil, nil, fmt.Errorf("%s: truncated header: %v", path, err)
		}
		dims[i] = int(binary.BigEndian.Uint32(hdr[:]))
		if dims[i] <= 0 || dims[i] > 1<<24 {
			return nil, nil, fmt.Errorf("%s: implausible dimension %d", path, dims[i])
		}
		size *= dims[i]
	}
	if size > 1<<30 {
		return nil, nil, fmt.Errorf("%s: %v elements is too many", path, dims)
	}
	buf := make([]uint8, size)
	if _, err := io.ReadFull(zr, buf); err != nil {
		return nil, nil, fmt.Errorf("%s: truncated: expected %d bytes of data: %v", path, size, err)
	}
	if n, _ := io.Copy(io.Discard, zr); n > 0 {
		return nil, nil, fmt.Errorf("%s: %d bytes of trailing data", path, n)
	}
	return buf, dims, nil
}
