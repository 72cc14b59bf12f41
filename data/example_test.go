package data_test

import (
	"fmt"
	"log"

	"github.com/latentlm/latentlm/data"
)

// Load the MNIST test split that setup installed and look at one digit. The
// split stays in memory as bytes; Float32 scales an image to the [0, 1] the
// models are trained on.
func ExampleLoad() {
	d, err := data.Load("mnist", "test")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s %s: %d images of %d×%d\n", d.Name, d.Split, d.N, d.Height, d.Width)
	fmt.Println("first label:", d.Labels[0])

	img := make([]float32, d.Height*d.Width)
	d.Float32(0, img)
	var ink int
	for _, v := range img {
		if v > 0.5 {
			ink++
		}
	}
	fmt.Println("pixels above 0.5:", ink, "of", len(img))
	// Output:
	// mnist test: 10000 images of 28×28
	// first label: 7
	// pixels above 0.5: 71 of 784
}

// Name the Fashion-MNIST labels for captions: the labels are the indices
// into FashionClasses. Setup builds this split with its classes interleaved
// (see scripts/fashionidx), so the first test images are one of each class.
func ExampleFashionClasses() {
	d, err := data.Load("fashion", "test")
	if err != nil {
		log.Fatal(err)
	}
	for _, l := range d.Labels[:3] {
		fmt.Println(l, data.FashionClasses[l])
	}
	// Output:
	// 0 T-shirt/top
	// 1 Trouser
	// 2 Pullover
}

// Gather a batch of a small subset as the flat slices tensors are built
// from: batch×Height×Width pixels in [0, 1] and one label per image.
func ExampleDataset_Batch() {
	d, err := data.Load("mnist", "test")
	if err != nil {
		log.Fatal(err)
	}
	small := d.Subset([]int{0, 1, 2, 3})
	images, labels := small.Batch([]int{3, 1})
	fmt.Println(small.N, "images in the subset")
	fmt.Println(len(images), "pixels, labels", labels)
	// Output:
	// 4 images in the subset
	// 1568 pixels, labels [0 2]
}

// The batches of training step 0, 1, … depend only on their arguments, so a
// run resumed at step 2 sees the batch it would have seen without stopping.
// With 10 items in batches of 4, an epoch is 2 batches (the remainder is
// dropped) and step 2 starts the second epoch, in a new order.
func ExampleBatchIndices() {
	for step := range int64(3) {
		fmt.Println(step, data.BatchIndices(10, 4, step, 1))
	}
	// Output:
	// 0 [4 8 1 2]
	// 1 [3 7 0 5]
	// 2 [8 4 5 7]
}

// One evaluation pass over every item, in seeded order: Batches keeps the
// short last batch, so every item is seen once. Training sets dropLast
// instead, so that every step has the same shape.
func ExampleBatches() {
	seen := map[int]bool{}
	for b := range data.Batches(7, 3, 1, false) {
		fmt.Println(len(b), "items")
		for _, i := range b {
			seen[i] = true
		}
	}
	fmt.Println("distinct items:", len(seen))

	var n int
	for range data.Batches(7, 3, 1, true) {
		n++
	}
	fmt.Println("batches with dropLast:", n)
	// Output:
	// 3 items
	// 3 items
	// 1 items
	// distinct items: 7
	// batches with dropLast: 2
}
