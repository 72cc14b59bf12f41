package recipe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"time"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/canvas"
	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/classifier"
	"github.com/latentlm/latentlm/data"
	"github.com/latentlm/latentlm/emoji"
	"github.com/latentlm/latentlm/evaluate"
	"github.com/latentlm/latentlm/metrics"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/train"
)

// ClassifierOptions are the settings of Classifier, the options of
// `latentlm classifier train`.
type ClassifierOptions struct {
	Options
	// Limit trains on the first Limit training images only (0: all).
	Limit int
	// Model is the classifier; a resumed run uses the saved one. Its
	// ImageSize, InChannels, Classes and Labels are replaced by those of
	// the data set (see DefaultClassifierModel for the stages that suit
	// each).
	Model classifier.Config
	// Target is what a classifier of the emoji names (the emoji judges of
	// docs/DESIGN.md §11): TargetSubcategory or TargetTone. The named sets
	// take none: their labels are their classes.
	Target string
	// Images say how the emoji are read (size, background; see
	// LoadImages); the named sets take their own size.
	Images ImageOptions
	// Shift moves each training image by a random whole number of pixels
	// in [−Shift, Shift] along each axis (the edge pixels repeated), an
	// augmentation against the small misplacements of generated images:
	// DefaultClassifierShift for the emoji, 0 (none) for the named sets.
	Shift int
}

// The targets of an emoji judge.
const (
	// TargetSubcategory names an emoji's subcategory in emoji.json
	// ("hand-fingers-closed", "animal-mammal", …).
	TargetSubcategory = "subcategory"
	// TargetTone names its skin tone: one of ToneClasses.
	TargetTone = "tone"
)

// Targets lists the emoji judges' targets.
var Targets = []string{TargetSubcategory, TargetTone}

// ToneClasses are the classes of the skin-tone judge: "none" (an emoji's
// yellow default, and every emoji without tones), the five tones of
// emoji.SkinTones, and "two skin tones" (the two-person emoji whose two
// people differ; one whose people share a tone is of that tone).
var ToneClasses = append(append([]string{"none"}, emoji.SkinTones...), "two skin tones")

// DefaultClassifierShift is the Shift of the emoji judges.
const DefaultClassifierShift = 2

// DefaultClassifierModel is the classifier of `latentlm classifier train`
// for a data set: classifier.DefaultConfig for mnist and fashion; for the
// 56×56 canvases, the judge that names their 240 scenes, with a third
// stage of 64 channels so that three poolings bring the canvas down to the
// same 7×7 grid.
//
// For the emoji it is the judge of their subcategory or skin tone: 32×32
// RGB images (DefaultImageSize), three stages of 32, 64 and 128 channels
// down to a 4×4 grid, 128 features; its classes are set by the target.
func DefaultClassifierModel(dataName string) classifier.Config {
	c := classifier.DefaultConfig()
	if dataName == EmojiData {
		c.ImageSize, c.InChannels, c.Widths, c.Classes = DefaultImageSize, 3, []int{32, 64, 128}, len(ToneClasses)
		return c
	}
	c.ImageSize, c.Classes = imageSize(dataName), classes(dataName)
	if canvas.IsCanvas(dataName) {
		c.Widths = []int{16, 32, 64}
	}
	return c
}

// EmojiIndex is what the emoji judges and the emoji evaluation know of
// each image: its entry of emoji.json, and whether it is a held-out
// emoji/skin-tone combination (emoji.Split).
type EmojiIndex struct {
	Entries []emoji.Entry
	ByFile  map[string]emoji.Entry
	HeldOut map[string]bool // by file
}

// LoadEmojiIndex reads the installed emoji's entries.
func LoadEmojiIndex() (*EmojiIndex, error) {
	dir, err := emoji.Dir()
	if err != nil {
		return nil, err
	}
	entries, err := emoji.ReadEntries(dir)
	if err != nil {
		return nil, err
	}
	x := &EmojiIndex{Entries: entries, ByFile: map[string]emoji.Entry{}, HeldOut: map[string]bool{}}
	for _, e := range entries {
		x.ByFile[e.File] = e
	}
	_, held := emoji.Split(entries)
	for _, e := range held {
		x.HeldOut[e.File] = true
	}
	return x, nil
}

