package imagefolder

import (
	"bytes"
	"image/color"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// captionFolder is a folder with three images, a .txt caption and a
// captions.jsonl.
func captionFolder(t *testing.T) string {
	dir := t.TempDir()
	writeFile(t, dir, "cat.png", encodePNG(t, colourImage(4, 4)))
	writeFile(t, dir, "sub/dog.jpg", encodeJPEG(t, colourImage(6, 3)))
	writeFile(t, dir, "bird.png", encodePNG(t, colourImage(3, 5)))
	writeFile(t, dir, "sub/dog.txt", []byte("  a dog\n\n"))
	writeFile(t, dir, CaptionsFile, []byte(`{"file": "cat.png", "text": "a cat"}`+"\n\n"+`{"text": "a bird", "file": "./bird.png"}`+"\n"))
	return dir
}

func TestCaptions(t *testing.T) {
	set, err := Read(captionFolder(t), Options{Size: 4})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"bird.png", "cat.png", "sub/dog.jpg"}; !slices.Equal(set.Files, want) {
		t.Fatalf("files %q, want %q", set.Files, want)
	}
	if want := []string{"a bird", "a cat", "a dog"}; !slices.Equal(set.Captions, want) {
		t.Errorf("captions %q, want %q", set.Captions, want)
	}
}

func TestCaptionErrorsNameTheLine(t *testing.T) {
	for _, c := range []struct{ jsonl, want string }{
		{"{\"file\": \"cat.png\", \"text\": \"a\"}\n{\"file\": \"cat.png\", \"text\": \"b\"}\n", "captions.jsonl:2: a second caption for \"cat.png\" (the first is on line 1)"},
		{"\n\n{\"file\": \"cat.png\", \"text\": \"a\"\n", "captions.jsonl:3: want one JSON object"},
		{"{\"file\": \"cat.png\", \"text\": \"a\", \"tags\": []}\n", "captions.jsonl:1: want one JSON object {\"file\": …, \"text\": …}: json: unknown field \"tags\""},
		{"{\"file\": \"cat.png\"}\n", "captions.jsonl:1: no \"text\""},
		{"{\"text\": \"x\"}\n", "captions.jsonl:1: no \"file\""},
		{"{\"file\": \"cat.png\", \"text\": 3}\n", "captions.jsonl:1: want one JSON object"},
		{"{\"file\": \"cat.png\", \"text\": \"a\"} {}\n", "captions.jsonl:1: more after the JSON object"},
		{"{\"file\": \"lion.png\", \"text\": \"a\"}\n", "captions.jsonl:1: no image \"lion.png\" in the folder"},
		{"{\"file\": \"../cat.png\", \"text\": \"a\"}\n", "captions.jsonl:1: file \"../cat.png\" is outside the folder"},
		{"{\"file\": \"/cat.png\", \"text\": \"a\"}\n", "captions.jsonl:1: file \"/cat.png\": want a path relative"},
		{"[\"cat.png\", \"a\"]\n", "captions.jsonl:1: want one JSON object"},
		{"{\"file\": \"cat.png\", \"text\": \"\xff\"}\n", "captions.jsonl:1: not UTF-8"},
		{"{\"file\": \"sub/dog.jpg\", \"text\": \"a\"}\n", "captioned twice, by sub/dog.txt and by line 1 of captions.jsonl"},
	} {
		dir := captionFolder(t)
		writeFile(t, dir, CaptionsFile, []byte(c.jsonl))
		_, err := Read(dir, Options{Size: 4})
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("captions.jsonl %q: error %v, want one line with %q", c.jsonl, err, c.want)
		}
	}
	dir := captionFolder(t)
	writeFile(t, dir, "cat.txt", []byte("a\xffb"))
	writeFile(t, dir, CaptionsFile, nil)
	if _, err := Read(dir, Options{Size: 4}); err == nil || !strings.Contains(err.Error(), "cat.txt: not UTF-8") {
		t.Errorf("a .txt that is not UTF-8: error %v", err)
	}
}

// load is Load with its log.
func load(t *testing.T, dir, cache string, o Options) (*Set, string) {
	t.Helper()
	var log bytes.Buffer
	set, err := Load(dir, cache, o, &log)
	if err != nil {
		t.Fatal(err)
	}
	return set, log.String()
}

