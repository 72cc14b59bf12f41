package speech

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"unicode"
)

// The two text sets, and SetBoth, the name of a model's or a run's
// training on both (an utterance is always of one set).
const (
	SetNumbers   = "numbers"
	SetSentences = "sentences"
	SetBoth      = "both"
)

var (
	smallNumbers = []string{"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
		"ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"}
	tensWords      = []string{"", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"}
	smallOrdinals  = []string{"", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth", "eighteenth", "nineteenth"}
	tensOrdinals   = []string{"", "", "twentieth", "thirtieth"}
	monthNames     = []string{"january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december"}
	daysInMonth    = []int{31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}
	numberKindList = []string{"digits", "cardinal", "time", "date"}
)

// below100 spells 0 ≤ n < 100 as it is said: "seven", "forty-five".
func below100(n int) string {
	if n < 20 {
		return smallNumbers[n]
	}
	if n%10 == 0 {
		return tensWords[n/10]
	}
	return tensWords[n/10] + "-" + smallNumbers[n%10]
}

// Cardinal spells 0 ≤ n < 1,000,000 in American English, without "and":
// 2412 is "two thousand four hundred twelve".
func Cardinal(n int) string {
	if n < 0 || n >= 1_000_000 {
		panic(fmt.Sprintf("speech: Cardinal(%d) out of range", n))
	}
	if n == 0 {
		return "zero"
	}
	var words []string
	if n >= 1000 {
		words = append(words, below1000(n/1000), "thousand")
		n %= 1000
	}
	if n > 0 {
		words = append(words, below1000(n))
	}
	return strings.Join(words, " ")
}

func below1000(n int) string {
	if n < 100 {
		return below100(n)
	}
	s := smallNumbers[n/100] + " hundred"
	if n%100 != 0 {
		s += " " + below100(n%100)
	}
	return s
}

// ordinal spells 1 ≤ n ≤ 31: "first", "twenty-second", "thirtieth".
func ordinal(n int) string {
	if n < 20 {
		return smallOrdinals[n]
	}
	if n%10 == 0 {
		return tensOrdinals[n/10]
	}
	return tensWords[n/10] + "-" + smallOrdinals[n%10]
}

// clock spells a time as said on a twelve-hour clock: "seven o'clock",
// "nine oh five", "twelve forty-five".
func clock(hour, minute int) string {
	h := smallNumbers[hour]
	switch {
	case minute == 0:
		return h + " o'clock"
	case minute < 10:
		return h + " oh " + smallNumbers[minute]
	}
	return h + " " + below100(minute)
}

// year spells 1901…2029 as years are said: "nineteen oh five", "nineteen
// ninety-nine", "two thousand seven", "twenty twenty-four".
func year(y int) string {
	switch {
	case y >= 2000 && y < 2010:
		return Cardinal(y)
	case y%100 == 0:
		return below100(y/100) + " hundred"
	case y%100 < 10:
		return below100(y/100) + " oh " + smallNumbers[y%100]
	}
	return below100(y/100) + " " + below100(y%100)
}

// Text is one utterance's text: what the synthesiser reads, which is
// exactly what it says, so that Normalize(Words) is the reference
// transcript.
type Text struct {
	Set   string // SetNumbers or SetSentences
	Kind  string // digits, cardinal, time or date; "sentence"
	Words string
}

// NumberTexts returns n distinct spoken-number texts drawn from seed:
// digit strings of 3–7 digits ("seven three nine"), cardinals below ten
// thousand (and a few up to a million), times ("twelve forty-five") and
// dates ("march third", "the twenty-first of june nineteen ninety-nine"),
// in proportions 3:3:2:2. The same seed gives the same texts in the same
// order on any machine (math/rand/v2's PCG is specified).
func NumberTexts(seed uint64, n int) []Text {
	r := rand.New(rand.NewPCG(seed, 0x6e756d62657273)) // "numbers"
	seen := map[string]bool{}
	out := make([]Text, 0, n)
	// The domain holds well over a million distinct texts, so a duplicate
	// is rare and the loop ends.
	for len(out) < n {
		var t Text
		switch k := r.IntN(10); {
		case k < 3:
			t = Text{Kind: "digits", Words: digitString(r, 3+r.IntN(5))}
		case k < 6:
			v := r.IntN(10000)
			if r.IntN(5) == 0 {
				v = r.IntN(1_000_000)
			}
			t = Text{Kind: "cardinal", Words: Cardinal(v)}
		case k < 8:
			t = Text{Kind: "time", Words: clock(1+r.IntN(12), r.IntN(60))}
		default:
			t = Text{Kind: "date", Words: date(r)}
		}
		t.Set = SetNumbers
		if !seen[t.Words] {
			seen[t.Words] = true
			out = append(out, t)
		}
	}
	return out
}

func digitString(r *rand.Rand, n int) string {
	d := make([]string, n)
	for i := range d {
		d[i] = smallNumbers[r.IntN(10)]
	}
	return strings.Join(d, " ")
}

func date(r *rand.Rand) string {
	m := r.IntN(12)
	d := ordinal(1 + r.IntN(daysInMonth[m]))
	var s string
	if r.IntN(2) == 0 {
		s = monthNames[m] + " " + d
	} else {
		s = "the " + d + " of " + monthNames[m]
	}
	if r.IntN(2) == 0 {
		s += " " + year(1901+r.IntN(129))
	}
	return s
}

// Sentence limits: long enough to carry prosody, short enough that one
// utterance stays a few seconds.
const (
	MinSentenceWords = 3
	MaxSentenceWords = 12
)

// Sentences splits documents (fortunes) into sentences and keeps the plain
// ones a synthesiser reads as written: MinSentenceWords to MaxSentenceWords
// words of letters (with inner apostrophes or hyphens) separated by single
// spaces, a capital first letter, commas, semicolons and colons only after
// a word (a colon not after the first, which would be a speaker's label),
// and one final '.', '!' or '?'. Dropped are sentences with digits,
// quotes, brackets, dashes, abbreviations or acronyms (a capital after a
// word's first letter, or a lone capital other than "I" and "A"), since a
// synthesiser's reading of those differs from the text and the transcript
// would be wrong. If known is not nil, every word must also be one of its
// keys (lower case): the judge's dictionary, so that the recogniser can
// hear every word. Each sentence is kept once, in first-seen order.
func Sentences(docs []string, known map[string]bool) []string {
	seen := map[string]bool{}
	var out []string
	for _, d := range docs {
		for _, s := range splitSentences(strings.Join(strings.Fields(d), " ")) {
			if !plainSentence(s, known) {
				continue
			}
			key := Normalize(s)
			if !seen[key] {
				seen[key] = true
				out = append(out, s)
			}
		}
	}
	return out
}

// splitSentences cuts s after each '.', '!' or '?' that ends a word.
func splitSentences(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c == '.' || c == '!' || c == '?') && (i+1 == len(s) || s[i+1] == ' ') {
			out = append(out, strings.TrimSpace(s[start:i+1]))
			start = i + 1
		}
	}
	if rest := strings.TrimSpace(s[start:]); rest != "" {
		out = append(out, rest)
	}
	return out
}

