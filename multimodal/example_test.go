package multimodal_test

import (
	"context"
	"fmt"
	"log"
	"strings"

	"github.com/latentlm/latentlm/backend"
	"github.com/latentlm/latentlm/canvas"
	"github.com/latentlm/latentlm/multimodal"
)

// Ask a question about a real test canvas with the shipped multimodal model.
func Example() {
	b, err := backend.Open(backend.Resolve(""))
	if err != nil {
		log.Fatal(err)
	}
	opts := multimodal.DefaultOptions()
	opts.TextTemperature = 0 // the most likely answer
	m, err := multimodal.Load(b, "../weights/multimodal-mnist", "", opts)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	test, err := canvas.Load("mnist-canvas", "test")
	if err != nil {
		log.Fatal(err)
	}
	img := make([]float32, test.Height*test.Width)
	test.Float32(0, img)
	scene, _ := canvas.SceneOf(int(test.Labels[0]))
	answers, err := m.Ask(context.Background(), [][]float32{img}, "how many digits are there?")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(canvas.MNIST.Caption(scene))
	fmt.Println(strings.TrimSpace(answers[0]))
	// Output:
	// the digit 4 is at the bottom right of the image
	// one
}
