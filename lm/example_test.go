package lm_test

import (
	"fmt"
	"log"
	"math/rand/v2"

	"github.com/latentlm/latentlm/backend"
	"github.com/latentlm/latentlm/lm"
)

// digit is a class-conditional image as a Sequence: its class prefix,
// handed over as a block (shorter than lm.DefaultMinBlock, so the batch
// steps it in, one item a tick: the first latent comes on the second
// tick), then its latents, each drawn from its own noise with
// classifier-free guidance.
type digit struct {
	prefix, guide []lm.Item
	rng           *rand.Rand
	channels, n   int
	latents       [][]float32
}

// Block hands the batch the prefix at once.
func (d *digit) Block() (items, guide []lm.Item) {
	if len(d.latents) > 0 || d.prefix == nil {
		return nil, nil
	}
	items, guide, d.prefix = d.prefix, d.guide, nil
	return items, guide
}

// Next is the latent drawn last (the prefix went in as a block).
func (d *digit) Next() lm.RowItem {
	z := lm.LatentItem(d.latents[len(d.latents)-1])
	return lm.RowItem{Item: z, Guide: z}
}

// Want asks for the next latent, from the digit's own noise.
func (d *digit) Want() lm.Want {
	noise := make([]float32, d.channels)
	for i := range noise {
		noise[i] = float32(d.rng.NormFloat64())
	}
	return lm.Want{Latent: true, Noise: noise, Scale: 3, Temperature: 1}
}

// Take keeps the latent; the digit is done with its last.
func (d *digit) Take(_, latent []float32) (bool, error) {
	d.latents = append(d.latents, latent)
	return len(d.latents) == d.n, nil
}

// Draw two digits with the shipped class-conditional model in one
// continuous batch, the second joining while the first is half drawn.
func ExampleBatch() {
	b, err := backend.Open(backend.Resolve(""))
	if err != nil {
		log.Fatal(err)
	}
	cfg, store, tok, err := lm.Load("../weights/latentlm-mnist")
	if err != nil {
		log.Fatal(err)
	}
	e, err := lm.NewEngine(b, store, cfg, lm.SampleOptions{Steps: 10, CFG: 1, Temperature: 1, Seed: 1})
	if err != nil {
		log.Fatal(err)
	}
	defer e.Close()
	batch, err := e.NewBatch(8, true)
	if err != nil {
		log.Fatal(err)
	}
	defer batch.Close()
	newDigit := func(class int, seed uint64) *digit {
		prefix, guide, err := cfg.ClassPrefix(class)
		if err != nil {
			log.Fatal(err)
		}
		return &digit{prefix: prefix, guide: guide, rng: rand.New(rand.NewPCG(seed, 0)), channels: cfg.Latent, n: tok.Items}
	}
	seven, three := newDigit(7, 1), newDigit(3, 2)
	if err := batch.Add(seven); err != nil {
		log.Fatal(err)
	}
	for tick := 0; batch.Len() > 0; tick++ {
		if tick == tok.Items/2 {
			if err := batch.Add(three); err != nil {
				log.Fatal(err)
			}
		}
		ended, err := batch.Step()
		if err != nil {
			log.Fatal(err)
		}
		for _, x := range ended {
			fmt.Printf("tick %d: a digit of %d latents done\n", tick, len(x.Seq.(*digit).latents))
		}
	}
	// Output:
	// tick 49: a digit of 49 latents done
	// tick 73: a digit of 49 latents done
}
