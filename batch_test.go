package latentlm_test

import (
	"context"
	"testing"

	"github.com/latentlm/latentlm"
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
