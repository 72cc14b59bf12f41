package tts

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/latentlm/latentlm/internal/testutil"
)

// TestGuideLayout checks Format.Guide on a row whose answer is worked out
// by hand: the queries are the speech's <BOL> and its frames, each weighs
// every non-text key by 1/queries, and its lightest text key is the
// character at its progress through the speech; a row whose text was
// dropped has no queries.
func TestGuideLayout(t *testing.T) {
	f := testFormat(t)
	prompt := frames(2, testChannels, func(k, j int) float32 { return 0.1 })
	speech := frames(8, testChannels, func(k, j int) float32 { return 0.2 })
	rows := []Row{
		f.TrainingRow(prompt, encode(t, f, "hello"), speech, nil, false),
		f.TrainingRow(prompt, encode(t, f, "hello"), speech, nil, true),
	}
	const l = 24
	g := f.Guide(rows, l)
	r := rows[0]
	if r.TextStart != 4 || r.TextEnd != 9 || r.SpeechBOL != 9 || len(r.Items) != 19 {
		t.Fatalf("spans: text [%d, %d), speech <BOL> at %d, %d items", r.TextStart, r.TextEnd, r.SpeechBOL, len(r.Items))
	}
	const queries = 9 // <BOL> and 8 frames
	for q := range l {
		row := g[q*l : (q+1)*l]
		isQuery := q >= r.SpeechBOL && q < r.SpeechBOL+queries
		sum := 0.0
		for _, w := range row {
			sum += float64(w)
		}
		if !isQuery {
			if sum != 0 {
				t.Errorf("position %d is not a query but has weights summing to %g", q, sum)
			}
			continue
		}
		n := q - r.SpeechBOL
		best, bestW := -1, math.Inf(1)
		for k, w := range row {
			inText := k >= r.TextStart && k < r.TextEnd
			switch {
			case !inText && math.Abs(float64(w)-1.0/queries) > 1e-7:
				t.Errorf("query %d, key %d (not text): weight %g, want 1/%d", n, k, w, queries)
			case inText && float64(w) >= 1.0/queries:
				t.Errorf("query %d, text key %d: weight %g, not below 1/%d", n, k, w, queries)
			}
			if inText && float64(w) < bestW {
				best, bestW = k-r.TextStart, float64(w)
			}
		}
		want, d := 0, math.Inf(1) // the character whose centre is nearest n/8
		for j := range 5 {
			if e := math.Abs((float64(j)+0.5)/5 - float64(n)/8); e < d {
				want, d = j, e
			}
		}
		if best != want {
			t.Errorf("query %d: lightest character %d, want %d", n, best, want)
		}
	}
	for i, w := range g[l*l:] {
		if w != 0 {
			t.Fatalf("the row whose text was dropped has weight %g at %d", w, i)
		}
	}
	if g := f.Guide(rows[1:], l); len(g) != l*l {
		t.Errorf("a batch of dropped texts: %d weights, want %d", len(g), l*l)
	}
}

// TestGuidedTrainingAligns: trained with the guided attention term, the
// tiny overfit model moves the guided head's attention onto the diagonal:
// the term (between 0 and 1) falls to under half its value at the start.
// Model.Alignment then shows the head reading one of the training texts
// in order as it says it: the character it looks at most moves forward
// with the frames (a correlation above 0.8), and the picture is written.
func TestGuidedTrainingAligns(t *testing.T) {
	m, align := trainOverfitGuided(t, 150, true, 1, DefaultOptions())
	t.Logf("guided attention term: %.3f over the first 10 steps, %.3f over the last 10", align[0], align[1])
	if !(align[0] > 0 && align[0] <= 1) || !(align[1] < align[0]/2) {
		t.Errorf("guided attention term %.3f → %.3f, want a fall to under half", align[0], align[1])
	}
	req := overfitRequests(m)[2]
	truth := frames(overfitData[2].frames, testChannels, overfitFrame)
	a, err := m.Alignment(req, truth)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Weights) != len(truth)+1 || len(a.Weights[0]) != len(req.Text) {
		t.Fatalf("alignment of %d×%d, want %d×%d", len(a.Weights), len(a.Weights[0]), len(truth)+1, len(req.Text))
	}
	var xs, ys []float64
	for n, row := range a.Weights {
		best := 0
		for j := range row {
			if row[j] > row[best] {
				best = j
			}
		}
		xs, ys = append(xs, float64(n)), append(ys, float64(best))
	}
	if r := correlation(xs, ys); !(r > 0.8) {
		t.Errorf("the most looked-at characters %v against the frames: correlation %.2f, want above 0.8", ys, r)
	}
	path := filepath.Join(t.TempDir(), "a.png")
	if err := a.WritePNG(path); err != nil {
		t.Fatal(err)
	}
	if b := testutil.DecodePNG(t, path).Bounds(); b.Dx() != (len(truth)+1)*alignmentCell || b.Dy() != len(req.Text)*alignmentCell {
		t.Errorf("picture of %v", b)
	}
	if _, err := m.Alignment(req, nil); err == nil {
		t.Error("an alignment of no frames accepted")
	}
}

// correlation is Pearson's r of x and y.
func correlation(x, y []float64) float64 {
	mx, _ := testutil.MeanStd(x)
	my, _ := testutil.MeanStd(y)
	var sxy, sxx, syy float64
	for i := range x {
		sxy += (x[i] - mx) * (y[i] - my)
		sxx += (x[i] - mx) * (x[i] - mx)
		syy += (y[i] - my) * (y[i] - my)
	}
	return sxy / math.Sqrt(sxx*syy)
}
