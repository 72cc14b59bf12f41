package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestServeSpeechFlags: serve refuses, with one line that names the
// problem, a --models folder holding no model of any kind when --multimodal
// and --speech add none, and a --speech folder that is not a text-to-speech
// checkpoint; both before it listens (run at package level: runServe's
// error is the line main prints).
func TestServeSpeechFlags(t *testing.T) {
	empty := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--models", empty, "--multimodal", "none", "--speech", "none"}, "holds no LatentLM or DiT checkpoint (a folder with a config.json of kind latentlm or dit) (nor a text-to-speech one"},
		{[]string{"--models", empty, "--multimodal", "none", "--speech", filepath.Join(empty, "nope")}, "--speech: loading " + filepath.Join(empty, "nope")},
	} {
		err := runServe(append(c.args, "--addr", "127.0.0.1:0"))
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("serve %q: %v, want one line with %q", c.args, err, c.want)
		}
	}
}
