package transfusion_test

import (
	"fmt"
	"log"
	"math/rand/v2"

	"github.com/latentlm/latentlm/dit"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/multimodal"
	"github.com/latentlm/latentlm/text"
	"github.com/latentlm/latentlm/transfusion"
)

// Transfusion's attention mask for "<|endoftext|> <BOL> z₀ z₁ z₂ <EOL> a b":
// the last position each item may attend to. Tokens are causal, but the
// three latents of the image all see up to the image's last latent, so an
// image attends to itself in both directions.
func ExampleVisible() {
	isLatent := []bool{false, false, true, true, true, false, false, false}
	fmt.Println(transfusion.Visible(isLatent, 0))
	// The same sequence after 10 items already in the KV cache.
	fmt.Println(transfusion.Visible(isLatent, 10))
	// Output:
	// [0 1 4 4 4 5 6 7]
	// [10 11 14 14 14 15 16 17]
}

// The Transfusion model of the MNIST LatentLM: the same backbone and
// vocabulary, differing only in how images are handled, so that the
// comparison measures that difference alone.
func ExampleFromLM() {
	c := transfusion.FromLM(lm.DefaultConfig())
	fmt.Printf("dim %d, depth %d, heads %d/%d, %d latent channels, target %v\n",
		c.Dim, c.Depth, c.Heads, c.KVHeads, c.Latent, c.Target)
	fmt.Println("valid:", c.Validate() == nil)
	// Output:
	// dim 128, depth 4, heads 4/4, 8 latent channels, target eps
	// valid: true
}

// The cost of drawing one MNIST digit (a class token and <BOL> before 49
// latents) with 20 solver steps under guidance, for the three architectures
// of the comparison. Transfusion pays its Transformer at every step, as DiT
// does, over the image block with the prefix cached; at this size the two
// cost about the same, and LatentLM, which runs its backbone once per latent
// and only its head per step, the least.
func ExampleConfig_SampleFLOPs() {
	l := lm.DefaultConfig()
	const items, steps = 49, 20
	fmt.Printf("LatentLM:    %.2f GFLOPs\n", l.SampleFLOPs(items, steps)/1e9)
	fmt.Printf("Transfusion: %.2f GFLOPs\n", transfusion.FromLM(l).SampleFLOPs(2, items, steps)/1e9)
	fmt.Printf("DiT:         %.2f GFLOPs\n", dit.FromLM(l, 7).SampleFLOPs(steps)/1e9)
	// Output:
	// LatentLM:    2.52 GFLOPs
	// Transfusion: 3.37 GFLOPs
	// DiT:         3.20 GFLOPs
}

// Lay out a training batch of a caption → image row and an image → caption
// row. Each image is noised at one timestep, shared by all its latents, and
// trained to denoise: the one that ends its row at any t, the one read as
// context at t < 500 (PaperContextNoise), so that the caption after it reads
// a mostly intact image, as in use. (A context noise of 0 gives that image
// clean, with no diffusion loss.) The caption is two tokens and an image
// three latents, so the rows are 9 items, padded to 10.
func ExampleNewLayout() {
	corpus := []string{"a three", "a seven", "a three and a seven"}
	tok, err := text.Train(corpus, 280)
	if err != nil {
		log.Fatal(err)
	}
	f := multimodal.Format{Vocab: lm.Vocab{Extra: tok.Size()}, EOT: tok.EOT(), Items: 3, Channels: 2}
	latents := []float32{1, 2, 3, 4, 5, 6}

	var t2i, i2t multimodal.Row
	t2i.EOT(f)
	t2i.Text(f, tok.Encode("a three"))
	t2i.Image(f, latents, nil)
	t2i.EOT(f)
	i2t.EOT(f)
	i2t.Image(f, latents, nil)
	i2t.Text(f, tok.Encode("a three"))
	i2t.EOT(f)

	const l = 10
	batch, err := f.Pack([]multimodal.Row{t2i, i2t}, l)
	if err != nil {
		log.Fatal(err)
	}
	lay, err := transfusion.NewLayout(batch, f, 1000, transfusion.PaperContextNoise, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		log.Fatal(err)
	}
	for r, name := range []string{"caption → image", "image → caption"} {
		row := func(v []float32) []float32 { return v[r*l : (r+1)*l] }
		fmt.Println(name)
		fmt.Println("  latent: ", row(batch.IsLatent))
		fmt.Println("  noisy:  ", row(lay.Noisy))
		fmt.Println("  visible:", row(lay.Visible))
	}
	t := lay.Timesteps[4:7] // the caption → image row's latents
	fmt.Println("one timestep for the whole image:", t[0] == t[1] && t[1] == t[2])
	c := lay.Timesteps[l+2 : l+5] // the image → caption row's latents
	fmt.Println("context image at one t below 500:", c[0] == c[1] && c[1] == c[2] && c[0] < 500)
	// Output:
	// caption → image
	//   latent:  [0 0 0 0 1 1 1 0 0 0]
	//   noisy:   [0 0 0 0 1 1 1 0 0 0]
	//   visible: [0 1 2 3 6 6 6 7 8 9]
	// image → caption
	//   latent:  [0 0 1 1 1 0 0 0 0 0]
	//   noisy:   [0 0 1 1 1 0 0 0 0 0]
	//   visible: [0 1 4 4 4 5 6 7 8 9]
	// one timestep for the whole image: true
	// context image at one t below 500: true
}
