package text

import (
	"bytes"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// testCorpus is a small corpus with enough repetition for merges, and some
// text beyond ASCII so that multi-byte tokens are learned too.
var testCorpus = []string{
	"The quick brown fox jumps over the lazy dog.",
	"The lazy dog sleeps; the quick fox doesn't.",
	"It's a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.",
	"A handwritten digit three, drawn in one stroke.\nA handwritten digit seven with a bar.",
	"An ankle boot, a sneaker, a sandal, a shirt, a pullover and a trouser.",
	"Café au lait, crème brûlée, naïve façade.",
	"中文的句子。中文的字。",
	"Thumbs up 👍👍 and a smile 😀.",
	"    indented code();\n\tand a tab\n\n\nthree newlines",
	"Numbers: 1, 22, 333, 4444, 3.14159, 1,000,000.",
}

var (
	testTokOnce sync.Once
	testTok     *Tokenizer
	testTokErr  error
)

// trained returns a tokenizer trained once on testCorpus.
func trained(t testing.TB) *Tokenizer {
	t.Helper()
	testTokOnce.Do(func() { testTok, testTokErr = Train(testCorpus, 400) })
	if testTokErr != nil {
		t.Fatal(testTokErr)
	}
	return testTok
}

// mergeStrings lists t's merges as pairs of raw token bytes.
func mergeStrings(t *Tokenizer) [][2]string {
	var out [][2]string
	for _, m := range t.merges {
		out = append(out, [2]string{string(t.tokens[m.a]), string(t.tokens[m.b])})
	}
	return out
}

// TestTrainWikipediaExample is the example of Wikipedia's "Byte pair
// encoding" article: in aaabdaaabac, "aa" becomes Z, then "ab" Y, then
// "ZY" X, giving XdXac.
func TestTrainWikipediaExample(t *testing.T) {
	tok, err := Train([]string{"aaabdaaabac"}, MinVocabSize+3)
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]string{{"a", "a"}, {"a", "b"}, {"aa", "ab"}}
	if got := mergeStrings(tok); !slices.Equal(got, want) {
		t.Fatalf("merges = %q, want %q", got, want)
	}
	var got []string
	for _, id := range tok.Encode("aaabdaaabac") {
		got = append(got, string(tok.TokenBytes(id)))
	}
	if want := []string{"aaab", "d", "aaab", "a", "c"}; !slices.Equal(got, want) {
		t.Fatalf("encoding = %q, want %q (XdXac)", got, want)
	}
}

// TestTrainSennrichExample is the corpus of Sennrich et al.'s example
// (low ×5, lower ×2, newest ×6, widest ×3) at the byte level, each word
// with the leading space GPT-2's pre-tokenizer keeps. Worked by hand: pair
// counts, the most frequent first, ties to the smaller (left id, right id)
// where byte b is id 1+b and merged tokens take 257, 258, ...:
//
//	1  e s      9  (ties with s t: 'e' < 's')
//	2  es t     9
//	3  " " l    7  (ties with l o, o w: ' ' is the smallest id)
//	4  o w      7  (" l"=259 > 'o')
//	5  " l" ow  7
//	6  " " n    6  (ties with n e, e w, w est)
//	7  e w      6  (smaller than n e and w est)
//	8  " n" ew  6  (262 < 263 of ew est)
//	9  " new" est 6
//	10 " " w    3  (ties with w i, i d, d est)
//	11 d est    3
//	12 i dest   3
//	13 " w" idest 3
//	14 e r      2  ('e' < 261 of " low" e)
//	15 " low" er 2
//
// after which every word is one token, so training stops early.
func TestTrainSennrichExample(t *testing.T) {
	docs := []string{
		strings.Repeat(" low", 5),
		strings.Repeat(" lower", 2),
		strings.Repeat(" newest", 6),
		strings.Repeat(" widest", 3),
	}
	tok, err := Train(docs, 300)
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]string{
		{"e", "s"}, {"es", "t"}, {" ", "l"}, {"o", "w"}, {" l", "ow"},
		{" ", "n"}, {"e", "w"}, {" n", "ew"}, {" new", "est"},
		{" ", "w"}, {"d", "est"}, {"i", "dest"}, {" w", "idest"},
		{"e", "r"}, {" low", "er"},
	}
	if got := mergeStrings(tok); !slices.Equal(got, want) {
		t.Fatalf("merges =\n%q\nwant\n%q", got, want)
	}
	if tok.Size() != MinVocabSize+len(want) {
		t.Fatalf("Size() = %d, want %d (training stops when nothing is left to merge)", tok.Size(), MinVocabSize+len(want))
	}
	for _, w := range []string{" low", " lower", " newest", " widest"} {
		if ids := tok.Encode(w); len(ids) != 1 {
			t.Errorf("Encode(%q) = %v, want one token", w, ids)
		}
	}
}

