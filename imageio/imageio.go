// Package imageio reads and writes the small PNG images the models in this
// project train on and generate (MNIST-style h×w grayscale digits, and the
// h×w×3 RGB images of colour tokenizers, channels last as package
// imagefolder lays them out; values in [0,1]) and lays samples out in grids
// for inspection. Line plots of training curves live in package plot.
//
// Every write goes through internal/atomicfile, so an interrupted or failed
// write never leaves a truncated PNG where a later run would read it.
// Arguments are validated before anything touches the file system, so an
// invalid call never creates or replaces its target.
//
// Reading is deliberately strict: a dataset folder that silently contains a
// JPEG, a colour picture or an image of the wrong size would poison training
// without any visible symptom, so each of those is an error that names the
// offending file.
package imageio

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/latentlm/latentlm/internal/atomicfile"
	"github.com/latentlm/latentlm/internal/boundedio"
)

// gridPad is the padding, in output pixels, around and between grid cells.
const gridPad = 2

// padGray is the dark grey of grid padding: distinct from the black (0)
// background of MNIST digits, so cell boundaries stay visible.
var padGray = color.Gray{Y: 64}

// labelGray is the colour of row labels drawn on the padding background.
var labelGray = color.Gray{Y: 235}

// maxPixels bounds the size of any image this package creates, so a bad
// argument (e.g. a huge Scale) fails cleanly instead of exhausting memory.
const maxPixels = 1 << 28

// pngSignature is the 8-byte magic that starts every PNG file.
var pngSignature = []byte("\x89PNG\r\n\x1a\n")

// GridOptions are the optional settings of WriteGridOpts.
type GridOptions struct {
	// Scale is the integer upscale factor applied to every cell
	// (nearest-neighbour, so pixels stay crisp); 0 means 1.
	Scale int
	// Labels, if non-empty, holds one label per grid row, drawn in a margin
	// at the left of the row. Its length must equal the number of rows.
	Labels []string
	// Channels is 3 for RGB images (h×w×3 values each, channels last) and
	// 1 (or 0) for grayscale ones (h×w values each).
	Channels int
}

// WriteGrid writes images, each h×w grayscale values in [0,1] stored row-major
// (values outside are clamped, NaN becomes 0), as one PNG laid out in rows of
// cols cells (fewer columns if there are fewer images), with 2 pixels of dark
// grey padding around and between cells. An empty images slice is an error.
func WriteGrid(path string, images [][]float32, h, w, cols int) error {
	return WriteGridOpts(path, images, h, w, cols, GridOptions{})
}

// WriteGridOpts is WriteGrid with upscaling, per-row labels and colour
// (GridOptions.Channels).
//
// With c = min(cols, len(images)) columns, r = ceil(len(images)/cols) rows and
// scale s, the image is c·w·s + (c+1)·2 (+ label margin) pixels wide and
// r·h·s + (r+1)·2 pixels tall.
func WriteGridOpts(path string, images [][]float32, h, w, cols int, opts GridOptions) error {
	img, err := gridImage(images, h, w, cols, opts)
	if err != nil {
		return fmt.Errorf("imageio: writing grid %s: %w", path, err)
	}
	return writePNG(path, img)
}

// gridGeometry returns the number of columns and rows and the size of the
// left label margin for a grid; it is split out so tests can check layout.
func gridGeometry(n, cols int, labels []string) (c, r, labelW int) {
	c = min(cols, n)
	r = (n + cols - 1) / cols
	if len(labels) > 0 {
		longest := 0
		for _, l := range labels {
			longest = max(longest, len([]rune(l)))
		}
		labelW = longest*basicfont.Face7x13.Advance + 2*gridPad
	}
	return c, r, labelW
}

