package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// batchedImages posts body and returns the images of its answer (the
// "done" event's for a stream), or an error.
func batchedImages(url, body string, stream bool) ([]string, error) {
	r, err := http.Post(url+"/v1/images", "application/json", strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer r.Body.Close()
	if r.StatusCode != 200 {
		b, _ := io.ReadAll(r.Body)
		return nil, fmt.Errorf("status %d: %s", r.StatusCode, b)
	}
	var resp ImagesResponse
	if !stream {
		if err := json.NewDecoder(r.Body).Decode(&resp); err != nil {
			return nil, err
		}
		return resp.Images, nil
	}
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	latents := strings.Count(string(raw), "event: latent\n")
	i := strings.LastIndex(string(raw), "event: done\ndata: ")
	if i < 0 || latents != 49 {
		return nil, fmt.Errorf("stream of %d latent events and no done event: %.200s", latents, raw)
	}
	data := strings.TrimSpace(strings.TrimPrefix(string(raw[i:]), "event: done\ndata: "))
	if err := json.Unmarshal([]byte(data), &resp); err != nil {
		return nil, err
	}
	return resp.Images, nil
}

// TestServerBatchSameAsAlone: 16 concurrent requests of different classes,
// seeds and sizes, half of them streamed, are decoded in shared batches;
// none is lost, and each gets byte for byte the images it gets alone.
func TestServerBatchSameAsAlone(t *testing.T) {
	const clients = 16
	s, ts := newTestServer(t, Config{BatchRows: 64, Queue: 64})
	t.Cleanup(s.Close)
	// Hold the first batch until the other requests wait, so that they
	// form one batch.
	var once sync.Once
	s.beforeGenerate = func() {
		once.Do(func() {
			for deadline := time.Now().Add(10 * time.Second); s.waiting.Load() < clients-1 && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
		})
	}
	body := func(i int, stream bool) string {
		return fmt.Sprintf(`{"class":%d,"n":%d,"steps":4,"seed":%d,"stream":%v}`, i%10, 1+i%3, 100+i, stream)
	}
	got := make([][]string, clients)
	errs := make([]error, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = batchedImages(ts.URL, body(i, i%2 == 1), i%2 == 1)
		}()
	}
	wg.Wait()
	lost := 0
	for i, err := range errs {
		if err != nil || len(got[i]) != 1+i%3 {
			lost++
			t.Errorf("request %d: %v, %d images", i, err, len(got[i]))
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d requests lost", lost, clients)
	}
	m, _ := http.Get(ts.URL + "/metrics")
	mb, _ := io.ReadAll(m.Body)
	m.Body.Close()
	if !strings.Contains(string(mb), "latentlm_batch_rows_count 2\n") || !strings.Contains(string(mb), `latentlm_batch_rows_bucket{le="16"} 1`) {
		t.Errorf("want a batch of one request and one of the other 15 (> 16 images):\n%s", mb)
	}
	// Each alone, streamed and not: the same PNGs.
	for i := range clients {
		for _, stream := range []bool{false, true} {
			if !stream && i%4 != 0 {
				continue // enough non-streamed reruns
			}
			alone, err := batchedImages(ts.URL, body(i, stream), stream)
			if err != nil {
				t.Fatalf("request %d alone: %v", i, err)
			}
			if len(alone) != len(got[i]) {
				t.Fatalf("request %d: %d images alone, %d batched", i, len(alone), len(got[i]))
			}
			for k := range alone {
				if alone[k] != got[i][k] {
					t.Fatalf("request %d (stream %v) image %d differs alone and batched", i, stream, k)
				}
			}
		}
	}
	// Different seeds give different images.
	if got[0][0] == got[10][0] {
		t.Error("requests 0 and 10 (same class, other seeds) got the same image")
	}
}

// TestServerBatchCancel: a streamed request whose client leaves is dropped
// from its batch; the other request of the batch still completes.
func TestServerBatchCancel(t *testing.T) {
	s, ts := newTestServer(t, Config{BatchRows: 64, Queue: 8})
	t.Cleanup(s.Close)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/v1/images", strings.NewReader(`{"class":4,"steps":4,"stream":true}`))
	req.Header.Set("Content-Type", "application/json")
	done := make(chan error, 1)
	go func() {
		_, err := batchedImages(ts.URL, `{"class":5,"n":2,"steps":4,"seed":3}`, false)
		done <- err
	}()
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	events := readEvents(t, r.Body, func(e sseEvent) bool { return e.name == "latent" && strings.Contains(string(e.data), `"index":2,`) })
	cancel()
	r.Body.Close()
	if len(events) != 3 {
		t.Fatalf("%d events before cancelling", len(events))
	}
	if err := <-done; err != nil {
		t.Fatalf("the other request: %v", err)
	}
	for deadline := time.Now().Add(10 * time.Second); s.admitted.Load() != 0 || s.metrics.cancelled.Load() != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d admitted, %d cancelled", s.admitted.Load(), s.metrics.cancelled.Load())
		}
	}
}
