package vae

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"

	"github.com/latentlm/latentlm/imageio"
	"github.com/latentlm/latentlm/internal/atomicfile"
	"github.com/latentlm/latentlm/safetensors"
)

// This file holds the tokenizer's file formats: PNG images in, a latents
// safetensors file between, PNG images out, as `latentlm vae encode`,
// `decode` and `reconstruct` use them.

// LatentsTensor is the name of the tensor a latents file holds: F32
// [N, Items, Channels], normalised latents (z − mean)/std, one row per image.
const LatentsTensor = "latents"

// EncodePNGs reads each PNG at paths, exactly ImageSize×ImageSize and
// opaque (imageio.ReadGray for a grayscale tokenizer, which also refuses
// colour; imageio.ReadRGB for an RGB one), and encodes them all, in order,
// like Encode: μ, or with sample set a draw of the posterior.
func (m *Model) EncodePNGs(paths []string, sample bool) ([][]float32, error) {
	if len(paths) == 0 {
		return nil, errors.New("vae: no images to encode")
	}
	c := m.Config
	imgs := make([][]float32, 0, len(paths))
	read := imageio.ReadGray
	if c.ImageChannels() == 3 {
		read = imageio.ReadRGB
	} else if c.ImageChannels() != 1 {
		return nil, fmt.Errorf("vae: PNG images have 1 or 3 channels, this tokenizer takes %d", c.ImageChannels())
	}
	for _, p := range paths {
		img, err := read(p, c.ImageSize, c.ImageSize)
		if err != nil {
			return nil, err
		}
		imgs = append(imgs, img)
	}
	return m.Encode(imgs, sample)
}

// WriteLatents saves normalised latents (as Encode returns them, each
// Items·Channels values) atomically to a safetensors file at path: the
// tensor LatentsTensor, F32 [len(zs), Items, Channels], with the metadata
// normalised=true and kind=Config.Kind.
func (m *Model) WriteLatents(path string, zs [][]float32) error {
	c := m.Config
	per := c.Items() * c.Channels
	flat := make([]float32, 0, len(zs)*per)
	for i, z := range zs {
		if len(z) != per {
			return fmt.Errorf("writing %s: latent %d has %d values, want %d (%d items × %d channels)", path, i, len(z), per, c.Items(), c.Channels)
		}
		flat = append(flat, z...)
	}
	t := safetensors.FromFloat32(LatentsTensor, []int{len(zs), c.Items(), c.Channels}, flat)
	return safetensors.Save(path, []safetensors.Tensor{t}, map[string]string{"normalised": "true", "kind": c.Kind.String()})
}

// ReadLatents reads a latents file (see WriteLatents) for this tokenizer:
// the tensor LatentsTensor must be F32 [N, Items, Channels] and every value
// finite; the error otherwise names the file, and for a non-finite value
// the image, item and channel holding it. It returns one slice of
// Items·Channels values per image, ready for Decode.
func (m *Model) ReadLatents(path string) ([][]float32, error) {
	c := m.Config
	file, err := safetensors.Load(path)
	if err != nil {
		return nil, err
	}
	t, ok := file.Get(LatentsTensor)
	if !ok {
		return nil, fmt.Errorf("%s: no tensor named %s", path, LatentsTensor)
	}
	if t.DType != safetensors.F32 || len(t.Shape) != 3 || t.Shape[1] != c.Items() || t.Shape[2] != c.Channels {
		return nil, fmt.Errorf("%s: latents are %s %v, this tokenizer needs F32 [N, %d, %d]", path, t.DType, t.Shape, c.Items(), c.Channels)
	}
	if t.Shape[0] == 0 {
		return nil, fmt.Errorf("%s: latents hold no images (shape %v)", path, t.Shape)
	}
	flat, err := t.Float32()
	if err != nil {
		return nil, err
	}
	per := c.Items() * c.Channels
	for i, v := range flat {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("%s: latents of image %d hold a non-finite value (%v at item %d, channel %d)", path, i/per, v, i%per/c.Channels, i%c.Channels)
		}
	}
	zs := make([][]float32, t.Shape[0])
	for i := range zs {
		zs[i] = flat[i*per : (i+1)*per : (i+1)*per]
	}
	return zs, nil
}

// DecodeToFolder decodes the latents and writes image i as dir/NNNN.png
// (0000.png, 0001.png, …). The folder appears with all the images or not at
// all (see atomicfile.WriteDir): it must not exist, or be empty.
func (m *Model) DecodeToFolder(zs [][]float32, dir string) error {
	c := m.Config
	write, err := pngWriter(c)
	if err != nil {
		return err
	}
	imgs, err := m.Decode(zs)
	if err != nil {
		return err
	}
	return atomicfile.WriteDir(dir, func(tmp string) error {
		for i, img := range imgs {
			if err := write(filepath.Join(tmp, fmt.Sprintf("%04d.png", i)), img, c.ImageSize, c.ImageSize); err != nil {
				return err
			}
		}
		return nil
	})
}

// WriteReconstructionGrid encodes the images to μ, decodes them, and writes
// a PNG grid (gray or RGB, as the tokenizer's images) of cols columns at
// path in which each original is followed by its reconstruction.
func (m *Model) WriteReconstructionGrid(images [][]float32, path string, cols int) error {
	zs, err := m.Encode(images, false)
	if err != nil {
		return err
	}
	rec, err := m.Decode(zs)
	if err != nil {
		return err
	}
	grid := make([][]float32, 0, 2*len(images))
	for i := range images {
		grid = append(grid, images[i], rec[i])
	}
	c := m.Config
	return imageio.WriteGridOpts(path, grid, c.ImageSize, c.ImageSize, cols, imageio.GridOptions{Channels: c.ImageChannels()})
}

// pngWriter is the imageio writer of one image of c: gray or RGB.
func pngWriter(c Config) (func(path string, img []float32, h, w int) error, error) {
	switch c.ImageChannels() {
	case 1:
		return imageio.WriteGray, nil
	case 3:
		return imageio.WriteRGB, nil
	}
	return nil, fmt.Errorf("vae: PNG images have 1 or 3 channels, this tokenizer makes %d", c.ImageChannels())
}
