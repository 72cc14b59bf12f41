package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/latentlm/latentlm/speech"
)

// chromiumPath is Debian's chromium, which scripts/setup.sh installs.
const chromiumPath = "/usr/bin/chromium"

// recordSrcs is run in the page before generating: it records, in order,
// every source the first image held before it was replaced (a mutation
// record keeps the old value), so that the test sees each partial image even
// when several are drawn between two of its polls.
const recordSrcs = `(() => {
  window.__srcs = [];
  const box = document.getElementById("images");
  new MutationObserver((muts) => {
    for (const m of muts) {
      if (m.target === box.children[0] && m.oldValue) window.__srcs.push(m.oldValue);
    }
  }).observe(box, {subtree: true, attributes: true, attributeFilter: ["src"], attributeOldValue: true});
  return true;
})()`

// TestBrowser drives the page of `latentlm serve` in headless chromium: it
// chooses class 7 and a few solver steps through the form, generates, and
// checks that partial images were drawn before the final one and that the
// final one is a 28×28 PNG. With LATENTLM_SCREENSHOT=1 it saves the page to
// docs/serve.png.
// imagesDrawn waits for the page's image generation to end and returns its
// status line, the image sources replaced before the final one (recorded
// by recordSrcs), the final image's source and the latent events drawn.
func imagesDrawn(t *testing.T, ctx context.Context) (status string, srcs []string, final string, latents int) {
	t.Helper()
	status = waitDone(t, ctx, "images", "status")
	var err error
	if srcs, err = chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.__srcs`)); err != nil {
		t.Fatal(err)
	}
	if final, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#images img").src`)); err != nil {
		t.Fatal(err)
	}
	if latents, err = chromedp.Run(ctx, chromedp.Evaluate[int](`Number(document.getElementById("images").dataset.latents)`)); err != nil {
		t.Fatal(err)
	}
	return status, srcs, final, latents
}

func TestBrowser(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("chromium not installed: run make setup (it installs Debian's chromium): %v", err)
	}
	_, ts := newTestServer(t, Config{})
	start := time.Now()
	ctx := newBrowser(t)

	err := chromedp.Do(ctx,
		chromedp.Navigate(ts.URL+"/"),
		// The class list is filled once /v1/models has answered.
		chromedp.WaitReady(chromedp.CSS(`#class option[value="7"]`)),
		chromedp.SetValue(chromedp.ID("class"), "7"),
		chromedp.SetValue(chromedp.ID("n"), "1"),
		chromedp.SetValue(chromedp.ID("steps"), "5"),
		chromedp.SetValue(chromedp.ID("seed"), "3"),
	)
	if err != nil {
		t.Fatalf("loading the page: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](recordSrcs)); err != nil {
		t.Fatalf("watching the image: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("go"))); err != nil {
		t.Fatalf("starting generation: %v", err)
	}

	status, srcs, final, latents := imagesDrawn(t, ctx)
	t.Logf("%d latent events drawn, %d images replaced before the final one; status: %q", latents, len(srcs), status)
	if latents < 1 {
		t.Fatalf("the page drew %d latent events before the final image, want at least 1", latents)
	}
	partial := 0
	for _, s := range srcs {
		if s != final {
			partial++
		}
	}
	if partial == 0 {
		t.Fatalf("the page showed %d images before the final one, none of them partial", len(srcs))
	}
	if !strings.HasPrefix(status, "Done:") {
		t.Errorf("status %q, want Done: …", status)
	}
	decodeDataURL(t, "the first partial image", srcs[0], 28)
	decodeDataURL(t, "the final image", final, 28)

	if os.Getenv("LATENTLM_SCREENSHOT") == "1" {
		shot, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS("main")))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		out := filepath.Join("..", "docs", "serve.png")
		tmp := out + ".part"
		if err := os.WriteFile(tmp, shot, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, out); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s (%d bytes)", out, len(shot))
	}
	t.Logf("browser test took %v", time.Since(start).Round(time.Millisecond))
}

