package text

import (
	"iter"
	"strings"
	"unicode"
	"unicode/utf8"
)

// byteRune and runeByte are GPT-2's bytes_to_unicode table and its inverse
// (Radford et al. 2019, encoder.py). A byte-level BPE works on bytes, but
// tokenizer.json stores tokens as JSON strings, so every byte is written as
// one printable character: the printable Latin-1 bytes ('!'..'~', '¡'..'¬',
// '®'..'ÿ') stand for themselves and the other 68 bytes (controls, space,
// soft hyphen, ...) become U+0100 onwards in byte order, so a space is 'Ġ'
// (U+0120) and a newline 'Ċ' (U+010A). Hugging Face's ByteLevel
// pre-tokenizer and decoder use the same table, which is what makes our
// files theirs.
var (
	byteRune [256]rune
	runeByte = make(map[rune]byte, 256)
)

func init() {
	n := 0
	for b := range 256 {
		printable := b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE && b <= 0xFF
		r := rune(b)
		if !printable {
			r = rune(256 + n)
			n++
		}
		byteRune[b] = r
		runeByte[r] = byte(b)
	}
}

// byteLevelString maps raw token bytes to their tokenizer.json spelling.
func byteLevelString(b []byte) string {
	var sb strings.Builder
	sb.Grow(2 * len(b))
	for _, c := range b {
		sb.WriteRune(byteRune[c])
	}
	return sb.String()
}

// byteLevelBytes inverts byteLevelString; ok is false when s holds a
// character outside the 256 of the table (a special token such as
// "<|endoftext|>" is an ordinary string of printable ASCII and maps too).
func byteLevelBytes(s string) (b []byte, ok bool) {
	b = make([]byte, 0, len(s))
	for _, r := range s {
		c, found := runeByte[r]
		if !found {
			return nil, false
		}
		b = append(b, c)
	}
	return b, true
}

// Character classes of GPT-2's split pattern.
const (
	classSpace  = iota // \s: the Unicode White_Space property
	classLetter        // \p{L}
	classNumber        // \p{N}
	classOther         // [^\s\p{L}\p{N}], and bytes that are not UTF-8
)

// classAt returns the class of the character at the start of s and its
// length in bytes. A byte that does not start valid UTF-8 is one character
// of class other, so that arbitrary bytes still split (and round-trip).
func classAt(s string) (class, size int) {
	r, size := utf8.DecodeRuneInString(s)
	switch {
	case r == utf8.RuneError && size <= 1:
		return classOther, 1
	case unicode.IsSpace(r): // White_Space, as Oniguruma's \s in Unicode mode
		return classSpace, size
	case unicode.IsLetter(r):
		return classLetter, size
	case unicode.IsNumber(r):
		return classNumber, size
	}
	return classOther, size
}

// run returns the length in bytes of the longest prefix of s whose
// characters are all of class c.
func run(s string, c int) int {
	n := 0
	for n < len(s) {
		k, size := classAt(s[n:])
		if k != c {
			break
		}
		n += size
	}
	return n
}

// contractions are the first alternatives of the split pattern, in its
// order (which matters only for the leftmost-first choice; none is a prefix
// of another).
var contractions = [...]string{"s", "t", "re", "ve", "m", "ll", "d"}

// pieceLen returns the length in bytes of the first pre-token of the
// non-empty string s under GPT-2's split pattern
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// matched as Oniguruma does in Hugging Face tokenizers (leftmost-first
// alternation with backtracking). Go's regexp has no lookahead, hence this
// hand-written scanner. Every character belongs to one of the four classes,
// so some alternative always matches and the pieces partition the input.
func pieceLen(s string) int {
	// 's 't 're 've 'm 'll 'd (lowercase only, as in GPT-2).
	if s[0] == '\'' {
		for _, c := range contractions {
			if strings.HasPrefix(s[1:], c) {
				return 1 + len(c)
			}
		}
	}
	// " ?X+" for X letter, number or other: an optional ASCII space, then a
	// run of one class. The space is taken only when a non-space follows.
	if s[0] == ' ' && len(s) > 1 {
		if c, _ := classAt(s[1:]); c != classSpace {
			return 1 + run(s[1:], c)
		}
	}
	if c, _ := classAt(s); c != classSpace {
		return run(s, c)
	}
	// \s+(?!\S): a whitespace run that ends the string, or is followed by
	// whitespace. When the maximal run is followed by a non-space, the regex
	// backtracks by one character, leaving that last whitespace character to
	// start the next piece (" word" then gets its space). A run of a single
	// character followed by a non-space falls through to \s+ and is taken
	// whole.
	n := run(s, classSpace)
	if n == len(s) {
		return n
	}
	_, last := utf8.DecodeLastRuneInString(s[:n])
	if n > last {
		return n - last
	}
	return n
}

// preTokens yields the pre-tokens of s in order; they concatenate to s.
func preTokens(s string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for len(s) > 0 {
			n := pieceLen(s)
			if !yield(s[:n]) {
				return
			}
			s = s[n:]
		}
	}
}
