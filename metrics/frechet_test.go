package metrics

import (
	"math"
	"math/rand/v2"
	"testing"
)

func randomFeats(rng *rand.Rand, n, d int, scale float64) [][]float32 {
	// Correlated features: x = A·z with a random mixing matrix A.
	mix := make([][]float64, d)
	for i := range mix {
		mix[i] = make([]float64, d)
		for j := range mix[i] {
			mix[i][j] = rng.NormFloat64() * scale / math.Sqrt(float64(d))
		}
	}
	out := make([][]float32, n)
	z := make([]float64, d)
	for i := range out {
		for j := range z {
			z[j] = rng.NormFloat64()
		}
		out[i] = make([]float32, d)
		for a := range d {
			var s float64
			for b := range d {
				s += mix[a][b] * z[b]
			}
			out[i][a] = float32(s + 0.3*float64(a%5))
		}
	}
	return out
}

// randomOrthogonal is Q of the Gram–Schmidt of a Gaussian matrix.
func randomOrthogonal(rng *rand.Rand, n int) [][]float64 {
	q := newMatrix(n)
	for j := range n {
		v := make([]float64, n)
		for i := range v {
			v[i] = rng.NormFloat64()
		}
		for twice := 0; twice < 2; twice++ {
			for k := 0; k < j; k++ {
				var dot float64
				for i := range n {
					dot += v[i] * q[i][k]
				}
				for i := range n {
					v[i] -= dot * q[i][k]
				}
			}
		}
		var norm float64
		for _, x := range v {
			norm += x * x
		}
		norm = math.Sqrt(norm)
		for i := range n {
			q[i][j] = v[i] / norm
		}
	}
	return q
}

func transpose(a [][]float64) [][]float64 {
	out := newMatrix(len(a))
	for i := range a {
		for j := range a {
			out[j][i] = a[i][j]
		}
	}
	return out
}

