package imagefolder

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// writeFile writes data to dir/rel, making folders.
func writeFile(t *testing.T, dir, rel string, data []byte) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func encodePNG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodeJPEG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// grayImage makes a w×h gray image from row-major values.
func grayImage(w, h int, v []uint8) *image.Gray {
	g := image.NewGray(image.Rect(0, 0, w, h))
	copy(g.Pix, v)
	return g
}

// colourImage is a w×h opaque image with a horizontal red ramp.
func colourImage(w, h int) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			m.SetNRGBA(x, y, color.NRGBA{R: uint8(255 * x / max(1, w-1)), G: 40, B: uint8(10 * y), A: 255})
		}
	}
	return m
}

// hugePNG is a valid PNG header declaring w×h pixels, with no data.
func hugePNG(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 0 // 8-bit gray
	_ = binary.Write(&b, binary.BigEndian, uint32(len(ihdr)))
	chunk := append([]byte("IHDR"), ihdr...)
	b.Write(chunk)
	_ = binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	return b.Bytes()
}

func TestReadMixedFolder(t *testing.T) {
	dir := t.TempDir()
	// Colour, with alpha.
	rgba := colourImage(8, 4)
	rgba.SetNRGBA(0, 0, color.NRGBA{R: 255, A: 0})
	writeFile(t, dir, "a.png", encodePNG(t, rgba))
	writeFile(t, dir, "b.jpg", encodeJPEG(t, colourImage(5, 7)))
	writeFile(t, dir, "sub/c.png", encodePNG(t, grayImage(3, 3, []uint8{0, 10, 20, 30, 40, 50, 60, 70, 80})))
	pal := image.NewPaletted(image.Rect(0, 0, 4, 4), color.Palette{color.NRGBA{0, 0, 0, 0}, color.NRGBA{0, 200, 0, 255}})
	pal.SetColorIndex(1, 1, 1)
	writeFile(t, dir, "sub/d.png", encodePNG(t, pal))
	g16 := image.NewGray16(image.Rect(0, 0, 2, 3))
	g16.SetGray16(1, 1, color.Gray16{Y: 40000})
	writeFile(t, dir, "sub/deeper/e.PNG", encodePNG(t, g16))
	writeFile(t, dir, "f.jpeg", encodeJPEG(t, grayImage(9, 2, make([]uint8, 18))))
	// Bad files.
	writeFile(t, dir, "bad.png", []byte("this is not a picture"))
	good := encodePNG(t, colourImage(16, 16))
	writeFile(t, dir, "truncated.png", good[:len(good)/2])
	writeFile(t, dir, "big.png", hugePNG(100000, 100000))
	writeFile(t, dir, "gif.png", []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;"))
	// Ignored: non-images, hidden files and folders.
	writeFile(t, dir, "notes.txt", []byte("not a caption of anything"))
	writeFile(t, dir, "README.md", []byte("# my pictures"))
	writeFile(t, dir, ".hidden.png", []byte("junk"))
	writeFile(t, dir, ".git/x.png", []byte("junk"))
	// Links: a loop, a link to a file, a broken link.
	if err := os.Symlink(".", filepath.Join(dir, "loop")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dir, filepath.Join(dir, "sub", "up")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a.png", filepath.Join(dir, "link.png")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("nowhere.png", filepath.Join(dir, "dangling.png")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "pipe.png"), 0o644); err != nil {
		t.Logf("no named pipe: %v", err)
	}

	set, err := Read(dir, Options{Size: 6})
	if err != nil {
		t.Fatal(err)
	}
	wantFiles := []string{"a.png", "b.jpg", "f.jpeg", "link.png", "sub/c.png", "sub/d.png", "sub/deeper/e.PNG"}
	if !slices.Equal(set.Files, wantFiles) {
		t.Errorf("files %q, want %q", set.Files, wantFiles)
	}
	if set.Channels != 3 || set.Size != 6 {
		t.Errorf("channels %d size %d, want 3 and 6", set.Channels, set.Size)
	}
	for i, img := range set.Images {
		if len(img) != 6*6*3 {
			t.Errorf("%s: %d values", set.Files[i], len(img))
		}
		for _, v := range img {
			if !(v >= 0 && v <= 1) || v*255 != float32(math.Round(float64(v*255))) {
				t.Fatalf("%s: value %v is not k/255", set.Files[i], v)
			}
		}
	}
	if len(set.Captions) != len(set.Files) || slices.ContainsFunc(set.Captions, func(s string) bool { return s != "" }) {
		t.Errorf("captions %q, want all empty", set.Captions)
	}
	reasons := map[string]string{}
	for _, s := range set.Skipped {
		reasons[s.File] = s.Reason
	}
	want := map[string]string{
		"bad.png":       "not a PNG or JPEG image (content looks like text)",
		"truncated.png": "invalid PNG",
		"big.png":       "too large",
		"gif.png":       "GIF",
		"loop":          "symbolic link to a folder",
		"sub/up":        "symbolic link to a folder",
		"dangling.png":  "broken symbolic link",
	}
	if _, err := os.Stat(filepath.Join(dir, "pipe.png")); err == nil {
		want["pipe.png"] = "not a regular file (a named pipe)"
	}
	for f, w := range want {
		if !strings.Contains(reasons[f], w) {
			t.Errorf("skipped %s: reason %q, want it to say %q", f, reasons[f], w)
		}
	}
	if len(set.Skipped) != len(want) {
		t.Errorf("skipped %v, want exactly %d", set.Skipped, len(want))
	}
	if !slices.IsSortedFunc(set.Skipped, func(a, b Skip) int { return strings.Compare(a.File, b.File) }) {
		t.Errorf("skipped files not sorted: %v", set.Skipped)
	}
	var log bytes.Buffer
	set.WriteSkipped(&log)
	if !strings.Contains(log.String(), "skipped bad.png: ") || !strings.HasSuffix(log.String(), fmt.Sprintf("%d file(s) skipped, 7 image(s) used\n", len(want))) {
		t.Errorf("report:\n%s", log.String())
	}
}

func TestGrayKeptAsOneChannel(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "gray.png", encodePNG(t, grayImage(4, 4, []uint8{0, 50, 100, 150, 200, 250, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10})))
	writeFile(t, dir, "gray.jpg", encodeJPEG(t, grayImage(5, 3, make([]uint8, 15))))
	// RGB storage of gray content, and gray with transparency over white.
	rgb := image.NewNRGBA(image.Rect(0, 0, 3, 3))
	for i := range 9 {
		rgb.SetNRGBA(i%3, i/3, color.NRGBA{uint8(20 * i), uint8(20 * i), uint8(20 * i), uint8(255 - 25*i)})
	}
	writeFile(t, dir, "rgba.png", encodePNG(t, rgb))
	set, err := Read(dir, Options{Size: 3})
	if err != nil {
		t.Fatal(err)
	}
	if set.Channels != 1 || len(set.Images[0]) != 9 {
		t.Fatalf("channels %d, %d values: want 1 channel for an all-gray folder", set.Channels, len(set.Images[0]))
	}
	// A coloured background makes transparent gray pixels coloured.
	set, err = Read(dir, Options{Size: 3, Background: color.NRGBA{R: 255, A: 255}})
	if err != nil {
		t.Fatal(err)
	}
	if set.Channels != 3 {
		t.Errorf("channels %d over a red background, want 3", set.Channels)
	}
	// One colour image makes the whole set RGB; Mode Gray forces luma.
	writeFile(t, dir, "colour.png", encodePNG(t, colourImage(3, 3)))
	if set, err = Read(dir, Options{Size: 3}); err != nil || set.Channels != 3 {
		t.Fatalf("with a colour image: %v, channels %d; want 3", err, set.Channels)
	}
	if set, err = Read(dir, Options{Size: 3, Mode: Gray}); err != nil || set.Channels != 1 || len(set.Images[0]) != 9 {
		t.Fatalf("Mode Gray: %v, channels %d; want 1", err, set.Channels)
	}
	if set, err = Read(dir, Options{Size: 3, Mode: RGB}); err != nil || set.Channels != 3 {
		t.Fatalf("Mode RGB: %v; want 3 channels", err)
	}
	// gray.png's first row through RGB: three equal channels.
	i := slices.Index(set.Files, "gray.png")
	for k := 0; k < len(set.Images[i]); k += 3 {
		if got := set.Images[i][k : k+3]; got[0] != got[1] || got[1] != got[2] {
			t.Fatalf("gray pixel as RGB: %v, want three equal values", got)
		}
	}
}