// newBrowser starts headless chromium for one test, stopped at its end.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	// The timeout bounds the whole browser: it is set above the allocator,
	// since chromedp stops the browser with the context of its first run.
	tctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox, // tests run as root in containers
		chromedp.DisableGPU,
		chromedp.WindowSize(900, 700),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(tctx, opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancelCtx)
	return ctx
}

// wavOfPage is what the page offers to download, as base64 (the page's
// policy lets no script fetch its blob: URL, so the test reads the Blob).
const wavOfPage = `(async () => {
  const b = new Uint8Array(await lastWAV.arrayBuffer());
  let s = "";
  for (const x of b) s += String.fromCharCode(x);
  return btoa(s);
})()`

// TestBrowserSpeech drives the speech section of the page in headless
// chromium on a server of a speech model only: the image section is
// hidden; it picks a voice and options, types the text and presses Enter
// (the form works from the keyboard), and checks that the chunks arrived
// one by one, that each was scheduled for playback as it came (where the
// browser has WebAudio), and that the WAV it offers is byte for byte the
// server's answer to the same request without streaming.
func TestBrowserSpeech(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("chromium not installed: run make setup (it installs Debian's chromium): %v", err)
	}
	_, url := newSpeechServer(t, Config{}, false)
	start := time.Now()
	ctx := speechPage(t, url)
	setFields(t, ctx, [][2]string{{"speech-voice", "test-b"}, {"speech-steps", "2"}, {"speech-seed", "5"}, {"speech-max", "0.6"}, {"speech-text", "Seve"}})
	// The keyboard: the end of the text, then Enter, which submits the form.
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("speech-text"), "n"+kb.Enter)); err != nil {
		t.Fatalf("typing the text: %v", err)
	}
	status := waitDone(t, ctx, "speech-out", "speech-status")
	out, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`({...document.getElementById("speech-out").dataset,
		images: String(document.getElementById("image-section").hidden), link: String(document.getElementById("speech-download").hidden)})`))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("page: %v; status: %q", out, status)
	// 0.6 s is 15 frames: chunks of 8 and 7.
	if out["chunks"] != "2" || out["images"] != "true" || out["link"] != "false" || !strings.HasPrefix(status, "Done: 0.60 s of speech") {
		t.Errorf("after speaking: %v, status %q; want 2 chunks, the image section hidden, the WAV offered", out, status)
	}
	switch out["playback"] {
	case "webaudio":
		if out["scheduled"] != out["chunks"] {
			t.Errorf("%s of %s chunks scheduled for playback", out["scheduled"], out["chunks"])
		}
	default:
		t.Logf("this chromium has no WebAudio (playback %q): scheduling not checked", out["playback"])
	}
	// The player of the page loads the WAV (the page's policy lets media
	// come from blob: URLs).
	dur, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`new Promise((resolve) => {
  const a = document.getElementById("speech-audio");
  if (a.readyState >= 1) resolve(a.duration);
  a.addEventListener("loadedmetadata", () => resolve(a.duration));
  a.addEventListener("error", () => resolve(-1));
  setTimeout(() => resolve(-2), 5000);
})`, chromedp.EvalAwaitPromise))
	if err != nil || math.Abs(dur-0.6) > 0.01 {
		t.Errorf("the page's audio player holds %v s (%v), want 0.6 (-1: it could not load the WAV, -2: it never tried)", dur, err)
	}
	got, err := chromedp.Run(ctx, chromedp.Evaluate[string](wavOfPage, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("reading the page's WAV: %v", err)
	}
	want := speak(t, url, `{"text":"Seven","voice":"test-b","steps":2,"cfg":3,"seed":5,"max_seconds":0.6}`)
	if got != want.Audio {
		t.Errorf("the page's WAV (%d base64 bytes) differs from the server's answer to the same request (%d)", len(got), len(want.Audio))
	}
	t.Logf("browser speech test took %v", time.Since(start).Round(time.Millisecond))
}

