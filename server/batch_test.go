package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latentlm/latentlm/internal/testgen"
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
	return doneImages(raw, 49)
}

// doneImages checks a whole stream for its latent events and returns the
// images of its done event.
func doneImages(raw []byte, latents int) ([]string, error) {
	n := strings.Count(string(raw), "event: latent\n")
	i := strings.LastIndex(string(raw), "event: done\ndata: ")
	if i < 0 || n != latents {
		return nil, fmt.Errorf("stream of %d latent events and no done event: %.200s", n, raw)
	}
	var resp ImagesResponse
	data := strings.TrimSpace(strings.TrimPrefix(string(raw[i:]), "event: done\ndata: "))
	if err := json.Unmarshal([]byte(data), &resp); err != nil {
		return nil, err
	}
	return resp.Images, nil
}

// latentEvents reads a stream's events as they come: each latent event's
// index goes to the channel, which closes at the end of the stream; the
// whole stream is in *raw then.
func latentEvents(body io.Reader, raw *strings.Builder) <-chan int {
	ch := make(chan int, 64)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(body)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		name := ""
		for sc.Scan() {
			line := sc.Text()
			raw.WriteString(line + "\n")
			switch {
			case strings.HasPrefix(line, "event: "):
				name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: ") && name == "latent":
				var ev LatentEvent
				if json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev) == nil {
					ch <- ev.Index
				}
			}
		}
	}()
	return ch
}

// waitLatent waits for a latent event of index at least k.
func waitLatent(t *testing.T, ch <-chan int, k int) {
	t.Helper()
	for i := range ch {
		if i >= k {
			return
		}
	}
	t.Fatalf("the stream ended before latent %d", k)
}

// eventually polls cond for up to 20 s and reports whether it held.
func eventually(cond func() bool) bool {
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// hold is waitFor for the server's hooks, which run on its worker: it
// reports a timeout without stopping the goroutine.
func hold(t *testing.T, what string, cond func() bool) {
	if !eventually(cond) {
		t.Errorf("timed out waiting for %s", what)
	}
}

// httptestServer serves h for the test and returns its URL.
func httptestServer(t *testing.T, h http.Handler) string {
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts.URL
}

// TestServerContinuousSameAsAlone: a streamed request runs; 15 more, of
// other classes, seeds, sizes, guidance scales and temperatures, half of
// them streamed, join its running decode in two waves (the second while
// the first is mid-image), each at its own position. None is lost, all 15
// count as joins, and each gets byte for byte the images it gets alone.
func TestServerContinuousSameAsAlone(t *testing.T) {
	const clients = 16
	s, ts := newTestServer(t, Config{BatchRows: 64, Queue: 64})
	t.Cleanup(s.Close)
	// Step 8 of the first decode waits for the first wave, step 20 for
	// the second, so that both join while the first request runs.
	var step atomic.Int64
	var holding atomic.Bool
	holding.Store(true)
	s.beforeStep = func() {
		if !holding.Load() {
			return
		}
		switch step.Add(1) {
		case 8:
			hold(t, "the first wave", func() bool { return s.admitted.Load() >= 8 })
		case 20:
			hold(t, "the second wave", func() bool { return s.admitted.Load() >= clients })
			holding.Store(false)
		}
	}
	body := func(i int, stream bool) string {
		return fmt.Sprintf(`{"class":%d,"n":%d,"steps":4,"seed":%d,"cfg":%g,"temperature":%g,"stream":%v}`,
			(i+3)%10, 1+i%3, 100+i%5, 1+float64(i%4)*1.5, 1-float64(i%2)*0.2, stream)
	}
	streamed := func(i int) bool { return i%2 == 0 }
	r, err := http.Post(ts.URL+"/v1/images", "application/json", strings.NewReader(body(0, true)))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var raw0 strings.Builder
	events := latentEvents(r.Body, &raw0)
	got := make([][]string, clients)
	errs := make([]error, clients)
	var wg sync.WaitGroup
	send := func(from, to int) {
		for i := from; i < to; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i], errs[i] = batchedImages(ts.URL, body(i, streamed(i)), streamed(i))
			}()
		}
	}
	waitLatent(t, events, 4)
	send(1, 8)
	waitLatent(t, events, 15)
	send(8, clients)
	for range events {
	}
	got[0], errs[0] = doneImages([]byte(raw0.String()), 49)
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
	if !strings.Contains(string(mb), "latentlm_batch_joins_total 15\n") {
		t.Errorf("want 15 requests joining the running decode:\n%s", mb)
	}
	// Each alone: the same PNGs.
	for i := range clients {
		alone, err := batchedImages(ts.URL, body(i, streamed(i)), streamed(i))
		if err != nil {
			t.Fatalf("request %d alone: %v", i, err)
		}
		if len(alone) != len(got[i]) {
			t.Fatalf("request %d: %d images alone, %d batched", i, len(alone), len(got[i]))
		}
		for k := range alone {
			if alone[k] != got[i][k] {
				t.Fatalf("request %d (stream %v) image %d differs alone and joining the running decode", i, streamed(i), k)
			}
		}
	}
	// Requests 0 and 5 share the seed, not the class or scale.
	if got[0][0] == got[5][0] {
		t.Error("requests 0 and 5 got the same image")
	}
}

