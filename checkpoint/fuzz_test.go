package checkpoint_test

// The config fuzz target lives in the external test package because the
// concrete configs (lm, dit, vae, classifier) import checkpoint.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/classifier"
	"github.com/latentlm/latentlm/dit"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/vae"
)

// fuzzKinds are the checkpoint kinds and their configs; FuzzReadHeader
// picks one by its kind argument modulo their number.
var fuzzKinds = []struct {
	kind string
	new  func() checkpoint.Model
	def  checkpoint.Model
}{
	{lm.Kind, func() checkpoint.Model { return &lm.Config{} }, lm.DefaultConfig()},
	{vae.Kind, func() checkpoint.Model { return &vae.Config{} }, vae.DefaultConfig()},
	{classifier.Kind, func() checkpoint.Model { return &classifier.Config{} }, classifier.DefaultConfig()},
	{dit.Kind, func() checkpoint.Model { return &dit.Config{} }, dit.FromLM(lm.DefaultConfig(), 7)},
}

// headerJSON is a config.json holding cfg under kind.
func headerJSON(tb testing.TB, kind string, cfg any) []byte {
	raw, err := json.Marshal(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := json.Marshal(checkpoint.Header{Kind: kind, Config: raw, Info: map[string]any{"seed": 1}})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// maxSpecs bounds how many weights a valid config may declare (a depth of
// nn.MaxDepth blocks of a dozen weights each is ~12k).
const maxSpecs = 1 << 16

// FuzzReadHeader: no config.json may panic ReadHeader (or the Specs of a
// config it accepts); an error names the checkpoint on one line, and an
// accepted config has the kind asked for, validates, declares weights of
// positive sizes with distinct names, and survives a save and read back
// unchanged.
func FuzzReadHeader(f *testing.F) {
	for i, k := range fuzzKinds {
		valid := headerJSON(f, k.kind, k.def)
		f.Add(valid, uint8(i))
		f.Add(valid, uint8(i+1)) // another kind than asked for
	}
	f.Add([]byte(`{"kind":"latentlm","config":{"dim":128,"depth":4,"heads":3}}`), uint8(0))
	f.Add([]byte(`{"kind":"vae","config":{"kind":"sigma","image_size":28,"patch":5}}`), uint8(1))
	f.Add([]byte(`{"kind":"classifier","config":{"image_size":28,"widths":[16,-1],"features":1,"classes":10}}`), uint8(2))
	f.Add([]byte(`{"kind":"dit","config":{"dim":1e400}}`), uint8(3))
	f.Add([]byte(`{"kind":"latentlm","config":{"depth":1000000000}}`), uint8(0))
	f.Add([]byte(`{"kind":"latentlm","config":null}`), uint8(0))
	f.Add([]byte(`{"kind":"vae","config":[]}`), uint8(1))
	f.Add([]byte(`{"kind":`), uint8(2))
	f.Add([]byte("\xff\xfe"), uint8(3))
	f.Add([]byte{}, uint8(0))
	// One folder, its config.json rewritten by each execution: they run one
	// at a time in a process.
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, raw []byte, kind uint8) {
		k := fuzzKinds[int(kind)%len(fuzzKinds)]
		if err := os.WriteFile(filepath.Join(dir, checkpoint.ConfigFile), raw, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg := k.new()
		h, err := checkpoint.ReadHeader(dir, k.kind, cfg)
		if err != nil {
			if h != nil {
				t.Fatalf("header along with error %v", err)
			}
			if msg := err.Error(); !strings.Contains(msg, dir) || strings.Contains(msg, "\n") {
				t.Fatalf("error %q does not name %s on one line", msg, dir)
			}
			return
		}
		if h.Kind != k.kind {
			t.Fatalf("accepted kind %q as %q", h.Kind, k.kind)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted an invalid config: %v", err)
		}
		specs := cfg.Specs()
		if len(specs) == 0 || len(specs) > maxSpecs {
			t.Fatalf("valid config %+v declares %d weights", cfg, len(specs))
		}
		names := map[string]bool{}
		for _, s := range specs {
			if s.Name == "" || names[s.Name] {
				t.Fatalf("valid config %+v declares weight %q twice or unnamed", cfg, s.Name)
			}
			names[s.Name] = true
			for _, d := range s.Shape {
				if d <= 0 {
					t.Fatalf("valid config %+v declares weight %s of shape %v", cfg, s.Name, s.Shape)
				}
			}
		}
		// Saved as Save writes it and read back: the same config.
		if err := os.WriteFile(filepath.Join(dir, checkpoint.ConfigFile), headerJSON(t, k.kind, cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		again := k.new()
		if _, err := checkpoint.ReadHeader(dir, k.kind, again); err != nil {
			t.Fatalf("config %+v does not read back: %v", cfg, err)
		}
		if !reflect.DeepEqual(cfg, again) {
			t.Fatalf("config %+v reads back as %+v", cfg, again)
		}
	})
}