func gridImage(images [][]float32, h, w, cols int, opts GridOptions) (image.Image, error) {
	if len(images) == 0 {
		return nil, errors.New("no images")
	}
	if h <= 0 || w <= 0 {
		return nil, fmt.Errorf("invalid image size %dx%d", h, w)
	}
	if cols <= 0 {
		return nil, fmt.Errorf("invalid column count %d", cols)
	}
	s := opts.Scale
	if s == 0 {
		s = 1
	}
	if s < 0 {
		return nil, fmt.Errorf("invalid scale %d", s)
	}
	nc := opts.Channels
	if nc == 0 {
		nc = 1
	}
	if nc != 1 && nc != 3 {
		return nil, fmt.Errorf("invalid channel count %d: want 1 or 3", opts.Channels)
	}
	for i, im := range images {
		if len(im) != h*w*nc {
			if nc == 3 {
				return nil, fmt.Errorf("image %d has %d values, want %d (%dx%dx3)", i, len(im), h*w*nc, h, w)
			}
			return nil, fmt.Errorf("image %d has %d values, want %d (%dx%d)", i, len(im), h*w, h, w)
		}
	}
	c, r, labelW := gridGeometry(len(images), cols, opts.Labels)
	if len(opts.Labels) > 0 && len(opts.Labels) != r {
		return nil, fmt.Errorf("%d labels for %d rows", len(opts.Labels), r)
	}
	cw, ch := int64(w)*int64(s), int64(h)*int64(s)
	W := int64(labelW) + int64(c)*cw + int64(c+1)*gridPad
	H := int64(r)*ch + int64(r+1)*gridPad
	if cw > maxPixels || ch > maxPixels || W*H > maxPixels {
		return nil, fmt.Errorf("grid of %dx%d pixels is too large", H, W)
	}
	// One layout for both kinds: gray cells on a gray image, or h×w×3
	// cells on an opaque NRGBA image with the same grey padding.
	rect := image.Rect(0, 0, int(W), int(H))
	var img draw.Image
	var pix []uint8
	var stride, bpp int
	if nc == 3 {
		m := image.NewNRGBA(rect)
		img, pix, stride, bpp = m, m.Pix, m.Stride, 4
	} else {
		m := image.NewGray(rect)
		img, pix, stride, bpp = m, m.Pix, m.Stride, 1
	}
	draw.Draw(img, img.Bounds(), image.NewUniform(padGray), image.Point{}, draw.Src)
	for i, im := range images {
		x0 := labelW + gridPad + (i%cols)*(int(cw)+gridPad)
		y0 := gridPad + (i/cols)*(int(ch)+gridPad)
		for y := range int(ch) {
			row := pix[(y0+y)*stride+bpp*x0:]
			src := im[(y/s)*w*nc:]
			for x := range int(cw) {
				p := src[(x/s)*nc:]
				if nc == 3 {
					row[4*x], row[4*x+1], row[4*x+2], row[4*x+3] = quantize(p[0]), quantize(p[1]), quantize(p[2]), 255
				} else {
					row[x] = quantize(p[0])
				}
			}
		}
	}
	drawLabels(img, opts.Labels, int(ch))
	return img, nil
}

// drawLabels writes the row labels in the left margin of a grid whose
// cells are ch pixels tall.
func drawLabels(img draw.Image, labels []string, ch int) {
	d := font.Drawer{Dst: img, Src: image.NewUniform(labelGray), Face: basicfont.Face7x13}
	asc, desc := basicfont.Face7x13.Ascent, basicfont.Face7x13.Descent
	for i, l := range labels {
		rowTop := gridPad + i*(ch+gridPad)
		d.Dot = fixed.P(gridPad, rowTop+(ch+asc-desc)/2)
		d.DrawString(l)
	}
}

// WriteGray writes one h×w image of values in [0,1] (clamped, NaN as 0) as
// an 8-bit grayscale PNG.
func WriteGray(path string, img []float32, h, w int) error {
	m, err := Picture(img, h, w, 1)
	if err != nil {
		return fmt.Errorf("imageio: writing %s: %w", path, err)
	}
	return writePNG(path, m)
}

