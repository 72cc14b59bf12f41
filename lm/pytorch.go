package lm

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/internal/guard"
	"github.com/latentlm/latentlm/internal/jsonerr"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/safetensors"
)

// PyTorchLabelTable is the public code's class table
// (LabelEmbedder.embedding_table in LatentLM/models/DiT.py): classes+1
// rows, the null class last. It is rows 0…Classes of tok_embeddings.weight.
const PyTorchLabelTable = "y_embedder.embedding_table.weight"

// ourOnly are our weights that the public class-conditional model lacks:
// tok_embeddings (whose first Classes+1 rows are PyTorchLabelTable) and the
// softmax head.
var ourOnly = []string{"tok_embeddings.weight", "lm_head.weight"}

// PyTorchCompatible reports, in one line, why the public PyTorch model
// (microsoft/unilm LatentLM/models/Transformer.py, flatten_input=True)
// cannot reproduce a model of this config; nil when it can.
func (c Config) PyTorchCompatible() error {
	pub := func(d int) int { return int(float64(d)*c.MLPRatio*2/3/64) * 64 } // Transformer.py's SwiGLU width, no floor
	switch {
	case c.Layout != LayoutPublic:
		return fmt.Errorf("layout %s: the public code reads [class] z0 … without <BOL> (train with layout public)", c.Layout)
	case c.HeadDim != c.Dim:
		return fmt.Errorf("head_dim %d ≠ dim %d: the public model's diffusion head is as wide as its backbone", c.HeadDim, c.Dim)
	case c.Vocab.Extra != 0:
		return fmt.Errorf("%d extra tokens: the public class-conditional model has only its class table", c.Vocab.Extra)
	case c.Target != diffusion.Epsilon:
		return fmt.Errorf("target %s: the public sampling scripts read the head as ε", c.Target)
	case pub(c.Dim) != nn.SwiGLUHidden(c.Dim, c.MLPRatio):
		return fmt.Errorf("dim %d with mlp_ratio %g: the public SwiGLU would have %d hidden units, ours has %d", c.Dim, c.MLPRatio, pub(c.Dim), nn.SwiGLUHidden(c.Dim, c.MLPRatio))
	}
	return c.Validate()
}

// PyTorchSpecs are the public model's weights for this config: every one of
// Specs but tok_embeddings and lm_head, and PyTorchLabelTable, sorted by
// name.
func (c Config) PyTorchSpecs() map[string]safetensors.Spec {
	want := map[string]safetensors.Spec{}
	for _, s := range c.Specs() {
		if !slices.Contains(ourOnly, s.Name) {
			want[s.Name] = safetensors.Spec{DType: safetensors.F32, Shape: s.Shape}
		}
	}
	want[PyTorchLabelTable] = safetensors.Spec{DType: safetensors.F32, Shape: []int{c.Vocab.Classes + 1, c.Dim}}
	return want
}

// ToPyTorch turns our weights (a checkpoint's model.safetensors) into the
// public model's state dict: the same tensors under the same names, bit
// for bit, with rows 0…Classes of tok_embeddings.weight as
// PyTorchLabelTable, and without lm_head.weight or the rows of <BOL> and
// <EOL>. It refuses a config the public model cannot reproduce.
func ToPyTorch(c Config, f *safetensors.File) ([]safetensors.Tensor, error) {
	if err := c.PyTorchCompatible(); err != nil {
		return nil, err
	}
	if err := f.Check(ourSpecs(c)); err != nil {
		return nil, fmt.Errorf("weights do not match their config: %w", err)
	}
	var out []safetensors.Tensor
	for _, t := range f.Tensors {
		switch t.Name {
		case "lm_head.weight":
		case "tok_embeddings.weight":
			rows := (c.Vocab.Classes + 1) * c.Dim * safetensors.F32.Size()
			out = append(out, safetensors.Tensor{Name: PyTorchLabelTable, DType: t.DType, Shape: []int{c.Vocab.Classes + 1, c.Dim}, Data: slices.Clone(t.Data[:rows])})
		default:
			out = append(out, t)
		}
	}
	return out, nil
}

