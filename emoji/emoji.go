// Package emoji is the real example of issue 20: the Twemoji graphics of
// the npm package emoji-datasource-twitter@16.0.0, 3 786 colour images of
// 64×64 RGBA pixels, captioned from their names and skin tones ("thumbs up
// sign, dark skin tone"), with a held-out set of emoji/skin-tone
// combinations that tests compositional generalisation.
//
// The graphics are Twemoji, © Twitter, Inc. and other contributors,
// licensed under CC-BY 4.0 (https://creativecommons.org/licenses/by/4.0/,
// https://github.com/jdecked/twemoji); the names and categories come from
// emoji-data by Cal Henderson (MIT licence, kept as LICENSE beside the
// data). scripts/setup.sh installs emoji.json, LICENSE and the 64-pixel
// images into .deps/emoji-twitter.
//
// # Entries and captions
//
// Every image with has_img_twitter is one Entry: an emoji itself (the
// yellow default) and each of its skin-tone variations. The caption is the
// lower-cased name, then the skin tone in the words of Unicode's CLDR
// names: "light skin tone", "medium-light skin tone", "medium skin tone",
// "medium-dark skin tone", "dark skin tone". The 13 emoji of two people
// (handshake, kiss, couples) have a variation for each pair of tones; one
// with two tones is described by both ("kiss: man, man, light skin tone,
// dark skin tone"), one with the same tone twice by one, as CLDR does. Two
// emoji in emoji.json share the name "MAN IN TUXEDO" (the older name of
// U+1F935, now "person in tuxedo"): an emoji whose name is shared is
// captioned by its first short name instead ("person in tuxedo",
// "man in tuxedo"), so that no two images share a caption.
//
// # Held-out combinations
//
// Split holds out, for each emoji with skin-tone variations, one variation
// chosen by a hash of the emoji's code points: the model never sees that
// emoji in that tone, but sees the emoji in its other tones (and in its
// default yellow) and the tone on other emoji, so drawing "waving hand
// sign, medium skin tone" tests whether it composes the two. The choice
// depends on nothing but the emoji, so it is the same on every machine and
// for any subset of the data.
package emoji

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/latentlm/latentlm/imagefolder"
	"github.com/latentlm/latentlm/internal/boundedio"
	"github.com/latentlm/latentlm/internal/deps"
	"github.com/latentlm/latentlm/internal/jsonerr"
)

const (
	// Package is the npm package the data come from.
	Package = "emoji-datasource-twitter@16.0.0"
	// Folder is the data's folder under .deps.
	Folder = "emoji-twitter"
	// IndexFile is the emoji list in Folder.
	IndexFile = "emoji.json"
	// ImageFolder is the folder of the 64×64 PNG images in Folder.
	ImageFolder = "64"
	// ImageSize is the side of the images as shipped.
	ImageSize = 64
	// maxIndexSize bounds emoji.json (1.3 MB in 16.0.0).
	maxIndexSize = 64 << 20
)

// toneCodes are the skin-tone modifiers (the Fitzpatrick types of
// U+1F3FB…U+1F3FF) and their CLDR words.
var toneCodes = map[string]string{
	"1F3FB": "light skin tone",
	"1F3FC": "medium-light skin tone",
	"1F3FD": "medium skin tone",
	"1F3FE": "medium-dark skin tone",
	"1F3FF": "dark skin tone",
}

// SkinTones lists the five tones in the order of their code points.
var SkinTones = []string{"light skin tone", "medium-light skin tone", "medium skin tone", "medium-dark skin tone", "dark skin tone"}

