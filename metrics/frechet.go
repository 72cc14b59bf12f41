// Fréchet distance (FID-style) between feature sets.
//
// The linear algebra comes from gonum (gonum.org/v1/gonum): stat for the
// means and the covariance, and mat.EigenSym — a port of LAPACK's dsyev
// symmetric eigensolver, in pure Go, well kept and tested upstream — for the
// matrix square roots, instead of maintaining our own eigensolver here.

package metrics

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat"
)

// MeanCov returns the mean and the sample covariance (denominator N−1, as
// numpy.cov and pytorch-fid) of feature vectors, in float64 (gonum's
// stat.Mean and stat.CovarianceMatrix).
func MeanCov(feats [][]float32) (mu []float64, cov [][]float64, err error) {
	n := len(feats)
	if n < 2 {
		return nil, nil, fmt.Errorf("metrics: covariance needs at least 2 vectors, got %d", n)
	}
	d := len(feats[0])
	if d == 0 {
		return nil, nil, errors.New("metrics: covariance of empty vectors")
	}
	// One row per feature dimension, so that each dimension's values are
	// contiguous for stat.Mean; x is its transpose, one row per vector.
	xt := mat.NewDense(d, n, nil)
	for i, f := range feats {
		if len(f) != d {
			return nil, nil, fmt.Errorf("metrics: vector %d has %d values, want %d", i, len(f), d)
		}
		for k, v := range f {
			xt.Set(k, i, float64(v))
		}
	}
	mu = make([]float64, d)
	for k := range mu {
		mu[k] = stat.Mean(xt.RawRowView(k), nil)
	}
	var c mat.SymDense
	stat.CovarianceMatrix(&c, xt.T(), nil)
	return mu, fromSym(&c), nil
}

// FrechetDistance is the squared Fréchet (2-Wasserstein) distance between
// the Gaussians N(mu1, cov1) and N(mu2, cov2), the distance of FID (Heusel
// et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a
// Local Nash Equilibrium", arXiv:1706.08500):
//
//	d² = ‖μ1−μ2‖² + Tr(Σ1 + Σ2 − 2·(Σ1^½ Σ2 Σ1^½)^½).
//
// The paper writes the last term as 2·Tr (Σ1Σ2)^½; Σ1·Σ2 = Σ1^½·(Σ1^½Σ2) and
// Σ1^½ Σ2 Σ1^½ = (Σ1^½Σ2)·Σ1^½ have the same eigenvalues, so both traces
// agree, and the symmetric form is the one computed here.
//
// Both square roots come from symmetric eigendecompositions (gonum's
// mat.EigenSym: Σ1^½ first, then the eigenvalues of the symmetric
// Σ1^½ Σ2 Σ1^½), with eigenvalues that rounding made slightly negative, or
// that are within rounding of zero, clamped to zero. Unlike the usual
// scipy.linalg.sqrtm of the non-symmetric product Σ1·Σ2, this never produces
// complex parts, and it is exact for singular covariances (fewer samples
// than dimensions).
func FrechetDistance(mu1 []float64, cov1 [][]float64, mu2 []float64, cov2 [][]float64) (float64, error) {
	d := len(mu1)
	if len(mu2) != d || !isSquare(cov1, d) || !isSquare(cov2, d) {
		return 0, fmt.Errorf("metrics: Fréchet distance of mismatched shapes (means %d and %d)", len(mu1), len(mu2))
	}
	if d == 0 {
		return 0, errors.New("metrics: Fréchet distance of empty vectors")
	}
	var dist float64
	for k := range d {
		diff := mu1[k] - mu2[k]
		dist += diff * diff
	}
	c1, err := toSym(cov1)
	if err != nil {
		return 0, err
	}
	c2, err := toSym(cov2)
	if err != nil {
		return 0, err
	}
	s1, err := sqrtSym(c1)
	if err != nil {
		return 0, err
	}
	var p mat.Dense
	p.Product(s1, c2, s1)
	var eig mat.EigenSym
	if !eig.Factorize(symPart(&p), false) {
		return 0, fmt.Errorf("metrics: eigendecomposition of a %d×%d matrix failed", d, d)
	}
	var trSqrt float64
	for _, v := range clampEigen(eig.RawValues()) {
		trSqrt += math.Sqrt(v)
	}
	return dist + mat.Trace(c1) + mat.Trace(c2) - 2*trSqrt, nil
}

// clampEigen sets to zero the eigenvalues of a positive semi-definite
// matrix that are negative or within rounding (n·ε·max|λ|) of zero: their
// square roots would turn rounding noise of ε‖A‖ into errors of √(ε‖A‖).
func clampEigen(vals []float64) []float64 {
	var top float64
	for _, v := range vals {
		top = math.Max(top, math.Abs(v))
	}
	tol := float64(len(vals)) * 2.220446049250313e-16 * top
	out := make([]float64, len(vals))
	for i, v := range vals {
		if v > tol {
			out[i] = v
		}
	}
	return out
}

