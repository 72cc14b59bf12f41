package classifier

import (
	"errors"
	"fmt"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/nn"
)

// PredictBatch is the number of images each call of the compiled graph
// takes. Predict pads the last batch up to it, so that one graph serves
// every call (each new shape would compile a new graph).
const PredictBatch = 500

// Model is a trained classifier ready to score images.
type Model struct {
	Config  Config
	Store   *model.Store
	Info    map[string]any // the checkpoint's info (data, test accuracy…), if loaded
	predict *model.Exec
}

// NewModel wraps a store holding the weights of cfg.
func NewModel(b compute.Backend, cfg Config, store *model.Store) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Model{Config: cfg, Store: store}
	var err error
	m.predict, err = model.NewExec(b, store, func(scope *model.Scope, images *Node) []*Node {
		logits, feats := cfg.Forward(nn.WeightsOf(scope.Store(), images.Graph()), images)
		return []*Node{Softmax(logits, -1), feats}
	})
	return m, err
}

var errClosed = errors.New("classifier: model used after Close")

// Close releases the compiled graph. It is safe to call more than once;
// Predict fails after it.
func (m *Model) Close() {
	if m.predict != nil {
		m.predict.Finalize()
		m.predict = nil
	}
}

// Predict returns the class probabilities and the penultimate features of
// images, each Config.Pixels() values in [0, 1] (ImageSize² for a gray
// classifier; H×W×C, channels last, for a colour one).
func (m *Model) Predict(images [][]float32) (probs, feats [][]float32, err error) {
	if m.predict == nil {
		return nil, nil, errClosed
	}
	c := m.Config
	px := c.Pixels()
	for i, img := range images {
		if len(img) != px {
			if c.ImageChannels() == 1 {
				return nil, nil, fmt.Errorf("classifier: image %d has %d pixels, want %d (%d×%d)", i, len(img), px, c.ImageSize, c.ImageSize)
			}
			return nil, nil, fmt.Errorf("classifier: image %d has %d values, want %d (%d×%d pixels × %d channels)", i, len(img), px, c.ImageSize, c.ImageSize, c.ImageChannels())
		}
	}
	probs = make([][]float32, 0, len(images))
	feats = make([][]float32, 0, len(images))
	flat := make([]float32, PredictBatch*px)
	for start := 0; start < len(images); start += PredictBatch {
		end := min(start+PredictBatch, len(images))
		clear(flat)
		for i := start; i < end; i++ {
			copy(flat[(i-start)*px:], images[i])
		}
		in := tensors.FromFlatDataAndDimensions(flat, c.ImageDims(PredictBatch)...)
		out, err := m.predict.Call(in)
		nn.Release(in)
		if err != nil {
			return nil, nil, fmt.Errorf("classifier: %w", err)
		}
		p := tensors.MustCopyFlatData[float32](out[0])
		f := tensors.MustCopyFlatData[float32](out[1])
		nn.Release(out[0], out[1]) // C memory the collector does not see
		for i := 0; i < end-start; i++ {
			probs = append(probs, p[i*c.Classes:(i+1)*c.Classes:(i+1)*c.Classes])
			feats = append(feats, f[i*c.Features:(i+1)*c.Features:(i+1)*c.Features])
		}
	}
	return probs, feats, nil
}

// Save writes the classifier checkpoint; useEMA saves the moving average of
// the weights when the store has one (a training store).
func (m *Model) Save(dir string, info map[string]any, useEMA bool) error {
	return checkpoint.Save(dir, Kind, m.Config, info, m.Store, useEMA, nil)
}

// Load reads a classifier checkpoint; every mismatch with its config is an
// error that names the weight.
func Load(b compute.Backend, dir string) (*Model, error) {
	var cfg Config
	store, hdr, _, err := checkpoint.Load(dir, Kind, &cfg, nil)
	if err != nil {
		return nil, err
	}
	m, err := NewModel(b, cfg, store)
	if err != nil {
		return nil, err
	}
	m.Info = hdr.Info
	return m, nil
}
