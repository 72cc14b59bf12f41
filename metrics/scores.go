package metrics

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// InceptionScore is exp(E_x[KL(p(y|x) ‖ p(y))]) of the classifier's class
// probabilities, with p(y) their mean: 1 when every prediction is the same,
// k when predictions are confident and spread evenly over k classes. With
// an MNIST classifier instead of Inception it is only "IS-like": comparable
// between models scored by the same classifier, not with published IS.
func InceptionScore(probs [][]float32) float64 {
	if len(probs) == 0 {
		return math.NaN()
	}
	k := len(probs[0])
	py := make([]float64, k)
	for _, p := range probs {
		for c, v := range p {
			py[c] += float64(v)
		}
	}
	for c := range py {
		py[c] /= float64(len(probs))
	}
	var kl float64
	for _, p := range probs {
		for c, v := range p {
			if v > 0 && py[c] > 0 {
				kl += float64(v) * math.Log(float64(v)/py[c])
			}
		}
	}
	return math.Exp(kl / float64(len(probs)))
}

// Argmax is the index of the largest value (the first of equals).
func Argmax(p []float32) int {
	best := 0
	for i, v := range p {
		if v > p[best] {
			best = i
		}
	}
	return best
}

// AccuracyToClass is the fraction of images whose most probable class is
// the class they were meant to show (their label, or the class a generator
// was conditioned on).
func AccuracyToClass(probs [][]float32, labels []int) (float64, error) {
	if len(probs) != len(labels) {
		return 0, fmt.Errorf("metrics: %d predictions for %d labels", len(probs), len(labels))
	}
	if len(probs) == 0 {
		return 0, errors.New("metrics: accuracy of no predictions")
	}
	right := 0
	for i, p := range probs {
		if Argmax(p) == labels[i] {
			right++
		}
	}
	return float64(right) / float64(len(probs)), nil
}

// PrecisionRecall is the improved precision and recall of Kynkäänniemi et
// al. (2019). Each set's manifold is the union of balls around its feature
// vectors, each with the radius of the distance to that vector's k-th
// nearest neighbour in the same set (k = 3 in the paper). Precision is the
// fraction of fake vectors inside the real manifold (are samples
// realistic?); recall the fraction of real vectors inside the fake manifold
// (is the data's variety covered?).
//
// A few real outliers have large balls, and precision counts a fake inside
// any one ball as realistic: degenerate fakes (noise) that land in them
// score high. KNN's density weighs each fake by the number of balls that
// hold it, which softens this, and its coverage uses real balls only.
func PrecisionRecall(real, fake [][]float32, k int) (precision, recall float64, err error) {
	s, err := KNN(real, fake, k)
	return s.Precision, s.Recall, err
}

// KNNScores are the k-NN manifold scores of a fake set against a real one.
type KNNScores struct {
	Precision float64 `json:"precision"` // Kynkäänniemi et al. 2019
	Recall    float64 `json:"recall"`
	// Density (Naeem et al. 2020) counts how many real balls contain each
	// fake, divided by k, averaged: about 1 for fakes distributed like the
	// data, 1/k or less for fakes that sit only in an outlier's ball, above 1
	// for fakes packed into dense regions.
	Density float64 `json:"density"`
	// Coverage (Naeem et al. 2020) is the fraction of real vectors whose own
	// ball holds at least one fake: recall with real balls, robust to fake
	// outliers.
	Coverage float64 `json:"coverage"`
}

// KNN computes precision, recall, density and coverage with k-NN balls
// (k = 3 in both papers).
func KNN(real, fake [][]float32, k int) (KNNScores, error) {
	if k < 1 {
		return KNNScores{}, fmt.Errorf("metrics: k = %d, want ≥ 1", k)
	}
	if len(real) <= k || len(fake) <= k {
		return KNNScores{}, fmt.Errorf("metrics: k-NN scores with k = %d need more than %d vectors in each set, got %d real and %d fake", k, k, len(real), len(fake))
	}
	d := len(real[0])
	for _, set := range [][][]float32{real, fake} {
		for i, f := range set {
			if len(f) != d {
				return KNNScores{}, fmt.Errorf("metrics: vector %d has %d values, want %d", i, len(f), d)
			}
		}
	}
	r, f := toFloat64(real), toFloat64(fake)
	rr, ff := kthRadii(r, k), kthRadii(f, k)
	var s KNNScores
	covered := make([]bool, len(r))
	inReal, inBalls := 0, 0
	for _, q := range f {
		n := 0
		for i, x := range r {
			if sqDist(q, x) <= rr[i] {
				n++
				covered[i] = true
			}
		}
		if n > 0 {
			inReal++
		}
		inBalls += n
	}
	s.Precision = float64(inReal) / float64(len(f))
	s.Density = float64(inBalls) / float64(k*len(f))
	nCovered := 0
	for _, c := range covered {
		if c {
			nCovered++
		}
	}
	s.Coverage = float64(nCovered) / float64(len(r))
	s.Recall = coverage(r, f, ff)
	return s, nil
}

func toFloat64(set [][]float32) [][]float64 {
	out := make([][]float64, len(set))
	for i, v := range set {
		out[i] = make([]float64, len(v))
		for k, x := range v {
			out[i][k] = float64(x)
		}
	}
	return out
}

func sqDist(a, b []float64) float64 {
	var s float64
	for i, x := range a {
		d := x - b[i]
		s += d * d
	}
	return s
}

// kthRadii is, for each vector, the squared distance to its k-th nearest
// other vector of the set.
func kthRadii(set [][]float64, k int) []float64 {
	radii := make([]float64, len(set))
	best := make([]float64, 0, k+1)
	for i, a := range set {
		best = best[:0]
		for j, b := range set {
			if i == j {
				continue
			}
			dist := sqDist(a, b)
			if len(best) == k && dist >= best[k-1] {
				continue
			}
			// Insert into the sorted list of the k smallest.
			pos := sort.SearchFloat64s(best, dist)
			if len(best) < k {
				best = append(best, 0)
			}
			copy(best[pos+1:], best[pos:len(best)-1])
			best[pos] = dist
		}
		radii[i] = best[k-1]
	}
	return radii
}

// coverage is the fraction of query vectors that lie within the ball of at
// least one vector of set (squared radii).
func coverage(query, set [][]float64, radii []float64) float64 {
	in := 0
	for _, q := range query {
		for j, s := range set {
			if sqDist(q, s) <= radii[j] {
				in++
				break
			}
		}
	}
	return float64(in) / float64(len(query))
}
