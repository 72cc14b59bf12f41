// Package imagefolder turns a user's folder of pictures into a training set:
// PNG and JPEG files of any size and colour mode, each brought to one square
// size, with optional captions (issue 20).
//
// A folder collected by hand is never clean, so reading is forgiving where
// a file is at fault and strict where the user's instructions are: an image
// that does not decode, is not a regular file or is absurdly large is
// skipped and reported by name with the reason (Set.Skipped), while a
// malformed captions.jsonl is an error that names its line, because
// training on silently dropped captions is worse than stopping. Files that
// are not images (by extension) are ignored, hidden files and folders too,
// and symbolic links to folders are not followed (so a link loop cannot
// hang the walk) but are reported. A folder with nothing usable is a
// one-line error.
//
// # Pixels
//
// Each image becomes Size×Size pixels stored row-major with the channels
// interleaved (H×W×C, channels last): with one channel this is the h×w
// layout of MNIST (package data), and the image tokenizer patchifies it by
// cutting p×p×C blocks. Values are k/255 for bytes k, so that the cache
// stores them exactly as bytes.
//
// The geometry follows Options.Fit: Crop scales the centre square of the
// image to Size×Size; Pad scales the whole image so that its longer side is
// Size and centres it on the background. A side that shrinks is resampled
// by area averaging (every output pixel is the mean of the source area it
// covers), a side that grows by bilinear interpolation, with the resampling
// loops of golang.org/x/image/draw (with a kernel that weighs each source
// pixel by its overlap with the output pixel for the former, its BiLinear
// kernel for the latter). Resampling is done on
// premultiplied colours, so that the invisible colour of transparent pixels
// cannot bleed into their neighbours, and the result is composited over
// Options.Background. The arithmetic is on the stored (sRGB-encoded)
// values, as in most image tools, not in linear light.
//
// The channels follow Options.Mode: RGB gives three, Gray one (luma,
// ITU-R BT.601 weights), and Auto one when every usable image comes out
// gray (R = G = B in every pixel, whatever the file's colour type) and
// three otherwise.
//
// JPEG orientation tags (EXIF) are not applied: a photo that a viewer shows
// rotated comes out as stored.
//
// # Captions
//
// An image's caption comes from captions.jsonl at the top of the folder,
// one JSON object a line, {"file": "sub/cat.png", "text": "a cat"} with the
// file relative to the folder, or from a sibling text file with the image's
// name and the extension .txt (sub/cat.txt); either is trimmed of
// surrounding white space. An image without either has the empty caption;
// one with both is an error, since the two might disagree, and so is a
// line of captions.jsonl naming no image file of the folder. Other .txt
// files are ignored.
//
// # Cache
//
// Load scans a folder once into a single cache file and afterwards reads
// only that file, after checking that it was made with the same options
// from the same folder listing (relative path, size and modification time
// of every image and caption file) and that its SHA-256 checksum holds; a
// changed folder, changed options or a corrupt cache is said in one line on
// the log and the folder is scanned again. An edit that keeps both a
// file's size and its modification time (which takes intent, such as
// touch -d) goes unnoticed; delete the cache file to force a scan.
package imagefolder

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // registers the JPEG decoder
	_ "image/png"  // registers the PNG decoder
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/latentlm/latentlm/imageio"
	"github.com/latentlm/latentlm/internal/boundedio"
)

// Limits on what a folder may hold, so that one bad file or a mistaken
// folder (a whole disk) fails cleanly instead of exhausting memory.
const (
	// MaxSize is the largest Options.Size.
	MaxSize = 1024
	// MaxFileSize bounds the bytes of one image file.
	MaxFileSize = 64 << 20
	// MaxPixels bounds the pixels of one decoded image (checked from its
	// header before the pixels are decoded): 64 megapixels, more than a
	// phone photo.
	MaxPixels = 1 << 26
	// MaxDecodedBytes bounds the memory of one decoded image, which
	// depends on its colour type: 64 megapixels of 8-bit RGBA, 32 of
	// 16-bit RGBA, 85 of JPEG's YCbCr.
	MaxDecodedBytes = 1 << 28
	// MaxSide bounds either side of a decoded image.
	MaxSide = 1 << 15
	// MaxImages bounds the image files of one folder.
	MaxImages = 1 << 20
	// MaxTotalBytes bounds the float32 pixels of a whole set.
	MaxTotalBytes = 16 << 30
	// MaxCaptionBytes bounds one caption (a .txt file or a text in
	// captions.jsonl).
	MaxCaptionBytes = 64 << 10
	// MaxCaptionsFileSize bounds captions.jsonl.
	MaxCaptionsFileSize = 256 << 20
)

