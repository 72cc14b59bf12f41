package wav

import (
	"bytes"
	"testing"
)

// FuzzReadWAV checks that Decode never panics or hangs on any input, and
// that whatever it accepts survives Encode and Decode again: a mono file
// sample for sample, a stereo one as its mix-down.
func FuzzReadWAV(f *testing.F) {
	f.Add(mono(16000, pcm(1, -2, 300, -32768, 32767)).bytes())
	f.Add(header{format: formatPCM, channels: 2, rate: 44100, bits: 16, data: pcm(1, 2, 3, 4)}.bytes())
	f.Add(header{format: formatPCM, channels: 1, rate: 8000, bits: 16, data: pcm(7), before: chunk("LIST", []byte("odd"))}.bytes())
	f.Add(mono(16000, []byte{1, 2, 3}).bytes())
	f.Add(header{format: 3, channels: 1, rate: 8000, bits: 32, data: []byte{1, 2, 3, 4}}.bytes())
	truncated := mono(16000, pcm(1, 2, 3, 4)).bytes()
	f.Add(truncated[:len(truncated)-3])
	f.Add([]byte("RIFF\xff\xff\xff\xffWAVEfmt "))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := Decode(b)
		if err != nil {
			if a.Samples != nil || a.Rate != 0 {
				t.Fatalf("error %v with a non-empty result", err)
			}
			return
		}
		if a.Rate < 1 || a.Rate > MaxRate || (a.Channels != 1 && a.Channels != 2) {
			t.Fatalf("accepted rate %d, %d channels", a.Rate, a.Channels)
		}
		var buf bytes.Buffer
		if err := Encode(&buf, a); err != nil {
			t.Fatal(err)
		}
		back, err := Decode(buf.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if back.Rate != a.Rate || len(back.Samples) != len(a.Samples) {
			t.Fatalf("round trip: rate %d→%d, %d→%d samples", a.Rate, back.Rate, len(a.Samples), len(back.Samples))
		}
		for i, v := range a.Samples {
			// A stereo mix-down has half-steps that 16 bits round.
			d := back.Samples[i] - v
			if d > 1.0/32768 || d < -1.0/32768 {
				t.Fatalf("sample %d: %v → %v", i, v, back.Samples[i])
			}
			if a.Channels == 1 && d != 0 {
				t.Fatalf("mono sample %d changed: %v → %v", i, v, back.Samples[i])
			}
		}
	})
}
