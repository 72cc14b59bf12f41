package evaluate

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/gomlx/compute"

	"github.com/latentlm/latentlm"
	"github.com/latentlm/latentlm/canvas"
	"github.com/latentlm/latentlm/classifier"
	"github.com/latentlm/latentlm/data"
	"github.com/latentlm/latentlm/metrics"
)

// K is the k of the k-NN manifolds of precision, recall, density and
// coverage.
const K = 3

// Row is one line of an evaluation report. Its JSON names are read by the
// scripts and documents of the project: keep them.
type Row struct {
	// Source is "model", "images" or "reference:<kind>".
	Source string `json:"source"`
	// Path is the model folder, the image folder, or the tokenizer of a
	// reference:recon row.
	Path string `json:"path,omitempty"`
	// Data is the data set, Classifier the classifier folder.
	Data       string `json:"data"`
	Classifier string `json:"classifier"`
	// N is the number of images scored.
	N int `json:"n"`
	// Steps, CFG and Seed are the sampling options of a model row.
	Steps *int     `json:"steps,omitempty"`
	CFG   *float64 `json:"cfg,omitempty"`
	Seed  *int64   `json:"seed,omitempty"`
	// Accuracy is the accuracy-to-class, nil when the classes are unknown.
	Accuracy *float64 `json:"accuracy_to_class,omitempty"`
	FD       float64  `json:"fd"`
	IS       float64  `json:"is"`
	// Precision, Recall, Density and Coverage are taken with the k-NN
	// manifolds of k = K neighbours.
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	Density   float64 `json:"density"`
	Coverage  float64 `json:"coverage"`
	K         int     `json:"k"`
	// GenerateSeconds is the time a model row took to load the model and
	// generate; Seconds the time of the whole row, scoring included.
	GenerateSeconds float64 `json:"generate_seconds,omitempty"`
	Seconds         float64 `json:"seconds"`
}

// Context holds what every row is scored against: the classifier, the test
// split, the statistics of its features and the k-NN reference. Make one
// with NewContext, call Prepare, then score any number of rows (Prepare
// again changes the number of images; the test statistics are kept). Its
// exported fields are for reading. A Context is not safe for concurrent
// use.
type Context struct {
	// Classifier scores the images; ClassifierPath is its folder.
	Classifier     *classifier.Model
	ClassifierPath string
	// Data names the data set; Test is its test split.
	Data string
	Test *data.Dataset

	backend   compute.Backend
	n         int
	testFeats [][]float32 // the classifier features of the whole test split
	testMu    []float64
	testCov   [][]float64
	realFeats [][]float32 // the k-NN reference: n class-balanced test images
}

// LoadClassifier reads the classifier checkpoint in dir, or with dir "" the
// shipped weights/classifier-<dataName>, and checks that it was trained on
// dataName. It returns the folder it read.
func LoadClassifier(b compute.Backend, dir, dataName string) (*classifier.Model, string, error) {
	if dir == "" {
		var err error
		if dir, err = latentlm.ShippedWeights("classifier-" + dataName); err != nil {
			return nil, "", err
		}
	}
	m, err := classifier.Load(b, dir)
	if err != nil {
		return nil, "", err
	}
	if d, ok := m.Info["data"].(string); ok && d != dataName {
		m.Close()
		return nil, "", fmt.Errorf("classifier %s was trained on %s, not %s", dir, d, dataName)
	}
	return m, dir, nil
}

// NewContext loads the classifier (dir "" for the shipped one of dataName,
// see LoadClassifier) and the test split of dataName ("mnist", "fashion",
// "mnist-canvas" or "fashion-canvas"), on backend b. Call Prepare before
// scoring.
func NewContext(b compute.Backend, classifierDir, dataName string) (*Context, error) {
	clf, path, err := LoadClassifier(b, classifierDir, dataName)
	if err != nil {
		return nil, err
	}
	test, err := LoadSplit(dataName, "test")
	if err != nil {
		clf.Close()
		return nil, err
	}
	if clf.Config.ImageSize != test.Height || clf.Config.ImageSize != test.Width {
		clf.Close()
		return nil, fmt.Errorf("classifier %s takes %d×%d images, %s has %d×%d", path, clf.Config.ImageSize, clf.Config.ImageSize, dataName, test.Height, test.Width)
	}
	return &Context{Classifier: clf, ClassifierPath: path, Data: dataName, Test: test, backend: b}, nil
}

