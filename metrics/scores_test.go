package metrics

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestInceptionScore(t *testing.T) {
	uniform := make([][]float32, 100)
	for i := range uniform {
		uniform[i] = make([]float32, 10)
		for c := range uniform[i] {
			uniform[i][c] = 0.1
		}
	}
	if is := InceptionScore(uniform); math.Abs(is-1) > 1e-6 {
		t.Errorf("uniform predictions: IS %g, want 1", is)
	}
	for _, k := range []int{1, 2, 7, 10} {
		oneHot := make([][]float32, 10*k)
		for i := range oneHot {
			oneHot[i] = make([]float32, 10)
			oneHot[i][i%k] = 1
		}
		if is := InceptionScore(oneHot); math.Abs(is-float64(k)) > 1e-9 {
			t.Errorf("confident predictions over %d balanced classes: IS %g, want %d", k, is, k)
		}
	}
	// Always the same confident class: no diversity, IS 1.
	same := make([][]float32, 50)
	for i := range same {
		same[i] = []float32{0, 0, 1, 0}
	}
	if is := InceptionScore(same); math.Abs(is-1) > 1e-9 {
		t.Errorf("one class only: IS %g, want 1", is)
	}
}

func TestAccuracyToClass(t *testing.T) {
	probs := [][]float32{{0.9, 0.1}, {0.2, 0.8}, {0.6, 0.4}, {0.3, 0.7}}
	acc, err := AccuracyToClass(probs, []int{0, 1, 1, 1})
	if err != nil {
		t.Fatal(err)
	}
	if acc != 0.75 {
		t.Errorf("accuracy %g, want 0.75", acc)
	}
	if _, err := AccuracyToClass(probs, []int{0}); err == nil {
		t.Error("mismatched lengths: no error")
	}
}

func gaussianCloud(rng *rand.Rand, n, d int, shift float64) [][]float32 {
	out := make([][]float32, n)
	for i := range out {
		out[i] = make([]float32, d)
		for k := range out[i] {
			out[i][k] = float32(rng.NormFloat64() + shift)
		}
	}
	return out
}

func TestPrecisionRecall(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	real := gaussianCloud(rng, 300, 8, 0)
	// The same set: every vector lies in its own ball.
	p, r, err := PrecisionRecall(real, real, 3)
	if err != nil {
		t.Fatal(err)
	}
	if p != 1 || r != 1 {
		t.Errorf("identical sets: precision %g recall %g, want 1 and 1", p, r)
	}
	// Far apart: nothing covered.
	far := gaussianCloud(rng, 300, 8, 100)
	if p, r, _ = PrecisionRecall(real, far, 3); p != 0 || r != 0 {
		t.Errorf("disjoint sets: precision %g recall %g, want 0 and 0", p, r)
	}
	// Mode collapse: fakes all near the real centre are realistic (high
	// precision) but cover little of the data (low recall).
	collapsed := gaussianCloud(rng, 300, 8, 0)
	for _, v := range collapsed {
		for k := range v {
			v[k] *= 0.05
		}
	}
	p, r, _ = PrecisionRecall(real, collapsed, 3)
	if p < 0.9 || r > 0.3 {
		t.Errorf("collapsed fakes: precision %g (want > 0.9) recall %g (want < 0.3)", p, r)
	}
	// Another draw of the same distribution: both high, neither perfect.
	other := gaussianCloud(rng, 300, 8, 0)
	p, r, _ = PrecisionRecall(real, other, 3)
	if p < 0.6 || r < 0.6 {
		t.Errorf("same distribution: precision %g recall %g, want both > 0.6", p, r)
	}
	if _, _, err := PrecisionRecall(real[:3], other, 3); err == nil {
		t.Error("k ≥ set size: no error")
	}
}

// TestKthRadii checks the k-NN radius on a line where it is obvious.
func TestKthRadii(t *testing.T) {
	set := [][]float64{{0}, {1}, {3}, {7}}
	got := kthRadii(set, 2)
	want := []float64{9, 4, 9, 36} // squared distance to the 2nd nearest other point
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("radius %d: %g, want %g", i, got[i], want[i])
		}
	}
}

func TestDensityCoverage(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	real := gaussianCloud(rng, 400, 8, 0)
	same, err := KNN(real, real, 3)
	if err != nil {
		t.Fatal(err)
	}
	// Each vector is in its own ball and, on average, in k others'.
	if same.Coverage != 1 || math.Abs(same.Density-4.0/3) > 0.01 {
		t.Errorf("identical sets: density %g (want 4/3), coverage %g (want 1)", same.Density, same.Coverage)
	}
	other, _ := KNN(real, gaussianCloud(rng, 400, 8, 0), 3)
	if other.Density < 0.7 || other.Density > 1.3 || other.Coverage < 0.8 {
		t.Errorf("same distribution: density %g (want ≈ 1), coverage %g (want > 0.8)", other.Density, other.Coverage)
	}
	if far, _ := KNN(real, gaussianCloud(rng, 400, 8, 100), 3); far.Density != 0 || far.Coverage != 0 {
		t.Errorf("disjoint sets: density %g coverage %g, want 0 and 0", far.Density, far.Coverage)
	}
	// The weakness density fixes: one real outlier far from the rest has a
	// huge ball, and fakes clustered inside it (like noise images) all
	// count as realistic for precision, while density counts each in one
	// ball only: 1/k, against about 1 for real data.
	withOutlier := append(gaussianCloud(rng, 400, 8, 0), []float32{30, 30, 30, 30, 30, 30, 30, 30})
	junk := gaussianCloud(rng, 200, 8, 0)
	for _, v := range junk {
		for k := range v {
			v[k] = 20 + 0.1*v[k]
		}
	}
	s, _ := KNN(withOutlier, junk, 3)
	if s.Precision < 0.99 || math.Abs(s.Density-1.0/3) > 1e-9 || s.Coverage > 0.01 {
		t.Errorf("fakes inside an outlier's ball: precision %g (want 1), density %g (want 1/3), coverage %g (want ≈ 0)", s.Precision, s.Density, s.Coverage)
	}
	p, r, _ := PrecisionRecall(withOutlier, junk, 3)
	if p != s.Precision || r != s.Recall {
		t.Errorf("PrecisionRecall (%g, %g) differs from KNN (%g, %g)", p, r, s.Precision, s.Recall)
	}
}