func TestCacheDetectsChanges(t *testing.T) {
	dir := captionFolder(t)
	writeFile(t, dir, "broken.png", []byte("nope"))
	cache := filepath.Join(t.TempDir(), "cache")
	o := Options{Size: 4, Fit: Pad, Background: color.Black}

	check := func(logWant string, fromCache bool) *Set {
		t.Helper()
		set, log := load(t, dir, cache, o)
		if !strings.Contains(log, logWant) {
			t.Errorf("log %q, want it to say %q", log, logWant)
		}
		if got := strings.Contains(log, "from the cache"); got != fromCache {
			t.Errorf("log %q: from the cache %v, want %v", log, got, fromCache)
		}
		fresh, err := Read(dir, o)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(set, fresh) {
			t.Errorf("Load (%s) and Read differ:\n%+v\n%+v", logWant, set, fresh)
		}
		return set
	}
	set := check("no cache yet", false)
	if len(set.Skipped) != 1 || set.Skipped[0].File != "broken.png" {
		t.Errorf("skipped %v", set.Skipped)
	}
	check("1 file(s) skipped when it was made", true)

	writeFile(t, dir, "new/fox.png", encodePNG(t, colourImage(7, 7)))
	if set := check("the folder changed", false); len(set.Files) != 4 {
		t.Errorf("after adding a file: %q", set.Files)
	}
	check("from the cache", true)

	if err := os.Remove(filepath.Join(dir, "bird.png")); err != nil {
		t.Fatal(err)
	}
	// bird.png is gone, so its line in captions.jsonl must go too.
	writeFile(t, dir, CaptionsFile, []byte(`{"file": "cat.png", "text": "a cat"}`))
	if set := check("the folder changed", false); len(set.Files) != 3 {
		t.Errorf("after removing a file: %q", set.Files)
	}

	// Modified: new content, and a modification time surely different.
	p := filepath.Join(dir, "cat.png")
	writeFile(t, dir, "cat.png", encodePNG(t, grayImage(2, 2, []uint8{1, 2, 3, 4})))
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(p, later, later); err != nil {
		t.Fatal(err)
	}
	check("the folder changed", false)
	// A changed caption file is a changed folder too.
	writeFile(t, dir, "sub/dog.txt", []byte("a big dog"))
	if err := os.Chtimes(filepath.Join(dir, "sub/dog.txt"), later, later.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if set := check("the folder changed", false); !slices.Contains(set.Captions, "a big dog") {
		t.Errorf("captions %q after editing dog.txt", set.Captions)
	}

	for _, change := range []func(*Options){
		func(o *Options) { o.Size = 5 },
		func(o *Options) { o.Fit = Crop },
		func(o *Options) { o.Mode = Gray },
		func(o *Options) { o.Background = color.White },
	} {
		change(&o)
		check("the options changed", false)
		check("from the cache", true)
	}
	if n, _ := filepath.Glob(filepath.Join(cache, "*")); len(n) != 1 {
		t.Errorf("cache folder holds %q, want one file", n)
	}
}

func TestCorruptCacheIsRebuilt(t *testing.T) {
	dir := captionFolder(t)
	cache := t.TempDir()
	o := Options{Size: 3}
	want, _ := load(t, dir, cache, o)
	path, err := CachePath(dir, cache)
	if err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte { b := slices.Clone(good); b[i] ^= 0x10; return b }
	for _, c := range []struct {
		name string
		data []byte
		log  string
	}{
		{"a pixel flipped", flip(len(good) - 40), "checksum mismatch"},
		{"the checksum flipped", flip(len(good) - 1), "checksum mismatch"},
		{"truncated", good[:len(good)-5], "is corrupt"},
		{"one byte more", append(slices.Clone(good), 0), "is corrupt"},
		{"empty", nil, "is corrupt (truncated header)"},
		{"not a cache", []byte("hello, this is some other file entirely"), "not an image set cache"},
		{"another version", flip(len(cacheMagic)), "format version"},
		{"a bad header", flip(len(cacheMagic) + 8), "is corrupt"},
	} {
		if err := os.WriteFile(path, c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		set, log := load(t, dir, cache, o)
		if !strings.Contains(log, c.log) || !strings.Contains(log, "making it again") {
			t.Errorf("%s: log %q, want it to say %q", c.name, log, c.log)
		}
		if !reflect.DeepEqual(set, want) {
			t.Errorf("%s: the rebuilt set differs", c.name)
		}
		if b, _ := os.ReadFile(path); !bytes.Equal(b, good) {
			t.Errorf("%s: the cache was not rewritten", c.name)
		}
	}
}

func TestCacheWriteFailureIsAWarning(t *testing.T) {
	dir := captionFolder(t)
	blocker := filepath.Join(t.TempDir(), "file")
	writeFile(t, filepath.Dir(blocker), "file", []byte("x"))
	set, log := load(t, dir, filepath.Join(blocker, "cache"), Options{Size: 2})
	if len(set.Files) != 3 || !strings.Contains(log, "warning: the cache was not written") {
		t.Errorf("files %q, log %q", set.Files, log)
	}
}

func TestNonUTF8NamesAreNotCached(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "caf\xe9.png", encodePNG(t, colourImage(2, 2)))
	cache := t.TempDir()
	set, log := load(t, dir, cache, Options{Size: 2})
	if !slices.Equal(set.Files, []string{"caf\xe9.png"}) || !strings.Contains(log, "is not UTF-8") {
		t.Errorf("files %q, log %q", set.Files, log)
	}
	if n, _ := filepath.Glob(filepath.Join(cache, "*")); len(n) != 0 {
		t.Errorf("cache folder holds %q", n)
	}
}
