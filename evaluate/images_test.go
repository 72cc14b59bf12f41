package evaluate

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/classifier"
	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/metrics"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/vae"
)

// TestFrechetKnown: a set against itself is at distance 0, and against
// itself moved by (3, 4) at 25, the squared shift of the means, since the
// covariances are the same.
func TestFrechetKnown(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	a := make([][]float32, 400)
	b := make([][]float32, len(a))
	for i := range a {
		x, y := float32(rng.NormFloat64()), float32(rng.NormFloat64()*2)
		a[i], b[i] = []float32{x, y}, []float32{x + 3, y + 4}
	}
	if d, err := Frechet(a, a); err != nil || math.Abs(d) > 1e-6 {
		t.Errorf("FD of a set with itself %g, %v; want 0", d, err)
	}
	if d, err := Frechet(a, b); err != nil || math.Abs(d-25) > 1e-4 {
		t.Errorf("FD of a set with itself moved by (3, 4) %g, %v; want 25", d, err)
	}
	if _, err := Frechet(a[:1], b); err == nil {
		t.Error("FD of one vector: no error")
	}
}

// TestNearestAndContentWord: nearest neighbours on known points, and the
// content word is the rarest word that the reference holds, never a stop
// word.
func TestNearestAndContentWord(t *testing.T) {
	ref := [][]float32{{0, 0}, {10, 0}, {0, 10}}
	got, err := Nearest([][]float32{{1, 1}, {9, 2}, {2, 7}, {5, 5.1}}, ref)
	if err != nil || !slices.Equal(got, []int{0, 1, 2, 2}) {
		t.Errorf("Nearest %v, %v; want [0 1 2 2]", got, err)
	}
	if _, err := Nearest([][]float32{{1}}, ref); err == nil {
		t.Error("vectors of different widths: no error")
	}
	captions := []string{"red apple", "green apple", "red circle", "thumbs up sign, dark skin tone", "thumbs down sign, dark skin tone", "a red car"}
	df := DocumentFrequency(captions)
	if df["red"] != 3 || df["apple"] != 2 || df["dark"] != 2 || df["a"] != 1 {
		t.Errorf("document frequencies %v", df)
	}
	for caption, want := range map[string]string{
		"red apple":          "apple",  // 2 captions against 3
		"green apple":        "green",  // 1
		"a red circle":       "circle", // "a" is a stop word
		"thumbs up sign":     "up",     // 1 caption, against 2
		"thumbs sign":        "thumbs", // both of 2: the longest
		"blue whale":         "",       // no word of the reference
		"medium-dark":        "dark",   // "medium" is in no caption
		"Red   APPLE!":       "apple",
		"a red car, a truck": "car",
	} {
		if got := ContentWord(caption, df); got != want {
			t.Errorf("ContentWord(%q) = %q, want %q", caption, got, want)
		}
	}
	if !HasWord("thumbs up sign, dark skin tone", "dark") || HasWord("darkness", "dark") {
		t.Error("HasWord matches parts of words or misses whole ones")
	}
}

