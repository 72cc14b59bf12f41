package imagefolder

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"unicode/utf8"

	"github.com/latentlm/latentlm/internal/atomicfile"
	"github.com/latentlm/latentlm/internal/boundedio"
)

// The cache file is
//
//	magic     16 bytes, cacheMagic
//	version   uint32, little-endian, cacheVersion
//	length    uint32, little-endian: the bytes of the header
//	header    JSON, cacheHeader
//	pixels    N×Size×Size×Channels bytes, the images in order
//	checksum  32 bytes, SHA-256 of everything before it
//
// The header holds what the cache was made from (folder, options, listing
// digest) and the metadata of the set; the pixels are bytes because every
// value of a Set is k/255.
const (
	cacheMagic   = "latentlm-imgset\n"
	cacheVersion = 1
	// maxHeader bounds the JSON header: a million files with long names
	// and captions.
	maxHeader = 1 << 30
)

type cacheHeader struct {
	Dir        string    `json:"dir"`
	Listing    string    `json:"listing"`
	Size       int       `json:"size"`
	Fit        string    `json:"fit"`
	Mode       string    `json:"mode"`
	Background [3]uint16 `json:"background"`
	Channels   int       `json:"channels"`
	Files      []string  `json:"files"`
	Captions   []string  `json:"captions"`
	Skipped    []Skip    `json:"skipped"`
}

// CachePath is the cache file Load keeps for dir in cacheDir: one per
// folder, named after a hash of its absolute path, so that changing the
// options replaces it rather than adding another.
func CachePath(dir, cacheDir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("imagefolder: %s: %w", dir, err)
	}
	sum := sha256.Sum256([]byte(abs))
	name := filepath.Base(abs)
	if name == string(filepath.Separator) || name == "." {
		name = "root"
	}
	return filepath.Join(cacheDir, fmt.Sprintf("%s-%s.imgset", sanitize(name), hex.EncodeToString(sum[:6]))), nil
}

// sanitize keeps a folder's name readable in a file name.
func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) > 40 {
		b = b[:40]
	}
	return string(b)
}

// Load is Read through a cache file in cacheDir (created if need be): when
// the cache was made from the folder as it is now (the same image and
// caption files, sizes and modification times) with the same options and
// its checksum holds, the set comes from it without decoding an image.
// Otherwise the folder is read, the reason said in one line on log, the
// skipped files listed there with a count, and the cache written anew
// (atomically; a cache that cannot be written is a warning on log, not an
// error). log may be nil.
func Load(dir, cacheDir string, o Options, log io.Writer) (*Set, error) {
	if log == nil {
		log = io.Discard
	}
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("imagefolder: %s: %w", dir, err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("imagefolder: %s: %w", dir, err)
	}
	cache, err := CachePath(abs, cacheDir)
	if err != nil {
		return nil, err
	}
	l, err := scan(dir)
	if err != nil {
		return nil, err
	}
	want := header(abs, l.digest, o)
	set, why := readCache(cache, want)
	if why == "" {
		fmt.Fprintf(log, "imagefolder: %s: %d image(s) from the cache %s", dir, len(set.Files), cache)
		if len(set.Skipped) > 0 {
			fmt.Fprintf(log, " (%d file(s) skipped when it was made)", len(set.Skipped))
		}
		fmt.Fprintln(log)
		return set, nil
	}
	fmt.Fprintf(log, "imagefolder: scanning %s: %s\n", dir, why)
	set, err = l.read(o)
	if err != nil {
		return nil, err
	}
	set.WriteSkipped(log)
	if err := writeCache(cache, want, set); err != nil {
		fmt.Fprintf(log, "imagefolder: warning: the cache was not written: %v\n", err)
		return set, nil
	}
	fmt.Fprintf(log, "imagefolder: %s: %d image(s) of %d×%d×%d, cached in %s\n", dir, len(set.Files), set.Size, set.Size, set.Channels, cache)
	return set, nil
}

// header is the part of a cache header that must match.
func header(abs, digest string, o Options) cacheHeader {
	return cacheHeader{Dir: abs, Listing: digest, Size: o.Size, Fit: o.Fit.String(), Mode: o.Mode.String(), Background: o.backgroundKey()}
}

