// Package wav reads and writes the WAV files of the speech data: RIFF/WAVE
// files of 16-bit linear PCM, the format every synthesiser and recogniser
// of this project speaks, written with encoding/binary rather than a
// dependency, since the subset needed is small and a strict reader is
// easier to trust (and fuzz) than a general one.
//
// Reading is strict on purpose: a training set that silently held 8-bit,
// float or truncated audio would poison a tokenizer without any visible
// symptom, so every departure from 16-bit PCM is an error that names the
// file and the problem. Any sample rate from MinRate to MaxRate is accepted
// and reported (callers resample; see package speech), and stereo is mixed
// down to mono.
package wav

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/latentlm/latentlm/internal/atomicfile"
	"github.com/latentlm/latentlm/internal/boundedio"
)

// MaxFileSize bounds the WAV files Read accepts, whole, into memory: an hour
// of 16 kHz stereo (230 MB) fits; a device or a mislabelled disk image does
// not.
const MaxFileSize = 256 << 20

// MinRate and MaxRate bound the sample rates accepted. 8 kHz is the lowest
// rate of recorded speech (the telephone's); below it a file is not speech
// this project can use, and resampling it to 16 kHz would multiply its
// samples without bound (a 3 s clip labelled 1 Hz claims 13 hours). Rates
// above MaxRate are not audio either, and bounding them keeps resampling
// costs bounded.
const (
	MinRate = 8000
	MaxRate = 384000
)

// Audio is a mono signal: Samples in [-1, 1) at Rate samples per second.
type Audio struct {
	Rate    int
	Samples []float32
	// Channels is how many channels the file held (1 or 2) before it was
	// mixed down; it is informational and ignored by Encode.
	Channels int
}

// Seconds is the duration of a.
func (a Audio) Seconds() float64 {
	if a.Rate <= 0 {
		return 0
	}
	return float64(len(a.Samples)) / float64(a.Rate)
}

// Format codes of the fmt chunk: plain PCM, and WAVE_FORMAT_EXTENSIBLE,
// which some tools write for any PCM file and whose sub-format GUID then
// says PCM.
const (
	formatPCM        = 1
	formatExtensible = 0xFFFE
)

// pcmGUID is KSDATAFORMAT_SUBTYPE_PCM as it is stored in a file.
var pcmGUID = []byte{0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71}

// Read reads the WAV file at path (a regular file of at most MaxFileSize
// bytes). Errors name the path and the problem.
func Read(path string) (Audio, error) {
	b, err := boundedio.ReadFile(path, MaxFileSize)
	if err != nil {
		return Audio{}, fmt.Errorf("wav: reading %s: %w", path, err)
	}
	a, err := Decode(b)
	if err != nil {
		return Audio{}, fmt.Errorf("wav: reading %s: %w", path, err)
	}
	return a, nil
}

