// Package safetensors reads and writes the safetensors format: an 8-byte
// little-endian header length N, N bytes of JSON describing each tensor
// (dtype, shape, data offsets), then the raw little-endian data.
//
// The reader is strict and never panics: a checkpoint is untrusted input, and
// a bad one must end in an error that says which tensor is wrong and how.
package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"

	"github.com/latentlm/latentlm/internal/atomicfile"
)

// DType is a safetensors element type.
type DType string

// The element types of the format.
const (
	F64  DType = "F64"
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	I64  DType = "I64"
	I32  DType = "I32"
	I16  DType = "I16"
	I8   DType = "I8"
	U64  DType = "U64"
	U32  DType = "U32"
	U16  DType = "U16"
	U8   DType = "U8"
	BOOL DType = "BOOL"
)

var sizes = map[DType]int{F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1}

// Size is the size of one element in bytes, 0 for an unknown type.
func (d DType) Size() int { return sizes[d] }

// maxHeader bounds the JSON header: the reference implementation refuses
// headers over 100 MB, and so do we, before allocating anything.
const maxHeader = 100 << 20

// Tensor is one named tensor with its raw little-endian data.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// FromFloat32 makes an F32 tensor.
func FromFloat32(name string, shape []int, v []float32) Tensor {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return Tensor{Name: name, DType: F32, Shape: append([]int{}, shape...), Data: b}
}

// Float32 decodes an F32 tensor.
func (t Tensor) Float32() ([]float32, error) {
	if t.DType != F32 {
		return nil, fmt.Errorf("tensor %s: dtype %s, want F32", t.Name, t.DType)
	}
	v := make([]float32, len(t.Data)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
	}
	return v, nil
}

// File is a parsed safetensors file.
type File struct {
	Tensors  []Tensor // sorted by name
	Metadata map[string]string
}

// Get returns the named tensor.
func (f *File) Get(name string) (Tensor, bool) {
	i := sort.Search(len(f.Tensors), func(i int) bool { return f.Tensors[i].Name >= name })
	if i < len(f.Tensors) && f.Tensors[i].Name == name {
		return f.Tensors[i], true
	}
	return Tensor{}, false
}

// numElements multiplies the dims, reporting negative dims and overflow.
func numElements(shape []int) (int, error) {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension %d", d)
		}
		if d != 0 && n > math.MaxInt32*int(1<<20)/d {
			return 0, errors.New("shape too large")
		}
		n *= d
	}
	return n, nil
}

type entry struct {
	DType       DType  `json:"dtype"`
	Shape       []int  `json:"shape"`
	DataOffsets [2]int `json:"data_offsets"`
}

