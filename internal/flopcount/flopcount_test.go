package flopcount

import (
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/latentlm/latentlm/internal/testutil"
)

// TestMatmul counts a batched product, a plain one and the products it
// must leave out, against the sizes worked out by hand.
func TestMatmul(t *testing.T) {
	g := NewGraph(testutil.Backend(t, "go"), "count")
	a := Parameter(g, "a", shapes.Make(dtypes.Float32, 3, 4, 5))   // [B, M, K]
	b := Parameter(g, "b", shapes.Make(dtypes.Float32, 3, 5, 6))   // [B, K, N]
	w := Parameter(g, "w", shapes.Make(dtypes.Float32, 7, 6))      // [out, in]
	pos := Parameter(g, "pos", shapes.Make(dtypes.Float32, 4))     // a comparison's 0/1 matrix
	ab := DotGeneral(a, []int{2}, []int{0}, b, []int{1}, []int{0}) // 3·4·6 outputs, 5 each
	lin := DotGeneral(ab, []int{2}, nil, w, []int{1}, nil)         // 3·4·7 outputs, 6 each
	_ = DotGeneral(lin, []int{2}, nil, Const(g, tensors.FromFlatDataAndDimensions(make([]float32, 7*2), 7, 2)), []int{0}, nil)
	onehot := ConvertDType(Equal(InsertAxes(pos, -1), Iota(g, shapes.Make(dtypes.Float32, 1, 4), 1)), dtypes.Float32)
	_ = DotGeneral(onehot, []int{0}, nil, ab, []int{1}, nil)
	got, err := Matmul(g)
	if err != nil {
		t.Fatal(err)
	}
	if want := 2.0 * (3*4*6*5 + 3*4*7*6); got != want {
		t.Errorf("Matmul = %g, want %g", got, want)
	}
}