// Decode parses the bytes of a WAV file.
//
// Accepted: a RIFF/WAVE file with one fmt chunk of PCM (format 1, or
// WAVE_FORMAT_EXTENSIBLE with the PCM sub-format) at 16 bits per sample,
// one or two channels, a sample rate from MinRate to MaxRate with consistent byte
// rate and block alignment, and one data chunk after it whose size is a
// whole number of frames. Other chunks (LIST, fact, …) are skipped. Bytes
// after the end that the RIFF header declares are ignored, as players do.
//
// Refused, each with its own message: another container or format, other
// sample widths, more channels, a truncated file (a chunk that runs past
// the end), a missing or repeated fmt or data chunk, a data chunk before
// fmt, and the placeholder sizes (0 or 0xFFFFFFFF) that streaming writers
// leave when they cannot seek back.
func Decode(b []byte) (Audio, error) {
	if len(b) < 12 {
		return Audio{}, fmt.Errorf("not a WAV file: %d bytes, shorter than a RIFF header", len(b))
	}
	if string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return Audio{}, fmt.Errorf("not a WAV file (starts with %q, want \"RIFF....WAVE\")", printable(b[:12]))
	}
	riff := int64(binary.LittleEndian.Uint32(b[4:8]))
	if riff == 0 || riff == math.MaxUint32 {
		return Audio{}, fmt.Errorf("RIFF size is the placeholder %#x (written by a stream that was never finished)", riff)
	}
	if riff < 4 {
		return Audio{}, fmt.Errorf("RIFF size %d is too small to hold the WAVE tag", riff)
	}
	if riff+8 > int64(len(b)) {
		return Audio{}, fmt.Errorf("truncated: the RIFF header declares %d bytes, the file holds %d", riff+8, len(b))
	}
	body := b[12 : riff+8]

	var (
		haveFmt  bool
		channels int
		rate     int
		data     []byte
	)
	for off := int64(0); off < int64(len(body)); {
		if int64(len(body))-off < 8 {
			return Audio{}, fmt.Errorf("truncated: %d stray bytes at offset %d where a chunk header (8 bytes) should be", int64(len(body))-off, off+12)
		}
		id := body[off : off+4]
		size := int64(binary.LittleEndian.Uint32(body[off+4 : off+8]))
		start := off + 8
		if start+size > int64(len(body)) {
			return Audio{}, fmt.Errorf("truncated: chunk %q at offset %d declares %d bytes, only %d remain", printable(id), off+12, size, int64(len(body))-start)
		}
		chunk := body[start : start+size]
		switch string(id) {
		case "fmt ":
			if haveFmt {
				return Audio{}, fmt.Errorf("two fmt chunks (the second at offset %d)", off+12)
			}
			var err error
			if channels, rate, err = parseFmt(chunk); err != nil {
				return Audio{}, err
			}
			haveFmt = true
		case "data":
			if data != nil {
				return Audio{}, fmt.Errorf("two data chunks (the second at offset %d)", off+12)
			}
			if !haveFmt {
				return Audio{}, errors.New("data chunk before the fmt chunk")
			}
			if size == math.MaxUint32 {
				return Audio{}, errors.New("data size is the placeholder 0xFFFFFFFF (written by a stream that was never finished)")
			}
			if size%int64(2*channels) != 0 {
				return Audio{}, fmt.Errorf("data chunk of %d bytes is not a whole number of %d-byte frames", size, 2*channels)
			}
			data = chunk
		}
		// Chunks are padded to an even size; the pad byte may be missing
		// after the last one.
		off = start + size + size%2
	}
	if !haveFmt {
		return Audio{}, errors.New("no fmt chunk")
	}
	if data == nil {
		return Audio{}, errors.New("no data chunk")
	}
	n := len(data) / (2 * channels)
	out := make([]float32, n)
	for i := range out {
		if channels == 1 {
			out[i] = float32(int16(binary.LittleEndian.Uint16(data[2*i:]))) / 32768
			continue
		}
		l := int32(int16(binary.LittleEndian.Uint16(data[4*i:])))
		r := int32(int16(binary.LittleEndian.Uint16(data[4*i+2:])))
		out[i] = float32(l+r) / 65536
	}
	return Audio{Rate: rate, Samples: out, Channels: channels}, nil
}

