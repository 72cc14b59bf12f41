package text

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestFortunesInstalled pins the corpus of Debian bookworm's fortunes
// package (1:1.99.1-7.3): a change in the package, or in how it is split,
// shows here first.
func TestFortunesInstalled(t *testing.T) {
	if _, err := os.Stat(filepath.Join(FortunesDir, "fortunes.u8")); err != nil {
		t.Skipf("Debian's fortunes package is not installed (make setup installs it): %v", err)
	}
	train, valid, err := Fortunes(FortunesDir)
	if err != nil {
		t.Fatal(err)
	}
	size := func(docs []string) int {
		n := 0
		for _, d := range docs {
			n += len(d)
		}
		return n
	}
	for _, c := range []struct {
		name         string
		docs         []string
		count, bytes int
		digest       string
	}{
		{"train", train, 14479, 2406941, "a38cc34d8c604334bf07262a2ce592b3718217f2c6668e218c6424fb0639dee6"},
		{"valid", valid, 738, 124071, "ee7318ef87cd8710d82159afa43f5eb0d9f970e5f7f9f4ed5840de7f4eda2c41"},
	} {
		if len(c.docs) != c.count || size(c.docs) != c.bytes || Digest(c.docs) != c.digest {
			t.Errorf("%s: %d fortunes, %d bytes, digest %s; want %d, %d, %s (from Debian's fortunes 1:1.99.1-7.3, with fortunes-min)", c.name, len(c.docs), size(c.docs), Digest(c.docs), c.count, c.bytes, c.digest)
		}
	}
	// The split is by hash, so no fortune is on both sides.
	seen := make(map[string]bool, len(train))
	for _, f := range train {
		seen[f] = true
	}
	for _, f := range valid {
		if seen[f] {
			t.Fatalf("fortune in both train and valid: %q", f)
		}
	}
}

func TestSplitFortunes(t *testing.T) {
	in := "First fortune.\n%\nSecond,\n  on two lines.\n\n%\n%\n   \n%\n100% sure\n%\nlast, no newline"
	want := []string{"First fortune.", "Second,\n  on two lines.", "100% sure", "last, no newline"}
	if got := splitFortunes(in); !slices.Equal(got, want) {
		t.Fatalf("splitFortunes = %q, want %q", got, want)
	}
}

func TestFortunesFolder(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var many []string
	for i := range 200 {
		many = append(many, fmt.Sprintf("Fortune number %d.", i))
	}
	write("b.u8", strings.Join(many[100:], "\n%\n")+"\n%\n")
	write("a.u8", strings.Join(many[:100], "\n%\n")+"\n%\n")
	write("a", "not read: only .u8 files are")
	train, valid, err := Fortunes(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(train)+len(valid) != 200 || len(valid) == 0 {
		t.Fatalf("%d train and %d valid fortunes, want 200 in all, some valid", len(train), len(valid))
	}
	// File order, by file name, on each side.
	var all []string
	for _, f := range many {
		if fortuneHash(f)%20 == 0 {
			continue
		}
		all = append(all, f)
	}
	if !slices.Equal(train, all) {
		t.Fatalf("train fortunes are not in file order")
	}

	write("c.u8", "ok\n%\nbad \xff byte\n")
	if _, _, err := Fortunes(dir); err == nil || !strings.Contains(err.Error(), "c.u8") || !strings.Contains(err.Error(), "byte offset 9") {
		t.Fatalf("invalid UTF-8: error %v, want the file and the offset", err)
	}

	for _, d := range []string{filepath.Join(dir, "missing"), t.TempDir()} {
		_, _, err := Fortunes(d)
		if err == nil || !strings.Contains(err.Error(), d) || !strings.Contains(err.Error(), "make setup") {
			t.Errorf("Fortunes(%s) error %v, want the folder and make setup", d, err)
		}
	}
}

func TestDigest(t *testing.T) {
	// sha256 of "a\x00b" and of "".
	if got := Digest([]string{"a", "b"}); got != "59b271ae1bbcb1d31d41929817f4b16fb439eb4f31520b5ad1d5ce98920a7138" {
		t.Errorf("Digest(a, b) = %s", got)
	}
	if got := Digest(nil); got != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("Digest(nil) = %s", got)
	}
	if Digest([]string{"ab"}) == Digest([]string{"a", "b"}) {
		t.Error("Digest does not separate documents")
	}
}

func TestReadFiles(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.txt")
	b := filepath.Join(dir, "b.txt")
	write := func(path, content string) {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(a, "\n\nFirst doc,\nline two.\n\n  \t\nSecond doc.\r\n\r\nThird\r\ndoc.\r\n")
	write(b, "  indented stays\n\n\n")
	docs, err := ReadFiles([]string{a, b})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"First doc,\nline two.", "Second doc.", "Third\r\ndoc.", "  indented stays"}
	if !slices.Equal(docs, want) {
		t.Fatalf("ReadFiles = %q, want %q", docs, want)
	}

	bad := filepath.Join(dir, "bad.txt")
	write(bad, "fine\n\nthen é\xe9 bad")
	blank := filepath.Join(dir, "blank.txt")
	write(blank, "\n \n\t\n")
	for _, c := range []struct {
		paths []string
		want  []string
	}{
		{nil, []string{"no files"}},
		{[]string{a, bad}, []string{bad, "invalid UTF-8 at byte offset 13"}},
		{[]string{filepath.Join(dir, "none.txt")}, []string{"none.txt", "no such file"}},
		{[]string{dir}, []string{dir, "not a regular file"}},
		{[]string{blank}, []string{blank, "no text"}},
	} {
		_, err := ReadFiles(c.paths)
		if err == nil {
			t.Errorf("ReadFiles(%q) accepted", c.paths)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("ReadFiles(%q) error %q, want %q in it", c.paths, err, w)
			}
		}
	}
}

func TestBitsPerByte(t *testing.T) {
	// 8 bits per byte is a uniform guess over 256 byte values.
	if got := BitsPerByte(100*math.Log(256), 100); math.Abs(got-8) > 1e-12 {
		t.Errorf("BitsPerByte = %v, want 8", got)
	}
	if got := BitsPerByte(math.Ln2, 2); got != 0.5 {
		t.Errorf("BitsPerByte(ln 2, 2) = %v, want 0.5", got)
	}
	if !math.IsNaN(BitsPerByte(1, 0)) {
		t.Error("BitsPerByte with no bytes is not NaN")
	}
}
