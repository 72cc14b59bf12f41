// Package canvas is "MNIST with captions", after alignDRAW (Mansimov et al.
// 2015, https://arxiv.org/abs/1511.02793): 56×56 grayscale canvases holding
// one or two 28×28 MNIST (or Fashion-MNIST) images in one of six layouts,
// each described by a caption ("the digit 7 is to the left of the digit
// 2") and by short questions with their answers ("which digit is on the
// left?" → "7"), the small analogue of VQAv2.
//
// # Layouts
//
// A single image sits in one of the four 28×28 quadrants of the canvas;
// a pair sits side by side in the middle rows (A at x=0, B at x=28, both at
// y=14) or one above the other in the middle columns (A at y=0, B at y=28,
// both at x=14). Images are pasted by taking the maximum of the pixel
// values; in these layouts they never overlap. There is no jitter.
//
// # Scenes
//
// A Scene is a layout and the classes of its images; scenes are numbered
// 0…NumScenes−1 (the label of a canvas):
//
//	singles     pos·10 + A        pos 0…3: top left, top right, bottom left, bottom right
//	horizontal  40 + A·10 + B     A to the left of B
//	vertical    140 + A·10 + B    A above B
//
// # Held-out scenes
//
// To measure compositional generalisation, 24 of the 240 scenes (10%)
// never appear in the training split; they are in the test split, so that
// a model can be asked to draw (or describe) combinations it has never
// seen:
//
//	singles     (A + 3·pos) % 10 == 7   7 at top left, 4 at top right, 1 at bottom left, 8 at bottom right
//	horizontal  (3A + B) % 10 == 7      0|7 1|4 2|1 3|8 4|5 5|2 6|9 7|6 8|3 9|0
//	vertical    (A + 3B) % 10 == 0      0/0 7/1 4/2 1/3 8/4 5/5 2/6 9/7 6/8 3/9
//
// The rules leave every concept in training: each quadrant holds the nine
// other classes, the class of each held-out single is seen in the three
// other quadrants (the six other classes in all four), and, 3 and 1 being
// invertible modulo 10, each class is the left, right, upper and lower
// image of nine training pairs. The two pair rules share no ordered pair,
// nor a pair and its reverse, so every held-out pair is seen in training in
// the other orientation, in both orders: only its relation is new (0 above
// 0 is held out, 0 beside 0 is not).
//
// # Data sets
//
// Load builds the canvases of "mnist-canvas" and "fashion-canvas" from the
// idx files of package data, deterministically (fixed seeds):
//
//	train  60 000 canvases of training images, held-out scenes excluded
//	test   10 000 canvases of test images, all 240 scenes
//	judge  60 000 canvases of training images, all 240 scenes
//
// Each canvas draws its scene uniformly among the split's scenes (so a
// sixth of them are singles), then its images uniformly among the source
// images of their classes; the test split holds every scene 24 to 61
// times.
//
// The judge split trains the evaluation classifier (the "judge", which
// names the scene of a generated canvas). It must know the held-out scenes
// to score them, and this is fair: the judge is the measuring instrument,
// like the Inception network of FID, not the model under test, which never
// sees a held-out scene. Its images are those of the training split, so the
// test split stays unseen by both.
package canvas

import (
	"fmt"
	"math/rand/v2"

	"github.com/latentlm/latentlm/data"
)

const (
	// Size is the side of a canvas in pixels.
	Size = 56
	// Digit is the side of a source image in pixels.
	Digit = 28
)

// NumScenes is the number of scenes: 40 singles, 100 horizontal and 100
// vertical pairs.
const NumScenes = 240

// Classes is the number of classes of the source data sets (digits or
// Fashion-MNIST items).
const Classes = data.Classes

// Layout is the arrangement of a canvas.
type Layout int

// The layouts: four single positions, then the two kinds of pair.
const (
	TopLeft Layout = iota
	TopRight
	BottomLeft
	BottomRight
	Horizontal // A to the left of B
	Vertical   // A above B
)

// NumLayouts is the number of layouts.
const NumLayouts = 6

