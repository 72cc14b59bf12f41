package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
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

	// The timeout bounds the whole browser: it is set above the allocator,
	// since chromedp stops the browser with the context of its first run.
	tctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox, // tests run as root in containers
		chromedp.DisableGPU,
		chromedp.WindowSize(900, 700),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(tctx, opts...)
	defer cancelAlloc()
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancelCtx()

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
