package imagefolder_test

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/latentlm/latentlm/imagefolder"
)

// halves is a w×h picture whose left half is left and right half right.
func halves(w, h int, left, right color.Color) image.Image {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := left
			if x >= w/2 {
				c = right
			}
			m.Set(x, y, c)
		}
	}
	return m
}

// writePNG writes img as a PNG at path, creating its folder.
func writePNG(path string, img image.Image) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		log.Fatal(err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
}

var (
	red  = color.NRGBA{255, 0, 0, 255}
	blue = color.NRGBA{0, 0, 255, 255}
)

// Read a hand-collected folder: pictures of any size in sub-folders, a
// caption from captions.jsonl and one from a .txt sibling. A file that does
// not decode is skipped and reported rather than stopping the run; files
// that are not images are ignored. The zero Mode, Auto, gives every image
// three channels because one of them is in colour.
func ExampleRead() {
	dir, err := os.MkdirTemp("", "imagefolder-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	writePNG(filepath.Join(dir, "flag.png"), halves(40, 20, red, blue))
	writePNG(filepath.Join(dir, "gray", "square.png"), halves(16, 16, color.Gray{0}, color.Gray{255}))
	files := map[string]string{
		"gray/square.txt": "black and white\n",
		"captions.jsonl":  `{"file": "flag.png", "text": "a red and blue flag"}` + "\n",
		"broken.png":      "not a PNG",
		"notes.md":        "ignored",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			log.Fatal(err)
		}
	}

	set, err := imagefolder.Read(dir, imagefolder.Options{Size: 8, Fit: imagefolder.Crop})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d images of %d×%d×%d\n", len(set.Images), set.Size, set.Size, set.Channels)
	for i, f := range set.Files {
		fmt.Printf("%s %q\n", f, set.Captions[i])
	}
	set.WriteSkipped(os.Stdout)
	// Output:
	// 2 images of 8×8×3
	// flag.png "a red and blue flag"
	// gray/square.png "black and white"
	// imagefolder: skipped broken.png: not a PNG or JPEG image (content looks like text)
	// imagefolder: 1 file(s) skipped, 2 image(s) used
}

// Decode brings one picture to the square the tokenizer reads. An 8×4 flag,
// red on the left and blue on the right, becomes 4×4: Crop keeps its centre
// square, half red and half blue; Pad shrinks the whole flag to 4×2 and
// centres it on the background (white unless Options.Background says
// otherwise), one row above and one below.
func ExampleDecode() {
	var buf bytes.Buffer
	if err := png.Encode(&buf, halves(8, 4, red, blue)); err != nil {
		log.Fatal(err)
	}
	for _, fit := range []imagefolder.Fit{imagefolder.Crop, imagefolder.Pad} {
		pix, gray, err := imagefolder.Decode(buf.Bytes(), imagefolder.Options{Size: 4, Fit: fit, Mode: imagefolder.RGB})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(fit, "gray:", gray)
		for y := range 4 {
			for x := range 4 {
				p := pix[3*(4*y+x):]
				fmt.Printf(" #%02x%02x%02x", p[0], p[1], p[2])
			}
			fmt.Println()
		}
	}
	// Output:
	// crop gray: false
	//  #ff0000 #ff0000 #0000ff #0000ff
	//  #ff0000 #ff0000 #0000ff #0000ff
	//  #ff0000 #ff0000 #0000ff #0000ff
	//  #ff0000 #ff0000 #0000ff #0000ff
	// pad gray: false
	//  #ffffff #ffffff #ffffff #ffffff
	//  #ff0000 #ff0000 #0000ff #0000ff
	//  #ff0000 #ff0000 #0000ff #0000ff
	//  #ffffff #ffffff #ffffff #ffffff
}

// Load reads a folder through a cache file: the first call scans the folder
// and writes the cache, later calls read the cache alone, until an image or
// caption file changes.
func ExampleLoad() {
	root, err := os.MkdirTemp("", "imagefolder-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)
	dir, cache := filepath.Join(root, "pictures"), filepath.Join(root, "cache")
	writePNG(filepath.Join(dir, "a.png"), halves(4, 4, red, blue))
	writePNG(filepath.Join(dir, "b.png"), halves(4, 4, blue, red))

	o := imagefolder.Options{Size: 4}
	for range 2 {
		var logged strings.Builder
		set, err := imagefolder.Load(dir, cache, o, &logged)
		if err != nil {
			log.Fatal(err)
		}
		fromCache := strings.Contains(logged.String(), "from the cache")
		fmt.Println(len(set.Images), "images, from the cache:", fromCache)
	}
	// Output:
	// 2 images, from the cache: false
	// 2 images, from the cache: true
}

// The options come from command-line flags; each parser names what it
// accepts when given something else.
func ExampleParseBackground() {
	c, err := imagefolder.ParseBackground("#336699")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(c)
	fit, _ := imagefolder.ParseFit("pad")
	mode, _ := imagefolder.ParseMode("gray")
	fmt.Println(fit, mode)
	_, err = imagefolder.ParseBackground("teal")
	fmt.Println(err)
	// Output:
	// {51 102 153 255}
	// pad gray
	// unknown background "teal": want white, black or #rrggbb
}
