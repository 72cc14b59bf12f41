package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gomlx/compute"

	"github.com/latentlm/latentlm/classifier"
	"github.com/latentlm/latentlm/data"
	"github.com/latentlm/latentlm/imageio"
	"github.com/latentlm/latentlm/internal/atomicfile"
	"github.com/latentlm/latentlm/internal/guard"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/metrics"
	"github.com/latentlm/latentlm/vae"
)

func init() {
	register("eval", "score generated images: accuracy-to-class, FD, IS, precision/recall", runEval)
}

// prK is the k of the k-NN manifolds of precision and recall.
const prK = 3

const evalSynopsis = `eval [--model DIR] [--data mnist] [--n 1000] [--steps 20] [--cfg 4] [--seed 1] [--json]
       latentlm eval --images DIR [--data mnist]
       latentlm eval --reference test|train|recon|noise|all [--data mnist]

Scores a set of n images with the classifier (--classifier, default the
shipped weights/classifier-<data>):

  accuracy   fraction classified as the class they were generated for
  fd         Fréchet distance of the classifier's penultimate features to
             those of the whole test split (lower is better)
  is         exp E[KL(p(y|x) ‖ p(y))] of its predictions (10 at best)
  precision  fraction of images inside the k-NN manifold (k = 3) of n
             class-balanced test images (realism). Real outliers have large
             balls that can hold junk: noise scores high here.
  recall     fraction of those test images inside the images' manifold
  density    mean number of those test images' balls holding each image,
             over k (about 1 for real images; Naeem et al. 2020)
  coverage   fraction of those test images whose own ball holds an image
             (Naeem et al. 2020; unlike recall, immune to outlying images)

Sources:
  (default)       n samples of --model, spread evenly over the classes
  --images DIR    every PNG of DIR. Accuracy only when every file is named
                  <class>_<anything>.png (e.g. 3_0042.png); --save writes
                  samples under such names.
  --reference R   reference rows, comma-separated, or all:
                    test   n other class-balanced test images (the floor:
                           what n real images score)
                    train  n class-balanced training images
                    recon  σ-VAE reconstructions of the test row's images
                           (--vae, default the shipped tokenizer)
                    noise  Gaussian noise with the test pixels' mean and
                           std, clipped to [0, 1] (the ceiling)

With several rows, --json prints an array; with one, an object.`

// evalRow is one line of the report.
type evalRow struct {
	Source          string   `json:"source"`
	Path            string   `json:"path,omitempty"`
	Data            string   `json:"data"`
	Classifier      string   `json:"classifier"`
	N               int      `json:"n"`
	Steps           *int     `json:"steps,omitempty"`
	CFG             *float64 `json:"cfg,omitempty"`
	Seed            *int64   `json:"seed,omitempty"`
	Accuracy        *float64 `json:"accuracy_to_class,omitempty"`
	FD              float64  `json:"fd"`
	IS              float64  `json:"is"`
	Precision       float64  `json:"precision"`
	Recall          float64  `json:"recall"`
	Density         float64  `json:"density"`
	Coverage        float64  `json:"coverage"`
	K               int      `json:"k"`
	GenerateSeconds float64  `json:"generate_seconds,omitempty"`
	Seconds         float64  `json:"seconds"`
}

// evalContext holds what every row is scored against.
type evalContext struct {
	clf       *classifier.Model
	clfPath   string
	data      string
	test      *data.Dataset
	n         int
	testMu    []float64
	testCov   [][]float64
	realFeats [][]float32 // the precision/recall reference: n class-balanced test images
}

func newEvalContext(b compute.Backend, clfDir, dataName string) (*evalContext, error) {
	clf, path, err := loadClassifier(b, clfDir, dataName)
	if err != nil {
		return nil, err
	}
	test, err := data.Load(dataName, "test")
	if err != nil {
		return nil, err
	}
	if clf.Config.ImageSize != test.Height || clf.Config.ImageSize != test.Width {
		return nil, fmt.Errorf("classifier %s takes %d×%d images, %s has %d×%d", path, clf.Config.ImageSize, clf.Config.ImageSize, dataName, test.Height, test.Width)
	}
	return &evalContext{clf: clf, clfPath: path, data: dataName, test: test}, nil
}

