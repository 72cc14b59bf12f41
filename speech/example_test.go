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

// TimbreOptions describe the cache of other languages' voices that teach
// the speech models more timbres: training texts only, in nine voices that
// no judge reads. speech.Build renders it (`latentlm speech data
// --timbres`).
func ExampleTimbreOptions() {
	o := speech.TimbreOptions(".deps/speech-timbres")
	fmt.Println(len(o.Voices), "voices,", o.Texts, "training texts per set, train only:", o.TrainOnly)
	for _, v := range o.Voices[:3] {
		fmt.Printf("%s: festival's %s, rendered at %d Hz (Debian %s)\n", v.Name, v.ID, v.Rate, v.Package)
	}
	// Output:
	// 9 voices, 200 training texts per set, train only: true
	// festival-it-lp: festival's lp_diphone, rendered at 16000 Hz (Debian festvox-italp16k)
	// festival-it-pc: festival's pc_diphone, rendered at 16000 Hz (Debian festvox-itapc16k)
	// festival-cs-dita: festival's czech_dita, rendered at 32000 Hz (Debian festvox-czech-dita)
}
