package speaker

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"

	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck

	"github.com/latentlm/latentlm/nn"
)

// Kind is the checkpoint kind of a speaker classifier.
const Kind = "speaker"

// Config is the speaker classifier's architecture and front end, saved
// beside its weights. The front end's settings are part of it because a
// checkpoint is only meaningful with the features it was trained on.
type Config struct {
	Mels   int `json:"mels"`   // log-mel bands (speech.DefaultMel's 80)
	Frames int `json:"frames"` // frames per window, 100 a second: the training crop and the scoring window
	Kernel int `json:"kernel"` // time taps of each convolution (odd: centred)
	// Widths are the channels of the convolutions, each followed by ReLU.
	Widths []int `json:"widths"`
	// Embedding is the width of the speaker embedding, the RMS-normalised
	// projection of the pooled statistics that Similarity compares.
	Embedding int `json:"embedding"`
	// Voices names the classes, in the order of the logits.
	Voices []string `json:"voices"`
	// FloorDB clips the log-mel values at this many dB below the clip's
	// reference level, and SpeechDB marks as speech the frames within this
	// many dB of it (see features).
	FloorDB  float64 `json:"floor_db"`
	SpeechDB float64 `json:"speech_db"`
}

// DefaultConfig is the shipped judge for voices: 1.5 s windows, two
// convolutions of 96 channels over 5 frames (50 ms), and a 128-wide
// embedding — 110k parameters (0.44 MB), trained in minutes on two
// shared cores. The voices are filled in from the data.
func DefaultConfig() Config {
	return Config{Mels: 80, Frames: 150, Kernel: 5, Widths: []int{96, 96}, Embedding: 128, FloorDB: 50, SpeechDB: 30}
}

// Validate reports an inconsistent configuration.
func (c Config) Validate() error {
	if err := c.validateShape(); err != nil {
		return err
	}
	if len(c.Voices) < 2 || len(c.Voices) > nn.MaxWidth {
		return fmt.Errorf("speaker config: %d voices, want at least 2", len(c.Voices))
	}
	for i, v := range c.Voices {
		if v == "" || slices.Contains(c.Voices[:i], v) {
			return fmt.Errorf("speaker config: voice %d is %q (empty or repeated)", i, v)
		}
	}
	return nil
}

// validateShape checks all but the voices, which training takes from
// the data: so that a bad option is refused before the data is read.
func (c Config) validateShape() error {
	switch {
	case c.Mels < 1 || c.Mels > 256:
		return fmt.Errorf("speaker config: %d mel bands, want 1…256", c.Mels)
	case c.Frames < 1 || c.Frames > 100_000:
		return fmt.Errorf("speaker config: windows of %d frames, want 1…100000", c.Frames)
	case c.Kernel < 1 || c.Kernel > 101 || c.Kernel%2 == 0:
		return fmt.Errorf("speaker config: kernel of %d frames, want an odd number within 1…101", c.Kernel)
	case len(c.Widths) == 0 || len(c.Widths) > 16:
		return fmt.Errorf("speaker config: %d convolutions, want 1…16", len(c.Widths))
	case c.Embedding < 1 || c.Embedding > nn.MaxWidth:
		return fmt.Errorf("speaker config: embedding width %d", c.Embedding)
	case !(c.FloorDB > 0 && c.FloorDB <= 200) || !(c.SpeechDB > 0 && c.SpeechDB <= c.FloorDB):
		return fmt.Errorf("speaker config: floor %g dB and speech threshold %g dB: want 0 < speech ≤ floor ≤ 200", c.FloorDB, c.SpeechDB)
	}
	for i, w := range c.Widths {
		if w < 1 || w > nn.MaxWidth {
			return fmt.Errorf("speaker config: convolution %d has width %d", i, w)
		}
	}
	return nil
}

// JSON encodes the config.
func (c Config) JSON() []byte {
	b, _ := json.MarshalIndent(c, "", "  ")
	return b
}

