package latentlm

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"

	"github.com/latentlm/latentlm/imageio"
)

// Image is one generated grayscale image. It implements image.Image, so
// that image/png and friends take it as it is.
type Image struct {
	Class  int       // the class it was generated for
	Size   int       // width and height in pixels
	Pixels []float32 // Size×Size values in [0, 1], row by row; 0 is black
}

// ColorModel is color.GrayModel.
func (im Image) ColorModel() color.Model { return color.GrayModel }

// Bounds is the Size×Size rectangle at the origin.
func (im Image) Bounds() image.Rectangle { return image.Rect(0, 0, im.Size, im.Size) }

// At is the pixel at (x, y), quantised to 8 bits; black outside the image.
func (im Image) At(x, y int) color.Color {
	if x < 0 || y < 0 || x >= im.Size || y >= im.Size || y*im.Size+x >= len(im.Pixels) {
		return color.Gray{}
	}
	return color.Gray{Y: quantize(im.Pixels[y*im.Size+x])}
}

// quantize maps [0, 1] to 0…255, clamping, with NaN as 0.
func quantize(v float32) uint8 {
	f := float64(v)
	if math.IsNaN(f) || f <= 0 {
		return 0
	}
	if f >= 1 {
		return 255
	}
	return uint8(math.Round(f * 255))
}

// WriteGrid writes images as one PNG at path, cols to a row (fewer if there
// are fewer images), each cell upscaled scale times (0 means 1) with 2
// pixels of dark grey padding between cells. All images must have the same
// size. The file is replaced atomically.
func WriteGrid(path string, images []Image, cols, scale int) error {
	if len(images) == 0 {
		return errors.New("latentlm: WriteGrid: no images")
	}
	if cols < 1 {
		return fmt.Errorf("latentlm: WriteGrid: %d columns, want at least 1", cols)
	}
	size := images[0].Size
	px := make([][]float32, len(images))
	for i, im := range images {
		if im.Size != size || len(im.Pixels) != size*size {
			return fmt.Errorf("latentlm: WriteGrid: image %d is %d pixels of side %d, want %d×%d like image 0", i, len(im.Pixels), im.Size, size, size)
		}
		px[i] = im.Pixels
	}
	return imageio.WriteGridOpts(path, px, size, size, cols, imageio.GridOptions{Scale: scale})
}
