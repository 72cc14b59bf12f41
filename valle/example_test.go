package valle_test

import (
	"context"
	"fmt"
	"log"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/backend"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/speechvae"
	"github.com/latentlm/latentlm/tts"
	"github.com/latentlm/latentlm/valle"
)

// tinyConfig is a baseline over a codec of 3 codebooks of 8 codes, with a
// one-block AR and NAR of width 32: small enough to build in an example.
func tinyConfig() valle.Config {
	return valle.NewConfig(speechvae.DefaultConfig().RVQ(3, 8), 32, 1, 2, 48)
}

// The baseline for a residual-VQ codec of 4 codebooks of 256 codes: its
// vocabulary is the characters followed by the first codebook's codes, and
// its frame rate is the codec's.
func ExampleNewConfig() {
	codec := speechvae.DefaultConfig().RVQ(4, 256)
	cfg := valle.NewConfig(codec, 256, 6, 4, 512)
	fmt.Println(cfg.Describe())
	fmt.Println("vocabulary extra ids:", cfg.LM.Vocab.Extra)
	fmt.Println("valid:", cfg.Validate() == nil)
	// Output:
	// VALL-E-style baseline: AR d256×6 and NAR d256×6 over 4 codebooks of 256 at 25.0 Hz, reading characters
	// vocabulary extra ids: 291
	// valid: true
}

// A baseline that reads phonemes, as LatentLM's weights/tts-sentences
// does: each word spelt by the installed pronouncing dictionary, one
// vocabulary entry per phoneme before the codes.
func ExampleConfig_ReadingAs() {
	cfg, err := tinyConfig().ReadingAs(tts.ReadPhonemes)
	if err != nil {
		log.Fatal(err)
	}
	f, err := cfg.Format()
	if err != nil {
		log.Fatal(err)
	}
	ids, err := f.Text.Encode("Seven, two!")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.Describe())
	fmt.Printf("%q is %d phoneme ids\n", f.Text.Decode(ids), len(ids))
	fmt.Println("the first code's id:", f.Code(0))
	// Output:
	// VALL-E-style baseline: AR d32×1 and NAR d32×1 over 3 codebooks of 8 at 25.0 Hz, reading phonemes
	// "sɛvʌn, tu!" is 10 phoneme ids
	// the first code's id: 49
}

// How one utterance is laid out for the autoregressive model: <BOL>, the
// voice prompt's first codes, <EOL>, the text, <BOL>, the speech's first
// codes and a final <EOL>. Only the speech codes and that <EOL> are targets:
// the prompt and text are given.
func ExampleFormat_ARRow() {
	f, err := tinyConfig().Format()
	if err != nil {
		log.Fatal(err)
	}
	text, err := f.Text.Encode("hi")
	if err != nil {
		log.Fatal(err)
	}
	u := valle.Utterance{
		Text:   text,
		Prompt: [][]int32{{1, 2, 3}, {4, 5, 6}},
		Speech: [][]int32{{7, 0, 1}, {0, 2, 2}, {3, 3, 3}},
	}
	if err := f.Check(u); err != nil {
		log.Fatal(err)
	}
	ids, target := f.ARRow(u)
	fmt.Println("ids:   ", ids)
	fmt.Println("target:", target)
	fmt.Println("prefix:", valle.PrefixLen(len(u.Prompt), len(u.Text)), "items of", valle.RowLen(len(u.Prompt), len(u.Text), len(u.Speech)))
	code, ok := f.CodeOf(ids[len(ids)-2])
	fmt.Println("last frame's first code:", code, ok)
	// Output:
	// ids:    [1 39 42 2 11 12 1 45 38 41 2]
	// target: [false false false false false false false true true true true]
	// prefix: 7 items of 11
	// last frame's first code: 3 true
}

// Decoding cost is the comparison with LatentLM: T+1 AR steps for T frames
// and the <EOL> decision, plus one NAR pass per codebook after the first.
// Two seconds of speech at 25 Hz with 4 codebooks take 27 steps a second.
func ExampleSpeech_StepsPerSecond() {
	s := valle.Speech{ARSteps: 51, NARPasses: 3, Seconds: 2, Stopped: true}
	fmt.Println(s.StepsPerSecond())
	// Output: 27
}

// Speak text with an untrained baseline, greedily and cut at four frames:
// the AR draws the first codebook frame by frame until it says <EOL> or
// MaxSeconds cuts it, then the NAR fills the other codebooks in one pass
// each. What an untrained model says is noise, so only the shape of the
// result is shown.
func ExampleModel_Generate() {
	b, err := backend.Open(backend.Resolve(""))
	if err != nil {
		log.Fatal(err)
	}
	cfg := tinyConfig()
	store := model.NewStore()
	if err := nn.Init(store, cfg.Specs(), 1, dtypes.Float32); err != nil {
		log.Fatal(err)
	}
	m, err := valle.New(b, cfg, store)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	text, err := m.Format.Text.Encode("hello")
	if err != nil {
		log.Fatal(err)
	}
	prompt := [][]int32{{1, 2, 3}, {4, 5, 6}}
	o := valle.DefaultOptions()
	o.Temperature, o.MaxSeconds = 0, 4/cfg.FrameRate
	s, err := m.Generate(context.Background(), text, prompt, o)
	if err != nil {
		log.Fatal(err)
	}
	full := true
	for _, frame := range s.Codes {
		full = full && len(frame) == cfg.Codebooks
	}
	eol := 0
	if s.Stopped {
		eol = 1
	}
	fmt.Println("at most 4 frames:", len(s.Codes) <= 4)
	fmt.Println("every frame has a code per codebook:", full)
	fmt.Println("one AR step per frame, one more for <EOL>:", s.ARSteps == len(s.Codes)+eol)
	// Output:
	// at most 4 frames: true
	// every frame has a code per codebook: true
	// one AR step per frame, one more for <EOL>: true
}