// maxWorkers bounds the images decoded at once.
const maxWorkers = 4

// CaptionsFile is the name of the captions file at the top of a folder.
const CaptionsFile = "captions.jsonl"

// Fit says how an image that is not square becomes square.
type Fit int

const (
	// Crop scales the centre square of the image to the output size,
	// cutting off the ends of the longer side.
	Crop Fit = iota
	// Pad scales the whole image so that its longer side fits and centres
	// it on the background.
	Pad
)

// String gives "crop" or "pad", the flag values.
func (f Fit) String() string {
	switch f {
	case Crop:
		return "crop"
	case Pad:
		return "pad"
	}
	return "Fit(" + strconv.Itoa(int(f)) + ")"
}

// ParseFit reads "crop" or "pad".
func ParseFit(s string) (Fit, error) {
	switch s {
	case "crop":
		return Crop, nil
	case "pad":
		return Pad, nil
	}
	return 0, fmt.Errorf("unknown fit %q: want crop or pad", s)
}

// Mode says how many channels the images get.
type Mode int

const (
	// Auto keeps grayscale as one channel when every usable image is gray,
	// and gives three otherwise.
	Auto Mode = iota
	// RGB always gives three channels.
	RGB
	// Gray always gives one channel, the luma of colour images.
	Gray
)

// String gives "auto", "rgb" or "gray", the flag values.
func (m Mode) String() string {
	switch m {
	case Auto:
		return "auto"
	case RGB:
		return "rgb"
	case Gray:
		return "gray"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// ParseMode reads "auto", "rgb" or "gray".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "auto":
		return Auto, nil
	case "rgb":
		return RGB, nil
	case "gray", "grey":
		return Gray, nil
	}
	return 0, fmt.Errorf("unknown colour mode %q: want auto, rgb or gray", s)
}

// ParseBackground reads a background colour: "white", "black" or
// "#rrggbb".
func ParseBackground(s string) (color.Color, error) {
	switch s {
	case "white":
		return color.White, nil
	case "black":
		return color.Black, nil
	}
	if len(s) == 7 && s[0] == '#' {
		if v, err := strconv.ParseUint(s[1:], 16, 32); err == nil {
			return color.NRGBA{R: uint8(v >> 16), G: uint8(v >> 8), B: uint8(v), A: 255}, nil
		}
	}
	return nil, fmt.Errorf("unknown background %q: want white, black or #rrggbb", s)
}

// Options say what every image is turned into.
type Options struct {
	// Size is the side of the square output, 1…MaxSize pixels.
	Size int
	// Fit is Crop or Pad.
	Fit Fit
	// Background is the opaque colour transparent pixels and padding are
	// composited over; nil means white.
	Background color.Color
	// Mode is Auto, RGB or Gray.
	Mode Mode
}

// background returns the background as RGB in [0, 1].
func (o Options) background() [3]float64 {
	c := o.Background
	if c == nil {
		c = color.White
	}
	r, g, b, _ := c.RGBA()
	return [3]float64{float64(r) / 0xffff, float64(g) / 0xffff, float64(b) / 0xffff}
}

// backgroundKey is the background as 16-bit RGB, for the cache header.
func (o Options) backgroundKey() [3]uint16 {
	bg := o.background()
	return [3]uint16{uint16(bg[0]*0xffff + 0.5), uint16(bg[1]*0xffff + 0.5), uint16(bg[2]*0xffff + 0.5)}
}

// Validate checks the options.
func (o Options) Validate() error {
	if o.Size < 1 || o.Size > MaxSize {
		return fmt.Errorf("image size %d out of range 1…%d", o.Size, MaxSize)
	}
	if o.Fit != Crop && o.Fit != Pad {
		return fmt.Errorf("invalid fit %v", o.Fit)
	}
	if o.Mode != Auto && o.Mode != RGB && o.Mode != Gray {
		return fmt.Errorf("invalid colour mode %v", o.Mode)
	}
	if o.Background != nil {
		if _, _, _, a := o.Background.RGBA(); a != 0xffff {
			return fmt.Errorf("background %v is not opaque", o.Background)
		}
	}
	return nil
}