// FromPyTorch turns the public model's state dict into our weights for the
// config c (which the public model must be able to reproduce): the same
// tensors under the same names, PyTorchLabelTable as rows 0…Classes of
// tok_embeddings.weight, and zeros for what the public model lacks (the
// rows of <BOL> and <EOL>, and lm_head.weight), which the public layout
// never reads. ToPyTorch of the result is the input again, bit for bit.
func FromPyTorch(c Config, f *safetensors.File) ([]safetensors.Tensor, error) {
	if err := c.PyTorchCompatible(); err != nil {
		return nil, err
	}
	if err := f.Check(c.PyTorchSpecs()); err != nil {
		return nil, fmt.Errorf("not the public model of this config: %w", err)
	}
	var out []safetensors.Tensor
	for _, t := range f.Tensors {
		if t.Name != PyTorchLabelTable {
			out = append(out, t)
			continue
		}
		v := c.Vocab.Size()
		data := make([]byte, v*c.Dim*safetensors.F32.Size())
		copy(data, t.Data)
		out = append(out, safetensors.Tensor{Name: "tok_embeddings.weight", DType: safetensors.F32, Shape: []int{v, c.Dim}, Data: data})
	}
	v := c.Vocab.Size()
	out = append(out, safetensors.Tensor{Name: "lm_head.weight", DType: safetensors.F32, Shape: []int{v, c.Dim}, Data: make([]byte, v*c.Dim*safetensors.F32.Size())})
	if err := (&safetensors.File{Tensors: out}).Check(ourSpecs(c)); err != nil {
		return nil, errors.Join(errors.New("lm: converted weights do not match the config"), err)
	}
	return out, nil
}

func ourSpecs(c Config) map[string]safetensors.Spec {
	want := map[string]safetensors.Spec{}
	for _, s := range c.Specs() {
		want[s.Name] = safetensors.Spec{DType: safetensors.F32, Shape: s.Shape}
	}
	return want
}

// ExportPyTorch writes the public model's weights of the LatentLM
// checkpoint in dir to the safetensors file out (metadata format=pt), or
// says in one line why the public model cannot reproduce it.
func ExportPyTorch(dir, out string) error {
	kind, err := checkpoint.ReadKind(dir)
	if err != nil {
		return err
	}
	if kind != Kind {
		return fmt.Errorf("%s holds a %q model: only a %q one has a public PyTorch counterpart (LatentLM/models/Transformer.py)", dir, kind, Kind)
	}
	var cfg Config
	if _, err := checkpoint.ReadHeader(dir, Kind, &cfg); err != nil {
		return err
	}
	if err := cfg.PyTorchCompatible(); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	path := filepath.Join(dir, checkpoint.WeightsFile)
	f, err := safetensors.Load(path)
	if err != nil {
		return err
	}
	ts, err := ToPyTorch(cfg, f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return safetensors.Save(out, ts, map[string]string{"format": "pt"})
}

// ImportPyTorch writes to dir a LatentLM checkpoint of config cfg from the
// public model's weights in the safetensors file path (FromPyTorch), with
// the tokenizer record tok (empty: sampling then needs the tokenizer named
// explicitly) and info in config.json.
func ImportPyTorch(path string, cfg Config, tok Tokenizer, info map[string]any, dir string) error {
	f, err := safetensors.Load(path)
	if err != nil {
		return err
	}
	ts, err := FromPyTorch(cfg, f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	store := model.NewStore()
	for _, t := range ts {
		v, err := t.Float32()
		if err != nil {
			return fmt.Errorf("%s: %s: %w", path, t.Name, err)
		}
		if _, err := store.CreateVariable(nn.WeightsScope+"/"+t.Name, tensors.FromFlatDataAndDimensions(v, t.Shape...)); err != nil {
			return err
		}
	}
	return Save(dir, cfg, store, tok, info)
}

// ReadConfigFile reads a LatentLM config from path: a checkpoint's
// config.json (kind latentlm) or the config object alone, as `latentlm
// import --config` takes it.
func ReadConfigFile(path string) (Config, error) {
	var cfg Config
	b, err := guard.ReadFile(path, checkpoint.MaxConfigBytes)
	if err != nil {
		return cfg, err
	}
	var hdr checkpoint.Header
	if err := json.Unmarshal(b, &hdr); err != nil {
		return cfg, fmt.Errorf("%s: invalid JSON: %v", path, jsonerr.Describe(err))
	}
	if hdr.Config != nil {
		if hdr.Kind != Kind {
			return cfg, fmt.Errorf("%s describes a %q model, want %q", path, hdr.Kind, Kind)
		}
		b = hdr.Config
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return cfg, fmt.Errorf("%s: invalid config: %v", path, jsonerr.Describe(err))
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}
