package safetensors

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	ref "github.com/nlpodyssey/safetensors"
)

func sample() []Tensor {
	return []Tensor{
		FromFloat32("b.weight", []int{2, 3}, []float32{1, 2, 3, 4, 5, -6.5}),
		{Name: "a.step", DType: I64, Shape: []int{}, Data: []byte{7, 0, 0, 0, 0, 0, 0, 0}},
		{Name: "c.bytes", DType: U8, Shape: []int{4}, Data: []byte{1, 2, 3, 4}},
		{Name: "d.rng", DType: U64, Shape: []int{1}, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}},
	}
}

func encode(t *testing.T, ts []Tensor, meta map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Encode(&buf, ts, meta); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	b := encode(t, sample(), map[string]string{"format": "pt"})
	f, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["format"] != "pt" || len(f.Tensors) != 4 {
		t.Fatalf("metadata %v, %d tensors", f.Metadata, len(f.Tensors))
	}
	for _, want := range sample() {
		got, ok := f.Get(want.Name)
		if !ok || got.DType != want.DType || !reflect.DeepEqual(got.Shape, want.Shape) || !bytes.Equal(got.Data, want.Data) {
			t.Errorf("%s: got %+v, want %+v", want.Name, got, want)
		}
	}
	v, err := f.Tensors[1].Float32()
	if err != nil || v[5] != -6.5 {
		t.Errorf("Float32: %v %v", v, err)
	}
}

// TestStandardReader opens our output with an independent implementation.
func TestStandardReader(t *testing.T) {
	b := encode(t, sample(), map[string]string{"k": "v"})
	st, err := ref.Deserialize(b)
	if err != nil {
		t.Fatal(err)
	}
	if st.Len() != 4 {
		t.Fatalf("reference reader sees %d tensors", st.Len())
	}
	for _, want := range sample() {
		tv, ok := st.Tensor(want.Name)
		if !ok {
			t.Fatalf("reference reader lacks %s", want.Name)
		}
		if tv.DType().String() != string(want.DType) || !bytes.Equal(tv.Data(), want.Data) || len(tv.Shape()) != len(want.Shape) {
			t.Errorf("%s: reference reader got %s %v", want.Name, tv.DType(), tv.Shape())
		}
	}
}

// TestLayout pins the byte layout of a tiny file: header length, space
// padding to 8 bytes, offsets.
func TestLayout(t *testing.T) {
	b := encode(t, []Tensor{{Name: "x", DType: U8, Shape: []int{2}, Data: []byte{9, 8}}}, nil)
	n := binary.LittleEndian.Uint64(b)
	js := `{"x":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}`
	if n%8 != 0 || int(n) < len(js) || string(b[8:8+len(js)]) != js || strings.TrimRight(string(b[8:8+n]), " ") != js {
		t.Fatalf("header %q (length %d)", b[8:8+n], n)
	}
	if !bytes.Equal(b[8+n:], []byte{9, 8}) {
		t.Fatalf("data %v", b[8+n:])
	}
}

// bad returns hand-made files, each broken in one way, with the error text
// it must produce.
func badFiles() map[string]struct {
	data []byte
	want string
} {
	hdr := func(js string, data int) []byte {
		b := make([]byte, 8, 8+len(js)+data)
		binary.LittleEndian.PutUint64(b, uint64(len(js)))
		return append(append(b, js...), make([]byte, data)...)
	}
	valid := hdr(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 8)
	past := append([]byte{}, valid...)
	binary.LittleEndian.PutUint64(past, 1<<20)
	return map[string]struct {
		data []byte
		want string
	}{
		"truncated":           {valid[:5], "truncated"},
		"truncated_data":      {valid[:len(valid)-3], "out of range"},
		"header_past_eof":     {past, "past the end"},
		"header_absurd":       {append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, 0), "exceeds"},
		"invalid_json":        {hdr(`{"a":{"dtype":"F32",`, 0), "invalid JSON"},
		"not_object":          {hdr(`[1,2]`, 0), "not an object"},
		"overlap":             {hdr(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8), "overlap"},
		"offset_out_of_range": {hdr(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}`, 8), "out of range"},
		"offsets_reversed":    {hdr(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}`, 8), "invalid data_offsets"},
		"size_mismatch":       {hdr(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, 8), "do not match shape"},
		"unknown_dtype":       {hdr(`{"a":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}}`, 8), "unknown dtype"},
		"negative_dim":        {hdr(`{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, 8), "negative dimension"},
		"huge_shape":          {hdr(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}`, 8), "too large"},
		"missing_field":       {hdr(`{"a":{"dtype":"F32","shape":[2]}}`, 8), "needs dtype"},
		"duplicate":           {hdr(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, 2), "duplicate"},
		"metadata_not_string": {hdr(`{"__metadata__":{"k":1}}`, 0), "__metadata__"},
	}
}

func TestBadInputs(t *testing.T) {
	for name, c := range badFiles() {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(c.data)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestLoadNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.safetensors")
	if err := os.WriteFile(path, []byte("nope"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("error %v does not name %s", err, path)
	}
}

func TestCheckReportsEachMismatch(t *testing.T) {
	f, err := Parse(encode(t, sample(), nil))
	if err != nil {
		t.Fatal(err)
	}
	err = f.Check(map[string]Spec{
		"b.weight": {F32, []int{3, 2}},
		"a.step":   {I32, []int{}},
		"c.bytes":  {U8, []int{4}},
		"e.gone":   {F32, []int{1}},
	})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"b.weight: shape [2 3], want [3 2]", "a.step: dtype I64, want I32", "e.gone: missing", "d.rng: unexpected"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "c.bytes") {
		t.Errorf("%q reports the matching tensor", err)
	}
}

func TestSaveIsAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	if err := Save(path, sample(), nil); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	bad := append(sample(), Tensor{Name: "z", DType: F32, Shape: []int{3}, Data: []byte{1}})
	if err := Save(path, bad, nil); err == nil {
		t.Fatal("invalid tensor saved")
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Error("failed save changed the existing file")
	}
	if err := Save(filepath.Join(dir, "new.safetensors"), bad, nil); err == nil {
		t.Fatal("invalid tensor saved")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("files left behind: %v", names)
	}
}

// FuzzParse: no input may panic, and whatever parses must re-encode to a
// file that parses to the same tensors. The seed corpus in testdata runs
// with the normal tests.
func FuzzParse(f *testing.F) {
	f.Add(encode(&testing.T{}, sample(), map[string]string{"a": "b"}))
	for _, c := range badFiles() {
		f.Add(c.data)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Parse(b)
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := Encode(&buf, file.Tensors, file.Metadata); err != nil {
			t.Fatalf("parsed file does not re-encode: %v", err)
		}
		again, err := Parse(buf.Bytes())
		if err != nil {
			t.Fatalf("re-encoded file does not parse: %v", err)
		}
		if len(again.Tensors) != len(file.Tensors) {
			t.Fatalf("%d tensors after round trip, want %d", len(again.Tensors), len(file.Tensors))
		}
		for i := range file.Tensors {
			a, b := file.Tensors[i], again.Tensors[i]
			if a.Name != b.Name || a.DType != b.DType || !reflect.DeepEqual(a.Shape, b.Shape) || !bytes.Equal(a.Data, b.Data) {
				t.Fatalf("tensor %s changed in round trip", a.Name)
			}
		}
	})
}
