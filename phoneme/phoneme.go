// Package phoneme spells English words in phonemes: the 39 phonemes of the
// CMU Pronouncing Dictionary (ARPAbet, without stress), looked up in the
// dictionary that Debian's pocketsphinx-en-us installs (the one the speech
// judge listens with), and for a word the dictionary lacks, in festival's
// letter-to-sound rules (Debian's festival, installed with the voices).
//
// Why phonemes: a text-to-speech model that reads characters must learn
// English spelling-to-sound from its training texts. The spoken numbers
// use 67 distinct words, which a small model learns; the sentences of the
// speech data use thousands, 15.5% of the test sentences' words never occur
// in a training sentence, and "though", "through" and "tough" share their
// letters but not their sounds. Phonemes move that knowledge into the
// dictionary, as VALL-E (Wang et al., 2023, §3) and most TTS systems do:
// each phoneme sounds about the same in every word, so what the model
// learns of one word carries over to every other.
//
// Each phoneme is written as one rune (Runes), so that a phoneme spelling
// is a string and a model's units are an alphabet of runes, as its
// characters were.
package phoneme

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/latentlm/latentlm/internal/boundedio"
)

// DictionaryPath is where Debian's pocketsphinx-en-us installs its CMU
// pronouncing dictionary.
const DictionaryPath = "/usr/share/pocketsphinx/model/en-us/cmudict-en-us.dict"

// Phonemes are the 39 ARPAbet phonemes of the CMU dictionary, in the order
// of Runes.
var Phonemes = []string{
	"AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY",
	"F", "G", "HH", "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY",
	"P", "R", "S", "SH", "T", "TH", "UH", "UW", "V", "W", "Y", "Z", "ZH",
}

// Runes writes each of Phonemes as one rune: its IPA letter where it has
// one (ʌ for AH, ŋ for NG, ʃ for SH), the IPA ligatures ʧ and ʤ for CH and
// JH, the Latin ligatures ꜷ and ꜽ for the diphthongs AW and AY, and ɞ for
// OY, which has neither. Twenty of them (b, d, e, f, …) are also Latin
// letters: a phoneme spelling is read with Runes, never as text.
const Runes = "ɑæʌɔꜷꜽbʧdðɛɝefghɪiʤklmnŋoɞpɹsʃtθʊuvwjzʒ"

var runeOf = func() map[string]rune {
	rs := []rune(Runes)
	if len(rs) != len(Phonemes) {
		panic(fmt.Sprintf("phoneme: %d runes for %d phonemes", len(rs), len(Phonemes)))
	}
	m := make(map[string]rune, len(rs))
	for i, p := range Phonemes {
		m[p] = rs[i]
	}
	return m
}()

// Rune is the rune of an ARPAbet phoneme (any case, stress digits allowed:
// "AH0", "ah").
func Rune(p string) (rune, bool) {
	r, ok := runeOf[strings.ToUpper(strings.TrimRight(p, "012"))]
	return r, ok
}

// maxDictFile bounds the dictionary read (Debian's is 3.2 MB).
const maxDictFile = 64 << 20

// Dictionary is a CMU-style pronouncing dictionary: each word's first
// pronunciation, as a string of Runes.
type Dictionary struct {
	Path  string
	words map[string]string
}

// ReadDictionary reads a CMU-style dictionary ("word PHONES…" lines,
// variants written "word(2)", ";;" comments). A line whose phonemes are
// not ARPAbet is an error naming the file and the line.
func ReadDictionary(path string) (*Dictionary, error) {
	b, err := boundedio.ReadFile(path, maxDictFile)
	if err != nil {
		return nil, fmt.Errorf("phoneme: reading dictionary %s: %w", path, err)
	}
	d := &Dictionary{Path: path, words: map[string]string{}}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], ";;") {
			continue
		}
		if len(f) < 2 {
			return nil, fmt.Errorf("phoneme: dictionary %s line %d: the word %q has no phonemes", path, line, f[0])
		}
		w := strings.ToLower(f[0])
		if i := strings.IndexByte(w, '('); i > 0 {
			w = w[:i]
		}
		if _, seen := d.words[w]; seen {
			continue // a variant: the first pronunciation is kept
		}
		var s strings.Builder
		for _, p := range f[1:] {
			r, ok := Rune(p)
			if !ok {
				return nil, fmt.Errorf("phoneme: dictionary %s line %d: %q is not an ARPAbet phoneme", path, line, p)
			}
			s.WriteRune(r)
		}
		d.words[w] = s.String()
	}
	if len(d.words) == 0 {
		return nil, fmt.Errorf("phoneme: dictionary %s holds no words", path)
	}
	return d, nil
}

