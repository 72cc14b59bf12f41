package vae

import (
	"math"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/data"
	"github.com/latentlm/latentlm/internal/testutil"
)

// redrawSamples runs Redraw of a config of the given kind calls times on
// fixed μ and scale of shape [batch, items, channels] and returns μ, scale
// and every draw, flat.
func redrawSamples(t *testing.T, kind string, batch, items, channels, calls int) (mu, scale []float32, draws [][]float32) {
	t.Helper()
	cfg := tinyConfig(kind)
	n := batch * items * channels
	mu, scale = make([]float32, n), make([]float32, n)
	for i := range mu {
		// μ far from 0 and a scale that changes along every axis, so that
		// the test sees each added and multiplied element-wise.
		mu[i] = 3 + float32(i%13)
		scale[i] = 0.5 + float32(i%7)*0.25
	}
	store := model.NewStore()
	if err := store.SetRNGStateFromSeed(7); err != nil {
		t.Fatal(err)
	}
	exec, err := model.NewExec(testutil.Backend(t, "onnx"), store, func(scope *model.Scope, mu, scale *Node) *Node {
		return cfg.Redraw(scope, mu, scale)
	})
	if err != nil {
		t.Fatal(err)
	}
	muT := tensors.FromFlatDataAndDimensions(mu, batch, items, channels)
	scaleT := tensors.FromFlatDataAndDimensions(scale, batch, items, channels)
	for range calls {
		out, err := exec.Call(muT, scaleT)
		if err != nil {
			t.Fatal(err)
		}
		if got := out[0].Shape().Dimensions; len(got) != 3 || got[0] != batch || got[1] != items || got[2] != channels {
			t.Fatalf("Redraw shape %v, want [%d %d %d]", got, batch, items, channels)
		}
		draws = append(draws, tensors.MustCopyFlatData[float32](out[0]))
	}
	return mu, scale, draws
}

// TestRedrawStatistics checks the moments of u = (z−μ)/scale over many
// draws: mean 0, E[u²] = 1 for both noises, and the fourth moment that
// tells them apart, E[u⁴] = E[ε⁴] = 3 for the plain Gaussian (vae kind) and
// E[m⁴]·E[ε⁴] = 3·3 = 9 when one |N(0,1)| factor m multiplies each example
// (σ-VAE). Each is compared with its standard error.
func TestRedrawStatistics(t *testing.T) {
	const batch, items, channels, calls = 2048, 4, 4, 8
	for _, c := range []struct {
		kind   string
		fourth float64
	}{{"vae", 3}, {"sigma", 9}} {
		t.Run(c.kind, func(t *testing.T) {
			mu, scale, draws := redrawSamples(t, c.kind, batch, items, channels, calls)
			per := items * channels
			// The elements of one example share the σ-VAE's factor, so
			// they are averaged into one value per example and draw, and
			// the standard errors come from the spread of those.
			var m1, m2, m4 moments
			for _, z := range draws {
				for b := range batch {
					var s1, s2, s4 float64
					for k := b * per; k < (b+1)*per; k++ {
						u := float64(z[k]-mu[k]) / float64(scale[k])
						s1 += u
						s2 += u * u
						s4 += u * u * u * u
					}
					m1.add(s1 / float64(per))
					m2.add(s2 / float64(per))
					m4.add(s4 / float64(per))
				}
			}
			for _, e := range []struct {
				name string
				m    moments
				want float64
			}{{"E[u]", m1, 0}, {"E[u²]", m2, 1}, {"E[u⁴]", m4, c.fourth}} {
				mean, se := e.m.meanAndSE()
				t.Logf("%s = %.4f ± %.4f (want %g)", e.name, mean, se, e.want)
				if math.Abs(mean-e.want) > 5*se {
					t.Errorf("%s = %.4f, want %g within 5 standard errors (%.4f)", e.name, mean, e.want, 5*se)
				}
			}
			// The plain noise is independent between the elements of an
			// example; the σ-VAE's shares one scale per example, which
			// correlates their squares: Cov(m²ε₁², m²ε₂²) = E[m⁴]−1 = 2.
			var cov moments
			for _, z := range draws {
				for b := range batch {
					k := b * per
					u1 := float64(z[k]-mu[k]) / float64(scale[k])
					u2 := float64(z[k+1]-mu[k+1]) / float64(scale[k+1])
					cov.add(u1*u1*u2*u2 - 1)
				}
			}
			want := map[string]float64{"vae": 0, "sigma": 2}[c.kind]
			mean, se := cov.meanAndSE()
			t.Logf("Cov(u₁², u₂²) = %.4f ± %.4f (want %g)", mean, se, want)
			if math.Abs(mean-want) > 5*se {
				t.Errorf("Cov(u₁², u₂²) = %.4f, want %g within 5 standard errors (%.4f)", mean, want, 5*se)
			}
		})
	}
}

