package vae

import (
	. "github.com/gomlx/gomlx/core/graph"

	"github.com/latentlm/latentlm/nn"
)

// SSIMWindow is the side of the square SSIM window, metrics.SSIM's.
const SSIMWindow = 7

// The SSIM constants (K1·L)² and (K2·L)² for L = 1, metrics.SSIM's.
const (
	ssimC1 = 0.01 * 0.01
	ssimC2 = 0.03 * 0.03
)

// SSIM is the mean structural similarity of the images x and y, both
// [B, H, W] or [B, H, W, C] in [0, 1], inside a graph: what metrics.SSIM
// gives for each channel of each image (7×7 uniform windows over the valid
// region, sample variances, K1 = 0.01, K2 = 0.03, L = 1), averaged over
// images and channels. It is the optional perceptual term of the tokenizer
// loss (Config.SSIMWeight; docs/DESIGN.md §2 uses none by default).
//
// The window sums are products with a constant banded matrix along each
// side (a box filter as two matrix products), so that every backend can
// differentiate them: ONNX Runtime has no gradient for strided windows,
// and the gradient of a Slice is a Pad it lacks (docs/DESIGN.md §10).
func SSIM(x, y *Node) *Node {
	if x.Rank() == 3 {
		x, y = InsertAxes(x, -1), InsertAxes(y, -1)
	}
	d := x.Shape().Dimensions
	b, h, w, c := d[0], d[1], d[2], d[3]
	planes := func(v *Node) *Node { // [B·C, H, W]
		return Reshape(TransposeAllAxes(v, 0, 3, 1, 2), b*c, h, w)
	}
	x, y = planes(x), planes(y)
	rows, cols := boxMatrix(x.Graph(), x, h), boxMatrix(x.Graph(), x, w)
	// mean averages every window: along W (the last axis), then along H.
	mean := func(v *Node) *Node {
		v = nn.Linear(v, cols)                               // [B·C, H, W′]
		return nn.Linear(TransposeAllAxes(v, 0, 2, 1), rows) // [B·C, W′, H′]
	}
	mx, my := mean(x), mean(y)
	mxx, myy, mxy := mean(Mul(x, x)), mean(Mul(y, y)), mean(Mul(x, y))
	// Sample (co)variances over the n pixels of a window, as metrics.SSIM.
	n := float64(SSIMWindow * SSIMWindow)
	unbias := n / (n - 1)
	vx := MulScalar(Sub(mxx, Mul(mx, mx)), unbias)
	vy := MulScalar(Sub(myy, Mul(my, my)), unbias)
	cov := MulScalar(Sub(mxy, Mul(mx, my)), unbias)
	num := Mul(AddScalar(MulScalar(Mul(mx, my), 2), ssimC1), AddScalar(MulScalar(cov, 2), ssimC2))
	den := Mul(AddScalar(Add(Mul(mx, mx), Mul(my, my)), ssimC1), AddScalar(Add(vx, vy), ssimC2))
	return ReduceAllMean(Div(num, den))
}

// boxMatrix is the constant [n−k+1, n] matrix, of like's dtype, whose row i
// averages the k = SSIMWindow entries i…i+k−1 of a vector: the window
// means of the valid region along one side.
func boxMatrix(g *Graph, like *Node, n int) *Node {
	k := SSIMWindow
	m := make([][]float64, n-k+1)
	for i := range m {
		m[i] = make([]float64, n)
		for j := i; j < i+k; j++ {
			m[i][j] = 1 / float64(k)
		}
	}
	return ConstAsDType(g, like.DType(), m)
}
