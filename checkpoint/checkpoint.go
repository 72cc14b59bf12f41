// Package checkpoint saves and loads models and training state.
//
// A model checkpoint is a folder:
//
//	config.json              what the model is: kind, architecture, training info
//	model.safetensors        the weights, under their PyTorch names
//	train_state.safetensors  everything else a run needs to resume (optional)
//
// Weights use the safetensors format so that standard readers (and the
// public PyTorch code, through docs/WEIGHTS.md) can open them. The training
// state holds every variable of the store — weights, Adam moments, step
// counters, learning rate, RNG state and EMA weights — so a resumed run
// continues bit for bit. The files of a save are written as one unit
// (WriteSet), so a kill or a full disk never leaves a mix of two saves.
package checkpoint

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/internal/atomicfile"
	"github.com/latentlm/latentlm/internal/boundedio"
	"github.com/latentlm/latentlm/internal/guard"
	"github.com/latentlm/latentlm/internal/jsonerr"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/safetensors"
)

// File names inside a checkpoint folder.
const (
	ConfigFile  = "config.json"
	WeightsFile = "model.safetensors"
	StateFile   = "train_state.safetensors"
)

// Header is config.json.
type Header struct {
	Kind   string          `json:"kind"`
	Config json.RawMessage `json:"config"`
	Info   map[string]any  `json:"info,omitempty"`
}

// Model is an architecture config that declares its weights.
type Model interface {
	Specs() []nn.Spec
	Validate() error
}

// Save writes dir/config.json and dir/model.safetensors. The weights are the
// EMA copies when useEMA is set and the store has them (sampling uses the EMA
// weights), else the live ones; extra tensors (such as latent statistics)
// are stored beside them.
func Save(dir, kind string, cfg Model, info map[string]any, store *model.Store, useEMA bool, extra []safetensors.Tensor) error {
	return WriteSet(dir, func(staging string) error { return save(staging, kind, cfg, info, store, useEMA, extra) })
}