var layoutNames = [NumLayouts]string{"top left", "top right", "bottom left", "bottom right", "horizontal", "vertical"}

// String names the layout: "top left" … "bottom right" (the words of the
// captions), "horizontal", "vertical".
func (l Layout) String() string {
	if l < 0 || l >= NumLayouts {
		return fmt.Sprintf("Layout(%d)", int(l))
	}
	return layoutNames[l]
}

// Single reports whether the layout holds one image (a quadrant).
func (l Layout) Single() bool { return l >= TopLeft && l <= BottomRight }

// offsets are the top-left corners (x, y) of image A and image B.
var offsets = [NumLayouts][2][2]int{
	TopLeft:     {{0, 0}},
	TopRight:    {{28, 0}},
	BottomLeft:  {{0, 28}},
	BottomRight: {{28, 28}},
	Horizontal:  {{0, 14}, {28, 14}},
	Vertical:    {{14, 0}, {14, 28}},
}

// Scene is what a canvas shows: its layout and the class (0…9) of its
// image A and, for a pair, of its image B (B is unused for singles, and 0
// in the scenes SceneOf and Parse return). A and B may be equal.
type Scene struct {
	Layout Layout
	A, B   int
}

// Validate reports a scene outside the 240: an unknown layout or a class
// out of 0…9.
func (s Scene) Validate() error {
	switch {
	case s.Layout < 0 || s.Layout >= NumLayouts:
		return fmt.Errorf("canvas: scene with unknown layout %d", int(s.Layout))
	case s.A < 0 || s.A >= Classes:
		return fmt.Errorf("canvas: scene %v: class A %d out of range 0…%d", s.Layout, s.A, Classes-1)
	case !s.Layout.Single() && (s.B < 0 || s.B >= Classes):
		return fmt.Errorf("canvas: scene %v: class B %d out of range 0…%d", s.Layout, s.B, Classes-1)
	}
	return nil
}

// ID is the scene's number, 0…NumScenes−1 (the label of its canvases), or
// −1 for an invalid scene (see Validate).
func (s Scene) ID() int {
	if s.Validate() != nil {
		return -1
	}
	switch s.Layout {
	case Horizontal:
		return 40 + s.A*10 + s.B
	case Vertical:
		return 140 + s.A*10 + s.B
	}
	return int(s.Layout)*10 + s.A
}

// SceneOf is the scene numbered id.
func SceneOf(id int) (Scene, error) {
	switch {
	case id < 0 || id >= NumScenes:
		return Scene{}, fmt.Errorf("canvas: scene id %d out of range 0…%d", id, NumScenes-1)
	case id < 40:
		return Scene{Layout: Layout(id / 10), A: id % 10}, nil
	case id < 140:
		return Scene{Layout: Horizontal, A: (id - 40) / 10, B: (id - 40) % 10}, nil
	}
	return Scene{Layout: Vertical, A: (id - 140) / 10, B: (id - 140) % 10}, nil
}

// String is a short description for messages: "7 at top left",
// "7 left of 2", "7 above 2".
func (s Scene) String() string {
	switch {
	case s.Layout.Single():
		return fmt.Sprintf("%d at %v", s.A, s.Layout)
	case s.Layout == Horizontal:
		return fmt.Sprintf("%d left of %d", s.A, s.B)
	case s.Layout == Vertical:
		return fmt.Sprintf("%d above %d", s.A, s.B)
	}
	return fmt.Sprintf("Scene{%d, %d, %d}", int(s.Layout), s.A, s.B)
}

// HeldOut reports whether the scene is one of the 24 combinations that the
// training split never shows (see the package documentation).
func (s Scene) HeldOut() bool {
	if s.Validate() != nil {
		return false
	}
	switch s.Layout {
	case Horizontal:
		return (3*s.A+s.B)%10 == 7
	case Vertical:
		return (s.A+3*s.B)%10 == 0
	}
	return (s.A+3*int(s.Layout))%10 == 7
}

