package evaluate_test

import (
	"fmt"
	"log"

	"github.com/latentlm/latentlm/backend"
	"github.com/latentlm/latentlm/data"
	"github.com/latentlm/latentlm/evaluate"
)

// Score real MNIST test images with the shipped classifier, as the
// reference row "test" of `latentlm eval --reference test --n 500`. A model
// row comes the same way from Context.Generated, and one point of a sweep
// from Context.SweepPoint.
func Example() {
	b, err := backend.Open("onnx")
	if err != nil {
		log.Fatal(err)
	}
	defer b.Finalize()
	ec, err := evaluate.NewContext(b, "", "mnist") // "": the shipped classifier
	if err != nil {
		log.Fatal(err)
	}
	// The test statistics, and 500 class-balanced test images as the k-NN
	// reference; every row then scores 500 images.
	if err := ec.Prepare(500); err != nil {
		log.Fatal(err)
	}
	real, err := ec.Reference("test", "", 1)
	if err != nil {
		log.Fatal(err)
	}
	noise, err := ec.Reference("noise", "", 1)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %d images, k = %d\n", real.Source, real.N, real.K)
	fmt.Println("accuracy-to-class ≥ 97%:", *real.Accuracy >= 0.97)
	fmt.Println("FD under a tenth of noise's:", real.FD < noise.FD/10)
	// Output:
	// reference:test: 500 images, k = 3
	// accuracy-to-class ≥ 97%: true
	// FD under a tenth of noise's: true
}

// BalancedIndices picks images of class i%10 for the i-th, in data order;
// skip 1 gives the next, disjoint, set.
func ExampleBalancedIndices() {
	d := &data.Dataset{Name: "toy", Split: "test", N: 40, Height: 1, Width: 1, Images: make([]uint8, 40)}
	for i := range 40 {
		d.Labels = append(d.Labels, uint8(i%10))
	}
	first, _ := evaluate.BalancedIndices(d, 10, 0)
	next, _ := evaluate.BalancedIndices(d, 10, 1)
	fmt.Println(first)
	fmt.Println(next)
	// Output:
	// [0 1 2 3 4 5 6 7 8 9]
	// [10 11 12 13 14 15 16 17 18 19]
}