// Encode writes tensors (sorted by name, data contiguous) and metadata.
func Encode(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	ts := append([]Tensor(nil), tensors...)
	sort.Slice(ts, func(i, j int) bool { return ts[i].Name < ts[j].Name })
	header := map[string]any{}
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	offset := 0
	for i, t := range ts {
		if t.Name == "" || t.Name == "__metadata__" {
			return fmt.Errorf("invalid tensor name %q", t.Name)
		}
		if i > 0 && ts[i-1].Name == t.Name {
			return fmt.Errorf("duplicate tensor %s", t.Name)
		}
		if t.DType.Size() == 0 {
			return fmt.Errorf("tensor %s: unknown dtype %q", t.Name, t.DType)
		}
		n, err := numElements(t.Shape)
		if err != nil {
			return fmt.Errorf("tensor %s: %v", t.Name, err)
		}
		if n*t.DType.Size() != len(t.Data) {
			return fmt.Errorf("tensor %s: %d bytes of data for shape %v of %s (want %d)", t.Name, len(t.Data), t.Shape, t.DType, n*t.DType.Size())
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		header[t.Name] = entry{DType: t.DType, Shape: shape, DataOffsets: [2]int{offset, offset + len(t.Data)}}
		offset += len(t.Data)
	}
	js, err := json.Marshal(header)
	if err != nil {
		return err
	}
	// Pad the header with spaces to a multiple of 8 bytes, as the reference
	// writer does, so the data that follows is aligned.
	if pad := (8 - len(js)%8) % 8; pad > 0 {
		js = append(js, bytes.Repeat([]byte{' '}, pad)...)
	}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(js)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	if _, err := w.Write(js); err != nil {
		return err
	}
	for _, t := range ts {
		if _, err := w.Write(t.Data); err != nil {
			return err
		}
	}
	return nil
}

// Save writes the file atomically: a failure leaves no file behind and an
// existing file untouched.
func Save(path string, tensors []Tensor, metadata map[string]string) error {
	return atomicfile.Write(path, func(w io.Writer) error { return Encode(w, tensors, metadata) })
}

// Load reads and parses a file; errors name the path.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// Parse decodes a whole file held in memory. The tensors' Data alias b.
func Parse(b []byte) (*File, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("truncated file: %d bytes, need at least 8", len(b))
	}
	n := binary.LittleEndian.Uint64(b[:8])
	if n > maxHeader {
		return nil, fmt.Errorf("header length %d exceeds the %d-byte limit", n, maxHeader)
	}
	if n > uint64(len(b)-8) {
		return nil, fmt.Errorf("header length %d runs past the end of the file (%d bytes)", n, len(b))
	}
	headerBytes, data := b[8:8+n], b[8+n:]
	raw, meta, err := decodeHeader(headerBytes)
	if err != nil {
		return nil, err
	}
	f := &File{Metadata: meta}
	type span struct {
		name       string
		begin, end int
	}
	var spans []span
	for name, msg := range raw {
		var e struct {
			DType       *DType `json:"dtype"`
			Shape       *[]int `json:"shape"`
			DataOffsets *[]int `json:"data_offsets"`
		}
		dec := json.NewDecoder(bytes.NewReader(msg))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return nil, fmt.Errorf("tensor %s: invalid entry: %v", name, err)
		}
		if e.DType == nil || e.Shape == nil || e.DataOffsets == nil {
			return nil, fmt.Errorf("tensor %s: entry needs dtype, shape and data_offsets", name)
		}
		size := e.DType.Size()
		if size == 0 {
			return nil, fmt.Errorf("tensor %s: unknown dtype %q", name, *e.DType)
		}
		if len(*e.DataOffsets) != 2 {
			return nil, fmt.Errorf("tensor %s: data_offsets must be [begin, end]", name)
		}
		begin, end := (*e.DataOffsets)[0], (*e.DataOffsets)[1]
		if begin < 0 || end < begin {
			return nil, fmt.Errorf("tensor %s: invalid data_offsets [%d, %d]", name, begin, end)
		}
		if end > len(data) {
			return nil, fmt.Errorf("tensor %s: data_offsets [%d, %d] out of range of the %d data bytes", name, begin, end, len(data))
		}
		count, err := numElements(*e.Shape)
		if err != nil {
			return nil, fmt.Errorf("tensor %s: %v", name, err)
		}
		if count*size != end-begin {
			return nil, fmt.Errorf("tensor %s: %d data bytes do not match shape %v of %s (%d bytes)", name, end-begin, *e.Shape, *e.DType, count*size)
		}
		f.Tensors = append(f.Tensors, Tensor{Name: name, DType: *e.DType, Shape: *e.Shape, Data: data[begin:end:end]})
		spans = append(spans, span{name, begin, end})
	}
	sort.Slice(spans, func(i, j int) bool {
		if spans[i].begin != spans[j].begin {
			return spans[i].begin < spans[j].begin
		}
		return spans[i].end < spans[j].end
	})
	for i := 1; i < len(spans); i++ {
		if spans[i].begin < spans[i-1].end {
			return nil, fmt.Errorf("tensors %s and %s overlap", spans[i-1].name, spans[i].name)
		}
	}
	sort.Slice(f.Tensors, func(i, j int) bool { return f.Tensors[i].Name < f.Tensors[j].Name })
	return f, nil
}

// decodeHeader walks the header's top-level object with a token decoder, so
// that duplicate names are caught (encoding/json keeps the last silently).
func decodeHeader(b []byte) (map[string]json.RawMessage, map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, fmt.Errorf("invalid JSON header: %v", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, nil, errors.New("invalid JSON header: not an object")
	}
	raw := map[string]json.RawMessage{}
	var meta map[string]string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, fmt.Errorf("invalid JSON header: %v", err)
		}
		name, _ := tok.(string)
		var msg json.RawMessage
		if err := dec.Decode(&msg); err != nil {
			return nil, nil, fmt.Errorf("invalid JSON header at %q: %v", name, err)
		}
		if name == "__metadata__" {
			if meta != nil {
				return nil, nil, errors.New("duplicate __metadata__")
			}
			if err := json.Unmarshal(msg, &meta); err != nil {
				return nil, nil, fmt.Errorf("__metadata__ must map strings to strings: %v", err)
			}
			if meta == nil {
				meta = map[string]string{}
			}
			continue
		}
		if _, dup := raw[name]; dup {
			return nil, nil, fmt.Errorf("duplicate tensor %s", name)
		}
		raw[name] = msg
	}
	if _, err := dec.Token(); err != nil {
		return nil, nil, fmt.Errorf("invalid JSON header: %v", err)
	}
	if rest := strings.TrimSpace(string(b[dec.InputOffset():])); rest != "" {
		return nil, nil, errors.New("invalid JSON header: trailing data")
	}
	return raw, meta, nil
}

// Spec is the expected dtype and shape of a tensor.
type Spec struct {
	DType DType
	Shape []int
}

// Check compares the file with the expected tensors and reports every
// mismatch — missing, unexpected, wrong dtype, wrong shape — each by name.
func (f *File) Check(want map[string]Spec) error {
	var problems []string
	seen := map[string]bool{}
	for _, t := range f.Tensors {
		seen[t.Name] = true
		s, ok := want[t.Name]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: unexpected tensor", t.Name))
			continue
		}
		if s.DType != t.DType {
			problems = append(problems, fmt.Sprintf("%s: dtype %s, want %s", t.Name, t.DType, s.DType))
		}
		if fmt.Sprint(s.Shape) != fmt.Sprint(t.Shape) {
			problems = append(problems, fmt.Sprintf("%s: shape %v, want %v", t.Name, t.Shape, s.Shape))
		}
	}
	for name := range want {
		if !seen[name] {
			problems = append(problems, fmt.Sprintf("%s: missing", name))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	sort.Strings(problems)
	return errors.New(strings.Join(problems, "; "))
}
