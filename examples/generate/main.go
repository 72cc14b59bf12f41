// Command generate writes a grid of digits drawn by the shipped LatentLM
// MNIST weights, one of each class: run it anywhere inside the repository
// (after `make setup`) with
//
//	GOEXPERIMENT=simd go run ./examples/generate -out digits.png
package main

import (
	"context"
	"flag"
	"fmt"
	"log"

	"github.com/latentlm/latentlm"
)

func main() {
	out := flag.String("out", "digits.png", "output PNG grid")
	flag.Parse()
	dir, err := latentlm.ShippedWeights("latentlm-mnist")
	check(err)
	g, err := latentlm.Load(dir)
	check(err)
	defer g.Close()
	req := latentlm.Request{Classes: []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}}
	imgs, err := g.Generate(context.Background(), req, latentlm.DefaultSampleOptions())
	check(err)
	check(latentlm.WriteGrid(*out, imgs, 10, 2))
	fmt.Printf("wrote %s: %d digits by a %s model of %d parameters\n", *out, len(imgs), g.Kind(), g.Params())
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
