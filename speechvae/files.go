package speechvae

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"

	"github.com/latentlm/latentlm/safetensors"
)

// LatentsTensor is the tensor name of a latents file: F32 [L, Channels],
// normalised latent frames of one utterance.
const LatentsTensor = "latents"

// WriteLatents saves the latent frames of one utterance of n samples; the
// metadata keeps n, so that decoding restores the exact length.
func (m *Model) WriteLatents(path string, z [][]float32, n int) error {
	c := m.Config
	flat := make([]float32, 0, len(z)*c.Channels)
	for i, row := range z {
		if len(row) != c.Channels {
			return fmt.Errorf("writing %s: latent frame %d has %d values, want %d", path, i, len(row), c.Channels)
		}
		flat = append(flat, row...)
	}
	t := safetensors.FromFloat32(LatentsTensor, []int{len(z), c.Channels}, flat)
	meta := latentsMetadata(c)
	meta["samples"] = strconv.Itoa(n)
	return safetensors.Save(path, []safetensors.Tensor{t}, meta)
}

// latentsMetadata is what a latents file records of the tokenizer that
// wrote it, beside the sample count: latents of another kind, domain or
// frame rate mean something else to a decoder, even with as many channels.
func latentsMetadata(c Config) map[string]string {
	return map[string]string{"normalised": "true", "kind": c.Kind.String(), "domain": c.Domain,
		"frame_rate_hz": strconv.FormatFloat(c.FrameRate(), 'g', -1, 64)}
}

// ReadLatents reads a latents file (WriteLatents) for this tokenizer and
// the number of samples it decodes to (0 when the file does not say: all
// of its frames). Every problem is an error naming the file.
func (m *Model) ReadLatents(path string) ([][]float32, int, error) {
	c := m.Config
	file, err := safetensors.Load(path)
	if err != nil {
		return nil, 0, err
	}
	t, ok := file.Get(LatentsTensor)
	if !ok {
		return nil, 0, fmt.Errorf("%s: no tensor named %s", path, LatentsTensor)
	}
	if t.DType != safetensors.F32 || len(t.Shape) != 2 || t.Shape[1] != c.Channels || t.Shape[0] == 0 {
		return nil, 0, fmt.Errorf("%s: latents are %s %v, this tokenizer needs F32 [frames ≥ 1, %d]", path, t.DType, t.Shape, c.Channels)
	}
	flat, err := t.Float32()
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	if i := firstNonFinite(flat); i >= 0 {
		return nil, 0, fmt.Errorf("%s: latent frame %d holds a non-finite value (%v at channel %d)", path, i/c.Channels, flat[i], i%c.Channels)
	}
	want := latentsMetadata(c)
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if v, ok := file.Metadata[k]; ok && v != want[k] {
			return nil, 0, fmt.Errorf("%s: written by a tokenizer with %s=%s, and this one has %s=%s: decode it with the tokenizer that encoded it", path, k, v, k, want[k])
		}
	}
	n := 0
	if s, ok := file.Metadata["samples"]; ok {
		if n, err = strconv.Atoi(s); err != nil || n < 0 || n > t.Shape[0]*c.SamplesPerLatent() {
			return nil, 0, fmt.Errorf("%s: metadata samples=%q does not fit %d frames of %d samples", path, s, t.Shape[0], c.SamplesPerLatent())
		}
	}
	return latentRows(flat, c.Channels), n, nil
}

// latentRows splits flat, rows of channels values one after another, into
// rows that share its memory, each capped at its end so that appending to
// one cannot overwrite the next.
func latentRows(flat []float32, channels int) [][]float32 {
	rows := make([][]float32, len(flat)/channels)
	for i := range rows {
		rows[i] = flat[i*channels : (i+1)*channels : (i+1)*channels]
	}
	return rows
}

// firstNonFinite is the index of the first NaN or infinity in x, or -1.
func firstNonFinite(x []float32) int {
	for i, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return i
		}
	}
	return -1
}
