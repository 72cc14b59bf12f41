package classifier_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/latentlm/latentlm"
	"github.com/latentlm/latentlm/backend"
	"github.com/latentlm/latentlm/classifier"
	"github.com/latentlm/latentlm/data"
	"github.com/latentlm/latentlm/imageio"
)

// Score the first ten MNIST test digits with the shipped classifier, as the
// evaluation harness scores generated digits: the probabilities name the
// class, and the features feed the Fréchet distance.
func ExampleModel_Predict() {
	b, err := backend.Open(backend.Resolve(""))
	if err != nil {
		log.Fatal(err)
	}
	dir, err := latentlm.ShippedWeights("classifier-mnist")
	if err != nil {
		log.Fatal(err)
	}
	m, err := classifier.Load(b, dir)
	if err != nil {
		log.Fatal(err)
	}
	d, err := data.Load("mnist", "test")
	if err != nil {
		log.Fatal(err)
	}
	images := make([][]float32, 10)
	labels := make([]int, len(images))
	for i := range images {
		images[i] = make([]float32, m.Config.Pixels())
		d.Float32(i, images[i])
		labels[i] = int(d.Labels[i])
	}
	probs, feats, err := m.Predict(images)
	if err != nil {
		log.Fatal(err)
	}
	predicted := make([]int, len(probs))
	for i, p := range probs {
		for k := range p {
			if p[k] > p[predicted[i]] {
				predicted[i] = k
			}
		}
	}
	fmt.Println("labels:   ", labels)
	fmt.Println("predicted:", predicted)
	fmt.Println(len(feats[0]), "features per image")
	// Output:
	// labels:    [7 2 1 0 4 1 4 9 5 9]
	// predicted: [7 2 1 0 4 1 4 9 5 9]
	// 128 features per image
}

// Read a folder of digits to score. Files named <class>_<anything>.png carry
// their label, so the folder can be checked for accuracy; a folder with any
// other name in it counts as unlabelled.
func ExampleReadImages() {
	dir, err := os.MkdirTemp("", "classifier-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	for _, name := range []string{"3_0001.png", "7_0000.png", "3_0000.png"} {
		if err := imageio.WriteGray(filepath.Join(dir, name), make([]float32, 28*28), 28, 28); err != nil {
			log.Fatal(err)
		}
	}
	images, labels, names, err := classifier.ReadImages(dir, 28, 10)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(images), names, labels)

	if err := imageio.WriteGray(filepath.Join(dir, "sample.png"), make([]float32, 28*28), 28, 28); err != nil {
		log.Fatal(err)
	}
	_, labels, _, err = classifier.ReadImages(dir, 28, 10)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("labelled:", labels != nil)
	// Output:
	// 3 [3_0000.png 3_0001.png 7_0000.png] [3 3 7]
	// labelled: false
}

// The label of a file follows the digits before its first underscore, and
// must be a class of the classifier.
func ExampleLabelFromName() {
	for _, name := range []string{"3_0007.png", "12_0001.png", "sample_3.png", "3.png"} {
		class, ok := classifier.LabelFromName(name, 10)
		fmt.Println(name, class, ok)
	}
	// Output:
	// 3_0007.png 3 true
	// 12_0001.png 0 false
	// sample_3.png 0 false
	// 3.png 0 false
}

// The shipped MNIST classifier's architecture, and the names of its classes:
// digits are named by their number, while the emoji judges carry Labels.
func ExampleConfig_Label() {
	c := classifier.DefaultConfig()
	fmt.Println(c.Widths, c.Features, c.Classes, c.Label(3))
	c.Classes, c.Labels = 2, []string{"light", "dark"}
	fmt.Println(c.Label(1), c.Validate() == nil)
	// Output:
	// [16 32] 128 10 3
	// dark true
}
