package canvas_test

import (
	"fmt"

	"github.com/latentlm/latentlm/canvas"
)

// A scene, its number and captions, and back from a caption to the scene.
func Example() {
	s := canvas.Scene{Layout: canvas.Horizontal, A: 7, B: 2}
	fmt.Println(s.ID(), s.HeldOut())
	for _, c := range canvas.MNIST.Captions(s) {
		fmt.Println(c)
	}
	fmt.Println(canvas.Fashion.Caption(canvas.Scene{Layout: canvas.BottomRight, A: 9}))

	got, err := canvas.Fashion.Parse("an ankle boot is below a sneaker")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(got, got.ID())
	answer, _ := canvas.Fashion.Answer(got, "which item is on top?")
	fmt.Println(answer)

	_, err = canvas.MNIST.Parse("the digit 7 is next to the digit 2")
	fmt.Println(err)
	// Output:
	// 112 false
	// the digit 7 is to the left of the digit 2
	// the digit 2 is to the right of the digit 7
	// an ankle boot is at the bottom right of the image
	// 7 above 9 219
	// sneaker
	// canvas: "the digit 7 is next to the digit 2" is not a caption of the digit vocabulary
}
