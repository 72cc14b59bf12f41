package recipe_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/emoji"
	"github.com/latentlm/latentlm/imagefolder"
	"github.com/latentlm/latentlm/recipe"
	"github.com/latentlm/latentlm/vae"
)

// shapeColours are the colours of the generated shapes and backgrounds.
var shapeColours = []color.NRGBA{{230, 30, 30, 255}, {30, 60, 220, 255}, {40, 180, 60, 255}, {250, 210, 40, 255}, {255, 255, 255, 255}}

// writeShapes writes n PNG pictures of coloured discs and squares, of a
// few sizes (some not square), into dir as shape00.png…; gray makes them
// gray instead.
func writeShapes(t testing.TB, dir string, n int, gray bool) {
	t.Helper()
	for i := range n {
		w, h := 20+4*(i%3), 20+2*(i%2)
		fg, bg := shapeColours[i%4], shapeColours[(i/4+1+i%4)%5]
		if gray {
			y := uint8(40 + 50*(i%4))
			fg, bg = color.NRGBA{y, y, y, 255}, color.NRGBA{255 - y, 255 - y, 255 - y, 255}
		}
		img := image.NewNRGBA(image.Rect(0, 0, w, h))
		cx, cy, r := float64(w)/2+float64(i%5-2), float64(h)/2, 5+float64(i%4)
		for y := range h {
			for x := range w {
				dx, dy := float64(x)-cx, float64(y)-cy
				in := math.Hypot(dx, dy) < r
				if i%2 == 1 {
					in = math.Abs(dx) < r && math.Abs(dy) < r
				}
				c := bg
				if in {
					c = fg
				}
				img.SetNRGBA(x, y, c)
			}
		}
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("shape%02d.png", i)))
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// heldOut is the documented test split of a folder: FNV-1a of the file's
// path in the folder, one in 10.
func heldOut(file string) bool {
	h := fnv.New64a()
	io.WriteString(h, file)
	return h.Sum64()%10 == 0
}