// Set is a folder of images brought to one size.
type Set struct {
	// Channels is 1 or 3; Size the side of every image.
	Channels, Size int
	// Files are the images' paths relative to the folder, slash-separated:
	// in lexical order from Read and Load, in the order given to ReadFiles.
	Files []string
	// Images holds Size×Size×Channels values per image, row-major with the
	// channels interleaved (H×W×C), each k/255 for a byte k.
	Images [][]float32
	// Captions holds one caption per image; "" where there is none.
	Captions []string
	// Skipped lists the files that were left out, and why.
	Skipped []Skip
}

// Skip is a file left out of a Set.
type Skip struct {
	File   string // relative to the folder, slash-separated
	Reason string
}

// WriteSkipped writes one line per skipped file and a count at the end,
// nothing when none was skipped.
func (s *Set) WriteSkipped(w io.Writer) {
	if len(s.Skipped) == 0 {
		return
	}
	for _, k := range s.Skipped {
		fmt.Fprintf(w, "imagefolder: skipped %s: %s\n", quoteName(k.File), k.Reason)
	}
	fmt.Fprintf(w, "imagefolder: %d file(s) skipped, %d image(s) used\n", len(s.Skipped), len(s.Files))
}

// TooLargeError is an image whose header declares more pixels than
// MaxPixels, a side longer than MaxSide or more than MaxDecodedBytes of
// pixel data; it is refused before its pixels are decoded.
type TooLargeError struct {
	Width, Height int
	Bytes         int64 // of the decoded pixels
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("image of %d×%d pixels (%d MB decoded) is too large (limits: %d megapixels, %d a side, %d MB)",
		e.Width, e.Height, e.Bytes>>20, MaxPixels>>20, MaxSide, MaxDecodedBytes>>20)
}

// bytesPerPixel is the memory a decoder takes per pixel for a colour model.
func bytesPerPixel(m color.Model) int64 {
	switch m {
	case color.GrayModel:
		return 1
	case color.Gray16Model:
		return 2
	case color.YCbCrModel:
		return 3 // at most, for 4:4:4
	case color.RGBAModel, color.NRGBAModel, color.CMYKModel:
		return 4
	}
	if _, ok := m.(color.Palette); ok {
		return 1
	}
	return 8
}

// imageExts are the extensions of the files taken for images, lower-case.
var imageExts = []string{".png", ".jpg", ".jpeg"}

func isImageName(name string) bool {
	return slices.Contains(imageExts, strings.ToLower(path.Ext(name)))
}

// Decode turns the bytes of one PNG or JPEG file into Size×Size×C pixels
// (C = 1 for Mode Gray, else 3) as bytes, and says whether the result is
// gray (R = G = B everywhere; always true for Mode Gray). The header is
// checked first: an image over the limits is a *TooLargeError.
func Decode(data []byte, o Options) (pix []uint8, gray bool, err error) {
	if err := o.Validate(); err != nil {
		return nil, false, err
	}
	return decode(data, o)
}

func decode(data []byte, o Options) ([]uint8, bool, error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		if errors.Is(err, image.ErrFormat) {
			return nil, false, fmt.Errorf("not a PNG or JPEG image (content looks like %s)", imageio.Sniff(data))
		}
		return nil, false, fmt.Errorf("invalid %s header: %v", imageio.Sniff(data), err)
	}
	if format != "png" && format != "jpeg" {
		return nil, false, fmt.Errorf("a %s image, not PNG or JPEG", strings.ToUpper(format))
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, false, fmt.Errorf("empty image of %d×%d pixels", cfg.Width, cfg.Height)
	}
	px := int64(cfg.Width) * int64(cfg.Height)
	if n := px * bytesPerPixel(cfg.ColorModel); cfg.Width > MaxSide || cfg.Height > MaxSide || px > MaxPixels || n > MaxDecodedBytes {
		return nil, false, &TooLargeError{Width: cfg.Width, Height: cfg.Height, Bytes: n}
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, false, fmt.Errorf("invalid %s: %v", strings.ToUpper(format), err)
	}
	pix, gray := convert(img, o)
	return pix, gray, nil
}

// quoteName quotes a file name that holds control characters (a newline,
// say), so that every report stays one line per file.
func quoteName(name string) string {
	if strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return strconv.Quote(name)
	}
	return name
}

