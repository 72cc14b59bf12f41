package latentlm_test

import (
	"context"
	"testing"

	"github.com/latentlm/latentlm"
	"github.com/latentlm/latentlm/internal/testgen"
)

// TestGenerateBatchRowsIndependent: an item's images are the same, byte for
// byte, decoded alone or batched with items of other seeds and classes;
// the callback sees each item's own images; a cancelled item is dropped
// without disturbing the others.
func TestGenerateBatchRowsIndependent(t *testing.T) {
	g := shared(t)
	opts := latentlm.DefaultSampleOptions()
	opts.Steps = 4
	alone := g.GenerateBatch(opts, []latentlm.BatchItem{{Request: latentlm.Request{Class: 3, N: 2}, Seed: 5}})
	if alone[0].Err != nil || len(alone[0].Images) != 2 {
		t.Fatalf("alone: %v, %d images", alone[0].Err, len(alone[0].Images))
	}
	if sameImages(alone[0].Images[:1], alone[0].Images[1:]) {
		t.Error("the two images of one item are the same")
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	var events, lastCount int
	var lastPartial []latentlm.Image
	items := []latentlm.BatchItem{
		{Request: latentlm.Request{Class: 7, N: 1}, Seed: 9},
		{Request: latentlm.Request{Class: 3, N: 2}, Seed: 5, OnLatent: func(p latentlm.Progress) error {
			events++
			lastCount = p.Count
			if p.Index == p.Latents-1 {
				var err error
				lastPartial, err = p.Partial()
				return err
			}
			return nil
		}},
		{Request: latentlm.Request{Classes: []int{1, 2, 0}}, Seed: 5},
		{Ctx: cancelled, Request: latentlm.Request{Class: 1, N: 1}, Seed: 2},
		{Request: latentlm.Request{Class: 99, N: 1}, Seed: 2},
	}
	got := g.GenerateBatch(opts, items)
	if got[1].Err != nil || !sameImages(got[1].Images, alone[0].Images) {
		t.Fatalf("the item's images differ batched and alone (err %v)", got[1].Err)
	}
	if events != 49 || lastCount != 2 || !sameImages(lastPartial, alone[0].Images) {
		t.Errorf("%d events, last of %d images; final partial equal: %v", events, lastCount, sameImages(lastPartial, alone[0].Images))
	}
	if got[0].Err != nil || len(got[0].Images) != 1 || got[2].Err != nil || len(got[2].Images) != 3 || got[2].Images[2].Class != 0 {
		t.Errorf("other items: %v %v", got[0].Err, got[2].Err)
	}
	if got[3].Err == nil || got[4].Err == nil {
		t.Errorf("cancelled item: %v; invalid item: %v", got[3].Err, got[4].Err)
	}
	solo := g.GenerateBatch(opts, []latentlm.BatchItem{{Request: latentlm.Request{Classes: []int{1, 2, 0}}, Seed: 5}})
	if !sameImages(solo[0].Images, got[2].Images) {
		t.Error("the third item's images differ batched and alone")
	}
	opts.Steps = 0
	if r := g.GenerateBatch(opts, items[:1]); r[0].Err == nil {
		t.Error("DDPM batch accepted")
	}
}

// TestGenerateBatchDiT: a DiT batch (one solver run for every grid) gives
// each item, with its own seed, guidance scale and temperature, byte for
// byte the images it gets alone; the callback sees the finished grids once;
// a cancelled item is dropped.
func TestGenerateBatchDiT(t *testing.T) {
	g := testgen.DiT(t)
	if !g.SupportsBatch() || g.SupportsDecoder() {
		t.Fatalf("a DiT: batch %v, decoder %v; want batch only", g.SupportsBatch(), g.SupportsDecoder())
	}
	opts := latentlm.SampleOptions{Steps: 3, CFG: 4, Temperature: 1, Seed: 1}
	own := latentlm.SampleOptions{Steps: 3, CFG: 1.5, Temperature: 0.8}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	calls, index := 0, -1
	items := []latentlm.BatchItem{
		{Request: latentlm.Request{Class: 3, N: 2}, Seed: 5},
		{Request: latentlm.Request{Classes: []int{7, 1}}, Seed: 6, Options: &own, OnLatent: func(p latentlm.Progress) error {
			calls, index = calls+1, p.Index
			return nil
		}},
		{Ctx: cancelled, Request: latentlm.Request{Class: 1, N: 1}, Seed: 2},
	}
	got := g.GenerateBatch(opts, items)
	if got[0].Err != nil || got[1].Err != nil || len(got[0].Images) != 2 || got[1].Images[0].Class != 7 {
		t.Fatalf("batched: %v, %v", got[0].Err, got[1].Err)
	}
	if calls != 1 || index != 48 || got[2].Err == nil {
		t.Errorf("callback: %d calls, index %d; cancelled item: %v", calls, index, got[2].Err)
	}
	for i := range 2 {
		it := items[i]
		it.OnLatent = nil
		alone := g.GenerateBatch(opts, []latentlm.BatchItem{it})
		if alone[0].Err != nil || !sameImages(alone[0].Images, got[i].Images) {
			t.Errorf("item %d: its images differ batched and alone (err %v)", i, alone[0].Err)
		}
	}
	// The item's own guidance scale applies: the batch's gives others.
	plain := g.GenerateBatch(opts, []latentlm.BatchItem{{Request: items[1].Request, Seed: 6}})
	if plain[0].Err != nil || sameImages(plain[0].Images, got[1].Images) {
		t.Errorf("an item's own options were ignored (err %v)", plain[0].Err)
	}
}
