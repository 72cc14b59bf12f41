package imagefolder

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/latentlm/latentlm/internal/boundedio"
	"github.com/latentlm/latentlm/internal/jsonerr"
)

// listing is what a walk of a folder found.
type listing struct {
	dir     string
	images  []string          // relative, slash-separated, lexical order
	texts   map[string]string // caption stem (relative path without extension) → .txt file
	jsonl   bool              // captions.jsonl is present
	skipped []Skip            // entries reported by the walk (links to folders, unreadable folders)
	other   int               // files ignored for not being images
	digest  string            // of every entry that shapes the set, see stamp
}

// scan walks dir. Hidden files and folders (a name starting with a dot)
// are left out, and so are symbolic links to folders (reported, not
// followed: filepath.WalkDir never follows them, so a loop cannot trap the
// walk); symbolic links to files are read.
func scan(dir string) (*listing, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("imagefolder: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("imagefolder: %s: not a folder (%s)", dir, boundedio.FileKind(st.Mode()))
	}
	l := &listing{dir: dir, texts: map[string]string{}}
	h := sha256.New()
	stamp := func(kind, rel string, st fs.FileInfo) {
		fmt.Fprintf(h, "%s\x00%s\x00%d\x00%d\x00%o\n", kind, rel, st.Size(), st.ModTime().UnixNano(), st.Mode())
	}
	var fatal error // an error of the walk's own, already worded
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if p == dir {
			return err
		}
		rel, rerr := filepath.Rel(dir, p)
		if rerr != nil {
			return rerr
		}
		rel = filepath.ToSlash(rel)
		if err != nil {
			// An unreadable folder below dir: say so and go on.
			l.skipped = append(l.skipped, Skip{File: rel, Reason: "unreadable: " + unwrapPath(err).Error()})
			fmt.Fprintf(h, "unreadable\x00%s\n", rel)
			if d != nil && d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		wanted := isImageName(rel) || strings.EqualFold(path.Ext(rel), ".txt") || rel == CaptionsFile
		var info fs.FileInfo
		if d.Type()&fs.ModeSymlink != 0 {
			info, err = os.Stat(p) // the target
			switch {
			case err == nil && info.IsDir():
				l.skipped = append(l.skipped, Skip{File: rel, Reason: "symbolic link to a folder: not followed"})
				fmt.Fprintf(h, "dirlink\x00%s\n", rel)
				return nil
			case err != nil && isImageName(rel):
				// A broken link, or a link loop: reported when it claims to
				// be an image, silently left out otherwise.
				l.images = append(l.images, rel)
				fmt.Fprintf(h, "link\x00%s\x00%s\n", rel, unwrapPath(err))
				return nil
			case err != nil:
				l.other++
				return nil
			}
		}
		if !wanted {
			l.other++
			return nil
		}
		if info == nil {
			if info, err = d.Info(); err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil // removed since the folder was listed
				}
				fatal = fmt.Errorf("imagefolder: %s: %w", p, unwrapPath(err))
				return filepath.SkipAll
			}
		}
		switch {
		case isImageName(rel):
			if len(l.images) == MaxImages {
				fatal = fmt.Errorf("imagefolder: %s: more than %d image files", dir, MaxImages)
				return filepath.SkipAll
			}
			l.images = append(l.images, rel)
			stamp("image", rel, info)
		case rel == CaptionsFile:
			l.jsonl = true
			stamp("captions", rel, info)
		default: // .txt
			stem := strings.TrimSuffix(rel, path.Ext(rel))
			if prev, ok := l.texts[stem]; ok {
				fatal = fmt.Errorf("imagefolder: %s: two caption files for %s: %s and %s", dir, quoteName(stem), quoteName(prev), quoteName(rel))
				return filepath.SkipAll
			}
			l.texts[stem] = rel
			stamp("text", rel, info)
		}
		return nil
	})
	if fatal != nil {
		return nil, fatal
	}
	if err != nil {
		return nil, fmt.Errorf("imagefolder: %s: %w", dir, unwrapPath(err))
	}
	l.digest = hex.EncodeToString(h.Sum(nil))
	return l, nil
}