func TestTrainVocabSizeBounds(t *testing.T) {
	for _, n := range []int{-1, 0, 256, MinVocabSize - 1, MaxVocabSize + 1} {
		if _, err := Train(testCorpus, n); err == nil || !strings.Contains(err.Error(), "vocabulary size") {
			t.Errorf("Train(_, %d) error = %v, want a vocabulary size error", n, err)
		}
	}
	tok, err := Train(testCorpus, MinVocabSize)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Size() != MinVocabSize || len(tok.merges) != 0 {
		t.Fatalf("Size() = %d with %d merges, want %d and none", tok.Size(), len(tok.merges), MinVocabSize)
	}
	if got := tok.Encode("hi"); !slices.Equal(got, []int{1 + 'h', 1 + 'i'}) {
		t.Fatalf("byte tokenizer: Encode(hi) = %v", got)
	}
	if tok, err := Train(nil, 300); err != nil || tok.Size() != MinVocabSize {
		t.Fatalf("Train(nil) = %v, %v; want a byte tokenizer", tok, err)
	}
}

// TestTrainDeterministic checks that training gives the same file byte for
// byte, also from the docs in another order (counts do not depend on it).
func TestTrainDeterministic(t *testing.T) {
	a, err := Train(testCorpus, 400)
	if err != nil {
		t.Fatal(err)
	}
	rev := slices.Clone(testCorpus)
	slices.Reverse(rev)
	for range 2 {
		b, err := Train(rev, 400)
		if err != nil {
			t.Fatal(err)
		}
		ja, _ := a.Marshal()
		jb, _ := b.Marshal()
		if !bytes.Equal(ja, jb) {
			t.Fatal("two trainings on the same text gave different tokenizer.json")
		}
	}
	if a.Size() != 400 {
		t.Fatalf("Size() = %d, want 400", a.Size())
	}
}

// roundTripCases are strings every tokenizer must give back unchanged.
var roundTripCases = []string{
	"",
	"a",
	"The quick brown fox jumps over the lazy dog.",
	"Never seen before: xyzzy plugh QWERTY!",
	"é", "Café crème", "naïve",
	"e\u0301", "a\u0308\u0304 combining marks",
	"中文", "日本語のテキスト", "한국어", "Ελληνικά", "עברית", "العربية",
	"👍", "👍🏽", "👨‍👩‍👧 family", "🇫🇷",
	"   ", "\t\t", "a  b   c    d", " leading", "trailing ",
	"\n", "\n\n\n", "line one\nline two\r\nline three\r",
	"\u00a0\u2028\u3000\u0085",
	"it's we're they'll I'd IT'S",
	"<|endoftext|>",
	"x<|endoftext|>y",
	"\x00\x01\x7f",
	"\uFFFD replacement character",
}

func TestRoundTrip(t *testing.T) {
	tok := trained(t)
	for _, s := range roundTripCases {
		checkRoundTrip(t, tok, s)
	}
	for _, s := range testCorpus {
		checkRoundTrip(t, tok, s)
	}
}

// checkRoundTrip checks Decode(Encode(s)) == s, and that no id is the
// special token or out of range.
func checkRoundTrip(t testing.TB, tok *Tokenizer, s string) {
	t.Helper()
	ids := tok.Encode(s)
	for _, id := range ids {
		if id == tok.EOT() || id < 0 || id >= tok.Size() {
			t.Fatalf("Encode(%q) = %v: id %d is the special token or out of range", s, ids, id)
		}
	}
	got, err := tok.Decode(ids)
	if err != nil {
		t.Fatalf("Decode(Encode(%q)): %v", s, err)
	}
	if got != s {
		t.Fatalf("Decode(Encode(%q)) = %q", s, got)
	}
}

