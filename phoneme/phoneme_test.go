package phoneme

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestRunesAreOnePerPhoneme(t *testing.T) {
	if n := utf8.RuneCountInString(Runes); n != len(Phonemes) || n != 39 {
		t.Fatalf("%d runes for %d phonemes, want 39 each", n, len(Phonemes))
	}
	seen := map[rune]string{}
	for _, p := range Phonemes {
		r, ok := Rune(p)
		if !ok {
			t.Fatalf("no rune for %s", p)
		}
		if q, dup := seen[r]; dup {
			t.Errorf("%s and %s share %q", p, q, r)
		}
		seen[r] = p
		if r == ' ' || strings.ContainsRune(Punctuation, r) || r == '\'' || r == '-' {
			t.Errorf("%s is written %q, a mark of text", p, r)
		}
	}
	if r, ok := Rune("ah0"); !ok || r != 'ʌ' {
		t.Errorf("AH0 is %q, want ʌ (stress dropped, any case)", r)
	}
	if _, ok := Rune("XX"); ok {
		t.Error("XX has a rune")
	}
}

func writeDict(t *testing.T, text string) string {
	p := filepath.Join(t.TempDir(), "test.dict")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadDictionary(t *testing.T) {
	p := writeDict(t, ";; a comment\nhello HH AH L OW\nhello(2) HH EH L OW\nWorld W ER L D\nforty F AO R T IY\nseven S EH V AH N\n\n")
	d, err := ReadDictionary(p)
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != 4 {
		t.Errorf("%d words, want 4", d.Len())
	}
	if got, _ := d.Lookup("hello"); got != "hʌlo" {
		t.Errorf("hello is %q, want the first pronunciation hʌlo", got)
	}
	if got, _ := d.Lookup("world"); got != "wɝld" {
		t.Errorf("world is %q, want wɝld (lower-cased)", got)
	}
	for _, c := range []struct{ text, want string }{
		{"hello X Y\n", `line 1: "X" is not an ARPAbet phoneme`},
		{";;\nhello\n", `line 2: the word "hello" has no phonemes`},
		{";; only comments\n", "holds no words"},
	} {
		bad := writeDict(t, c.text)
		_, err := ReadDictionary(bad)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), bad) {
			t.Errorf("%q: error %v, want one naming the file and %q", c.text, err, c.want)
		}
	}
	if _, err := ReadDictionary(filepath.Join(t.TempDir(), "none")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing file: %v", err)
	}
}

// fixedGuesser answers from a map and counts its calls.
type fixedGuesser struct {
	m     map[string]string
	calls int
}

func (g *fixedGuesser) Guess(words []string) (map[string]string, error) {
	g.calls++
	out := map[string]string{}
	for _, w := range words {
		p, ok := g.m[w]
		if !ok {
			return nil, errors.New("unknown " + w)
		}
		out[w] = p
	}
	return out, nil
}

func TestSpellerText(t *testing.T) {
	d, err := ReadDictionary(writeDict(t, "hello HH AH L OW\nworld W ER L D\nforty F AO R T IY\nseven S EH V AH N\n'em AH M\n"))
	if err != nil {
		t.Fatal(err)
	}
	g := &fixedGuesser{m: map[string]string{"blorp": "blɔɹp"}}
	s := &Speller{Dict: d, Guess: g}
	for _, c := range []struct{ in, want string }{
		{"hello, world.", "hʌlo, wɝld."},
		{"forty-seven!", "fɔɹtisɛvʌn!"}, // a compound spelt part by part
		{"blorp the world?", ""},        // "the" is neither in the dictionary nor the guesser's
		{"hello blorp; hello blorp", "hʌlo blɔɹp; hʌlo blɔɹp"},
		{"'em", "ʌm"},
	} {
		got, err := s.Text(c.in)
		if c.want == "" {
			if err == nil {
				t.Errorf("%q: %q, want an error", c.in, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: %q (%v), want %q", c.in, got, err, c.want)
		}
	}
	calls := g.calls
	if _, err := s.Text("blorp"); err != nil || g.calls != calls {
		t.Errorf("a guessed word asked again (%d calls, want %d): %v", g.calls, calls, err)
	}
	strict := &Speller{Dict: d}
	_, err = strict.Text("hello there")
	var we *WordError
	if !errors.As(err, &we) || we.Word != "there" || !strings.Contains(err.Error(), d.Path) {
		t.Errorf("a word outside the dictionary, no guesser: %v", err)
	}
	for _, bad := range []string{"route 66", "hello , world", "naïve", "hello - world"} {
		if _, err := s.Text(bad); err == nil {
			t.Errorf("%q spelt", bad)
		}
	}
}

func TestParseFestival(t *testing.T) {
	out := "festival> \n(\"hello\" nil (((hh ax) 0) ((l ow) 1)))\n(\"blorptastic\" nil (((b l r p) 0) ((t ae) 1) ((s t ih k) 0)))\n"
	got, err := parseFestival(out)
	if err != nil {
		t.Fatal(err)
	}
	if got["hello"] != "hʌlo" || got["blorptastic"] != "blɹptæstɪk" {
		t.Errorf("parsed %q", got)
	}
	if _, err := parseFestival(`("x" nil (((q zz) 1)))`); err == nil || !strings.Contains(err.Error(), `"q"`) {
		t.Errorf("a phone that is not ARPAbet: %v", err)
	}
}

// TestInstalled: the dictionary and festival that make setup installs
// agree on common words, and festival spells one the dictionary lacks.
func TestInstalled(t *testing.T) {
	s, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if s.Dict.Len() < 100_000 {
		t.Errorf("%d words in %s", s.Dict.Len(), s.Dict.Path)
	}
	for w, want := range map[string]string{"speech": "spiʧ", "though": "ðo", "through": "θɹu", "tough": "tʌf", "one": "wʌn"} {
		if got, _ := s.Dict.Lookup(w); got != want {
			t.Errorf("%s is %q in the dictionary, want %q", w, got, want)
		}
	}
	if s.Dict.Has("blorptastic") {
		t.Fatal("the dictionary knows blorptastic")
	}
	got, err := s.Words([]string{"blorptastic", "cat"})
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != "blɹptæstɪk" || got[1] != "kæt" {
		t.Errorf("festival spelt %q", got)
	}
	fest, err := Festival{}.Guess([]string{"cat", "dog"})
	if err != nil || fest["cat"] != "kæt" || fest["dog"] != "dɔg" {
		t.Errorf("festival: %q, %v", fest, err)
	}
}