// TestServerBatchCancel: in a decode of two rows, both taken, a third
// request waits; a streamed request whose client leaves frees its row at
// the next latent, and the waiting request takes it while the other
// request of the decode is still mid-image. Both finish, the third with
// the images it gets alone.
func TestServerBatchCancel(t *testing.T) {
	s, ts := newTestServer(t, Config{BatchRows: 2, Queue: 8})
	t.Cleanup(s.Close)
	s.beforeStep = func() { time.Sleep(2 * time.Millisecond) } // bounds the pace of the checks below
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/v1/images", strings.NewReader(`{"class":4,"steps":4,"stream":true}`))
	req.Header.Set("Content-Type", "application/json")
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var raw strings.Builder
	events := latentEvents(r.Body, &raw)
	waitLatent(t, events, 0)
	type answer struct {
		imgs []string
		err  error
	}
	other, third := make(chan answer, 1), make(chan answer, 1)
	go func() {
		imgs, err := batchedImages(ts.URL, `{"class":5,"n":1,"steps":4,"seed":3}`, false)
		other <- answer{imgs, err}
	}()
	waitFor(t, "the second request to join", func() bool { return s.running.Load() == 2 })
	const thirdBody = `{"class":6,"n":1,"steps":4,"seed":7,"cfg":2}`
	go func() {
		imgs, err := batchedImages(ts.URL, thirdBody, false)
		third <- answer{imgs, err}
	}()
	waitFor(t, "the third request to wait", func() bool { return s.waiting.Load() == 1 })
	waitLatent(t, events, 2)
	cancel()
	r.Body.Close()
	waitFor(t, "the third request to take the freed row", func() bool { return s.waiting.Load() == 0 })
	select {
	case a := <-other:
		t.Fatalf("the other request ended (%v) before the third joined: the row was not freed at the next latent", a.err)
	default:
	}
	a := <-other
	if a.err != nil || len(a.imgs) != 1 {
		t.Fatalf("the other request: %v", a.err)
	}
	c := <-third
	if c.err != nil || len(c.imgs) != 1 {
		t.Fatalf("the third request: %v", c.err)
	}
	waitFor(t, "the cancel to be counted", func() bool { return s.admitted.Load() == 0 && s.metrics.cancelled.Load() == 1 })
	alone, err := batchedImages(ts.URL, thirdBody, false)
	if err != nil || alone[0] != c.imgs[0] {
		t.Errorf("the third request differs alone (%v)", err)
	}
}

// TestServerDiTBatched: concurrent requests for a DiT model, of different
// seeds, sizes and guidance scales, are decoded in one batch (after the
// first, held until the others wait); each gets byte for byte the images
// it gets alone, streamed (one latent event) or not.
func TestServerDiTBatched(t *testing.T) {
	const clients = 6
	s, err := New([]Model{{Name: "dit", Gen: testgen.DiT(t)}}, Config{BatchRows: 16, Queue: 16})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	ts := httptestServer(t, s)
	// The first request is sent alone and held at its generation until the
	// other five wait: were all six sent at once, the worker could take
	// two or more of them into its first batch, and the others would never
	// number five.
	var once sync.Once
	started := make(chan struct{})
	s.beforeGenerate = func() {
		once.Do(func() {
			close(started)
			hold(t, "the other requests", func() bool { return s.waiting.Load() >= clients-1 })
		})
	}
	body := func(i int, stream bool) string {
		return fmt.Sprintf(`{"class":%d,"n":%d,"steps":3,"seed":%d,"cfg":%g,"stream":%v}`, i, 1+i%2, 10+i%3, 1+float64(i), stream)
	}
	got := make([][]string, clients)
	errs := make([]error, clients)
	var wg sync.WaitGroup
	send := func(i int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = ditImages(ts, body(i, i%2 == 1), i%2 == 1)
		}()
	}
	send(0)
	<-started
	for i := 1; i < clients; i++ {
		send(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil || len(got[i]) != 1+i%2 {
			t.Fatalf("request %d: %v, %d images", i, err, len(got[i]))
		}
	}
	m, _ := http.Get(ts + "/metrics")
	mb, _ := io.ReadAll(m.Body)
	m.Body.Close()
	if !strings.Contains(string(mb), "latentlm_batch_rows_count 2\n") {
		t.Errorf("want a batch of the first request and one of the other five:\n%s", mb)
	}
	for i := range clients {
		alone, err := ditImages(ts, body(i, false), false)
		if err != nil || len(alone) != len(got[i]) {
			t.Fatalf("request %d alone: %v", i, err)
		}
		for k := range alone {
			if alone[k] != got[i][k] {
				t.Fatalf("request %d image %d differs alone and batched", i, k)
			}
		}
	}
	if got[0][0] == got[3][0] {
		t.Error("requests 0 and 3 (other classes and scales, same seed) got the same image")
	}
}

// ditImages is batchedImages for a DiT model, whose stream has one latent
// event.
func ditImages(url, body string, stream bool) ([]string, error) {
	if !stream {
		return batchedImages(url, body, false)
	}
	r, err := http.Post(url+"/v1/images", "application/json", strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer r.Body.Close()
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	return doneImages(raw, 1)
}