// Prepare computes the statistics of the test split's features (once, on
// the first call) and the k-NN reference: n class-balanced test images, or
// fewer if the test split cannot balance n (at most its number of classes
// times the count of its rarest class: 8920 for MNIST, 5760 for the 240
// scenes of a canvas set). n is also the number of images Generated and
// Reference score.
func (c *Context) Prepare(n int) error {
	if n <= K {
		return fmt.Errorf("evaluate: %d images: need more than %d for precision/recall", n, K)
	}
	if c.testFeats == nil {
		imgs, _ := DatasetImages(c.Test)
		_, feats, err := c.Classifier.Predict(imgs)
		if err != nil {
			return err
		}
		mu, cov, err := metrics.MeanCov(feats)
		if err != nil {
			return err
		}
		c.testFeats, c.testMu, c.testCov = feats, mu, cov
	}
	classes := Classes(c.Test)
	counts := make([]int, classes)
	for _, l := range c.Test.Labels {
		if int(l) < classes {
			counts[l]++
		}
	}
	realN := min(n, classes*slices.Min(counts))
	idx, err := BalancedIndices(c.Test, realN, 0)
	if err != nil {
		return err
	}
	c.n = n
	c.realFeats = make([][]float32, 0, len(idx))
	for _, i := range idx {
		c.realFeats = append(c.realFeats, c.testFeats[i])
	}
	return nil
}

// N is the number of images Prepare was given.
func (c *Context) N() int { return c.n }

// ReferenceSize is the number of test images of the k-NN reference.
func (c *Context) ReferenceSize() int { return len(c.realFeats) }

// MemoryEstimate is the memory, in bytes, that scoring n images takes on
// the host: the images with their buffers, their classifier features and
// the k-NN distances.
func (c *Context) MemoryEstimate(n int) float64 {
	px := c.Classifier.Config.ImageSize * c.Classifier.Config.ImageSize
	return float64(n)*float64(px)*4*8 + float64(n)*float64(c.Classifier.Config.Features)*16
}

var errUnprepared = errors.New("evaluate: Context used before Prepare")

// Score measures one set of images (ImageSize² values in [0, 1] each) into
// row: FD, IS, the k-NN scores and, when labels (the class of each image)
// is not nil, the accuracy-to-class. It sets the row's N, Data and
// Classifier and leaves its other fields alone.
func (c *Context) Score(row *Row, images [][]float32, labels []int) error {
	if c.testMu == nil {
		return errUnprepared
	}
	probs, feats, err := c.Classifier.Predict(images)
	if err != nil {
		return err
	}
	mu, cov, err := metrics.MeanCov(feats)
	if err != nil {
		return err
	}
	if row.FD, err = metrics.FrechetDistance(mu, cov, c.testMu, c.testCov); err != nil {
		return err
	}
	row.IS = metrics.InceptionScore(probs)
	knn, err := metrics.KNN(c.realFeats, feats, K)
	if err != nil {
		return err
	}
	row.Precision, row.Recall, row.Density, row.Coverage = knn.Precision, knn.Recall, knn.Density, knn.Coverage
	row.K = K
	if labels != nil {
		acc, err := metrics.AccuracyToClass(probs, labels)
		if err != nil {
			return err
		}
		row.Accuracy = &acc
	}
	row.N, row.Data, row.Classifier = len(images), c.Data, c.ClassifierPath
	return nil
}

