package recipe

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/latentlm/latentlm/checkpoint"
)

// keptOptions is what a resumed run takes from its own record (the info
// of its config.json) instead of the command's options: the data it trains
// on and the options that shape its batches and losses. Resuming is
// continuing one run, so a flag left out of the resuming command (say
// --set, whose default is another text set) must not quietly change what
// the rest of the run trains on; the learning rates are kept the same way
// (train.New). Options the record lacks (older runs) stay as given.
type keptOptions struct {
	info    map[string]any
	changed []string // "set both (not numbers)", one per option the command gave otherwise
}

// keepRecorded reads the record of the run in out and lets keep take
// from it what the recipe keeps, then tells what changed. Without a
// checkpoint there it keeps nothing: train.StartRun then says there is
// none to resume.
func keepRecorded(out string, keep func(k *keptOptions)) error {
	if _, err := os.Stat(filepath.Join(out, checkpoint.ConfigFile)); err != nil {
		return nil
	}
	info, err := checkpoint.RecordedInfo(out)
	if err != nil {
		return fmt.Errorf("resuming %s: %w", out, err)
	}
	k := &keptOptions{info: info}
	keep(k)
	k.tell()
	return nil
}

// lookup finds key in the record; a dotted key ("tts.prompt_seconds")
// reads inside an object.
func (k *keptOptions) lookup(key string) (any, bool) {
	var v any = k.info
	for part := range strings.SplitSeq(key, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[part]; !ok {
			return nil, false
		}
	}
	return v, true
}

// keep sets *v to the recorded value of key when the record holds a T
// that is not the same as *v, and notes the change.
func keep[T any](k *keptOptions, key string, v *T, same func(a, b T) bool) {
	r, ok := k.lookup(key)
	rec, isT := r.(T)
	if !ok || !isT || same(rec, *v) {
		return
	}
	k.changed = append(k.changed, fmt.Sprintf("%s %v (not %v)", key, rec, *v))
	*v = rec
}

func equal[T comparable](a, b T) bool { return a == b }

// text keeps the recorded string of key in v.
func (k *keptOptions) text(key string, v *string) { keep(k, key, v, equal[string]) }

// path keeps the recorded path of key in v, the same file however spelt.
func (k *keptOptions) path(key string, v *string) { keep(k, key, v, samePath) }

func samePath(a, b string) bool {
	if a == b {
		return true
	}
	absA, errA := filepath.Abs(a)
	absB, errB := filepath.Abs(b)
	return errA == nil && errB == nil && absA == absB
}

// number keeps the recorded number of key in v.
func (k *keptOptions) number(key string, v *float64) { keep(k, key, v, equal[float64]) }

// count keeps the recorded whole number of key in v.
func (k *keptOptions) count(key string, v *int) {
	x := float64(*v)
	k.number(key, &x)
	*v = int(x)
}

// numbers keeps the recorded array of numbers of key in vs, one each.
func (k *keptOptions) numbers(key string, vs ...*float64) {
	r, ok := k.lookup(key)
	arr, isArray := r.([]any)
	if !ok || !isArray || len(arr) != len(vs) {
		return
	}
	was, now := make([]float64, len(vs)), make([]float64, len(vs))
	differs := false
	for i, v := range vs {
		x, ok := arr[i].(float64)
		if !ok {
			return
		}
		was[i], now[i] = *v, x
		differs = differs || x != *v
	}
	if differs {
		k.changed = append(k.changed, fmt.Sprintf("%s %v (not %v)", key, now, was))
		for i, v := range vs {
			*v = now[i]
		}
	}
}

// flag keeps the recorded true or false of key in v.
func (k *keptOptions) flag(key string, v *bool) { keep(k, key, v, equal[bool]) }

// speechData keeps what a speech model's run reads: its data, text set,
// utterances per voice and batch.
func (k *keptOptions) speechData(o *Options, set *string, limit *int) {
	k.path("data", &o.Data)
	k.text("set", set)
	k.count("limit", limit)
	k.count("batch", &o.Batch)
}

// tell prints, when the command gave other values than the run's own,
// one line naming them, on stderr even under --quiet (as the kept
// learning rates are): the run is not what its flags say.
func (k *keptOptions) tell() {
	if len(k.changed) > 0 {
		fmt.Fprintf(os.Stderr, "resuming on the run's own options: %s (to train otherwise, start a new run from its weights)\n", strings.Join(k.changed, ", "))
	}
}
