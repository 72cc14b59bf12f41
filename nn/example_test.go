package nn_test

import (
	"fmt"
	"log"
	"slices"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/backend"
	"github.com/latentlm/latentlm/nn"
)

// Declare a model's weights as Specs, count them, and create them in a store.
// Weights are drawn on the host from a seeded generator, so every backend
// starts from the same values, and each keeps its PyTorch name. The SwiGLU's
// hidden width follows the public code: ⌊d·4·2/3/64⌋·64.
func ExampleInit() {
	const d = 96
	h := nn.SwiGLUHidden(d, 4)
	specs := append(nn.SwiGLUSpecs("mlp", d, h), nn.Spec{Name: "out.weight", Shape: []int{2, d}}) // Std 0: zeros
	fmt.Println("hidden width:", h)
	fmt.Println("parameters:", nn.CountParams(specs))

	store := model.NewStore()
	if err := nn.Init(store, specs, 1, dtypes.Float32); err != nil {
		log.Fatal(err)
	}
	for _, v := range nn.Trainable(store) {
		fmt.Println(nn.WeightName(v), v.Shape().Dimensions)
	}
	out, err := nn.CopyValue(store.GetVariable(nn.WeightsScope + "/out.weight"))
	if err != nil {
		log.Fatal(err)
	}
	zero := !slices.ContainsFunc(tensors.MustCopyFlatData[float32](out), func(v float32) bool { return v != 0 })
	fmt.Println("out.weight all zero:", zero)
	// Output:
	// hidden width: 256
	// parameters: 73920
	// mlp.fc1.weight [256 96]
	// mlp.gate.weight [256 96]
	// mlp.fc2.weight [96 256]
	// out.weight [2 96]
	// out.weight all zero: true
}

// Linear keeps weights in PyTorch's [out, in] layout, so that checkpoints
// of the reference code map one to one: y = x·Wᵀ.
func ExampleLinear() {
	b, err := backend.Open(backend.Resolve(""))
	if err != nil {
		log.Fatal(err)
	}
	x := [][]float32{{1, 2}}                 // [batch 1, in 2]
	w := [][]float32{{1, 0}, {0, 2}, {1, 1}} // [out 3, in 2]
	y, err := graph.CallOnce(b, nn.Linear, x, w)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(y.Value())
	// Output: [[1 4 3]]
}

// SpaceToDepth cuts an image into f×f patches, each becoming one vector of
// f·f·C values in (row, column, channel) order: how the image tokenizer patchifies without strided
// convolutions, which not every backend can differentiate. DepthToSpace
// puts the patches back exactly.
func ExampleSpaceToDepth() {
	b, err := backend.Open(backend.Resolve(""))
	if err != nil {
		log.Fatal(err)
	}
	img := make([]float32, 4*4) // one 4×4 image of one channel: pixel (r, c) is 10r+c
	for r := range 4 {
		for c := range 4 {
			img[4*r+c] = float32(10*r + c)
		}
	}
	out, err := graph.CallOnceN(b, func(x *graph.Node) (*graph.Node, *graph.Node) {
		patches := nn.SpaceToDepth(x, 2)
		return patches, nn.DepthToSpace(patches, 2)
	}, tensors.FromFlatDataAndDimensions(img, 1, 4, 4, 1))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(out[0].Shape().Dimensions, out[0].Value())
	fmt.Println("round trip exact:", slices.Equal(tensors.MustCopyFlatData[float32](out[1]), img))
	// Output:
	// [1 2 2 4] [[[[0 1 10 11] [2 3 12 13]] [[20 21 30 31] [22 23 32 33]]]]
	// round trip exact: true
}

// CrossEntropy averages only over the items the mask counts, so padding and
// prompts cost nothing. Uniform logits over four classes cost ln 4 nats.
func ExampleCrossEntropy() {
	b, err := backend.Open(backend.Resolve(""))
	if err != nil {
		log.Fatal(err)
	}
	logits := [][]float32{{0, 0, 0, 0}, {9, 0, 0, 0}} // the second item: confidently wrong
	labels := []int32{2, 3}
	mask := []float32{1, 0} // but not counted
	ce, err := graph.CallOnce(b, nn.CrossEntropy, logits, labels, mask)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%.4f nats\n", ce.Value())
	// Output: 1.3863 nats
}

// CheckSizes is how configs validate their sizes: the first that is not
// positive or is out of range is named in the error.
func ExampleCheckSizes() {
	err := nn.CheckSizes("toy config",
		nn.Size{Name: "dim", Value: 64},
		nn.Size{Name: "depth", Value: 0, Depth: true},
		nn.Size{Name: "heads", Value: -1})
	fmt.Println(err)
	// Output: toy config: depth 0 out of range (1…1024)
}
