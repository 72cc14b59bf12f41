// Package metrics holds the image and distribution measures used to judge
// models (docs/DESIGN.md §9): SSIM here, and the classifier-based scores of
// the evaluation — the Fréchet distance of FID
// (https://arxiv.org/abs/1706.08500), an Inception-Score-like figure
// (https://arxiv.org/abs/1606.03498), k-NN precision/recall
// (https://arxiv.org/abs/1904.06991) and density/coverage
// (https://arxiv.org/abs/2002.09797).
package metrics

import "math"

// SSIM is the mean structural similarity of two h×w images in [0, 1], with
// the standard constants (K1 = 0.01, K2 = 0.03, L = 1) over 7×7 uniform
// windows (as scikit-image's default for small images), valid region only.
func SSIM(a, b []float32, h, w int) float64 {
	const win = 7
	c1, c2 := 0.01*0.01, 0.03*0.03
	n := float64(win * win)
	var total float64
	count := 0
	for y := 0; y+win <= h; y++ {
		for x := 0; x+win <= w; x++ {
			var sa, sb, saa, sbb, sab float64
			for dy := range win {
				for dx := range win {
					p, q := float64(a[(y+dy)*w+x+dx]), float64(b[(y+dy)*w+x+dx])
					sa += p
					sb += q
					saa += p * p
					sbb += q * q
					sab += p * q
				}
			}
			ma, mb := sa/n, sb/n
			// Sample (co)variances, as scikit-image uses.
			va := (saa - n*ma*ma) / (n - 1)
			vb := (sbb - n*mb*mb) / (n - 1)
			cov := (sab - n*ma*mb) / (n - 1)
			total += ((2*ma*mb + c1) * (2*cov + c2)) / ((ma*ma + mb*mb + c1) * (va + vb + c2))
			count++
		}
	}
	if count == 0 {
		return math.NaN()
	}
	return total / float64(count)
}
