package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"image"
	"image/png"
	"sort"

	"github.com/latentlm/latentlm/canvas"
	"github.com/latentlm/latentlm/recipe"
	"github.com/latentlm/latentlm/server"
)

// benchCanvases are the inputs of `bench serve --task t2i|captions`: the
// captions of the first n canvases of the MNIST canvas test split, and the
// canvases as base64 PNGs (size×size, the multimodal model's).
func benchCanvases(size, n int) (prompts, images []string, err error) {
	ds, err := recipe.LoadSplit("mnist-canvas", "test", n)
	if err != nil {
		return nil, nil, err
	}
	if ds.Height != size || ds.Width != size {
		return nil, nil, fmt.Errorf("the model takes %d×%d images, the canvases are %d×%d", size, size, ds.Height, ds.Width)
	}
	names, err := canvas.NamesOf("mnist-canvas")
	if err != nil {
		return nil, nil, err
	}
	per := size * size
	for i := range min(n, ds.N) {
		s, err := canvas.SceneOf(int(ds.Labels[i]))
		if err != nil {
			return nil, nil, err
		}
		prompts = append(prompts, names.Caption(s))
		img := &image.Gray{Pix: ds.Images[i*per : (i+1)*per], Stride: size, Rect: image.Rect(0, 0, size, size)}
		var b bytes.Buffer
		if err := png.Encode(&b, img); err != nil {
			return nil, nil, err
		}
		images = append(images, base64.StdEncoding.EncodeToString(b.Bytes()))
	}
	return prompts, images, nil
}

// benchSpeech are the inputs of `bench serve --task speech`: the texts of
// the spoken-numbers test split and the names of the voices, which it
// gives the model.
func benchSpeech(dataDir string, m *server.Model) (texts, voices []string, err error) {
	dir, err := speechDir(dataDir)
	if err != nil {
		return nil, nil, err
	}
	if m.Voices, err = server.LoadVoices(dir); err != nil {
		return nil, nil, err
	}
	for _, v := range m.Voices {
		voices = append(voices, v.Name)
	}
	utts, _, err := recipe.LoadSpeech(dir, "test")
	if err != nil {
		return nil, nil, err
	}
	seen := map[string]bool{}
	for _, u := range utts {
		if u.Set == "numbers" && !seen[u.Text] {
			seen[u.Text] = true
			texts = append(texts, u.Text)
		}
	}
	if len(texts) == 0 {
		return nil, nil, fmt.Errorf("%s: no spoken-numbers texts in the test split", dir)
	}
	sort.Strings(texts)
	return texts, voices, nil
}
