package text

import (
	"slices"
	"strings"
	"testing"
)

// preTokenCases are inputs with their split under GPT-2's pattern, worked
// out by hand from the regex (and checked against Hugging Face tokenizers
// by hf_test.go, which encodes them all).
var preTokenCases = []struct {
	in   string
	want []string
}{
	{"", nil},
	{" ", []string{" "}},
	{"Hello world", []string{"Hello", " world"}},
	// \s+(?!\S): the run gives its last space to the word after it.
	{"a  b", []string{"a", " ", " b"}},
	{"a   b", []string{"a", "  ", " b"}},
	{"  leading", []string{" ", " leading"}},
	{"trailing   ", []string{"trailing", "   "}},
	{"   ", []string{"   "}},
	{"a\n\nb", []string{"a", "\n", "\n", "b"}},
	{"a\nb", []string{"a", "\n", "b"}},
	{"a \n b", []string{"a", " \n", " b"}},
	{"x\t y", []string{"x", "\t", " y"}},
	{"end.\n", []string{"end", ".", "\n"}},
	// Contractions: lowercase only, and taken before any word.
	{"it's", []string{"it", "'s"}},
	{"IT'S", []string{"IT", "'", "S"}},
	{"don't", []string{"don", "'t"}},
	{"we're they've I'm you'll he'd", []string{"we", "'re", " they", "'ve", " I", "'m", " you", "'ll", " he", "'d"}},
	{"'sup", []string{"'s", "up"}},
	{" 'll", []string{" '", "ll"}},
	{"!'s", []string{"!'", "s"}},
	// Letters, numbers and the rest make separate runs.
	{"abc123def", []string{"abc", "123", "def"}},
	{" 123", []string{" 123"}},
	{"1,000.5", []string{"1", ",", "000", ".", "5"}},
	{"hello!!! ok", []string{"hello", "!!!", " ok"}},
	{"(x) = -y;", []string{"(", "x", ")", " =", " -", "y", ";"}},
	{"Ⅻ½١٢ x", []string{"Ⅻ½١٢", " x"}},
	// Beyond ASCII: Unicode classes, and White_Space for \s.
	{"中文 字", []string{"中文", " 字"}},
	{"café", []string{"café"}},
	{"e\u0301t\u00e9", []string{"e", "\u0301", "té"}},
	{"👍👍 ok", []string{"👍👍", " ok"}},
	{"a\u00a0b", []string{"a", "\u00a0", "b"}},
	{"x\u3000\u3000y", []string{"x", "\u3000", "\u3000", "y"}},
	{"x\u2028y", []string{"x", "\u2028", "y"}},
	{"zero\u200bwidth", []string{"zero", "\u200b", "width"}},
	// Bytes that are not UTF-8 are "other" characters, one byte each.
	{"\xff\xfeabc", []string{"\xff\xfe", "abc"}},
	{"a \xc3", []string{"a", " \xc3"}},
}

func TestPreTokens(t *testing.T) {
	for _, c := range preTokenCases {
		got := slices.Collect(preTokens(c.in))
		if !slices.Equal(got, c.want) {
			t.Errorf("preTokens(%q) = %q, want %q", c.in, got, c.want)
		}
		if strings.Join(got, "") != c.in {
			t.Errorf("preTokens(%q) = %q: pieces do not concatenate to the input", c.in, got)
		}
	}
}

func TestPreTokensStopEarly(t *testing.T) {
	n := 0
	for range preTokens("one two three") {
		n++
		break
	}
	if n != 1 {
		t.Fatalf("iterated %d times after break", n)
	}
}

// TestByteTable pins GPT-2's bytes_to_unicode: printable Latin-1 maps to
// itself, the other bytes to U+0100 onwards in byte order.
func TestByteTable(t *testing.T) {
	for b, want := range map[byte]rune{
		'a': 'a', '!': '!', '~': '~', 0xA1: '¡', 0xFF: 'ÿ',
		0x00: 'Ā', '\n': 'Ċ', ' ': 'Ġ', 0x7F: 'ġ', 0xA0: 'ł', 0xAD: 'Ń',
	} {
		if got := byteRune[b]; got != want {
			t.Errorf("byte 0x%02x maps to %q, want %q", b, got, want)
		}
	}
	if len(runeByte) != 256 {
		t.Fatalf("inverse table has %d entries, want 256 (the map is not one-to-one)", len(runeByte))
	}
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	back, ok := byteLevelBytes(byteLevelString(all))
	if !ok || !slices.Equal(back, all) {
		t.Fatalf("byte-level spelling does not round-trip all 256 bytes")
	}
	if _, ok := byteLevelBytes("a b"); ok {
		t.Errorf("a raw space should not be a byte-level character")
	}
}