// HeldOutScenes lists the held-out scenes in the order of their ids.
func HeldOutScenes() []Scene {
	var out []Scene
	for _, s := range AllScenes() {
		if s.HeldOut() {
			out = append(out, s)
		}
	}
	return out
}

// AllScenes lists the 240 scenes in the order of their ids.
func AllScenes() []Scene {
	out := make([]Scene, NumScenes)
	for id := range out {
		out[id], _ = SceneOf(id)
	}
	return out
}

// Training reports whether the scene may appear in the training split:
// every valid scene that is not held out. It is the keep function of the
// train split for Build.
func Training(s Scene) bool { return s.Validate() == nil && !s.HeldOut() }

// All keeps every scene, the keep function of the test and judge splits.
func All(Scene) bool { return true }

// Render draws a scene on a fresh 56×56 canvas from image a (the image of
// class s.A) and, for a pair, image b, each 28×28 pixels, row-major. b is
// ignored (and may be nil) for a single.
func Render(s Scene, a, b []uint8) ([]uint8, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if len(a) != Digit*Digit {
		return nil, fmt.Errorf("canvas: image A has %d pixels, want %d (28×28)", len(a), Digit*Digit)
	}
	if !s.Layout.Single() && len(b) != Digit*Digit {
		return nil, fmt.Errorf("canvas: image B has %d pixels, want %d (28×28)", len(b), Digit*Digit)
	}
	dst := make([]uint8, Size*Size)
	render(dst, s, a, b)
	return dst, nil
}

// render pastes a (and b for a pair) into dst, a valid scene and sizes
// assumed.
func render(dst []uint8, s Scene, a, b []uint8) {
	paste(dst, a, offsets[s.Layout][0])
	if !s.Layout.Single() {
		paste(dst, b, offsets[s.Layout][1])
	}
}

// paste takes the maximum of dst and the 28×28 image src placed at (x, y).
func paste(dst, src []uint8, at [2]int) {
	x, y := at[0], at[1]
	for r := range Digit {
		row := dst[(y+r)*Size+x : (y+r)*Size+x+Digit]
		for c, p := range src[r*Digit : (r+1)*Digit] {
			row[c] = max(row[c], p)
		}
	}
}

// MaxN bounds the number of canvases Build makes (3.3 GB of pixels).
const MaxN = 1 << 20

// Build makes n canvases from the 28×28 images of src, deterministically
// from seed: each draws a scene uniformly among the scenes keep accepts
// (nil: all), then its images uniformly among those of src with the
// scene's classes. The result is named src.Name+"-canvas", keeps src's
// split, and its labels are scene ids.
func Build(src *data.Dataset, n int, seed uint64, keep func(Scene) bool) (*data.Dataset, error) {
	ds, _, err := BuildWithSources(src, n, seed, keep)
	return ds, err
}

