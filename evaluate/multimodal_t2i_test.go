package evaluate

import (
	"context"
	"testing"

	"github.com/latentlm/latentlm/backend"
	"github.com/latentlm/latentlm/canvas"
)

// drawer is a MultimodalModel that "draws" by copying a real test canvas:
// of the caption's scene for single images, and for pairs of the same
// layout with image A's class changed, so that every pair is unfaithful
// with exactly one of its two digits right.
type drawer struct {
	MultimodalModel
	names   canvas.Names
	byScene map[int][]float32
}

func (d drawer) ImagesFor(_ context.Context, captions []string) ([][]float32, error) {
	out := make([][]float32, len(captions))
	for i, c := range captions {
		s, err := d.names.Parse(c)
		if err != nil {
			return nil, err
		}
		if !s.Layout.Single() {
			s.A = (s.A + 1) % canvas.Classes
		}
		out[i] = d.byScene[s.ID()]
	}
	return out, nil
}

// TestTextToImageBreakdown: with the shipped judge reading real canvases,
// faithful single images and half-right pairs show in the report as a
// high single-image rate, no faithful pair and about three digits right
// in four.
func TestTextToImageBreakdown(t *testing.T) {
	b, err := backend.Open("onnx")
	if err != nil {
		t.Fatal(err)
	}
	judge, err := LoadJudge(b, "../weights/judge-mnist-canvas")
	if err != nil {
		t.Fatal(err)
	}
	test, err := canvas.Load("mnist-canvas", "test")
	if err != nil {
		t.Fatal(err)
	}
	names, err := canvas.NamesOf("mnist-canvas")
	if err != nil {
		t.Fatal(err)
	}
	imgs, labels := DatasetImages(test)
	d := drawer{names: names, byScene: map[int][]float32{}}
	for i, l := range labels {
		if d.byScene[l] == nil {
			d.byScene[l] = imgs[i]
		}
	}
	_, real, err := judge.Predict(imgs[:64])
	if err != nil {
		t.Fatal(err)
	}
	r, err := TextToImageWith(context.Background(), d, judge, names, test, 1, 1, real)
	if err != nil {
		t.Fatal(err)
	}
	if r.Single.N != 40 || r.Pair.N != 200 || r.Seen.N+r.HeldOut.N != 240 {
		t.Fatalf("counts: single %d, pair %d, seen %d, held-out %d", r.Single.N, r.Pair.N, r.Seen.N, r.HeldOut.N)
	}
	// The judge reads 98% of real canvases right; one canvas per scene.
	if r.Single.Rate < 0.9 || r.Pair.Rate > 0.05 {
		t.Errorf("single images %.3f faithful (want ≥ 0.9), pairs %.3f (want ≈ 0)", r.Single.Rate, r.Pair.Rate)
	}
	// 40 single digits and 400 pair digits (half of them right) where the
	// layout is read right: about (40 + 200) / 440.
	if r.Digits.N < 400 || r.Digits.Rate < 0.5 || r.Digits.Rate > 0.6 {
		t.Errorf("digits right %d/%d, want about 240/440", r.Digits.Correct, r.Digits.N)
	}
	if r.Layout.Rate < 0.95 {
		t.Errorf("layout right %.3f, want ≥ 0.95 for real canvases", r.Layout.Rate)
	}
}
