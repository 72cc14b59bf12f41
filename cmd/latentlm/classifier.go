package main

import (
	"fmt"
	"time"

	"github.com/gomlx/compute"

	"github.com/latentlm/latentlm/classifier"
	"github.com/latentlm/latentlm/evaluate"
)

func init() {
	register("classifier", "train and evaluate the CNN that the evaluation scores images with", runClassifier)
}

func runClassifier(args []string) error {
	return dispatch("classifier", "usage: latentlm classifier train|eval [flags]\n\n"+
		"  train  train the evaluation classifier on mnist, fashion or a canvas set; prints its test accuracy\n"+
		"  eval   test accuracy of a classifier checkpoint",
		map[string]func([]string) error{"train": classifierTrain, "eval": classifierEval}, args)
}

// loadClassifier reads dir, or the shipped classifier of the data set.
func loadClassifier(b compute.Backend, dir, dataName string) (*classifier.Model, string, error) {
	if dir == "" {
		var err error
		if dir, err = weightsDir("classifier-" + dataName); err != nil {
			return nil, "", err
		}
	}
	return evaluate.LoadClassifier(b, dir, dataName)
}

// testAccuracy is the classifier's accuracy on the whole test split.
func testAccuracy(m *classifier.Model, dataName string) (float64, error) {
	return evaluate.TestAccuracy(m, dataName)
}

func classifierEval(args []string) error {
	fs := newFlags("classifier eval", "classifier eval --data mnist|fashion|mnist-canvas|fashion-canvas [--classifier DIR]")
	backendName := fs.String("backend", "", "compute backend: onnx, go or xla")
	dataName := fs.String("data", "mnist", "data set: mnist, fashion, mnist-canvas or fashion-canvas")
	dir := fs.String("classifier", "", "classifier checkpoint (default: the shipped weights/classifier-<data>)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkDataName(*dataName); err != nil {
		return err
	}
	b, _, err := openBackend(*backendName)
	if err != nil {
		return err
	}
	m, path, err := loadClassifier(b, *dir, *dataName)
	if err != nil {
		return err
	}
	t0 := time.Now()
	acc, err := testAccuracy(m, *dataName)
	if err != nil {
		return err
	}
	fmt.Printf("classifier %s on %s test: accuracy %.2f%% (%s)\n", path, *dataName, 100*acc, time.Since(t0).Round(time.Millisecond))
	return nil
}