// read turns a listing into a Set: captions, then the images.
func (l *listing) read(o Options) (*Set, error) {
	if len(l.images) == 0 {
		return nil, fmt.Errorf("imagefolder: %s: no PNG or JPEG files (%d other file(s) ignored, %d skipped)", l.dir, l.other+len(l.texts)+btoi(l.jsonl), len(l.skipped))
	}
	captions, err := l.captions()
	if err != nil {
		return nil, err
	}
	set, err := readImages(l.dir, l.images, captions, o)
	if err != nil {
		return nil, err
	}
	set.Skipped = append(set.Skipped, l.skipped...)
	slices.SortStableFunc(set.Skipped, func(a, b Skip) int { return strings.Compare(a.File, b.File) })
	if len(set.Files) == 0 {
		return nil, noUsable(l.dir, set.Skipped, l.other)
	}
	return set, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// captions returns one caption per image of the listing.
func (l *listing) captions() ([]string, error) {
	index := make(map[string]int, len(l.images))
	for i, f := range l.images {
		index[f] = i
	}
	caps := make([]string, len(l.images))
	fromJSONL := map[int]int{} // image → line
	if l.jsonl {
		p := filepath.Join(l.dir, CaptionsFile)
		entries, err := readCaptions(p)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			i, ok := index[e.file]
			if !ok {
				return nil, fmt.Errorf("imagefolder: %s:%d: no image %q in the folder", p, e.line, e.file)
			}
			if prev, dup := fromJSONL[i]; dup {
				return nil, fmt.Errorf("imagefolder: %s:%d: a second caption for %q (the first is on line %d)", p, e.line, e.file, prev)
			}
			fromJSONL[i] = e.line
			caps[i] = e.text
		}
	}
	for i, f := range l.images {
		txt, ok := l.texts[strings.TrimSuffix(f, path.Ext(f))]
		if !ok {
			continue
		}
		if line, ok := fromJSONL[i]; ok {
			return nil, fmt.Errorf("imagefolder: %s: captioned twice, by %s and by line %d of %s: keep one", filepath.Join(l.dir, filepath.FromSlash(f)), quoteName(txt), line, CaptionsFile)
		}
		p := filepath.Join(l.dir, filepath.FromSlash(txt))
		b, err := boundedio.ReadFile(p, MaxCaptionBytes)
		if err != nil {
			return nil, fmt.Errorf("imagefolder: caption %s: %w", p, err)
		}
		if !utf8.Valid(b) {
			return nil, fmt.Errorf("imagefolder: caption %s: not UTF-8 text", p)
		}
		caps[i] = strings.TrimSpace(string(b))
	}
	return caps, nil
}

// captionLine is one line of captions.jsonl.
type captionLine struct {
	line       int
	file, text string
}

// readCaptions parses captions.jsonl strictly: every line that is not
// blank is one JSON object with exactly the string fields "file" (a
// relative path inside the folder) and "text"; any error names the line.
func readCaptions(p string) ([]captionLine, error) {
	f, r, _, err := boundedio.Open(p, MaxCaptionsFileSize)
	if err != nil {
		return nil, fmt.Errorf("imagefolder: %s: %w", p, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(r)
	maxLine := 2*MaxCaptionBytes + 64<<10
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	var out []captionLine
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		c, err := parseCaptionLine(line)
		if err != nil {
			return nil, fmt.Errorf("imagefolder: %s:%d: %v", p, n, err)
		}
		c.line = n
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("imagefolder: %s:%d: line longer than %d bytes", p, n+1, maxLine)
		}
		return nil, fmt.Errorf("imagefolder: %s: %w", p, unwrapPath(err))
	}
	return out, nil
}

func parseCaptionLine(line []byte) (captionLine, error) {
	if !utf8.Valid(line) {
		return captionLine{}, errors.New("not UTF-8 text")
	}
	var v struct {
		File *string `json:"file"`
		Text *string `json:"text"`
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return captionLine{}, fmt.Errorf(`want one JSON object {"file": …, "text": …}: %v`, jsonerr.Describe(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return captionLine{}, errors.New("more after the JSON object on the line")
	}
	switch {
	case v.File == nil:
		return captionLine{}, errors.New(`no "file"`)
	case v.Text == nil:
		return captionLine{}, errors.New(`no "text"`)
	case len(*v.Text) > MaxCaptionBytes:
		return captionLine{}, fmt.Errorf("caption of %d bytes, over the %d-byte limit", len(*v.Text), MaxCaptionBytes)
	}
	file := *v.File
	if file == "" || strings.Contains(file, `\`) || path.IsAbs(file) {
		return captionLine{}, fmt.Errorf("file %q: want a path relative to the folder, with slashes", file)
	}
	clean := path.Clean(file)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return captionLine{}, fmt.Errorf("file %q is outside the folder", file)
	}
	return captionLine{file: clean, text: strings.TrimSpace(*v.Text)}, nil
}

// unwrapPath drops the path from a *PathError, which the caller names.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}
