package safetensors_test

import (
	"bytes"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/latentlm/latentlm/safetensors"
)

// Save two tensors with a metadata entry and load them back. Save writes the
// file atomically, so a crash mid-write never leaves a half checkpoint, and
// Load returns the tensors sorted by name whatever order they were saved in.
func ExampleSave() {
	dir, err := os.MkdirTemp("", "safetensors-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "model.safetensors")

	tensors := []safetensors.Tensor{
		safetensors.FromFloat32("w", []int{2, 3}, []float32{1, 2, 3, 4, 5, 6}),
		safetensors.FromInt64("step", nil, []int64{1000}),
	}
	if err := safetensors.Save(path, tensors, map[string]string{"format": "pt"}); err != nil {
		log.Fatal(err)
	}

	f, err := safetensors.Load(path)
	if err != nil {
		log.Fatal(err)
	}
	for _, t := range f.Tensors {
		fmt.Println(t.Name, t.DType, t.Shape, len(t.Data), "bytes")
	}
	fmt.Println("metadata:", f.Metadata)
	w, _ := f.Get("w")
	v, err := w.Float32()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("w:", v)
	// Output:
	// step I64 [] 8 bytes
	// w F32 [2 3] 24 bytes
	// metadata: map[format:pt]
	// w: [1 2 3 4 5 6]
}

// Encode and Parse are Save and Load without files, for a checkpoint held in
// memory or sent over a network. The header is padded to a multiple of 8
// bytes so that the tensor data after it is aligned.
func ExampleParse() {
	var buf bytes.Buffer
	t := safetensors.FromInt32("ids", []int{3}, []int32{7, -1, 42})
	if err := safetensors.Encode(&buf, []safetensors.Tensor{t}, nil); err != nil {
		log.Fatal(err)
	}
	fmt.Println("data aligned:", (buf.Len()-3*4)%8 == 0)

	f, err := safetensors.Parse(buf.Bytes())
	if err != nil {
		log.Fatal(err)
	}
	ids, _ := f.Tensors[0].Int32()
	fmt.Println(f.Tensors[0].Name, ids, f.Metadata == nil)
	// Output:
	// data aligned: true
	// ids [7 -1 42] true
}

// Check a checkpoint against the tensors a model expects before loading it:
// every mismatch is reported at once, sorted by tensor name, because one
// wrong shape often explains the others.
func ExampleFile_Check() {
	f := &safetensors.File{Tensors: []safetensors.Tensor{
		safetensors.FromFloat32("bias", []int{4}, make([]float32, 4)),
		safetensors.FromFloat64("kernel", []int{3, 4}, make([]float64, 12)),
		safetensors.FromFloat32("extra", []int{1}, []float32{0}),
	}}
	err := f.Check(map[string]safetensors.Spec{
		"bias":   {DType: safetensors.F32, Shape: []int{4}},
		"kernel": {DType: safetensors.F32, Shape: []int{4, 4}},
		"scale":  {DType: safetensors.F32, Shape: []int{4}},
	})
	fmt.Println(err)
	// Output:
	// extra: unexpected tensor
	// kernel: dtype F64, want F32
	// kernel: shape [3 4], want [4 4]
	// scale: missing tensor
}

// Store weights as F16 to halve the file. Each value is rounded to the
// nearest half, so values with few significant bits, like these, come back
// exactly, while 0.1 (not a binary fraction) comes back slightly off.
func ExampleFromFloat32AsF16() {
	t, err := safetensors.FromFloat32AsF16("w", []int{4}, []float32{0.5, -2, 1024, 0.1})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(t.DType, len(t.Data), "bytes")
	v, err := t.Float16()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(v)

	_, err = safetensors.FromFloat32AsF16("w", []int{1}, []float32{1e6})
	fmt.Println("1e6 fits in a half:", err == nil)
	// Output:
	// F16 8 bytes
	// [0.5 -2 1024 0.099975586]
	// 1e6 fits in a half: false
}