// TestScoreImageSet: images that are exact copies of the held-out images
// of their captions score FD 0, precision and recall 1 and retrieval 100%;
// copies of another caption's image are not retrieved; a judge that reads
// what a prompt wants scores it right, image by image and prompt by
// prompt (more than half of its images), per group.
func TestScoreImageSet(t *testing.T) {
	b := testutil.Backend(t, "")
	vc := vae.Config{Kind: vae.Sigma, ImageSize: 8, InChannels: 3, Patch: 4, Channels: 4, Dim: 16, Depth: 1, Heads: 2, MLPRatio: 2, CSigma: 0.9375, KLWeight: 0.01}
	store := model.NewStore()
	if err := nn.Init(store, vc.Specs(), 3, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	tok, err := vae.NewModel(b, vc, store)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	cc := classifier.Config{ImageSize: 8, InChannels: 3, Widths: []int{4}, Features: 8, Classes: 3, Labels: []string{"x", "y", "z"}}
	cstore := model.NewStore()
	if err := nn.Init(cstore, cc.Specs(), 4, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	clf, err := classifier.NewModel(b, cc, cstore)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	image := func() []float32 {
		img := make([]float32, vc.Pixels())
		for k := range img {
			img[k] = rng.Float32()
		}
		return img
	}
	captions := []string{"red disc", "blue square", "green disc", "red square", "yellow star", "blue star", "green star", "white disc"}
	test := make([][]float32, len(captions))
	for i := range test {
		test[i] = image()
	}
	probs, _, err := clf.Predict(test)
	if err != nil {
		t.Fatal(err)
	}
	df := DocumentFrequency(captions)
	e := ImageSetEval{Data: "shapes", Encoder: tok, Test: test, Train: [][]float32{image(), image(), image()},
		Reference: test, ReferenceCaptions: captions, PerPrompt: 3,
		Judges: []NamedJudge{{Name: "kind", Judge: Judge{Models: []*classifier.Model{clf}}}}}
	var images [][]float32
	for i, c := range captions {
		// The judge's own reading is wanted of the held-out prompts.
		e.Prompts = append(e.Prompts, Prompt{Text: c, Group: "held-out", Content: ContentWord(c, df), Real: true,
			Want: map[string]int{"kind": metrics.Argmax(probs[i])}})
		images = append(images, test[i], test[i], test[i])
	}
	// A seen prompt drawn as the image of another caption, two times of
	// three: retrieval fails there, and the judge, wanting the class of
	// the third image (one it reads otherwise than the other two), reads
	// one image of three right, so the prompt is wrong.
	pool := [][]float32{}
	for _, v := range [][3]float32{{0, 0, 0}, {1, 1, 1}, {1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {1, 1, 0}} {
		img := make([]float32, vc.Pixels())
		for k := range img {
			img[k] = v[k%3]
		}
		pool = append(pool, img)
	}
	for range 40 {
		pool = append(pool, image())
	}
	pp, _, err := clf.Predict(pool)
	if err != nil {
		t.Fatal(err)
	}
	other, third := -1, -1
	for k, p := range pp {
		if c := metrics.Argmax(p); c != metrics.Argmax(probs[1]) {
			other, third = c, k
			break
		}
	}
	if third < 0 {
		t.Fatal("the random judge reads every image alike: no image to want")
	}
	images = append(images, test[1], test[1], pool[third])
	e.Prompts = append(e.Prompts, Prompt{Text: "yellow disc", Group: "seen", Content: ContentWord("yellow disc", df), Want: map[string]int{"kind": other}})
	r, err := e.Score(images)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(r.FD) > 1e-4 || r.Precision != 1 || r.Recall != 1 || r.FDImages != len(captions) || r.Real != len(captions) || r.Generated != len(images) {
		t.Errorf("copies of the held-out images: FD %g from %d images, precision %g, recall %g (%d real, %d drawn)", r.FD, r.FDImages, r.Precision, r.Recall, r.Real, r.Generated)
	}
	held, seen := r.Group("held-out"), r.Group("seen")
	if held == nil || seen == nil || len(r.Groups) != 2 || r.Groups[0].Group != "held-out" {
		t.Fatalf("groups %+v", r.Groups)
	}
	if held.Prompts != 8 || held.Images != 24 || held.Retrieval == nil || held.Retrieval.Rate != 1 {
		t.Errorf("held-out group %+v (retrieval %+v), want 8 prompts, 24 images, all retrieved", held, held.Retrieval)
	}
	wantChance := 0.0
	for _, c := range captions {
		w := ContentWord(c, df)
		wantChance += float64(df[w]) / float64(len(captions)) / float64(len(captions))
	}
	if math.Abs(held.RetrievalChance-wantChance) > 1e-9 {
		t.Errorf("retrieval chance %g, want %g", held.RetrievalChance, wantChance)
	}
	if j := held.Judges["kind"]; j == nil || j.Images.Rate != 1 || j.Prompts.Rate != 1 || j.Prompts.N != 8 {
		t.Errorf("held-out judge %+v, want every image and prompt right", j)
	}
	// "yellow disc" looks for "yellow" (1 caption, against 3 of "disc"):
	// the image of "blue square" does not carry it.
	if seen.Retrieval == nil || seen.Retrieval.N != 3 || seen.Retrieval.Correct != 0 {
		t.Errorf("seen retrieval %+v, want 0 of 3", seen.Retrieval)
	}
	if j := seen.Judges["kind"]; j == nil || j.Images.Correct != 1 || j.Images.N != 3 || j.Prompts.Correct != 0 || j.Prompts.N != 1 {
		t.Errorf("seen judge %+v, want 1 of 3 images and no prompt right", j)
	}
	p := r.Prompts[len(r.Prompts)-1]
	if p.Prompt != "yellow disc" || p.Content != "yellow" || p.Nearest != "blue square" || p.Right["kind"] != 1 || p.Want["kind"] != cc.Label(other) || p.Got["kind"][2] != cc.Label(other) {
		t.Errorf("prompt report %+v (image %d)", p, third)
	}
	if held.Judges["kind"].Real != nil {
		t.Errorf("a judge's ceiling %+v without the prompts' real images", held.Judges["kind"].Real)
	}
	// With the real image of each prompt (the seen prompt's taken from a
	// caption whose class it does not want), each judge also reports its
	// reading of them: all 8 held-out right, the seen one wrong.
	for i := range captions {
		e.Prompts[i].Source = test[i]
	}
	e.Prompts[len(captions)].Source = test[1]
	r, err = e.Score(images)
	if err != nil {
		t.Fatal(err)
	}
	if j := r.Group("held-out").Judges["kind"]; j.Real == nil || j.Real.N != 8 || j.Real.Correct != 8 || j.Images.Rate != 1 {
		t.Errorf("held-out judge %+v, real images %+v: want 8 of 8", j, j.Real)
	}
	if j := r.Group("seen").Judges["kind"]; j.Real == nil || j.Real.N != 1 || j.Real.Correct != 0 || j.Images.Correct != 1 {
		t.Errorf("seen judge %+v, real images %+v: want 0 of 1", j, j.Real)
	}
	// Bad evaluations are refused.
	bad := e
	bad.Prompts = []Prompt{{Text: "x", Want: map[string]int{"colour": 1}, Real: true}}
	if _, err := bad.Score(images[:3]); err == nil {
		t.Error("a prompt wanting an unknown judge: no error")
	}
	if _, err := e.Score(images[:5]); err == nil {
		t.Error("too few images: no error")
	}
	bad = e
	bad.Test = test[:3]
	if _, err := bad.Score(images); err == nil {
		t.Error("3 held-out images (k = 3): no error")
	}
}