// WriteRGB writes one h×w×3 image (row-major, channels last, values in
// [0,1], clamped, NaN as 0) as an 8-bit RGB PNG.
func WriteRGB(path string, img []float32, h, w int) error {
	m, err := Picture(img, h, w, 3)
	if err != nil {
		return fmt.Errorf("imageio: writing %s: %w", path, err)
	}
	return writePNG(path, m)
}

// Picture turns h×w×channels values in [0,1] (row-major, channels last;
// clamped, NaN as 0) into an 8-bit image: gray for one channel, opaque
// NRGBA for three. WriteGray, WriteRGB and the server's PNGs go through it.
func Picture(img []float32, h, w, channels int) (image.Image, error) {
	if h <= 0 || w <= 0 || int64(h)*int64(w) > maxPixels {
		return nil, fmt.Errorf("invalid image size %dx%d", h, w)
	}
	switch channels {
	case 1:
		if len(img) != h*w {
			return nil, fmt.Errorf("%d values, want %d (%dx%d)", len(img), h*w, h, w)
		}
		g := image.NewGray(image.Rect(0, 0, w, h))
		for i, v := range img {
			g.Pix[i] = quantize(v)
		}
		return g, nil
	case 3:
		if len(img) != h*w*3 {
			return nil, fmt.Errorf("%d values, want %d (%dx%dx3)", len(img), h*w*3, h, w)
		}
		m := image.NewNRGBA(image.Rect(0, 0, w, h))
		for i := range h * w {
			m.Pix[4*i], m.Pix[4*i+1], m.Pix[4*i+2], m.Pix[4*i+3] = quantize(img[3*i]), quantize(img[3*i+1]), quantize(img[3*i+2]), 255
		}
		return m, nil
	}
	return nil, fmt.Errorf("invalid channel count %d: want 1 or 3", channels)
}

// quantize maps [0,1] to 0..255, rounding to nearest, clamping out-of-range
// values (generated samples routinely overshoot) and mapping NaN to 0.
func quantize(v float32) uint8 {
	if !(v > 0) { // also catches NaN
		return 0
	}
	if v >= 1 {
		return 255
	}
	return uint8(math.Round(float64(v) * 255))
}

func writePNG(path string, img image.Image) error {
	if err := atomicfile.Write(path, func(w io.Writer) error { return png.Encode(w, img) }); err != nil {
		return fmt.Errorf("imageio: %w", err)
	}
	return nil
}

// ReadGray reads the PNG at path, which must be exactly h×w pixels, and
// returns its pixels row-major as values in [0,1].
//
// The content, not the file name, decides what is a PNG. Accepted are images
// whose every pixel is gray (R = G = B) and fully opaque, whatever the PNG
// colour type: 8- and 16-bit grayscale, a palette of grays, or RGB(A) that
// merely stores gray. Any pixel with differing channels (a colour image) or
// with transparency is rejected rather than silently converted, since
// either means the file is not the kind of data the models expect.
//
// Only a regular file (after following symbolic links) of at most
// MaxPNGSize bytes is read, and h·w may not exceed 2^28 pixels: a device
// such as /dev/zero would otherwise be read without end, and opening a named
// pipe would block. The type and size are checked before the file is opened.
func ReadGray(path string, h, w int) ([]float32, error) {
	v, err := readGray(path, h, w)
	if err != nil {
		return nil, fmt.Errorf("imageio: reading %s: %w", path, err)
	}
	return v, nil
}

// MaxPNGSize bounds the PNG files ReadGray reads, whole, into memory. The
// images of this project are a few hundred bytes; even an uncompressed 16-bit
// RGBA picture of 2048×2048 pixels fits.
const MaxPNGSize = 64 << 20

func readGray(path string, h, w int) ([]float32, error) { return readPNG(path, h, w, DecodeGray) }

