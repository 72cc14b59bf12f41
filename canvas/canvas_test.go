package canvas

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/latentlm/latentlm/data"
)

func TestSceneIDs(t *testing.T) {
	for id := range NumScenes {
		s, err := SceneOf(id)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("scene %d: %v", id, err)
		}
		if s.ID() != id {
			t.Fatalf("SceneOf(%d) = %v, whose ID is %d", id, s, s.ID())
		}
		if s.Layout.Single() && s.B != 0 {
			t.Errorf("single %d has B = %d", id, s.B)
		}
	}
	for _, c := range []struct {
		s  Scene
		id int
	}{
		{Scene{TopLeft, 3, 0}, 3}, {Scene{TopRight, 0, 0}, 10}, {Scene{BottomRight, 9, 5}, 39},
		{Scene{Horizontal, 0, 0}, 40}, {Scene{Horizontal, 9, 9}, 139}, {Scene{Vertical, 7, 2}, 212}, {Scene{Vertical, 9, 9}, 239},
	} {
		if got := c.s.ID(); got != c.id {
			t.Errorf("%v.ID() = %d, want %d", c.s, got, c.id)
		}
	}
	for _, id := range []int{-1, NumScenes, 1 << 40} {
		if _, err := SceneOf(id); err == nil || !strings.Contains(err.Error(), fmt.Sprint(id)) {
			t.Errorf("SceneOf(%d): %v", id, err)
		}
	}
	for _, s := range []Scene{{Layout: -1}, {Layout: NumLayouts}, {TopLeft, 10, 0}, {Horizontal, 1, -1}, {Vertical, -3, 2}} {
		if s.Validate() == nil || s.ID() != -1 || s.HeldOut() {
			t.Errorf("invalid scene %v: Validate %v, ID %d, HeldOut %v", s, s.Validate(), s.ID(), s.HeldOut())
		}
	}
	if got := len(AllScenes()); got != NumScenes {
		t.Errorf("%d scenes", got)
	}
}

// TestHeldOut pins the held-out set and checks that training keeps every
// concept: each class in each role, each pair in the other orientation.
func TestHeldOut(t *testing.T) {
	var ids []int
	for _, s := range HeldOutScenes() {
		ids = append(ids, s.ID())
	}
	want := []int{7, 14, 21, 38, 47, 54, 61, 78, 85, 92, 109, 116, 123, 130, 140, 153, 166, 179, 182, 195, 208, 211, 224, 237}
	if !slices.Equal(ids, want) {
		t.Errorf("held-out ids %v, want %v", ids, want)
	}
	// Each class in each single position or pair role, in training.
	seenAt := map[[2]int]int{} // (role, class) → training scenes
	for _, s := range AllScenes() {
		if s.HeldOut() {
			if s.Layout == Horizontal && (Scene{Vertical, s.A, s.B}).HeldOut() || s.Layout == Vertical && (Scene{Horizontal, s.A, s.B}).HeldOut() {
				t.Errorf("%v is held out in both orientations", s)
			}
			if !s.Layout.Single() && (Scene{s.Layout ^ 1, s.B, s.A}).HeldOut() {
				t.Errorf("%v is held out in both orientations, reversed", s)
			}
			continue
		}
		if !Training(s) {
			t.Errorf("%v is neither held out nor training", s)
		}
		if s.Layout.Single() {
			seenAt[[2]int{int(s.Layout), s.A}]++
		} else {
			seenAt[[2]int{2 * int(s.Layout), s.A}]++
			seenAt[[2]int{2*int(s.Layout) + 1, s.B}]++
		}
	}
	for c := range Classes {
		positions := 0
		for l := TopLeft; l <= BottomRight; l++ {
			positions += seenAt[[2]int{int(l), c}]
		}
		if want := map[bool]int{true: 3, false: 4}[c == 7 || c == 4 || c == 1 || c == 8]; positions != want {
			t.Errorf("class %d is in %d training quadrants, want %d", c, positions, want)
		}
		for role := 2 * int(Horizontal); role <= 2*int(Vertical)+1; role++ {
			if n := seenAt[[2]int{role, c}]; n != 9 {
				t.Errorf("class %d in pair role %d: %d training scenes, want 9", c, role, n)
			}
		}
	}
	for l := TopLeft; l <= BottomRight; l++ {
		n := 0
		for c := range Classes {
			n += seenAt[[2]int{int(l), c}]
		}
		if n != 9 {
			t.Errorf("%v holds %d training classes, want 9", l, n)
		}
	}
}

