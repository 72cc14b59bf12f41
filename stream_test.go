package latentlm_test

import (
	"context"
	"errors"
	"testing"

	"github.com/latentlm/latentlm"
)

// TestGenerateStreamMatchesGenerate checks that streaming runs the same
// engine steps as Generate: the final images are identical, every latent is
// reported once in raster order, and the partial images fill in.
func TestGenerateStreamMatchesGenerate(t *testing.T) {
	g, err := latentlm.Load(mnist, latentlm.WithBatch(4))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	opts := latentlm.DefaultSampleOptions()
	opts.Steps, opts.Seed = 4, 7
	req := latentlm.Request{Classes: []int{3, 5, 8, 1, 0}} // two batches of 4 and 1
	want, err := g.Generate(context.Background(), req, opts)
	if err != nil {
		t.Fatal(err)
	}
	var events []latentlm.Progress
	var lastPartial []latentlm.Image
	got, err := g.GenerateStream(context.Background(), req, opts, func(p latentlm.Progress) error {
		events = append(events, p)
		if p.Offset == 0 && (p.Index == 0 || p.Index == p.Latents-1) {
			imgs, err := p.Partial()
			if err != nil {
				return err
			}
			if len(imgs) != p.Count || imgs[0].Size != 28 || len(imgs[0].Pixels) != 28*28 {
				t.Errorf("partial of latent %d: %d images of size %d", p.Index, len(imgs), imgs[0].Size)
			}
			lastPartial = imgs
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !sameImages(got, want) {
		t.Fatal("GenerateStream's images differ from Generate's for the same request and seed")
	}
	if len(events) != 2*49 {
		t.Fatalf("%d progress events, want 98 (49 latents × 2 batches)", len(events))
	}
	for i, p := range events {
		k := i % 49
		if p.Index != k || p.Row != k/7 || p.Col != k%7 || p.Latents != 49 || p.Grid != 7 {
			t.Fatalf("event %d: %+v", i, p)
		}
		if wantOff := i / 49 * 4; p.Offset != wantOff {
			t.Fatalf("event %d: offset %d, want %d", i, p.Offset, wantOff)
		}
	}
	// After the last latent the partial image is the final one.
	if !sameImages(lastPartial, want[:4]) {
		t.Error("the partial images after the last latent differ from the final images")
	}
	// And a second Generate still agrees: streaming left no state behind.
	again, err := g.Generate(context.Background(), req, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !sameImages(again, want) {
		t.Error("Generate after GenerateStream differs")
	}
}

// TestGenerateStreamStops checks that a cancelled context and a failing
// callback stop the generation at the next latent.
func TestGenerateStreamStops(t *testing.T) {
	g, err := latentlm.Load(mnist, latentlm.WithBatch(2))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	opts := latentlm.DefaultSampleOptions()
	opts.Steps = 2
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	count := 0
	_, err = g.GenerateStream(ctx, latentlm.Request{Class: 2, N: 2}, opts, func(p latentlm.Progress) error {
		count++
		if count == 3 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || count != 3 {
		t.Fatalf("cancelled at latent 3: %d latents, error %v", count, err)
	}
	stop := errors.New("enough")
	count = 0
	_, err = g.GenerateStream(context.Background(), latentlm.Request{Class: 2, N: 2}, opts, func(p latentlm.Progress) error {
		count++
		if count == 5 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || count != 5 {
		t.Fatalf("callback failing at latent 5: %d latents, error %v", count, err)
	}
	// The generator still works, and bad requests are refused before work.
	if _, err := g.GenerateStream(context.Background(), latentlm.Request{Class: 10, N: 1}, opts, nil); err == nil {
		t.Error("class 10 accepted")
	}
	if imgs, err := g.GenerateStream(context.Background(), latentlm.Request{Class: 1, N: 1}, opts, nil); err != nil || len(imgs) != 1 {
		t.Fatalf("after stops: %d images, %v", len(imgs), err)
	}
}
