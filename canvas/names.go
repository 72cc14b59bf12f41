package canvas

import (
	"errors"
	"fmt"
	"strings"
)

// Names is the vocabulary that captions and questions are written in: MNIST
// ("the digit 3") or Fashion ("a sneaker", "an ankle boot"). The zero
// Names has no vocabulary: its captions are empty and Parse refuses
// everything.
type Names struct {
	noun    string          // "digit", "item"
	words   [Classes]string // the answer naming each class: "3", "sneaker"
	phrases [Classes]string // the caption phrase of each class: "the digit 3", "a sneaker"
}

// MNIST names digits: "the digit 3", answers "3".
var MNIST = newNames("digit", [Classes]string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"},
	func(w string) string { return "the digit " + w })

// Fashion names the Fashion-MNIST items: "a sneaker", "an ankle boot",
// answers "sneaker".
var Fashion = newNames("item", [Classes]string{"t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"},
	func(w string) string {
		if strings.ContainsAny(w[:1], "aeiou") {
			return "an " + w
		}
		return "a " + w
	})

func newNames(noun string, words [Classes]string, phrase func(string) string) Names {
	n := Names{noun: noun, words: words}
	for c, w := range words {
		n.phrases[c] = phrase(w)
	}
	return n
}

// NamesOf is the vocabulary of a data set: MNIST for "mnist-canvas" (and
// "mnist"), Fashion for "fashion-canvas" (and "fashion").
func NamesOf(name string) (Names, error) {
	switch name {
	case "mnist", "mnist-canvas":
		return MNIST, nil
	case "fashion", "fashion-canvas":
		return Fashion, nil
	}
	return Names{}, fmt.Errorf("unknown data set %q: want mnist-canvas or fashion-canvas", name)
}

// Noun is what the vocabulary calls an image: "digit" or "item".
func (n Names) Noun() string { return n.noun }

// Word is the answer naming class c ("3", "sneaker"), "" out of range.
func (n Names) Word(c int) string {
	if c < 0 || c >= Classes {
		return ""
	}
	return n.words[c]
}

// Phrase is the caption phrase of class c ("the digit 3", "a sneaker"), ""
// out of range.
func (n Names) Phrase(c int) string {
	if c < 0 || c >= Classes {
		return ""
	}
	return n.phrases[c]
}

// relations are the caption templates of the pairs: "X<sep>Y", with X the
// image A unless swapped.
var relations = []struct {
	sep    string
	layout Layout
	swap   bool
}{
	{" is to the left of ", Horizontal, false},
	{" is to the right of ", Horizontal, true},
	{" is above ", Vertical, false},
	{" is below ", Vertical, true},
}

// singleSuffix is the end of the caption of a single at l.
func singleSuffix(l Layout) string { return " is at the " + l.String() + " of the image" }

// Captions are every caption of a scene, lowercase and without a final
// period, the canonical one first:
//
//	"the digit 3 is at the top left of the image"
//	"the digit 7 is to the left of the digit 2", "the digit 2 is to the right of the digit 7"
//	"the digit 7 is above the digit 2", "the digit 2 is below the digit 7"
//
// An invalid scene (see Scene.Validate) has none.
func (n Names) Captions(s Scene) []string {
	if s.Validate() != nil || n.noun == "" {
		return nil
	}
	if s.Layout.Single() {
		return []string{n.phrases[s.A] + singleSuffix(s.Layout)}
	}
	var out []string
	for _, r := range relations {
		if r.layout != s.Layout {
			continue
		}
		x, y := s.A, s.B
		if r.swap {
			x, y = y, x
		}
		out = append(out, n.phrases[x]+r.sep+n.phrases[y])
	}
	return out
}

// Caption is the canonical caption of a scene ("" for an invalid one).
func (n Names) Caption(s Scene) string {
	if c := n.Captions(s); len(c) > 0 {
		return c[0]
	}
	return ""
}

