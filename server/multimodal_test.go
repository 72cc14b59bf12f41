package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/multimodal"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/text"
	"github.com/latentlm/latentlm/vae"
)

const (
	mmName = "multimodal-tiny"
	mmSize = 56 // the canvas side
)

var (
	mmOnce sync.Once
	mmTest Model
	mmDir  string
	mmErr  error
)

// testMultimodal is one tiny multimodal model with random weights for all
// tests (the plumbing is tested, not the quality): a σ-VAE of 56×56 images
// in 4×4 latents of 2 channels, and a one-block language model over a
// 300-id tokenizer with a context of 38 items, room for one image and some
// text. Its <BOL> logit is scaled up, so that completions draw images where
// it is positive. It is saved and read back through LoadMultimodal.
func testMultimodal(t *testing.T) Model {
	t.Helper()
	mmOnce.Do(func() {
		mmDir, mmErr = os.MkdirTemp("", "server-multimodal-")
		if mmErr == nil {
			mmErr = saveTinyMultimodal(t, mmDir, 1)
		}
		if mmErr == nil {
			mmTest, mmErr = LoadMultimodal(filepath.Join(mmDir, mmName), "")
		}
	})
	if mmErr != nil {
		t.Fatal(mmErr)
	}
	return mmTest
}

// saveTinyMultimodal saves the tiny model, for images of inChannels
// channels (1 gray, 3 colour), as root/multimodal-tiny.
func saveTinyMultimodal(t *testing.T, root string, inChannels int) error {
	return saveTinyArch(t, root, inChannels, multimodal.Latent)
}

// tinyVQCodes is the codebook of the tiny VQ-MLLM's image tokenizer.
const tinyVQCodes = 16

var (
	vqOnce sync.Once
	vqTest Model
	vqErr  error
)

// testVQ is the tiny model as a VQ-MLLM (arch vq): its images are the 16
// codes of a VQ-VAE's codebook of tinyVQCodes, drawn by the softmax head.
func testVQ(t *testing.T) Model {
	t.Helper()
	testMultimodal(t) // mmDir
	vqOnce.Do(func() {
		root := filepath.Join(mmDir, "vq")
		if vqErr = saveTinyArch(t, root, 1, multimodal.VQ); vqErr == nil {
			vqTest, vqErr = LoadMultimodal(filepath.Join(root, mmName), "")
		}
		if vqErr == nil && vqTest.Multimodal.Arch != multimodal.VQ {
			vqErr = fmt.Errorf("the tiny VQ-MLLM loaded as arch %v", vqTest.Multimodal.Arch)
		}
	})
	if vqErr != nil {
		t.Fatal(vqErr)
	}
	return vqTest
}

// saveTinyArch saves the tiny model of arch as root/multimodal-tiny.
func saveTinyArch(t *testing.T, root string, inChannels int, arch multimodal.Arch) error {
	vc := vae.Config{Kind: vae.Sigma, ImageSize: mmSize, Patch: 14, Channels: 2, Dim: 16, Depth: 1, Heads: 2, MLPRatio: 2, CSigma: 0.5, KLWeight: 0.01,
		InChannels: inChannels}
	if arch == multimodal.VQ {
		vc.Kind, vc.Codebook = vae.VQ, tinyVQCodes
	}
	vs := model.NewStore()
	if err := nn.Init(vs, vc.Specs(), 1, dtypes.Float32); err != nil {
		return err
	}
	vm, err := vae.NewModel(testutil.Backend(t, ""), vc, vs)
	if err != nil {
		return err
	}
	vdir := filepath.Join(root, "vae")
	err = vm.Save(vdir, nil, false)
	vm.Close()
	if err != nil {
		return err
	}
	sum, err := checkpoint.FileSHA256(filepath.Join(vdir, checkpoint.WeightsFile))
	if err != nil {
		return err
	}
	tok, err := text.Train([]string{"the digit 3 is to the left of the digit 7", "which digit is on the left? 7",
		"A fool and his money are soon parted."}, 300)
	if err != nil {
		return err
	}
	cfg := lm.Config{Dim: 32, Depth: 1, Heads: 2, KVHeads: 2, MLPRatio: 2, HeadDepth: 1, HeadDim: 16,
		Latent: vc.Channels, MaxLen: 38, Target: diffusion.Velocity, Vocab: lm.Vocab{Extra: tok.Size()}}
	mc := multimodal.Config{LM: cfg}
	if arch == multimodal.VQ {
		mc.LM.Latent, mc.LM.Vocab.Extra, mc.Arch, mc.Codes = 1, tok.Size()+tinyVQCodes, multimodal.VQ, tinyVQCodes
		cfg = mc.LM
	}
	store := model.NewStore()
	if err := nn.Init(store, mc.Specs(), 2, dtypes.Float32); err != nil {
		return err
	}
	head := store.GetVariable(nn.WeightsScope + "/lm_head.weight")
	w := tensors.MustCopyFlatData[float32](head.MustValue())
	for k := range cfg.Dim {
		w[cfg.Vocab.BOL()*cfg.Dim+k] *= 50
	}
	if err := head.SetValue(tensors.FromFlatDataAndDimensions(w, cfg.Vocab.Size(), cfg.Dim)); err != nil {
		return err
	}
	rec := lm.Tokenizer{Path: vdir, SHA256: sum, Kind: vae.Kind, Items: vc.Items(), Channels: vc.Channels, Data: "random"}
	return multimodal.SaveConfig(filepath.Join(root, mmName), mc, store, rec, tok, nil)
}

// serveModel serves m with cfg.
func serveModel(t *testing.T, m Model, cfg Config) (*Server, string) {
	t.Helper()
	return serveModels(t, cfg, m)
}