// TestRoundTripInvalidUTF8 checks the documented behaviour on bytes that
// are not UTF-8: they encode byte by byte and decode to the same bytes.
func TestRoundTripInvalidUTF8(t *testing.T) {
	tok := trained(t)
	for _, s := range []string{"\xff", "ab\xfe\xffcd", "\xc3", "caf\xc3", "\xed\xa0\x80 surrogate", "\xf4\x90\x80\x80"} {
		if utf8.ValidString(s) {
			t.Fatalf("case %q is valid UTF-8", s)
		}
		checkRoundTrip(t, tok, s)
		if err := CheckUTF8(s); err == nil {
			t.Errorf("CheckUTF8(%q) = nil", s)
		}
	}
}

func TestEncodeCompresses(t *testing.T) {
	tok := trained(t)
	s := testCorpus[0]
	if n := len(tok.Encode(s)); n >= len(s)/2 {
		t.Fatalf("Encode of a training sentence gives %d ids for %d bytes: merges are not applied", n, len(s))
	}
}

// TestEndOfTextLiteral checks that text cannot produce the special id.
func TestEndOfTextLiteral(t *testing.T) {
	tok := trained(t)
	if tok.EOT() != 0 {
		t.Fatalf("EOT() = %d, want 0", tok.EOT())
	}
	ids := tok.Encode(EndOfText)
	if len(ids) < 2 || slices.Contains(ids, tok.EOT()) {
		t.Fatalf("Encode(%q) = %v, want the ids of its bytes", EndOfText, ids)
	}
	s, err := tok.Decode([]int{tok.EOT(), ids[0], tok.EOT()})
	if err != nil || s != "<" {
		t.Fatalf("Decode with EOT = %q, %v; want %q", s, err, "<")
	}
	if b := tok.TokenBytes(tok.EOT()); len(b) != 0 {
		t.Fatalf("TokenBytes(EOT) = %q, want empty", b)
	}
}

func TestDecodeOutOfRange(t *testing.T) {
	tok := trained(t)
	for _, ids := range [][]int{{-1}, {1, tok.Size()}, {1 << 40}} {
		_, err := tok.Decode(ids)
		if err == nil || !strings.Contains(err.Error(), "out of range") {
			t.Errorf("Decode(%v) error = %v, want out of range", ids, err)
		}
	}
	if s, err := tok.Decode([]int{1 + 'h', 1 + 'i'}); err != nil || s != "hi" {
		t.Fatalf("Decode(h, i) = %q, %v", s, err)
	}
}

func TestTokenBytes(t *testing.T) {
	tok := trained(t)
	for b := range 256 {
		if got := tok.TokenBytes(1 + b); !bytes.Equal(got, []byte{byte(b)}) {
			t.Fatalf("TokenBytes(%d) = %q, want byte 0x%02x", 1+b, got, b)
		}
	}
	last := tok.Size() - 1
	b := tok.TokenBytes(last)
	if len(b) < 2 {
		t.Fatalf("TokenBytes(%d) = %q, want a merged token", last, b)
	}
	b[0] ^= 0xff // the result is a copy
	if bytes.Equal(tok.TokenBytes(last), b) {
		t.Fatal("TokenBytes returned the tokenizer's own slice")
	}
	if tok.TokenBytes(-1) != nil || tok.TokenBytes(tok.Size()) != nil {
		t.Fatal("TokenBytes out of range is not empty")
	}
	// Streaming: concatenated token bytes are the text.
	s := "Café 👍 中文"
	var buf []byte
	for _, id := range tok.Encode(s) {
		buf = append(buf, tok.TokenBytes(id)...)
	}
	if string(buf) != s {
		t.Fatalf("TokenBytes concatenated = %q, want %q", buf, s)
	}
}

func TestCheckUTF8(t *testing.T) {
	if err := CheckUTF8("ok é 中 👍"); err != nil {
		t.Fatal(err)
	}
	err := CheckUTF8("abc\xffdef")
	if err == nil || !strings.Contains(err.Error(), "byte offset 3") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("CheckUTF8 error = %v, want one line naming byte offset 3", err)
	}
	if err := CheckUTF8("é\xe4\xb8"); err == nil || !strings.Contains(err.Error(), "byte offset 2") {
		t.Fatalf("CheckUTF8 of a truncated character: %v, want byte offset 2", err)
	}
}

