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

// Draw emoji from a caption with the shipped emoji model: colour images of
// the image tokenizer's size, height × width × 3 values in [0, 1].
func ExampleModel_Images() {
	b, err := backend.Open(backend.Resolve(""))
	if err != nil {
		log.Fatal(err)
	}
	m, err := multimodal.Load(b, "../weights/latentlm-emoji", "", multimodal.DefaultOptions())
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	imgs, err := m.Images(context.Background(), "thumbs up sign, dark skin tone", 2)
	if err != nil {
		log.Fatal(err)
	}
	size := m.Image.Config.ImageSize
	fmt.Printf("%d images of %d×%d pixels, %d values each\n", len(imgs), size, size, len(imgs[0]))
	// Output:
	// 2 images of 32×32 pixels, 3072 values each
}
