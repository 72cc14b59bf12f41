package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latentlm/latentlm"
)

const testBatch = 4

var (
	genOnce sync.Once
	gen     *latentlm.Generator
	genErr  error
)

// testGen is one generator of the shipped MNIST model for all tests.
func testGen(t *testing.T) *latentlm.Generator {
	t.Helper()
	genOnce.Do(func() {
		dir, err := latentlm.ShippedWeights("latentlm-mnist")
		if err != nil {
			genErr = err
			return
		}
		gen, genErr = latentlm.Load(dir, latentlm.WithBatch(testBatch))
	})
	if genErr != nil {
		t.Fatal(genErr)
	}
	return gen
}

func TestMain(m *testing.M) {
	code := m.Run()
	if gen != nil {
		gen.Close()
	}
	if mmTest.Multimodal != nil {
		mmTest.Multimodal.Close()
	}
	if vqTest.Multimodal != nil {
		vqTest.Multimodal.Close()
	}
	if mmDir != "" {
		os.RemoveAll(mmDir)
	}
	if ttsTest.Speech != nil {
		ttsTest.Speech.Close()
	}
	if ttsDir != "" {
		os.RemoveAll(ttsDir)
	}
	os.Exit(code)
}

func newTestServer(t *testing.T, cfg Config) (*Server, *httptest.Server) {
	t.Helper()
	s, err := New([]Model{{Name: "latentlm-mnist", Gen: testGen(t)}}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts
}

func post(t *testing.T, url, body string) *http.Response {
	t.Helper()
	r, err := http.Post(url+"/v1/images", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// decodePNGs decodes base64 8-bit gray PNGs of size×size pixels.
func decodePNGs(t *testing.T, b64 []string, size int) [][]byte {
	t.Helper()
	var out [][]byte
	for i, s := range b64 {
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("image %d: %v", i, err)
		}
		img, err := png.Decode(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("image %d: %v", i, err)
		}
		g, ok := img.(*image.Gray)
		if !ok || g.Bounds().Dx() != size || g.Bounds().Dy() != size {
			t.Fatalf("image %d is %T %v, want %d×%d gray", i, img, img.Bounds(), size, size)
		}
		out = append(out, g.Pix)
	}
	return out
}

// libraryPixels is what Generate draws for the request, quantised.
func libraryPixels(t *testing.T, class, n, steps int, seed int64) [][]byte {
	t.Helper()
	opts := latentlm.DefaultSampleOptions()
	opts.Steps, opts.Seed = steps, seed
	imgs, err := testGen(t).Generate(context.Background(), latentlm.Request{Class: class, N: n}, opts)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, im := range imgs {
		px := make([]byte, 0, 28*28)
		for y := range 28 {
			for x := range 28 {
				r, _, _, _ := im.At(x, y).RGBA()
				px = append(px, byte(r>>8))
			}
		}
		out = append(out, px)
	}
	return out
}

func samePixels(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

type sseEvent struct {
	name string
	data []byte
}

// readEvents reads Server-Sent Events until the stream ends or stop says so.
func readEvents(t *testing.T, r io.Reader, stop func(sseEvent) bool) []sseEvent {
	t.Helper()
	var events []sseEvent
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	var cur sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			events = append(events, cur)
			if stop != nil && stop(cur) {
				return events
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "event: "):
			cur.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.data = append(cur.data, strings.TrimPrefix(line, "data: ")...)
		}
	}
	return events
}

func TestServerModelsHealthPage(t *testing.T) {
	_, ts := newTestServer(t, Config{})
	r, err := http.Get(ts.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Models   []ModelInfo
		Defaults Defaults
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if len(body.Models) != 1 || body.Models[0].Name != "latentlm-mnist" || body.Models[0].Classes != 10 || body.Models[0].ImageSize != 28 || body.Models[0].Kind != "latentlm" {
		t.Fatalf("models: %+v", body.Models)
	}
	if body.Defaults.Steps != 20 || body.Defaults.CFG != 4 || body.Defaults.Seed != 1 {
		t.Errorf("defaults: %+v", body.Defaults)
	}
	for path, want := range map[string]string{"/healthz": `"status":"ok"`, "/": "<form", "/app.js": "getReader", "/metrics": "latentlm_http_requests_total{endpoint=\"/v1/models\",code=\"200\"} 1"} {
		r, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("GET %s: %d, body lacks %q:\n%.400s", path, r.StatusCode, want, b)
		}
	}
	r, _ = http.Get(ts.URL + "/nope")
	if r.StatusCode != 404 {
		t.Errorf("GET /nope: %d", r.StatusCode)
	}
	r.Body.Close()
}

func TestServerImagesAndStream(t *testing.T) {
	_, ts := newTestServer(t, Config{})
	want := libraryPixels(t, 7, 2, 4, 11)
	r := post(t, ts.URL, `{"model":"latentlm-mnist","class":7,"n":2,"steps":4,"seed":11}`)
	var resp ImagesResponse
	if err := json.NewDecoder(r.Body).Decode(&resp); err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != 200 || r.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, %s", r.StatusCode, r.Header.Get("Content-Type"))
	}
	got := decodePNGs(t, resp.Images, 28)
	if !samePixels(got, want) {
		t.Fatal("the served images differ from Generate's for the same seed")
	}
	if resp.Timings.TotalMS <= 0 || resp.Timings.GenerateMS <= 0 {
		t.Errorf("timings: %+v", resp.Timings)
	}

	// The same request streamed: 49 latent events, then the same images.
	r = post(t, ts.URL, `{"model":"latentlm-mnist","class":7,"n":2,"steps":4,"seed":11,"stream":true}`)
	if ct := r.Header.Get("Content-Type"); r.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("stream: status %d, %s", r.StatusCode, ct)
	}
	events := readEvents(t, r.Body, nil)
	r.Body.Close()
	if len(events) != 50 {
		t.Fatalf("%d events, want 49 latents and done", len(events))
	}
	for k, e := range events[:49] {
		var ev LatentEvent
		if err := json.Unmarshal(e.data, &ev); err != nil || e.name != "latent" {
			t.Fatalf("event %d %q: %v", k, e.name, err)
		}
		if ev.Index != k || ev.Row != k/7 || ev.Col != k%7 || ev.Latents != 49 || len(ev.Images) != 2 {
			t.Fatalf("event %d: index %d row %d col %d latents %d, %d images", k, ev.Index, ev.Row, ev.Col, ev.Latents, len(ev.Images))
		}
		if k == 0 || k == 48 {
			partial := decodePNGs(t, ev.Images, 28)
			if k == 48 && !samePixels(partial, want) {
				t.Error("the partial images after the last latent are not the final ones")
			}
		}
	}
	var done ImagesResponse
	if err := json.Unmarshal(events[49].data, &done); err != nil || events[49].name != "done" {
		t.Fatalf("final event %q: %v", events[49].name, err)
	}
	if !samePixels(decodePNGs(t, done.Images, 28), want) {
		t.Fatal("the streamed final images differ from the non-streamed ones")
	}
	if done.Timings.FirstLatentMS <= 0 || done.Timings.FirstLatentMS > done.Timings.GenerateMS {
		t.Errorf("timings: %+v", done.Timings)
	}
	t.Logf("time to first streamed latent: %.1f ms (n 2, 4 steps)", done.Timings.FirstLatentMS)

	r, _ = http.Get(ts.URL + "/metrics")
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	for _, line := range []string{`latentlm_http_requests_total{endpoint="/v1/images",code="200"} 2`, `latentlm_images_generated_total{model="latentlm-mnist"} 4`,
		`latentlm_http_request_duration_seconds_count{endpoint="/v1/images"} 2`, "latentlm_queue_length 0", "latentlm_streamed_latents_total 98"} {
		if !strings.Contains(string(b), line) {
			t.Errorf("metrics lack %q:\n%s", line, b)
		}
	}
}

