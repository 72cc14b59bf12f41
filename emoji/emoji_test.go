package emoji

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/latentlm/latentlm/imagefolder"
)

// fixture is a small emoji.json in the package's format (fields this
// package ignores included, as in the real file).
const fixture = `[
 {"name": "GRINNING FACE", "unified": "1F600", "non_qualified": null, "image": "1f600.png", "sheet_x": 1, "sheet_y": 2,
  "short_name": "grinning", "short_names": ["grinning"], "text": ":D", "texts": null, "category": "Smileys & Emotion",
  "subcategory": "face-smiling", "sort_order": 1, "added_in": "1.0", "has_img_apple": true, "has_img_google": true,
  "has_img_twitter": true, "has_img_facebook": true},
 {"name": "THUMBS UP SIGN", "unified": "1F44D", "image": "1f44d.png", "short_names": ["+1", "thumbsup"],
  "category": "People & Body", "subcategory": "hand-fingers-closed", "has_img_twitter": true,
  "skin_variations": {
   "1F3FF": {"unified": "1F44D-1F3FF", "image": "1f44d-1f3ff.png", "has_img_twitter": true},
   "1F3FB": {"unified": "1F44D-1F3FB", "image": "1f44d-1f3fb.png", "has_img_twitter": true},
   "1F3FC": {"unified": "1F44D-1F3FC", "image": "1f44d-1f3fc.png", "has_img_twitter": true},
   "1F3FD": {"unified": "1F44D-1F3FD", "image": "1f44d-1f3fd.png", "has_img_twitter": true},
   "1F3FE": {"unified": "1F44D-1F3FE", "image": "1f44d-1f3fe.png", "has_img_twitter": true}}},
 {"name": "WAVING HAND SIGN", "unified": "1F44B", "image": "1f44b.png", "short_names": ["wave"],
  "category": "People & Body", "subcategory": "hand-fingers-open", "has_img_twitter": true,
  "skin_variations": {
   "1F3FB": {"unified": "1F44B-1F3FB", "image": "1f44b-1f3fb.png", "has_img_twitter": true},
   "1F3FC": {"unified": "1F44B-1F3FC", "image": "1f44b-1f3fc.png", "has_img_twitter": false},
   "1F3FD": {"unified": "1F44B-1F3FD", "image": "1f44b-1f3fd.png", "has_img_twitter": true},
   "1F3FE": {"unified": "1F44B-1F3FE", "image": "1f44b-1f3fe.png", "has_img_twitter": true},
   "1F3FF": {"unified": "1F44B-1F3FF", "image": "1f44b-1f3ff.png", "has_img_twitter": true}}},
 {"name": "KISS: MAN, MAN", "unified": "1F468-200D-2764-FE0F-200D-1F48B-200D-1F468", "image": "1f468-200d-2764-fe0f-200d-1f48b-200d-1f468.png",
  "short_names": ["man-kiss-man"], "category": "People & Body", "subcategory": "family", "has_img_twitter": true,
  "skin_variations": {
   "1F3FB-1F3FB": {"unified": "1F468-1F3FB-200D-2764-FE0F-200D-1F48B-200D-1F468-1F3FB", "image": "1f468-1f3fb-200d-2764-fe0f-200d-1f48b-200d-1f468-1f3fb.png", "has_img_twitter": true},
   "1F3FB-1F3FF": {"unified": "1F468-1F3FB-200D-2764-FE0F-200D-1F48B-200D-1F468-1F3FF", "image": "1f468-1f3fb-200d-2764-fe0f-200d-1f48b-200d-1f468-1f3ff.png", "has_img_twitter": true},
   "1F3FF-1F3FB": {"unified": "1F468-1F3FF-200D-2764-FE0F-200D-1F48B-200D-1F468-1F3FB", "image": "1f468-1f3ff-200d-2764-fe0f-200d-1f48b-200d-1f468-1f3fb.png", "has_img_twitter": true},
   "1F3FF-1F3FF": {"unified": "1F468-1F3FF-200D-2764-FE0F-200D-1F48B-200D-1F468-1F3FF", "image": "1f468-1f3ff-200d-2764-fe0f-200d-1f48b-200d-1f468-1f3ff.png", "has_img_twitter": true}}},
 {"name": "MAN IN TUXEDO", "unified": "1F935", "image": "1f935.png", "short_names": ["person_in_tuxedo"],
  "category": "People & Body", "subcategory": "person-role", "has_img_twitter": true},
 {"name": "MAN IN TUXEDO", "unified": "1F935-200D-2642-FE0F", "image": "1f935-200d-2642-fe0f.png", "short_names": ["man_in_tuxedo"],
  "category": "People & Body", "subcategory": "person-role", "has_img_twitter": true},
 {"name": "Åland Islands Flag", "unified": "1F1E6-1F1FD", "image": "1f1e6-1f1fd.png", "short_names": ["flag-ax"],
  "category": "Flags", "subcategory": "country-flag", "has_img_twitter": true},
 {"name": "NO TWITTER IMAGE", "unified": "1FAE8", "image": "1fae8.png", "short_names": ["x"],
  "category": "Symbols", "subcategory": "other", "has_img_twitter": false}
]`