func save(dir, kind string, cfg Model, info map[string]any, store *model.Store, useEMA bool, extra []safetensors.Tensor) error {
	var ts []safetensors.Tensor
	for _, s := range cfg.Specs() {
		v := store.GetVariable(nn.WeightsScope + "/" + s.Name)
		if useEMA {
			if ev := store.GetVariable(nn.EMAScope + "/" + s.Name); ev != nil {
				v = ev
			}
		}
		if v == nil {
			return fmt.Errorf("saving %s: weight %s missing from the model", dir, s.Name)
		}
		t, err := toSafetensor(s.Name, v)
		if err != nil {
			return err
		}
		ts = append(ts, t)
	}
	ts = append(ts, extra...)
	if err := safetensors.Save(filepath.Join(dir, WeightsFile), ts, map[string]string{"format": "pt", "kind": kind}); err != nil {
		return err
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	hdr, err := json.MarshalIndent(Header{Kind: kind, Config: raw, Info: info}, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(filepath.Join(dir, ConfigFile), append(hdr, '\n'))
}

// ReadHeader reads dir/config.json, checks its kind and decodes its config
// into cfg.
func ReadHeader(dir, kind string, cfg Model) (*Header, error) {
	h, err := readHeader(dir)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, ConfigFile)
	if h.Kind != kind {
		return nil, fmt.Errorf("%s: checkpoint holds a %q model, want %q", dir, h.Kind, kind)
	}
	if err := json.Unmarshal(h.Config, cfg); err != nil {
		return nil, fmt.Errorf("%s: invalid config: %v", path, jsonerr.Describe(err))
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return h, nil
}

// Load reads a checkpoint into a new store, after checking every weight's
// name, shape and dtype against the config (each mismatch is reported by
// name). extra, called once the config is decoded (their shapes may depend on
// it), names further tensors the checkpoint must have; they are
// returned, not put in the store.
func Load(dir, kind string, cfg Model, extra func() map[string]safetensors.Spec) (*model.Store, *Header, map[string]safetensors.Tensor, error) {
	h, err := ReadHeader(dir, kind, cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	path := filepath.Join(dir, WeightsFile)
	f, err := safetensors.Load(path)
	if err != nil {
		return nil, nil, nil, err
	}
	want := map[string]safetensors.Spec{}
	for _, s := range cfg.Specs() {
		want[s.Name] = safetensors.Spec{DType: safetensors.F32, Shape: s.Shape}
	}
	var extraSpecs map[string]safetensors.Spec
	if extra != nil {
		extraSpecs = extra()
	}
	for k, v := range extraSpecs {
		want[k] = v
	}
	if err := f.Check(want); err != nil {
		return nil, nil, nil, fmt.Errorf("%s does not match its config: %w", path, err)
	}
	store := model.NewStore()
	extras := map[string]safetensors.Tensor{}
	for _, t := range f.Tensors {
		if _, ok := extraSpecs[t.Name]; ok {
			extras[t.Name] = t
			continue
		}
		val, err := fromSafetensor(t)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		if _, err := store.CreateVariable(nn.WeightsScope+"/"+t.Name, val); err != nil {
			return nil, nil, nil, err
		}
	}
	return store, h, extras, nil
}

// SaveState writes every variable of the store to path, named by its store
// path, with metadata (for example the data seed) beside them.
func SaveState(path string, store *model.Store, meta map[string]string) error {
	var ts []safetensors.Tensor
	for v := range store.IterVariables() {
		t, err := toSafetensor(v.Path(), v)
		if err != nil {
			return err
		}
		ts = append(ts, t)
	}
	return safetensors.Save(path, ts, meta)
}

// LoadState restores the variables saved by SaveState into store, whose
// weights must already exist (created from the config): those must match in
// shape and dtype; the others (optimizer moments, counters, RNG, EMA) are
// created, not trainable. It returns the metadata.
func LoadState(path string, store *model.Store) (map[string]string, error) {
	f, err := safetensors.Load(path)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, t := range f.Tensors {
		val, err := fromSafetensor(t)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if v := store.GetVariable(t.Name); v != nil {
			if !v.Shape().Equal(val.Shape()) {
				errs = append(errs, fmt.Errorf("%s: shape %s in state, %s in model", t.Name, val.Shape(), v.Shape()))
				continue
			}
			if err := v.SetValue(val); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", t.Name, err))
			}
			continue
		}
		v, err := store.CreateVariable(t.Name, val)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", t.Name, err))
			continue
		}
		// Weights exist already (created from the config); whatever the
		// state adds is optimizer or bookkeeping state, never trained.
		v.SetTrainable(false)
	}
	if len(errs) > 0 {
		sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
		return nil, fmt.Errorf("%s does not match the model: %w", path, errors.Join(errs...))
	}
	return f.Metadata, nil
}

var toST = map[dtypes.DType]safetensors.DType{
	dtypes.Float32: safetensors.F32, dtypes.Float64: safetensors.F64,
	dtypes.Int64: safetensors.I64, dtypes.Int32: safetensors.I32,
	dtypes.Uint64: safetensors.U64, dtypes.Uint8: safetensors.U8,
}

func toSafetensor(name string, v *model.Variable) (safetensors.Tensor, error) {
	val, err := v.Value()
	if err != nil {
		return safetensors.Tensor{}, fmt.Errorf("reading %s: %w", name, err)
	}
	dt, ok := toST[val.DType()]
	if !ok {
		return safetensors.Tensor{}, fmt.Errorf("%s: dtype %s cannot be saved", name, val.DType())
	}
	var data []byte
	if err := val.ConstBytes(func(b []byte) { data = append([]byte(nil), b...) }); err != nil {
		return safetensors.Tensor{}, fmt.Errorf("reading %s: %w", name, err)
	}
	return safetensors.Tensor{Name: name, DType: dt, Shape: append([]int{}, val.Shape().Dimensions...), Data: data}, nil
}

func fromSafetensor(t safetensors.Tensor) (*tensors.Tensor, error) {
	dt := dtypes.InvalidDType
	for k, v := range toST {
		if v == t.DType {
			dt = k
		}
	}
	if dt == dtypes.InvalidDType {
		return nil, fmt.Errorf("%s: dtype %s not supported", t.Name, t.DType)
	}
	val := tensors.FromShape(shapes.Make(dt, t.Shape...))
	var err error
	if e := val.MutableBytes(func(b []byte) {
		if len(b) != len(t.Data) {
			err = fmt.Errorf("%s: %d bytes for shape %v", t.Name, len(t.Data), t.Shape)
			return
		}
		copy(b, t.Data)
	}); e != nil {
		return nil, e
	}
	return val, err
}

// DecodeInfo decodes the info entry key of a header into v.
func DecodeInfo(h *Header, key string, v any) error {
	raw, ok := h.Info[key]
	if !ok {
		return fmt.Errorf("config.json has no %q entry", key)
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("config.json entry %q: %v", key, jsonerr.Describe(err))
	}
	return nil
}

// InitKey is the config.json info entry of a run started from another
// checkpoint's weights (`--init DIR`): DIR.
const InitKey = "init"

// RecordedInit is the checkpoint the run in dir was started from (its
// InitKey entry), or "" for a run from fresh weights.
func RecordedInit(dir string) (string, error) {
	info, err := RecordedInfo(dir)
	if err != nil {
		return "", err
	}
	raw, ok := info[InitKey]
	if !ok {
		return "", nil
	}
	init, ok := raw.(string)
	if !ok {
		return "", fmt.Errorf("%s: config.json entry %q holds %v, not a folder", dir, InitKey, raw)
	}
	return init, nil
}

// RecordedInfo is the info entry of the checkpoint in dir's config.json:
// what its training run recorded of itself (its data and options), as
// JSON decodes it (numbers as float64); nil when it has none.
func RecordedInfo(dir string) (map[string]any, error) {
	h, err := readHeader(dir)
	if err != nil {
		return nil, err
	}
	return h.Info, nil
}

// SameLatentsKey is the config.json info entry of a tokenizer that was
// trained from another with its encoder and latent statistics kept fixed
// (`latentlm speech-vae train --decoder-only`): the checksums of the
// weights of every tokenizer whose latents it shares. Only its decoder
// differs, so a model trained on their latents reads it unchanged.
const SameLatentsKey = "same_latents_as"

// LatentLineage lists the weight checksums of the tokenizers whose latents
// the tokenizer in dir writes: its own first, then those its config.json
// records under SameLatentsKey. A model trained on latents of any of them
// may use it.
func LatentLineage(dir string) ([]string, error) {
	sum, err := FileSHA256(filepath.Join(dir, WeightsFile))
	if err != nil {
		return nil, err
	}
	h, err := readHeader(dir)
	if err != nil {
		return nil, err
	}
	lineage := []string{sum}
	if raw, ok := h.Info[SameLatentsKey]; ok {
		list, ok := raw.([]any)
		if !ok {
			return nil, fmt.Errorf("%s: config.json entry %q is not a list of checksums", dir, SameLatentsKey)
		}
		for _, x := range list {
			s, ok := x.(string)
			if !ok || len(s) != sha256.Size*2 {
				return nil, fmt.Errorf("%s: config.json entry %q holds %v, not a sha256 checksum", dir, SameLatentsKey, x)
			}
			if !slices.Contains(lineage, s) {
				lineage = append(lineage, s)
			}
		}
	}
	return lineage, nil
}

// SharesLatents reports whether the tokenizer in dir writes the latents of
// the tokenizer whose weights have checksum want: it is that one, or lists
// it in its lineage (LatentLineage). It also returns dir's own checksum.
func SharesLatents(dir, want string) (own string, ok bool, err error) {
	lineage, err := LatentLineage(dir)
	if err != nil {
		return "", false, err
	}
	return lineage[0], slices.Contains(lineage, want), nil
}

// FileSHA256 is the hex sha256 of a file, used to tie a model to the exact
// tokenizer it was trained with.
func FileSHA256(path string) (string, error) {
	f, _, _, err := boundedio.Open(path, safetensors.MaxFileSize)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// MaxConfigBytes bounds config.json: a real one is about 1 KB (its loss
// history lives in the training state), so anything near this is not one.
const MaxConfigBytes = 1 << 20

// readConfig reads a config.json: a regular file of at most MaxConfigBytes.
func readConfig(path string) ([]byte, error) { return guard.ReadFile(path, MaxConfigBytes) }

// ReadKind reads which kind of model dir holds, from its config.json, so
// that a loader can pick the architecture before decoding the config.
func ReadKind(dir string) (string, error) {
	h, err := readHeader(dir)
	if err != nil {
		return "", err
	}
	return h.Kind, nil
}

// readHeader reads dir/config.json (after finishing any interrupted save)
// without knowing what model it describes.
func readHeader(dir string) (*Header, error) {
	if st, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: not a checkpoint (no such folder)", dir)
	} else if err == nil && !st.IsDir() {
		return nil, fmt.Errorf("%s: not a checkpoint (a file, not a folder)", dir)
	}
	if err := Recover(dir); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, ConfigFile)
	raw, err := readConfig(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: not a checkpoint (no %s)", dir, ConfigFile)
		}
		return nil, err
	}
	var h Header
	if err := json.Unmarshal(raw, &h); err != nil {
		return nil, fmt.Errorf("%s: invalid JSON: %v", path, jsonerr.Describe(err))
	}
	return &h, nil
}
