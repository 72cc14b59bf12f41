package recipe

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/latentlm/latentlm/canvas"
	"github.com/latentlm/latentlm/data"
	"github.com/latentlm/latentlm/emoji"
	"github.com/latentlm/latentlm/imagefolder"
	"github.com/latentlm/latentlm/internal/deps"
)

// This file holds the image sets a tokenizer trains and is measured on
// (docs/DESIGN.md §2): the named gray sets (mnist, fashion and the
// canvases), the Twemoji set (package emoji) and a user's folder of PNG and
// JPEG pictures (package imagefolder), all as one ImageSet, batched one way.

// EmojiData is the --data name of the Twemoji set (package emoji).
const EmojiData = "emoji"

// DefaultImageSize is the side to which the pictures of a folder, and the
// emoji, are brought when no size is given: 32 pixels, the small colour
// images the CPU budget of the project trains on.
const DefaultImageSize = 32

// ImageOptions say how the pictures of a folder, or the emoji, become
// square images; the named sets have a size of their own and take none.
type ImageOptions struct {
	// Size is the side of the images: 0 for DefaultImageSize (folders,
	// emoji) or the set's own (named sets, which refuse any other).
	Size int
	// Fit is how a picture that is not square is made square: cropped to
	// its centre (imagefolder.Crop, the default) or padded
	// (imagefolder.Pad).
	Fit imagefolder.Fit
	// Background is the colour transparent pixels and padding become:
	// "white" (also ""), "black" or "#rrggbb".
	Background string
	// CacheDir holds the cache of each folder read (imagefolder.Load);
	// "": ImageCacheDir().
	CacheDir string
}

// background is the background's name, "white" for "".
func (o ImageOptions) background() string {
	if o.Background == "" {
		return "white"
	}
	return o.Background
}

// ImageSet is a split of images in memory, of any of the sets a tokenizer
// trains on. The pixels are bytes (an image's values are k/255, whichever
// set it comes from), a quarter of the memory of float32: 47 MB for MNIST's
// training split. They are scaled to [0, 1] when a batch is gathered.
type ImageSet struct {
	// Name is the data set as the --data flag gives it ("mnist", "emoji",
	// or a folder, as an absolute path); Split is "train" or "test".
	Name, Split string
	// N is the number of images, each Size×Size×Channels values.
	N, Size, Channels int
	// Pixels holds the images one after the other, each row-major with
	// its channels interleaved (H×W×C, the layout of package imagefolder
	// and of vae.Model.Encode).
	Pixels []uint8
	// Files are the images' files relative to their folder (folders and
	// emoji; nil for the named sets), and Captions their captions ("" for
	// none; nil for the named sets).
	Files, Captions []string
	// Fit and Background are those the pictures were read with (folders
	// and emoji).
	Fit        imagefolder.Fit
	Background string
}

// ImageSetOf is a named data set as an ImageSet of one channel, sharing
// its pixels; its images must be square.
func ImageSetOf(ds *data.Dataset) (*ImageSet, error) {
	if ds.Height != ds.Width {
		return nil, fmt.Errorf("%s %s has %d×%d images, want square ones", ds.Name, ds.Split, ds.Height, ds.Width)
	}
	return &ImageSet{Name: ds.Name, Split: ds.Split, N: ds.N, Size: ds.Height, Channels: 1, Pixels: ds.Images}, nil
}

// PerImage is the number of values of one image, Size·Size·Channels.
func (s *ImageSet) PerImage() int { return s.Size * s.Size * s.Channels }

// Float32 writes image i into dst (PerImage values) scaled to [0, 1].
func (s *ImageSet) Float32(i int, dst []float32) {
	per := s.PerImage()
	for k, p := range s.Pixels[i*per : (i+1)*per] {
		dst[k] = float32(p) / 255
	}
}

// Batch gathers the images at indices, scaled to [0, 1], into one flat
// slice: the layout a tensor [len(indices), H, W, C] is built from.
func (s *ImageSet) Batch(indices []int) []float32 {
	per := s.PerImage()
	out := make([]float32, len(indices)*per)
	for j, i := range indices {
		s.Float32(i, out[j*per:(j+1)*per])
	}
	return out
}

// Batches yields the images in order, n at a time (the last batch may be
// smaller), scaled to [0, 1]; only the first limit images when limit > 0.
// It is what vae.Model.ComputeStats and evaluate.TokenizerImages read.
func (s *ImageSet) Batches(n, limit int) func(yield func([][]float32) error) error {
	return func(yield func([][]float32) error) error {
		if n < 1 {
			return fmt.Errorf("batch size %d: want at least 1", n)
		}
		total := s.N
		if limit > 0 && limit < total {
			total = limit
		}
		per := s.PerImage()
		for start := 0; start < total; start += n {
			batch := make([][]float32, min(start+n, total)-start)
			for i := range batch {
				batch[i] = make([]float32, per)
				s.Float32(start+i, batch[i])
			}
			if err := yield(batch); err != nil {
				return err
			}
		}
		return nil
	}
}

