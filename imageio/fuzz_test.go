package imageio

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fuzzMaxPixels bounds the images the fuzz targets decode, so that one
// input cannot make an execution slow.
const fuzzMaxPixels = 1 << 16

// fixCRCs returns b with the CRC of every whole chunk recomputed, so that
// the fuzzer's mutations reach the PNG decoder rather than all failing its
// checksum test.
func fixCRCs(b []byte) []byte {
	if !bytes.HasPrefix(b, pngSignature) {
		return b
	}
	b = slices.Clone(b)
	for i := len(pngSignature); i+8 <= len(b); {
		end := int64(i) + 8 + int64(binary.BigEndian.Uint32(b[i:]))
		if end+4 > int64(len(b)) {
			break
		}
		binary.BigEndian.PutUint32(b[end:], crc32.ChecksumIEEE(b[i+4:end]))
		i = int(end) + 4
	}
	return b
}

// encodeFuzzPNG encodes img for the seeds.
func encodeFuzzPNG(tb testing.TB, img image.Image) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// fuzzSeeds are PNG files, valid and not, of 4×3 (h×w) pixels unless noted.
func fuzzSeeds(tb testing.TB) map[string][]byte {
	const h, w = 4, 3
	r := image.Rect(0, 0, w, h)
	gray, g16, rgba, colour, alpha := image.NewGray(r), image.NewGray16(r), image.NewRGBA(r), image.NewRGBA(r), image.NewNRGBA(r)
	pal := make(color.Palette, 16)
	for i := range pal {
		pal[i] = color.Gray{uint8(17 * i)}
	}
	pg := image.NewPaletted(r, pal)
	for y := range h {
		for x := range w {
			v := uint8(20*(y*w+x) + 7)
			gray.SetGray(x, y, color.Gray{v})
			g16.SetGray16(x, y, color.Gray16{uint16(v)*257 + 1})
			rgba.SetRGBA(x, y, color.RGBA{v, v, v, 255})
			colour.SetRGBA(x, y, color.RGBA{v, v / 2, v, 255})
			alpha.SetNRGBA(x, y, color.NRGBA{v, v, v, 128})
			pg.SetColorIndex(x, y, uint8((y*w+x)%16))
		}
	}
	valid := encodeFuzzPNG(tb, gray)
	huge := slices.Clone(valid) // IHDR claims 2^30 × 2^30 pixels
	binary.BigEndian.PutUint32(huge[16:], 1<<30)
	binary.BigEndian.PutUint32(huge[20:], 1<<30)
	badCRC := slices.Clone(valid)
	badCRC[29] ^= 1 // the IHDR CRC
	return map[string][]byte{
		"gray":      valid,
		"gray16":    encodeFuzzPNG(tb, g16),
		"paletted":  encodeFuzzPNG(tb, pg),
		"rgb_gray":  encodeFuzzPNG(tb, rgba),
		"colour":    encodeFuzzPNG(tb, colour),
		"alpha":     encodeFuzzPNG(tb, alpha),
		"28x28":     encodeFuzzPNG(tb, image.NewGray(image.Rect(0, 0, 28, 28))),
		"truncated": valid[:len(valid)/2],
		"bad_crc":   badCRC,
		"huge_dims": fixCRCs(huge),
		"jpeg":      []byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00"),
		"empty":     {},
		"signature": slices.Clone(pngSignature),
	}
}

// FuzzReadGray: no file may panic ReadGray or make it read past its limits,
// every error names the file on one line, and an accepted image has the
// size asked for, values in [0, 1] that agree with the standard decoder, and
// survives a write and read back to within 8-bit rounding.
//
// h and w of 0 ask for the size the file's header declares, so that the
// fuzzer reaches the pixel decoding without having to guess the size; fix
// makes the chunk CRCs right first, for the same reason.
func FuzzReadGray(f *testing.F) {
	for _, b := range fuzzSeeds(f) {
		f.Add(b, uint16(0), uint16(0), false)
		f.Add(b, uint16(4), uint16(3), true)
	}
	f.Add(fuzzSeeds(f)["gray"], uint16(3), uint16(4), false) // h and w swapped
	// One file, rewritten by each execution: they run one at a time in a
	// process.
	path := filepath.Join(f.TempDir(), "in.png")
	f.Fuzz(func(t *testing.T, data []byte, h16, w16 uint16, fix bool) {
		if fix {
			data = fixCRCs(data)
		}
		h, w := int(h16), int(w16)
		if h == 0 && w == 0 {
			cfg, err := png.DecodeConfig(bytes.NewReader(data))
			if err != nil {
				h, w = 1, 1
			} else {
				h, w = cfg.Height, cfg.Width
			}
		}
		if h*w > fuzzMaxPixels {
			return
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := ReadGray(path, h, w)
		if err != nil {
			if got != nil {
				t.Fatalf("values along with error %v", err)
			}
			if msg := err.Error(); !strings.Contains(msg, path) || strings.Contains(msg, "\n") {
				t.Fatalf("error %q does not name %s on one line", msg, path)
			}
			return
		}
		if len(got) != h*w {
			t.Fatalf("%d values for %dx%d", len(got), h, w)
		}
		img, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("accepted a file the standard decoder refuses: %v", err)
		}
		b := img.Bounds()
		if b.Dy() != h || b.Dx() != w {
			t.Fatalf("accepted a %dx%d image as %dx%d", b.Dy(), b.Dx(), h, w)
		}
		for y := range h {
			for x := range w {
				r, g, bl, a := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
				if a != 0xffff || r != g || g != bl {
					t.Fatalf("accepted pixel (%d, %d) = RGBA(%d, %d, %d, %d), not opaque gray", x, y, r, g, bl, a)
				}
				if v := got[y*w+x]; !(v >= 0 && v <= 1) || math.Abs(float64(v)-float64(r)/0xffff) > 1e-6 {
					t.Fatalf("pixel (%d, %d) is %v, the decoder says %v", x, y, v, float64(r)/0xffff)
				}
			}
		}
		// Written back as WriteGray writes (in memory, without its
		// synced file) and read again: the same values to 8 bits.
		g := image.NewGray(image.Rect(0, 0, w, h))
		for i, v := range got {
			g.Pix[i] = quantize(v)
		}
		back, err := decodeGray(encodeFuzzPNG(t, g), h, w)
		if err != nil {
			t.Fatalf("reading back: %v", err)
		}
		for i := range got {
			if math.Abs(float64(back[i]-got[i])) > tol {
				t.Fatalf("value %d is %v after a round trip, was %v", i, back[i], got[i])
			}
		}
	})
}

