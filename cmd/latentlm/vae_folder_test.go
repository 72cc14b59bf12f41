package main

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/latentlm/latentlm/imagefolder"
	"github.com/latentlm/latentlm/recipe"
)

// writeColourPNGs writes n pictures of coloured squares on coloured
// backgrounds, of a few sizes, into dir.
func writeColourPNGs(t *testing.T, dir string, n int) {
	t.Helper()
	colours := []color.NRGBA{{220, 30, 30, 255}, {30, 60, 220, 255}, {40, 180, 60, 255}, {250, 210, 40, 255}}
	for i := range n {
		w, h := 18+2*(i%3), 18
		img := image.NewNRGBA(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				c := colours[i%4]
				if x > w/4 && x < 3*w/4 && y > h/4 && y < 3*h/4 {
					c = colours[(i+1+i/4)%4]
				}
				img.SetNRGBA(x, y, c)
			}
		}
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("pic%02d.png", i)))
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
}

// cleanImageCache removes, when the test ends, the cache the command keeps
// for dir in the checkout's .deps, and the cache folders if they were made
// for it and are left empty.
func cleanImageCache(t *testing.T, root string, dirs ...string) {
	t.Helper()
	cache := filepath.Join(root, ".deps", "cache", "imagefolder")
	t.Cleanup(func() {
		for _, d := range dirs {
			if p, err := imagefolder.CachePath(d, cache); err == nil {
				os.Remove(p)
			}
		}
		// Only an empty folder is removed: others' caches stay.
		os.Remove(cache)
		os.Remove(filepath.Dir(cache))
	})
}

// TestVAEFolder trains a tokenizer on a folder of colour pictures with one
// command, then evaluates it and writes a colour reconstruction grid
// without being told the data again; and each mistake is one line.
func TestVAEFolder(t *testing.T) {
	root := repoRoot(t)
	dir, work := t.TempDir(), t.TempDir()
	writeColourPNGs(t, dir, 30)
	broken := t.TempDir()
	if err := os.WriteFile(filepath.Join(broken, "a.png"), []byte("not a picture"), 0o644); err != nil {
		t.Fatal(err)
	}
	cleanImageCache(t, root, dir, broken)

	out := filepath.Join(work, "vae")
	code, stdout, stderr := cli(t, root, "vae", "train", "--data", dir, "--size", "16", "--steps", "3", "--dim", "32", "--depth", "1",
		"--batch", "8", "--quiet", "--out", out)
	if code != 0 {
		t.Fatalf("vae train: exit %d: %s", code, stderr)
	}
	t.Logf("vae train: %s", stdout)
	var cfg struct {
		ImageSize  int `json:"image_size"`
		InChannels int `json:"in_channels"`
		Patch      int `json:"patch"`
		Channels   int `json:"latent_channels"`
	}
	readConfig(t, out, &cfg)
	if cfg.ImageSize != 16 || cfg.InChannels != 3 || cfg.Patch != 2 || cfg.Channels != 16 {
		t.Errorf("folder tokenizer %+v, want 16×16×3 in 2×2 patches (an 8×8 grid) of 16 channels", cfg)
	}

	code, stdout, stderr = cli(t, root, "vae", "eval", "--vae", out, "--json")
	if code != 0 {
		t.Fatalf("vae eval: exit %d: %s", code, stderr)
	}
	var rep struct {
		Data     string    `json:"data"`
		Images   int       `json:"images"`
		Channels int       `json:"channels"`
		PSNR     []float64 `json:"psnr_db_per_channel"`
		SSIM     []float64 `json:"ssim_per_channel"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("vae eval --json: %v: %q", err, stdout)
	}
	abs, _ := filepath.Abs(dir)
	if rep.Data != abs || rep.Images < 1 || rep.Images > 10 || rep.Channels != 3 || len(rep.PSNR) != 3 || len(rep.SSIM) != 3 {
		t.Errorf("vae eval report %+v", rep)
	}

	grid := filepath.Join(work, "grid.png")
	if code, _, stderr := cli(t, root, "vae", "reconstruct", "--vae", out, "--out", grid, "--n", "1"); code != 0 {
		t.Fatalf("vae reconstruct: exit %d: %s", code, stderr)
	}
	f, err := os.Open(grid)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	g, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	// The first tile is the first test picture, whose background (red,
	// blue, green or yellow by its number) is red.
	if r, _, b, _ := g.At(3, 3).RGBA(); g.ColorModel() == color.GrayModel || r>>8 != 220 || b>>8 != 30 {
		t.Errorf("grid (%T) pixel (3, 3) has R %d B %d, want the red corner of pic00 (220, 30)", g, r>>8, b>>8)
	}

	bad := filepath.Join(work, "x")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"vae", "train", "--data", broken, "--out", bad}, "no usable image"},
		{[]string{"vae", "train", "--data", filepath.Join(work, "none"), "--out", bad}, "no such file or directory"},
		{[]string{"vae", "train", "--data", dir, "--size", "30", "--out", bad}, "--size 30 is not divisible by the patch 4 (--patch)"},
		{[]string{"vae", "train", "--data", dir, "--patch", "5", "--out", bad}, "--size 32 is not divisible by the patch 5 (--patch)"},
		{[]string{"vae", "train", "--data", dir, "--fit", "squash", "--out", bad}, "--fit squash: want crop or pad"},
		{[]string{"vae", "train", "--data", dir, "--background", "pink", "--out", bad}, "--background pink: want white, black or #rrggbb"},
		{[]string{"vae", "train", "--data", "mnist", "--size", "32", "--out", bad}, "--size is for a folder of pictures or emoji"},
		{[]string{"vae", "eval", "--data", dir, "--vae", filepath.Join(root, "weights", "vae-mnist")}, "takes 1-channel images (in_channels 1), " + dir + " has 3-channel images"},
		{[]string{"vae", "eval", "--data", dir}, "no tokenizer is shipped for the folder"},
		{[]string{"vae", "eval", "--vae", out, "--size", "24"}, "takes 16×16 images"},
	} {
		code, _, stderr := cli(t, root, c.args...)
		expectOneLineError(t, code, stderr, c.want)
	}
	if _, err := os.Stat(bad); err == nil {
		t.Error("a refused run created its folder")
	}
	if recipe.DefaultImageSize != 32 {
		t.Errorf("the --size 32 of the errors above is not the default %d", recipe.DefaultImageSize)
	}
}