// readCache returns the cached set, or why it cannot be used.
func readCache(path string, want cacheHeader) (*Set, string) {
	f, r, st, err := boundedio.Open(path, 1<<40)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, "no cache yet"
		}
		return nil, fmt.Sprintf("the cache %s cannot be read (%v); making it again", path, err)
	}
	defer f.Close()
	corrupt := func(format string, args ...any) (*Set, string) {
		return nil, fmt.Sprintf("the cache %s is corrupt (%s); making it again", path, fmt.Sprintf(format, args...))
	}
	h := sha256.New()
	br := bufio.NewReaderSize(r, 1<<20)
	pre := make([]byte, len(cacheMagic)+8)
	if _, err := io.ReadFull(br, pre); err != nil {
		return corrupt("truncated header")
	}
	h.Write(pre)
	if string(pre[:len(cacheMagic)]) != cacheMagic {
		return corrupt("not an image set cache")
	}
	if v := binary.LittleEndian.Uint32(pre[len(cacheMagic):]); v != cacheVersion {
		return nil, fmt.Sprintf("the cache %s is of format version %d, this program writes %d; making it again", path, v, cacheVersion)
	}
	n := int64(binary.LittleEndian.Uint32(pre[len(cacheMagic)+4:]))
	if n > maxHeader || int64(len(pre))+n+sha256.Size > st.Size() {
		return corrupt("header of %d bytes in a file of %d", n, st.Size())
	}
	raw := make([]byte, n)
	if _, err := io.ReadFull(br, raw); err != nil {
		return corrupt("truncated header")
	}
	h.Write(raw)
	var got cacheHeader
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		return corrupt("header: %v", err)
	}
	switch {
	case got.Dir != want.Dir:
		return nil, fmt.Sprintf("the cache %s was made from %s", path, got.Dir)
	case got.Size != want.Size || got.Fit != want.Fit || got.Mode != want.Mode || got.Background != want.Background:
		return nil, fmt.Sprintf("the options changed (size %d, fit %s, mode %s, background %v in the cache)", got.Size, got.Fit, got.Mode, got.Background)
	case got.Listing != want.Listing:
		return nil, "the folder changed since the cache was made (files added, removed or modified)"
	}
	if got.Channels != 1 && got.Channels != 3 || len(got.Captions) != len(got.Files) || len(got.Files) == 0 {
		return corrupt("inconsistent header")
	}
	per := int64(got.Size) * int64(got.Size) * int64(got.Channels)
	total := int64(len(got.Files)) * per
	if int64(len(pre))+n+total+sha256.Size != st.Size() {
		return corrupt("%d bytes, the header calls for %d", st.Size(), int64(len(pre))+n+total+sha256.Size)
	}
	if total*4 > MaxTotalBytes {
		return corrupt("%d images of %d values", len(got.Files), per)
	}
	set := &Set{Channels: got.Channels, Size: got.Size, Files: got.Files, Captions: got.Captions, Skipped: got.Skipped}
	flat := make([]float32, total)
	buf := make([]byte, per)
	for i := range got.Files {
		if _, err := io.ReadFull(br, buf); err != nil {
			return corrupt("truncated pixels")
		}
		h.Write(buf)
		img := flat[int64(i)*per : int64(i+1)*per : int64(i+1)*per]
		for k, p := range buf {
			img[k] = float32(p) / 255
		}
		set.Images = append(set.Images, img)
	}
	sum := h.Sum(nil)
	var stored [sha256.Size]byte
	if _, err := io.ReadFull(br, stored[:]); err != nil {
		return corrupt("truncated checksum")
	}
	if !bytes.Equal(sum, stored[:]) {
		return corrupt("checksum mismatch")
	}
	return set, ""
}

// writeCache writes the set to path atomically.
func writeCache(path string, hdr cacheHeader, set *Set) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	// JSON would turn bytes that are not UTF-8 into U+FFFD, and the set
	// read back would name other files.
	for _, f := range set.Files {
		if !utf8.ValidString(f) {
			return fmt.Errorf("the file name %q is not UTF-8, which the cache cannot keep", f)
		}
	}
	for _, k := range set.Skipped {
		if !utf8.ValidString(k.File) || !utf8.ValidString(k.Reason) {
			return fmt.Errorf("the file name %q is not UTF-8, which the cache cannot keep", k.File)
		}
	}
	hdr.Channels = set.Channels
	hdr.Files, hdr.Captions, hdr.Skipped = set.Files, set.Captions, set.Skipped
	raw, err := json.Marshal(hdr)
	if err != nil {
		return err
	}
	if len(raw) > maxHeader {
		return fmt.Errorf("header of %d bytes is over the %d-byte limit", len(raw), maxHeader)
	}
	return atomicfile.Write(path, func(w io.Writer) error {
		h := sha256.New()
		mw := io.MultiWriter(w, h)
		pre := make([]byte, len(cacheMagic)+8)
		copy(pre, cacheMagic)
		binary.LittleEndian.PutUint32(pre[len(cacheMagic):], cacheVersion)
		binary.LittleEndian.PutUint32(pre[len(cacheMagic)+4:], uint32(len(raw)))
		if _, err := mw.Write(pre); err != nil {
			return err
		}
		if _, err := mw.Write(raw); err != nil {
			return err
		}
		buf := make([]byte, set.Size*set.Size*set.Channels)
		for _, img := range set.Images {
			for k, v := range img {
				buf[k] = quantize(float64(v))
			}
			if _, err := mw.Write(buf); err != nil {
				return err
			}
		}
		_, err := w.Write(h.Sum(nil))
		return err
	})
}
