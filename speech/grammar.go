package speech

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
)

// numberRules is the grammar of NumberTexts as JSGF rule bodies, in the
// small subset of JSGF that both pocketsphinx and grammarRegexp below
// understand: words, <rule> references, ( … ) groups, [ … ] options, |
// alternatives and a trailing + on a reference. The recogniser is thereby
// told the closed vocabulary and the shapes of the spoken numbers, which
// is the fair judge for that domain (a general language model expects
// prose, not "seven three nine").
var numberRules = []struct{ name, body string }{
	{"utterance", "<digits> | <cardinal> | <time> | <date>"},
	{"digit", "zero | one | two | three | four | five | six | seven | eight | nine"},
	{"digits", "<digit>+"},
	{"teen", "ten | eleven | twelve | thirteen | fourteen | fifteen | sixteen | seventeen | eighteen | nineteen"},
	{"tens", "twenty | thirty | forty | fifty | sixty | seventy | eighty | ninety"},
	{"unit", "one | two | three | four | five | six | seven | eight | nine"},
	{"below100", "<unit> | <teen> | <tens> [<unit>]"},
	{"below1000", "<below100> | <unit> hundred [<below100>]"},
	{"cardinal", "zero | <below1000> | <below1000> thousand [<below1000>]"},
	{"hour", "<unit> | ten | eleven | twelve"},
	{"minute", "oh <unit> | <teen> | <tens> [<unit>]"},
	{"time", "<hour> (o'clock | <minute>)"},
	{"ordunit", "first | second | third | fourth | fifth | sixth | seventh | eighth | ninth"},
	{"ordinal", "<ordunit> | tenth | eleventh | twelfth | thirteenth | fourteenth | fifteenth | sixteenth | seventeenth | eighteenth | nineteenth | twentieth | thirtieth | twenty <ordunit> | thirty first"},
	{"month", "january | february | march | april | may | june | july | august | september | october | november | december"},
	{"year", "nineteen (hundred | oh <unit> | <teen> | <tens> [<unit>]) | two thousand [<unit>] | twenty (<teen> | twenty [<unit>])"},
	{"date", "(<month> <ordinal> | the <ordinal> of <month>) [<year>]"},
}

// NumbersGrammar is the JSGF grammar of the spoken numbers, for the judge.
func NumbersGrammar() string {
	var b strings.Builder
	b.WriteString("#JSGF V1.0;\ngrammar numbers;\n")
	for i, r := range numberRules {
		if i == 0 {
			b.WriteString("public ")
		}
		fmt.Fprintf(&b, "<%s> = %s;\n", r.name, r.body)
	}
	return b.String()
}

// IsNumberText reports whether text is one of the spoken numbers: a text
// NumbersGrammar accepts (after Normalize), such as "twelve forty-five" or
// "seven three nine". A text-to-speech model trained on that set alone
// reads nothing else, which is how speak chooses its shipped model.
func IsNumberText(text string) bool {
	re, err := numbersPattern()
	return err == nil && re.MatchString(Normalize(text)+" ")
}

// numbersPattern is numbersRegexp, compiled once.
var numbersPattern = sync.OnceValues(numbersRegexp)

// numbersRegexp matches Normalize(text)+" " for exactly the texts
// NumbersGrammar accepts; tests check it against NumberTexts, so that the
// grammar and the generator cannot drift apart unnoticed.
func numbersRegexp() (*regexp.Regexp, error) {
	rules := map[string]string{}
	for _, r := range numberRules {
		rules[r.name] = r.body
	}
	var expand func(name string, depth int) (string, error)
	expand = func(name string, depth int) (string, error) {
		body, ok := rules[name]
		if !ok || depth > 20 {
			return "", fmt.Errorf("rule <%s> undefined or recursive", name)
		}
		var out strings.Builder
		for _, tok := range tokenize(body) {
			switch {
			case tok == "|":
				out.WriteString("|")
			case tok == "(" || tok == "[":
				out.WriteString("(?:")
			case tok == ")":
				out.WriteString(")")
			case tok == "]":
				out.WriteString(")?")
			case tok == "+":
				out.WriteString("+")
			case strings.HasPrefix(tok, "<"):
				sub, err := expand(strings.Trim(tok, "<>"), depth+1)
				if err != nil {
					return "", err
				}
				out.WriteString("(?:" + sub + ")")
			default:
				out.WriteString(regexp.QuoteMeta(tok) + " ")
			}
		}
		return out.String(), nil
	}
	re, err := expand(numberRules[0].name, 0)
	if err != nil {
		return nil, err
	}
	return regexp.Compile("^(?:" + re + ")$")
}

// tokenize splits a rule body into words, references and the symbols
// ( ) [ ] | +.
func tokenize(body string) []string {
	for _, s := range []string{"(", ")", "[", "]", "|", "+"} {
		body = strings.ReplaceAll(body, s, " "+s+" ")
	}
	return strings.Fields(body)
}

// numbersVocabulary is every word of NumbersGrammar.
func numbersVocabulary() []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range numberRules {
		for _, tok := range tokenize(r.body) {
			if strings.ContainsAny(tok, "<>()[]|+") || seen[tok] {
				continue
			}
			seen[tok] = true
			out = append(out, tok)
		}
	}
	return out
}

// WER counts word errors: Errors substitutions, insertions and deletions
// (the word-level Levenshtein distance) against Words reference words.
// Summed over utterances, Errors/Words is the corpus word error rate, the
// usual way WER is reported (not the mean of per-utterance rates, which
// would overweight short utterances).
type WER struct {
	Errors, Words int
}

// Rate is Errors/Words (0 for no reference words and no errors).
func (w WER) Rate() float64 {
	if w.Words == 0 {
		if w.Errors == 0 {
			return 0
		}
		return 1
	}
	return float64(w.Errors) / float64(w.Words)
}

// Add sums two counts.
func (w WER) Add(o WER) WER { return WER{w.Errors + o.Errors, w.Words + o.Words} }

// WordErrors compares a hypothesis with a reference transcript, both
// normalised with Normalize first.
func WordErrors(ref, hyp string) WER {
	r, h := strings.Fields(Normalize(ref)), strings.Fields(Normalize(hyp))
	prev := make([]int, len(h)+1)
	cur := make([]int, len(h)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(r); i++ {
		cur[0] = i
		for j := 1; j <= len(h); j++ {
			sub := prev[j-1]
			if r[i-1] != h[j-1] {
				sub++
			}
			cur[j] = min(sub, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return WER{Errors: prev[len(h)], Words: len(r)}
}