// Read reads every PNG and JPEG file under dir (sub-folders included) as
// the options say, with the captions of captions.jsonl and .txt siblings.
// Files that cannot be used are in Set.Skipped; a folder without a usable
// image is an error, and so is a malformed captions file.
func Read(dir string, o Options) (*Set, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("imagefolder: %s: %w", dir, err)
	}
	l, err := scan(dir)
	if err != nil {
		return nil, err
	}
	return l.read(o)
}

// ReadFiles reads the given image files, paths relative to root with
// slashes, in that order, as Read does a folder's; captions (nil, or one per
// file) go with them. Files that cannot be used are in Set.Skipped, and the
// other slices keep the order of files. With no usable file it is an error.
func ReadFiles(root string, files, captions []string, o Options) (*Set, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("imagefolder: %s: %w", root, err)
	}
	if captions != nil && len(captions) != len(files) {
		return nil, fmt.Errorf("imagefolder: %s: %d captions for %d files", root, len(captions), len(files))
	}
	if captions == nil {
		captions = make([]string, len(files))
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("imagefolder: %s: no files to read", root)
	}
	set, err := readImages(root, files, captions, o)
	if err != nil {
		return nil, err
	}
	if len(set.Files) == 0 {
		return nil, noUsable(root, set.Skipped, 0)
	}
	return set, nil
}

// noUsable is the one-line error of a folder where every image was skipped.
func noUsable(dir string, skipped []Skip, other int) error {
	first := ""
	if len(skipped) > 0 {
		first = fmt.Sprintf("; first: %s: %s", quoteName(skipped[0].File), skipped[0].Reason)
	}
	return fmt.Errorf("imagefolder: %s: no usable image: %d file(s) skipped, %d other file(s) ignored%s", dir, len(skipped), other, first)
}

// result is one decoded image.
type result struct {
	pix  []uint8
	gray bool
	err  error
}

// readImages decodes the files on up to GOMAXPROCS goroutines (at most
// maxWorkers, which bounds the memory of large photos decoded at once) and
// assembles the set in the order of files.
func readImages(root string, files, captions []string, o Options) (*Set, error) {
	channels := 3
	if o.Mode == Gray {
		channels = 1
	}
	if total := int64(len(files)) * int64(channels) * int64(o.Size) * int64(o.Size) * 4; total > MaxTotalBytes {
		return nil, fmt.Errorf("imagefolder: %s: %d images of %d×%d pixels would take %.1f GB, over the %d GB limit: choose a smaller size", root, len(files), o.Size, o.Size, float64(total)/1e9, MaxTotalBytes>>30)
	}
	results := make([]result, len(files))
	workers := min(runtime.GOMAXPROCS(0), len(files), maxWorkers)
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				results[i] = readOne(filepath.Join(root, filepath.FromSlash(files[i])), o)
			}
		})
	}
	for i := range files {
		next <- i
	}
	close(next)
	wg.Wait()

	set := &Set{Size: o.Size}
	allGray := true
	var used []int
	for i, r := range results {
		if r.err != nil {
			set.Skipped = append(set.Skipped, Skip{File: files[i], Reason: r.err.Error()})
			continue
		}
		used = append(used, i)
		allGray = allGray && r.gray
	}
	set.Channels = 3
	if o.Mode == Gray || (o.Mode == Auto && allGray) {
		set.Channels = 1
	}
	per := o.Size * o.Size * set.Channels
	flat := make([]float32, len(used)*per)
	for j, i := range used {
		img := flat[j*per : (j+1)*per : (j+1)*per]
		pix := results[i].pix
		step := len(pix) / (o.Size * o.Size) // 1 or 3
		if step == set.Channels {
			for k, p := range pix {
				img[k] = float32(p) / 255
			}
		} else { // 3 stored, 1 wanted: the image is gray
			for k := range img {
				img[k] = float32(pix[k*step]) / 255
			}
		}
		results[i].pix = nil
		set.Files = append(set.Files, files[i])
		set.Images = append(set.Images, img)
		set.Captions = append(set.Captions, captions[i])
	}
	return set, nil
}

// readOne reads and decodes one file.
func readOne(file string, o Options) result {
	data, err := boundedio.ReadFile(file, MaxFileSize)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if st, lerr := os.Lstat(file); lerr == nil && st.Mode()&os.ModeSymlink != 0 {
				return result{err: errors.New("broken symbolic link")}
			}
			return result{err: errors.New("missing (removed while the folder was read?)")}
		}
		return result{err: err}
	}
	pix, gray, err := decode(data, o)
	return result{pix: pix, gray: gray, err: err}
}