func TestGrayModeLuma(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, 1, 1))
	img.SetNRGBA(0, 0, color.NRGBA{R: 200, G: 100, B: 50, A: 255})
	pix, _, err := Decode(encodePNG(t, img), Options{Size: 1, Mode: Gray})
	if err != nil {
		t.Fatal(err)
	}
	want := uint8(math.Round(0.299*200 + 0.587*100 + 0.114*50))
	if len(pix) != 1 || pix[0] != want {
		t.Errorf("luma %v, want [%d]", pix, want)
	}
}

func TestEmptyAndUnusableFolders(t *testing.T) {
	oneLine := func(t *testing.T, err error, want string) {
		t.Helper()
		if err == nil {
			t.Fatalf("no error, want one saying %q", want)
		}
		if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), want) {
			t.Errorf("error %q: want one line saying %q", err, want)
		}
	}
	dir := t.TempDir()
	_, err := Read(dir, Options{Size: 8})
	oneLine(t, err, "no PNG or JPEG files")

	writeFile(t, dir, "a.txt", []byte("words"))
	writeFile(t, dir, "x.png", []byte("garbage"))
	writeFile(t, dir, "y.jpg", []byte("\xff\xd8\xff garbage"))
	_, err = Read(dir, Options{Size: 8})
	oneLine(t, err, "no usable image: 2 file(s) skipped")

	_, err = Read(filepath.Join(dir, "missing"), Options{Size: 8})
	oneLine(t, err, "no such file")
	_, err = Read(filepath.Join(dir, "a.txt"), Options{Size: 8})
	oneLine(t, err, "not a folder")
	_, err = Read(dir, Options{Size: 0})
	oneLine(t, err, "image size 0 out of range")
	_, err = Read(dir, Options{Size: 8, Background: color.NRGBA{A: 10}})
	oneLine(t, err, "not opaque")
}

