package speechvae_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/latentlm/latentlm/speech"
	"github.com/latentlm/latentlm/speechvae"
)

// A corpus is what a text-to-speech run trains on: each utterance's
// normalised latent frames, with the tokenizer that made them. Here two
// utterances of two frames each (a real corpus comes from EncodeCorpus,
// or `latentlm speech-vae encode-data`) are saved as halves and read back.
func ExampleLoadCorpus() {
	cfg := speechvae.DefaultConfig()
	cfg.Channels = 2
	c := &speechvae.Corpus{
		Tokenizer: speechvae.CorpusTokenizer{Path: "weights/speech-vae", SHA256: "…", Config: cfg,
			Mean: []float32{0, 0}, Std: []float32{1, 1}},
		Data: ".deps/speech", Split: speech.SplitTrain,
		Utterances: []speech.Utterance{
			{File: "wav/flite-awb/numbers-train-0000.wav", Split: speech.SplitTrain, Set: speech.SetNumbers, Voice: "flite-awb", Seconds: 0.08, Text: "one"},
			{File: "wav/flite-slt/numbers-train-0000.wav", Split: speech.SplitTrain, Set: speech.SetNumbers, Voice: "flite-slt", Seconds: 0.08, Text: "one"},
		},
		Frames: [][][]float32{{{0.5, -1}, {0.25, 2}}, {{1.0 / 3, 0}, {-0.75, 1}}},
	}
	dir, err := os.MkdirTemp("", "corpus")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "numbers-train.safetensors")
	if err := c.Save(path); err != nil {
		log.Fatal(err)
	}
	back, err := speechvae.LoadCorpus(path)
	if err != nil {
		log.Fatal(err)
	}
	for i, u := range back.Utterances {
		fmt.Printf("%s %q: %d frames, first %v\n", u.Voice, u.Text, len(back.Frames[i]), back.Frames[i][0])
	}
	fmt.Println("encoded by", back.Tokenizer.Path, "at", back.Tokenizer.Config.FrameRate(), "Hz")
	// Output:
	// flite-awb "one": 2 frames, first [0.5 -1]
	// flite-slt "one": 2 frames, first [0.33325195 0]
	// encoded by weights/speech-vae at 25 Hz
}
