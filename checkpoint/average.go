package checkpoint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"

	"github.com/latentlm/latentlm/internal/atomicfile"
	"github.com/latentlm/latentlm/internal/jsonerr"
	"github.com/latentlm/latentlm/safetensors"
)

// Average writes into out a checkpoint whose weights are the element-wise
// mean of those of the checkpoints in dirs: the "uniform soup" of Wortsman et
// al. 2022 (Model soups, arXiv:2203.05482, eq. 1, θ = (1/k)·Σᵢ θᵢ).
//
// Why: warm restarts from one model, or snapshots of one run, lie in one
// basin of the loss, where the mean of the weights behaves like the mean of
// the models' predictions (an ensemble) at the cost of one model. It is the
// EMA's idea (train.Config.EMADecay) stretched over whole runs.
//
// The checkpoints must be of one kind and one architecture (identical
// config), with the same tensors (names, dtypes, shapes), and any tokenizer
// record in their info must agree: a mean of models that read different
// latents means nothing. Float tensors are averaged in float64; any other
// tensor must be byte-identical across the inputs. The output's info is the
// first input's, with "averaged_from" naming every input and the sha256 of
// its weights. The output is written as one unit (WriteSet), never over a
// folder that holds a checkpoint.
func Average(out string, dirs []string) error {
	if len(dirs) < 2 {
		return errors.New("averaging needs at least two checkpoints")
	}
	for _, d := range dirs {
		if filepath.Clean(d) == filepath.Clean(out) {
			return fmt.Errorf("%s is both an input and the output", d)
		}
	}
	if _, err := os.Stat(filepath.Join(out, ConfigFile)); err == nil {
		return fmt.Errorf("%s already holds a checkpoint: choose another output folder", out)
	}
	var (
		first   *Header
		files   []*safetensors.File
		sources []map[string]string
	)
	for k, d := range dirs {
		h, f, err := readRaw(d)
		if err != nil {
			return err
		}
		if k == 0 {
			first = h
		} else if err := sameModel(dirs[0], first, d, h); err != nil {
			return err
		} else if err := sameTensors(dirs[0], files[0], d, f); err != nil {
			return err
		}
		sum, err := FileSHA256(filepath.Join(d, WeightsFile))
		if err != nil {
			return err
		}
		files = append(files, f)
		sources = append(sources, map[string]string{"path": d, "sha256": sum})
	}
	mean := make([]safetensors.Tensor, len(files[0].Tensors))
	for i, t := range files[0].Tensors {
		m, err := meanTensor(t, files, i, dirs)
		if err != nil {
			return err
		}
		mean[i] = m
	}
	info := map[string]any{}
	for k, v := range first.Info {
		info[k] = v
	}
	info["averaged_from"] = sources
	hdr, err := json.MarshalIndent(Header{Kind: first.Kind, Config: first.Config, Info: info}, "", "  ")
	if err != nil {
		return err
	}
	return WriteSet(out, func(staging string) error {
		if err := safetensors.Save(filepath.Join(staging, WeightsFile), mean, files[0].Metadata); err != nil {
			return err
		}
		return atomicfile.WriteBytes(filepath.Join(staging, ConfigFile), append(hdr, '\n'))
	})
}

// readRaw reads a checkpoint's header and weights without knowing its
// architecture.
func readRaw(dir string) (*Header, *safetensors.File, error) {
	h, err := readHeader(dir)
	if err != nil {
		return nil, nil, err
	}
	f, err := safetensors.Load(filepath.Join(dir, WeightsFile))
	if err != nil {
		return nil, nil, err
	}
	return h, f, nil
}

// sameModel checks that b is the same kind and architecture as a and read
// the same tokenizer.
func sameModel(adir string, a *Header, bdir string, b *Header) error {
	if a.Kind != b.Kind {
		return fmt.Errorf("%s holds a %q model and %s a %q one: only one kind can be averaged", adir, a.Kind, bdir, b.Kind)
	}
	var ac, bc any
	if err := json.Unmarshal(a.Config, &ac); err != nil {
		return fmt.Errorf("%s: invalid config: %v", adir, jsonerr.Describe(err))
	}
	if err := json.Unmarshal(b.Config, &bc); err != nil {
		return fmt.Errorf("%s: invalid config: %v", bdir, jsonerr.Describe(err))
	}
	if !reflect.DeepEqual(ac, bc) {
		return fmt.Errorf("%s and %s have different architectures (config): only one can be averaged", adir, bdir)
	}
	if !reflect.DeepEqual(a.Info["tokenizer"], b.Info["tokenizer"]) {
		return fmt.Errorf("%s and %s were trained on different tokenizers (info.tokenizer): their weights read different latents", adir, bdir)
	}
	return nil
}

// sameTensors checks that b holds the tensors of a, by name, dtype and shape.
func sameTensors(adir string, a *safetensors.File, bdir string, b *safetensors.File) error {
	if len(a.Tensors) != len(b.Tensors) {
		return fmt.Errorf("%s has %d tensors and %s %d", adir, len(a.Tensors), bdir, len(b.Tensors))
	}
	for i, t := range a.Tensors {
		u := b.Tensors[i]
		if t.Name != u.Name || t.DType != u.DType || !reflect.DeepEqual(t.Shape, u.Shape) {
			return fmt.Errorf("%s's tensor %s (%s %v) does not match %s's %s (%s %v)", adir, t.Name, t.DType, t.Shape, bdir, u.Name, u.DType, u.Shape)
		}
	}
	return nil
}

// meanTensor is the mean of tensor i across files (read from dirs): float32
// and float64 values are summed in float64; anything else must be identical.
func meanTensor(t safetensors.Tensor, files []*safetensors.File, i int, dirs []string) (safetensors.Tensor, error) {
	column := make([]safetensors.Tensor, len(files))
	for k, f := range files {
		column[k] = f.Tensors[i]
	}
	switch t.DType {
	case safetensors.F32:
		v, err := mean(column, dirs, safetensors.Tensor.Float32)
		if err != nil {
			return safetensors.Tensor{}, err
		}
		return safetensors.FromFloat32(t.Name, t.Shape, v), nil
	case safetensors.F64:
		v, err := mean(column, dirs, safetensors.Tensor.Float64)
		if err != nil {
			return safetensors.Tensor{}, err
		}
		return safetensors.FromFloat64(t.Name, t.Shape, v), nil
	}
	for k, u := range column[1:] {
		if !bytes.Equal(u.Data, t.Data) {
			return safetensors.Tensor{}, fmt.Errorf("tensor %s (%s) differs between checkpoints %s and %s and cannot be averaged", t.Name, t.DType, dirs[0], dirs[k+1])
		}
	}
	return t, nil
}

// mean is the element-wise mean of the tensors' values (of the checkpoints
// in dirs), summed in float64. A NaN or infinite weight is refused by
// checkpoint and tensor: it would make every mean it enters one too, and the
// averaged checkpoint would fail only when used.
func mean[T float32 | float64](ts []safetensors.Tensor, dirs []string, values func(safetensors.Tensor) ([]T, error)) ([]T, error) {
	var sum []float64
	for k, t := range ts {
		v, err := values(t)
		if err != nil {
			return nil, err
		}
		if sum == nil {
			sum = make([]float64, len(v))
		}
		for j, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return nil, fmt.Errorf("%s: tensor %s holds %v at index %d, and cannot be averaged", dirs[k], t.Name, x, j)
			}
			sum[j] += float64(x)
		}
	}
	out := make([]T, len(sum))
	for j, s := range sum {
		out[j] = T(s / float64(len(ts)))
	}
	return out, nil
}
