package metrics_test

import (
	"fmt"

	"github.com/latentlm/latentlm/metrics"
)

// ExampleFrechetDistance computes the Fréchet distance of FID between small
// hand-made feature sets, where it is known in closed form.
//
// a is the four corners of the square [0, 2]²: mean (1, 1) and sample
// covariance (4/3)·I. b is the corners of [4, 8]×[1, 5], the same square
// scaled by 2 and moved: mean (6, 3), covariance (16/3)·I. For covariances
// that are multiples of I the distance reduces to
// ‖μa−μb‖² + Σᵢ(√λaᵢ − √λbᵢ)² = (25 + 4) + 2·(4/3)·(1 − 2)² = 29 + 8/3 ≈ 31.667.
// c is a moved by (3, 4): same covariance, so only ‖(3, 4)‖² = 25 remains.
func ExampleFrechetDistance() {
	a := [][]float32{{0, 0}, {2, 0}, {0, 2}, {2, 2}}
	b := [][]float32{{4, 1}, {8, 1}, {4, 5}, {8, 5}}
	c := [][]float32{{3, 4}, {5, 4}, {3, 6}, {5, 6}}

	muA, covA, err := metrics.MeanCov(a)
	if err != nil {
		panic(err)
	}
	fmt.Printf("mean a %.3f, covariance a %.3f\n", muA, covA)
	for _, other := range []struct {
		name  string
		feats [][]float32
	}{{"b", b}, {"c", c}} {
		mu, cov, err := metrics.MeanCov(other.feats)
		if err != nil {
			panic(err)
		}
		d, err := metrics.FrechetDistance(muA, covA, mu, cov)
		if err != nil {
			panic(err)
		}
		fmt.Printf("d²(a, %s) = %.3f\n", other.name, d)
	}
	// Output:
	// mean a [1.000 1.000], covariance a [[1.333 0.000] [0.000 1.333]]
	// d²(a, b) = 31.667
	// d²(a, c) = 25.000
}
