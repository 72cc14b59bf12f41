package speechvae

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latentlm/latentlm/safetensors"
	"github.com/latentlm/latentlm/speech"
	"github.com/latentlm/latentlm/vae"
)

// TestCorpusRoundTrip: a corpus encoded from clips, saved and loaded,
// gives back every utterance, the tokenizer's record and statistics
// exactly, and each frame within the half-precision rounding of what
// Encode returns; a damaged file is refused with its name and problem.
func TestCorpusRoundTrip(t *testing.T) {
	m := newModel(t, tinyConfig(Spectrum, vae.Sigma))
	for k := range m.Std {
		m.Mean[k], m.Std[k] = 0.1*float32(k), 0.5+0.25*float32(k)
	}
	utts := []speech.Utterance{
		{File: "wav/a/numbers-train-0000.wav", Split: "train", Set: "numbers", Voice: "a", Seconds: 0.19, Text: "one"},
		{File: "wav/b/numbers-train-0000.wav", Split: "train", Set: "numbers", Voice: "b", Seconds: 0.1, Text: "two"},
	}
	clips := [][]float32{voiced(3000, 200), voiced(1600, 150)}
	c, err := EncodeCorpus(context.Background(), m, "tok", "abc123", "cache", "train", utts, clips, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "corpus.safetensors")
	if err := c.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := LoadCorpus(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.Tokenizer.Path != "tok" || back.Tokenizer.SHA256 != "abc123" || back.Tokenizer.Config != m.Config ||
		back.Data != "cache" || back.Split != "train" || len(back.Utterances) != 2 || back.Utterances[1] != utts[1] {
		t.Fatalf("record: %+v", back)
	}
	for k := range m.Std {
		if back.Tokenizer.Mean[k] != m.Mean[k] || back.Tokenizer.Std[k] != m.Std[k] {
			t.Fatalf("statistics of channel %d changed", k)
		}
	}
	for i, clip := range clips {
		z, err := m.Encode(clip, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(back.Frames[i]) != len(z) || len(z) != m.Config.Latents(len(clip)) {
			t.Fatalf("utterance %d: %d frames, want %d", i, len(back.Frames[i]), len(z))
		}
		for j := range z {
			for k, v := range z[j] {
				got := back.Frames[i][j][k]
				if d := math.Abs(float64(got - v)); d > math.Abs(float64(v))/2048+math.Ldexp(1, -25) {
					t.Fatalf("utterance %d frame %d channel %d: %v came back as %v", i, j, k, v, got)
				}
			}
		}
	}

	// Damage: a NaN frame, a short offsets list, another kind of file.
	nan := *c
	nan.Frames = [][][]float32{c.Frames[0], {append([]float32(nil), c.Frames[1][0]...)}}
	nan.Frames[1][0][2] = float32(math.Inf(1))
	if err := nan.Save(filepath.Join(dir, "inf.safetensors")); err == nil || !strings.Contains(err.Error(), "half-precision") {
		t.Errorf("saving an infinite frame: %v", err)
	}
	f, err := safetensors.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(ts []safetensors.Tensor, md map[string]string) ([]safetensors.Tensor, map[string]string){
		"kind": func(ts []safetensors.Tensor, md map[string]string) ([]safetensors.Tensor, map[string]string) {
			md["kind"] = "latents"
			return ts, md
		},
		"offsets": func(ts []safetensors.Tensor, md map[string]string) ([]safetensors.Tensor, map[string]string) {
			for i := range ts {
				if ts[i].Name == corpusOffsets {
					ts[i] = safetensors.FromInt64(corpusOffsets, []int{2}, []int64{0, 3})
				}
			}
			return ts, md
		},
		"frames past": func(ts []safetensors.Tensor, md map[string]string) ([]safetensors.Tensor, map[string]string) {
			total := int64(len(c.Frames[0]) + len(c.Frames[1]))
			for i := range ts {
				if ts[i].Name == corpusOffsets { // the first utterance runs past the end
					ts[i] = safetensors.FromInt64(corpusOffsets, []int{3}, []int64{0, total + 5, total})
				}
			}
			return ts, md
		},
		"NaN": func(ts []safetensors.Tensor, md map[string]string) ([]safetensors.Tensor, map[string]string) {
			for i := range ts {
				if ts[i].Name == corpusFrames {
					ts[i].Data = append([]byte(nil), ts[i].Data...)
					ts[i].Data[2*m.Config.Channels+1] = 0x7e // frame 1, channel 0: a NaN
					ts[i].Data[2*m.Config.Channels] = 0x00
				}
			}
			return ts, md
		},
		"utterance list": func(ts []safetensors.Tensor, md map[string]string) ([]safetensors.Tensor, map[string]string) {
			md["utterances"] = "[{"
			return ts, md
		},
	}
	for name, change := range cases {
		md := map[string]string{}
		for k, v := range f.Metadata {
			md[k] = v
		}
		ts, md := change(append([]safetensors.Tensor(nil), f.Tensors...), md)
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".safetensors")
		if err := safetensors.Save(p, ts, md); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadCorpus(p); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s damaged: %v", name, err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "junk"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCorpus(filepath.Join(dir, "junk")); err == nil {
		t.Error("junk accepted")
	}
}