func TestServerValidation(t *testing.T) {
	_, ts := newTestServer(t, Config{})
	cases := []struct {
		body   string
		status int
		field  string
	}{
		{`{"class":3`, 400, "body"},
		{`not json`, 400, "body"},
		{``, 400, "body"},
		{`[1,2]`, 400, "body"},
		{`{"class":3} {"class":4}`, 400, "body"},
		{`{"class":"3"}`, 400, "class"},
		{`{"class":3.5}`, 400, "class"},
		{`{"class":3,"n":"two"}`, 400, "n"},
		{`{"class":3,"stream":"yes"}`, 400, "stream"},
		{`{"class":3,"model":5}`, 400, "model"},
		{`{"class":3,"cfg":"NaN"}`, 400, "cfg"},
		{`{"class":3,"cfg":1e400}`, 400, "cfg"},
		{`{"class":3,"seed":1e30}`, 400, "seed"},
		{`{"class":3,"n":99999999999999999999}`, 400, "n"},
		{`{"class":3,"colour":"red"}`, 400, "colour"},
		{`{"model":"nope","class":3}`, 400, "model"},
		{`{}`, 400, "class"},
		{`{"class":10}`, 400, "class"},
		{`{"class":-1}`, 400, "class"},
		{`{"class":3,"n":0}`, 400, "n"},
		{`{"class":3,"n":65}`, 400, "n"},
		{`{"class":3,"steps":0}`, 400, "steps"},
		{`{"class":3,"steps":251}`, 400, "steps"},
		{`{"class":3,"cfg":-1}`, 400, "cfg"},
		{`{"class":3,"cfg":101}`, 400, "cfg"},
		{`{"class":3,"seed":-1}`, 400, "seed"},
		{`{"class":3,"seed":9007199254740992}`, 400, "seed"},
		{`{"class":3,"temperature":0}`, 400, "temperature"},
		{`{"class":3,"pad":"` + strings.Repeat("x", MaxBodyBytes) + `"}`, 413, "body"},
	}
	for _, c := range cases {
		r := post(t, ts.URL, c.body)
		var e errorBody
		err := json.NewDecoder(r.Body).Decode(&e)
		r.Body.Close()
		if err != nil || r.StatusCode != c.status || e.Error.Field != c.field || e.Error.Message == "" || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%.60s: status %d, field %q, message %q (%v); want %d naming %q", c.body, r.StatusCode, e.Error.Field, e.Error.Message, err, c.status, c.field)
		}
	}
	// Wrong method and content type.
	r, _ := http.Get(ts.URL + "/v1/images")
	if r.StatusCode != 405 || r.Header.Get("Allow") != "POST" {
		t.Errorf("GET /v1/images: %d, Allow %q", r.StatusCode, r.Header.Get("Allow"))
	}
	r.Body.Close()
	for _, ct := range []string{"image/png", "text/plain", "application/x-www-form-urlencoded", ""} {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1/images", strings.NewReader(`{"class":1}`))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if r.StatusCode != 415 {
			t.Errorf("content type %q: %d, want 415", ct, r.StatusCode)
		}
		r.Body.Close()
	}
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1/images", strings.NewReader(`{"class":1,"steps":1}`))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != 200 {
		t.Errorf("application/json with a charset: %v %v", r.StatusCode, err)
	} else {
		r.Body.Close()
	}
}

