package main

import (
	"encoding/json"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMultimodalFolder is the README's recipe for a user's folder, end to
// end on 60 coloured pictures without captions, with tiny steps and
// models: `vae train --data DIR`, then `train --task multimodal --data DIR
// --vae …` trains a class-free LatentLM (image-only documents), which
// `generate` draws colour images from without a prompt and `eval --task
// t2i` scores against the held-out pictures; and each mistake is one line.
func TestMultimodalFolder(t *testing.T) {
	if testing.Short() {
		t.Skip("trains two tiny models")
	}
	root := repoRoot(t)
	dir, work := t.TempDir(), t.TempDir()
	writeColourPNGs(t, dir, 60)
	cleanImageCache(t, root, dir)

	vaeDir := filepath.Join(work, "vae")
	if code, _, stderr := cli(t, root, "vae", "train", "--data", dir, "--size", "16", "--steps", "3", "--dim", "32", "--depth", "1",
		"--batch", "8", "--quiet", "--out", vaeDir); code != 0 {
		t.Fatalf("vae train: exit %d: %s", code, stderr)
	}
	mm := filepath.Join(work, "mm")
	code, _, stderr := cli(t, root, "train", "--task", "multimodal", "--data", dir, "--vae", vaeDir, "--steps", "3", "--batch", "8",
		"--dim", "32", "--depth", "1", "--heads", "2", "--kv-heads", "2", "--head-dim", "32", "--head-depth", "1", "--sample-every", "0", "--quiet", "--out", mm)
	if code != 0 {
		t.Fatalf("train --task multimodal: exit %d: %s", code, stderr)
	}
	var rec struct {
		Config struct {
			MaxLen int `json:"max_len"`
		} `json:"config"`
		Info struct {
			Captioned *int      `json:"captioned_images"`
			Mix       []float64 `json:"mix"`
		} `json:"info"`
	}
	raw, err := os.ReadFile(filepath.Join(mm, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatal(err)
	}
	// 8×8 latents with their brackets and <|endoftext|> twice; image → caption
	// and text have no part.
	if rec.Config.MaxLen != 68 || rec.Info.Captioned == nil || *rec.Info.Captioned != 0 || len(rec.Info.Mix) != 4 || rec.Info.Mix[0]+rec.Info.Mix[2]+rec.Info.Mix[3] != 0 {
		t.Errorf("class-free model: max_len %d, info %s", rec.Config.MaxLen, raw)
	}

	out := filepath.Join(work, "g.png")
	if code, _, stderr := cli(t, root, "generate", "--model", mm, "--n", "4", "--out", out); code != 0 {
		t.Fatalf("generate without --prompt: exit %d: %s", code, stderr)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	g, err := png.Decode(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if b := g.Bounds(); g.ColorModel() == color.GrayModel || b.Dx() != 4*16+5*2 || b.Dy() != 16+2*2 {
		t.Errorf("grid %T of %v, want RGB 4×1 cells of 16 pixels", g, b)
	}

	// One image is written as itself, in colour, and read back as such.
	one := filepath.Join(work, "one.png")
	if code, _, stderr := cli(t, root, "generate", "--model", mm, "--n", "1", "--out", one); code != 0 {
		t.Fatalf("generate --n 1: exit %d: %s", code, stderr)
	}
	if code, stdout, stderr := cli(t, root, "caption", "--model", mm, one); code != 0 || !strings.HasPrefix(stdout, one+": ") {
		t.Fatalf("caption of a colour image: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	code, stdout, stderr := cli(t, root, "eval", "--task", "t2i", "--model", mm, "--json")
	if code != 0 {
		t.Fatalf("eval --task t2i: exit %d: %s", code, stderr)
	}
	var rep struct {
		Generated int     `json:"generated"`
		Real      int     `json:"real"`
		FD        float64 `json:"fd"`
		FDTrain   float64 `json:"fd_train"`
		Precision float64 `json:"precision"`
		Groups    []struct {
			Group   string `json:"group"`
			Prompts int    `json:"prompts"`
		} `json:"groups"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("eval --json: %v: %q", err, stdout)
	}
	t.Logf("eval: %d drawn against %d held-out pictures, FD %.3f (training pictures %.3f), precision %.3f", rep.Generated, rep.Real, rep.FD, rep.FDTrain, rep.Precision)
	if rep.Real < 4 || rep.Generated != rep.Real || math.IsNaN(rep.FD) || !(rep.FDTrain >= 0) || len(rep.Groups) != 1 || rep.Groups[0].Group != "unconditional" {
		t.Errorf("eval report %+v", rep)
	}

	bad := filepath.Join(work, "x")
	badPNG := bad + ".png" // an image output is named as one, or refused for that first
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"train", "--task", "multimodal", "--data", dir, "--out", bad}, "no tokenizer is shipped for the folder"},
		{[]string{"train", "--task", "multimodal", "--data", dir, "--vae", vaeDir, "--mix-vqa", "1", "--out", bad}, "has no questions"},
		{[]string{"train", "--task", "multimodal", "--data", filepath.Join(work, "none"), "--out", bad}, "no such file or directory"},
		{[]string{"generate", "--model", mm, "--prompt", "", "--out", badPNG}, "--prompt is empty"},
		{[]string{"eval", "--task", "vqa", "--model", mm}, "scored on t2i"},
		{[]string{"eval", "--task", "t2i", "--model", mm, "--judge", vaeDir}, "are for a model of the emoji"},
		// The shipped canvas model learnt captions: it needs one.
		{[]string{"generate", "--out", badPNG}, "no --prompt"},
	} {
		code, _, stderr := cli(t, root, c.args...)
		expectOneLineError(t, code, stderr, c.want)
	}
	for _, out := range []string{bad, badPNG} {
		if _, err := os.Stat(out); err == nil {
			t.Errorf("a refused command created its output %s", out)
		}
	}
}