// BuildWithSources is Build that also returns, for each canvas, the indices
// in src of its images A and B (B is −1 for a single).
func BuildWithSources(src *data.Dataset, n int, seed uint64, keep func(Scene) bool) (*data.Dataset, [][2]int, error) {
	if src == nil {
		return nil, nil, fmt.Errorf("canvas: no source data set")
	}
	if src.Height != Digit || src.Width != Digit {
		return nil, nil, fmt.Errorf("canvas: source %s %s has %d×%d images, want 28×28", src.Name, src.Split, src.Height, src.Width)
	}
	if src.N < 0 || len(src.Images) != src.N*Digit*Digit || len(src.Labels) != src.N {
		return nil, nil, fmt.Errorf("canvas: source %s %s is inconsistent: %d images, %d pixels, %d labels", src.Name, src.Split, src.N, len(src.Images), len(src.Labels))
	}
	if n < 0 || n > MaxN {
		return nil, nil, fmt.Errorf("canvas: %d canvases: want 0…%d", n, MaxN)
	}
	if keep == nil {
		keep = All
	}
	byClass := make([][]int, Classes)
	for i, l := range src.Labels {
		if int(l) >= Classes {
			return nil, nil, fmt.Errorf("canvas: source %s %s: label %d of image %d out of range 0…%d", src.Name, src.Split, l, i, Classes-1)
		}
		byClass[l] = append(byClass[l], i)
	}
	var scenes []Scene
	for _, s := range AllScenes() {
		if !keep(s) {
			continue
		}
		need := []int{s.A, s.B}
		if s.Layout.Single() {
			need = need[:1]
		}
		for _, c := range need {
			if len(byClass[c]) == 0 {
				return nil, nil, fmt.Errorf("canvas: source %s %s has no image of class %d, which scene %q needs", src.Name, src.Split, c, s)
			}
		}
		scenes = append(scenes, s)
	}
	if len(scenes) == 0 && n > 0 {
		return nil, nil, fmt.Errorf("canvas: no scene to draw: keep rejects all %d", NumScenes)
	}
	out := &data.Dataset{Name: src.Name + "-canvas", Split: src.Split, N: n, Height: Size, Width: Size,
		Images: make([]uint8, n*Size*Size), Labels: make([]uint8, n)}
	sources := make([][2]int, n)
	rng := rand.New(rand.NewPCG(seed, 0x63616e766173)) // "canvas"
	for i := range n {
		s := scenes[rng.IntN(len(scenes))]
		a := byClass[s.A][rng.IntN(len(byClass[s.A]))]
		b := -1
		if !s.Layout.Single() {
			b = byClass[s.B][rng.IntN(len(byClass[s.B]))]
		}
		var imgB []uint8
		if b >= 0 {
			imgB = src.Image(b)
		}
		render(out.Image(i), s, src.Image(a), imgB)
		out.Labels[i] = uint8(s.ID())
		sources[i] = [2]int{a, b}
	}
	return out, sources, nil
}

// DataNames lists the canvas data sets, for validating flags.
var DataNames = []string{"mnist-canvas", "fashion-canvas"}

// IsCanvas reports whether name is a canvas data set.
func IsCanvas(name string) bool { return Source(name) != "" }

// Source is the data set a canvas set is built from ("mnist" for
// "mnist-canvas"), or "" if name is not a canvas set.
func Source(name string) string {
	switch name {
	case "mnist-canvas":
		return "mnist"
	case "fashion-canvas":
		return "fashion"
	}
	return ""
}

// Splits lists the splits of a canvas set.
var Splits = []string{"train", "test", "judge"}

// split is how a split of a canvas set is built.
type split struct {
	source string // the split of the source data set
	n      int
	seed   uint64
	keep   func(Scene) bool
}

var splits = map[string]split{
	"train": {source: "train", n: 60000, seed: 0x7472, keep: Training},
	"test":  {source: "test", n: 10000, seed: 0x7465, keep: All},
	"judge": {source: "train", n: 60000, seed: 0x6a75, keep: All},
}

// Load builds a split ("train", "test" or "judge", see the package
// documentation) of a canvas data set ("mnist-canvas" or
// "fashion-canvas") from the source data set that setup installed. The
// same name and split always give the same canvases.
func Load(name, splitName string) (*data.Dataset, error) {
	return load(data.Load, name, splitName, 0)
}

// load is Load with the source loader and the number of canvases (0: the
// split's) given, for tests.
func load(loadSource func(name, split string) (*data.Dataset, error), name, splitName string, n int) (*data.Dataset, error) {
	source := Source(name)
	if source == "" {
		return nil, fmt.Errorf("unknown canvas data set %q: want mnist-canvas or fashion-canvas", name)
	}
	sp, ok := splits[splitName]
	if !ok {
		return nil, fmt.Errorf("unknown split %q of %s: want train, test or judge", splitName, name)
	}
	if n <= 0 {
		n = sp.n
	}
	src, err := loadSource(source, sp.source)
	if err != nil {
		return nil, err
	}
	if src.Split != sp.source {
		return nil, fmt.Errorf("canvas: %s %s split needs the %s split of %s, got %s", name, splitName, sp.source, source, src.Split)
	}
	ds, err := Build(src, n, sp.seed, sp.keep)
	if err != nil {
		return nil, err
	}
	ds.Name, ds.Split = name, splitName
	return ds, nil
}