// prepare computes the test statistics and the precision/recall reference
// of n class-balanced test images (fewer if the test split cannot balance n).
func (e *evalContext) prepare(n int) error {
	imgs, _ := datasetImages(e.test)
	_, feats, err := e.clf.Predict(imgs)
	if err != nil {
		return err
	}
	e.n = n
	if e.testMu, e.testCov, err = metrics.MeanCov(feats); err != nil {
		return err
	}
	// At most as many as the rarest class allows (8920 for MNIST).
	counts := make([]int, data.Classes)
	for _, l := range e.test.Labels {
		counts[l]++
	}
	realN := min(n, data.Classes*slices.Min(counts))
	idx, err := balancedIndices(e.test, realN, 0)
	if err != nil {
		return err
	}
	for _, i := range idx {
		e.realFeats = append(e.realFeats, feats[i])
	}
	return nil
}

// balancedIndices picks n images of d with label i%10 for the i-th, in data
// order, after skipping the first n/10 (rounded up) of each class `skip`
// times: skip 0 and skip 1 give disjoint sets.
func balancedIndices(d *data.Dataset, n, skip int) ([]int, error) {
	byClass := make([][]int, data.Classes)
	for i, l := range d.Labels {
		byClass[l] = append(byClass[l], i)
	}
	per := (n + data.Classes - 1) / data.Classes
	idx := make([]int, n)
	for i := range idx {
		c := i % data.Classes
		j := skip*per + i/data.Classes
		if j >= len(byClass[c]) {
			return nil, fmt.Errorf("%s %s has %d images of class %d: too few for --n %d", d.Name, d.Split, len(byClass[c]), c, n)
		}
		idx[i] = byClass[c][j]
	}
	return idx, nil
}

func classLabels(n, classes int) []int {
	labels := make([]int, n)
	for i := range labels {
		labels[i] = i % classes
	}
	return labels
}

// score measures one set of images; labels may be nil (unknown).
func (e *evalContext) score(row *evalRow, images [][]float32, labels []int) error {
	probs, feats, err := e.clf.Predict(images)
	if err != nil {
		return err
	}
	mu, cov, err := metrics.MeanCov(feats)
	if err != nil {
		return err
	}
	if row.FD, err = metrics.FrechetDistance(mu, cov, e.testMu, e.testCov); err != nil {
		return err
	}
	row.IS = metrics.InceptionScore(probs)
	knn, err := metrics.KNN(e.realFeats, feats, prK)
	if err != nil {
		return err
	}
	row.Precision, row.Recall, row.Density, row.Coverage = knn.Precision, knn.Recall, knn.Density, knn.Coverage
	row.K = prK
	if labels != nil {
		acc, err := metrics.AccuracyToClass(probs, labels)
		if err != nil {
			return err
		}
		row.Accuracy = &acc
	}
	row.N, row.Data, row.Classifier = len(images), e.data, e.clfPath
	return nil
}