// EmojiClasses are the classes of an emoji judge: every subcategory of the
// entries, sorted, or ToneClasses.
func EmojiClasses(entries []emoji.Entry, target string) ([]string, error) {
	switch target {
	case TargetSubcategory:
		var out []string
		for _, e := range entries {
			if !slices.Contains(out, e.Subcategory) {
				out = append(out, e.Subcategory)
			}
		}
		slices.Sort(out)
		return out, nil
	case TargetTone:
		return ToneClasses, nil
	}
	return nil, &OptionError{Option: "target", Problem: fmt.Sprintf("%q: want %s", target, strings.Join(Targets, " or "))}
}

// EmojiClass is the class of an entry among classes (EmojiClasses of the
// target), or −1 if it has none there.
func EmojiClass(e emoji.Entry, target string, classes []string) int {
	if target == TargetSubcategory {
		return slices.Index(classes, e.Subcategory)
	}
	return toneClass(e.Tone)
}

// toneClass is the index in ToneClasses of a skin-variation key of
// emoji.json ("" none, "1F3FD" one tone, "1F3FB-1F3FF" two).
func toneClass(key string) int {
	if key == "" {
		return 0
	}
	codes := []string{"1F3FB", "1F3FC", "1F3FD", "1F3FE", "1F3FF"}
	parts := strings.Split(key, "-")
	first := slices.Index(codes, parts[0])
	if first < 0 {
		return -1
	}
	for _, p := range parts[1:] {
		if p != parts[0] {
			return len(ToneClasses) - 1
		}
	}
	return 1 + first
}

// Labels are the classes, for a judge's target, of the images of an emoji
// set (LoadImages("emoji", …)), with the classes' names.
func (x *EmojiIndex) Labels(set *ImageSet, target string) ([]int, []string, error) {
	classes, err := EmojiClasses(x.Entries, target)
	if err != nil {
		return nil, nil, err
	}
	labels := make([]int, set.N)
	for i := range labels {
		e, ok := x.ByFile[set.Files[i]]
		if !ok {
			return nil, nil, fmt.Errorf("emoji image %s has no entry in emoji.json", set.Files[i])
		}
		if labels[i] = EmojiClass(e, target, classes); labels[i] < 0 {
			return nil, nil, fmt.Errorf("emoji %s (%s): no %s class", e.File, e.Caption, target)
		}
	}
	return labels, classes, nil
}

// JudgeAccuracy is an emoji judge's accuracy on the real test images:
// all of them, the held-out emoji/skin-tone combinations, and the test
// emoji (never trained on in any tone).
type JudgeAccuracy struct {
	Test, HeldOut, Unseen evaluate.Accuracy
}

// EmojiJudgeAccuracy measures a classifier of the emoji on their test
// split (LoadImages, at the classifier's size, with o's background).
func EmojiJudgeAccuracy(m *classifier.Model, target string, o ImageOptions, log io.Writer) (JudgeAccuracy, error) {
	var r JudgeAccuracy
	o.Size = m.Config.ImageSize
	test, err := LoadImages(EmojiData, "test", o, 0, log)
	if err != nil {
		return r, err
	}
	if test.Channels != m.Config.ImageChannels() {
		return r, fmt.Errorf("classifier takes %s, the emoji are %s", channelWords(m.Config.ImageChannels()), channelWords(test.Channels))
	}
	x, err := LoadEmojiIndex()
	if err != nil {
		return r, err
	}
	labels, classes, err := x.Labels(test, target)
	if err != nil {
		return r, err
	}
	if !slices.Equal(classes, m.Config.Labels) {
		return r, fmt.Errorf("the classifier's %d classes are not the %d %s classes of the emoji", m.Config.Classes, len(classes), target)
	}
	imgs := make([][]float32, test.N)
	for i := range imgs {
		imgs[i] = make([]float32, test.PerImage())
		test.Float32(i, imgs[i])
	}
	probs, _, err := m.Predict(imgs)
	if err != nil {
		return r, err
	}
	for i, p := range probs {
		ok := metrics.Argmax(p) == labels[i]
		r.Test.Add(ok)
		if x.HeldOut[test.Files[i]] {
			r.HeldOut.Add(ok)
		} else {
			r.Unseen.Add(ok)
		}
	}
	return r, nil
}

// ClassifierSplit is the split a classifier of the data set trains on:
// "train", or the "judge" split of a canvas set, which holds the held-out
// scenes that the judge must recognise (see package canvas).
func ClassifierSplit(dataName string) string {
	if canvas.IsCanvas(dataName) {
		return "judge"
	}
	return "train"
}

// DefaultClassifierOptions are the defaults of `latentlm classifier train`.
func DefaultClassifierOptions() ClassifierOptions {
	return ClassifierOptions{
		Options: Options{Data: "mnist", Steps: 1200, SaveEvery: 500, Batch: 128, LR: 2e-3, Seed: 1},
		Model:   classifier.DefaultConfig(),
	}
}

