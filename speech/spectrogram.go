package speech

import (
	"fmt"
	"math"

	"github.com/latentlm/latentlm/imageio"
	"github.com/latentlm/latentlm/wav"
)

// Picture settings: 80 dB of range between black and white (the span
// between speech and the quietest detail worth seeing), each mel band
// drawn SpectrogramBandPixels rows tall and each 10 ms frame
// SpectrogramFramePixels columns wide, so that 80 bands make a 240-pixel
// picture and a second 200 pixels, big enough to read formants from.
const (
	SpectrogramRangeDB     = 80
	SpectrogramBandPixels  = 3
	SpectrogramFramePixels = 2
	// maxSpectrogramFrames bounds the picture's width: 30 minutes of audio.
	maxSpectrogramFrames = 180000
)

// SpectrogramImage returns the log-mel spectrogram of a as a grayscale
// picture: values in [0, 1] row-major, h rows (low frequencies at the
// bottom) by w columns (SpectrogramFramePixels per frame of DefaultSTFT). The loudest value
// is white and SpectrogramRangeDB below it black. Audio not at 16 kHz is
// resampled first, so pictures of any WAV compare.
func SpectrogramImage(a wav.Audio) (img []float32, h, w int, err error) {
	a, err = To16k(a)
	if err != nil {
		return nil, 0, 0, err
	}
	if len(a.Samples) == 0 {
		return nil, 0, 0, fmt.Errorf("speech: spectrogram: no samples")
	}
	if f := DefaultSTFT.Frames(len(a.Samples)); f > maxSpectrogramFrames {
		return nil, 0, 0, fmt.Errorf("speech: spectrogram: %.0f s of audio is more than the %d s a picture shows", a.Seconds(), maxSpectrogramFrames/100)
	}
	mel, err := LogMel(a.Samples, DefaultSTFT, DefaultMel)
	if err != nil {
		return nil, 0, 0, err
	}
	top := math.Inf(-1)
	for _, row := range mel {
		for _, v := range row {
			top = math.Max(top, float64(v))
		}
	}
	// ln power → dB is ×10/ln 10.
	span := SpectrogramRangeDB * math.Ln10 / 10
	bands := DefaultMel.Mels
	w, h = len(mel)*SpectrogramFramePixels, bands*SpectrogramBandPixels
	img = make([]float32, h*w)
	for t, row := range mel {
		for m, v := range row {
			g := float32(1 - (top-float64(v))/span) // clamped by WriteGray
			for p := range SpectrogramBandPixels {
				y := (bands-1-m)*SpectrogramBandPixels + p
				for q := range SpectrogramFramePixels {
					img[y*w+t*SpectrogramFramePixels+q] = g
				}
			}
		}
	}
	return img, h, w, nil
}

// WriteSpectrogram writes the picture of SpectrogramImage as a PNG.
func WriteSpectrogram(path string, a wav.Audio) error {
	img, h, w, err := SpectrogramImage(a)
	if err != nil {
		return err
	}
	return imageio.WriteGray(path, img, h, w)
}
