package wav

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// header builds a WAV file from its parts, for tests that need files Encode
// would never write.
type header struct {
	format          uint16
	channels        uint16
	rate            uint32
	byteRate, align uint32
	bits            uint16
	extra           []byte // appended to the 16 bytes of the fmt chunk
	before, after   []byte // whole chunks before fmt and after data
	data            []byte
	riffDelta       int // added to the true RIFF size
}

func (h header) bytes() []byte {
	if h.align == 0 {
		h.align = uint32(h.channels) * uint32(h.bits) / 8
	}
	if h.byteRate == 0 {
		h.byteRate = h.rate * h.align
	}
	var b bytes.Buffer
	b.WriteString("RIFF\x00\x00\x00\x00WAVE")
	b.Write(h.before)
	fmtChunk := make([]byte, 16)
	binary.LittleEndian.PutUint16(fmtChunk[0:], h.format)
	binary.LittleEndian.PutUint16(fmtChunk[2:], h.channels)
	binary.LittleEndian.PutUint32(fmtChunk[4:], h.rate)
	binary.LittleEndian.PutUint32(fmtChunk[8:], h.byteRate)
	binary.LittleEndian.PutUint16(fmtChunk[12:], uint16(h.align))
	binary.LittleEndian.PutUint16(fmtChunk[14:], h.bits)
	fmtChunk = append(fmtChunk, h.extra...)
	b.Write(chunk("fmt ", fmtChunk))
	b.Write(chunk("data", h.data))
	b.Write(h.after)
	out := b.Bytes()
	binary.LittleEndian.PutUint32(out[4:], uint32(len(out)-8+h.riffDelta))
	return out
}

// chunk is a RIFF chunk with its pad byte.
func chunk(id string, body []byte) []byte {
	out := append([]byte(id), 0, 0, 0, 0)
	binary.LittleEndian.PutUint32(out[4:], uint32(len(body)))
	out = append(out, body...)
	if len(body)%2 == 1 {
		out = append(out, 0)
	}
	return out
}

func pcm(v ...int16) []byte {
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(x))
	}
	return b
}

func mono(rate uint32, data []byte) header {
	return header{format: formatPCM, channels: 1, rate: rate, bits: 16, data: data}
}

