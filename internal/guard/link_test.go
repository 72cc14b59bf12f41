package guard

import (
	"os"
	"path/filepath"
	"testing"
)

// A link followed by ".." leads where the kernel says, not where the text
// does: link/../x with link → ckpt/sub is ckpt/x, inside the input folder.
func TestCheckOutputLinkThenDotDot(t *testing.T) {
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "ckpt")
	if err := os.MkdirAll(filepath.Join(ckpt, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(filepath.Join(ckpt, "sub"), link); err != nil {
		t.Fatal(err)
	}
	out := link + "/../model.png"
	if err := CheckOutput(out, ckpt); err == nil {
		t.Fatalf("CheckOutput(%s, %s) accepted an output that lands in %s", out, ckpt, ckpt)
	}
	if err := CheckOutput(filepath.Join(dir, "elsewhere.png"), ckpt); err != nil {
		t.Fatalf("unrelated output refused: %v", err)
	}
}
