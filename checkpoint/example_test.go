package checkpoint_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/nn"
)

// line is a model of one weight vector, enough to show a checkpoint.
type line struct{}

func (line) Specs() []nn.Spec { return []nn.Spec{{Name: "w", Shape: []int{2}}} }
func (line) Validate() error  { return nil }

// Two checkpoints of one model averaged into a third, which loads like any
// other: its weight is the mean of theirs.
func ExampleAverage() {
	root, err := os.MkdirTemp("", "average")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(root)
	var dirs []string
	for i, w := range [][]float32{{1, 2}, {3, 6}} {
		store := model.NewStore()
		if _, err := store.CreateVariable(nn.WeightsScope+"/w", tensors.FromValue(w)); err != nil {
			fmt.Println(err)
			return
		}
		dir := filepath.Join(root, fmt.Sprint("run", i))
		if err := checkpoint.Save(dir, "line", line{}, nil, store, false, nil); err != nil {
			fmt.Println(err)
			return
		}
		dirs = append(dirs, dir)
	}
	out := filepath.Join(root, "mean")
	if err := checkpoint.Average(out, dirs); err != nil {
		fmt.Println(err)
		return
	}
	store, _, _, err := checkpoint.Load(out, "line", &line{}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	w, err := store.GetVariable(nn.WeightsScope + "/w").Value()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(w.Value())
	// Output: [2 4]
}