func TestTooLarge(t *testing.T) {
	_, _, err := Decode(hugePNG(70000, 10), Options{Size: 4})
	var tl *TooLargeError
	if !errors.As(err, &tl) || tl.Width != 70000 || tl.Height != 10 {
		t.Errorf("error %v, want a *TooLargeError for 70000×10", err)
	}
	_, _, err = Decode(hugePNG(1<<14, 1<<14), Options{Size: 4})
	if !errors.As(err, &tl) {
		t.Errorf("error %v, want a *TooLargeError for 2^28 pixels", err)
	}
	// 8000×5000 gray is fine by its header (it fails later, having no
	// data); as 16-bit RGBA it is 320 MB, too much.
	if _, _, err = Decode(hugePNG(8000, 5000), Options{Size: 4}); errors.As(err, &tl) {
		t.Errorf("8000×5000 gray: %v", err)
	}
	rgba16 := hugePNG(8000, 5000)
	rgba16[24], rgba16[25] = 16, 6 // bit depth, colour type RGBA
	binary.BigEndian.PutUint32(rgba16[29:], crc32.ChecksumIEEE(rgba16[12:29]))
	if _, _, err = Decode(rgba16, Options{Size: 4}); !errors.As(err, &tl) || tl.Bytes != 8000*5000*8 {
		t.Errorf("8000×5000 16-bit RGBA: error %v, want a *TooLargeError of 320 MB", err)
	}
}

func TestReadFiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "x/1.png", encodePNG(t, grayImage(2, 2, []uint8{0, 0, 0, 0})))
	writeFile(t, dir, "x/2.png", encodePNG(t, grayImage(2, 2, []uint8{255, 255, 255, 255})))
	writeFile(t, dir, "x/3.png", []byte("broken"))
	set, err := ReadFiles(dir, []string{"x/2.png", "x/3.png", "x/1.png"}, []string{"white", "broken", "black"}, Options{Size: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(set.Files, []string{"x/2.png", "x/1.png"}) || !slices.Equal(set.Captions, []string{"white", "black"}) {
		t.Errorf("files %q captions %q", set.Files, set.Captions)
	}
	if set.Channels != 1 || set.Images[0][0] != 1 || set.Images[1][0] != 0 {
		t.Errorf("channels %d images %v", set.Channels, set.Images)
	}
	if len(set.Skipped) != 1 || set.Skipped[0].File != "x/3.png" {
		t.Errorf("skipped %v", set.Skipped)
	}
	if _, err := ReadFiles(dir, []string{"x/1.png"}, []string{"a", "b"}, Options{Size: 1}); err == nil {
		t.Error("two captions for one file: no error")
	}
}

func TestParseFlags(t *testing.T) {
	for _, s := range []string{"crop", "pad"} {
		if f, err := ParseFit(s); err != nil || f.String() != s {
			t.Errorf("ParseFit(%q) = %v, %v", s, f, err)
		}
	}
	for _, s := range []string{"auto", "rgb", "gray"} {
		if m, err := ParseMode(s); err != nil || m.String() != s {
			t.Errorf("ParseMode(%q) = %v, %v", s, m, err)
		}
	}
	if _, err := ParseFit("stretch"); err == nil {
		t.Error("ParseFit(stretch): no error")
	}
	c, err := ParseBackground("#102030")
	if r, g, b, a := c.RGBA(); err != nil || r>>8 != 0x10 || g>>8 != 0x20 || b>>8 != 0x30 || a != 0xffff {
		t.Errorf("ParseBackground(#102030) = %v, %v", c, err)
	}
	if _, err := ParseBackground("#12345"); err == nil {
		t.Error("ParseBackground(#12345): no error")
	}
}