// Entry is one image.
type Entry struct {
	// File is the image's name in ImageFolder, e.g. "1f44d-1f3ff.png".
	File string
	// Unified is the image's code points, e.g. "1F44D-1F3FF".
	Unified string
	// Emoji is the code points of the emoji without skin tone, shared by
	// its variations: the key that groups them, e.g. "1F44D".
	Emoji string
	// Name is the emoji's name as emoji.json has it, e.g. "THUMBS UP SIGN".
	Name       string
	ShortNames []string
	// Category and Subcategory are emoji.json's, e.g. "People & Body" and
	// "hand-fingers-closed".
	Category, Subcategory string
	// Tone is the skin-tone key of a variation in emoji.json ("1F3FF", or
	// "1F3FB-1F3FF" for two people); "" for the emoji itself.
	Tone string
	// SkinTone is Tone in words ("dark skin tone"; "light skin tone, dark
	// skin tone"); "" for the emoji itself.
	SkinTone string
	// Caption is the lower-case description, e.g. "thumbs up sign, dark
	// skin tone".
	Caption string
}

// Dir returns the installed data's folder, or an error that says how to
// install it.
func Dir() (string, error) {
	d, err := deps.Dir()
	if err != nil {
		return "", fmt.Errorf("emoji: %w", err)
	}
	dir := filepath.Join(d, Folder)
	if _, err := os.Stat(filepath.Join(dir, IndexFile)); err != nil {
		return "", fmt.Errorf("emoji: %s not installed in %s: run `make setup` (or scripts/setup.sh)", Package, dir)
	}
	return dir, nil
}

// ReadEntries reads dir/emoji.json.
func ReadEntries(dir string) ([]Entry, error) {
	p := filepath.Join(dir, IndexFile)
	data, err := boundedio.ReadFile(p, maxIndexSize)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("emoji: %s: missing: run `make setup` (or scripts/setup.sh)", p)
		}
		return nil, fmt.Errorf("emoji: %s: %w", p, err)
	}
	entries, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("emoji: %s: %w", p, err)
	}
	return entries, nil
}

// rawEmoji is the part of an emoji.json record this package reads.
type rawEmoji struct {
	Name           string                  `json:"name"`
	Unified        string                  `json:"unified"`
	Image          string                  `json:"image"`
	ShortNames     []string                `json:"short_names"`
	Category       string                  `json:"category"`
	Subcategory    string                  `json:"subcategory"`
	HasImgTwitter  bool                    `json:"has_img_twitter"`
	SkinVariations map[string]rawVariation `json:"skin_variations"`
}

type rawVariation struct {
	Unified       string `json:"unified"`
	Image         string `json:"image"`
	HasImgTwitter bool   `json:"has_img_twitter"`
}

// imageName is the form of the image names in emoji.json, which also
// keeps them inside the image folder.
var imageName = regexp.MustCompile(`^[0-9a-f]+(-[0-9a-f]+)*\.png$`)