// serveModels serves models with cfg until the test ends.
func serveModels(t *testing.T, cfg Config, models ...Model) (*Server, string) {
	t.Helper()
	s, err := New(models, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Once the handlers are done (ts.Close), the batcher closes its
	// batches (s.Close) before TestMain closes the model.
	t.Cleanup(s.Close)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts.URL
}

// archs are the tiny models of both archs, for the tests of each.
var archs = []struct {
	name  string
	model func(*testing.T) Model
}{{"latentlm", testMultimodal}, {"vq", testVQ}}

// newMMServer serves the tiny multimodal model and, with class, the
// shipped MNIST model.
func newMMServer(t *testing.T, cfg Config, class bool) (*Server, string) {
	t.Helper()
	models := []Model{testMultimodal(t)}
	if class {
		models = append(models, Model{Name: "latentlm-mnist", Gen: testGen(t)})
	}
	return serveModels(t, cfg, models...)
}

// postTo posts body as JSON to url+path and decodes the answer into out
// (when it is 200 and out is not nil) or returns the error body.
func postTo(t *testing.T, url, path, body string, out any) (int, errorBody) {
	t.Helper()
	r, err := http.Post(url+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	raw, _ := io.ReadAll(r.Body)
	var e errorBody
	if r.StatusCode != 200 {
		if err := json.Unmarshal(raw, &e); err != nil || r.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("POST %s %.80s: status %d, not a JSON error: %v %q", path, body, r.StatusCode, err, raw)
		}
		return r.StatusCode, e
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("POST %s %.80s: %v in %.300q", path, body, err, raw)
		}
	}
	return r.StatusCode, e
}

// pngB64 encodes img as a base64 PNG.
func pngB64(t *testing.T, img image.Image) string {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b.Bytes())
}

func grayImage(size int, v uint8) *image.Gray {
	g := image.NewGray(image.Rect(0, 0, size, size))
	for i := range g.Pix {
		g.Pix[i] = v + uint8(i%7)
	}
	return g
}

func jsonList(items []string) string {
	b, _ := json.Marshal(items)
	return string(b)
}

func TestMultimodalModels(t *testing.T) {
	_, url := newMMServer(t, Config{}, true)
	r, err := http.Get(url + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Models   []ModelInfo
		Defaults Defaults
		Limits   Limits
	}
	err = json.NewDecoder(r.Body).Decode(&body)
	r.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(body.Models) != 2 || body.Models[0].Name != "latentlm-mnist" || body.Models[0].Classes != 10 || body.Models[0].Endpoints != nil {
		t.Fatalf("models: %+v", body.Models)
	}
	mm := body.Models[1]
	if mm.Name != mmName || mm.Kind != "multimodal" || mm.Classes != 0 || mm.ImageSize != mmSize || mm.MaxLen != 38 || mm.Params <= 0 || len(mm.Endpoints) != 4 || mm.Backend == "" {
		t.Fatalf("multimodal model: %+v", mm)
	}
	if c := body.Defaults.Completion; c == nil || c.MaxTokens != 64 || c.TopP != 0.95 || body.Limits.MaxTokens != MaxTokens || body.Limits.ImageBodyBytes != MaxImageBodyBytes {
		t.Fatalf("defaults %+v, limits %+v", body.Defaults.Completion, body.Limits)
	}
	r, _ = http.Get(url + "/healthz")
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if !strings.Contains(string(b), `"models":2`) {
		t.Errorf("healthz: %s", b)
	}

	mm0 := testMultimodal(t)
	for _, models := range [][]Model{{{Name: "x"}}, {{Name: "x", Gen: testGen(t), Multimodal: mm0.Multimodal}}, {mm0, {Name: mm0.Name, Gen: testGen(t)}}} {
		if _, err := New(models, Config{}); err == nil {
			t.Errorf("New accepted %+v", models)
		}
	}
	// Only a multimodal model: a class is refused.
	_, only := newMMServer(t, Config{}, false)
	if st, e := postTo(t, only, "/v1/images", `{"class":3}`, nil); st != 400 || e.Error.Field != "class" || !strings.Contains(e.Error.Message, "no class-conditional model") {
		t.Errorf("class to a multimodal-only server: %d %+v", st, e)
	}

	// Without a multimodal model: no such endpoints, no completion
	// defaults, and a prompt is refused.
	_, ts := newTestServer(t, Config{})
	r, _ = http.Get(ts.URL + "/v1/models")
	b, _ = io.ReadAll(r.Body)
	r.Body.Close()
	if strings.Contains(string(b), "completion") || strings.Contains(string(b), "max_tokens") || strings.Contains(string(b), "endpoints") {
		t.Errorf("class-only /v1/models mentions the multimodal endpoints: %s", b)
	}
	for _, path := range []string{"/v1/captions", "/v1/answers", "/v1/completions"} {
		if st, e := postTo(t, ts.URL, path, `{"prompt":"the digit 3"}`, nil); st != 404 || e.Error.Field != "path" {
			t.Errorf("class-only POST %s: %d %+v", path, st, e)
		}
	}
	if st, e := postTo(t, ts.URL, "/v1/images", `{"prompt":"the digit 3"}`, nil); st != 400 || e.Error.Field != "prompt" || !strings.Contains(e.Error.Message, "no multimodal model") {
		t.Errorf("class-only prompt: %d %+v", st, e)
	}
}

