package speech

import (
	"os"
	"slices"
	"strings"
	"testing"
)

func TestSpelling(t *testing.T) {
	cases := map[string]string{
		Cardinal(0):       "zero",
		Cardinal(7):       "seven",
		Cardinal(45):      "forty-five",
		Cardinal(100):     "one hundred",
		Cardinal(2412):    "two thousand four hundred twelve",
		Cardinal(999_999): "nine hundred ninety-nine thousand nine hundred ninety-nine",
		Cardinal(10_010):  "ten thousand ten",
		clock(12, 45):     "twelve forty-five",
		clock(9, 5):       "nine oh five",
		clock(7, 0):       "seven o'clock",
		ordinal(1):        "first",
		ordinal(22):       "twenty-second",
		ordinal(30):       "thirtieth",
		year(1905):        "nineteen oh five",
		year(1900 + 99):   "nineteen ninety-nine",
		year(2007):        "two thousand seven",
		year(2024):        "twenty twenty-four",
		year(1910):        "nineteen ten",
	}
	for got, want := range cases {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

func TestNumberTextsDeterministicAndDistinct(t *testing.T) {
	a, b := NumberTexts(7, 500), NumberTexts(7, 500)
	if !slices.Equal(a, b) {
		t.Fatal("the same seed gave different texts")
	}
	if c := NumberTexts(8, 500); slices.Equal(a, c) {
		t.Fatal("different seeds gave the same texts")
	}
	seen := map[string]bool{}
	kinds := map[string]int{}
	for _, x := range a {
		if seen[x.Words] {
			t.Fatalf("%q twice", x.Words)
		}
		seen[x.Words] = true
		kinds[x.Kind]++
		if x.Set != SetNumbers {
			t.Fatalf("set %q", x.Set)
		}
	}
	for _, k := range numberKindList {
		if kinds[k] < 50 {
			t.Errorf("only %d texts of kind %s in 500", kinds[k], k)
		}
	}
}

// TestGrammarCoversGenerator: every generated text is a sentence of the
// judge's grammar, so the judge is never told a number cannot be said;
// IsNumberText says the same of each, and no of prose.
func TestGrammarCoversGenerator(t *testing.T) {
	for _, x := range NumberTexts(1, 3000) {
		if !IsNumberText(x.Words) {
			t.Fatalf("grammar rejects %q", x.Words)
		}
	}
	for _, s := range []string{"Twelve forty-five.", "seven three nine", "The third of May nineteen oh four"} {
		if !IsNumberText(s) {
			t.Errorf("grammar rejects %q", s)
		}
	}
	for _, s := range []string{"hello world", "twelve o'clock five", "the of march", "january thirty-fifth", "seven cats", ""} {
		if IsNumberText(s) {
			t.Errorf("grammar accepts %q", s)
		}
	}
	g := NumbersGrammar()
	if !strings.HasPrefix(g, "#JSGF V1.0;") || !strings.Contains(g, "public <utterance> =") {
		t.Errorf("grammar header: %q", g[:40])
	}
}

func TestSentences(t *testing.T) {
	docs := []string{
		"The cat sat on\nthe mat. It was happy!  Was it?\n\t\t-- Anonymous",
		"Mr. Smith went to Washington. I like it a lot, really.",
		"Call 555-1234 today. Use the NASA rocket now. He said \"no\" twice.",
		"Too short. one lowercase start here. X marks the spot today.",
		"This sentence has far too many words to be kept in the sentence set here.",
		"The cat sat on the mat.",
		"Don't stop-believing, ever again.",
		"Q: How many are there? A: a lot of them, I think.",
	}
	got := Sentences(docs, nil)
	// "Was it?" has two words; "Smith went to Washington." survives the
	// cut after "Mr.", a plain sentence on its own; the repeated first
	// sentence is kept once.
	want := []string{"The cat sat on the mat.", "It was happy!", "Smith went to Washington.", "I like it a lot, really.", "Don't stop-believing, ever again."}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	known := map[string]bool{"the": true, "cat": true, "sat": true, "on": true, "mat": true}
	if got := Sentences(docs, known); !slices.Equal(got, []string{"The cat sat on the mat."}) {
		t.Fatalf("with a vocabulary: got %q", got)
	}
}

func TestNormalizeAndWER(t *testing.T) {
	if got := Normalize("Twelve forty-five, o'clock!  READ(2) 'quoted'"); got != "twelve forty five o'clock read quoted" {
		t.Errorf("Normalize: %q", got)
	}
	cases := []struct {
		ref, hyp string
		want     WER
	}{
		{"seven three nine", "seven three nine", WER{0, 3}},
		{"seven three nine", "seven nine", WER{1, 3}},
		{"seven three nine", "seven three three nine", WER{1, 3}},
		{"seven three nine", "eleven three nine", WER{1, 3}},
		{"twelve forty-five", "twelve forty five", WER{0, 3}},
		{"a b c", "", WER{3, 3}},
		{"", "a b", WER{2, 0}},
		{"the cat sat", "cat sat the", WER{2, 3}},
	}
	for _, c := range cases {
		if got := WordErrors(c.ref, c.hyp); got != c.want {
			t.Errorf("WordErrors(%q, %q) = %+v, want %+v", c.ref, c.hyp, got, c.want)
		}
	}
	total := WER{1, 3}.Add(WER{0, 7})
	if total.Rate() != 0.1 || (WER{2, 0}).Rate() != 1 || (WER{}).Rate() != 0 {
		t.Errorf("rates: %v %v %v", total.Rate(), WER{2, 0}.Rate(), WER{}.Rate())
	}
}

// TestMoreTrainingTextsKeepTheTestSet: a cache with more training texts
// (speech data --texts) holds the same validation and test texts, and the
// smaller cache's training texts first, so that models trained on either
// are scored on the same utterances (docs/RESULTS.md, "All 350 test texts,
// and four times the training texts").
func TestMoreTrainingTextsKeepTheTestSet(t *testing.T) {
	small, large := DefaultOptions(t.TempDir()), DefaultOptions(t.TempDir())
	small.Texts, large.Texts = 40, 160
	small.Eval, large.Eval = 10, 10
	for _, o := range []*Options{&small, &large} {
		if err := o.fill(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(small.FortunesDir); err != nil {
		t.Skipf("no fortunes (make setup installs them): %v", err)
	}
	a, err := planTexts(small, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := planTexts(large, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, set := range []string{SetNumbers, SetSentences} {
		for _, split := range []string{SplitValid, SplitTest} {
			if !slices.Equal(a[set][split], b[set][split]) {
				t.Errorf("%s/%s: the texts differ with more training texts", set, split)
			}
		}
		tr, trLarge := a[set][SplitTrain], b[set][SplitTrain]
		if len(tr) != 40 || len(trLarge) != 160 || !slices.Equal(tr, trLarge[:40]) {
			t.Errorf("%s/train: %d and %d texts, the smaller not a prefix of the larger", set, len(tr), len(trLarge))
		}
	}
}