// dirNamesA and dirNamesB are the names FuzzReadDir gives its two entries,
// chosen by the bits of layout; "" makes the second entry a subfolder.
var (
	dirNamesA = []string{"a.png", "A.PNG", "a.txt", "a"}
	dirNamesB = []string{"b.png", "b.Png", "", "b.jpg"}
	dirSizes  = [][2]int{{4, 3}, {28, 28}, {1, 1}, {3, 4}}
)

// FuzzReadDir: no folder may panic ReadDir; an error names the folder on one
// line, and an accepted folder is exactly its PNG files, sorted, each read
// as ReadGray reads it alone. The fuzzer picks two files' contents and,
// through layout, their names and the image size asked for.
func FuzzReadDir(f *testing.F) {
	s := fuzzSeeds(f)
	f.Add(s["gray"], s["gray16"], uint8(0))
	f.Add(s["paletted"], s["rgb_gray"], uint8(1))
	f.Add(s["gray"], s["gray"], uint8(2<<2)) // second entry a folder
	f.Add(s["28x28"], s["28x28"], uint8(1<<4|1))
	f.Add(s["gray"], s["colour"], uint8(0))
	f.Add(s["gray"], s["gray"], uint8(2))    // a.txt
	f.Add(s["gray"], s["gray"], uint8(3<<2)) // b.jpg
	f.Add(s["jpeg"], s["gray"], uint8(3<<4)) // 3×4 asked, 4×3 given
	f.Add(s["truncated"], s["empty"], uint8(0))
	// One folder, emptied after each execution: they run one at a time in
	// a process.
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, a, b []byte, layout uint8) {
		defer func() {
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
					t.Fatal(err)
				}
			}
		}()
		nameA, nameB := dirNamesA[layout&3], dirNamesB[layout>>2&3]
		size := dirSizes[layout>>4&3]
		if err := os.WriteFile(filepath.Join(dir, nameA), a, 0o644); err != nil {
			t.Fatal(err)
		}
		files := []string{nameA}
		if nameB == "" {
			if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "sub", "c.png"), b, 0o644); err != nil {
				t.Fatal(err)
			}
		} else {
			if err := os.WriteFile(filepath.Join(dir, nameB), b, 0o644); err != nil {
				t.Fatal(err)
			}
			files = append(files, nameB)
		}
		slices.Sort(files)
		imgs, names, err := ReadDir(dir, size[0], size[1])
		if err != nil {
			if imgs != nil || names != nil {
				t.Fatalf("results along with error %v", err)
			}
			if msg := err.Error(); !strings.Contains(msg, dir) || strings.Contains(msg, "\n") {
				t.Fatalf("error %q does not name %s on one line", msg, dir)
			}
			return
		}
		if !slices.Equal(names, files) {
			t.Fatalf("names %v, want %v", names, files)
		}
		if len(imgs) != len(names) {
			t.Fatalf("%d images for %d names", len(imgs), len(names))
		}
		for i, n := range names {
			if !strings.EqualFold(filepath.Ext(n), ".png") {
				t.Fatalf("accepted %s, not a .png file", n)
			}
			one, err := ReadGray(filepath.Join(dir, n), size[0], size[1])
			if err != nil {
				t.Fatalf("ReadDir accepted %s, ReadGray says %v", n, err)
			}
			if !slices.Equal(one, imgs[i]) {
				t.Fatalf("%s: ReadDir and ReadGray disagree", n)
			}
		}
	})
}