// Classifier trains the CNN that scores generated images into o.Out
// (default runs/classifier-<data>, runs/classifier-emoji-<target> for an
// emoji judge), then measures the saved (EMA) weights' accuracy on the test
// split and records it in the checkpoint. It trains on the split
// ClassifierSplit names (the emoji: their train split, which holds no
// held-out emoji/skin-tone combination, so that the test accuracy is on
// images the judge never saw); o.Limit limits that split. An emoji judge
// also records its accuracy on the held-out combinations alone.
func Classifier(ctx context.Context, o ClassifierOptions) (*Result, error) {
	isEmoji := o.Data == EmojiData
	if !isEmoji {
		if err := CheckData(o.Data); err != nil {
			return nil, fmt.Errorf("%w (or emoji, with --target)", err)
		}
		if o.Target != "" {
			return nil, &OptionError{Option: "target", Problem: fmt.Sprintf("%s is for the emoji; %s has classes of its own", o.Target, o.Data)}
		}
	} else if !slices.Contains(Targets, o.Target) {
		return nil, &OptionError{Option: "target", Problem: fmt.Sprintf("%q: an emoji judge names the %s", o.Target, strings.Join(Targets, " or "))}
	}
	if o.Steps < 1 || o.Batch < 1 {
		return nil, errors.New("steps and batch must be at least 1")
	}
	if o.Shift < 0 {
		return nil, &OptionError{Option: "shift", Problem: fmt.Sprintf("%d: want ≥ 0", o.Shift)}
	}
	if o.Out == "" {
		o.Out = filepath.Join("runs", "classifier-"+o.Data)
		if isEmoji {
			o.Out += "-" + o.Target
		}
	}
	b, bname, err := openBackend(o.Backend)
	if err != nil {
		return nil, err
	}
	cfg := o.Model
	var set *ImageSet
	var labels []int
	if isEmoji {
		if set, err = LoadImages(EmojiData, "train", o.Images, o.Limit, o.Log); err != nil {
			return nil, err
		}
		x, err := LoadEmojiIndex()
		if err != nil {
			return nil, err
		}
		var classes []string
		if labels, classes, err = x.Labels(set, o.Target); err != nil {
			return nil, err
		}
		cfg.ImageSize, cfg.InChannels, cfg.Classes, cfg.Labels = set.Size, set.Channels, len(classes), classes
	} else {
		ds, err := LoadSplit(o.Data, ClassifierSplit(o.Data), o.Limit)
		if err != nil {
			return nil, err
		}
		if set, err = ImageSetOf(ds); err != nil {
			return nil, err
		}
		labels = make([]int, ds.N)
		for i, l := range ds.Labels {
			labels[i] = int(l)
		}
		cfg.ImageSize, cfg.InChannels, cfg.Classes, cfg.Labels = imageSize(o.Data), 0, classes(o.Data), nil
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	want := cfg
	if o.Batch > set.N {
		return nil, &OptionError{Option: "batch", Problem: fmt.Sprintf("%d is larger than the %d training images", o.Batch, set.N)}
	}
	run, err := train.StartRun(o.Out, classifier.Kind, &cfg, o.Seed, o.Resume, o.MemoryLimit, func() float64 {
		px := float64(set.Size * set.Size)
		return nn.MemoryEstimate(cfg.Specs(), 4*float64(o.Batch)*px*float64(cfg.Widths[0]+cfg.Features), true)
	})
	if err != nil {
		return nil, err
	}
	defer run.Finish()
	if cfg.ImageSize != set.Size || cfg.ImageChannels() != set.Channels {
		return nil, fmt.Errorf("classifier %s takes %d×%d images of %d channel(s): %s %s has %d×%d of %d", o.Out, cfg.ImageSize, cfg.ImageSize, cfg.ImageChannels(),
			o.Data, set.Split, set.Size, set.Size, set.Channels)
	}
	if cfg.Classes != want.Classes || !slices.Equal(cfg.Labels, want.Labels) {
		return nil, fmt.Errorf("classifier %s has %d classes, %s has %d", o.Out, cfg.Classes, o.Data, want.Classes)
	}
	store := run.Store
	o.Seed = run.Seed
	tc := train.DefaultConfig()
	tc.LR, tc.TotalSteps, tc.WarmupSteps, tc.MinLR = o.LR, int(o.Steps), min(100, int(o.Steps)/10), o.LR/50
	tr, err := train.New(b, store, tc, func(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
		loss, acc := cfg.Loss(scope, w, in[0], in[1])
		return []*Node{loss, acc}
	})
	if err != nil {
		return nil, err
	}
	started := time.Now()
	info := func(step int64) map[string]any {
		inf := map[string]any{"data": o.Data, "steps": step, "batch": o.Batch, "backend": bname, "seed": o.Seed}
		if isEmoji {
			for k, v := range set.Info() {
				inf[k] = v
			}
			inf["target"], inf["shift"] = o.Target, o.Shift
		}
		return inf
	}
	save := func(step int64, h []train.Point) error {
		return run.Save(func(dir string) error {
			return checkpoint.Save(dir, classifier.Kind, cfg, info(step), store, true, nil)
		}, h, step)
	}
	desc := "classifier " + o.Data
	if isEmoji {
		desc += " " + o.Target
	}
	loop := &train.Loop{
		Trainer: tr, Store: store, Steps: o.Steps, Deadline: o.Deadline, History: run.History, Every: o.SaveEvery, Hook: save,
		Desc: desc, Quiet: o.Quiet, RecordEvery: 10,
		Batch: func(step int64) ([]any, int, error) {
			idx := data.BatchIndices(set.N, o.Batch, step, o.Seed)
			imgs := set.Batch(idx)
			if o.Shift > 0 {
				shiftImages(imgs, len(idx), set.Size, set.Channels, o.Shift, rand.New(rand.NewPCG(o.Seed^0x5348_4946_54, uint64(step))))
			}
			lab := make([]int32, len(idx))
			for j, i := range idx {
				lab[j] = int32(labels[i])
			}
			return []any{tensors.FromFlatDataAndDimensions(imgs, cfg.ImageDims(len(idx))...),
				tensors.FromFlatDataAndDimensions(lab, len(idx))}, len(idx), nil
		},
	}
	if err := run.Train(ctx, loop); err != nil {
		return nil, err
	}
	trainSeconds := time.Since(started).Seconds()
	// Score exactly what was saved (the EMA weights), then record it.
	m, err := classifier.Load(b, o.Out)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	inf := info(o.Steps)
	var acc float64
	var held string
	if isEmoji {
		ja, err := EmojiJudgeAccuracy(m, o.Target, ImageOptions{Background: set.Background, Fit: set.Fit, CacheDir: o.Images.CacheDir}, o.Log)
		if err != nil {
			return nil, err
		}
		acc = ja.Test.Rate
		inf["held_out_accuracy"], inf["unseen_accuracy"] = ja.HeldOut.Rate, ja.Unseen.Rate
		held = fmt.Sprintf(" (held-out emoji/skin-tone combinations %.2f%% of %d, unseen emoji %.2f%% of %d)", 100*ja.HeldOut.Rate, ja.HeldOut.N, 100*ja.Unseen.Rate, ja.Unseen.N)
	} else if acc, err = evaluate.TestAccuracy(m, o.Data); err != nil {
		return nil, err
	}
	inf["test_accuracy"] = acc
	inf["train_seconds"] = trainSeconds
	if err := m.Save(o.Out, inf, false); err != nil {
		return nil, err
	}
	if err := writeLossPlot(filepath.Join(o.Out, "loss.png"), "classifier training loss", loop.History); err != nil {
		return nil, err
	}
	logf(o.Log, "saved %s (%d steps in %s): test accuracy %.2f%%%s\n", o.Out, loop.Steps, time.Since(started).Round(time.Second), 100*acc, held)
	return &Result{Dir: o.Out, History: loop.History, TestAccuracy: acc}, nil
}

// shiftImages moves each of the n images of flat (size×size×channels
// values each) by a random offset in [−max, max] pixels along each axis,
// repeating the edge pixels, in place.
func shiftImages(flat []float32, n, size, channels, maxShift int, rng *rand.Rand) {
	per := size * size * channels
	tmp := make([]float32, per)
	for i := range n {
		dx, dy := rng.IntN(2*maxShift+1)-maxShift, rng.IntN(2*maxShift+1)-maxShift
		if dx == 0 && dy == 0 {
			continue
		}
		img := flat[i*per : (i+1)*per]
		copy(tmp, img)
		for y := range size {
			sy := min(max(y-dy, 0), size-1)
			for x := range size {
				sx := min(max(x-dx, 0), size-1)
				copy(img[(y*size+x)*channels:(y*size+x+1)*channels], tmp[(sy*size+sx)*channels:(sy*size+sx+1)*channels])
			}
		}
	}
}