func parseFixture(t *testing.T) []Entry {
	t.Helper()
	entries, err := Parse([]byte(fixture))
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

func TestParse(t *testing.T) {
	entries := parseFixture(t)
	var captions []string
	for _, e := range entries {
		captions = append(captions, e.Caption)
	}
	want := []string{
		"grinning face",
		"thumbs up sign",
		"thumbs up sign, light skin tone",
		"thumbs up sign, medium-light skin tone",
		"thumbs up sign, medium skin tone",
		"thumbs up sign, medium-dark skin tone",
		"thumbs up sign, dark skin tone",
		"waving hand sign",
		"waving hand sign, light skin tone",
		"waving hand sign, medium skin tone",
		"waving hand sign, medium-dark skin tone",
		"waving hand sign, dark skin tone",
		"kiss: man, man",
		"kiss: man, man, light skin tone",
		"kiss: man, man, light skin tone, dark skin tone",
		"kiss: man, man, dark skin tone, light skin tone",
		"kiss: man, man, dark skin tone",
		"person in tuxedo",
		"man in tuxedo",
		"åland islands flag",
	}
	if !slices.Equal(captions, want) {
		t.Errorf("captions:\n%q\nwant\n%q", captions, want)
	}
	e := entries[6]
	if e.File != "1f44d-1f3ff.png" || e.Unified != "1F44D-1F3FF" || e.Emoji != "1F44D" || e.Name != "THUMBS UP SIGN" ||
		e.Tone != "1F3FF" || e.SkinTone != "dark skin tone" || e.Category != "People & Body" ||
		e.Subcategory != "hand-fingers-closed" || !slices.Equal(e.ShortNames, []string{"+1", "thumbsup"}) {
		t.Errorf("entry %+v", e)
	}
	if entries[1].Tone != "" || entries[1].SkinTone != "" || entries[1].Emoji != entries[1].Unified {
		t.Errorf("base entry %+v", entries[1])
	}
}

func TestParseErrors(t *testing.T) {
	variation := func(key, image string) string {
		return `[{"name": "A", "unified": "1F44D", "image": "1f44d.png", "has_img_twitter": true, "skin_variations": {"` +
			key + `": {"unified": "1F44D-1F3FF", "image": "` + image + `", "has_img_twitter": true}}}]`
	}
	for _, c := range []struct{ json, want string }{
		{`{"name": "A"}`, "not an emoji list"},
		{`[]`, "no emoji with a Twitter image"},
		{`[{"name": "", "unified": "1F44D", "image": "1f44d.png", "has_img_twitter": true}]`, "no name"},
		{variation("1F3FA", "1f44d-1f3ff.png"), `unknown skin tone "1F3FA"`},
		{variation("1F3FB-1F3FC-1F3FD", "1f44d-1f3ff.png"), "more than two tones"},
		{variation("1F3FF", "../1f44d.png"), "is not of the form"},
		{variation("1F3FF", "1f44d.png"), "appears twice"},
	} {
		if _, err := Parse([]byte(c.json)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.json, err, c.want)
		}
	}
}