// ReadImages reads every PNG of dir at the classifier's size. The labels
// are nil unless every file is named <class>_<anything>.png (as
// Model.SaveDir writes them).
func (c *Context) ReadImages(dir string) (images [][]float32, labels []int, err error) {
	images, labels, _, err = classifier.ReadImages(dir, c.Classifier.Config.ImageSize, c.Classifier.Config.Classes)
	if err != nil {
		return nil, nil, err
	}
	if len(images) <= K {
		return nil, nil, fmt.Errorf("%s: %d images, need more than %d for precision/recall", dir, len(images), K)
	}
	return images, labels, nil
}

// Images scores images read from path (see ReadImages) as a row of
// source "images".
func (c *Context) Images(path string, images [][]float32, labels []int) (*Row, error) {
	t := time.Now()
	row := &Row{Source: "images", Path: path}
	if err := c.Score(row, images, labels); err != nil {
		return nil, err
	}
	row.Seconds = time.Since(t).Seconds()
	return row, nil
}

// BalancedIndices picks n images of d with label i%k for the i-th, k the
// number of classes of d (see Classes), in data order, after skipping the
// first n/k (rounded up) of each class `skip` times: skip 0 and skip 1 give
// disjoint sets.
func BalancedIndices(d *data.Dataset, n, skip int) ([]int, error) {
	classes := Classes(d)
	byClass := make([][]int, classes)
	for i, l := range d.Labels {
		if int(l) >= classes {
			return nil, fmt.Errorf("%s %s: label %d of image %d out of range 0…%d", d.Name, d.Split, l, i, classes-1)
		}
		byClass[l] = append(byClass[l], i)
	}
	per := (n + classes - 1) / classes
	idx := make([]int, n)
	for i := range idx {
		c := i % classes
		j := skip*per + i/classes
		if j >= len(byClass[c]) {
			return nil, fmt.Errorf("%s %s has %d images of class %d: too few for --n %d", d.Name, d.Split, len(byClass[c]), c, n)
		}
		idx[i] = byClass[c][j]
	}
	return idx, nil
}

// ClassLabels is the class of each of n images spread evenly over the
// classes: i%classes for the i-th.
func ClassLabels(n, classes int) []int {
	labels := make([]int, n)
	for i := range labels {
		labels[i] = i % classes
	}
	return labels
}

// DatasetImages returns every image of d scaled to [0, 1], with its label.
func DatasetImages(d *data.Dataset) ([][]float32, []int) {
	px := d.Height * d.Width
	flat := make([]float32, d.N*px)
	imgs := make([][]float32, d.N)
	labels := make([]int, d.N)
	for i := range imgs {
		imgs[i] = flat[i*px : (i+1)*px : (i+1)*px]
		d.Float32(i, imgs[i])
		labels[i] = int(d.Labels[i])
	}
	return imgs, labels
}

// TestAccuracy is the classifier's accuracy on the whole test split of
// dataName (for a canvas set, the exact scene of each canvas).
func TestAccuracy(m *classifier.Model, dataName string) (float64, error) {
	test, err := LoadSplit(dataName, "test")
	if err != nil {
		return 0, err
	}
	if m.Config.ImageSize != test.Height || m.Config.ImageSize != test.Width {
		return 0, fmt.Errorf("classifier takes %d×%d images, %s has %d×%d", m.Config.ImageSize, m.Config.ImageSize, dataName, test.Height, test.Width)
	}
	imgs, labels := DatasetImages(test)
	probs, _, err := m.Predict(imgs)
	if err != nil {
		return 0, err
	}
	return metrics.AccuracyToClass(probs, labels)
}

// LoadSplit loads a split of a data set of package data ("mnist",
// "fashion") or of package canvas ("mnist-canvas", "fashion-canvas").
func LoadSplit(dataName, split string) (*data.Dataset, error) {
	if canvas.IsCanvas(dataName) {
		return canvas.Load(dataName, split)
	}
	return data.Load(dataName, split)
}

// Classes is the number of classes of d's labels: the 240 scenes of a
// canvas set, else the 10 of MNIST and Fashion-MNIST.
func Classes(d *data.Dataset) int {
	if canvas.IsCanvas(d.Name) {
		return canvas.NumScenes
	}
	return data.Classes
}