// readPNG reads a PNG file (a regular file of at most MaxPNGSize bytes)
// and decodes it with decode (DecodeGray or DecodeRGB), after checking
// the size asked for.
func readPNG(path string, h, w int, decode func(data []byte, h, w int) ([]float32, error)) ([]float32, error) {
	if h <= 0 || w <= 0 || int64(h)*int64(w) > maxPixels {
		return nil, fmt.Errorf("invalid image size %dx%d", h, w)
	}
	data, err := boundedio.ReadFile(path, MaxPNGSize)
	if err != nil {
		return nil, err
	}
	return decode(data, h, w)
}

// DecodeGray is ReadGray on PNG data held in memory (an upload, say): the
// data must be a PNG of exactly h×w pixels, every one gray and opaque, and
// its pixels come back row-major as values in [0,1]. The size in the header
// is checked before the pixels are decoded, so a huge declared image is
// refused without allocating it; a size other than h×w is a *SizeError.
// The errors name no file and carry no prefix: the caller says what the
// data was.
func DecodeGray(data []byte, h, w int) ([]float32, error) {
	if h <= 0 || w <= 0 || int64(h)*int64(w) > maxPixels {
		return nil, fmt.Errorf("invalid image size %dx%d", h, w)
	}
	return decodeGray(data, h, w)
}

// SizeError is a PNG of another size than the one asked for.
type SizeError struct {
	Height, Width         int // of the PNG
	WantHeight, WantWidth int
}

func (e *SizeError) Error() string {
	return fmt.Sprintf("image is %dx%d (h×w), want %dx%d", e.Height, e.Width, e.WantHeight, e.WantWidth)
}

// decodeGray is readGray on the contents of a file.
func decodeGray(data []byte, h, w int) ([]float32, error) {
	img, err := decodeSized(data, h, w)
	if err != nil {
		return nil, err
	}
	out := make([]float32, 0, h*w)
	b := img.Bounds()
	if g, ok := img.(*image.Gray); ok {
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for _, p := range g.Pix[(y-b.Min.Y)*g.Stride:][:w] {
				out = append(out, float32(p)/255)
			}
		}
		return out, nil
	}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			if a != 0xffff {
				return nil, fmt.Errorf("pixel (x=%d, y=%d) is not opaque (alpha %d/65535); want an opaque grayscale image", x-b.Min.X, y-b.Min.Y, a)
			}
			if r != g || g != bl {
				return nil, fmt.Errorf("colour image: pixel (x=%d, y=%d) has RGB (%d, %d, %d); want grayscale", x-b.Min.X, y-b.Min.Y, r>>8, g>>8, bl>>8)
			}
			out = append(out, float32(r)/0xffff)
		}
	}
	return out, nil
}

// ReadRGB reads the PNG at path, which must be exactly h×w pixels and
// fully opaque, and returns its pixels row-major with the channels
// interleaved (h×w×3, R, G, B), as values in [0,1]. Any PNG colour type is
// accepted: a grayscale image comes back with R = G = B. Transparency is
// an error rather than composited over a guessed background (package
// imagefolder does that, with a background the user chooses). Files are
// read as by ReadGray: regular files of at most MaxPNGSize bytes only.
func ReadRGB(path string, h, w int) ([]float32, error) {
	v, err := readRGB(path, h, w)
	if err != nil {
		return nil, fmt.Errorf("imageio: reading %s: %w", path, err)
	}
	return v, nil
}

func readRGB(path string, h, w int) ([]float32, error) { return readPNG(path, h, w, DecodeRGB) }

// DecodeRGB is ReadRGB on PNG data held in memory; like DecodeGray, its
// errors name no file, and a size other than h×w is a *SizeError.
func DecodeRGB(data []byte, h, w int) ([]float32, error) {
	if h <= 0 || w <= 0 || int64(h)*int64(w) > maxPixels {
		return nil, fmt.Errorf("invalid image size %dx%d", h, w)
	}
	img, err := decodeSized(data, h, w)
	if err != nil {
		return nil, err
	}
	out := make([]float32, 0, h*w*3)
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			if a != 0xffff {
				return nil, fmt.Errorf("pixel (x=%d, y=%d) is not opaque (alpha %d/65535); want an opaque image", x-b.Min.X, y-b.Min.Y, a)
			}
			out = append(out, float32(r)/0xffff, float32(g)/0xffff, float32(bl)/0xffff)
		}
	}
	return out, nil
}