// TestRedrawDrawsAnew: successive calls draw different noise, and a zero
// scale (the plain autoencoder) returns μ exactly.
func TestRedrawDrawsAnew(t *testing.T) {
	_, _, draws := redrawSamples(t, "sigma", 4, 2, 2, 2)
	same := 0
	for k := range draws[0] {
		if draws[0][k] == draws[1][k] {
			same++
		}
	}
	if same > 0 {
		t.Errorf("%d of %d values repeat between two steps", same, len(draws[0]))
	}

	cfg := tinyConfig("ae")
	store := model.NewStore()
	if err := store.SetRNGStateFromSeed(1); err != nil {
		t.Fatal(err)
	}
	exec, err := model.NewExec(testutil.Backend(t, "onnx"), store, func(scope *model.Scope, mu, scale *Node) *Node {
		return cfg.Redraw(scope, mu, scale)
	})
	if err != nil {
		t.Fatal(err)
	}
	mu := []float32{1, -2, 3.5, 0}
	out, err := exec.Call(tensors.FromFlatDataAndDimensions(mu, 1, 2, 2), tensors.FromFlatDataAndDimensions(make([]float32, 4), 1, 2, 2))
	if err != nil {
		t.Fatal(err)
	}
	if got := tensors.MustCopyFlatData[float32](out[0]); !equal(got, mu) {
		t.Errorf("Redraw with scale 0 = %v, want μ = %v", got, mu)
	}
}

// TestDatasetMoments: the moments of a data set are those of EncodeMoments
// over its images, in order, across the encoding batches.
func TestDatasetMoments(t *testing.T) {
	d, err := data.Load("mnist", "test")
	if err != nil {
		t.Fatal(err)
	}
	n := momentsBatch + 3 // two batches, the second partial
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	d = d.Subset(idx)
	m := newModel(t, tinyConfig("sigma"))
	mu, scale, err := m.DatasetMoments(d)
	if err != nil {
		t.Fatal(err)
	}
	per := m.Config.Items() * m.Config.Channels
	if len(mu) != n*per || len(scale) != n*per {
		t.Fatalf("DatasetMoments: %d means and %d scales, want %d", len(mu), len(scale), n*per)
	}
	for _, i := range []int{0, momentsBatch - 1, momentsBatch, n - 1} {
		img := make([]float32, d.Height*d.Width)
		d.Float32(i, img)
		wm, ws, err := m.EncodeMoments([][]float32{img})
		if err != nil {
			t.Fatal(err)
		}
		if !close32(mu[i*per:(i+1)*per], wm[0], 1e-5) || !equal(scale[i*per:(i+1)*per], ws[0]) {
			t.Errorf("image %d: moments differ from EncodeMoments of the image alone", i)
		}
	}
}

// moments accumulates a mean and its standard error.
type moments struct {
	n, sum, sq float64
}

func (m *moments) add(x float64) { m.n++; m.sum += x; m.sq += x * x }

func (m moments) meanAndSE() (mean, se float64) {
	mean = m.sum / m.n
	return mean, math.Sqrt(math.Max(m.sq/m.n-mean*mean, 0) / (m.n - 1))
}

func equal(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// close32 compares within tol relative to the largest |b|: one image alone
// and in a batch of a thousand may round differently.
func close32(a, b []float32, tol float64) bool {
	if len(a) != len(b) {
		return false
	}
	var diff, scale float64
	for i := range a {
		diff = math.Max(diff, math.Abs(float64(a[i]-b[i])))
		scale = math.Max(scale, math.Abs(float64(b[i])))
	}
	return diff <= tol*math.Max(scale, 1)
}
