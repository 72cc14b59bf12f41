package recipe

import (
	"path/filepath"
	"testing"
)

// keptOptions takes each recorded value, names in changed only those the
// command gave otherwise (a path spelt another way is the same path), and
// leaves alone what the record lacks.
func TestKeptOptions(t *testing.T) {
	abs, err := filepath.Abs("cache")
	if err != nil {
		t.Fatal(err)
	}
	k := &keptOptions{info: map[string]any{
		"data": abs, "other": "/elsewhere", "set": "both", "batch": 16.0, "noise": 0.5,
		"mix": []any{1.0, 2.0, 1.0, 0.0}, "tts": map[string]any{"prompt_seconds": 3.0}, "trained": false,
	}}
	data, other, set, batch, noise, absent := "cache", "cache", "numbers", 16, 1.0, 7.0
	mix := [4]float64{1, 1, 1, 1}
	prompt, trained := 0.0, true
	k.path("data", &data)
	k.path("other", &other)
	k.text("set", &set)
	k.count("batch", &batch)
	k.number("noise", &noise)
	k.number("absent", &absent)
	k.numbers("mix", &mix[0], &mix[1], &mix[2], &mix[3])
	k.number("tts.prompt_seconds", &prompt)
	k.flag("trained", &trained)
	if data != "cache" || other != "/elsewhere" || set != "both" || batch != 16 || noise != 0.5 || absent != 7 ||
		mix != [4]float64{1, 2, 1, 0} || prompt != 3 || trained {
		t.Errorf("kept data %q other %q set %q batch %d noise %v absent %v mix %v prompt %v trained %v",
			data, other, set, batch, noise, absent, mix, prompt, trained)
	}
	want := []string{"other /elsewhere (not cache)", "set both (not numbers)", "noise 0.5 (not 1)",
		"mix [1 2 1 0] (not [1 1 1 1])", "tts.prompt_seconds 3 (not 0)", "trained false (not true)"}
	if len(k.changed) != len(want) {
		t.Fatalf("changed %q, want %q", k.changed, want)
	}
	for i := range want {
		if k.changed[i] != want[i] {
			t.Errorf("changed[%d] = %q, want %q", i, k.changed[i], want[i])
		}
	}
}