func TestCaptionsParse(t *testing.T) {
	for _, n := range []Names{MNIST, Fashion} {
		for _, s := range AllScenes() {
			caps := n.Captions(s)
			if want := map[bool]int{true: 1, false: 2}[s.Layout.Single()]; len(caps) != want {
				t.Fatalf("%v: %d captions, want %d", s, len(caps), want)
			}
			if n.Caption(s) != caps[0] {
				t.Errorf("%v: Caption %q is not Captions[0] %q", s, n.Caption(s), caps[0])
			}
			for _, c := range caps {
				if c != strings.ToLower(c) || strings.HasSuffix(c, ".") {
					t.Errorf("caption %q: not lowercase, or ends with a period", c)
				}
				for _, text := range []string{c, "  " + c + "\n"} {
					got, err := n.Parse(text)
					if err != nil || got != s {
						t.Fatalf("Parse(%q) = %v, %v, want %v", text, got, err, s)
					}
				}
			}
		}
	}
	for _, c := range []struct {
		n    Names
		s    Scene
		want []string
	}{
		{MNIST, Scene{TopLeft, 3, 0}, []string{"the digit 3 is at the top left of the image"}},
		{Fashion, Scene{BottomRight, 7, 0}, []string{"a sneaker is at the bottom right of the image"}},
		{MNIST, Scene{Horizontal, 7, 2}, []string{"the digit 7 is to the left of the digit 2", "the digit 2 is to the right of the digit 7"}},
		{MNIST, Scene{Vertical, 7, 2}, []string{"the digit 7 is above the digit 2", "the digit 2 is below the digit 7"}},
		{Fashion, Scene{Vertical, 9, 0}, []string{"an ankle boot is above a t-shirt", "a t-shirt is below an ankle boot"}},
		{Fashion, Scene{Horizontal, 6, 6}, []string{"a shirt is to the left of a shirt", "a shirt is to the right of a shirt"}},
	} {
		if got := c.n.Captions(c.s); !slices.Equal(got, c.want) {
			t.Errorf("Captions(%v) = %q, want %q", c.s, got, c.want)
		}
	}
	for _, text := range []string{
		"", "   ", "the digit 3", "the digit 3 is at the top left of the image.", "The digit 3 is at the top left of the image",
		"the digit 10 is at the top left of the image", "the digit 3 is at the middle of the image",
		"the digit 3 is next to the digit 4", "the digit 3 is above", "a sneaker is above the digit 3",
		"the digit 3 is above the digit 4 is above the digit 5", "the digit  3 is above the digit 4",
		strings.Repeat("x", 1000),
	} {
		_, err := MNIST.Parse(text)
		if err == nil {
			t.Errorf("Parse(%q) accepted", text)
			continue
		}
		short := text
		if len(short) > 100 {
			short = short[:100]
		}
		if q := fmt.Sprintf("%q", short); !strings.Contains(err.Error(), strings.TrimSuffix(q, `"`)) {
			t.Errorf("Parse(%q): error %q does not quote the text", text, err)
		}
	}
	if _, err := Fashion.Parse("the digit 3 is at the top left of the image"); err == nil {
		t.Error("Fashion parsed an MNIST caption")
	}
	if _, err := (Names{}).Parse("the digit 3 is at the top left of the image"); err == nil {
		t.Error("the zero Names parsed a caption")
	}
	if c := MNIST.Captions(Scene{Layout: 9}); c != nil || MNIST.Caption(Scene{TopLeft, 11, 0}) != "" {
		t.Errorf("captions of invalid scenes: %q", c)
	}
	for name, want := range map[string]Names{"mnist-canvas": MNIST, "fashion-canvas": Fashion, "mnist": MNIST} {
		if got, err := NamesOf(name); err != nil || got.Noun() != want.Noun() {
			t.Errorf("NamesOf(%q) = %v, %v", name, got.Noun(), err)
		}
	}
	if _, err := NamesOf("cifar"); err == nil || !strings.Contains(err.Error(), `"cifar"`) {
		t.Errorf("NamesOf(cifar): %v", err)
	}
}