// Info is what a checkpoint records so that the same images can be read
// again (see ImageDataOf): the data set, and for folders and emoji the
// size, channels, fit and background.
func (s *ImageSet) Info() map[string]any {
	info := map[string]any{"data": s.Name}
	if s.Files != nil {
		info["size"], info["channels"], info["fit"], info["background"] = s.Size, s.Channels, s.Fit.String(), s.Background
	}
	return info
}

// ImageDataOf reads back from a tokenizer checkpoint's info (vae.Model.Info)
// the data set it was trained on and, for a folder or the emoji, the
// options its pictures were read with, so that `vae eval` and `vae
// reconstruct` measure it on the same images. A checkpoint without such
// info gives "" and zero options.
func ImageDataOf(info map[string]any) (name string, o ImageOptions) {
	name, _ = info["data"].(string)
	if size, ok := info["size"].(float64); ok && size == math.Trunc(size) && size > 0 && size <= imagefolder.MaxSize {
		o.Size = int(size)
	}
	if f, ok := info["fit"].(string); ok {
		o.Fit, _ = imagefolder.ParseFit(f)
	}
	o.Background, _ = info["background"].(string)
	return name, o
}

// isNamed says whether name is one of the named gray sets.
func isNamed(name string) bool { return slices.Contains(DataNames(), name) }

// IsImageFolder says whether name stands for a user's folder of pictures:
// neither a named set nor emoji. A folder that shares a set's name is
// given with a path: ./mnist.
func IsImageFolder(name string) bool { return !isNamed(name) && name != EmojiData }

// CheckImageData validates the data of a tokenizer: a named set, emoji, or
// an existing folder.
func CheckImageData(name string) error {
	if !IsImageFolder(name) {
		return nil
	}
	st, err := os.Stat(name)
	switch {
	case err == nil && st.IsDir():
		return nil
	case err == nil:
		return fmt.Errorf("--data %s is not a folder: want mnist, fashion, mnist-canvas, fashion-canvas, emoji or a folder of PNG and JPEG images", name)
	case errors.Is(err, os.ErrNotExist) && !strings.ContainsRune(name, filepath.Separator):
		return fmt.Errorf("unknown data set %q: want mnist, fashion, mnist-canvas, fashion-canvas, emoji or a folder of PNG and JPEG images", name)
	}
	return fmt.Errorf("data folder %s: %w", name, unwrapPathError(err))
}

// unwrapPathError drops the operation and path of an *os.PathError, which
// the caller names itself.
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// dataLabel names the data in a run's default folder: the set's name, or
// the last element of a folder's path.
func dataLabel(name string) string {
	if !IsImageFolder(name) {
		return name
	}
	base := []byte(filepath.Base(filepath.Clean(name)))
	for i, c := range base {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			base[i] = '_'
		}
	}
	if len(base) == 0 || string(base) == "." || string(base) == ".." || string(base) == "_" {
		return "folder"
	}
	return string(base)
}

// ImageCacheDir is where LoadImages keeps the cache of each folder it
// reads (one file per folder, see imagefolder.Load): .deps/cache/imagefolder
// in a checkout, beside the data setup installs and ignored by git, else
// the user's cache folder (latentlm/imagefolder under os.UserCacheDir, for
// a binary run outside a checkout).
func ImageCacheDir() (string, error) {
	if d, err := deps.Dir(); err == nil {
		return filepath.Join(d, "cache", "imagefolder"), nil
	}
	u, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no folder for the image cache: no .deps and %v", err)
	}
	return filepath.Join(u, "latentlm", "imagefolder"), nil
}

// The held-out shares of the splits LoadImages makes: one folder image in
// folderTestEvery, one emoji (of those the emoji package lets training
// see) in emojiTestEvery.
const (
	folderTestEvery = 10
	emojiTestEvery  = 20
)

// inTest says whether a key is held out, one in every n, by its FNV-1a
// hash: a file's split depends on its name alone, so it never changes as
// the folder grows, and a tokenizer's test images stay unseen.
func inTest(key string, n uint64) bool {
	h := fnv.New64a()
	io.WriteString(h, key)
	return h.Sum64()%n == 0
}

