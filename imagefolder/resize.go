package imagefolder

import (
	"image"
	"math"

	"golang.org/x/image/draw"
)

// convert brings img to o.Size×o.Size as the package doc says: bytes,
// H×W×3 (H×W for Mode Gray), and whether every pixel is gray.
func convert(img image.Image, o Options) ([]uint8, bool) {
	s := o.Size
	sr, dr := geometry(img.Bounds(), s, o.Fit)
	// Premultiplied 16-bit colour, transparent where nothing is drawn (the
	// padding), so that compositing fills it with the background.
	dst := image.NewRGBA64(image.Rect(0, 0, s, s))
	resample(dst, dr, img, sr)
	return composite(dst, o)
}

// geometry returns the source rectangle and where it goes in the s×s
// output.
func geometry(b image.Rectangle, s int, fit Fit) (sr, dr image.Rectangle) {
	w, h := b.Dx(), b.Dy()
	if fit == Crop {
		side := min(w, h)
		x0, y0 := b.Min.X+(w-side)/2, b.Min.Y+(h-side)/2
		return image.Rect(x0, y0, x0+side, y0+side), image.Rect(0, 0, s, s)
	}
	dw, dh := s, s
	if w > h {
		dh = max(1, (h*s+w/2)/w)
	} else if h > w {
		dw = max(1, (w*s+h/2)/h)
	}
	x0, y0 := (s-dw)/2, (s-dh)/2
	return b, image.Rect(x0, y0, x0+dw, y0+dh)
}

// resample scales src's sr into dst's dr, each axis with its own kernel:
// area averaging where it shrinks, bilinear where it grows. x/image/draw
// uses one kernel for both axes, so where they need different ones it
// scales the columns first and the rows after, through a 16-bit image.
// A kernel leaves an axis of unchanged length as it is.
func resample(dst *image.RGBA64, dr image.Rectangle, src image.Image, sr image.Rectangle) {
	sw, sh, dw, dh := sr.Dx(), sr.Dy(), dr.Dx(), dr.Dy()
	kx, ky := kernel(sw, dw), kernel(sh, dh)
	if (dw >= sw && dh >= sh) || sw*dh == sh*dw {
		// One kernel does: both axes grow (bilinear does not depend on the
		// scale), or both scale by the same factor.
		kx.Scale(dst, dr, src, sr, draw.Src, nil)
		return
	}
	tmp := image.NewRGBA64(image.Rect(0, 0, dw, sh))
	kx.Scale(tmp, tmp.Bounds(), src, sr, draw.Src, nil)
	ky.Scale(dst, dr, tmp, tmp.Bounds(), draw.Src, nil)
}

// kernel returns the kernel that takes n source pixels to m: BiLinear
// when m ≥ n, else area averaging.
func kernel(n, m int) *draw.Kernel {
	if m >= n {
		return draw.BiLinear
	}
	return areaKernel(float64(n) / float64(m))
}

// areaKernel is exact area averaging for a shrink by scale > 1: the weight
// of a source pixel is the length of its overlap with the output pixel's
// footprint. x/image/draw calls At(t) with t the distance between the
// centres in output pixels, so the footprint is [−½, ½] and a source pixel
// is [t − ½/scale, t + ½/scale]; the weights are normalised by their sum.
func areaKernel(scale float64) *draw.Kernel {
	half := 0.5 / scale
	return &draw.Kernel{
		Support: 0.5 + half,
		At: func(t float64) float64 {
			return max(0, min(0.5, t+half)-max(-0.5, t-half))
		},
	}
}

// composite puts the premultiplied pixels of p over the background and
// quantises them to bytes.
func composite(p *image.RGBA64, o Options) ([]uint8, bool) {
	bg := o.background()
	n := o.Size * o.Size
	gray := true
	var out []uint8
	if o.Mode == Gray {
		out = make([]uint8, n)
	} else {
		out = make([]uint8, 3*n)
	}
	for i := range n {
		px := p.Pix[8*i : 8*i+8]
		a := float64(uint16(px[6])<<8|uint16(px[7])) / 0xffff
		var c [3]float64
		for k := range 3 {
			v := float64(uint16(px[2*k])<<8|uint16(px[2*k+1])) / 0xffff
			c[k] = v + (1-a)*bg[k]
		}
		if o.Mode == Gray {
			out[i] = quantize(0.299*c[0] + 0.587*c[1] + 0.114*c[2])
			continue
		}
		r, g, b := quantize(c[0]), quantize(c[1]), quantize(c[2])
		out[3*i], out[3*i+1], out[3*i+2] = r, g, b
		gray = gray && r == g && g == b
	}
	return out, gray
}

// quantize maps [0, 1] to a byte, rounding to nearest and clamping.
func quantize(v float64) uint8 {
	if !(v > 0) {
		return 0
	}
	if v >= 1 {
		return 255
	}
	return uint8(math.Round(v * 255))
}
