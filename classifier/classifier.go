// Package classifier is the small convolutional network that the evaluation
// harness scores images with (docs/DESIGN.md §9): its class probabilities
// give accuracy-to-class and an Inception-Score-like figure, and its
// penultimate features give the Fréchet distance and the precision/recall of
// k-NN manifolds (package metrics). It stands in for the Inception network
// of FID (https://arxiv.org/abs/1706.08500), which neither exists offline nor
// suits 28×28 images.
//
// It also reads colour (Config.InChannels 3): the emoji judges, which name
// an emoji's subcategory or skin tone (recipe.Classifier with a Target;
// docs/DESIGN.md §11), are this network over 32×32 RGB images.
//
// The network is built from what every backend can differentiate
// (docs/DESIGN.md §10): stride-1, same-padded 3×3 convolutions, ReLU, and
// 2×2 max pooling written as a reshape and a ReduceMax — no strided windows
// anywhere.
//
//	x [B, 28, 28] (or [B, S, S, C] in colour) → (x−0.5)/0.5
//	→ per stage s: conv3×3 (Widths[s]) + bias, ReLU, max pool 2×2
//	→ flatten → fc (Features) + bias, ReLU   ← the features
//	→ head (Classes) + bias                  ← the logits
package classifier

import (
	"encoding/json"
	"fmt"
	"math"

	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/nn"
)

// Kind is the checkpoint kind of a classifier.
const Kind = "classifier"

// Config is the classifier's architecture, saved beside its weights.
type Config struct {
	ImageSize int `json:"image_size"`
	// InChannels is the number of image channels: 1 (gray) or 3 (RGB, the
	// emoji judges). 0 means 1, and a gray config is saved without the
	// field, so that every config.json written before colour (none has
	// it) reads as the gray classifier it is; use ImageChannels.
	InChannels int   `json:"in_channels,omitempty"`
	Widths     []int `json:"widths"`   // channels of the convolution of each stage
	Features   int   `json:"features"` // width of the penultimate (feature) layer
	Classes    int   `json:"classes"`
	// Labels optionally names the classes, one per class (the emoji
	// subcategories and skin tones; none for the digits and scenes, whose
	// class ids are their names).
	Labels []string `json:"labels,omitempty"`
}

// MaxInChannels bounds Config.InChannels.
const MaxInChannels = 4

// ImageChannels is the number of channels of the images (InChannels, with
// 0 read as 1).
func (c Config) ImageChannels() int { return max(c.InChannels, 1) }

// Pixels is the number of values of one image: ImageSize²·ImageChannels,
// row-major with the channels interleaved (H×W×C, as package vae and
// imagefolder lay them out).
func (c Config) Pixels() int { return c.ImageSize * c.ImageSize * c.ImageChannels() }

// ImageDims are the dimensions of a batch of n images as the graphs take
// them: [n, H, W] for one channel (the layout of the gray classifiers,
// kept so that their graphs are unchanged), [n, H, W, C] otherwise.
func (c Config) ImageDims(n int) []int {
	if c.ImageChannels() == 1 {
		return []int{n, c.ImageSize, c.ImageSize}
	}
	return []int{n, c.ImageSize, c.ImageSize, c.ImageChannels()}
}

// Label is the name of class k: Labels[k], or its number.
func (c Config) Label(k int) string {
	if k >= 0 && k < len(c.Labels) {
		return c.Labels[k]
	}
	return fmt.Sprint(k)
}

// DefaultConfig is the shipped classifier: two stages of 16 and 32 channels
// and 128 features (about 206k parameters, 0.8 MB), small enough to train in
// a few minutes on two shared CPU cores.
func DefaultConfig() Config {
	return Config{ImageSize: 28, Widths: []int{16, 32}, Features: 128, Classes: 10}
}