func runEval(args []string) error {
	fs := newFlags("eval", evalSynopsis)
	backendName := fs.String("backend", "", "compute backend: onnx, go or xla")
	dataName := fs.String("data", "mnist", "data set: mnist or fashion")
	sf := addSampleFlags(fs, "model checkpoint (default: the shipped weights/latentlm-<data>)", "tokenizer (default: the model's own; for --reference recon the shipped vae-<data>)", 100)
	modelDir, vaeDir, steps, seed, batch := sf.model, sf.vae, sf.steps, sf.seed, sf.batch
	clfDir := fs.String("classifier", "", "classifier checkpoint (default: the shipped weights/classifier-<data>)")
	n := fs.Int("n", 1000, "images to generate and score")
	imagesDir := fs.String("images", "", "score the PNGs of this folder instead of generating")
	reference := fs.String("reference", "", "reference rows instead: test, train, recon, noise (comma-separated) or all")
	saveDir := fs.String("save", "", "also write the generated images here as <class>_<index>.png")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := checkDataName(*dataName); err != nil {
		return err
	}
	if *imagesDir != "" && *reference != "" {
		return errors.New("--images and --reference exclude each other")
	}
	if *n <= prK {
		return fmt.Errorf("--n %d: need more than %d images for precision/recall", *n, prK)
	}
	if *steps < 0 || *batch < 1 {
		return errors.New("--steps must be ≥ 0 and --batch ≥ 1")
	}
	var refs []string
	if *reference != "" {
		for _, r := range strings.Split(*reference, ",") {
			switch r = strings.TrimSpace(r); r {
			case "all":
				refs = append(refs, "test", "train", "recon", "noise")
			case "test", "train", "recon", "noise":
				refs = append(refs, r)
			default:
				return fmt.Errorf("--reference %q: want test, train, recon, noise or all", r)
			}
		}
	}
	b, _, err := openBackend(*backendName)
	if err != nil {
		return err
	}
	t0 := time.Now()
	ec, err := newEvalContext(b, *clfDir, *dataName)
	if err != nil {
		return err
	}
	var images [][]float32
	var imageLabels []int
	if *imagesDir != "" {
		// Read before the long work: a bad folder fails at once.
		if images, imageLabels, _, err = classifier.ReadImages(*imagesDir, ec.clf.Config.ImageSize, ec.clf.Config.Classes); err != nil {
			return err
		}
		if len(images) <= prK {
			return fmt.Errorf("%s: %d images, need more than %d for precision/recall", *imagesDir, len(images), prK)
		}
		*n = len(images)
	}
	// The images, their classifier features and the k-NN distances.
	px := ec.clf.Config.ImageSize * ec.clf.Config.ImageSize
	if err := fs.checkMemory(fmt.Sprintf("scoring %d images", *n), imageBytes(*n, px)+float64(*n)*float64(ec.clf.Config.Features)*16); err != nil {
		return err
	}
	if *saveDir != "" {
		if err := guard.CheckOutputDir(*saveDir); err != nil {
			return err
		}
	}
	// Precision/recall compare with as many real images as are scored.
	if err := ec.prepare(*n); err != nil {
		return err
	}
	setup := time.Since(t0)
	var rows []evalRow
	switch {
	case *imagesDir != "":
		t := time.Now()
		row := evalRow{Source: "images", Path: *imagesDir}
		if err := ec.score(&row, images, imageLabels); err != nil {
			return err
		}
		row.Seconds = time.Since(t).Seconds()
		rows = append(rows, row)
	case len(refs) > 0:
		for _, r := range refs {
			row, err := ec.reference(b, r, *vaeDir, uint64(*seed))
			if err != nil {
				return fmt.Errorf("reference %s: %w", r, err)
			}
			rows = append(rows, *row)
		}
	default:
		row, err := ec.generated(*backendName, *modelDir, *vaeDir, sf.options(), *batch, *saveDir)
		if err != nil {
			return err
		}
		rows = append(rows, *row)
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if len(rows) == 1 {
			return enc.Encode(rows[0])
		}
		return enc.Encode(rows)
	}
	fmt.Printf("%s: %s, classifier %s; FD against the %d test images, k-NN scores (k=%d) against %d of them (setup %s)\n",
		*dataName, plural(len(rows), "row"), ec.clfPath, ec.test.N, prK, len(ec.realFeats), setup.Round(time.Millisecond))
	fmt.Printf("  %-16s %6s %9s %9s %7s %9s %7s %8s %8s %8s\n", "source", "n", "accuracy", "FD", "IS", "precision", "recall", "density", "coverage", "seconds")
	for _, r := range rows {
		acc := "—"
		if r.Accuracy != nil {
			acc = fmt.Sprintf("%.2f%%", 100**r.Accuracy)
		}
		fmt.Printf("  %-16s %6d %9s %9.3f %7.3f %9.3f %7.3f %8.3f %8.3f %8.1f\n", r.Source, r.N, acc, r.FD, r.IS, r.Precision, r.Recall, r.Density, r.Coverage, r.Seconds)
	}
	if *imagesDir != "" && imageLabels == nil {
		fmt.Println("  (no accuracy: not every file is named <class>_<anything>.png)")
	}
	return nil
}

func plural(n int, s string) string {
	if n == 1 {
		return "1 " + s
	}
	return fmt.Sprintf("%d %ss", n, s)
}