func matMul(a, b [][]float64) [][]float64 {
	n := len(a)
	out := newMatrix(n)
	for i := range n {
		for k, aik := range a[i] {
			for j, bkj := range b[k] {
				out[i][j] += aik * bkj
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

func maxAbsDiff(a, b [][]float64) float64 {
	var m float64
	for i := range a {
		for j := range a[i] {
			m = math.Max(m, math.Abs(a[i][j]-b[i][j]))
		}
	}
	return m
}

func maxAbs(a [][]float64) float64 {
	var m float64
	for i := range a {
		for j := range a[i] {
			m = math.Max(m, math.Abs(a[i][j]))
		}
	}
	return m
}

func TestSymEigenReconstructs(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 7, 60, 128} {
		a := newMatrix(n)
		for i := range n {
			for j := i; j < n; j++ {
				v := rng.NormFloat64()
				a[i][j], a[j][i] = v, v
			}
		}
		vals, vecs, err := SymEigen(a)
		if err != nil {
			t.Fatal(err)
		}
		// V·diag(λ)·Vᵀ must give back a, and VᵀV must be the identity.
		rec := newMatrix(n)
		for i := range n {
			for j := range n {
				for k := range n {
					rec[i][j] += vecs[i][k] * vals[k] * vecs[j][k]
				}
			}
		}
		if e := maxAbsDiff(rec, a) / maxAbs(a); e > 1e-12 {
			t.Errorf("n=%d: reconstruction error %.3g", n, e)
		}
		vtv := matMul(transpose(vecs), vecs)
		id := newMatrix(n)
		for i := range n {
			id[i][i] = 1
		}
		if e := maxAbsDiff(vtv, id); e > 1e-12 {
			t.Errorf("n=%d: eigenvectors not orthonormal, error %.3g", n, e)
		}
		var tr float64
		for _, v := range vals {
			tr += v
		}
		if math.Abs(tr-trace(a)) > 1e-10*float64(n) {
			t.Errorf("n=%d: Σλ = %g, trace %g", n, tr, trace(a))
		}
	}
}

func TestSymEigenRepeatedAndSingular(t *testing.T) {
	// I + u·uᵀ with |u|² = 4: eigenvalues 5 (once) and 1 (n−1 times);
	// and u·uᵀ alone, rank 1 (eigenvalues 4 and 0).
	n := 6
	u := []float64{1, 1, 1, 1, 0, 0}
	for _, withI := range []bool{true, false} {
		a := newMatrix(n)
		for i := range n {
			for j := range n {
				a[i][j] = u[i] * u[j]
			}
			if withI {
				a[i][i]++
			}
		}
		vals, _, err := SymEigen(a)
		if err != nil {
			t.Fatal(err)
		}
		base := 0.0
		if withI {
			base = 1
		}
		big := 0
		for _, v := range vals {
			switch {
			case math.Abs(v-(base+4)) < 1e-12:
				big++
			case math.Abs(v-base) < 1e-12:
			default:
				t.Errorf("withI=%v: unexpected eigenvalue %g in %v", withI, v, vals)
			}
		}
		if big != 1 {
			t.Errorf("withI=%v: eigenvalue %g found %d times in %v", withI, base+4, big, vals)
		}
	}
	if _, _, err := SymEigen([][]float64{{1, math.NaN()}, {0, 1}}); err == nil {
		t.Error("NaN entry: no error")
	}
}

func TestSqrtSym(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	feats := randomFeats(rng, 200, 20, 1)
	_, cov, err := MeanCov(feats)
	if err != nil {
		t.Fatal(err)
	}
	s, err := SqrtSym(cov)
	if err != nil {
		t.Fatal(err)
	}
	if e := maxAbsDiff(matMul(s, s), cov) / maxAbs(cov); e > 1e-12 {
		t.Errorf("sqrt(C)² differs from C by %.3g", e)
	}
}

func TestFrechetSelfIsZero(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	// 500 vectors in 32 dimensions (full rank) and 64 vectors in 128
	// dimensions (singular covariance: the clamping matters).
	for _, c := range []struct{ n, d int }{{500, 32}, {64, 128}} {
		feats := randomFeats(rng, c.n, c.d, 2)
		mu, cov, err := MeanCov(feats)
		if err != nil {
			t.Fatal(err)
		}
		fd, err := FrechetDistance(mu, cov, mu, cov)
		if err != nil {
			t.Fatal(err)
		}
		scale := 2 * trace(cov)
		if math.Abs(fd) > 1e-6*scale {
			t.Errorf("n=%d d=%d: FD of a set with itself %.3g, relative %.3g", c.n, c.d, fd, fd/scale)
		}
	}
}

func TestFrechetDiagonalClosedForm(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	d := 40
	mu1, mu2 := make([]float64, d), make([]float64, d)
	v1, v2 := make([]float64, d), make([]float64, d)
	var want float64
	for i := range d {
		mu1[i], mu2[i] = rng.NormFloat64(), rng.NormFloat64()
		v1[i], v2[i] = math.Exp(rng.NormFloat64()), math.Exp(rng.NormFloat64())
		if i%7 == 0 {
			v2[i] = 0 // a degenerate direction
		}
		want += (mu1[i]-mu2[i])*(mu1[i]-mu2[i]) + v1[i] + v2[i] - 2*math.Sqrt(v1[i]*v2[i])
	}
	diag := func(v []float64) [][]float64 {
		m := newMatrix(d)
		for i, x := range v {
			m[i][i] = x
		}
		return m
	}
	c1, c2 := diag(v1), diag(v2)
	got, err := FrechetDistance(mu1, c1, mu2, c2)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(got-want) > 1e-10*want {
		t.Errorf("diagonal: FD %.15g, closed form %.15g", got, want)
	}
	// The same covariances rotated by one orthogonal Q commute, so the
	// closed form still holds, and now every matrix is dense.
	q := randomOrthogonal(rng, d)
	qt := transpose(q)
	r1, r2 := matMul(matMul(q, c1), qt), matMul(matMul(q, c2), qt)
	symmetrize(r1)
	symmetrize(r2)
	got, err = FrechetDistance(mu1, r1, mu2, r2)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(got-want) > 1e-9*want {
		t.Errorf("rotated: FD %.15g, closed form %.15g", got, want)
	}
	// Swapping the arguments gives the same distance.
	back, err := FrechetDistance(mu2, r2, mu1, r1)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(back-got) > 1e-9*want {
		t.Errorf("FD not symmetric: %.15g vs %.15g", got, back)
	}
}

// TestFrechetTwoByTwo checks non-commuting 2×2 covariances against an
// analytic reference: the eigenvalues of C1^½C2C1^½ are those of C1·C2, so
// (tr √·)² = tr(C1C2) + 2√(det C1·det C2).
func TestFrechetTwoByTwo(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for trial := 0; trial < 20; trial++ {
		spd := func() [][]float64 {
			a, b, c := rng.NormFloat64(), rng.NormFloat64(), rng.NormFloat64()
			// LLᵀ with L lower-triangular [[a, 0], [b, c]].
			return [][]float64{{a * a, a * b}, {a * b, b*b + c*c}}
		}
		c1, c2 := spd(), spd()
		mu1 := []float64{rng.NormFloat64(), rng.NormFloat64()}
		mu2 := []float64{rng.NormFloat64(), rng.NormFloat64()}
		p := matMul(c1, c2)
		det := func(m [][]float64) float64 { return m[0][0]*m[1][1] - m[0][1]*m[1][0] }
		trSqrt := math.Sqrt(trace(p) + 2*math.Sqrt(det(c1)*det(c2)))
		dm := (mu1[0]-mu2[0])*(mu1[0]-mu2[0]) + (mu1[1]-mu2[1])*(mu1[1]-mu2[1])
		want := dm + trace(c1) + trace(c2) - 2*trSqrt
		got, err := FrechetDistance(mu1, c1, mu2, c2)
		if err != nil {
			t.Fatal(err)
		}
		scale := dm + trace(c1) + trace(c2)
		if math.Abs(got-want) > 1e-10*scale {
			t.Errorf("trial %d: FD %.15g, analytic %.15g", trial, got, want)
		}
	}
}

func TestMeanCov(t *testing.T) {
	feats := [][]float32{{1, 2}, {3, 6}, {5, 10}}
	mu, cov, err := MeanCov(feats)
	if err != nil {
		t.Fatal(err)
	}
	// numpy.cov of [[1,3,5],[2,6,10]] is [[4, 8], [8, 16]].
	if mu[0] != 3 || mu[1] != 6 || cov[0][0] != 4 || cov[0][1] != 8 || cov[1][0] != 8 || cov[1][1] != 16 {
		t.Errorf("mean %v cov %v, want [3 6] [[4 8] [8 16]]", mu, cov)
	}
	if _, _, err := MeanCov(feats[:1]); err == nil {
		t.Error("one vector: no error")
	}
	if _, _, err := MeanCov([][]float32{{1, 2}, {3}}); err == nil {
		t.Error("ragged vectors: no error")
	}
	if _, err := FrechetDistance(mu, cov, mu[:1], cov); err == nil {
		t.Error("mismatched dimensions: no error")
	}
}
