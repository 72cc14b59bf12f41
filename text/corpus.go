package text

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/latentlm/latentlm/internal/boundedio"
)

// FortunesDir is where Debian's fortunes package (installed by make setup)
// puts its collections.
const FortunesDir = "/usr/share/games/fortunes"

// Limits on the corpus files read here: a fortune collection is at most a
// few hundred kilobytes, and a user's corpus is held in memory whole.
const (
	maxFortuneFile = 64 << 20
	MaxCorpusFile  = 1 << 30
)

// Fortunes reads the fortune collections in dir: every NAME.u8 file (the
// UTF-8 version of each collection; in Debian's package it is a link to
// NAME), in name order. A fortune is the text between lines holding only
// "%", without its trailing newlines; blank ones are dropped.
//
// The split into train and validation is by fortune and fixed: a fortune
// whose text hashes (64-bit FNV-1a) to 0 modulo 20 is in valid (about 5%),
// every other in train, each in file order. Hashing the text rather than
// counting positions keeps a fortune on the same side when collections are
// added, reordered or edited elsewhere, and puts repeated fortunes on the
// same side, so validation never scores text seen in training.
func Fortunes(dir string) (train, valid []string, err error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.u8"))
	if err != nil {
		return nil, nil, fmt.Errorf("fortunes: %w", err)
	}
	if len(paths) == 0 {
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return nil, nil, fmt.Errorf("fortunes: no folder %s: run make setup, which installs Debian's fortunes package", dir)
		}
		return nil, nil, fmt.Errorf("fortunes: no *.u8 files in %s: run make setup, which installs Debian's fortunes package", dir)
	}
	// Glob returns names in lexical order.
	for _, path := range paths {
		docs, err := readUTF8(path, maxFortuneFile)
		if err != nil {
			return nil, nil, fmt.Errorf("fortunes: %w", err)
		}
		for _, f := range splitFortunes(docs) {
			if fortuneHash(f)%20 == 0 {
				valid = append(valid, f)
			} else {
				train = append(train, f)
			}
		}
	}
	if len(train) == 0 || len(valid) == 0 {
		return nil, nil, fmt.Errorf("fortunes: %s holds %d fortunes for training and %d for validation; need some of each", dir, len(train), len(valid))
	}
	return train, valid, nil
}

func fortuneHash(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// splitFortunes splits the content of a fortune file at lines holding only
// "%".
func splitFortunes(s string) []string {
	var out []string
	var cur strings.Builder
	flush := func() {
		f := strings.TrimRight(cur.String(), "\n")
		if strings.TrimSpace(f) != "" {
			out = append(out, f)
		}
		cur.Reset()
	}
	for line := range strings.Lines(s) {
		if strings.TrimSuffix(line, "\n") == "%" {
			flush()
			continue
		}
		cur.WriteString(line)
	}
	flush()
	return out
}

// readUTF8 reads a regular file of at most limit bytes that must be valid
// UTF-8; errors name the path and, for bad UTF-8, the byte offset.
func readUTF8(path string, limit int64) (string, error) {
	b, err := boundedio.ReadFile(path, limit)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	s := string(b)
	if err := CheckUTF8(s); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Digest returns the SHA-256, in hex, of docs joined with NUL bytes: a short
// record of exactly which text a run trained or validated on.
func Digest(docs []string) string {
	h := sha256.New()
	for i, d := range docs {
		if i > 0 {
			h.Write([]byte{0})
		}
		h.Write([]byte(d))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ReadFiles reads a user's own corpus: each path must be a regular file of
// at most MaxCorpusFile bytes holding valid UTF-8, and is split into
// documents at blank lines (lines of only spaces, tabs or a carriage
// return), each document keeping its own line breaks but not its last one.
// Errors name the file (and, for bad UTF-8, the byte offset); finding no
// document in any of the files is an error too.
func ReadFiles(paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, errors.New("reading corpus: no files given")
	}
	var docs []string
	for _, path := range paths {
		s, err := readUTF8(path, MaxCorpusFile)
		if err != nil {
			return nil, fmt.Errorf("reading corpus: %w", err)
		}
		docs = append(docs, splitDocuments(s)...)
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("reading corpus: no text in %s (only blank lines)", strings.Join(paths, ", "))
	}
	return docs, nil
}

// splitDocuments splits s at blank lines, dropping them.
func splitDocuments(s string) []string {
	var out []string
	start, end := -1, 0 // the current document is s[start:end]
	pos := 0
	for line := range strings.Lines(s) {
		if strings.Trim(line, " \t\r\n") == "" {
			if start >= 0 {
				out = append(out, strings.TrimRight(s[start:end], "\r\n"))
				start = -1
			}
		} else {
			if start < 0 {
				start = pos
			}
			end = pos + len(line)
		}
		pos += len(line)
	}
	if start >= 0 {
		out = append(out, strings.TrimRight(s[start:end], "\r\n"))
	}
	return out
}

// BitsPerByte converts a loss of nats (summed over a text) to bits per byte
// of that text's UTF-8: nats / ln 2 / bytes. Per byte rather than per token,
// so that models with different tokenizers (or none) compare fairly: a
// tokenizer with longer tokens has a higher loss per token but not per
// byte. It is NaN unless bytes is positive.
func BitsPerByte(nats float64, bytes int) float64 {
	if bytes <= 0 {
		return math.NaN()
	}
	return nats / math.Ln2 / float64(bytes)
}
