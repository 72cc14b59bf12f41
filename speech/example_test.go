package speech_test

import (
	"fmt"

	"github.com/latentlm/latentlm/speech"
)

// The word error rate counts the substitutions, insertions and deletions
// that turn the reference into what the judge heard, after both are
// normalised (lower case, no punctuation, hyphens as spaces, so
// "forty-five" is two words either way); summed over utterances, as the
// judge's reports do, it weights each word alike.
func ExampleWordErrors() {
	w := speech.WordErrors("Seven three nine.", "seven tree nine")
	fmt.Println(w.Errors, "of", w.Words, "words wrong")
	w = w.Add(speech.WordErrors("twelve forty-five", "twelve forty five"))
	fmt.Printf("%d of %d: WER %.1f%%\n", w.Errors, w.Words, 100*w.Rate())
	// Output:
	// 1 of 3 words wrong
	// 1 of 6: WER 16.7%
}

// IsNumberText tells the spoken numbers (digits, numbers, times and dates,
// the texts the numbers grammar accepts) from other text: speak and the
// server choose their shipped model by it.
func ExampleIsNumberText() {
	for _, text := range []string{"seven three nine", "twelve forty-five", "July twenty-first", "Nobody saw me do it!"} {
		fmt.Printf("%q: %v\n", text, speech.IsNumberText(text))
	}
	// Output:
	// "seven three nine": true
	// "twelve forty-five": true
	// "July twenty-first": true
	// "Nobody saw me do it!": false
}
