package tts_test

import (
	"context"
	"fmt"
	"log"
	"path/filepath"

	"github.com/latentlm/latentlm"
	"github.com/latentlm/latentlm/backend"
	"github.com/latentlm/latentlm/tts"
	"github.com/latentlm/latentlm/wav"
)

// Say a spoken number in the voice of a recording with the shipped
// weights/tts: the prompt is flite-awb saying a held-out text, from the
// listening page in docs/listen. Each 25 Hz latent frame is drawn by five
// DPM-Solver++ steps of the diffusion head with guidance 3, one backbone
// step a frame through the KV cache, until the model itself predicts
// <EOL>; with a stream function the audio comes in chunks as the frames
// do.
func ExampleModel_Speak() {
	dir, err := latentlm.ShippedWeights("tts")
	if err != nil {
		log.Fatal(err)
	}
	prompt, err := wav.Read(filepath.Join(dir, "..", "..", "docs", "listen", "01-original.wav"))
	if err != nil {
		log.Fatal(err)
	}
	b, err := backend.Open("onnx")
	if err != nil {
		log.Fatal(err)
	}
	opts := tts.DefaultOptions()
	opts.Batch = 1
	m, err := tts.Load(b, dir, "", opts) // with the speech tokenizer the checkpoint records
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	chunks := 0
	s, err := m.Speak(context.Background(), "four hundred twelve", prompt.Samples, func([]float32) error {
		chunks++
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	seconds := float64(len(s.Samples)) / tts.Rate
	fmt.Println("frames a second:", m.Format.FrameRate)
	fmt.Println("ended by the model's <EOL>:", s.Stopped)
	fmt.Println("between 0.8 and 2.5 s, as flite says it:", seconds > 0.8 && seconds < 2.5)
	fmt.Println("audio in more than one chunk:", chunks > 1)
	// Output:
	// frames a second: 25
	// ended by the model's <EOL>: true
	// between 0.8 and 2.5 s, as flite says it: true
	// audio in more than one chunk: true
}

// Stacking two frames of the 25 Hz × 32-channel speech tokenizer gives a
// model 12.5 frames a second of 64 values: half the decoding steps for the
// same audio.
func ExampleFormat_Stacked() {
	f, err := tts.NewFormat(tts.Alphabet, 2, 25)
	if err != nil {
		log.Fatal(err)
	}
	if f, err = f.Stacked(2); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d values a frame at %g Hz\n", f.Channels, f.FrameRate)
	tokenizer := [][]float32{{1, 2}, {3, 4}, {5, 6}}
	model := f.StackFrames(tokenizer)
	fmt.Println(model)
	fmt.Println(f.UnstackFrames(model))
	// Output:
	// 4 values a frame at 12.5 Hz
	// [[1 2 3 4] [5 6 5 6]]
	// [[1 2] [3 4] [5 6] [5 6]]
}
