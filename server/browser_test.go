package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
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

	for {
		state, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("images").dataset.state || ""`))
		if err != nil {
			t.Fatalf("waiting for the generation: %v", err)
		}
		if state == "done" {
			break
		}
		if state == "error" || state == "stopped" {
			status, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("status")))
			t.Fatalf("generation ended %s: %s", state, status)
		}
		time.Sleep(50 * time.Millisecond)
	}

	srcs, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.__srcs`))
	if err != nil {
		t.Fatal(err)
	}
	final, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#images img").src`))
	if err != nil {
		t.Fatal(err)
	}
	latents, err := chromedp.Run(ctx, chromedp.Evaluate[int](`Number(document.getElementById("images").dataset.latents)`))
	if err != nil {
		t.Fatal(err)
	}
	status, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("status")))
	if err != nil {
		t.Fatal(err)
	}
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
	decodeDataURL(t, "the first partial image", srcs[0])
	decodeDataURL(t, "the final image", final)

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
	ctx := newBrowser(t)
	err := chromedp.Do(ctx,
		chromedp.Navigate(url+"/"),
		// The voice list is filled once /v1/models has answered.
		chromedp.WaitReady(chromedp.CSS(`#speech-voice option[value="test-b"]`)),
	)
	if err != nil {
		t.Fatalf("loading the page: %v", err)
	}
	for _, f := range [][2]string{{"speech-voice", "test-b"}, {"speech-steps", "2"}, {"speech-seed", "5"}, {"speech-max", "0.6"}, {"speech-text", "Seve"}} {
		if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.ID(f[0]), f[1])); err != nil {
			t.Fatalf("setting #%s to %q: %v", f[0], f[1], err)
		}
	}
	// The keyboard: the end of the text, then Enter, which submits the form.
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("speech-text"), "n"+kb.Enter)); err != nil {
		t.Fatalf("typing the text: %v", err)
	}
	for {
		state, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("speech-out").dataset.state || ""`))
		if err != nil {
			t.Fatalf("waiting for the speech: %v", err)
		}
		if state == "done" {
			break
		}
		if state == "error" || state == "stopped" {
			status, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("speech-status")))
			t.Fatalf("speech ended %s: %s", state, status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`({...document.getElementById("speech-out").dataset,
		images: String(document.getElementById("image-section").hidden), link: String(document.getElementById("speech-download").hidden)})`))
	if err != nil {
		t.Fatal(err)
	}
	status, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("speech-status")))
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

// decodeDataURL checks that src is a data URL of a 28×28 PNG.
func decodeDataURL(t *testing.T, what, src string) {
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
	if b := img.Bounds(); b.Dx() != 28 || b.Dy() != 28 {
		t.Fatalf("%s is %v, want 28×28", what, b)
	}
}