// Len is the number of words.
func (d *Dictionary) Len() int { return len(d.words) }

// Has reports whether the dictionary spells the word (lower case).
func (d *Dictionary) Has(word string) bool { _, ok := d.words[word]; return ok }

// Lookup is the word's phonemes, as Runes.
func (d *Dictionary) Lookup(word string) (string, bool) {
	s, ok := d.words[word]
	return s, ok
}

// Words is the set of the dictionary's words.
func (d *Dictionary) Words() map[string]bool {
	m := make(map[string]bool, len(d.words))
	for w := range d.words {
		m[w] = true
	}
	return m
}

// Guesser spells words a dictionary lacks.
type Guesser interface {
	// Guess returns the phonemes (as Runes) of each word, lower-case
	// letters with inner apostrophes and hyphens.
	Guess(words []string) (map[string]string, error)
}

// Festival guesses with festival's lexicon and letter-to-sound rules
// (festival's lex.lookup), one festival process for a call's words.
type Festival struct{ Program string }

// Guess runs festival once for all the words.
func (f Festival) Guess(words []string) (map[string]string, error) {
	prog := f.Program
	if prog == "" {
		prog = "festival"
	}
	path, err := exec.LookPath(prog)
	if err != nil {
		return nil, errors.New("phoneme: no festival to spell words the dictionary lacks: run make setup, which installs Debian's festival")
	}
	var script strings.Builder
	for _, w := range words {
		if !plainWord(w) {
			return nil, fmt.Errorf("phoneme: %q is not a word of letters", w)
		}
		fmt.Fprintf(&script, "(print (lex.lookup %q nil))\n", w)
	}
	cmd := exec.Command(path, "--pipe")
	cmd.Stdin = strings.NewReader(script.String())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("phoneme: festival: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	got, err := parseFestival(string(out))
	if err != nil {
		return nil, err
	}
	for _, w := range words {
		if _, ok := got[w]; !ok {
			return nil, fmt.Errorf("phoneme: festival gave no pronunciation of %q", w)
		}
	}
	return got, nil
}

// festivalPhones maps festival's phones that are not ARPAbet's.
var festivalPhones = map[string]string{"ax": "AH", "axr": "ER"}

// parseFestival reads lex.lookup's printed entries, one a line:
//
//	("hello" nil (((hh ax) 0) ((l ow) 1)))
func parseFestival(out string) (map[string]string, error) {
	got := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "(\"") {
			continue
		}
		end := strings.Index(line[2:], "\"")
		if end < 0 {
			return nil, fmt.Errorf("phoneme: festival printed %q", line)
		}
		word := line[2 : 2+end]
		rest := strings.NewReplacer("(", " ", ")", " ").Replace(line[3+end:])
		var s strings.Builder
		for _, tok := range strings.Fields(rest) {
			if tok == "nil" || strings.Trim(tok, "0123456789") == "" {
				continue // the part of speech, or a syllable's stress
			}
			if m, ok := festivalPhones[tok]; ok {
				tok = m
			}
			r, ok := Rune(tok)
			if !ok {
				return nil, fmt.Errorf("phoneme: festival spelt %q with %q, which is not an ARPAbet phoneme", word, tok)
			}
			s.WriteRune(r)
		}
		if s.Len() == 0 {
			return nil, fmt.Errorf("phoneme: festival gave %q no phonemes", word)
		}
		got[word] = s.String()
	}
	return got, nil
}

// plainWord: lower-case letters, with apostrophes and hyphens.
func plainWord(w string) bool {
	if w == "" {
		return false
	}
	for _, c := range w {
		if !('a' <= c && c <= 'z' || c == '\'' || c == '-') {
			return false
		}
	}
	return true
}

// Speller spells words in phonemes: the dictionary first, then the
// guesser, whose answers it remembers.
type Speller struct {
	Dict  *Dictionary
	Guess Guesser // nil: words the dictionary lacks are an error

	mu      sync.Mutex
	guessed map[string]string
}

