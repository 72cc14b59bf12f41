package latentlm_test

import (
	"context"
	"errors"
	"testing"

	"github.com/latentlm/latentlm"
)

// TestDecoderJoinsMidDecode: items that join a running decode at later
// latents, with their own guidance scale, temperature and seed, get byte
// for byte the images each gets decoded alone; a cancelled item leaves at
// the next latent and frees its rows for the next item, which takes them
// without the batch growing.
func TestDecoderJoinsMidDecode(t *testing.T) {
	g := shared(t)
	const steps = 4
	opts := func(cfg, temp float64) latentlm.SampleOptions {
		return latentlm.SampleOptions{Steps: steps, CFG: cfg, Temperature: temp, Seed: 1}
	}
	type req struct {
		at   int // the step before which it joins
		item latentlm.BatchItem
		opts latentlm.SampleOptions
	}
	reqs := []req{
		{0, latentlm.BatchItem{Request: latentlm.Request{Class: 3, N: 2}, Seed: 5}, opts(4, 1)},
		{7, latentlm.BatchItem{Request: latentlm.Request{Class: 8, N: 1}, Seed: 6}, opts(1.5, 0.8)},
		{50, latentlm.BatchItem{Request: latentlm.Request{Classes: []int{0, 7}}, Seed: 5}, opts(6, 1)}, // once the first has left
	}
	d, err := g.NewDecoder(steps, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	got := map[int][]latentlm.Image{}
	ids := map[int]int{}
	cancelCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var cancelID, afterCancel = -1, -1
	for step := 0; d.Len() > 0 || step == 0; step++ {
		for i, r := range reqs {
			if r.at == step {
				id, err := d.Add(r.item, r.opts)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				ids[id] = i
			}
		}
		switch step {
		case 10:
			// One more image fills the 4 rows; it is cancelled after a few
			// latents.
			if d.Free() != 1 {
				t.Fatalf("%d rows free at step 10, want 1", d.Free())
			}
			cancelID, err = d.Add(latentlm.BatchItem{Ctx: cancelCtx, Request: latentlm.Request{Class: 1, N: 1}, Seed: 9}, opts(4, 1))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := d.Add(latentlm.BatchItem{Request: latentlm.Request{Class: 1, N: 1}, Seed: 9}, opts(4, 1)); err == nil {
				t.Fatal("a fifth image admitted into 4 rows")
			}
		case 15:
			cancel()
		case 16:
			// The cancelled item left at step 15: its row is free.
			if d.Free() != 1 || d.Slots() != 4 {
				t.Fatalf("after the cancel: %d rows free, %d slots", d.Free(), d.Slots())
			}
			if afterCancel, err = d.Add(latentlm.BatchItem{Request: latentlm.Request{Class: 2, N: 1}, Seed: 4}, opts(4, 1)); err != nil {
				t.Fatal(err)
			}
			ids[afterCancel] = len(reqs)
		}
		fin, err := d.Step()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fin {
			if f.ID == cancelID {
				if step != 15 || !errors.Is(f.Err, context.Canceled) {
					t.Errorf("the cancelled item ended at step %d with %v", step, f.Err)
				}
				continue
			}
			if f.Err != nil {
				t.Fatalf("item %d: %v", ids[f.ID], f.Err)
			}
			got[ids[f.ID]] = f.Images
		}
		if step == 17 && d.Slots() != 4 {
			t.Errorf("%d slots with 4 images, want 4", d.Slots())
		}
		if step > 200 {
			t.Fatal("the decode does not end")
		}
	}
	reqs = append(reqs, req{item: latentlm.BatchItem{Request: latentlm.Request{Class: 2, N: 1}, Seed: 4}, opts: opts(4, 1)})
	for i, r := range reqs {
		o := r.opts
		alone := g.GenerateBatch(opts(0, 1), []latentlm.BatchItem{{Request: r.item.Request, Seed: r.item.Seed, Options: &o}})
		if alone[0].Err != nil {
			t.Fatal(alone[0].Err)
		}
		if !sameImages(alone[0].Images, got[i]) {
			t.Errorf("request %d: its images differ joining the running decode and alone", i)
		}
	}
	// Other guidance scale, same seed and class: other images.
	o := opts(1, 1)
	other := g.GenerateBatch(opts(4, 1), []latentlm.BatchItem{{Request: reqs[0].item.Request, Seed: 5, Options: &o}})
	if other[0].Err != nil || sameImages(other[0].Images, got[0]) {
		t.Errorf("guidance 1 and 4 gave the same images (err %v)", other[0].Err)
	}
	if d.Rows() != 0 || d.Free() != 4 {
		t.Errorf("an empty decode has %d rows, %d free", d.Rows(), d.Free())
	}
}