func TestQuestions(t *testing.T) {
	for _, n := range []Names{MNIST, Fashion} {
		all := n.AllQuestions()
		for _, s := range AllScenes() {
			qas := n.Questions(s)
			if len(qas) < 3 {
				t.Fatalf("%v: %d questions", s, len(qas))
			}
			asked := map[string]bool{}
			for _, qa := range qas {
				asked[qa.Question] = true
				if !slices.Contains(all, qa.Question) {
					t.Errorf("%q is not in AllQuestions", qa.Question)
				}
				got, err := n.Answer(s, " "+qa.Question+" ")
				if err != nil || got != qa.Answer {
					t.Errorf("Answer(%v, %q) = %q, %v, want %q", s, qa.Question, got, err, qa.Answer)
				}
			}
			for _, q := range all {
				if asked[q] {
					continue
				}
				if _, err := n.Answer(s, q); err == nil || !strings.Contains(err.Error(), "does not apply") {
					t.Errorf("Answer(%v, %q): %v", s, q, err)
				}
			}
		}
	}
	for _, c := range []struct {
		n         Names
		s         Scene
		q, answer string
	}{
		{MNIST, Scene{TopLeft, 3, 0}, "how many digits are there?", "one"},
		{MNIST, Scene{TopLeft, 3, 0}, "where is the digit?", "top left"},
		{MNIST, Scene{TopLeft, 3, 0}, "which digit is it?", "3"},
		{Fashion, Scene{BottomLeft, 7, 0}, "which item is it?", "sneaker"},
		{Fashion, Scene{BottomLeft, 7, 0}, "how many items are there?", "one"},
		{MNIST, Scene{Horizontal, 7, 2}, "how many digits are there?", "two"},
		{MNIST, Scene{Horizontal, 7, 2}, "which digit is on the left?", "7"},
		{MNIST, Scene{Horizontal, 7, 2}, "which digit is on the right?", "2"},
		{MNIST, Scene{Horizontal, 7, 2}, "how are the digits arranged?", "side by side"},
		{MNIST, Scene{Vertical, 7, 2}, "which digit is on top?", "7"},
		{MNIST, Scene{Vertical, 7, 2}, "which digit is at the bottom?", "2"},
		{Fashion, Scene{Vertical, 9, 0}, "which item is at the bottom?", "t-shirt"},
		{Fashion, Scene{Vertical, 9, 0}, "how are the items arranged?", "one above the other"},
	} {
		if got, err := c.n.Answer(c.s, c.q); err != nil || got != c.answer {
			t.Errorf("Answer(%v, %q) = %q, %v, want %q", c.s, c.q, got, err, c.answer)
		}
	}
	if _, err := MNIST.Answer(Scene{TopLeft, 3, 0}, "what colour is it?"); err == nil || !strings.Contains(err.Error(), `"what colour is it?"`) {
		t.Errorf("unknown question: %v", err)
	}
	if _, err := MNIST.Answer(Scene{TopLeft, 3, 0}, "which item is it?"); err == nil {
		t.Error("MNIST answered a Fashion question")
	}
	if _, err := MNIST.Answer(Scene{Layout: 7}, "which digit is it?"); err == nil {
		t.Error("answered about an invalid scene")
	}
}

// filled is a 28×28 image of one value.
func filled(v uint8) []uint8 { return bytes.Repeat([]uint8{v}, Digit*Digit) }

// inkBox is the bounding box [x0, y0, x1, y1) of the nonzero pixels of a
// canvas holding value v.
func inkBox(img []uint8, v uint8) [4]int {
	box := [4]int{Size, Size, -1, -1}
	for i, p := range img {
		if p != v {
			continue
		}
		x, y := i%Size, i/Size
		box = [4]int{min(box[0], x), min(box[1], y), max(box[2], x+1), max(box[3], y+1)}
	}
	return box
}