// checkSplit checks the held-out properties of the package doc.
func checkSplit(t *testing.T, entries []Entry) (train, heldout []Entry) {
	t.Helper()
	train, heldout = Split(entries)
	if len(train)+len(heldout) != len(entries) {
		t.Fatalf("%d + %d entries, want %d", len(train), len(heldout), len(entries))
	}
	// Deterministic, whatever the order of the entries.
	shuffled := slices.Clone(entries)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	_, again := Split(shuffled)
	key := func(e Entry) string { return e.Unified }
	a, b := keys(heldout, key), keys(again, key)
	slices.Sort(a)
	slices.Sort(b)
	if !slices.Equal(a, b) {
		t.Errorf("the held-out set depends on the order of the entries")
	}

	variations := map[string]int{}
	for _, e := range entries {
		if e.Tone != "" {
			variations[e.Emoji]++
		}
	}
	trainTones := map[string]bool{}       // single tones (words) seen in training
	trainCombos := map[string][]string{}  // emoji → tones in training
	tonesOnEmoji := map[string][]string{} // tone key → emoji it is seen on in training
	wordsOnEmoji := map[string][]string{} // tone in words → the same
	for _, e := range train {
		for _, w := range strings.Split(e.SkinTone, ", ") {
			trainTones[w] = true
			wordsOnEmoji[w] = append(wordsOnEmoji[w], e.Emoji)
		}
		trainCombos[e.Emoji] = append(trainCombos[e.Emoji], e.Tone)
		tonesOnEmoji[e.Tone] = append(tonesOnEmoji[e.Tone], e.Emoji)
	}
	for _, w := range SkinTones {
		if !trainTones[w] {
			t.Errorf("tone %q is not in the training entries", w)
		}
	}
	held := map[string]int{}
	for _, e := range heldout {
		held[e.Emoji]++
		if e.Tone == "" {
			t.Errorf("%s: an emoji without tone held out", e.Caption)
		}
		// The emoji is seen with another tone, and with none.
		if others := trainCombos[e.Emoji]; !slices.ContainsFunc(others, func(t string) bool { return t != "" && t != e.Tone }) || !slices.Contains(others, "") {
			t.Errorf("%s: the emoji is not in training with another tone (%q)", e.Caption, others)
		}
		// Each of its tones is seen on another emoji; a single tone in
		// the same variation key (a pair, such as 1F3FB-1F3FF, is rarer).
		for _, w := range strings.Split(e.SkinTone, ", ") {
			if !slices.ContainsFunc(wordsOnEmoji[w], func(x string) bool { return x != e.Emoji }) {
				t.Errorf("%s: %s is on no other emoji in training", e.Caption, w)
			}
		}
		if !strings.Contains(e.Tone, "-") && !slices.ContainsFunc(tonesOnEmoji[e.Tone], func(x string) bool { return x != e.Emoji }) {
			t.Errorf("%s: the tone %s is on no other emoji in training", e.Caption, e.Tone)
		}
	}
	for emoji, n := range variations {
		if want := min(1, n-1); held[emoji] != want {
			t.Errorf("%s: %d variations held out, want %d", emoji, held[emoji], want)
		}
	}
	return train, heldout
}

func keys(es []Entry, key func(Entry) string) []string {
	var out []string
	for _, e := range es {
		out = append(out, key(e))
	}
	return out
}

func TestSplit(t *testing.T) {
	entries := parseFixture(t)
	// Add emoji with tones so that each tone is also on other emoji.
	for i := range 6 {
		base := Entry{Emoji: fmt.Sprintf("1F9%02X", i), Unified: fmt.Sprintf("1F9%02X", i), Caption: fmt.Sprintf("emoji %d", i)}
		entries = append(entries, base)
		for k, code := range []string{"1F3FB", "1F3FC", "1F3FD", "1F3FE", "1F3FF"} {
			e := base
			e.Unified, e.Tone, e.SkinTone = base.Unified+"-"+code, code, SkinTones[k]
			entries = append(entries, e)
		}
	}
	train, heldout := checkSplit(t, entries)
	if len(heldout) != 9 { // thumbs up, waving hand, kiss and the six
		t.Errorf("%d held out, want 9: %v", len(heldout), keys(heldout, func(e Entry) string { return e.Caption }))
	}
	var want []string
	for _, e := range entries {
		if !slices.Contains(keys(heldout, func(e Entry) string { return e.Unified }), e.Unified) {
			want = append(want, e.Unified)
		}
	}
	if !slices.Equal(keys(train, func(e Entry) string { return e.Unified }), want) {
		t.Error("train is not in the order of the entries")
	}
}

