package main

import (
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/latentlm/latentlm/speech"
	"github.com/latentlm/latentlm/wav"
)

func TestSpectrogramCommand(t *testing.T) {
	dir := t.TempDir()
	x := make([]float32, 8000) // half a second of 440 Hz
	for i := range x {
		x[i] = float32(0.3 * math.Sin(2*math.Pi*440*float64(i)/16000))
	}
	if err := wav.Write(filepath.Join(dir, "tone.wav"), wav.Audio{Rate: 16000, Samples: x}); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := cli(t, dir, "spectrogram", "tone.wav")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	f, err := os.Open(filepath.Join(dir, "tone.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Width != 50*speech.SpectrogramFramePixels || cfg.Height != speech.DefaultMel.Mels*speech.SpectrogramBandPixels {
		t.Errorf("picture %d×%d, want 50 frames wide and %d bands tall", cfg.Width, cfg.Height, speech.DefaultMel.Mels)
	}
	code, _, _ = cli(t, dir, "spectrogram", "tone.wav", "--out", "other.png")
	if _, err := os.Stat(filepath.Join(dir, "other.png")); code != 0 || err != nil {
		t.Errorf("--out after the file: exit %d, %v", code, err)
	}

	if err := os.WriteFile(filepath.Join(dir, "bad.wav"), []byte("not audio at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = cli(t, dir, "spectrogram", "bad.wav")
	expectOneLineError(t, code, stderr, "bad.wav")
	code, _, stderr = cli(t, dir, "spectrogram")
	expectOneLineError(t, code, stderr, "want one WAV file")
	// The picture is a PNG, named as one, and never the audio itself.
	code, _, stderr = cli(t, dir, "spectrogram", "tone.wav", "--out", "tone.jpg")
	expectOneLineError(t, code, stderr, "tone.jpg: want a name ending in .png")
	code, _, stderr = cli(t, dir, "spectrogram", "tone.wav", "--out", "")
	expectOneLineError(t, code, stderr, "empty output path")
	code, _, stderr = cli(t, dir, "spectrogram", "tone.wav", "--out", "tone.wav")
	expectOneLineError(t, code, stderr, "tone.wav")
	if a, err := wav.Read(filepath.Join(dir, "tone.wav")); err != nil || len(a.Samples) != len(x) {
		t.Errorf("the WAV after the refusals: %v", err)
	}
}

func TestSpeechCommandErrors(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := cli(t, dir, "speech", "data", "--texts", "0", "--out", dir)
	expectOneLineError(t, code, stderr, "--texts")
	code, _, stderr = cli(t, dir, "speech", "data", "--heldout", "nobody", "--out", filepath.Join(dir, "s"))
	expectOneLineError(t, code, stderr, "no voice \"nobody\"")
	code, _, stderr = cli(t, dir, "speech", "fly")
	expectOneLineError(t, code, stderr, "unknown subcommand")
	if _, err := speech.NewJudge(); err != nil {
		t.Skipf("judge not installed: %v", err)
	}
	code, _, stderr = cli(t, dir, "speech", "judge", "--folder", dir)
	expectOneLineError(t, code, stderr, "transcript.tsv")
}
