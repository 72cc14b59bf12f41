package phoneme_test

import (
	"fmt"

	"github.com/latentlm/latentlm/phoneme"
)

// Spell a sentence as a text-to-speech model that reads phonemes sees it.
// "tough" and "though" share their letters but not their sounds.
func Example() {
	s, err := phoneme.Default()
	if err != nil {
		fmt.Println(err)
		return
	}
	p, err := s.Text("tough, though.")
	fmt.Println(p, err)
	// Output: tʌf, ðo. <nil>
}