func TestServerQueueFullAndTimeout(t *testing.T) {
	s, ts := newTestServer(t, Config{Concurrency: 1, Queue: 1})
	release := make(chan struct{})
	s.beforeGenerate = func() { <-release }
	body := `{"class":1,"steps":1}`
	statuses := make(chan int, 2)
	send := func() { statuses <- statusOf(ts.URL+"/v1/images", body) }
	go send()
	waitFor(t, "a running request", func() bool { return s.running.Load() == 1 })
	go send()
	waitFor(t, "a waiting request", func() bool { return s.waiting.Load() == 1 })
	r := post(t, ts.URL, body)
	var e errorBody
	json.NewDecoder(r.Body).Decode(&e)
	r.Body.Close()
	if r.StatusCode != 429 || r.Header.Get("Retry-After") == "" || e.Error.Message == "" {
		t.Fatalf("third request with one slot and one waiting place: %d, Retry-After %q, %+v", r.StatusCode, r.Header.Get("Retry-After"), e)
	}
	m, _ := http.Get(ts.URL + "/metrics")
	mb, _ := io.ReadAll(m.Body)
	m.Body.Close()
	if !strings.Contains(string(mb), "latentlm_queue_length 1") || !strings.Contains(string(mb), `code="429"} 1`) {
		t.Errorf("metrics while full:\n%s", mb)
	}
	close(release)
	for range 2 {
		if st := <-statuses; st != 200 {
			t.Errorf("queued request: %d", st)
		}
	}

	// A request past its timeout is answered 503.
	s2, ts2 := newTestServer(t, Config{Timeout: 30 * time.Millisecond})
	s2.beforeGenerate = func() { time.Sleep(60 * time.Millisecond) }
	r = post(t, ts2.URL, body)
	json.NewDecoder(r.Body).Decode(&e)
	r.Body.Close()
	if r.StatusCode != 503 || !strings.Contains(e.Error.Message, "timed out") {
		t.Errorf("timed-out request: %d %+v", r.StatusCode, e)
	}
}

// statusOf posts body as JSON to url and returns the status of the answer,
// 0 where none came.
func statusOf(url, body string) int {
	r, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, r.Body)
	r.Body.Close()
	return r.StatusCode
}

// waitFor waits until cond holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestServerStreamCancel(t *testing.T) {
	s, ts := newTestServer(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/v1/images", strings.NewReader(`{"class":4,"steps":4,"stream":true}`))
	req.Header.Set("Content-Type", "application/json")
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	events := readEvents(t, r.Body, func(e sseEvent) bool { return e.name == "latent" && bytes.Contains(e.data, []byte(`"index":2,`)) })
	cancel()
	r.Body.Close()
	if len(events) != 3 {
		t.Fatalf("%d events before cancelling", len(events))
	}
	// The server stops at the next latent: far fewer than 49 are drawn.
	deadline := time.Now().Add(10 * time.Second)
	for s.admitted.Load() != 0 || s.metrics.cancelled.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the cancelled request still runs: %d admitted, %d cancelled", s.admitted.Load(), s.metrics.cancelled.Load())
		}
		time.Sleep(time.Millisecond)
	}
	if n := s.metrics.latents.Load(); n >= 49 || n < 3 {
		t.Fatalf("%d latents drawn after cancelling at the third, want < 49", n)
	}
	t.Logf("cancelled after 3 events; the server drew %d latents", s.metrics.latents.Load())
}

func TestNewRefuses(t *testing.T) {
	if _, err := New(nil, Config{}); err == nil {
		t.Error("no models accepted")
	}
	g := testGen(t)
	if _, err := New([]Model{{Name: "a", Gen: g}, {Name: "a", Gen: g}}, Config{}); err == nil {
		t.Error("duplicate names accepted")
	}
	if _, err := LoadModels(t.TempDir()); err == nil {
		t.Error("an empty folder loaded")
	}
}
