package metrics

import (
	"errors"
	"fmt"
	"math"
)

// MeanCov returns the mean and the sample covariance (denominator N−1, as
// numpy.cov and pytorch-fid) of feature vectors, in float64.
func MeanCov(feats [][]float32) (mu []float64, cov [][]float64, err error) {
	n := len(feats)
	if n < 2 {
		return nil, nil, fmt.Errorf("metrics: covariance needs at least 2 vectors, got %d", n)
	}
	d := len(feats[0])
	mu = make([]float64, d)
	for i, f := range feats {
		if len(f) != d {
			return nil, nil, fmt.Errorf("metrics: vector %d has %d values, want %d", i, len(f), d)
		}
		for k, v := range f {
			mu[k] += float64(v)
		}
	}
	for k := range mu {
		mu[k] /= float64(n)
	}
	// Accumulate the upper triangle of Σ (x−μ)(x−μ)ᵀ, then mirror it.
	acc := make([]float64, d*d)
	c := make([]float64, d)
	for _, f := range feats {
		for k, v := range f {
			c[k] = float64(v) - mu[k]
		}
		for a := range d {
			ca := c[a]
			if ca == 0 {
				continue
			}
			row := acc[a*d : (a+1)*d]
			for b := a; b < d; b++ {
				row[b] += ca * c[b]
			}
		}
	}
	cov = newMatrix(d)
	for a := range d {
		for b := a; b < d; b++ {
			v := acc[a*d+b] / float64(n-1)
			cov[a][b], cov[b][a] = v, v
		}
	}
	return mu, cov, nil
}

// FrechetDistance is the squared Fréchet (2-Wasserstein) distance between
// the Gaussians N(mu1, cov1) and N(mu2, cov2):
//
//	‖μ1−μ2‖² + tr C1 + tr C2 − 2·tr (C1^½ C2 C1^½)^½.
//
// Both square roots come from symmetric eigendecompositions (C1^½ first,
// then the eigenvalues of the symmetric C1^½ C2 C1^½), with eigenvalues that
// rounding made slightly negative, or that are within rounding of zero,
// clamped to zero. Unlike the usual
// scipy.linalg.sqrtm of the non-symmetric product C1·C2, this never produces
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
	s1, err := SqrtSym(cov1)
	if err != nil {
		return 0, err
	}
	m := matMul(matMul(s1, cov2), s1)
	symmetrize(m)
	vals, _, err := SymEigen(m)
	if err != nil {
		return 0, err
	}
	var trSqrt float64
	for _, v := range clampEigen(vals) {
		trSqrt += math.Sqrt(v)
	}
	return dist + trace(cov1) + trace(cov2) - 2*trSqrt, nil
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
	vals, vecs, err := SymEigen(a)
	if err != nil {
		return nil, err
	}
	n := len(a)
	out := newMatrix(n)
	for k, l := range clampEigen(vals) {
		s := math.Sqrt(l)
		if s == 0 {
			continue
		}
		for i := range n {
			vik := vecs[i][k] * s
			if vik == 0 {
				continue
			}
			row := out[i]
			for j := range n {
				row[j] += vik * vecs[j][k]
			}
		}
	}
	symmetrize(out)
	return out, nil
}

// SymEigen diagonalises the symmetric matrix a (which it does not modify) by
// the cyclic Jacobi method: a = V·diag(vals)·Vᵀ with V orthogonal, the
// eigenvector of vals[k] in column k of vecs. Eigenvalues are in no
// particular order. Jacobi is slower than QR-based methods but simple and
// accurate to a few ulps of ‖a‖ — plenty for 128×128 covariances.
func SymEigen(a [][]float64) (vals []float64, vecs [][]float64, err error) {
	n := len(a)
	if !isSquare(a, n) {
		return nil, nil, errors.New("metrics: eigendecomposition of a non-square matrix")
	}
	m := newMatrix(n)
	var norm2 float64
	for i := range n {
		for j := range n {
			if math.IsNaN(a[i][j]) || math.IsInf(a[i][j], 0) {
				return nil, nil, fmt.Errorf("metrics: eigendecomposition of a matrix with %v at (%d, %d)", a[i][j], i, j)
			}
			// Use the symmetric part, so rounding asymmetry cannot matter.
			m[i][j] = 0.5 * (a[i][j] + a[j][i])
			norm2 += m[i][j] * m[i][j]
		}
	}
	v := newMatrix(n)
	for i := range n {
		v[i][i] = 1
	}
	// Rotations of entries below this are rounding noise of ‖a‖.
	skip := 1e-18 * math.Sqrt(norm2)
	const maxSweeps = 100
	converged := false
	for sweep := 0; sweep < maxSweeps; sweep++ {
		var off float64
		for p := range n {
			for q := p + 1; q < n; q++ {
				off += m[p][q] * m[p][q]
			}
		}
		if off <= 1e-30*norm2 || norm2 == 0 {
			converged = true
			break
		}
		rotated := false
		for p := 0; p < n-1; p++ {
			for q := p + 1; q < n; q++ {
				apq := m[p][q]
				if math.Abs(apq) <= skip {
					continue
				}
				rotated = true
				// Choose t = tan φ so that the rotation zeroes (p, q):
				// θ = (a_qq − a_pp)/(2 a_pq), t = sign(θ)/(|θ| + √(θ²+1)).
				theta := (m[q][q] - m[p][p]) / (2 * apq)
				t := 1 / (math.Abs(theta) + math.Sqrt(theta*theta+1))
				if theta < 0 {
					t = -t
				}
				c := 1 / math.Sqrt(t*t+1)
				s := t * c
				// A ← Jᵀ A J with J the rotation in the (p, q) plane.
				for k := range n {
					akp, akq := m[k][p], m[k][q]
					m[k][p] = c*akp - s*akq
					m[k][q] = s*akp + c*akq
				}
				rp, rq := m[p], m[q]
				for k := range n {
					apk, aqk := rp[k], rq[k]
					rp[k] = c*apk - s*aqk
					rq[k] = s*apk + c*aqk
				}
				m[p][q], m[q][p] = 0, 0
				for k := range n {
					vkp, vkq := v[k][p], v[k][q]
					v[k][p] = c*vkp - s*vkq
					v[k][q] = s*vkp + c*vkq
				}
			}
		}
		if !rotated {
			converged = true
			break
		}
	}
	if !converged {
		return nil, nil, fmt.Errorf("metrics: Jacobi eigendecomposition of a %d×%d matrix did not converge in %d sweeps", n, n, maxSweeps)
	}
	vals = make([]float64, n)
	for i := range n {
		vals[i] = m[i][i]
	}
	return vals, v, nil
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

func matMul(a, b [][]float64) [][]float64 {
	n := len(a)
	out := newMatrix(n)
	for i := range n {
		row := out[i]
		for k, aik := range a[i] {
			if aik == 0 {
				continue
			}
			for j, bkj := range b[k] {
				row[j] += aik * bkj
			}
		}
	}
	return out
}

func symmetrize(a [][]float64) {
	for i := range a {
		for j := i + 1; j < len(a); j++ {
			v := 0.5 * (a[i][j] + a[j][i])
			a[i][j], a[j][i] = v, v
		}
	}
}

func trace(a [][]float64) float64 {
	var t float64
	for i := range a {
		t += a[i][i]
	}
	return t
}
