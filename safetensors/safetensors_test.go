package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	ref "github.com/nlpodyssey/safetensors"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the FuzzParse seed corpus in testdata")

// sample holds one tensor of each kind worth telling apart: every dtype
// width, a scalar, an empty tensor, names given out of order.
func sample() []Tensor {
	return []Tensor{
		FromFloat32("b.weight", []int{2, 3}, []float32{1, 2, 3, 4, 5, -6.5}),
		FromFloat64("e.f64", []int{2}, []float64{math.Pi, -1e300}),
		FromInt64("a.step", nil, []int64{-7}),
		FromInt32("f.i32", []int{1, 2}, []int32{math.MinInt32, 42}),
		{Name: "c.bytes", DType: U8, Shape: []int{4}, Data: []byte{1, 2, 3, 255}},
		{Name: "d.rng", DType: U64, Shape: []int{1}, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}},
		{Name: "g.half", DType: F16, Shape: []int{3}, Data: []byte{0x00, 0x3c, 0x00, 0xc0, 0x00, 0x38}}, // 1, -2, 0.5
		{Name: "h.bf16", DType: BF16, Shape: []int{1}, Data: []byte{0x80, 0x3f}},                        // 1
		{Name: "i.i16", DType: I16, Shape: []int{2}, Data: []byte{0xff, 0xff, 0x02, 0x00}},              // -1, 2
		{Name: "j.i8", DType: I8, Shape: []int{2}, Data: []byte{0x80, 0x7f}},                            // -128, 127
		{Name: "k.mask", DType: BOOL, Shape: []int{2, 1}, Data: []byte{1, 0}},
		{Name: "l.empty", DType: F32, Shape: []int{0, 5}, Data: []byte{}},
	}
}