// LoadImages loads a split ("train" or "test") of the images a tokenizer
// trains on, or its first limit images when limit > 0:
//
//   - a named set (mnist, fashion, mnist-canvas, fashion-canvas) as
//     LoadSplit does, one channel, at its own size;
//   - emoji: the Twemoji graphics in RGB at o.Size (default 32). The test
//     split is the held-out emoji/skin-tone combinations of emoji.Split
//     plus one in 20 of the others (by the hash of its code points), so
//     that it also holds the objects, flags and symbols that have no skin
//     tone; train is the rest. The held-out combinations thus stay unseen
//     by the tokenizer as by the language model.
//   - any other name is a folder of PNG and JPEG pictures, read through
//     imagefolder.Load (and cached, see ImageCacheDir) at o.Size (default
//     32) with o.Fit and o.Background, in one channel if every picture is
//     gray and in RGB otherwise. The test split is one picture in 10, by
//     the FNV-1a hash of its path in the folder: a picture's split never
//     changes when others are added. A folder needs at least one picture
//     in each split.
//
// log receives imagefolder's one-line messages (the cache, skipped files);
// it may be nil.
func LoadImages(name, split string, o ImageOptions, limit int, log io.Writer) (*ImageSet, error) {
	if err := CheckImageData(name); err != nil {
		return nil, err
	}
	if split != "train" && split != "test" && !(canvas.IsCanvas(name) && split == "judge") {
		return nil, fmt.Errorf("unknown split %q of %s: want train or test", split, name)
	}
	if isNamed(name) {
		if o.Size != 0 && o.Size != imageSize(name) {
			return nil, &OptionError{Option: "size", Problem: fmt.Sprintf("%d: %s has %d×%d images (--size is for folders and emoji)", o.Size, name, imageSize(name), imageSize(name))}
		}
		ds, err := LoadSplit(name, split, limit)
		if err != nil {
			return nil, err
		}
		return ImageSetOf(ds)
	}
	if o.Size == 0 {
		o.Size = DefaultImageSize
	}
	if o.Size < 1 || o.Size > imagefolder.MaxSize {
		return nil, &OptionError{Option: "size", Problem: fmt.Sprintf("%d out of range 1…%d", o.Size, imagefolder.MaxSize)}
	}
	bg, err := imagefolder.ParseBackground(o.background())
	if err != nil {
		return nil, &OptionError{Option: "background", Problem: fmt.Sprintf("%q: want white, black or #rrggbb", o.Background)}
	}
	cache := o.CacheDir
	if cache == "" {
		if cache, err = ImageCacheDir(); err != nil {
			return nil, err
		}
	}
	fo := imagefolder.Options{Size: o.Size, Fit: o.Fit, Background: bg, Mode: imagefolder.Auto}
	var set *imagefolder.Set
	var keep []bool // by image of set: in the split
	var label string
	if name == EmojiData {
		fo.Mode = imagefolder.RGB
		if set, keep, err = emojiSplit(split, fo, cache, log); err != nil {
			return nil, err
		}
		label = name
	} else {
		if label, err = filepath.Abs(name); err != nil {
			return nil, err
		}
		if set, err = imagefolder.Load(name, cache, fo, log); err != nil {
			return nil, err
		}
		keep = make([]bool, len(set.Files))
		for i, f := range set.Files {
			keep[i] = inTest(f, folderTestEvery) == (split == "test")
		}
	}
	out := &ImageSet{Name: label, Split: split, Size: set.Size, Channels: set.Channels,
		Files: []string{}, Captions: []string{}, Fit: o.Fit, Background: o.background()}
	per := out.PerImage()
	n := 0
	for _, k := range keep {
		if k {
			n++
		}
	}
	if limit > 0 {
		n = min(n, limit)
	}
	out.Pixels = make([]uint8, 0, n*per)
	for i, img := range set.Images {
		if !keep[i] || (limit > 0 && out.N == limit) {
			continue
		}
		for _, v := range img {
			out.Pixels = append(out.Pixels, uint8(math.Round(float64(v)*255)))
		}
		out.Files = append(out.Files, set.Files[i])
		out.Captions = append(out.Captions, set.Captions[i])
		out.N++
		set.Images[i] = nil
	}
	if out.N == 0 {
		return nil, fmt.Errorf("%s: no image in the %s split: of its %d usable image(s), one in %d (by the hash of its file name) is for test, the others for training; add images", name, split, len(set.Files), folderTestEvery)
	}
	if len(out.Pixels) != out.N*per {
		return nil, fmt.Errorf("%s: images of %d values, want %d", name, len(out.Pixels)/out.N, per)
	}
	return out, nil
}

// emojiSplit reads every emoji image through the cache and says which
// belong to the split (see LoadImages); the captions are the emoji's.
func emojiSplit(split string, fo imagefolder.Options, cache string, log io.Writer) (*imagefolder.Set, []bool, error) {
	dir, err := emoji.Dir()
	if err != nil {
		return nil, nil, err
	}
	entries, err := emoji.ReadEntries(dir)
	if err != nil {
		return nil, nil, err
	}
	train, heldout := emoji.Split(entries)
	test := map[string]bool{}
	for _, e := range heldout {
		test[e.File] = true
	}
	for _, e := range train {
		if inTest(e.Unified, emojiTestEvery) {
			test[e.File] = true
		}
	}
	set, err := imagefolder.Load(filepath.Join(dir, emoji.ImageFolder), cache, fo, log)
	if err != nil {
		return nil, nil, fmt.Errorf("emoji: %w", err)
	}
	index := make(map[string]int, len(set.Files))
	for i, f := range set.Files {
		index[f] = i
	}
	keep := make([]bool, len(set.Files))
	for _, e := range entries {
		i, ok := index[e.File]
		if !ok {
			return nil, nil, fmt.Errorf("emoji: %s is missing or unreadable: run `make setup` (or scripts/setup.sh) again", filepath.Join(dir, emoji.ImageFolder, e.File))
		}
		set.Captions[i] = e.Caption
		keep[i] = test[e.File] == (split == "test")
	}
	return set, keep, nil
}