// abbreviations end a "sentence" that is really cut inside one.
var abbreviations = map[string]bool{"mr": true, "mrs": true, "ms": true, "dr": true, "st": true, "jr": true, "sr": true,
	"vs": true, "etc": true, "prof": true, "gen": true, "col": true, "no": true, "vol": true, "inc": true, "co": true, "ltd": true}

func plainSentence(s string, known map[string]bool) bool {
	words := strings.Split(s, " ")
	if len(words) < MinSentenceWords || len(words) > MaxSentenceWords {
		return false
	}
	last := words[len(words)-1]
	if end := last[len(last)-1]; end != '.' && end != '!' && end != '?' {
		return false
	}
	for i, w := range words {
		if i == len(words)-1 {
			w = w[:len(w)-1]
			if abbreviations[strings.ToLower(w)] {
				return false
			}
		} else {
			// A colon after the first word is a speaker's label ("Q:",
			// "A:", "Jim:"), not part of what is said.
			if i == 0 && strings.HasSuffix(w, ":") {
				return false
			}
			w = strings.TrimRight(w, ",;:")
		}
		if !plainWord(w, i == 0) {
			return false
		}
		if known != nil && !known[strings.ToLower(w)] {
			return false
		}
	}
	return true
}

// plainWord: ASCII letters with single inner apostrophes or hyphens; a
// capital only first (required for the first word); a lone capital only
// "I" or "A".
func plainWord(w string, first bool) bool {
	if w == "" {
		return false
	}
	if len(w) == 1 && unicode.IsUpper(rune(w[0])) && w != "I" && w != "A" {
		return false
	}
	if first && !('A' <= w[0] && w[0] <= 'Z') {
		return false
	}
	for i := 0; i < len(w); i++ {
		c := w[i]
		switch {
		case 'a' <= c && c <= 'z':
		case 'A' <= c && c <= 'Z':
			if i > 0 {
				return false
			}
		case c == '\'' || c == '-':
			if i == 0 || i == len(w)-1 || w[i-1] == '\'' || w[i-1] == '-' {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// Normalize is the form in which transcripts are compared: lower case,
// words of letters, digits and inner apostrophes, separated by single
// spaces. Hyphens separate words ("forty-five" is "forty five", as it is
// said and as the recogniser writes it); other punctuation is dropped; a
// recogniser's pronunciation variant suffix ("read(2)") is removed.
func Normalize(s string) string {
	var words []string
	for _, w := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '\'' || r == '(' || r == ')')
	}) {
		if i := strings.IndexByte(w, '('); i > 0 && strings.HasSuffix(w, ")") {
			w = w[:i]
		}
		w = strings.Trim(w, "'()")
		w = strings.NewReplacer("(", "", ")", "").Replace(w)
		if w != "" {
			words = append(words, w)
		}
	}
	return strings.Join(words, " ")
}
