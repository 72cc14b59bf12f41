package evaluate

import (
	"math"
	"strings"
	"testing"
)

// TestMergeTTSReports: two seeds' reports pool into the rates of all their
// words and utterances, counted here by hand; reports of other rows are
// refused.
func TestMergeTTSReports(t *testing.T) {
	a := &TTSReport{Rows: []TTSScores{
		{Voice: "v", Set: "numbers", Utterances: 2, Words: 10, WEROriginal: 0.1, WERGenerated: 0.2, SpeakerAccuracy: 1, SIM: 0.9, Stopped: 1, WithinDuration: 0.5, DurationRatio: 1.1},
		{Voice: "all", Set: "numbers", Utterances: 2, Words: 10, WEROriginal: 0.1, WERGenerated: 0.2, SpeakerAccuracy: 1, SIM: 0.9, Stopped: 1, WithinDuration: 0.5, DurationRatio: 1.1},
	}, FramesPerSecond: 25, HeadPassesPerSecond: 250, DecodingStepsPerSecond: 25.5, RealTimeFactor: 0.2, AudioSeconds: 4, EvalSeconds: 10}
	b := &TTSReport{Rows: []TTSScores{
		{Voice: "v", Set: "numbers", Utterances: 2, Words: 10, WEROriginal: 0.1, WERGenerated: 0.5, SpeakerAccuracy: 0.5, SIM: 0.7, Stopped: 1, WithinDuration: 1, DurationRatio: 0.9},
		{Voice: "all", Set: "numbers", Utterances: 2, Words: 10, WEROriginal: 0.1, WERGenerated: 0.5, SpeakerAccuracy: 0.5, SIM: 0.7, Stopped: 1, WithinDuration: 1, DurationRatio: 0.9},
	}, FramesPerSecond: 25, HeadPassesPerSecond: 250, DecodingStepsPerSecond: 25.0, RealTimeFactor: 0.4, AudioSeconds: 12, EvalSeconds: 11}
	m, err := MergeTTSReports([]*TTSReport{a, b})
	if err != nil {
		t.Fatal(err)
	}
	near := func(name string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-12 {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
	for _, r := range m.Rows {
		if r.Utterances != 4 || r.Words != 20 {
			t.Errorf("%s: %d utterances, %d words; want 4, 20", r.Voice, r.Utterances, r.Words)
		}
		near(r.Voice+" WER generated", r.WERGenerated, 7.0/20) // 2 + 5 wrong of 20
		near(r.Voice+" WER original", r.WEROriginal, 0.1)
		near(r.Voice+" speaker accuracy", r.SpeakerAccuracy, 3.0/4)
		near(r.Voice+" SIM", r.SIM, 0.8)
		near(r.Voice+" within ±20%", r.WithinDuration, 3.0/4)
		near(r.Voice+" duration ratio", r.DurationRatio, 1.0)
	}
	near("decoding steps", m.DecodingStepsPerSecond, (25.5*4+25.0*12)/16)
	near("real-time factor", m.RealTimeFactor, (0.2*4+0.4*12)/16) // time over audio, pooled
	near("audio seconds", m.AudioSeconds, 16)
	near("frames", m.FramesPerSecond, 25)

	c := &TTSReport{Rows: []TTSScores{{Voice: "w", Set: "numbers"}, {Voice: "all", Set: "numbers"}}}
	if _, err := MergeTTSReports([]*TTSReport{a, c}); err == nil || !strings.Contains(err.Error(), "row 1") {
		t.Errorf("reports of other voices merged: %v", err)
	}
	if _, err := MergeTTSReports(nil); err == nil {
		t.Error("no reports merged")
	}
}