// pooled is the width of the pooled statistics: a mean and a standard
// deviation per channel of the last convolution.
func (c Config) pooled() int { return 2 * c.Widths[len(c.Widths)-1] }

// Specs declares the weights: He-normal convolutions (they feed ReLUs), a
// Xavier-like embedding, a small head, zero biases.
func (c Config) Specs() []nn.Spec {
	var specs []nn.Spec
	in := c.Mels
	for i, w := range c.Widths {
		specs = append(specs,
			nn.Spec{Name: fmt.Sprintf("convs.%d.weight", i), Shape: []int{c.Kernel, 1, in, w}, Std: math.Sqrt(2 / float64(c.Kernel*in))},
			nn.Spec{Name: fmt.Sprintf("convs.%d.bias", i), Shape: []int{w}})
		in = w
	}
	return append(specs,
		nn.Spec{Name: "embed.weight", Shape: []int{c.Embedding, c.pooled()}, Std: math.Sqrt(1 / float64(c.pooled()))},
		nn.Spec{Name: "embed.bias", Shape: []int{c.Embedding}},
		nn.Spec{Name: "head.weight", Shape: []int{len(c.Voices), c.Embedding}, Std: 0.01},
		nn.Spec{Name: "head.bias", Shape: []int{len(c.Voices)}},
	)
}

// Forward maps windows of normalised log-mel frames x [B, Frames, Mels]
// and their speech masks [B, Frames] (1: pooled, 0: silence or padding)
// to voice logits [B, Voices] and embeddings [B, Embedding].
//
// The convolutions run over time only: the frames are laid out as a
// Frames×1 image of Mels channels, so that nn.Conv2D (stride 1, same
// padding, which every backend can differentiate) with a Kernel×1 kernel
// is a 1-D convolution. Mean and standard-deviation pooling over the
// masked frames make the embedding independent of the window's length
// and of where the speech sits in it.
func (c Config) Forward(w nn.Weights, x, mask *Node) (logits, emb *Node) {
	d := x.Shape().Dimensions
	b, t := d[0], d[1]
	h := Reshape(x, b, t, 1, c.Mels)
	for i, width := range c.Widths {
		h = nn.Conv2D(h, w.Get("convs.%d.weight", i))
		h = Add(h, Reshape(w.Get("convs.%d.bias", i), 1, 1, 1, width))
		h = Max(h, ZerosLike(h))
	}
	ch := c.Widths[len(c.Widths)-1]
	h = Reshape(h, b, t, ch)
	m := Reshape(mask, b, t, 1)
	n := MaxScalar(ReduceSum(m, 1), 1) // [B, 1]: a silent window pools zeros
	mean := Div(ReduceSum(Mul(h, m), 1), n)
	meanSq := Div(ReduceSum(Mul(Square(h), m), 1), n)
	variance := Max(Sub(meanSq, Square(mean)), ZerosLike(mean))
	std := Sqrt(AddScalar(variance, 1e-4)) // ε keeps the gradient finite at zero variance
	pooled := Concatenate([]*Node{mean, std}, -1)
	emb = nn.RMSNorm(Add(nn.Linear(pooled, w.Get("embed.weight")), InsertAxes(w.Get("embed.bias"), 0)))
	logits = Add(nn.Linear(emb, w.Get("head.weight")), InsertAxes(w.Get("head.bias"), 0))
	return logits, emb
}

// Loss is the mean cross-entropy of a batch of windows and its accuracy,
// for voice indices labels [B] (int32).
func (c Config) Loss(w nn.Weights, x, mask, labels *Node) (loss, accuracy *Node) {
	logits, _ := c.Forward(w, x, mask)
	loss = nn.CrossEntropy(logits, labels, nil)
	pred := ArgMax(logits, -1, labels.DType())
	accuracy = ReduceAllMean(ConvertDType(Equal(pred, labels), logits.DType()))
	return loss, accuracy
}