func TestRoundTrip(t *testing.T) {
	in := Audio{Rate: 16000, Samples: []float32{0, 0.5, -0.5, 1, -1, 0.25, float32(math.NaN()), 2, -3}}
	var buf bytes.Buffer
	if err := Encode(&buf, in); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 44+2*len(in.Samples) {
		t.Fatalf("encoded %d bytes, want %d", buf.Len(), 44+2*len(in.Samples))
	}
	out, err := Decode(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{0, 0.5, -0.5, 32767.0 / 32768, -1, 0.25, 0, 32767.0 / 32768, -1}
	if out.Rate != 16000 || out.Channels != 1 || len(out.Samples) != len(want) {
		t.Fatalf("got rate %d, %d channels, %d samples", out.Rate, out.Channels, len(out.Samples))
	}
	for i := range want {
		if out.Samples[i] != want[i] {
			t.Errorf("sample %d: got %v, want %v", i, out.Samples[i], want[i])
		}
	}
	if s := out.Seconds(); math.Abs(s-9.0/16000) > 1e-12 {
		t.Errorf("Seconds = %v", s)
	}
}

func TestStereoIsMixedAndRateReported(t *testing.T) {
	h := header{format: formatPCM, channels: 2, rate: 44100, bits: 16, data: pcm(16384, -16384, 8192, 8192, -32768, -32768)}
	a, err := Decode(h.bytes())
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{0, 0.25, -1}
	if a.Rate != 44100 || a.Channels != 2 || len(a.Samples) != 3 {
		t.Fatalf("got rate %d, %d channels, %d samples", a.Rate, a.Channels, len(a.Samples))
	}
	for i := range want {
		if a.Samples[i] != want[i] {
			t.Errorf("sample %d: got %v, want %v", i, a.Samples[i], want[i])
		}
	}
}

func TestAcceptsExtensibleAndOtherChunks(t *testing.T) {
	ext := make([]byte, 24)
	binary.LittleEndian.PutUint16(ext[0:], 22)
	copy(ext[8:], pcmGUID)
	h := header{format: formatExtensible, channels: 1, rate: 8000, bits: 16, extra: ext, data: pcm(1, 2, 3),
		before: chunk("LIST", []byte("odd")), after: chunk("junk", []byte{1})}
	b := append(h.bytes(), "trailing bytes past the RIFF size"...)
	a, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if a.Rate != 8000 || len(a.Samples) != 3 || a.Samples[2] != 3.0/32768 {
		t.Fatalf("got %+v", a)
	}
}

func TestRefusals(t *testing.T) {
	good := mono(16000, pcm(1, 2, 3, 4))
	truncated := good.bytes()
	truncated = truncated[:len(truncated)-3]
	placeholder := good.bytes()
	binary.LittleEndian.PutUint32(placeholder[4:], math.MaxUint32)
	floatExt := make([]byte, 24)
	copy(floatExt[8:], pcmGUID)
	floatExt[8] = 3
	cases := map[string]struct {
		b    []byte
		want string
	}{
		"empty":         {nil, "shorter than a RIFF header"},
		"png":           {[]byte("\x89PNG\r\n\x1a\n0000"), "not a WAV file"},
		"truncated":     {truncated, "truncated"},
		"placeholder":   {placeholder, "placeholder"},
		"odd data":      {mono(16000, []byte{1, 2, 3}).bytes(), "whole number"},
		"stereo odd":    {header{format: 1, channels: 2, rate: 16000, bits: 16, data: pcm(1, 2, 3)}.bytes(), "whole number"},
		"8-bit":         {header{format: 1, channels: 1, rate: 8000, bits: 8, data: []byte{1, 2}}.bytes(), "8-bit"},
		"24-bit":        {header{format: 1, channels: 1, rate: 8000, bits: 24, data: []byte{1, 2, 3}}.bytes(), "24-bit"},
		"float":         {header{format: 3, channels: 1, rate: 8000, bits: 32, data: []byte{1, 2, 3, 4}}.bytes(), "float"},
		"float ext":     {header{format: formatExtensible, channels: 1, rate: 8000, bits: 16, extra: floatExt, data: pcm(1)}.bytes(), "sub-format"},
		"short ext":     {header{format: formatExtensible, channels: 1, rate: 8000, bits: 16, data: pcm(1)}.bytes(), "EXTENSIBLE"},
		"mu-law":        {header{format: 7, channels: 1, rate: 8000, bits: 16, data: pcm(1)}.bytes(), "not PCM"},
		"3 channels":    {header{format: 1, channels: 3, rate: 8000, bits: 16, data: pcm(1, 2, 3)}.bytes(), "3 channels"},
		"zero rate":     {mono(0, pcm(1)).bytes(), "sample rate 0"},
		"1 Hz":          {mono(1, pcm(1)).bytes(), "sample rate 1 Hz is outside 8000"},
		"huge rate":     {mono(1e6, pcm(1)).bytes(), "sample rate 1000000"},
		"bad align":     {header{format: 1, channels: 1, rate: 8000, bits: 16, align: 4, data: pcm(1)}.bytes(), "block alignment"},
		"bad byte rate": {header{format: 1, channels: 1, rate: 8000, bits: 16, byteRate: 1, data: pcm(1)}.bytes(), "byte rate"},
		"riff too big":  {header{format: 1, channels: 1, rate: 8000, bits: 16, data: pcm(1), riffDelta: 10}.bytes(), "truncated"},
		"no data":       {[]byte("RIFF\x04\x00\x00\x00WAVE"), "no fmt chunk"},
		"stray bytes":   {header{format: 1, channels: 1, rate: 8000, bits: 16, data: pcm(1), after: []byte{1, 2, 3}}.bytes(), "stray bytes"},
		"two data":      {header{format: 1, channels: 1, rate: 8000, bits: 16, data: pcm(1), after: chunk("data", pcm(2))}.bytes(), "two data"},
		"two fmt":       {header{format: 1, channels: 1, rate: 8000, bits: 16, data: pcm(1), after: chunk("fmt ", make([]byte, 16))}.bytes(), "two fmt"},
		"data first":    {header{format: 1, channels: 1, rate: 8000, bits: 16, data: pcm(1), before: chunk("data", pcm(2))}.bytes(), "before the fmt"},
	}
	noData := mono(16000, nil).bytes()
	// Rename the data chunk so that the file holds only fmt.
	copy(noData[36:], "junk")
	cases["only fmt"] = struct {
		b    []byte
		want string
	}{noData, "no data chunk"}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Decode(c.b)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestReadNamesTheFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.wav")
	if err := os.WriteFile(p, []byte("RIFF\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Read(p)
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "RIFF header") {
		t.Fatalf("got %v", err)
	}
	if _, err := Read(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("reading a folder: got %v", err)
	}
	q := filepath.Join(dir, "y.wav")
	a := Audio{Rate: 22050, Samples: []float32{0.1, -0.1}}
	if err := Write(q, a); err != nil {
		t.Fatal(err)
	}
	got, err := Read(q)
	if err != nil || got.Rate != 22050 || len(got.Samples) != 2 {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestEncodeRefusesBadRate(t *testing.T) {
	for _, rate := range []int{0, MinRate - 1, MaxRate + 1} {
		if err := Encode(&bytes.Buffer{}, Audio{Rate: rate}); err == nil {
			t.Errorf("rate %d accepted", rate)
		}
	}
}
