package multimodal

import (
	"math"
	"strings"
	"testing"
)

// TestSampleTemperature: a checkpoint without its own scale of the noise
// samples at 1; one that records a positive number samples at it; any
// other record is an error that names the key and the folder.
func TestSampleTemperature(t *testing.T) {
	for _, c := range []struct {
		info map[string]any
		want float64
	}{
		{nil, 1},
		{map[string]any{"steps": 10.0}, 1},
		{map[string]any{InfoSampleTemperature: 0.8}, 0.8},
	} {
		m := &Model{Info: c.info, Dir: "ckpt"}
		if got, err := m.SampleTemperature(); err != nil || got != c.want {
			t.Errorf("info %v: temperature %v, %v; want %v", c.info, got, err, c.want)
		}
	}
	for _, bad := range []any{0.0, -1.0, math.Inf(1), math.NaN(), "0.8"} {
		m := &Model{Info: map[string]any{InfoSampleTemperature: bad}, Dir: "ckpt"}
		if _, err := m.SampleTemperature(); err == nil || !strings.Contains(err.Error(), "ckpt: sample_temperature") {
			t.Errorf("a recorded temperature %v: error %v", bad, err)
		}
	}
}
