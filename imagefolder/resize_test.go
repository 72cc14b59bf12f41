package imagefolder

import (
	"image"
	"image/color"
	"math"
	"slices"
	"testing"
)

// decodeImage runs one image through encode and Decode.
func decodeImage(t *testing.T, img image.Image, o Options) []uint8 {
	t.Helper()
	pix, _, err := Decode(encodePNG(t, img), o)
	if err != nil {
		t.Fatal(err)
	}
	return pix
}

// rows is a gray image of the given rows.
func rows(r ...[]uint8) *image.Gray {
	g := image.NewGray(image.Rect(0, 0, len(r[0]), len(r)))
	for y, row := range r {
		copy(g.Pix[y*g.Stride:], row)
	}
	return g
}

func TestDownscaleIsBlockMeans(t *testing.T) {
	img := rows(
		[]uint8{10, 20, 100, 100},
		[]uint8{30, 40, 96, 104},
		[]uint8{0, 255, 7, 9},
		[]uint8{1, 0, 11, 13},
	)
	got := decodeImage(t, img, Options{Size: 2, Mode: Gray})
	want := []uint8{25, 100, 64, 10} // (10+20+30+40)/4, …, (0+255+1+0)/4 = 64, (7+9+11+13)/4
	if !slices.Equal(got, want) {
		t.Errorf("4×4 → 2×2: %v, want the block means %v", got, want)
	}
}

func TestDownscaleNonIntegerIsAreaWeighted(t *testing.T) {
	// 6 columns to 4: each output pixel covers 1.5 source pixels, so the
	// first is (p0 + p1/2)/1.5 and the second (p1/2 + p2)/1.5.
	row := []uint8{0, 60, 120, 180, 240, 90}
	img := rows(row, row, row, row, row, row)
	got := decodeImage(t, img, Options{Size: 4, Mode: Gray})
	p := func(i int) float64 { return float64(row[i]) }
	want := []float64{
		(p(0) + p(1)/2) / 1.5, (p(1)/2 + p(2)) / 1.5,
		(p(3) + p(4)/2) / 1.5, (p(4)/2 + p(5)) / 1.5,
	}
	for y := range 4 {
		for x := range 4 {
			if d := math.Abs(float64(got[y*4+x]) - want[x]); d > 0.5+1e-9 {
				t.Fatalf("pixel (%d, %d) = %d, want %.2f", x, y, got[y*4+x], want[x])
			}
		}
	}
}

func TestUpscaleIsBilinear(t *testing.T) {
	img := rows([]uint8{0, 200}, []uint8{0, 200})
	got := decodeImage(t, img, Options{Size: 4, Mode: Gray})
	// Output centres sit at source x = −0.25, 0.25, 0.75, 1.25; the ends
	// clamp to the edge pixels.
	want := []uint8{0, 50, 150, 200}
	for y := range 4 {
		if !slices.Equal(got[y*4:y*4+4], want) {
			t.Errorf("row %d: %v, want %v", y, got[y*4:y*4+4], want)
		}
	}
}

func TestCropTakesTheCentre(t *testing.T) {
	img := rows([]uint8{1, 2, 3, 4, 5, 6}, []uint8{7, 8, 9, 10, 11, 12})
	got := decodeImage(t, img, Options{Size: 2, Mode: Gray})
	if want := []uint8{3, 4, 9, 10}; !slices.Equal(got, want) {
		t.Errorf("6×2 cropped to 2×2: %v, want the centre columns %v", got, want)
	}
	tall := rows([]uint8{1, 2}, []uint8{3, 4}, []uint8{5, 6}, []uint8{7, 8}, []uint8{9, 10})
	got = decodeImage(t, tall, Options{Size: 2, Mode: Gray})
	if want := []uint8{3, 4, 5, 6}; !slices.Equal(got, want) {
		t.Errorf("2×5 cropped to 2×2: %v, want rows 1 and 2 %v", got, want)
	}
}

func TestPadKeepsTheBackground(t *testing.T) {
	img := rows([]uint8{10, 20, 30, 40}, []uint8{50, 60, 70, 80})
	red := color.NRGBA{R: 255, A: 255}
	got := decodeImage(t, img, Options{Size: 4, Fit: Pad, Background: red})
	px := func(x, y int) [3]uint8 { i := 3 * (y*4 + x); return [3]uint8{got[i], got[i+1], got[i+2]} }
	for x := range 4 {
		for _, y := range []int{0, 3} {
			if px(x, y) != [3]uint8{255, 0, 0} {
				t.Errorf("padding (%d, %d) = %v, want the red background", x, y, px(x, y))
			}
		}
		for y := 1; y <= 2; y++ {
			v := img.Pix[(y-1)*4+x]
			if px(x, y) != [3]uint8{v, v, v} {
				t.Errorf("image (%d, %d) = %v, want %d", x, y, px(x, y), v)
			}
		}
	}
	// A 4×2 image padded to 2×2 becomes 2×1 at the offset (2−1)/2 = 0:
	// row 0 holds the block means, row 1 is background.
	got = decodeImage(t, img, Options{Size: 2, Fit: Pad, Mode: Gray, Background: color.Black})
	if want := []uint8{35, 55, 0, 0}; !slices.Equal(got, want) {
		t.Errorf("4×2 padded to 2×2: %v, want %v", got, want)
	}
}