func TestRender(t *testing.T) {
	a, b := filled(200), filled(100)
	for _, c := range []struct {
		s      Scene
		boxA   [4]int
		boxB   [4]int
		inkSum int
	}{
		{Scene{TopLeft, 1, 0}, [4]int{0, 0, 28, 28}, [4]int{Size, Size, -1, -1}, 784},
		{Scene{TopRight, 1, 0}, [4]int{28, 0, 56, 28}, [4]int{Size, Size, -1, -1}, 784},
		{Scene{BottomLeft, 1, 0}, [4]int{0, 28, 28, 56}, [4]int{Size, Size, -1, -1}, 784},
		{Scene{BottomRight, 1, 0}, [4]int{28, 28, 56, 56}, [4]int{Size, Size, -1, -1}, 784},
		{Scene{Horizontal, 1, 2}, [4]int{0, 14, 28, 42}, [4]int{28, 14, 56, 42}, 2 * 784},
		{Scene{Vertical, 1, 2}, [4]int{14, 0, 42, 28}, [4]int{14, 28, 42, 56}, 2 * 784},
	} {
		img, err := Render(c.s, a, b)
		if err != nil {
			t.Fatal(err)
		}
		ink := 0
		for _, p := range img {
			if p != 0 {
				ink++
			}
		}
		if gotA, gotB := inkBox(img, 200), inkBox(img, 100); gotA != c.boxA || gotB != c.boxB || ink != c.inkSum {
			t.Errorf("%v: A in %v, B in %v, %d inked pixels; want %v, %v, %d", c.s, gotA, gotB, ink, c.boxA, c.boxB, c.inkSum)
		}
	}
	// A real glyph: the pixels are copied, not only the box.
	glyph := make([]uint8, Digit*Digit)
	glyph[5*Digit+9], glyph[27*Digit+27] = 77, 255
	img, err := Render(Scene{Vertical, 3, 3}, glyph, glyph)
	if err != nil {
		t.Fatal(err)
	}
	if img[5*Size+14+9] != 77 || img[27*Size+14+27] != 255 || img[(28+5)*Size+14+9] != 77 || img[55*Size+41] != 255 {
		t.Error("glyph pixels not where expected")
	}
	for _, c := range []struct {
		s    Scene
		a, b []uint8
		want string
	}{
		{Scene{TopLeft, 1, 0}, filled(1)[:100], nil, "image A has 100 pixels"},
		{Scene{Horizontal, 1, 2}, filled(1), nil, "image B has 0 pixels"},
		{Scene{Horizontal, 1, 12}, filled(1), filled(1), "class B 12"},
	} {
		if _, err := Render(c.s, c.a, c.b); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Render(%v): %v, want %q", c.s, err, c.want)
		}
	}
	if _, err := Render(Scene{TopLeft, 1, 0}, filled(1), nil); err != nil {
		t.Errorf("single with b nil: %v", err)
	}
}

// synthetic is a source split of n 28×28 images whose pixels all hold
// tag + their index (mod 100), labelled i % classes.
func synthetic(name, split string, n, classes int, tag uint8) *data.Dataset {
	ds := &data.Dataset{Name: name, Split: split, N: n, Height: Digit, Width: Digit}
	for i := range n {
		ds.Images = append(ds.Images, filled(tag+uint8(i%100))...)
		ds.Labels = append(ds.Labels, uint8(i%classes))
	}
	return ds
}

func TestBuild(t *testing.T) {
	src := synthetic("mnist", "train", 300, Classes, 1)
	a, srcs, err := BuildWithSources(src, 500, 7, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.Name != "mnist-canvas" || a.Split != "train" || a.N != 500 || a.Height != Size || a.Width != Size || len(a.Images) != 500*Size*Size || len(a.Labels) != 500 {
		t.Fatalf("built %s %s: %d of %d×%d", a.Name, a.Split, a.N, a.Height, a.Width)
	}
	layouts := map[Layout]int{}
	for i := range a.N {
		s, err := SceneOf(int(a.Labels[i]))
		if err != nil {
			t.Fatal(err)
		}
		layouts[s.Layout]++
		ia, ib := srcs[i][0], srcs[i][1]
		if int(src.Labels[ia]) != s.A || s.Layout.Single() != (ib == -1) || ib >= 0 && int(src.Labels[ib]) != s.B {
			t.Fatalf("canvas %d of %v from images %d and %d", i, s, ia, ib)
		}
		var imgB []uint8
		if ib >= 0 {
			imgB = src.Image(ib)
		}
		want, _ := Render(s, src.Image(ia), imgB)
		if !bytes.Equal(a.Image(i), want) {
			t.Fatalf("canvas %d is not the rendering of its scene and sources", i)
		}
	}
	if len(layouts) != NumLayouts {
		t.Errorf("layouts drawn: %v", layouts)
	}
	b, err := Build(src, 500, 7, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Images, b.Images) || !bytes.Equal(a.Labels, b.Labels) {
		t.Error("the same seed built different canvases")
	}
	c, _ := Build(src, 500, 8, nil)
	if bytes.Equal(a.Labels, c.Labels) {
		t.Error("seeds 7 and 8 built the same scenes")
	}
	only := func(s Scene) bool { return s.Layout == Vertical && s.A == 4 }
	d, err := Build(src, 200, 1, only)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range d.Labels {
		if s, _ := SceneOf(int(l)); !only(s) {
			t.Fatalf("keep rejected %v, which was drawn", s)
		}
	}
	for _, c := range []struct {
		src  *data.Dataset
		n    int
		keep func(Scene) bool
		want string
	}{
		{nil, 10, nil, "no source"},
		{&data.Dataset{Name: "x", N: 1, Height: 56, Width: 56, Images: make([]uint8, 56*56), Labels: []uint8{0}}, 10, nil, "56×56"},
		{&data.Dataset{Name: "x", N: 2, Height: 28, Width: 28, Images: make([]uint8, 784), Labels: []uint8{0, 1}}, 10, nil, "inconsistent"},
		{synthetic("x", "train", 20, 5, 1), 10, nil, "no image of class 5"},
		{synthetic("x", "train", 20, 5, 1), 10, func(s Scene) bool { return s.Layout == TopLeft && s.A < 5 }, ""},
		{src, -1, nil, "-1 canvases"},
		{src, 10, func(Scene) bool { return false }, "no scene"},
		{&data.Dataset{Name: "x", N: 1, Height: 28, Width: 28, Images: make([]uint8, 784), Labels: []uint8{12}}, 10, nil, "label 12"},
	} {
		_, err := Build(c.src, c.n, 1, c.keep)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("Build: %v, want %q", err, c.want)
		}
	}
}