// TestMultimodalImages: text → image beside the class-conditional form,
// which is unchanged; streamed, a "latent" event per latent, then the same
// images in the "done" event.
func TestMultimodalImages(t *testing.T) {
	_, url := newMMServer(t, Config{}, true)
	var resp PromptImagesResponse
	const prompt = "the digit 3 is to the left of the digit 7"
	if st, e := postTo(t, url, "/v1/images", `{"prompt":"`+prompt+`","n":3}`, &resp); st != 200 {
		t.Fatalf("prompt: %d %+v", st, e)
	}
	px := decodePNGs(t, resp.Images, mmSize)
	if len(px) != 3 || resp.Model != mmName || resp.Prompt != prompt || resp.Seed != 1 || resp.Timings.GenerateMS <= 0 || resp.Timings.TotalMS < resp.Timings.GenerateMS {
		t.Fatalf("answer: model %q prompt %q seed %d, %d images, timings %+v", resp.Model, resp.Prompt, resp.Seed, len(px), resp.Timings)
	}
	if bytes.Equal(px[0], px[1]) {
		t.Error("two images of a request are identical")
	}
	r := post(t, url, `{"prompt":"`+prompt+`","n":3,"stream":true}`)
	events := readEvents(t, r.Body, nil)
	r.Body.Close()
	items := testMultimodal(t).Multimodal.Format.Items
	if r.Header.Get("Content-Type") != "text/event-stream" || len(events) != items+1 || events[items].name != "done" {
		t.Fatalf("stream: %s, %d events, want %d latents and done", r.Header.Get("Content-Type"), len(events), items)
	}
	var done PromptImagesResponse
	if err := json.Unmarshal(events[items].data, &done); err != nil || len(decodePNGs(t, done.Images, mmSize)) != 3 {
		t.Fatalf("done event: %v", err)
	}
	if !samePixels(decodePNGs(t, done.Images, mmSize), px) {
		t.Error("the streamed images differ from the same request's without stream")
	}
	var other PromptImagesResponse
	postTo(t, url, "/v1/images", `{"prompt":"`+prompt+`","n":3,"seed":2}`, &other)
	if samePixels(decodePNGs(t, other.Images, mmSize), px) {
		t.Error("seeds 1 and 2 drew the same images")
	}

	// The class-conditional form on the same server: Generate's images.
	want := libraryPixels(t, 7, 2, 4, 11)
	var cr ImagesResponse
	if st, e := postTo(t, url, "/v1/images", `{"model":"latentlm-mnist","class":7,"n":2,"steps":4,"seed":11}`, &cr); st != 200 {
		t.Fatalf("class: %d %+v", st, e)
	}
	if !samePixels(decodePNGs(t, cr.Images, 28), want) || cr.Class != 7 {
		t.Fatal("the class-conditional images changed beside a multimodal model")
	}
	if st, _ := postTo(t, url, "/v1/images", `{"class":7,"steps":1}`, &cr); st != 200 {
		t.Fatalf("class without a model beside a multimodal model: %d", st)
	}
	r, _ = http.Get(url + "/metrics")
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if !strings.Contains(string(b), `latentlm_images_generated_total{model="`+mmName+`"} `) {
		t.Errorf("metrics lack the multimodal model's images:\n%s", b)
	}
}

