package latentlm_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/latentlm/latentlm"
)

// Load the shipped MNIST weights (the path is relative to the repository
// root; ShippedWeights finds them from anywhere inside it).
func ExampleLoad() {
	g, err := latentlm.Load("weights/latentlm-mnist", latentlm.WithBackend("onnx"))
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close()
	fmt.Println("kind:", g.Kind())
	fmt.Println("classes:", g.Classes())
	fmt.Printf("images: %d×%d\n", g.ImageSize(), g.ImageSize())
	fmt.Println("parameters:", g.Params())
	// Output:
	// kind: latentlm
	// classes: 10
	// images: 28×28
	// parameters: 1374464
}

// Generate four threes and write them as a PNG grid.
func ExampleGenerator_Generate() {
	g, err := latentlm.Load("weights/latentlm-mnist", latentlm.WithBackend("onnx"))
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close()
	imgs, err := g.Generate(context.Background(), latentlm.Request{Class: 3, N: 4}, latentlm.DefaultSampleOptions())
	if err != nil {
		log.Fatal(err)
	}
	for _, im := range imgs {
		fmt.Printf("class %d, %d×%d, %d pixels\n", im.Class, im.Size, im.Size, len(im.Pixels))
	}
	dir, err := os.MkdirTemp("", "latentlm-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := latentlm.WriteGrid(filepath.Join(dir, "threes.png"), imgs, 4, 2); err != nil {
		log.Fatal(err)
	}
	// Output:
	// class 3, 28×28, 784 pixels
	// class 3, 28×28, 784 pixels
	// class 3, 28×28, 784 pixels
	// class 3, 28×28, 784 pixels
}

// The zero SampleOptions is rejected: start from DefaultSampleOptions.
func ExampleSampleOptions_Validate() {
	fmt.Println(latentlm.SampleOptions{}.Validate() != nil)
	fmt.Println(latentlm.DefaultSampleOptions())
	fmt.Println(latentlm.DefaultSampleOptions().Validate())
	// Output:
	// true
	// {20 4 1 1}
	// <nil>
}