func encode(t testing.TB, ts []Tensor, meta map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Encode(&buf, ts, meta); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sameTensor compares tensors, treating nil and empty shapes and data alike.
func sameTensor(a, b Tensor) bool {
	return a.Name == b.Name && a.DType == b.DType && len(a.Shape) == len(b.Shape) &&
		(len(a.Shape) == 0 || reflect.DeepEqual(a.Shape, b.Shape)) && bytes.Equal(a.Data, b.Data)
}

func TestRoundTrip(t *testing.T) {
	meta := map[string]string{"format": "pt", "note": `quotes " and <html> & ünïcode`}
	f, err := Parse(encode(t, sample(), meta))
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(f.Metadata, meta) {
		t.Errorf("metadata %v, want %v", f.Metadata, meta)
	}
	if len(f.Tensors) != len(sample()) {
		t.Fatalf("%d tensors, want %d", len(f.Tensors), len(sample()))
	}
	for i := 1; i < len(f.Tensors); i++ {
		if f.Tensors[i-1].Name >= f.Tensors[i].Name {
			t.Errorf("tensors not sorted: %s before %s", f.Tensors[i-1].Name, f.Tensors[i].Name)
		}
	}
	for _, want := range sample() {
		got, ok := f.Get(want.Name)
		if !ok || !sameTensor(got, want) {
			t.Errorf("%s: got %+v, want %+v", want.Name, got, want)
		}
	}
	if _, ok := f.Get("nope"); ok {
		t.Error("Get found a tensor that is not there")
	}

	get := func(name string) Tensor { t.Helper(); x, _ := f.Get(name); return x }
	if v, err := get("b.weight").Float32(); err != nil || !reflect.DeepEqual(v, []float32{1, 2, 3, 4, 5, -6.5}) {
		t.Errorf("Float32: %v %v", v, err)
	}
	if v, err := get("e.f64").Float64(); err != nil || !reflect.DeepEqual(v, []float64{math.Pi, -1e300}) {
		t.Errorf("Float64: %v %v", v, err)
	}
	if v, err := get("a.step").Int64(); err != nil || !reflect.DeepEqual(v, []int64{-7}) {
		t.Errorf("Int64: %v %v", v, err)
	}
	if v, err := get("f.i32").Int32(); err != nil || !reflect.DeepEqual(v, []int32{math.MinInt32, 42}) {
		t.Errorf("Int32: %v %v", v, err)
	}

	// No metadata: none written, none read.
	f, err = Parse(encode(t, sample()[:1], nil))
	if err != nil || f.Metadata != nil {
		t.Errorf("metadata %v, error %v", f.Metadata, err)
	}
	// No tensors at all is a valid file.
	f, err = Parse(encode(t, nil, nil))
	if err != nil || len(f.Tensors) != 0 {
		t.Errorf("empty file: %+v, %v", f, err)
	}
}

func TestAccessorsCheck(t *testing.T) {
	if _, err := FromInt32("x", []int{1}, []int32{1}).Float32(); err == nil || !strings.Contains(err.Error(), "tensor x: dtype I32, want F32") {
		t.Errorf("wrong dtype: %v", err)
	}
	short := Tensor{Name: "x", DType: F32, Shape: []int{2}, Data: make([]byte, 7)}
	if _, err := short.Float32(); err == nil || !strings.Contains(err.Error(), "tensor x:") {
		t.Errorf("short data: %v", err)
	}
}

// TestReferenceReader opens our output with an independent implementation,
// and reads that implementation's output.
func TestReferenceReader(t *testing.T) {
	b := encode(t, sample(), map[string]string{"k": "v"})
	st, err := ref.Deserialize(b)
	if err != nil {
		t.Fatal(err)
	}
	if st.Len() != len(sample()) {
		t.Fatalf("reference reader sees %d tensors, want %d", st.Len(), len(sample()))
	}
	if _, m, err := ref.ReadMetadata(b); err != nil || m.Metadata()["k"] != "v" {
		t.Errorf("reference reader sees metadata %v (%v)", m.Metadata(), err)
	}
	for _, want := range sample() {
		tv, ok := st.Tensor(want.Name)
		if !ok {
			t.Fatalf("reference reader lacks %s", want.Name)
		}
		shape := make([]int, len(tv.Shape()))
		for i, d := range tv.Shape() {
			shape[i] = int(d)
		}
		got := Tensor{Name: want.Name, DType: DType(tv.DType().String()), Shape: shape, Data: tv.Data()}
		if !sameTensor(got, want) {
			t.Errorf("%s: reference reader got %s %v %v, want %s %v %v", want.Name, got.DType, got.Shape, got.Data, want.DType, want.Shape, want.Data)
		}
	}
	tv, _ := st.Tensor("b.weight")
	if v, err := (Tensor{Name: "b.weight", DType: F32, Shape: []int{2, 3}, Data: tv.Data()}).Float32(); err != nil || v[5] != -6.5 {
		t.Errorf("reference reader's values: %v %v", v, err)
	}

	// The other way round: the reference writer orders tensors by dtype
	// alignment, not by name; we must read that too. (Its NewTensorView
	// counts a scalar as zero elements, so scalars are left out.)
	views := map[string]ref.TensorView{}
	var viewed []Tensor
	for _, s := range sample() {
		if len(s.Shape) == 0 {
			continue
		}
		viewed = append(viewed, s)
		dt, err := ref.ParseDType(string(s.DType))
		if err != nil {
			t.Fatal(err)
		}
		shape := make([]uint64, len(s.Shape))
		for i, d := range s.Shape {
			shape[i] = uint64(d)
		}
		if views[s.Name], err = ref.NewTensorView(dt, shape, s.Data); err != nil {
			t.Fatal(err)
		}
	}
	rb, err := ref.Serialize(views, map[string]string{"k": "v"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse(rb)
	if err != nil {
		t.Fatalf("reading the reference writer's output: %v", err)
	}
	if len(f.Tensors) != len(viewed) {
		t.Errorf("%d tensors from the reference writer, want %d", len(f.Tensors), len(viewed))
	}
	for _, want := range viewed {
		if got, ok := f.Get(want.Name); !ok || !sameTensor(got, want) {
			t.Errorf("%s: got %+v, want %+v", want.Name, got, want)
		}
	}
}

// TestLayout pins the exact bytes of a tiny file: header length, metadata
// first, tensors sorted by name with contiguous offsets, space padding to a
// multiple of 8.
func TestLayout(t *testing.T) {
	got := encode(t, []Tensor{
		{Name: "b", DType: U8, Shape: []int{2}, Data: []byte{9, 8}},
		{Name: "a", DType: I16, Shape: []int{}, Data: []byte{1, 0}},
	}, map[string]string{"k": "v"})
	want := []byte{136, 0, 0, 0, 0, 0, 0, 0} // 130 bytes of JSON + 6 of padding
	want = append(want, `{"__metadata__":{"k":"v"},`+
		`"a":{"dtype":"I16","shape":[],"data_offsets":[0,2]},`+
		`"b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}`+
		`      `...)
	want = append(want, 1, 0, 9, 8)
	if !bytes.Equal(got, want) {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
}

// TestPython reads our output with numpy, from nothing but the format's
// description (struct + json + numpy), when such a Python is at hand.
func TestPython(t *testing.T) {
	if exec.Command("python3", "-c", "import numpy").Run() != nil {
		t.Skip("python3 with numpy not available")
	}
	const script = `
import json, struct, sys
import numpy as np
b = open(sys.argv[1], 'rb').read()
n, = struct.unpack('<Q', b[:8])
h = json.loads(b[8:8 + n].decode('utf-8'))
meta = h.pop('__metadata__', {})
types = {'F64': '<f8', 'F32': '<f4', 'F16': '<f2', 'I64': '<i8', 'I32': '<i4',
         'I16': '<i2', 'I8': 'i1', 'U64': '<u8', 'U8': 'u1', 'BOOL': '?'}
data = b[8 + n:]
out = {}
for name, e in h.items():
    s, end = e['data_offsets']
    a = np.frombuffer(data[s:end], dtype=types[e['dtype']]).reshape(e['shape'])
    out[name] = {'shape': list(a.shape), 'values': [float(x) for x in a.ravel()]}
print(json.dumps({'n': n, 'meta': meta, 'tensors': out}))
`
	var ts []Tensor
	for _, s := range sample() {
		if s.DType != BF16 && s.DType != U64 { // numpy lacks BF16; U64 values exceed float64 precision
			ts = append(ts, s)
		}
	}
	want := map[string][]float64{
		"b.weight": {1, 2, 3, 4, 5, -6.5}, "e.f64": {math.Pi, -1e300}, "a.step": {-7},
		"f.i32": {math.MinInt32, 42}, "c.bytes": {1, 2, 3, 255}, "g.half": {1, -2, 0.5},
		"i.i16": {-1, 2}, "j.i8": {-128, 127}, "k.mask": {1, 0}, "l.empty": {},
	}
	path := filepath.Join(t.TempDir(), "x.safetensors")
	if err := Save(path, ts, map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("python3", "-c", script, path).Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	var got struct {
		N       int
		Meta    map[string]string
		Tensors map[string]struct {
			Shape  []int
			Values []float64
		}
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got.N%8 != 0 || got.Meta["k"] != "v" || len(got.Tensors) != len(ts) {
		t.Fatalf("python sees header length %d, metadata %v, %d tensors", got.N, got.Meta, len(got.Tensors))
	}
	for _, s := range ts {
		g := got.Tensors[s.Name]
		if len(g.Shape) != len(s.Shape) || len(s.Shape) > 0 && !reflect.DeepEqual(g.Shape, s.Shape) || !reflect.DeepEqual(g.Values, want[s.Name]) {
			t.Errorf("%s: python sees %v %v, want %v %v", s.Name, g.Shape, g.Values, s.Shape, want[s.Name])
		}
	}
}

// badFiles returns hand-made files, each broken in one way, with the error
// text it must produce (naming the tensor where there is one).
func badFiles() map[string]struct {
	data []byte
	want string
} {
	file := func(js string, data int) []byte {
		b := binary.LittleEndian.AppendUint64(nil, uint64(len(js)))
		return append(append(b, js...), make([]byte, data)...)
	}
	one := func(entry string, data int) []byte { return file(`{"a":`+entry+`}`, data) }
	valid := one(`{"dtype":"F32","shape":[2],"data_offsets":[0,8]}`, 8)
	past := bytes.Clone(valid)
	binary.LittleEndian.PutUint64(past, uint64(len(valid)-7))
	return map[string]struct {
		data []byte
		want string
	}{
		"truncated":           {valid[:5], "truncated file"},
		"empty_file":          {nil, "truncated file"},
		"header_past_eof":     {past, "past the end"},
		"header_absurd":       {[]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{', '}'}, "not a safetensors file"},
		"header_empty":        {file(``, 0), "invalid JSON"},
		"invalid_json":        {file(`{"a":{"dtype":"F32",`, 0), "invalid JSON"},
		"invalid_json_nested": {one(`{"dtype":"F32","shape":[2}`, 8), "invalid JSON"},
		"trailing_json":       {file(`{}{}`, 0), "data after the object"},
		"invalid_utf8":        {file("{\"\xff\":1}", 0), "UTF-8"},
		"header_not_object":   {file(`[1,2]`, 0), "header is not an object"},
		"entry_not_object":    {one(`[0,8]`, 8), "tensor a: entry is not an object"},
		"missing_field":       {one(`{"dtype":"F32","shape":[2]}`, 8), "tensor a: entry needs dtype, shape and data_offsets"},
		"unknown_field":       {one(`{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}`, 8), `tensor a: unknown field "x"`},
		"dtype_not_string":    {one(`{"dtype":4,"shape":[2],"data_offsets":[0,8]}`, 8), "tensor a: dtype 4 is not a string"},
		"unknown_dtype":       {one(`{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}`, 8), `tensor a: unknown dtype "Q7"`},
		"shape_not_array":     {one(`{"dtype":"F32","shape":2,"data_offsets":[0,8]}`, 8), "tensor a: shape is not an array"},
		"shape_not_integer":   {one(`{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}`, 8), "tensor a: shape holds 2.0"},
		"shape_not_number":    {one(`{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}`, 8), "tensor a: shape holds 2"},
		"negative_dim":        {one(`{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}`, 8), "tensor a: negative dimension -2"},
		"huge_dim":            {one(`{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,8]}`, 8), "tensor a: shape holds 99999999999999999999"},
		"shape_overflow":      {one(`{"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}`, 0), "tensor a: shape [4294967296 4294967296 0] overflows"},
		"bytes_overflow":      {one(`{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,8]}`, 8), "tensor a: shape [4611686018427387904] overflows"},
		"offsets_single":      {one(`{"dtype":"F32","shape":[2],"data_offsets":[8]}`, 8), "tensor a: data_offsets [8] is not [begin, end]"},
		"offsets_triple":      {one(`{"dtype":"F32","shape":[2],"data_offsets":[0,4,8]}`, 8), "tensor a: data_offsets [0 4 8] is not [begin, end]"},
		"offsets_negative":    {one(`{"dtype":"F32","shape":[0],"data_offsets":[-1,-1]}`, 8), "tensor a: data_offsets holds -1"},
		"offsets_reversed":    {one(`{"dtype":"F32","shape":[0],"data_offsets":[8,0]}`, 8), "tensor a: invalid data_offsets [8, 0]"},
		"out_of_range":        {one(`{"dtype":"F32","shape":[2],"data_offsets":[8,16]}`, 8), "tensor a: data_offsets [8, 16] out of range"},
		"truncated_data":      {valid[:len(valid)-3], "tensor a: data_offsets [0, 8] out of range of the 5 data bytes"},
		"size_mismatch":       {one(`{"dtype":"F32","shape":[3],"data_offsets":[0,8]}`, 8), "tensor a: 8 data bytes do not match shape [3] of F32 (12 bytes)"},
		"overlap":             {file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8), "tensors a and b overlap"},
		"gap":                 {file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}`, 12), "tensor b: 4 unused data bytes before it"},
		"trailing_data":       {one(`{"dtype":"F32","shape":[1],"data_offsets":[0,4]}`, 8), "4 unused data bytes after the last tensor"},
		"duplicate":           {file(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, 2), "duplicate tensor a"},
		"duplicate_escaped":   {file(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"\u0061":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, 2), "duplicate tensor a"},
		"duplicate_field":     {one(`{"dtype":"F32","dtype":"F64","shape":[2],"data_offsets":[0,8]}`, 8), "tensor a: duplicate dtype"},
		"empty_name":          {file(`{"":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, 1), "empty tensor name"},
		"metadata_not_object": {file(`{"__metadata__":["k"]}`, 0), "__metadata__ is not an object"},
		"metadata_not_string": {file(`{"__metadata__":{"k":1}}`, 0), `__metadata__: value of "k" is not a string`},
		"metadata_nested":     {file(`{"__metadata__":{"k":{"x":"y"}}}`, 0), `__metadata__: value of "k" is not a string`},
		"metadata_dup_key":    {file(`{"__metadata__":{"k":"1","k":"2"}}`, 0), `__metadata__: duplicate key "k"`},
		"metadata_twice":      {file(`{"__metadata__":{},"__metadata__":{}}`, 0), "duplicate __metadata__"},
	}
}

func TestBadInputs(t *testing.T) {
	for name, c := range badFiles() {
		t.Run(name, func(t *testing.T) {
			f, err := Parse(c.data)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error containing %q", err, c.want)
			}
			if f != nil {
				t.Errorf("got a file along with the error")
			}
		})
	}
}

func TestEncodeRejects(t *testing.T) {
	ok := FromFloat32("ok", []int{1}, []float32{1})
	for name, c := range map[string]struct {
		ts   []Tensor
		meta map[string]string
		want string
	}{
		"duplicate":      {[]Tensor{ok, ok}, nil, "duplicate tensor ok"},
		"short_data":     {[]Tensor{{Name: "x", DType: F32, Shape: []int{2}, Data: make([]byte, 7)}}, nil, "tensor x: 7 data bytes do not match shape [2]"},
		"unknown_dtype":  {[]Tensor{{Name: "x", DType: "F8", Shape: []int{1}, Data: []byte{0}}}, nil, `tensor x: unknown dtype "F8"`},
		"negative_dim":   {[]Tensor{{Name: "x", DType: U8, Shape: []int{-1}}}, nil, "tensor x: negative dimension"},
		"overflow":       {[]Tensor{{Name: "x", DType: U8, Shape: []int{math.MaxInt, 2}}}, nil, "tensor x: shape"},
		"empty_name":     {[]Tensor{{DType: U8, Shape: []int{0}}}, nil, "empty tensor name"},
		"reserved_name":  {[]Tensor{{Name: "__metadata__", DType: U8, Shape: []int{0}}}, nil, "reserved"},
		"bad_utf8_name":  {[]Tensor{{Name: "x\xff", DType: U8, Shape: []int{0}}}, nil, "UTF-8"},
		"bad_utf8_value": {nil, map[string]string{"k": "\xff"}, `__metadata__ entry "k" is not valid UTF-8`},
	} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Encode(&buf, c.ts, c.meta)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error containing %q", err, c.want)
			}
			if buf.Len() != 0 {
				t.Errorf("%d bytes written before the error", buf.Len())
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	if err := Save(path, sample(), map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	f, err := Load(path)
	if err != nil || len(f.Tensors) != len(sample()) || f.Metadata["k"] != "v" {
		t.Fatalf("Load: %v", err)
	}
	bad := filepath.Join(dir, "bad.safetensors")
	if err := os.WriteFile(bad, []byte("nope"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad); err == nil || !strings.HasPrefix(err.Error(), bad+": truncated file") {
		t.Errorf("error %v does not start with %s", err, bad)
	}
	missing := filepath.Join(dir, "missing.safetensors")
	if _, err := Load(missing); err == nil || !strings.Contains(err.Error(), missing) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestCheckReportsEachMismatch(t *testing.T) {
	f, err := Parse(encode(t, sample()[:5], nil)) // a.step b.weight c.bytes e.f64 f.i32
	if err != nil {
		t.Fatal(err)
	}
	err = f.Check(map[string]Spec{
		"b.weight": {F32, []int{3, 2}},
		"a.step":   {I32, []int{}},
		"c.bytes":  {U8, []int{4}},
		"e.f64":    {F32, []int{3}},
		"z.gone":   {F32, []int{1}},
		"0.gone":   {F32, nil},
	})
	want := []string{
		"0.gone: missing tensor",
		"a.step: dtype I64, want I32",
		"b.weight: shape [2 3], want [3 2]",
		"e.f64: dtype F64, want F32",
		"e.f64: shape [2], want [3]",
		"f.i32: unexpected tensor",
		"z.gone: missing tensor",
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("Check returned %v, want an errors.Join", err)
	}
	var got []string
	for _, e := range j.Unwrap() {
		got = append(got, e.Error())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// A file of another model: the first eight problems and a count.
	many := map[string]Spec{}
	for i := range 20 {
		many[fmt.Sprintf("m%02d", i)] = Spec{F32, []int{1}}
	}
	err = f.Check(many)
	got = got[:0]
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		got = append(got, e.Error())
	}
	if len(got) != 9 || got[0] != "a.step: unexpected tensor" || got[8] != "and 17 more" {
		t.Errorf("25 problems reported as\n%s", strings.Join(got, "\n"))
	}
	// A scalar matches nil and empty shapes alike.
	if err := f.Check(map[string]Spec{
		"a.step": {I64, nil}, "b.weight": {F32, []int{2, 3}}, "c.bytes": {U8, []int{4}},
		"e.f64": {F64, []int{2}}, "f.i32": {I32, []int{1, 2}},
	}); err != nil {
		t.Errorf("matching file: %v", err)
	}
}

func TestSaveIsAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	if err := Save(path, sample(), nil); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// An invalid tensor at the end of the list: Encode has already seen the
	// valid ones when it fails.
	bad := append(sample(), Tensor{Name: "zz", DType: F32, Shape: []int{3}, Data: []byte{1}})
	if err := Save(path, bad, nil); err == nil || !strings.Contains(err.Error(), "tensor zz") {
		t.Fatalf("invalid tensor saved: %v", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Error("failed save changed the existing file")
	}
	if err := Save(filepath.Join(dir, "new.safetensors"), bad, nil); err == nil {
		t.Fatal("invalid tensor saved")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "m.safetensors" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("files left behind: %v", names)
	}
}

// seeds are the FuzzParse seed corpus: a valid file and every bad file.
func seeds(t testing.TB) map[string][]byte {
	s := map[string][]byte{
		"valid":       encode(t, sample(), map[string]string{"format": "pt"}),
		"valid_empty": encode(t, nil, nil),
	}
	for name, c := range badFiles() {
		s[name] = c.data
	}
	return s
}

// TestSeedCorpus keeps testdata/fuzz/FuzzParse in step with seeds; rewrite it
// with go test ./safetensors -run TestSeedCorpus -args -update-corpus. Files other than the seeds (crashers the
// fuzzer found) are left alone.
func TestSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	for name, b := range seeds(t) {
		want := fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", b)
		path := filepath.Join(dir, "seed_"+name)
		if *updateCorpus {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is missing or stale (%v); run go test ./safetensors -run TestSeedCorpus -args -update-corpus", path, err)
		}
	}
}

// FuzzParse: no input may panic, and whatever parses must re-encode to a
// file that parses to the same tensors and metadata. The seed corpus in
// testdata runs with plain go test.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Parse(b)
		if err != nil {
			if file != nil {
				t.Fatalf("file along with error %v", err)
			}
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
			if a, b := file.Tensors[i], again.Tensors[i]; !sameTensor(a, b) {
				t.Fatalf("tensor %s changed in round trip: %+v, then %+v", a.Name, a, b)
			}
		}
		if !maps.Equal(file.Metadata, again.Metadata) && len(file.Metadata)+len(again.Metadata) > 0 {
			t.Fatalf("metadata changed in round trip: %v, then %v", file.Metadata, again.Metadata)
		}
	})
}