// decodeSized decodes PNG data of exactly h×w pixels. The size in the
// header is checked before the pixels are decoded, so a huge (or
// maliciously declared) image is rejected without allocating it.
func decodeSized(data []byte, h, w int) (image.Image, error) {
	if !bytes.HasPrefix(data, pngSignature) {
		return nil, fmt.Errorf("not a PNG file (content looks like %s)", Sniff(data))
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("invalid PNG: %w", err)
	}
	if cfg.Height != h || cfg.Width != w {
		return nil, &SizeError{Height: cfg.Height, Width: cfg.Width, WantHeight: h, WantWidth: w}
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("invalid PNG: %w", err)
	}
	return img, nil
}

// Sniff names the format of data by its leading bytes ("PNG", "JPEG",
// "GIF", "BMP", "WebP", "TIFF"), else "an empty file", "text" or "unknown
// binary data": what an error says a file holds when it is not the image
// it should be.
func Sniff(data []byte) string {
	switch {
	case len(data) == 0:
		return "an empty file"
	case bytes.HasPrefix(data, pngSignature):
		return "PNG"
	case bytes.HasPrefix(data, []byte("\xff\xd8\xff")):
		return "JPEG"
	case bytes.HasPrefix(data, []byte("GIF8")):
		return "GIF"
	case bytes.HasPrefix(data, []byte("BM")):
		return "BMP"
	case bytes.HasPrefix(data, []byte("RIFF")) && len(data) >= 12 && string(data[8:12]) == "WEBP":
		return "WebP"
	case bytes.HasPrefix(data, []byte("II*\x00")), bytes.HasPrefix(data, []byte("MM\x00*")):
		return "TIFF"
	}
	n := min(len(data), 512)
	for _, c := range data[:n] {
		if c < 0x09 || (c > 0x0d && c < 0x20) {
			return "unknown binary data"
		}
	}
	return "text"
}

// ReadDir reads every *.png file (extension matched case-insensitively) in
// dir, sorted by file name, each checked as by ReadGray. It returns the images
// and their base names in the same order. Subdirectories are ignored; any
// other file is an error naming it, because a stray file in a dataset folder
// usually means the folder is not what the caller thinks it is. A folder with
// no PNG files is an error.
//
// dir must be a directory (after following symbolic links), checked before
// it is opened, since opening a named pipe blocks; each file is read as by
// ReadGray, so a .png that is not a regular file, or is larger than
// MaxPNGSize, is an error naming it.
func ReadDir(dir string, h, w int) ([][]float32, []string, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("imageio: reading folder %s: %w", dir, err)
	}
	if !st.IsDir() {
		return nil, nil, fmt.Errorf("imageio: reading folder %s: not a directory (%s)", dir, boundedio.FileKind(st.Mode()))
	}
	entries, err := os.ReadDir(dir) // sorted by file name
	if err != nil {
		return nil, nil, fmt.Errorf("imageio: reading folder %s: %w", dir, err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		if !strings.EqualFold(filepath.Ext(e.Name()), ".png") {
			return nil, nil, fmt.Errorf("imageio: reading folder %s: %s is not a .png file", dir, filepath.Join(dir, e.Name()))
		}
		names = append(names, e.Name())
	}
	if len(names) == 0 {
		return nil, nil, fmt.Errorf("imageio: reading folder %s: no PNG files", dir)
	}
	images := make([][]float32, len(names))
	for i, n := range names {
		if images[i], err = ReadGray(filepath.Join(dir, n), h, w); err != nil {
			return nil, nil, err
		}
	}
	return images, names, nil
}
