package tts

import (
	"context"
	"strings"
	"testing"
)

// TestTeacherForced: fed back the frames that free generation drew, with
// the same noise, teacher forcing draws those frames again (so each frame
// comes from the prefix and the true frames before it, one per true
// frame, and <EOL> is not heeded); fed other true frames, its first frame
// is free generation's (it reads the prefix alone) and the later ones
// follow the frames given. Bad true frames are refused.
func TestTeacherForced(t *testing.T) {
	opts := DefaultOptions()
	opts.CFG, opts.Steps = 2, 5
	m := trainOverfit(t, 500, true, opts)
	ctx := context.Background()
	reqs := overfitRequests(m)
	seeds := []uint64{7, 8, 9}
	free, err := m.generate(ctx, reqs, nil, seeds)
	if err != nil {
		t.Fatal(err)
	}
	truth := make([][][]float32, len(reqs))
	for i, r := range free {
		truth[i] = r.Frames
	}
	got, err := m.TeacherForced(ctx, reqs, truth, seeds)
	if err != nil {
		t.Fatal(err)
	}
	for i := range reqs {
		w := worstRelErr(got[i].Frames, truth[i])
		t.Logf("%q: %d free frames (stopped %v), teacher-forced on them %d, worst relative difference %.3g", reqs[i].Text, len(truth[i]), free[i].Stopped, len(got[i].Frames), w)
		if len(got[i].Frames) != len(truth[i]) || got[i].Stopped || w > 1e-4 {
			t.Errorf("%q: teacher-forced on free generation's frames: %d frames (stopped %v), differing by %.3g; want its %d frames again, not stopped",
				reqs[i].Text, len(got[i].Frames), got[i].Stopped, w, len(truth[i]))
		}
	}

	// Request 0 ("hi", 3 frames) read along the 9 frames of "hey you".
	other, err := m.TeacherForced(ctx, reqs[:1], [][][]float32{truth[2]}, seeds[:1])
	if err != nil {
		t.Fatal(err)
	}
	o := other[0].Frames
	if len(o) != len(truth[2]) {
		t.Fatalf("teacher-forced on 9 frames: %d frames, want 9 (past the 3 after which the model says <EOL>)", len(o))
	}
	if w := relErr(o[0], truth[0][0]); w > 1e-4 {
		t.Errorf("the first frame, from the prefix alone, differs from free generation's by %.3g", w)
	}
	if w := relErr(o[1], truth[0][1]); w < 1e-2 {
		t.Errorf("the second frame after another first frame differs from free generation's by only %.3g: the true frames are not read", w)
	}

	bad := [][]float32{make([]float32, m.Format.Channels+1)}
	if _, err := m.TeacherForced(ctx, reqs[:1], [][][]float32{bad}, seeds[:1]); err == nil || !strings.Contains(err.Error(), "teacher frames: frame 0 has") {
		t.Errorf("a true frame of the wrong width: %v", err)
	}
	if _, err := m.TeacherForced(ctx, reqs, truth[:2], seeds); err == nil {
		t.Error("three requests with two true utterances: no error")
	}

	// Input noise: the model reads noisy frames, so the frames it draws
	// change, but the same seed draws the same noise.
	noisy := func() [][]float32 {
		o := m.SequenceOptions()
		o.InputNoise, o.Teacher = 0.5, truth[2]
		s, err := m.NewSequence(reqs[2], seeds[2], o)
		if err != nil {
			t.Fatal(err)
		}
		return alone(t, m, true, s).Frames
	}
	a, b := noisy(), noisy()
	if w := worstRelErr(a, b); w != 0 || len(a) != len(truth[2]) {
		t.Errorf("input noise: %d frames, two runs with one seed differ by %.3g; want %d, equal", len(a), w, len(truth[2]))
	}
	if w := relErr(a[0], truth[2][0]); w < 1e-2 {
		t.Errorf("input noise 0.5 changes the first frame (read after the noisy prompt) by only %.3g", w)
	}
	neg := m.SequenceOptions()
	neg.InputNoise = -1
	if _, err := m.NewSequence(reqs[0], 1, neg); err == nil || !strings.Contains(err.Error(), "input noise") {
		t.Errorf("input noise -1: %v", err)
	}
}
