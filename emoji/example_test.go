package emoji_test

import (
	"fmt"
	"log"

	"github.com/latentlm/latentlm/emoji"
	"github.com/latentlm/latentlm/imagefolder"
)

// readEntries reads the emoji list that setup installed.
func readEntries() (dir string, entries []emoji.Entry) {
	dir, err := emoji.Dir()
	if err != nil {
		log.Fatal(err)
	}
	entries, err = emoji.ReadEntries(dir)
	if err != nil {
		log.Fatal(err)
	}
	return dir, entries
}

// Read the installed emoji list and look at one emoji with its skin-tone
// variations: each is its own entry, captioned with the tone in words.
func ExampleReadEntries() {
	_, entries := readEntries()
	fmt.Println(len(entries), "images")
	for _, e := range entries {
		if e.Emoji == "1F44B" {
			fmt.Printf("%s %q (%s)\n", e.File, e.Caption, e.Subcategory)
		}
	}
	// Output:
	// 3786 images
	// 1f44b.png "waving hand sign" (hand-fingers-open)
	// 1f44b-1f3fb.png "waving hand sign, light skin tone" (hand-fingers-open)
	// 1f44b-1f3fc.png "waving hand sign, medium-light skin tone" (hand-fingers-open)
	// 1f44b-1f3fd.png "waving hand sign, medium skin tone" (hand-fingers-open)
	// 1f44b-1f3fe.png "waving hand sign, medium-dark skin tone" (hand-fingers-open)
	// 1f44b-1f3ff.png "waving hand sign, dark skin tone" (hand-fingers-open)
}

// Parse an emoji.json held in memory (here one emoji, cut down to the fields
// Parse reads). The emoji and each of its variations with a Twitter image
// become entries, variations in the order of their tone keys; a pair of
// tones is said once when both are the same, as CLDR names do.
func ExampleParse() {
	data := []byte(`[{
	"name": "KISS: MAN, MAN", "unified": "1F468-200D-2764-FE0F-200D-1F48B-200D-1F468",
	"image": "1f468-200d-2764-fe0f-200d-1f48b-200d-1f468.png", "short_names": ["man-kiss-man"],
	"category": "People & Body", "subcategory": "family", "has_img_twitter": true,
	"skin_variations": {
		"1F3FB-1F3FF": {"unified": "1F468-1F3FB-200D-2764-FE0F-200D-1F48B-200D-1F468-1F3FF",
			"image": "1f468-1f3fb-200d-2764-fe0f-200d-1f48b-200d-1f468-1f3ff.png", "has_img_twitter": true},
		"1F3FB-1F3FB": {"unified": "1F468-1F3FB-200D-2764-FE0F-200D-1F48B-200D-1F468-1F3FB",
			"image": "1f468-1f3fb-200d-2764-fe0f-200d-1f48b-200d-1f468-1f3fb.png", "has_img_twitter": true},
		"1F3FC-1F3FC": {"unified": "1F468-1F3FC-200D-2764-FE0F-200D-1F48B-200D-1F468-1F3FC",
			"image": "1f468-1f3fc-200d-2764-fe0f-200d-1f48b-200d-1f468-1f3fc.png", "has_img_twitter": false}
	}}]`)
	entries, err := emoji.Parse(data)
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range entries {
		fmt.Printf("%q\n", e.Caption)
	}
	// Output:
	// "kiss: man, man"
	// "kiss: man, man, light skin tone"
	// "kiss: man, man, light skin tone, dark skin tone"
}

// Hold out one skin tone of each emoji that has several, to test whether a
// model composes an emoji it has seen with a tone it has seen on others. The
// choice depends only on the emoji, so every machine holds out the same.
func ExampleSplit() {
	_, entries := readEntries()
	train, heldout := emoji.Split(entries)
	fmt.Println(len(train), "to train on,", len(heldout), "held out")
	for _, e := range heldout {
		if e.Emoji == "1F44B" {
			fmt.Println("held out:", e.Caption)
		}
	}
	// Output:
	// 3463 to train on, 323 held out
	// held out: waving hand sign, medium skin tone
}

// Read a few emoji as a training set: brought to 16×16 RGB over a white
// background, with their captions, in the order of the entries.
func ExampleImages() {
	dir, entries := readEntries()
	set, err := emoji.Images(dir, entries[:3], imagefolder.Options{Size: 16, Mode: imagefolder.RGB})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d images of %d×%d×%d\n", len(set.Images), set.Size, set.Size, set.Channels)
	for _, c := range set.Captions {
		fmt.Println(c)
	}
	// Output:
	// 3 images of 16×16×3
	// hash key
	// keycap: *
	// keycap 0
}