// writePNG writes a small RGBA image.
func writePNG(t *testing.T, path string, c color.NRGBA) {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, 8, 8))
	for i := range 64 {
		img.SetNRGBA(i%8, i/8, c)
	}
	img.SetNRGBA(0, 0, color.NRGBA{}) // a transparent corner
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestImages(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, IndexFile), []byte(fixture), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, ImageFolder), 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := ReadEntries(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range entries {
		writePNG(t, filepath.Join(dir, ImageFolder, e.File), color.NRGBA{R: uint8(10 * i), G: 100, B: 200, A: 255})
	}
	set, err := Images(dir, entries, imagefolder.Options{Size: 4, Background: color.Black})
	if err != nil {
		t.Fatal(err)
	}
	if set.Channels != 3 || set.Size != 4 || len(set.Images) != len(entries) {
		t.Fatalf("%d images of %d×%d×%d", len(set.Images), set.Size, set.Size, set.Channels)
	}
	for i, e := range entries {
		if set.Captions[i] != e.Caption || set.Files[i] != e.File {
			t.Errorf("image %d: %s %q, want %s %q", i, set.Files[i], set.Captions[i], e.File, e.Caption)
		}
	}
	// The transparent corner, averaged with three opaque pixels over black:
	// three quarters of the colour.
	if got, want := set.Images[3][2], float32(150)/255; got != want {
		t.Errorf("corner blue %v, want %v", got, want)
	}
	if err := os.Remove(filepath.Join(dir, ImageFolder, entries[2].File)); err != nil {
		t.Fatal(err)
	}
	if _, err := Images(dir, entries, imagefolder.Options{Size: 4}); err == nil || !strings.Contains(err.Error(), entries[2].File) {
		t.Errorf("a missing image: error %v, want one naming %s", err, entries[2].File)
	}
	if _, err := ReadEntries(t.TempDir()); err == nil || !strings.Contains(err.Error(), "emoji.json: missing") {
		t.Errorf("no emoji.json: error %v", err)
	}
}

// TestRealPackage checks the installed emoji-datasource-twitter.
func TestRealPackage(t *testing.T) {
	dir, err := Dir()
	if err != nil {
		t.Skipf("no emoji data: %v", err)
	}
	entries, err := ReadEntries(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3786 {
		t.Errorf("%d entries, want the 3786 images of %s", len(entries), Package)
	}
	seen := map[string]string{}
	for _, e := range entries {
		if prev, dup := seen[e.Caption]; dup {
			t.Errorf("caption %q of both %s and %s", e.Caption, prev, e.Unified)
		}
		seen[e.Caption] = e.Unified
	}
	if _, ok := seen["thumbs up sign, dark skin tone"]; !ok {
		t.Error(`no "thumbs up sign, dark skin tone"`)
	}
	train, heldout := checkSplit(t, entries)
	perTone := map[string]int{}
	for _, e := range heldout {
		perTone[e.SkinTone]++
	}
	t.Logf("%d entries: %d to train on, %d held out; held out per tone: %v", len(entries), len(train), len(heldout), perTone)

	if testing.Short() {
		entries = entries[:200]
	}
	set, err := Images(dir, entries, imagefolder.Options{Size: 32})
	if err != nil {
		t.Fatal(err)
	}
	if set.Channels != 3 || len(set.Images) != len(entries) || len(set.Images[0]) != 32*32*3 {
		t.Errorf("%d images of %d values, %d channels", len(set.Images), len(set.Images[0]), set.Channels)
	}
}