// TestBrowserSpeechByText: with a numbers model and a sentence model
// served, the page's first choice of model lets the server choose by the
// text; the request then names no model, and the status names the model
// that spoke: the numbers model for "seven", the other for "hi there".
func TestBrowserSpeechByText(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("chromium not installed: run make setup (it installs Debian's chromium): %v", err)
	}
	_, url := serveModels(t, Config{}, speechModelOfSet(t, "says-numbers", speech.SetNumbers), speechModelOfSet(t, "says-sentences", speech.SetSentences))
	ctx := speechPage(t, url)
	first, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`({value: document.getElementById("speech-model").value,
		label: document.getElementById("speech-model").options[0].textContent})`))
	if err != nil {
		t.Fatal(err)
	}
	if first["value"] != "" || first["label"] != "by the text: spoken numbers to says-numbers, other text to says-sentences" {
		t.Errorf("the model list starts with %q (value %q), want the choice by the text", first["label"], first["value"])
	}
	for _, c := range [][2]string{{"seven", "says-numbers"}, {"hi there", "says-sentences"}} {
		setFields(t, ctx, [][2]string{{"speech-voice", "test-b"}, {"speech-steps", "2"}, {"speech-max", "0.2"}, {"speech-text", c[0]}})
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(document.getElementById("speech-out").dataset.state = "", true)`)); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("speech-text"), kb.Enter)); err != nil {
			t.Fatalf("speaking %q: %v", c[0], err)
		}
		if status := waitDone(t, ctx, "speech-out", "speech-status"); !strings.Contains(status, "of speech by "+c[1]+" ") {
			t.Errorf("%q: status %q, want it spoken by %s", c[0], status, c[1])
		}
	}
}

// speechPage opens the page of the server at url in headless chromium
// and waits until its voice list holds test-b: it is filled once
// /v1/models has answered.
func speechPage(t *testing.T, url string) context.Context {
	t.Helper()
	ctx := newBrowser(t)
	err := chromedp.Do(ctx,
		chromedp.Navigate(url+"/"),
		chromedp.WaitReady(chromedp.CSS(`#speech-voice option[value="test-b"]`)),
	)
	if err != nil {
		t.Fatalf("loading the page: %v", err)
	}
	return ctx
}

// setFields sets each form field {id, value} of the page.
func setFields(t *testing.T, ctx context.Context, fields [][2]string) {
	t.Helper()
	for _, f := range fields {
		if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.ID(f[0]), f[1])); err != nil {
			t.Fatalf("setting #%s to %q: %v", f[0], f[1], err)
		}
	}
}

// decodeDataURL checks that src is a data URL of a size×size PNG and
// returns its base64.
func decodeDataURL(t *testing.T, what, src string, size int) string {
	t.Helper()
	const prefix = "data:image/png;base64,"
	if !strings.HasPrefix(src, prefix) {
		t.Fatalf("%s: src %.40q is no PNG data URL", what, src)
	}
	raw, err := base64.StdEncoding.DecodeString(src[len(prefix):])
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if b := img.Bounds(); b.Dx() != size || b.Dy() != size {
		t.Fatalf("%s is %v, want %d×%d", what, b, size, size)
	}
	return src[len(prefix):]
}

// waitDone waits until the element out of the page has data-state "done"
// and returns the text of its status line, failing the test if it ends in
// "error" or "stopped".
func waitDone(t *testing.T, ctx context.Context, out, status string) string {
	t.Helper()
	return waitState(t, ctx, out, status, "done")
}

