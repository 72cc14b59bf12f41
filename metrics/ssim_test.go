package metrics

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestSSIM(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	a := make([]float32, 28*28)
	for i := range a {
		a[i] = rng.Float32()
	}
	if s := SSIM(a, a, 28, 28); math.Abs(s-1) > 1e-12 {
		t.Errorf("SSIM of an image with itself = %v, want 1", s)
	}
	// A constant shift c changes only the luminance term of each window:
	// (2μ(μ+c)+C1)/(μ²+(μ+c)²+C1), which we can compute independently.
	b := make([]float32, len(a))
	for i := range a {
		b[i] = a[i] + 0.1
	}
	var want float64
	count := 0
	for y := 0; y+7 <= 28; y++ {
		for x := 0; x+7 <= 28; x++ {
			var m float64
			for dy := range 7 {
				for dx := range 7 {
					m += float64(a[(y+dy)*28+x+dx])
				}
			}
			m /= 49
			mb := m + 0.1
			want += (2*m*mb + 1e-4) / (m*m + mb*mb + 1e-4)
			count++
		}
	}
	want /= float64(count)
	if s := SSIM(a, b, 28, 28); math.Abs(s-want) > 1e-5 {
		t.Errorf("SSIM of shifted image = %v, want %v", s, want)
	}
	// Noise lowers SSIM below the shifted case.
	for i := range b {
		b[i] = a[i] + float32(rng.NormFloat64()*0.3)
	}
	if s := SSIM(a, b, 28, 28); s > 0.9 {
		t.Errorf("SSIM with heavy noise = %v, want well below 1", s)
	}
}
