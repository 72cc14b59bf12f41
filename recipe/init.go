package recipe

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/multimodal"
	"github.com/latentlm/latentlm/nn"
)

// resumedInit is the --init that the resumed run in out records: the
// checkpoint it was started from, so that its saves keep saying so. An
// init given with the resume (a resume hint repeats the command that
// started the run) must name that same checkpoint. A folder without a
// readable run is left to train.StartRun to report.
func resumedInit(out, init string) (string, error) {
	saved, err := checkpoint.RecordedInit(out)
	switch {
	case err != nil || init == "":
		return saved, nil
	case saved == "":
		return "", fmt.Errorf("--init %s: the run in %s started from fresh weights; --resume continues it as it was", init, out)
	case filepath.Clean(saved) != filepath.Clean(init):
		return "", fmt.Errorf("--init %s: the run in %s started from %s; --resume continues it from there", init, out, saved)
	}
	return saved, nil
}

// initFrom copies into store every weight of the checkpoint in dir that
// has a weight of the same name and shape there, and returns the tokenizer
// record dir was trained on. kinds are the checkpoint kinds accepted; a
// multimodal one is read with any arch's config, the others with lm.Config.
func initFrom(store *model.Store, dir string, kinds ...string) (copied, total int, tok lm.Tokenizer, err error) {
	kind, err := checkpoint.ReadKind(dir)
	if err != nil {
		return 0, 0, tok, err
	}
	if !slices.Contains(kinds, kind) {
		return 0, 0, tok, fmt.Errorf("--init %s: a %q checkpoint, want %s", dir, kind, strings.Join(kinds, " or "))
	}
	var src *model.Store
	if kind == multimodal.Kind { // any arch
		src, tok, _, err = lm.LoadKind(dir, kind, &multimodal.Config{})
	} else {
		src, tok, _, err = lm.LoadKind(dir, kind, &lm.Config{})
	}
	if err != nil {
		return 0, 0, tok, err
	}
	copied, total, err = copyWeights(store, src)
	return copied, total, tok, err
}

// copyWeights copies into dst every trainable weight of src that dst has
// under the same name and shape, and counts them and dst's weights.
func copyWeights(dst, src *model.Store) (copied, total int, err error) {
	from := nn.TrainableByName(src)
	for _, v := range nn.Trainable(dst) {
		total++
		sv := from[nn.WeightName(v)]
		if sv == nil || !sv.Shape().Equal(v.Shape()) {
			continue
		}
		clone, err := nn.CopyValue(sv)
		if err != nil {
			return 0, 0, err
		}
		if err := v.SetValue(clone); err != nil {
			return 0, 0, err
		}
		copied++
	}
	return copied, total, nil
}