// waitState waits until the element out of the page has data-state want
// (or, unless want is one of them, fails the test on "error" or "stopped")
// and returns the text of its status line.
func waitState(t *testing.T, ctx context.Context, out, status, want string) string {
	t.Helper()
	for {
		state, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("`+out+`").dataset.state || ""`))
		if err != nil {
			t.Fatalf("waiting for #%s: %v", out, err)
		}
		if state == want {
			break
		}
		if state == "error" || state == "stopped" {
			text, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID(status)))
			t.Fatalf("#%s ended %s: %s", out, state, text)
		}
		time.Sleep(50 * time.Millisecond)
	}
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID(status)))
	if err != nil {
		t.Fatal(err)
	}
	return text
}

// clearState forgets the data-state of the element out of the page, so
// that waitState waits for the next request's.
func clearState(t *testing.T, ctx context.Context, out string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`delete document.getElementById("`+out+`").dataset.state`)); err != nil {
		t.Fatal(err)
	}
}

// TestBrowserMultimodal drives the page in headless chromium on a server of
// the class-conditional model and the tiny multimodal one: both are in the
// model list and the "read and write" section shows. From the keyboard it
// picks the multimodal model (the prompt replaces the class), types a
// prompt and presses Enter, and checks that partial images were drawn
// before the final one, a 56×56 PNG; it captions that image through its
// Caption button and asks a question about it, each answer the server's
// own to the same request; a PNG of the wrong size is refused naming the
// field; and a completion streams its text, the server's own completion of
// the same request.
func TestBrowserMultimodal(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("chromium not installed: run make setup (it installs Debian's chromium): %v", err)
	}
	_, url := newMMServer(t, Config{}, true)
	items := testMultimodal(t).Multimodal.Format.Items
	start := time.Now()
	ctx := newBrowser(t)
	err := chromedp.Do(ctx,
		chromedp.Navigate(url+"/"),
		chromedp.WaitReady(chromedp.CSS(`#model option[value="`+mmName+`"]`)),
	)
	if err != nil {
		t.Fatalf("loading the page: %v", err)
	}
	const layout = `[...document.querySelectorAll("#model option")].map((o) => o.value).join(" ") +
		" | class " + !document.getElementById("class-row").hidden + ", prompt " + !document.getElementById("prompt-row").hidden +
		", read and write " + !document.getElementById("mm-section").hidden`
	page, err := chromedp.Run(ctx, chromedp.Evaluate[string](layout))
	if err != nil {
		t.Fatal(err)
	}
	if want := "latentlm-mnist " + mmName + " | class true, prompt false, read and write true"; page != want {
		t.Fatalf("the page: %q, want %q", page, want)
	}
	// The keyboard: the model list, the next model.
	if err := chromedp.Do(ctx, chromedp.Focus(chromedp.ID("model")), chromedp.KeyEvent(kb.ArrowDown)); err != nil {
		t.Fatalf("picking the multimodal model: %v", err)
	}
	if page, err = chromedp.Run(ctx, chromedp.Evaluate[string](layout)); err != nil {
		t.Fatal(err)
	}
	if want := "latentlm-mnist " + mmName + " | class false, prompt true, read and write true"; page != want {
		t.Fatalf("with the multimodal model picked, the page: %q, want %q", page, want)
	}
	setFields(t, ctx, [][2]string{{"n", "1"}, {"steps", "2"}, {"seed", "3"}})
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](recordSrcs)); err != nil {
		t.Fatalf("watching the image: %v", err)
	}
	const prompt = "the digit 3"
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("prompt"), prompt+kb.Enter)); err != nil {
		t.Fatalf("typing the prompt: %v", err)
	}
	status, srcs, final, latents := imagesDrawn(t, ctx)
	t.Logf("prompt %q: %d latent events drawn, %d images replaced before the final one; status: %q", prompt, latents, len(srcs), status)
	partial := 0
	for _, s := range srcs {
		if s != final {
			partial++
		}
	}
	if latents != items || partial == 0 || !strings.HasPrefix(status, "Done: 1 image(s)") {
		t.Fatalf("%d latent events, %d partial images of %d, status %q; want %d latents and partial images before the final one", latents, partial, len(srcs), status, items)
	}
	decodeDataURL(t, "the first partial image", srcs[0], mmSize)
	img := decodeDataURL(t, "the final image", final, mmSize)
	var want PromptImagesResponse
	if st, e := postTo(t, url, "/v1/images", `{"model":"`+mmName+`","prompt":"`+prompt+`","steps":2,"seed":3}`, &want); st != 200 || len(want.Images) != 1 {
		t.Fatalf("the same request: %d %+v", st, e)
	}
	if !samePixels(decodePNGs(t, []string{img}, mmSize), decodePNGs(t, want.Images, mmSize)) {
		t.Error("the page's image differs from the server's answer to the same request")
	}

	// The Caption button under the image reads it.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#image-actions button`))); err != nil {
		t.Fatalf("captioning the image: %v", err)
	}
	status = waitDone(t, ctx, "read-out", "read-status")
	read := func() map[string]string {
		t.Helper()
		out, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`({...document.getElementById("read-out").dataset, shown: document.getElementById("read-text").textContent})`))
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	out := read()
	t.Logf("caption: %v; status %q", out, status)
	var caps CaptionsResponse
	if st, e := postTo(t, url, "/v1/captions", `{"images":["`+img+`"]}`, &caps); st != 200 || len(caps.Captions) != 1 {
		t.Fatalf("captions: %d %+v", st, e)
	}
	if out["kind"] != "caption" || out["text"] != caps.Captions[0] || !strings.HasPrefix(out["shown"], "Caption: ") {
		t.Errorf("the page's caption %v, want %q", out, caps.Captions[0])
	}
	// A question, and Enter.
	const question = "which digit is on the left?"
	clearState(t, ctx, "read-out")
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("read-question"), question+kb.Enter)); err != nil {
		t.Fatalf("asking: %v", err)
	}
	waitDone(t, ctx, "read-out", "read-status")
	out = read()
	var ans AnswersResponse
	if st, e := postTo(t, url, "/v1/answers", `{"images":["`+img+`"],"question":"`+question+`"}`, &ans); st != 200 || len(ans.Answers) != 1 {
		t.Fatalf("answers: %d %+v", st, e)
	}
	if out["kind"] != "answer" || out["text"] != ans.Answers[0] || !strings.HasPrefix(out["shown"], "Q: "+question) {
		t.Errorf("the page's answer %v, want %q", out, ans.Answers[0])
	}
	// A PNG file of the wrong size: the server's refusal, naming the field.
	small := filepath.Join(t.TempDir(), "small.png")
	var b bytes.Buffer
	if err := png.Encode(&b, grayImage(28, 200)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(small, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	clearState(t, ctx, "read-out")
	if err := chromedp.Do(ctx, chromedp.SetUploadFiles(chromedp.ID("read-file"), []string{small}),
		chromedp.WaitVisible(chromedp.Search(`//p[@id="read-status"][starts-with(., "small.png")]`)),
		chromedp.Click(chromedp.ID("read-go"))); err != nil {
		t.Fatalf("reading a file: %v", err)
	}
	status = waitState(t, ctx, "read-out", "read-status", "error")
	if !strings.Contains(status, "Error 400 in images") || !strings.Contains(status, "want 56×56") {
		t.Errorf("reading a 28×28 PNG: status %q, want the refusal naming images", status)
	}

	// A completion, its text streamed.
	const complete = "the digit 3 is"
	setFields(t, ctx, [][2]string{{"complete-steps", "2"}, {"complete-seed", "2"}})
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("complete-prompt"), complete+kb.Enter)); err != nil {
		t.Fatalf("typing the completion's prompt: %v", err)
	}
	status = waitDone(t, ctx, "complete-out", "complete-status")
	cout, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`({...document.getElementById("complete-out").dataset,
		shown: document.getElementById("complete-out").textContent, imgs: String(document.querySelectorAll("#complete-out img").length)})`))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("completion: %v; status %q", cout, status)
	var comp CompletionResponse
	if st, e := postTo(t, url, "/v1/completions", `{"prompt":"`+complete+`","steps":2,"seed":2}`, &comp); st != 200 {
		t.Fatalf("completion: %d %+v", st, e)
	}
	if cout["text"] == "" || cout["texts"] == "0" || cout["text"] != comp.Text || cout["shown"] != complete+comp.Text ||
		cout["images"] != strconv.Itoa(len(comp.Images)) || cout["imgs"] != cout["images"] {
		t.Errorf("the page's completion %v; the server's %q and %d images", cout, comp.Text, len(comp.Images))
	}
	t.Logf("browser multimodal test took %v", time.Since(start).Round(time.Millisecond))
}