// Parse is the scene a caption describes. It accepts every variant that
// Captions writes, with spaces around it; anything else is an error that
// quotes the text.
func (n Names) Parse(caption string) (Scene, error) {
	if n.noun == "" {
		return Scene{}, errors.New("canvas: Parse with the zero Names: use canvas.MNIST or canvas.Fashion")
	}
	t := strings.TrimSpace(caption)
	for l := TopLeft; l <= BottomRight; l++ {
		if head, ok := strings.CutSuffix(t, singleSuffix(l)); ok {
			if a, ok := n.class(head); ok {
				return Scene{Layout: l, A: a}, nil
			}
		}
	}
	for _, r := range relations {
		x, y, ok := strings.Cut(t, r.sep)
		if !ok {
			continue
		}
		a, okA := n.class(x)
		b, okB := n.class(y)
		if okA && okB {
			if r.swap {
				a, b = b, a
			}
			return Scene{Layout: r.layout, A: a, B: b}, nil
		}
	}
	return Scene{}, fmt.Errorf("canvas: %s is not a caption of the %s vocabulary", quote(caption), n.noun)
}

// class is the class a caption phrase names.
func (n Names) class(phrase string) (int, bool) {
	for c, p := range n.phrases {
		if p == phrase {
			return c, true
		}
	}
	return 0, false
}

// quote quotes text for an error, shortened to its first 100 bytes.
func quote(text string) string {
	const limit = 100
	if len(text) <= limit {
		return fmt.Sprintf("%q", text)
	}
	return fmt.Sprintf("%q… (%d bytes)", text[:limit], len(text))
}

// QA is a question about a canvas and its short answer.
type QA struct {
	Question, Answer string
}

// Questions are the questions a scene answers, with their answers (shown
// for MNIST; Fashion says "item" and names items):
//
//	every scene  "how many digits are there?"   "one" or "two"
//	single       "where is the digit?"          "top left" … "bottom right"
//	             "which digit is it?"           "3"
//	pair         "how are the digits arranged?" "side by side" or "one above the other"
//	horizontal   "which digit is on the left?", "which digit is on the right?"
//	vertical     "which digit is on top?", "which digit is at the bottom?"
//
// An invalid scene has none.
func (n Names) Questions(s Scene) []QA {
	if s.Validate() != nil || n.noun == "" {
		return nil
	}
	q := n.questionTexts()
	if s.Layout.Single() {
		return []QA{{q.count, "one"}, {q.where, s.Layout.String()}, {q.which, n.words[s.A]}}
	}
	if s.Layout == Horizontal {
		return []QA{{q.count, "two"}, {q.arrangement, "side by side"}, {q.left, n.words[s.A]}, {q.right, n.words[s.B]}}
	}
	return []QA{{q.count, "two"}, {q.arrangement, "one above the other"}, {q.top, n.words[s.A]}, {q.bottom, n.words[s.B]}}
}

// questionTexts are the questions in the vocabulary's words.
type questionTexts struct {
	count, where, which, arrangement, left, right, top, bottom string
}

func (n Names) questionTexts() questionTexts {
	w := n.noun
	return questionTexts{
		count:       "how many " + w + "s are there?",
		where:       "where is the " + w + "?",
		which:       "which " + w + " is it?",
		arrangement: "how are the " + w + "s arranged?",
		left:        "which " + w + " is on the left?",
		right:       "which " + w + " is on the right?",
		top:         "which " + w + " is on top?",
		bottom:      "which " + w + " is at the bottom?",
	}
}

// AllQuestions lists every question of the vocabulary, whichever scene
// it applies to.
func (n Names) AllQuestions() []string {
	if n.noun == "" {
		return nil
	}
	q := n.questionTexts()
	return []string{q.count, q.where, q.which, q.arrangement, q.left, q.right, q.top, q.bottom}
}

// Answer is the answer to a question about a scene (the question may have
// spaces around it). A question that does not apply to the scene (such as
// "which digit is on the left?" of a single) or that is not one of
// AllQuestions is an error quoting it.
func (n Names) Answer(s Scene, question string) (string, error) {
	if err := s.Validate(); err != nil {
		return "", err
	}
	t := strings.TrimSpace(question)
	for _, qa := range n.Questions(s) {
		if qa.Question == t {
			return qa.Answer, nil
		}
	}
	for _, q := range n.AllQuestions() {
		if q == t {
			return "", fmt.Errorf("canvas: question %s does not apply to a scene of layout %v", quote(question), s.Layout)
		}
	}
	return "", fmt.Errorf("canvas: unknown question %s", quote(question))
}