func TestAlphaIsPremultiplied(t *testing.T) {
	// A transparent red column beside an opaque blue one, averaged into one
	// pixel: half-covered blue. Averaging unpremultiplied colours would make
	// it purple.
	img := image.NewNRGBA(image.Rect(0, 0, 2, 2))
	for y := range 2 {
		img.SetNRGBA(0, y, color.NRGBA{R: 255, A: 0})
		img.SetNRGBA(1, y, color.NRGBA{B: 255, A: 255})
	}
	// Half of 255 is 127.5, which 16-bit rounding may put on either side.
	near := func(got []uint8, want ...uint8) bool {
		for i, w := range want {
			if d := int(got[i]) - int(w); d < -1 || d > 1 {
				return false
			}
		}
		return true
	}
	got := decodeImage(t, img, Options{Size: 1, Background: color.Black})
	if got[0] != 0 || got[1] != 0 || !near(got, 0, 0, 128) {
		t.Errorf("over black: %v, want [0 0 128±1]", got)
	}
	got = decodeImage(t, img, Options{Size: 1, Background: color.White})
	if got[0] != got[1] || got[2] != 255 || !near(got, 128, 128, 255) {
		t.Errorf("over white: %v, want [128±1 128±1 255]", got)
	}
	// A half-transparent white pixel over black, kept at its size.
	one := image.NewNRGBA(image.Rect(0, 0, 1, 1))
	one.SetNRGBA(0, 0, color.NRGBA{R: 255, G: 255, B: 255, A: 102})
	if got := decodeImage(t, one, Options{Size: 1, Background: color.Black}); got[0] != 102 || got[2] != 102 {
		t.Errorf("40%% white over black: %v, want 102s", got)
	}
}

func TestMixedAxesScaleSeparately(t *testing.T) {
	// 9×2 padded to 4: the columns shrink by 2.25, the rows by 2 (2·4/9
	// rounds to 1), so each axis gets its own area kernel.
	r0 := []uint8{9, 9, 9, 9, 9, 9, 9, 9, 9}
	r1 := []uint8{27, 27, 27, 27, 27, 27, 27, 27, 27}
	got := decodeImage(t, rows(r0, r1), Options{Size: 4, Fit: Pad, Mode: Gray, Background: color.Black})
	// The image is 4×1 at row (4−1)/2 = 1, each pixel the mean 18.
	want := []uint8{0, 0, 0, 0, 18, 18, 18, 18, 0, 0, 0, 0, 0, 0, 0, 0}
	if !slices.Equal(got, want) {
		t.Errorf("9×2 padded to 4×4: %v, want %v", got, want)
	}
	// 3×1 padded to 2: the columns shrink by 1.5, the single row stays.
	got = decodeImage(t, rows([]uint8{0, 90, 180}), Options{Size: 2, Fit: Pad, Mode: Gray, Background: color.Black})
	if want := []uint8{30, 150, 0, 0}; !slices.Equal(got, want) {
		t.Errorf("3×1 padded to 2×2: %v, want %v", got, want)
	}
	// 2×8 padded to 4 is 1×4: both axes halve, one kernel.
	tall := rows([]uint8{0, 100}, []uint8{0, 100}, []uint8{50, 50}, []uint8{50, 50}, []uint8{0, 0}, []uint8{0, 0}, []uint8{200, 200}, []uint8{200, 200})
	got = decodeImage(t, tall, Options{Size: 4, Fit: Pad, Mode: Gray, Background: color.Black})
	want = []uint8{0, 50, 0, 0, 0, 50, 0, 0, 0, 0, 0, 0, 0, 200, 0, 0}
	if !slices.Equal(got, want) {
		t.Errorf("2×8 padded to 4×4: %v, want %v", got, want)
	}
}

func TestGeometry(t *testing.T) {
	for _, c := range []struct {
		w, h, s int
		fit     Fit
		sr, dr  image.Rectangle
	}{
		{10, 4, 8, Crop, image.Rect(3, 0, 7, 4), image.Rect(0, 0, 8, 8)},
		{4, 11, 8, Crop, image.Rect(0, 3, 4, 7), image.Rect(0, 0, 8, 8)},
		{10, 4, 8, Pad, image.Rect(0, 0, 10, 4), image.Rect(0, 2, 8, 5)},     // 4·8/10 = 3.2 → 3
		{4, 10, 8, Pad, image.Rect(0, 0, 4, 10), image.Rect(2, 0, 5, 8)},     // same, transposed
		{1000, 1, 8, Pad, image.Rect(0, 0, 1000, 1), image.Rect(0, 3, 8, 4)}, // at least one row
		{5, 5, 8, Pad, image.Rect(0, 0, 5, 5), image.Rect(0, 0, 8, 8)},
	} {
		sr, dr := geometry(image.Rect(0, 0, c.w, c.h), c.s, c.fit)
		if sr != c.sr || dr != c.dr {
			t.Errorf("%d×%d to %d (%v): %v → %v, want %v → %v", c.w, c.h, c.s, c.fit, sr, dr, c.sr, c.dr)
		}
	}
}