// generated samples n images of the model, class i%classes for the i-th.
func (e *evalContext) generated(backendName, modelDir, vaeDir string, opts lm.SampleOptions, batch int, saveDir string) (*evalRow, error) {
	t := time.Now()
	var err error
	if modelDir == "" {
		if modelDir, err = weightsDir("latentlm-" + e.data); err != nil {
			return nil, err
		}
	}
	m, err := loadModel(backendName, modelDir, vaeDir, batch)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	if saveDir != "" {
		if err := guard.CheckOutputDir(saveDir, m.Dir(), m.TokenizerDir()); err != nil {
			return nil, err
		}
	}
	if m.Classes() != e.clf.Config.Classes {
		return nil, fmt.Errorf("model %s has %d classes, classifier %s %d", modelDir, m.Classes(), e.clfPath, e.clf.Config.Classes)
	}
	if s := m.ImageSize(); s != e.clf.Config.ImageSize {
		return nil, fmt.Errorf("model %s makes %d×%d images, classifier %s takes %d×%d", modelDir, s, s, e.clfPath, e.clf.Config.ImageSize, e.clf.Config.ImageSize)
	}
	labels := classLabels(e.n, m.Classes())
	imgs, err := generate(m, labels, opts)
	if err != nil {
		return nil, err
	}
	genSeconds := time.Since(t).Seconds()
	if saveDir != "" {
		size := e.clf.Config.ImageSize
		if err := atomicfile.WriteDir(saveDir, func(dir string) error {
			for i, img := range imgs {
				if err := imageio.WriteGray(filepath.Join(dir, fmt.Sprintf("%d_%05d.png", labels[i], i)), img, size, size); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	row := &evalRow{Source: "model", Path: modelDir, Steps: &opts.Steps, CFG: &opts.CFG, Seed: &opts.Seed, GenerateSeconds: genSeconds}
	if err := e.score(row, imgs, labels); err != nil {
		return nil, err
	}
	row.Seconds = time.Since(t).Seconds()
	return row, nil
}

// reference scores one of the reference sets.
func (e *evalContext) reference(b compute.Backend, kind, vaeDir string, seed uint64) (*evalRow, error) {
	t := time.Now()
	row := &evalRow{Source: "reference:" + kind}
	var imgs [][]float32
	var labels []int
	pick := func(d *data.Dataset, skip int) error {
		idx, err := balancedIndices(d, e.n, skip)
		if err != nil {
			return err
		}
		all, _ := datasetImages(d.Subset(idx))
		imgs, labels = all, classLabels(e.n, data.Classes)
		return nil
	}
	switch kind {
	case "test":
		// The images after those of the precision/recall reference.
		if err := pick(e.test, 1); err != nil {
			return nil, err
		}
	case "train":
		ds, err := data.Load(e.data, "train")
		if err != nil {
			return nil, err
		}
		if err := pick(ds, 0); err != nil {
			return nil, err
		}
	case "recon":
		var err error
		if vaeDir == "" {
			if vaeDir, err = weightsDir("vae-" + e.data); err != nil {
				return nil, err
			}
		}
		tok, err := vae.Load(b, vaeDir)
		if err != nil {
			return nil, err
		}
		if err := pick(e.test, 1); err != nil {
			return nil, err
		}
		row.Path = vaeDir
		for start := 0; start < len(imgs); start += 500 {
			end := min(start+500, len(imgs))
			z, err := tok.Encode(imgs[start:end], false)
			if err != nil {
				return nil, err
			}
			rec, err := tok.Decode(z)
			if err != nil {
				return nil, err
			}
			copy(imgs[start:end], rec)
		}
	case "noise":
		var sum, sq float64
		for _, p := range e.test.Images {
			v := float64(p) / 255
			sum += v
			sq += v * v
		}
		count := float64(len(e.test.Images))
		mean := sum / count
		std := math.Sqrt(sq/count - mean*mean)
		rng := rand.New(rand.NewPCG(seed, 0x6e6f697365))
		px := e.test.Height * e.test.Width
		imgs = make([][]float32, e.n)
		for i := range imgs {
			imgs[i] = make([]float32, px)
			for k := range imgs[i] {
				imgs[i][k] = float32(math.Min(1, math.Max(0, mean+std*rng.NormFloat64())))
			}
		}
	default:
		return nil, fmt.Errorf("unknown reference %q", kind)
	}
	if err := e.score(row, imgs, labels); err != nil {
		return nil, err
	}
	row.Seconds = time.Since(t).Seconds()
	return row, nil
}