// TestSplits builds small canvas splits from synthetic sources whose
// training images hold values 1…100 and test images 101…200: each split
// uses the source split it should, and only the scenes it should.
func TestSplits(t *testing.T) {
	loads := 0
	fake := func(name, split string) (*data.Dataset, error) {
		loads++
		if name != "fashion" {
			return nil, fmt.Errorf("asked for %s", name)
		}
		if split == "test" {
			return synthetic(name, split, 200, Classes, 101), nil
		}
		return synthetic(name, split, 200, Classes, 1), nil
	}
	for _, c := range []struct {
		split      string
		lo, hi     uint8
		heldOutToo bool
	}{{"train", 1, 100, false}, {"judge", 1, 100, true}, {"test", 101, 200, true}} {
		ds, err := load(fake, "fashion-canvas", c.split, 3000)
		if err != nil {
			t.Fatal(err)
		}
		if ds.Name != "fashion-canvas" || ds.Split != c.split || ds.N != 3000 {
			t.Errorf("%s: got %s %s of %d", c.split, ds.Name, ds.Split, ds.N)
		}
		for _, p := range ds.Images {
			if p != 0 && (p < c.lo || p > c.hi) {
				t.Fatalf("%s: pixel %d from the wrong source split", c.split, p)
			}
		}
		heldOut := 0
		for _, l := range ds.Labels {
			if s, _ := SceneOf(int(l)); s.HeldOut() {
				heldOut++
			}
		}
		if (heldOut > 0) != c.heldOutToo {
			t.Errorf("%s: %d held-out canvases", c.split, heldOut)
		}
		again, _ := load(fake, "fashion-canvas", c.split, 3000)
		if !bytes.Equal(ds.Images, again.Images) {
			t.Errorf("%s: not deterministic", c.split)
		}
	}
	loads = 0
	for _, c := range []struct{ name, split, want string }{
		{"fashion", "train", `unknown canvas data set "fashion"`},
		{"fashion-canvas", "valid", `unknown split "valid"`},
	} {
		if _, err := load(fake, c.name, c.split, 10); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("load(%s, %s): %v, want %q", c.name, c.split, err, c.want)
		}
	}
	if loads != 0 {
		t.Error("a bad name or split loaded a source")
	}
	for name, want := range map[string]string{"mnist-canvas": "mnist", "fashion-canvas": "fashion", "mnist": "", "": ""} {
		if Source(name) != want || IsCanvas(name) != (want != "") {
			t.Errorf("Source(%q) = %q, IsCanvas %v", name, Source(name), IsCanvas(name))
		}
	}
}

// TestLoad checks the real splits: no held-out scene in any of the 60 000
// training canvases, every scene in the test split.
func TestLoad(t *testing.T) {
	tr, err := Load("mnist-canvas", "train")
	if err != nil {
		if strings.Contains(err.Error(), "make setup") {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	if tr.N != 60000 || tr.Height != Size || tr.Width != Size || tr.Name != "mnist-canvas" || tr.Split != "train" {
		t.Fatalf("train: %s %s %d×%d×%d", tr.Name, tr.Split, tr.N, tr.Height, tr.Width)
	}
	count := make([]int, NumScenes)
	for i, l := range tr.Labels {
		s, err := SceneOf(int(l))
		if err != nil || s.HeldOut() {
			t.Fatalf("training canvas %d shows scene %d (%v, %v)", i, l, s, err)
		}
		count[l]++
	}
	for id, n := range count {
		if s, _ := SceneOf(id); !s.HeldOut() && n == 0 {
			t.Errorf("training scene %v never drawn", s)
		}
	}
	te, err := Load("mnist-canvas", "test")
	if err != nil {
		t.Fatal(err)
	}
	count = make([]int, NumScenes)
	for _, l := range te.Labels {
		count[l]++
	}
	if te.N != 10000 || slices.Min(count) == 0 {
		t.Errorf("test: %d canvases, rarest scene %d times", te.N, slices.Min(count))
	}
}