// TestMultimodalColour: a colour model (a tokenizer of 3 input channels)
// draws RGB PNGs and reads RGB PNGs, and says so in /v1/models.
func TestMultimodalColour(t *testing.T) {
	root := t.TempDir()
	if err := saveTinyMultimodal(t, root, 3); err != nil {
		t.Fatal(err)
	}
	m, err := LoadMultimodal(filepath.Join(root, mmName), "")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Multimodal.Close()
	s, err := New([]Model{m}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ts := httptest.NewServer(s)
	defer ts.Close()
	var resp PromptImagesResponse
	if st, e := postTo(t, ts.URL, "/v1/images", `{"prompt":"the digit 3 is to the left of the digit 7","n":1}`, &resp); st != 200 {
		t.Fatalf("prompt: %d %+v", st, e)
	}
	raw, err := base64.StdEncoding.DecodeString(resp.Images[0])
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := img.(*image.Gray); ok || img.Bounds().Dx() != mmSize {
		t.Fatalf("a colour model answered a %T of %v", img, img.Bounds())
	}
	rgb := image.NewNRGBA(image.Rect(0, 0, mmSize, mmSize))
	for i := range rgb.Pix {
		rgb.Pix[i] = uint8(i * 37)
		if i%4 == 3 {
			rgb.Pix[i] = 255
		}
	}
	var cap CaptionsResponse
	if st, e := postTo(t, ts.URL, "/v1/captions", `{"images":["`+pngB64(t, rgb)+`"],"max_tokens":3}`, &cap); st != 200 || len(cap.Captions) != 1 {
		t.Fatalf("captions of an RGB picture: %d %+v %+v", st, e, cap)
	}
	var models struct{ Models []ModelInfo }
	r, err := http.Get(ts.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	if err := json.NewDecoder(r.Body).Decode(&models); err != nil || len(models.Models) != 1 || models.Models[0].ImageChannels != 3 {
		t.Fatalf("/v1/models of a colour model: %v %+v", err, models)
	}
}

func TestMultimodalCaptionsAnswers(t *testing.T) {
	_, url := newMMServer(t, Config{}, false)
	var gen PromptImagesResponse
	if st, e := postTo(t, url, "/v1/images", `{"prompt":"the digit 3","n":2}`, &gen); st != 200 {
		t.Fatalf("images: %d %+v", st, e)
	}
	imgs := append(gen.Images, pngB64(t, grayImage(mmSize, 0)), "data:image/png;base64,"+pngB64(t, grayImage(mmSize, 100)))
	rgb := image.NewRGBA(image.Rect(0, 0, mmSize, mmSize))
	for i := range rgb.Pix {
		rgb.Pix[i] = 255 // opaque white stored as RGBA
	}
	imgs = append(imgs, pngB64(t, rgb))
	var caps CaptionsResponse
	if st, e := postTo(t, url, "/v1/captions", `{"images":`+jsonList(imgs)+`,"max_tokens":64}`, &caps); st != 200 {
		t.Fatalf("captions: %d %+v", st, e)
	}
	if len(caps.Captions) != len(imgs) || caps.Model != mmName || caps.Timings.GenerateMS <= 0 {
		t.Fatalf("captions: %+v", caps)
	}
	var ans AnswersResponse
	if st, e := postTo(t, url, "/v1/answers", `{"model":"`+mmName+`","images":`+jsonList(imgs[:2])+`,"question":"which digit is on the left?"}`, &ans); st != 200 {
		t.Fatalf("answers: %d %+v", st, e)
	}
	if len(ans.Answers) != 2 || ans.Question != "which digit is on the left?" {
		t.Fatalf("answers: %+v", ans)
	}
	t.Logf("captions %q, answers %q", caps.Captions, ans.Answers)
}

// TestMultimodalCaptionsStreamed: streamed captions and answers arrive as
// "text" events, per image, whose text joins into the final "done"
// answer, which equals the answer of the same request not streamed.
func TestMultimodalCaptionsStreamed(t *testing.T) {
	_, url := newMMServer(t, Config{}, false)
	imgs := []string{pngB64(t, grayImage(mmSize, 0)), pngB64(t, grayImage(mmSize, 200))}
	for _, c := range []struct{ path, body string }{
		{"/v1/captions", `{"images":` + jsonList(imgs) + `,"max_tokens":12`},
		{"/v1/answers", `{"images":` + jsonList(imgs) + `,"question":"how many digits?","max_tokens":12`},
	} {
		var plain struct{ Captions, Answers []string }
		if st, e := postTo(t, url, c.path, c.body+`}`, &plain); st != 200 {
			t.Fatalf("%s: %d %+v", c.path, st, e)
		}
		want := append(plain.Captions, plain.Answers...)
		r, err := http.Post(url+c.path, "application/json", strings.NewReader(c.body+`,"stream":true}`))
		if err != nil {
			t.Fatal(err)
		}
		if ct := r.Header.Get("Content-Type"); r.StatusCode != 200 || ct != "text/event-stream" {
			t.Fatalf("%s streamed: %d %s", c.path, r.StatusCode, ct)
		}
		events := readEvents(t, r.Body, nil)
		r.Body.Close()
		joined := make([]string, len(imgs))
		texts := 0
		for _, ev := range events[:len(events)-1] {
			var te CaptionTextEvent
			if ev.name != "text" || json.Unmarshal(ev.data, &te) != nil || te.Index < 0 || te.Index >= len(imgs) || te.Text == "" {
				t.Fatalf("%s: event %s %s", c.path, ev.name, ev.data)
			}
			joined[te.Index] += te.Text
			texts++
		}
		last := events[len(events)-1]
		var done struct{ Captions, Answers []string }
		if last.name != "done" || json.Unmarshal(last.data, &done) != nil {
			t.Fatalf("%s: last event %s %s", c.path, last.name, last.data)
		}
		got := append(done.Captions, done.Answers...)
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%s: streamed %q, not streamed %q", c.path, got, want)
		}
		// The tiny model writes invalid UTF-8 too: a stream replaces each
		// run of bad bytes in a piece with U+FFFD, the answer each run in
		// the whole text, so the runs are compared collapsed.
		collapse := func(s string) string {
			for strings.Contains(s, "\uFFFD\uFFFD") {
				s = strings.ReplaceAll(s, "\uFFFD\uFFFD", "\uFFFD")
			}
			return s
		}
		for i := range joined {
			if c.path == "/v1/answers" {
				joined[i] = strings.TrimSpace(joined[i])
			}
			if collapse(joined[i]) != collapse(got[i]) {
				t.Errorf("%s: text events of image %d join into %q, the answer is %q", c.path, i, joined[i], got[i])
			}
		}
		if texts < len(imgs) {
			t.Errorf("%s: %d text events for %d images", c.path, texts, len(imgs))
		}
	}
}

func TestMultimodalCompletions(t *testing.T) {
	_, url := newMMServer(t, Config{}, false)
	greedy := `"temperature":0,`
	// A prompt whose completion has text and an image.
	var resp CompletionResponse
	var prompt string
	for _, p := range []string{"the digit", "which digit", "A fool", "the digit 7 is", "Q:", "7", "left"} {
		if st, e := postTo(t, url, "/v1/completions", `{`+greedy+`"prompt":"`+p+`"}`, &resp); st != 200 {
			t.Fatalf("completion: %d %+v", st, e)
		}
		checkCompletion(t, resp)
		if len(resp.Images) > 0 && resp.Text != "" {
			prompt = p
			break
		}
	}
	if prompt == "" {
		t.Fatal("no prompt made a completion of text and an image")
	}
	t.Logf("prompt %q: %d pieces, %d images, text %q", prompt, len(resp.Pieces), len(resp.Images), resp.Text)

	// Streamed: the same pieces as events, then the same answer.
	r, err := http.Post(url+"/v1/completions", "application/json", strings.NewReader(`{`+greedy+`"prompt":"`+prompt+`","stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	events := readEvents(t, r.Body, nil)
	r.Body.Close()
	if r.StatusCode != 200 || r.Header.Get("Content-Type") != "text/event-stream" || len(events) == 0 || events[len(events)-1].name != "done" {
		t.Fatalf("stream: %d %s, %d events", r.StatusCode, r.Header.Get("Content-Type"), len(events))
	}
	var streamed strings.Builder
	var images []string
	for _, e := range events[:len(events)-1] {
		switch e.name {
		case "text":
			var ev TextEvent
			if err := json.Unmarshal(e.data, &ev); err != nil || ev.Text == "" {
				t.Fatalf("text event %s: %v", e.data, err)
			}
			streamed.WriteString(ev.Text)
		case "image":
			var ev ImageEvent
			if err := json.Unmarshal(e.data, &ev); err != nil || ev.Index != len(images) {
				t.Fatalf("image event: index %d, %v", ev.Index, err)
			}
			decodePNGs(t, []string{ev.Image}, mmSize)
			images = append(images, ev.Image)
		default:
			t.Fatalf("event %q", e.name)
		}
	}
	var done CompletionResponse
	if err := json.Unmarshal(events[len(events)-1].data, &done); err != nil {
		t.Fatal(err)
	}
	checkCompletion(t, done)
	if done.Text != streamed.String() || len(done.Images) != len(images) {
		t.Fatalf("done holds %q and %d images; the events %q and %d", done.Text, len(done.Images), streamed.String(), len(images))
	}
	for i := range images {
		if images[i] != done.Images[i] {
			t.Fatalf("image %d of the done event differs from its event", i)
		}
	}
	if done.Text != resp.Text || !slices.Equal(done.Images, resp.Images) {
		t.Errorf("the same greedy request streamed: %q, %d images; not streamed: %q, %d images", done.Text, len(done.Images), resp.Text, len(resp.Images))
	}
	if done.Timings.FirstPieceMS <= 0 || done.Timings.FirstPieceMS > done.Timings.GenerateMS {
		t.Errorf("timings: %+v", done.Timings)
	}
}

// checkCompletion checks that an answer's pieces are its text and images in
// order, consecutive text joined.
func checkCompletion(t *testing.T, c CompletionResponse) {
	t.Helper()
	var txt strings.Builder
	next := 0
	for i, p := range c.Pieces {
		switch {
		case p.Text != nil && p.Image == nil:
			if *p.Text == "" || (i > 0 && c.Pieces[i-1].Text != nil) {
				t.Fatalf("piece %d: empty, or text after text", i)
			}
			txt.WriteString(*p.Text)
		case p.Image != nil && p.Text == nil:
			if *p.Image != next {
				t.Fatalf("piece %d is image %d, want %d", i, *p.Image, next)
			}
			next++
		default:
			t.Fatalf("piece %d: %+v", i, p)
		}
	}
	if txt.String() != c.Text || next != len(c.Images) || c.Model != mmName {
		t.Fatalf("pieces hold %q and %d images; the answer %q and %d (model %q)", txt.String(), next, c.Text, len(c.Images), c.Model)
	}
	decodePNGs(t, c.Images, mmSize)
}

func TestMultimodalValidation(t *testing.T) {
	_, url := newMMServer(t, Config{}, true)
	good := pngB64(t, grayImage(mmSize, 10))
	small := pngB64(t, grayImage(28, 10))
	colour := image.NewRGBA(image.Rect(0, 0, mmSize, mmSize))
	for i := range colour.Pix {
		colour.Pix[i] = 255
	}
	colour.Set(3, 4, color.RGBA{200, 10, 10, 255})
	transparent := image.NewNRGBA(image.Rect(0, 0, mmSize, mmSize))
	long := strings.Repeat("which digit is on the left? ", 30)
	many := make([]string, MaxImages+1)
	for i := range many {
		many[i] = good
	}
	cases := []struct {
		path, body string
		status     int
		field      string
		msg        string
	}{
		{"/v1/images", `{"prompt":""}`, 400, "prompt", "empty"},
		{"/v1/images", `{"prompt":"the digit 3","class":3}`, 400, "prompt", "not both"},
		{"/v1/images", `{"prompt":"` + long + `"}`, 400, "prompt", "tokens long"},
		{"/v1/images", "{\"prompt\":\"caf\xe9\"}", 400, "body", "UTF-8"},
		{"/v1/images", `{"prompt":"the digit 3","n":65}`, 400, "n", "out of range"},
		{"/v1/images", `{"prompt":"the digit 3","model":"latentlm-mnist"}`, 400, "model", "class-conditional"},
		{"/v1/images", `{"class":3,"model":"` + mmName + `"}`, 400, "class", "multimodal"},
		{"/v1/images", `{"prompt":3}`, 400, "prompt", "a string"},
		{"/v1/images", `{"class":3,"model":"nope"}`, 400, "model", "unknown model"},
		{"/v1/captions", `{}`, 400, "images", "required"},
		{"/v1/captions", `{"images":[]}`, 400, "images", "empty"},
		{"/v1/captions", `{"images":` + jsonList(many) + `}`, 400, "images", "at most 64"},
		{"/v1/captions", `{"images":"` + good + `"}`, 400, "images", "array"},
		{"/v1/captions", `{"images":[3]}`, 400, "images", "array"},
		{"/v1/captions", `{"images":["!!!"]}`, 400, "images", "images[0]: not base64"},
		{"/v1/captions", `{"images":["` + good + `","aGVsbG8="]}`, 400, "images", "images[1]: not a PNG"},
		{"/v1/captions", `{"images":["` + small + `"]}`, 400, "images", "28×28 pixels, want 56×56"},
		{"/v1/captions", `{"images":["` + pngB64(t, colour) + `"]}`, 400, "images", "colour"},
		{"/v1/captions", `{"images":["` + pngB64(t, transparent) + `"]}`, 400, "images", "opaque"},
		{"/v1/captions", `{"images":["` + good + `"],"max_tokens":0}`, 400, "max_tokens", "out of range"},
		{"/v1/captions", `{"images":["` + good + `"],"question":"why?"}`, 400, "question", "/v1/answers"},
		{"/v1/captions", `{"images":["` + good + `"],"colour":1}`, 400, "colour", "known: model, images, max_tokens"},
		{"/v1/captions", `{"images":["` + good + `"],"model":"latentlm-mnist"}`, 400, "model", "class-conditional"},
		{"/v1/captions", `{"images":["` + good + `"],"pad":"` + strings.Repeat("x", MaxImageBodyBytes) + `"}`, 413, "body", "over"},
		{"/v1/answers", `{"images":["` + good + `"]}`, 400, "question", "required"},
		{"/v1/answers", `{"images":["` + good + `"],"question":""}`, 400, "question", "empty"},
		{"/v1/answers", `{"images":["` + good + `"],"question":"` + long + `"}`, 400, "question", "tokens long"},
		{"/v1/answers", `{"question":"why?"}`, 400, "images", "required"},
		{"/v1/completions", `{}`, 400, "prompt", "required"},
		{"/v1/completions", `{"prompt":""}`, 400, "prompt", "empty"},
		{"/v1/completions", `{"prompt":"` + long + `"}`, 400, "prompt", "tokens long"},
		{"/v1/completions", `{"prompt":"` + long + `","stream":true}`, 400, "prompt", "tokens long"},
		{"/v1/completions", "{\"prompt\":\"\xff\"}", 400, "body", "UTF-8 (byte 11)"},
		{"/v1/completions", `{"prompt":"a","temperature":-1}`, 400, "temperature", "out of range"},
		{"/v1/completions", `{"prompt":"a","temperature":"hot"}`, 400, "temperature", "a number"},
		{"/v1/completions", `{"prompt":"a","top_p":0}`, 400, "top_p", "out of range"},
		{"/v1/completions", `{"prompt":"a","top_p":1.5}`, 400, "top_p", "out of range"},
		{"/v1/completions", `{"prompt":"a","max_tokens":0}`, 400, "max_tokens", "out of range"},
		{"/v1/completions", `{"prompt":"a","max_tokens":4097}`, 400, "max_tokens", "out of range"},
		{"/v1/completions", `{"prompt":"a","seed":-1}`, 400, "seed", "out of range"},
		{"/v1/completions", `{"prompt":"a","steps":0}`, 400, "steps", "out of range"},
		{"/v1/completions", `{"prompt":"a","cfg":101}`, 400, "cfg", "out of range"},
		{"/v1/completions", `{"prompt":"a","stream":1}`, 400, "stream", "true or false"},
		{"/v1/completions", `{"prompt":"a","n":2}`, 400, "n", "unknown field"},
		{"/v1/completions", `{"prompt":"a"} {}`, 400, "body", "trailing"},
		{"/v1/completions", `{"prompt":"a","pad":"` + strings.Repeat("x", MaxBodyBytes) + `"}`, 413, "body", "over"},
	}
	for _, c := range cases {
		st, e := postTo(t, url, c.path, c.body, nil)
		if st != c.status || e.Error.Field != c.field || !strings.Contains(e.Error.Message, c.msg) || e.Error.Status != c.status {
			t.Errorf("POST %s %.70q: %d %+v; want %d naming %q with %q", c.path, c.body, st, e.Error, c.status, c.field, c.msg)
		}
	}
	for _, path := range []string{"/v1/captions", "/v1/answers", "/v1/completions"} {
		r, _ := http.Get(url + path)
		r.Body.Close()
		if r.StatusCode != 405 || r.Header.Get("Allow") != "POST" {
			t.Errorf("GET %s: %d, Allow %q", path, r.StatusCode, r.Header.Get("Allow"))
		}
		r, _ = http.Post(url+path, "text/plain", strings.NewReader(`{"prompt":"a"}`))
		r.Body.Close()
		if r.StatusCode != 415 {
			t.Errorf("POST %s as text/plain: %d", path, r.StatusCode)
		}
	}
}

// TestMultimodalCompletionCancel: a client that leaves a streamed
// completion stops it at the model's next step; the handler returns and
// the next request is answered.
func TestMultimodalCompletionCancel(t *testing.T) {
	s, url := newMMServer(t, Config{}, false)
	var pieces int
	s.onPiece = func(ctx context.Context) {
		pieces++
		if pieces == 1 {
			select { // hold the model until the client has gone
			case <-ctx.Done():
			case <-time.After(10 * time.Second):
				t.Error("the request's context outlived its client")
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/completions", strings.NewReader(`{"prompt":"the digit","stream":true}`))
	req.Header.Set("Content-Type", "application/json")
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	events := readEvents(t, r.Body, func(sseEvent) bool { return true })
	cancel()
	r.Body.Close()
	if len(events) != 1 || (events[0].name != "text" && events[0].name != "image") {
		t.Fatalf("first event: %+v", events)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.admitted.Load() != 0 || s.metrics.cancelled.Load() != 1 || s.running.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the cancelled completion still runs: %d admitted, %d cancelled", s.admitted.Load(), s.metrics.cancelled.Load())
		}
		time.Sleep(time.Millisecond)
	}
	if pieces != 1 {
		t.Errorf("%d pieces made after the client left at the first", pieces-1)
	}
	s.onPiece = nil
	var resp CompletionResponse
	if st, e := postTo(t, url, "/v1/completions", `{"prompt":"the digit"}`, &resp); st != 200 {
		t.Fatalf("the request after a cancelled one: %d %+v", st, e)
	}
	checkCompletion(t, resp)
}

// TestMultimodalQueue: requests take the model one at a time; the rest
// wait, within the server's queue (beyond it 429), a client that leaves
// while waiting is dropped, and the timeout holds.
func TestMultimodalQueue(t *testing.T) {
	s, url := newMMServer(t, Config{Concurrency: 1, Queue: 2}, false)
	release := make(chan struct{})
	s.beforeGenerate = func() { <-release }
	statuses := make(chan int, 2)
	send := func(path, body string) { statuses <- statusOf(url+path, body) }
	go send("/v1/completions", `{"prompt":"the digit"}`)
	waitFor(t, "a running request", func() bool { return s.running.Load() == 1 })
	go send("/v1/images", `{"prompt":"the digit 3"}`)
	waitFor(t, "a waiting request", func() bool { return s.waiting.Load() == 1 })
	// A third waits too, then leaves.
	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/completions", strings.NewReader(`{"prompt":"a"}`))
		req.Header.Set("Content-Type", "application/json")
		if r, err := http.DefaultClient.Do(req); err == nil {
			r.Body.Close()
		}
	}()
	waitFor(t, "two waiting requests", func() bool { return s.waiting.Load() == 2 })
	if st, e := postTo(t, url, "/v1/captions", `{"images":["`+pngB64(t, grayImage(mmSize, 0))+`"]}`, nil); st != 429 || e.Error.Message == "" {
		t.Fatalf("a fourth request with one running and two waiting: %d %+v", st, e)
	}
	cancel()
	<-gone
	waitFor(t, "the leaver dropped", func() bool { return s.waiting.Load() == 1 && s.admitted.Load() == 2 })
	close(release)
	for range 2 {
		if st := <-statuses; st != 200 {
			t.Errorf("queued request: %d", st)
		}
	}
	waitFor(t, "all answered", func() bool { return s.admitted.Load() == 0 })

	s2, url2 := newMMServer(t, Config{Timeout: 30 * time.Millisecond}, false)
	s2.beforeGenerate = func() { time.Sleep(60 * time.Millisecond) }
	if st, e := postTo(t, url2, "/v1/completions", `{"prompt":"the digit"}`, nil); st != 503 || !strings.Contains(e.Error.Message, "timed out") {
		t.Errorf("timed-out completion: %d %+v", st, e)
	}
}

// mmAnswer posts body to url+path and returns the 200 answer's JSON without
// its timings (which differ between runs), for comparison; safe to call
// from any goroutine.
func mmAnswer(url, path, body string) (string, error) {
	r, err := http.Post(url+path, "application/json", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	defer r.Body.Close()
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return "", err
	}
	if r.StatusCode != 200 {
		return "", fmt.Errorf("POST %s %.80s: status %d: %s", path, body, r.StatusCode, raw)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return "", err
	}
	delete(m, "timings")
	b, err := json.Marshal(m)
	return string(b), err
}

// TestServerMultimodalBatchedSameAsAlone: requests of every kind (prompt
// images of different prompts, seeds, guidance scales and temperatures,
// captions, answers, completions) that arrive while another request is
// mid-decode join that decode at the next step, and each answer equals,
// byte for byte (PNGs, text), the same request's sent alone to the same
// server.
func TestServerMultimodalBatchedSameAsAlone(t *testing.T) {
	for _, a := range archs {
		t.Run(a.name, func(t *testing.T) { testBatchedSameAsAlone(t, a.model(t)) })
	}
}

func testBatchedSameAsAlone(t *testing.T, m Model) {
	s, url := serveModel(t, m, Config{BatchRows: 32, Concurrency: 8, Queue: 8})
	imgs := []string{pngB64(t, grayImage(mmSize, 0)), pngB64(t, grayImage(mmSize, 90))}
	type call struct{ path, body string }
	first := call{"/v1/images", `{"prompt":"the digit 3 is to the left of the digit 7","n":2,"steps":4,"seed":1}`}
	joiners := []call{
		{"/v1/images", `{"prompt":"the digit 7","n":1,"steps":4,"seed":5,"cfg":2,"temperature":0.8}`},
		{"/v1/images", `{"prompt":"the digit 7","n":2,"steps":4,"seed":9,"cfg":6}`},
		{"/v1/captions", `{"images":` + jsonList(imgs) + `,"max_tokens":12}`},
		{"/v1/answers", `{"images":` + jsonList(imgs[1:]) + `,"question":"which digit is on the left?","max_tokens":9}`},
		{"/v1/completions", `{"prompt":"the digit","steps":4,"seed":3,"temperature":0}`},
		{"/v1/completions", `{"prompt":"A fool","steps":4,"seed":4,"temperature":1}`},
	}
	// The decode of the first request stops before its sixth step until
	// every other request waits: they join it mid-way, at once.
	const joinAt = 6
	reached := make(chan struct{})
	steps := 0
	s.beforeStep = func() {
		if steps++; steps != joinAt {
			return
		}
		close(reached)
		for deadline := time.Now().Add(10 * time.Second); s.waiting.Load() != int64(len(joiners)); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Errorf("%d requests waiting, want %d", s.waiting.Load(), len(joiners))
				return
			}
		}
	}
	type answer struct {
		body string
		err  error
	}
	together := make([]chan answer, len(joiners)+1)
	send := func(i int, c call) {
		together[i] = make(chan answer, 1)
		go func() {
			b, err := mmAnswer(url, c.path, c.body)
			together[i] <- answer{b, err}
		}()
	}
	send(0, first)
	select {
	case <-reached:
	case <-time.After(10 * time.Second):
		t.Fatal("the first request's decode never reached its step", joinAt)
	}
	for i, c := range joiners {
		send(i+1, c)
	}
	got := make([]string, len(together))
	for i, ch := range together {
		a := <-ch
		if a.err != nil {
			t.Fatal(a.err)
		}
		got[i] = a.body
	}
	if j := s.metrics.joins.Load(); j != int64(len(joiners)) {
		t.Fatalf("%d requests joined a running decode, want %d", j, len(joiners))
	}
	s.metrics.mu.Lock()
	big := int64(0) // steps of 8 sequences or more
	for i, n := range s.metrics.batchRows.counts {
		if i >= 3 {
			big += n
		}
	}
	s.metrics.mu.Unlock()
	if big == 0 {
		t.Fatal("no step decoded 8 sequences or more at once")
	}

	// Each alone (one after the other: nothing joins), as it came.
	joins := s.metrics.joins.Load()
	for i, c := range append([]call{first}, joiners...) {
		alone, err := mmAnswer(url, c.path, c.body)
		if err != nil {
			t.Fatal(err)
		}
		if alone != got[i] {
			t.Errorf("POST %s %s:\nalone   %.300s\ntogether %.300s", c.path, c.body, alone, got[i])
		}
	}
	if s.metrics.joins.Load() != joins {
		t.Fatal("a request sent alone joined another's decode")
	}
	// The answers are those of their own options: other seeds, other
	// images; and a completion drew an image.
	var a, b PromptImagesResponse
	json.Unmarshal([]byte(got[1]), &a)
	json.Unmarshal([]byte(got[2]), &b)
	if len(a.Images) != 1 || len(b.Images) != 2 || a.Images[0] == b.Images[0] || b.Images[0] == b.Images[1] {
		t.Error("images of other seeds agree")
	}
	var c CompletionResponse
	json.Unmarshal([]byte(got[5]), &c)
	if len(c.Images) == 0 {
		t.Errorf("the greedy completion drew no image: %.300s", got[5])
	}
}

// TestServerMultimodalStreamedLatents: a streamed prompt-image request gets
// a "latent" event per latent, in raster order, each with the partial
// images of all its images (the last one the finished images), then a
// "done" event whose images are those of the same request unstreamed.
func TestServerMultimodalStreamedLatents(t *testing.T) {
	for _, a := range archs {
		t.Run(a.name, func(t *testing.T) { testStreamedLatents(t, a.model(t)) })
	}
}

func testStreamedLatents(t *testing.T, model Model) {
	s, url := serveModel(t, model, Config{BatchRows: 8})
	const body = `"prompt":"the digit 3 is to the left of the digit 7","n":2,"steps":4,"seed":7,"cfg":3`
	var plain PromptImagesResponse
	if st, e := postTo(t, url, "/v1/images", `{`+body+`}`, &plain); st != 200 {
		t.Fatalf("%d %+v", st, e)
	}
	latents0 := s.metrics.latents.Load()
	r := post(t, url, `{`+body+`,"stream":true}`)
	events := readEvents(t, r.Body, nil)
	r.Body.Close()
	m := model.Multimodal
	items, grid := m.Format.Items, m.Image.Config.Grid()
	if r.Header.Get("Content-Type") != "text/event-stream" || len(events) != items+1 {
		t.Fatalf("stream: %s, %d events, want %d", r.Header.Get("Content-Type"), len(events), items+1)
	}
	var last LatentEvent
	for k, e := range events[:items] {
		var ev LatentEvent
		if e.name != "latent" || json.Unmarshal(e.data, &ev) != nil {
			t.Fatalf("event %d: %s %s", k, e.name, e.data)
		}
		if ev.Index != k || ev.Row != k/grid || ev.Col != k%grid || ev.Latents != items || ev.Grid != grid || ev.Offset != 0 || len(ev.Images) != 2 {
			t.Fatalf("latent event %d: %+v", k, ev)
		}
		decodePNGs(t, ev.Images, mmSize)
		if k > 0 && slices.Equal(ev.Images, last.Images) {
			t.Errorf("latent %d left the partial images as they were", k)
		}
		last = ev
	}
	var done PromptImagesResponse
	if events[items].name != "done" || json.Unmarshal(events[items].data, &done) != nil {
		t.Fatalf("last event: %s %s", events[items].name, events[items].data)
	}
	if !slices.Equal(done.Images, plain.Images) {
		t.Error("the streamed images differ from the same request's without stream")
	}
	if !slices.Equal(last.Images, done.Images) {
		t.Error("the last latent event's images are not the finished ones")
	}
	if done.Timings.FirstLatentMS <= 0 || done.Timings.FirstLatentMS > done.Timings.GenerateMS {
		t.Errorf("timings: %+v", done.Timings)
	}
	if n := s.metrics.latents.Load() - latents0; n != int64(2*items) {
		t.Errorf("%d latents counted, want %d", n, 2*items)
	}
}

// TestServerMultimodalCancelMidDecode: a streamed request whose client
// disconnects mid-decode leaves the decode at its next step; the request
// decoded beside it finishes with the answer it gets alone.
func TestServerMultimodalCancelMidDecode(t *testing.T) {
	s, url := newMMServer(t, Config{BatchRows: 8, Concurrency: 4}, false)
	// The test steps the decode: at each step the batcher says how many
	// requests it holds and waits for the go-ahead.
	var gated atomic.Bool
	gated.Store(true)
	entered, tick, stop := make(chan int64), make(chan struct{}), make(chan struct{})
	defer close(stop) // a failed test lets the decode go on, so that the server can close
	s.beforeStep = func() {
		if !gated.Load() {
			return
		}
		select {
		case entered <- s.running.Load():
		case <-stop:
			return
		}
		select {
		case <-tick:
		case <-stop:
		}
	}
	next := func() int64 {
		t.Helper()
		select {
		case n := <-entered:
			return n
		case <-time.After(10 * time.Second):
			t.Fatal("the decode did not step")
		}
		return 0
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/images",
		strings.NewReader(`{"prompt":"the digit 3 is to the left of the digit 7","n":2,"steps":4,"stream":true}`))
	req.Header.Set("Content-Type", "application/json")
	gotLatent := make(chan struct{})
	go func() {
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			close(gotLatent)
			return
		}
		defer r.Body.Close()
		readEvents(t, r.Body, func(e sseEvent) bool { return e.name == "latent" })
		close(gotLatent)
		io.Copy(io.Discard, r.Body)
	}()
	if n := next(); n != 1 {
		t.Fatalf("first step: %d requests", n)
	}
	const stay = `{"prompt":"the digit 7","n":1,"steps":4,"seed":5}`
	stayed := make(chan string, 1)
	go func() {
		b, err := mmAnswer(url, "/v1/images", stay)
		if err != nil {
			t.Error(err)
		}
		stayed <- b
	}()
	waitFor(t, "the second request waiting", func() bool { return s.waiting.Load() == 1 })
	// Step until the streamed request's first latent reaches its client.
	for done := false; !done; {
		tick <- struct{}{}
		select {
		case <-gotLatent:
			done = true
		case <-time.After(50 * time.Millisecond):
			next()
		}
	}
	cancel()
	waitFor(t, "the handler to see its client gone", func() bool { return s.metrics.cancelled.Load() == 1 })
	if n := next(); n != 2 {
		t.Fatalf("%d requests in the decode when the client left, want 2", n)
	}
	tick <- struct{}{}
	if n := next(); n != 1 {
		t.Fatalf("%d requests in the decode a step after the client left, want 1", n)
	}
	gated.Store(false)
	tick <- struct{}{}
	together := <-stayed
	alone, err := mmAnswer(url, "/v1/images", stay)
	if err != nil {
		t.Fatal(err)
	}
	if together == "" || alone != together {
		t.Errorf("the request beside the cancelled one: %.200s; alone %.200s", together, alone)
	}
	waitFor(t, "all answered", func() bool { return s.admitted.Load() == 0 && s.running.Load() == 0 && s.waiting.Load() == 0 })
}

// TestPromptTemperature: a prompt without a temperature draws at the
// multimodal checkpoint's own scale of the noise, one with a temperature
// at its own, and a checkpoint without one at 1.
func TestPromptTemperature(t *testing.T) {
	req, ferr := decodeRequest(strings.NewReader(`{"prompt":"red apple"}`), "application/json")
	if ferr != nil || req.temperatureGiven || req.Temperature != DefaultTemperature {
		t.Fatalf("no temperature: %+v, %v", req, ferr)
	}
	given, ferr := decodeRequest(strings.NewReader(`{"prompt":"red apple","temperature":1}`), "application/json")
	if ferr != nil || !given.temperatureGiven {
		t.Fatalf("temperature 1: %+v, %v", given, ferr)
	}
	own := newMMModel(Model{Multimodal: &multimodal.Model{Info: map[string]any{multimodal.InfoSampleTemperature: 0.8}}})
	plain := newMMModel(Model{Multimodal: &multimodal.Model{Info: map[string]any{}}})
	for _, c := range []struct {
		mm   *mmModel
		req  ImagesRequest
		want float64
	}{{own, req, 0.8}, {own, given, 1}, {plain, req, 1}} {
		if got := c.mm.temperature(c.req.temperatureGiven, c.req.Temperature); got != c.want {
			t.Errorf("checkpoint %v, request given %v: temperature %v, want %v", c.mm.m.Info, c.req.temperatureGiven, got, c.want)
		}
	}
}