// parseFmt checks a fmt chunk and returns its channels and sample rate.
func parseFmt(c []byte) (channels, rate int, err error) {
	if len(c) < 16 {
		return 0, 0, fmt.Errorf("fmt chunk of %d bytes, want at least 16", len(c))
	}
	format := binary.LittleEndian.Uint16(c[0:])
	channels = int(binary.LittleEndian.Uint16(c[2:]))
	rate64 := int64(binary.LittleEndian.Uint32(c[4:]))
	byteRate := int64(binary.LittleEndian.Uint32(c[8:]))
	align := int(binary.LittleEndian.Uint16(c[12:]))
	bits := int(binary.LittleEndian.Uint16(c[14:]))
	switch format {
	case formatPCM:
	case formatExtensible:
		if len(c) < 40 {
			return 0, 0, fmt.Errorf("WAVE_FORMAT_EXTENSIBLE fmt chunk of %d bytes, want 40", len(c))
		}
		if !bytes.Equal(c[24:40], pcmGUID) {
			return 0, 0, errors.New("WAVE_FORMAT_EXTENSIBLE with a sub-format other than PCM (float or compressed audio); convert it to 16-bit PCM")
		}
	case 3:
		return 0, 0, errors.New("32-bit float samples; only 16-bit PCM is read (convert with e.g. sox in.wav -b 16 out.wav)")
	default:
		return 0, 0, fmt.Errorf("audio format %#x is not PCM; only 16-bit PCM is read", format)
	}
	if bits != 16 {
		return 0, 0, fmt.Errorf("%d-bit samples; only 16-bit PCM is read", bits)
	}
	if channels != 1 && channels != 2 {
		return 0, 0, fmt.Errorf("%d channels; only mono and stereo are read", channels)
	}
	if rate64 < MinRate || rate64 > MaxRate {
		return 0, 0, fmt.Errorf("sample rate %d Hz is outside %d…%d", rate64, MinRate, MaxRate)
	}
	if align != 2*channels {
		return 0, 0, fmt.Errorf("block alignment %d, want %d for %d channels of 16 bits", align, 2*channels, channels)
	}
	if byteRate != rate64*int64(align) {
		return 0, 0, fmt.Errorf("byte rate %d, want %d (rate × block alignment)", byteRate, rate64*int64(align))
	}
	return channels, int(rate64), nil
}

// printable shows a chunk or file tag with anything but printable ASCII as
// '?', for error messages.
func printable(b []byte) string {
	out := make([]byte, len(b))
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		out[i] = c
	}
	return string(out)
}

// MaxSamples is the most samples Encode writes: the data chunk's size must
// fit the 32-bit field of the RIFF header.
const MaxSamples = (math.MaxUint32 - 44) / 2

// Encode writes a as a canonical 44-byte-header WAV file of 16-bit mono
// PCM. Samples are clamped to [-1, 1] and rounded; NaN becomes 0, so that
// a diverged model's output is still a valid (silent) file.
func Encode(w io.Writer, a Audio) error {
	if a.Rate < MinRate || a.Rate > MaxRate {
		return fmt.Errorf("sample rate %d Hz is outside %d…%d", a.Rate, MinRate, MaxRate)
	}
	if len(a.Samples) > MaxSamples {
		return fmt.Errorf("%d samples do not fit a WAV file (at most %d)", len(a.Samples), MaxSamples)
	}
	n := uint32(2 * len(a.Samples))
	var h [44]byte
	copy(h[0:], "RIFF")
	binary.LittleEndian.PutUint32(h[4:], 36+n)
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)
	binary.LittleEndian.PutUint16(h[20:], formatPCM)
	binary.LittleEndian.PutUint16(h[22:], 1)
	binary.LittleEndian.PutUint32(h[24:], uint32(a.Rate))
	binary.LittleEndian.PutUint32(h[28:], uint32(2*a.Rate))
	binary.LittleEndian.PutUint16(h[32:], 2)
	binary.LittleEndian.PutUint16(h[34:], 16)
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], n)
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	_, err := w.Write(PCM16(a.Samples))
	return err
}

// PCM16 converts samples to little-endian 16-bit PCM, clamping to [-1, 1]
// and mapping NaN to 0 (the raw input of recognisers such as pocketsphinx).
func PCM16(samples []float32) []byte {
	buf := make([]byte, 2*len(samples))
	for i, v := range samples {
		binary.LittleEndian.PutUint16(buf[2*i:], uint16(quantize(v)))
	}
	return buf
}

// quantize maps [-1, 1] to int16, rounding to nearest.
func quantize(v float32) int16 {
	x := float64(v) * 32768
	switch {
	case x != x: // NaN
		return 0
	case x >= 32767:
		return 32767
	case x <= -32768:
		return -32768
	}
	return int16(math.Round(x))
}

// Write writes a to path with Encode; the file is replaced atomically, so
// an interrupted write never leaves a truncated WAV that a later run reads.
func Write(path string, a Audio) error {
	if err := atomicfile.Write(path, func(w io.Writer) error { return Encode(w, a) }); err != nil {
		return fmt.Errorf("wav: %w", err)
	}
	return nil
}