// Parse reads the contents of an emoji.json: the entries with a Twitter
// image, in the file's order, each emoji followed by its skin-tone
// variations in the order of their tone codes.
func Parse(data []byte) ([]Entry, error) {
	var raw []rawEmoji
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("not an emoji list: %v", jsonerr.Describe(err))
	}
	names := map[string]int{} // lower-cased name → emoji with it
	for _, r := range raw {
		names[strings.ToLower(r.Name)]++
	}
	var out []Entry
	files := map[string]bool{}
	add := func(e Entry) error {
		if !imageName.MatchString(e.File) {
			return fmt.Errorf("%s: image name %q is not of the form 1f44d-1f3ff.png", e.Unified, e.File)
		}
		if files[e.File] {
			return fmt.Errorf("%s: image %s appears twice", e.Unified, e.File)
		}
		files[e.File] = true
		out = append(out, e)
		return nil
	}
	for i, r := range raw {
		if r.Name == "" || r.Unified == "" {
			return nil, fmt.Errorf("emoji %d has no name or code points", i)
		}
		base := Entry{
			File: r.Image, Unified: r.Unified, Emoji: r.Unified, Name: r.Name,
			ShortNames: r.ShortNames, Category: r.Category, Subcategory: r.Subcategory,
			Caption: strings.ToLower(r.Name),
		}
		if names[base.Caption] > 1 && len(r.ShortNames) > 0 {
			base.Caption = strings.ReplaceAll(r.ShortNames[0], "_", " ")
		}
		if r.HasImgTwitter {
			if err := add(base); err != nil {
				return nil, err
			}
		}
		tones := make([]string, 0, len(r.SkinVariations))
		for t := range r.SkinVariations {
			tones = append(tones, t)
		}
		slices.Sort(tones)
		for _, t := range tones {
			v := r.SkinVariations[t]
			words, err := toneWords(t)
			if err != nil {
				return nil, fmt.Errorf("%s (%s): %v", r.Unified, r.Name, err)
			}
			if !v.HasImgTwitter {
				continue
			}
			e := base
			e.File, e.Unified, e.Tone, e.SkinTone = v.Image, v.Unified, t, words
			e.Caption = base.Caption + ", " + words
			if err := add(e); err != nil {
				return nil, err
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no emoji with a Twitter image")
	}
	return out, nil
}

// toneWords describes a skin-variation key: one tone, or two joined by a
// hyphen, said once when they are equal.
func toneWords(key string) (string, error) {
	parts := strings.Split(key, "-")
	if len(parts) > 2 {
		return "", fmt.Errorf("skin tone %q of more than two tones", key)
	}
	var words []string
	for _, p := range parts {
		w, ok := toneCodes[p]
		if !ok {
			return "", fmt.Errorf("unknown skin tone %q", key)
		}
		if !slices.Contains(words, w) {
			words = append(words, w)
		}
	}
	return strings.Join(words, ", "), nil
}

// Split divides entries into those to train on and the held-out
// emoji/skin-tone combinations (see the package doc): for each emoji with
// at least two tone variations among entries, the one at the position
// FNV-1a(emoji) mod n of its n variations (in the order of their tone
// keys) is held out. Both keep the order of entries.
func Split(entries []Entry) (train, heldout []Entry) {
	variations := map[string][]string{} // emoji → tone keys
	for _, e := range entries {
		if e.Tone != "" && !slices.Contains(variations[e.Emoji], e.Tone) {
			variations[e.Emoji] = append(variations[e.Emoji], e.Tone)
		}
	}
	held := map[string]string{} // emoji → held-out tone
	for emoji, tones := range variations {
		if len(tones) < 2 {
			continue
		}
		slices.Sort(tones)
		h := fnv.New64a()
		io.WriteString(h, emoji)
		held[emoji] = tones[h.Sum64()%uint64(len(tones))]
	}
	for _, e := range entries {
		if t, ok := held[e.Emoji]; ok && e.Tone == t {
			heldout = append(heldout, e)
		} else {
			train = append(train, e)
		}
	}
	return train, heldout
}

// Images reads the entries' images from dir (the data's folder, see Dir)
// through imagefolder, resized and composited as o says, with the
// entries' captions; the set is in the order of entries. An image that
// cannot be read is an error, since setup verified them all.
func Images(dir string, entries []Entry, o imagefolder.Options) (*imagefolder.Set, error) {
	if len(entries) == 0 {
		return nil, errors.New("emoji: no entries to read")
	}
	files := make([]string, len(entries))
	captions := make([]string, len(entries))
	for i, e := range entries {
		files[i], captions[i] = e.File, e.Caption
	}
	root := filepath.Join(dir, ImageFolder)
	set, err := imagefolder.ReadFiles(root, files, captions, o)
	if err != nil {
		return nil, fmt.Errorf("emoji: %w", err)
	}
	if len(set.Skipped) > 0 {
		s := set.Skipped[0]
		return nil, fmt.Errorf("emoji: %s: %s (and %d other file(s)): run `make setup` (or scripts/setup.sh) again", filepath.Join(root, s.File), s.Reason, len(set.Skipped)-1)
	}
	return set, nil
}