// WordError is a word the speller cannot spell.
type WordError struct{ Word, Problem string }

func (e *WordError) Error() string { return fmt.Sprintf("the word %q %s", e.Word, e.Problem) }

// Words spells each word (lower case: letters, apostrophes, hyphens). A
// hyphenated word the dictionary lacks is spelt part by part
// ("forty-seven" if it lacked it). Whatever the dictionary lacks goes to
// the guesser, in one call.
func (s *Speller) Words(words []string) ([]string, error) {
	out := make([]string, len(words))
	parts := make([][]string, len(words)) // a word not yet spelt, as the pieces to spell
	var missing []string
	for i, w := range words {
		if !plainWord(w) {
			return nil, &WordError{w, "is not a word of letters, apostrophes and hyphens"}
		}
		if spelt, ok := s.known(w); ok {
			out[i] = spelt
			continue
		}
		parts[i] = []string{w}
		if strings.Contains(w, "-") {
			parts[i] = strings.FieldsFunc(w, func(r rune) bool { return r == '-' })
			if len(parts[i]) == 0 {
				return nil, &WordError{w, "is not a word of letters, apostrophes and hyphens"}
			}
		}
		for _, p := range parts[i] {
			if _, ok := s.known(p); !ok && !slices.Contains(missing, p) {
				missing = append(missing, p)
			}
		}
	}
	if len(missing) > 0 {
		if s.Guess == nil {
			return nil, &WordError{missing[0], fmt.Sprintf("is not in the pronouncing dictionary %s", s.Dict.Path)}
		}
		got, err := s.Guess.Guess(missing)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		if s.guessed == nil {
			s.guessed = map[string]string{}
		}
		for _, w := range missing {
			if got[w] != "" { // a word left unanswered stays unknown: an error below
				s.guessed[w] = got[w]
			}
		}
		s.mu.Unlock()
	}
	for i := range words {
		if parts[i] == nil {
			continue // spelt whole above
		}
		var b strings.Builder
		for _, p := range parts[i] {
			spelt, ok := s.known(p)
			if !ok {
				return nil, &WordError{p, "got no phonemes from the guesser"}
			}
			b.WriteString(spelt)
		}
		out[i] = b.String()
	}
	return out, nil
}

// known is the word's phonemes from the dictionary (also with its outer
// apostrophes taken off: "dogs'") or from an earlier guess.
func (s *Speller) known(w string) (string, bool) {
	if p, ok := s.Dict.Lookup(w); ok {
		return p, true
	}
	if t := strings.Trim(w, "'"); t != w && t != "" {
		if p, ok := s.Dict.Lookup(t); ok {
			return p, true
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.guessed[w]
	return p, ok
}

var (
	defaultOnce    sync.Once
	defaultSpeller *Speller
	defaultErr     error
)

// Default is the speller of DictionaryPath with festival's guesses, read
// once for the process.
func Default() (*Speller, error) {
	defaultOnce.Do(func() {
		d, err := ReadDictionary(DictionaryPath)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				err = fmt.Errorf("phoneme: no pronouncing dictionary %s: run make setup, which installs Debian's pocketsphinx-en-us", filepath.Clean(DictionaryPath))
			}
			defaultErr = err
			return
		}
		defaultSpeller = &Speller{Dict: d, Guess: Festival{}}
	})
	return defaultSpeller, defaultErr
}

// Punctuation is the marks Text keeps, where they end a word.
const Punctuation = ".,!?;:"

// Text spells normalised text (lower case, words separated by single
// spaces) in phonemes: each word becomes its phonemes, and the spaces and
// the punctuation that ends a word stay as they are, since both tell a
// speaker where to pause. "hello, world." is "hʌlo, wɝld.".
func (s *Speller) Text(text string) (string, error) {
	fields := strings.Split(text, " ")
	words := make([]string, 0, len(fields))
	tails := make([]string, 0, len(fields))
	for _, f := range fields {
		w := strings.TrimRight(f, Punctuation)
		if w == "" {
			return "", &WordError{f, "is punctuation without a word"}
		}
		words = append(words, w)
		tails = append(tails, f[len(w):])
	}
	spelt, err := s.Words(words)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for i, p := range spelt {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(p)
		b.WriteString(tails[i])
	}
	return b.String(), nil
}