// Validate reports an inconsistent configuration.
func (c Config) Validate() error {
	switch {
	case c.ImageSize <= 0 || c.ImageSize > 4096 || len(c.Widths) > 16 || c.Features > nn.MaxWidth || c.Classes > nn.MaxWidth:
		return fmt.Errorf("classifier config: image size %d", c.ImageSize)
	case len(c.Widths) == 0:
		return fmt.Errorf("classifier config: no convolution stages")
	case c.ImageSize%(1<<len(c.Widths)) != 0:
		return fmt.Errorf("classifier config: image size %d is not divisible by 2^%d (one 2×2 pooling per stage)", c.ImageSize, len(c.Widths))
	case c.Features <= 0 || c.Classes < 2:
		return fmt.Errorf("classifier config: %d features, %d classes", c.Features, c.Classes)
	case c.InChannels < 0 || c.InChannels > MaxInChannels:
		return fmt.Errorf("classifier config: in_channels %d out of range (0…%d; 0 is 1)", c.InChannels, MaxInChannels)
	case len(c.Labels) != 0 && len(c.Labels) != c.Classes:
		return fmt.Errorf("classifier config: %d labels for %d classes", len(c.Labels), c.Classes)
	}
	for i, w := range c.Widths {
		if w <= 0 {
			return fmt.Errorf("classifier config: stage %d has width %d", i, w)
		}
	}
	return nil
}

// JSON encodes the config.
func (c Config) JSON() []byte {
	b, _ := json.MarshalIndent(c, "", "  ")
	return b
}

// flat is the length of the flattened output of the last stage.
func (c Config) flat() int {
	side := c.ImageSize >> len(c.Widths)
	return side * side * c.Widths[len(c.Widths)-1]
}

// Specs declares the weights: He-normal initialisation for the layers
// followed by ReLU, a small one for the head, zero biases.
func (c Config) Specs() []nn.Spec {
	var specs []nn.Spec
	in := c.ImageChannels()
	for i, w := range c.Widths {
		specs = append(specs,
			nn.Spec{Name: fmt.Sprintf("convs.%d.weight", i), Shape: []int{3, 3, in, w}, Std: math.Sqrt(2 / float64(9*in))},
			nn.Spec{Name: fmt.Sprintf("convs.%d.bias", i), Shape: []int{w}})
		in = w
	}
	return append(specs,
		nn.Spec{Name: "fc.weight", Shape: []int{c.Features, c.flat()}, Std: math.Sqrt(2 / float64(c.flat()))},
		nn.Spec{Name: "fc.bias", Shape: []int{c.Features}},
		nn.Spec{Name: "head.weight", Shape: []int{c.Classes, c.Features}, Std: 0.01},
		nn.Spec{Name: "head.bias", Shape: []int{c.Classes}},
	)
}

func relu(x *Node) *Node { return Max(x, ZerosLike(x)) }

// maxPool2 takes the maximum of each 2×2 block of x [B, H, W, C], by reshape.
func maxPool2(x *Node) *Node {
	d := x.Shape().Dimensions
	return ReduceMax(Reshape(x, d[0], d[1]/2, 2, d[2]/2, 2, d[3]), 2, 4)
}

// Forward maps images [B, H, W] (or [B, H, W, C] in colour) in [0, 1] to
// logits [B, Classes] and the penultimate features [B, Features].
func (c Config) Forward(w nn.Weights, images *Node) (logits, feats *Node) {
	b := images.Shape().Dimensions[0]
	x := Reshape(MulScalar(AddScalar(images, -0.5), 2), b, c.ImageSize, c.ImageSize, c.ImageChannels())
	for i, width := range c.Widths {
		x = nn.Conv2D(x, w.Get("convs.%d.weight", i))
		x = Add(x, Reshape(w.Get("convs.%d.bias", i), 1, 1, 1, width))
		x = maxPool2(relu(x))
	}
	x = Reshape(x, b, c.flat())
	feats = relu(Add(nn.Linear(x, w.Get("fc.weight")), InsertAxes(w.Get("fc.bias"), 0)))
	logits = Add(nn.Linear(feats, w.Get("head.weight")), InsertAxes(w.Get("head.bias"), 0))
	return logits, feats
}

// Logits is the class logits [B, Classes] of images [B, H, W(, C)].
func Logits(c Config, w nn.Weights, images *Node) *Node {
	l, _ := c.Forward(w, images)
	return l
}

// Features is the penultimate features [B, Features] of images [B, H, W(, C)].
func Features(c Config, w nn.Weights, images *Node) *Node {
	_, f := c.Forward(w, images)
	return f
}

// Loss is the mean cross-entropy of a batch and its accuracy, for labels [B]
// (int32).
func (c Config) Loss(_ *model.Scope, w nn.Weights, images, labels *Node) (loss, accuracy *Node) {
	logits := Logits(c, w, images)
	loss = nn.CrossEntropy(logits, labels, nil)
	pred := ArgMax(logits, -1, labels.DType())
	accuracy = ReduceAllMean(ConvertDType(Equal(pred, labels), logits.DType()))
	return loss, accuracy
}
