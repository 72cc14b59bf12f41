package imageio_test

import (
	"errors"
	"fmt"
	"image/png"
	"log"
	"math"
	"os"
	"path/filepath"

	"github.com/latentlm/latentlm/imageio"
)

// Write a 2×3 grayscale image and read it back. PNGs hold 8 bits per pixel,
// so values come back rounded to the nearest of 256 levels; values outside
// [0,1], which generated samples often have, are clamped rather than wrapped.
func ExampleWriteGray() {
	dir, err := os.MkdirTemp("", "imageio-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "digit.png")

	img := []float32{
		0, 0.5, 1,
		-0.3, 0.2, 1.7,
	}
	if err := imageio.WriteGray(path, img, 2, 3); err != nil {
		log.Fatal(err)
	}
	back, err := imageio.ReadGray(path, 2, 3)
	if err != nil {
		log.Fatal(err)
	}
	for _, v := range back {
		fmt.Print(math.Round(float64(v)*255), " ")
	}
	fmt.Println()
	// Output: 0 128 255 0 51 255
}

// Read a folder of same-sized digits, sorted by file name. Reading is strict,
// so a picture of the wrong size is an error that names the file and, through
// *SizeError, says what size it was.
func ExampleReadDir() {
	dir, err := os.MkdirTemp("", "imageio-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	for _, name := range []string{"b.png", "a.png", "c.PNG"} {
		if err := imageio.WriteGray(filepath.Join(dir, name), make([]float32, 4*4), 4, 4); err != nil {
			log.Fatal(err)
		}
	}
	imgs, names, err := imageio.ReadDir(dir, 4, 4)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(imgs), "images:", names)

	_, _, err = imageio.ReadDir(dir, 5, 5)
	var se *imageio.SizeError
	fmt.Println("wrong size:", errors.As(err, &se), se.Height, se.Width)
	// Output:
	// 3 images: [a.png b.png c.PNG]
	// wrong size: true 4 4
}

// Lay five 4×4 samples out in rows of three, doubled in size and labelled
// per row, to look at many small samples in one picture. The grid's size
// follows the formula in WriteGridOpts' documentation: the label margin is
// 7 pixels per character plus 4.
func ExampleWriteGridOpts() {
	dir, err := os.MkdirTemp("", "imageio-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "grid.png")

	imgs := make([][]float32, 5)
	for i := range imgs {
		imgs[i] = make([]float32, 4*4)
		imgs[i][i] = 1
	}
	opts := imageio.GridOptions{Scale: 2, Labels: []string{"row0", "row1"}}
	if err := imageio.WriteGridOpts(path, imgs, 4, 4, 3, opts); err != nil {
		log.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil {
		log.Fatal(err)
	}
	// Width: 3 cells of 4·2 pixels, 4 paddings of 2, a margin of 4·7+4.
	// Height: 2 rows of 4·2 pixels, 3 paddings of 2.
	fmt.Printf("%d×%d pixels\n", cfg.Width, cfg.Height)
	// Output: 64×22 pixels
}

// Name what a file really holds when it is not the PNG it should be, so an
// error can say "JPEG" instead of "not a PNG".
func ExampleSniff() {
	fmt.Println(imageio.Sniff([]byte("\xff\xd8\xff\xe0\x00\x10JFIF")))
	fmt.Println(imageio.Sniff([]byte("\x89PNG\r\n\x1a\n")))
	fmt.Println(imageio.Sniff([]byte("404 page not found\n")))
	fmt.Println(imageio.Sniff(nil))
	// Output:
	// JPEG
	// PNG
	// text
	// an empty file
}

// Turn a model's RGB output (channels last, values in [0,1]) into an
// image.Image, for example to encode it in memory rather than to a file.
func ExamplePicture() {
	rgb := []float32{
		1, 0, 0, 0, 1, 0, // a red and a green pixel
		0, 0, 1, 1, 1, 1, // a blue and a white one
	}
	img, err := imageio.Picture(rgb, 2, 2, 3)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(img.Bounds())
	r, g, b, a := img.At(0, 1).RGBA()
	fmt.Println(r>>8, g>>8, b>>8, a>>8)
	// Output:
	// (0,0)-(2,2)
	// 0 0 255 255
}