// SqrtSym is the principal square root of a symmetric positive
// semi-definite matrix, V·diag(√λ)·Vᵀ, with λ clamped as in clampEigen.
func SqrtSym(a [][]float64) ([][]float64, error) {
	if len(a) == 0 {
		return [][]float64{}, nil
	}
	s, err := toSym(a)
	if err != nil {
		return nil, err
	}
	r, err := sqrtSym(s)
	if err != nil {
		return nil, err
	}
	return fromSym(r), nil
}

// sqrtSym is SqrtSym on gonum matrices. It forms the root as W·Wᵀ with
// W = V·diag(λ^¼), so the result is symmetric by construction.
func sqrtSym(a *mat.SymDense) (*mat.SymDense, error) {
	n := a.SymmetricDim()
	var eig mat.EigenSym
	if !eig.Factorize(a, true) {
		return nil, fmt.Errorf("metrics: eigendecomposition of a %d×%d matrix failed", n, n)
	}
	var w mat.Dense
	eig.VectorsTo(&w)
	for k, l := range clampEigen(eig.RawValues()) {
		q := math.Sqrt(math.Sqrt(l))
		for i := range n {
			w.Set(i, k, w.At(i, k)*q)
		}
	}
	out := mat.NewSymDense(n, nil)
	out.SymOuterK(1, &w)
	return out, nil
}

// SymEigen diagonalises the symmetric matrix a (which it does not modify;
// only its symmetric part ½(a+aᵀ) counts) with gonum's mat.EigenSym:
// a = V·diag(vals)·Vᵀ with V orthogonal, the eigenvector of vals[k] in
// column k of vecs. Eigenvalues are in ascending order.
func SymEigen(a [][]float64) (vals []float64, vecs [][]float64, err error) {
	if len(a) == 0 {
		return []float64{}, [][]float64{}, nil
	}
	s, err := toSym(a)
	if err != nil {
		return nil, nil, err
	}
	n := len(a)
	var eig mat.EigenSym
	if !eig.Factorize(s, true) {
		return nil, nil, fmt.Errorf("metrics: eigendecomposition of a %d×%d matrix failed", n, n)
	}
	var v mat.Dense
	eig.VectorsTo(&v)
	vecs = newMatrix(n)
	for i := range n {
		mat.Row(vecs[i], i, &v)
	}
	return eig.Values(nil), vecs, nil
}

// toSym checks that a is square, non-empty and finite and returns its
// symmetric part, so that rounding asymmetry cannot matter.
func toSym(a [][]float64) (*mat.SymDense, error) {
	n := len(a)
	if n == 0 {
		return nil, errors.New("metrics: eigendecomposition of an empty matrix")
	}
	if !isSquare(a, n) {
		return nil, errors.New("metrics: eigendecomposition of a non-square matrix")
	}
	s := mat.NewSymDense(n, nil)
	for i := range n {
		for j := range n {
			if math.IsNaN(a[i][j]) || math.IsInf(a[i][j], 0) {
				return nil, fmt.Errorf("metrics: eigendecomposition of a matrix with %v at (%d, %d)", a[i][j], i, j)
			}
			if j >= i {
				s.SetSym(i, j, 0.5*(a[i][j]+a[j][i]))
			}
		}
	}
	return s, nil
}

// symPart is ½(a+aᵀ) of the square matrix a.
func symPart(a *mat.Dense) *mat.SymDense {
	n, _ := a.Dims()
	s := mat.NewSymDense(n, nil)
	for i := range n {
		for j := i; j < n; j++ {
			s.SetSym(i, j, 0.5*(a.At(i, j)+a.At(j, i)))
		}
	}
	return s
}

// fromSym copies a symmetric matrix into rows.
func fromSym(s mat.Symmetric) [][]float64 {
	n := s.SymmetricDim()
	m := newMatrix(n)
	for i := range n {
		for j := i; j < n; j++ {
			v := s.At(i, j)
			m[i][j], m[j][i] = v, v
		}
	}
	return m
}

func newMatrix(n int) [][]float64 {
	flat := make([]float64, n*n)
	m := make([][]float64, n)
	for i := range m {
		m[i] = flat[i*n : (i+1)*n : (i+1)*n]
	}
	return m
}

func isSquare(a [][]float64, n int) bool {
	if len(a) != n {
		return false
	}
	for _, row := range a {
		if len(row) != n {
			return false
		}
	}
	return true
}