// TestImageFolderSplits: a folder's pictures come out at the chosen size in
// RGB, split by the hash of their names, the pixels as imagefolder reads
// them; the info of the set reads back as the same data.
func TestImageFolderSplits(t *testing.T) {
	dir, cache := t.TempDir(), t.TempDir()
	writeShapes(t, dir, 40, false)
	o := recipe.ImageOptions{Size: 16, Fit: imagefolder.Pad, Background: "#102030", CacheDir: cache}
	train, err := recipe.LoadImages(dir, "train", o, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	test, err := recipe.LoadImages(dir, "test", o, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if train.Size != 16 || train.Channels != 3 || test.Channels != 3 || train.N+test.N != 40 || test.N == 0 ||
		len(train.Pixels) != train.N*16*16*3 || len(train.Files) != train.N || len(test.Captions) != test.N {
		t.Fatalf("train %d and test %d images of %d×%d×%d", train.N, test.N, train.Size, train.Size, train.Channels)
	}
	for _, f := range train.Files {
		if heldOut(f) {
			t.Errorf("%s is in train, its hash puts it in test", f)
		}
	}
	for _, f := range test.Files {
		if !heldOut(f) {
			t.Errorf("%s is in test, its hash puts it in train", f)
		}
	}
	// The images are imagefolder's, H×W×C, channels last.
	ref, err := imagefolder.Read(dir, imagefolder.Options{Size: 16, Fit: imagefolder.Pad, Background: color.NRGBA{0x10, 0x20, 0x30, 255}})
	if err != nil {
		t.Fatal(err)
	}
	for k, f := range test.Files {
		if got := test.Batch([]int{k}); !slices.Equal(got, ref.Images[slices.Index(ref.Files, f)]) {
			t.Errorf("test image %d (%s) differs from imagefolder's", k, f)
		}
	}
	// The padding of a picture that is not square (all but shape00,
	// shape06, …) is the background, in channel order R, G, B.
	k := slices.IndexFunc(train.Files, func(f string) bool { return f != "shape00.png" && f != "shape06.png" })
	if got := train.Batch([]int{k})[:3]; got[0] != float32(0x10)/255 || got[1] != float32(0x20)/255 || got[2] != float32(0x30)/255 {
		t.Errorf("corner pixel of %s %v, want the background #102030", train.Files[k], got)
	}
	var n int
	if err := train.Batches(7, 12)(func(b [][]float32) error { n += len(b); return nil }); err != nil || n != 12 {
		t.Errorf("Batches with limit 12: %d images, %v", n, err)
	}
	if limited, err := recipe.LoadImages(dir, "train", o, 5, nil); err != nil || limited.N != 5 || !slices.Equal(limited.Files, train.Files[:5]) {
		t.Errorf("limit 5: %v", err)
	}

	abs, _ := filepath.Abs(dir)
	name, back := recipe.ImageDataOf(jsonRoundTrip(t, train.Info()))
	if name != abs || back.Size != 16 || back.Fit != imagefolder.Pad || back.Background != "#102030" {
		t.Errorf("ImageDataOf(Info) = %s, %+v", name, back)
	}
	if c := train.Info()["channels"]; c != 3 {
		t.Errorf("info channels %v", c)
	}

	// A folder of gray pictures has one channel.
	grayDir := t.TempDir()
	writeShapes(t, grayDir, 12, true)
	g, err := recipe.LoadImages(grayDir, "train", recipe.ImageOptions{CacheDir: cache}, 0, nil)
	if err != nil || g.Channels != 1 || g.Size != recipe.DefaultImageSize {
		t.Errorf("gray folder: %v, %+v", err, g)
	}
}

// jsonRoundTrip passes info through JSON, as config.json does.
func jsonRoundTrip(t *testing.T, info map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	return back
}

// TestImageDataErrors: every bad data choice is one line naming it.
func TestImageDataErrors(t *testing.T) {
	empty, cache := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(empty, "notes.txt"), []byte("hi"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(empty, "notes.txt")
	few := t.TempDir()
	writeShapes(t, few, 1, false) // shape00.png: in train by its hash
	for _, c := range []struct {
		name, split string
		o           recipe.ImageOptions
		want        string
	}{
		{"cifar", "train", recipe.ImageOptions{}, `unknown data set "cifar": want mnist, fashion, mnist-canvas, fashion-canvas, emoji or a folder`},
		{filepath.Join(empty, "none"), "train", recipe.ImageOptions{}, "no such file or directory"},
		{file, "train", recipe.ImageOptions{}, "is not a folder"},
		{empty, "train", recipe.ImageOptions{CacheDir: cache}, "no PNG or JPEG files"},
		{few, "test", recipe.ImageOptions{CacheDir: cache}, "no image in the test split"},
		{few, "train", recipe.ImageOptions{Background: "pink", CacheDir: cache}, `background "pink": want white, black or #rrggbb`},
		{few, "train", recipe.ImageOptions{Size: 5000, CacheDir: cache}, "size 5000 out of range"},
		{"mnist", "train", recipe.ImageOptions{Size: 32}, "size 32: mnist has 28×28 images (--size is for folders and emoji)"},
		{few, "judge", recipe.ImageOptions{CacheDir: cache}, `unknown split "judge"`},
	} {
		_, err := recipe.LoadImages(c.name, c.split, c.o, 0, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s %s: %v, want one line with %q", c.name, c.split, err, c.want)
		}
	}
	if err := recipe.CheckImageData("emoji"); err != nil {
		t.Error(err)
	}
	if err := recipe.CheckData("emoji"); err == nil {
		t.Error("CheckData (the labelled sets of LatentLM and the classifier) accepts emoji")
	}
}

// TestEmojiSplits: the emoji test split holds every held-out skin-tone
// combination and one in 20 of the others; train holds the rest.
func TestEmojiSplits(t *testing.T) {
	dir, err := emoji.Dir()
	if err != nil {
		t.Skip(err)
	}
	entries, err := emoji.ReadEntries(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, heldout := emoji.Split(entries)
	cache := t.TempDir()
	o := recipe.ImageOptions{CacheDir: cache}
	test, err := recipe.LoadImages("emoji", "test", o, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	train, err := recipe.LoadImages("emoji", "train", o, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("emoji: %d train, %d test (%d held-out combinations)", train.N, test.N, len(heldout))
	if train.N+test.N != len(entries) || test.Size != 32 || test.Channels != 3 || train.Name != "emoji" {
		t.Fatalf("%d + %d images of %d×%d×%d, want %d", train.N, test.N, test.Size, test.Size, test.Channels, len(entries))
	}
	if n := float64(test.N - len(heldout)); math.Abs(n-float64(len(entries)-len(heldout))/20) > 40 {
		t.Errorf("%d test images besides the held-out ones, want about 1 in 20 of %d", int(n), len(entries)-len(heldout))
	}
	for _, e := range heldout {
		i := slices.Index(test.Files, e.File)
		if i < 0 || test.Captions[i] != e.Caption {
			t.Errorf("held-out %s (%s) not in test with its caption", e.File, e.Caption)
		}
		if slices.Contains(train.Files, e.File) {
			t.Errorf("held-out %s in train", e.File)
		}
	}
}

// TestTokenizerOnFolder trains a tiny tokenizer on a folder of coloured
// shapes with one call: the loss falls, the checkpoint takes RGB and
// records how to read its data again, and a resumed run on gray pictures
// is refused in one line.
func TestTokenizerOnFolder(t *testing.T) {
	root, dir := t.TempDir(), t.TempDir()
	writeShapes(t, dir, 40, false)
	o := recipe.DefaultTokenizerOptions()
	o.Data, o.Out, o.Steps, o.Batch, o.Quiet, o.SaveEvery, o.LR = dir, filepath.Join(root, "vae"), 40, 16, true, 0, 1e-2
	o.Images = recipe.ImageOptions{Size: 16, CacheDir: t.TempDir()}
	o.Model = recipe.DefaultTokenizerModelFor(dir, 16)
	o.Model.Dim, o.Model.Depth, o.Model.Channels = 32, 1, 8
	if o.Model.Patch != 2 || o.Model.InChannels != 3 {
		t.Fatalf("default model at 16 px: %+v", o.Model)
	}
	o.Model.Patch = 4
	res, err := recipe.Tokenizer(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	h := res.History
	if len(h) != 2 {
		t.Fatalf("loss history %+v, want 2 points", h)
	}
	t.Logf("loss %.4f (steps 1–20) → %.4f (21–40)", h[0].Loss, h[1].Loss)
	if !(h[1].Loss < 0.8*h[0].Loss) {
		t.Errorf("loss did not fall by 20%% from steps 1–20 to 21–40")
	}
	var cfg vae.Config
	hdr, err := checkpoint.ReadHeader(res.Dir, vae.Kind, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(dir)
	if cfg.InChannels != 3 || cfg.ImageSize != 16 || cfg.Items() != 16 ||
		hdr.Info["data"] != abs || hdr.Info["size"] != 16.0 || hdr.Info["channels"] != 3.0 || hdr.Info["fit"] != "crop" || hdr.Info["background"] != "white" {
		t.Errorf("saved config %+v, info %v", cfg, hdr.Info)
	}

	gray := t.TempDir()
	writeShapes(t, gray, 12, true)
	o.Data, o.Resume, o.Steps = gray, true, 41
	_, err = recipe.Tokenizer(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "takes 3-channel (RGB) images, "+gray+" has 1-channel (gray) images") {
		t.Errorf("resumed on gray pictures: %v", err)
	}

	o = recipe.DefaultTokenizerOptions()
	o.Data, o.Out, o.Images = dir, filepath.Join(root, "x"), recipe.ImageOptions{Size: 30}
	_, err = recipe.Tokenizer(context.Background(), o)
	var oe *recipe.OptionError
	if !errors.As(err, &oe) || err.Error() != "size 30 is not divisible by the patch 4 (--patch)" {
		t.Errorf("size 30, patch 4: %v", err)
	}
	if _, err := os.Stat(o.Out); !os.IsNotExist(err) {
		t.Errorf("the refused run created its folder: %v", err)
	}
}

// TestColourDefaultModels: emoji and folders get RGB in an 8×8 grid.
func TestColourDefaultModels(t *testing.T) {
	for _, c := range []struct {
		size, patch int
	}{{0, 4}, {32, 4}, {64, 8}, {48, 6}, {28, 4}} {
		m := recipe.DefaultTokenizerModelFor("emoji", c.size)
		if want := cmp.Or(c.size, 32); m.ImageSize != want || m.Patch != c.patch || m.InChannels != 3 || m.Channels != 16 || m.Validate() != nil {
			t.Errorf("size %d: %+v (%v)", c.size, m, m.Validate())
		}
	}
	if m := recipe.DefaultTokenizerModel("emoji"); m.Items() != 64 || m.PatchValues() != 48 {
		t.Errorf("emoji: %d latents of %d values", m.Items(), m.PatchValues())
	}
	if m := recipe.DefaultTokenizerModelFor("mnist", 64); m != vae.DefaultConfig() {
		t.Errorf("mnist at 64: %+v", m)
	}
}
