package checkpoint_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/nn"
)

// TestLatentLineage: a tokenizer's lineage is its own weights' checksum,
// computed here from the file, then the checksums its config.json lists
// under SameLatentsKey, repeats dropped; an entry that is not a list of
// sha256 checksums is refused, naming the folder.
func TestLatentLineage(t *testing.T) {
	m := tiny{D: 3}
	store := model.NewStore()
	if err := nn.Init(store, m.Specs(), 1, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	a, b := strings.Repeat("a", 64), strings.Repeat("b", 64)
	for _, c := range []struct {
		name    string
		entry   any // nil: none
		want    []string
		problem string
	}{
		{"none", nil, nil, ""},
		{"two", []string{a, b, a}, []string{a, b}, ""},
		{"not a list", a, nil, "not a list"},
		{"short", []string{"abc"}, nil, "not a sha256"},
		{"a number", []any{a, 7}, nil, "not a sha256"},
	} {
		dir := filepath.Join(t.TempDir(), "tok")
		info := map[string]any{}
		if c.entry != nil {
			info[checkpoint.SameLatentsKey] = c.entry
		}
		if err := checkpoint.Save(dir, "tiny", m, info, store, false, nil); err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(filepath.Join(dir, checkpoint.WeightsFile))
		if err != nil {
			t.Fatal(err)
		}
		own := sha256.Sum256(raw)
		got, err := checkpoint.LatentLineage(dir)
		if c.problem != "" {
			if err == nil || !strings.Contains(err.Error(), c.problem) || !strings.Contains(err.Error(), dir) {
				t.Errorf("%s: %v, want an error naming %s and %q", c.name, err, dir, c.problem)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		want := append([]string{hex.EncodeToString(own[:])}, c.want...)
		if !slices.Equal(got, want) {
			t.Errorf("%s: lineage %v, want %v", c.name, got, want)
		}
	}
}