// TestMergeRankOrder checks that Encode applies merges by rank, not in the
// order pairs appear, and leftmost first among equal ranks, as Hugging
// Face's BPE does.
func TestMergeRankOrder(t *testing.T) {
	build := func(merges ...[2]string) *Tokenizer {
		tokens := make([][]byte, MinVocabSize)
		ids := map[string]int32{}
		for b := range 256 {
			tokens[1+b] = []byte{byte(b)}
			ids[string(rune(b))] = int32(1 + b)
		}
		var ms []merge
		for _, m := range merges {
			joined := m[0] + m[1]
			id, ok := ids[joined]
			if !ok {
				id = int32(len(tokens))
				tokens = append(tokens, []byte(joined))
				ids[joined] = id
			}
			ms = append(ms, merge{ids[m[0]], ids[m[1]], id})
		}
		return newTokenizer(tokens, 0, ms, false)
	}
	pieces := func(tok *Tokenizer, s string) []string {
		var out []string
		for _, id := range tok.Encode(s) {
			out = append(out, string(tok.TokenBytes(id)))
		}
		return out
	}
	for _, c := range []struct {
		merges [][2]string
		in     string
		want   []string
	}{
		{[][2]string{{"b", "c"}, {"a", "b"}}, "abc", []string{"a", "bc"}},
		{[][2]string{{"a", "b"}, {"b", "c"}}, "abc", []string{"ab", "c"}},
		{[][2]string{{"a", "a"}}, "aaa", []string{"aa", "a"}},
		{[][2]string{{"a", "a"}, {"aa", "aa"}}, "aaaaa", []string{"aaaa", "a"}},
		{[][2]string{{"b", "c"}, {"a", "b"}, {"a", "bc"}}, "abcab", []string{"abc", "ab"}},
	} {
		tok := build(c.merges...)
		if got := pieces(tok, c.in); !slices.Equal(got, c.want) {
			t.Errorf("merges %q: Encode(%q) = %q, want %q", c.merges, c.in, got, c.want)
		}
	}
}

// TestIgnoreMerges checks the BPE option that takes a pre-token found in
// the vocabulary whole.
func TestIgnoreMerges(t *testing.T) {
	tokens := make([][]byte, MinVocabSize, MinVocabSize+2)
	for b := range 256 {
		tokens[1+b] = []byte{byte(b)}
	}
	tokens = append(tokens, []byte("ab"), []byte("abc"))
	// "abc" is in the vocabulary but no merge makes it.
	tok := newTokenizer(tokens, 0, []merge{{1 + 'a', 1 + 'b', MinVocabSize}}, true)
	if got := tok.Encode("abc abcd"); !slices.Equal(got, []int{MinVocabSize + 1, 1 + ' ', MinVocabSize, 1 + 'c', 1 + 'd'}) {
		t.Fatalf("ignore_merges: Encode = %v", got)
	}
}

func TestConcurrentEncode(t *testing.T) {
	tok := trained(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for _, s := range testCorpus {
				checkRoundTrip(t, tok, s)
			}
		})
	}
	wg.Wait()
}

// FuzzRoundTrip checks Decode(Encode(s)) == s for any bytes; plain go test
// runs the seeds only.
func FuzzRoundTrip(f *testing.F) {
	for _, s := range roundTripCases {
		f.Add(s)
	}
	for _, c := range preTokenCases {
		f.Add(c.in)
	}
	f.Add("\xff\xfe invalid")
	tok := trained(f)
	f.Fuzz(func(t *testing.T, s string) {
		checkRoundTrip(t, tok, s)
		var joined strings.Builder
		for p := range preTokens(s) {
			if p == "" {
				t.Fatalf("empty pre-token in %q", s)
			}
			joined.WriteString(p)
		}
		if joined.String() != s {
			t.Fatalf("pre-tokens of %q do not concatenate to it", s)
		}
	})
}

// TestLongPreToken encodes a pre-token far over the cache's length limit,
// which round-trips and stays out of the cache.
func TestLongPreToken(t *testing.T) {
	tok, err := Train(testCorpus, 400)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("thequickbrownfox", 1000)
	checkRoundTrip(t, tok, long)
	checkRoundTrip(t, tok, " "+long+" ok")
	tok.mu.Lock()
	defer tok.mu.Unlock()
	for k := range tok.cache {
		if len(k) > cacheMaxLen {
			t.Fatalf("a pre-token of %d bytes was cached", len(k))
		}
	}
	if len(tok.cache) == 0 {
		t.Fatal("nothing was cached")
	}
}
