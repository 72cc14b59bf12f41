// Package safetensors reads and writes the safetensors format: an 8-byte
// little-endian header length N, N bytes of JSON describing each tensor
// (dtype, shape, data offsets) plus optional string metadata, then the raw
// little-endian data.
//
// The reader is strict and never panics: a checkpoint is untrusted input, and
// a bad one must end in an error that says which tensor is wrong and how,
// rather than in a crash or in silently wrong weights. It keeps the rules of
// the reference implementation (https://github.com/huggingface/safetensors):
// a UTF-8 header of at most 100 MB, tensors that tile the data section
// exactly. It adds two against ambiguity: duplicate JSON keys and unknown
// entry fields are errors too, since a file that could be read two ways is a
// bug whichever way is chosen.
package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/latentlm/latentlm/internal/atomicfile"
	"github.com/latentlm/latentlm/internal/boundedio"
)

// DType is a safetensors element type, spelled as in the header.
type DType string

// The element types of the format. All are little-endian.
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

// Size is the size of one element in bytes, or 0 for a type this package
// does not know, which every reader and writer here rejects.
func (d DType) Size() int {
	switch d {
	case F64, I64, U64:
		return 8
	case F32, I32, U32:
		return 4
	case F16, BF16, I16, U16:
		return 2
	case I8, U8, BOOL:
		return 1
	}
	return 0
}

// maxHeader bounds the JSON header. The reference implementation refuses
// headers over 100 MB, and so do we, before reading any of it: the length
// field is attacker-controlled.
const maxHeader = 100_000_000

// metadataKey is the reserved header entry holding the string metadata.
const metadataKey = "__metadata__"

// Tensor is one named tensor with its raw little-endian data.
type Tensor struct {
	Name  string
	DType DType
	Shape []int // empty for a scalar
	Data  []byte
}

// FromFloat32 makes an F32 tensor, copying v.
func FromFloat32(name string, shape []int, v []float32) Tensor {
	return from(name, F32, shape, v)
}

// FromFloat64 makes an F64 tensor, copying v.
func FromFloat64(name string, shape []int, v []float64) Tensor {
	return from(name, F64, shape, v)
}

// FromInt64 makes an I64 tensor, copying v.
func FromInt64(name string, shape []int, v []int64) Tensor {
	return from(name, I64, shape, v)
}

// FromInt32 makes an I32 tensor, copying v.
func FromInt32(name string, shape []int, v []int32) Tensor {
	return from(name, I32, shape, v)
}

// Float32 decodes an F32 tensor.
func (t Tensor) Float32() ([]float32, error) { return values[float32](t, F32) }

// Float64 decodes an F64 tensor.
func (t Tensor) Float64() ([]float64, error) { return values[float64](t, F64) }

// Int64 decodes an I64 tensor.
func (t Tensor) Int64() ([]int64, error) { return values[int64](t, I64) }

// Int32 decodes an I32 tensor.
func (t Tensor) Int32() ([]int32, error) { return values[int32](t, I32) }

type number interface {
	float32 | float64 | int64 | int32
}

func from[T number](name string, d DType, shape []int, v []T) Tensor {
	data, _ := binary.Append(make([]byte, 0, len(v)*d.Size()), binary.LittleEndian, v)
	return Tensor{Name: name, DType: d, Shape: slices.Clone(shape), Data: data}
}

// values checks the dtype and that the data fills the shape, so that a
// hand-built inconsistent tensor is an error rather than a short slice.
func values[T number](t Tensor, want DType) ([]T, error) {
	if t.DType != want {
		return nil, fmt.Errorf("tensor %s: dtype %s, want %s", t.Name, t.DType, want)
	}
	if err := t.validate(); err != nil {
		return nil, err
	}
	v := make([]T, len(t.Data)/want.Size())
	if _, err := binary.Decode(t.Data, binary.LittleEndian, v); err != nil {
		return nil, fmt.Errorf("tensor %s: %w", t.Name, err)
	}
	return v, nil
}

// byteSize is product(shape) × size, with negative dims and overflow (of
// either the element count or the byte count) reported rather than wrapped.
func byteSize(shape []int, size int) (int, error) {
	n := uint64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension %d in shape %v", d, shape)
		}
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > math.MaxInt {
			return 0, fmt.Errorf("shape %v overflows", shape)
		}
		n = lo
	}
	hi, lo := bits.Mul64(n, uint64(size))
	if hi != 0 || lo > math.MaxInt {
		return 0, fmt.Errorf("shape %v overflows", shape)
	}
	return int(lo), nil
}

// validate checks everything about one tensor that does not depend on the
// others; Encode and Parse share it, so whatever parses also encodes.
func (t Tensor) validate() error {
	if err := checkName(t.Name); err != nil {
		return err
	}
	size := t.DType.Size()
	if size == 0 {
		return fmt.Errorf("tensor %s: unknown dtype %q", t.Name, t.DType)
	}
	want, err := byteSize(t.Shape, size)
	if err != nil {
		return fmt.Errorf("tensor %s: %v", t.Name, err)
	}
	if want != len(t.Data) {
		return fmt.Errorf("tensor %s: %d data bytes do not match shape %v of %s (%d bytes)", t.Name, len(t.Data), t.Shape, t.DType, want)
	}
	return nil
}

func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty tensor name")
	case name == metadataKey:
		return fmt.Errorf("tensor name %s is reserved", metadataKey)
	case !utf8.ValidString(name):
		return fmt.Errorf("tensor name %q is not valid UTF-8", name)
	}
	return nil
}

// File is a parsed safetensors file.
type File struct {
	Tensors  []Tensor          // sorted by name
	Metadata map[string]string // nil when the file has none
}

// Get returns the named tensor.
func (f *File) Get(name string) (Tensor, bool) {
	i, ok := slices.BinarySearchFunc(f.Tensors, name, func(t Tensor, name string) int { return strings.Compare(t.Name, name) })
	if !ok {
		return Tensor{}, false
	}
	return f.Tensors[i], true
}

// Encode writes tensors and metadata in the layout of the reference writer:
// metadata first, then tensors sorted by name with contiguous offsets, the
// header padded with spaces to a multiple of 8 bytes so that the data is
// aligned. Everything is validated before the first byte is written, so an
// invalid tensor never produces a partial file.
func Encode(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	header, ts, err := encodeHeader(tensors, metadata)
	if err != nil {
		return err
	}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(header)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	if _, err := w.Write(header); err != nil {
		return err
	}
	for _, t := range ts {
		if _, err := w.Write(t.Data); err != nil {
			return err
		}
	}
	return nil
}

// encodeHeader validates the tensors and returns the padded header and the
// tensors in file order.
func encodeHeader(tensors []Tensor, metadata map[string]string) ([]byte, []Tensor, error) {
	ts := slices.Clone(tensors)
	slices.SortFunc(ts, func(a, b Tensor) int { return strings.Compare(a.Name, b.Name) })
	for i, t := range ts {
		if err := t.validate(); err != nil {
			return nil, nil, err
		}
		if i > 0 && ts[i-1].Name == t.Name {
			return nil, nil, fmt.Errorf("duplicate tensor %s", t.Name)
		}
	}
	var h bytes.Buffer
	h.WriteByte('{')
	if len(metadata) > 0 {
		keys := make([]string, 0, len(metadata))
		for k, v := range metadata {
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return nil, nil, fmt.Errorf("%s entry %q is not valid UTF-8", metadataKey, k)
			}
			keys = append(keys, k)
		}
		slices.Sort(keys)
		writeString(&h, metadataKey)
		h.WriteString(":{")
		for i, k := range keys {
			if i > 0 {
				h.WriteByte(',')
			}
			writeString(&h, k)
			h.WriteByte(':')
			writeString(&h, metadata[k])
		}
		h.WriteByte('}')
	}
	offset := 0
	for i, t := range ts {
		if i > 0 || len(metadata) > 0 {
			h.WriteByte(',')
		}
		writeString(&h, t.Name)
		fmt.Fprintf(&h, `:{"dtype":%q,"shape":[`, t.DType)
		for j, d := range t.Shape {
			if j > 0 {
				h.WriteByte(',')
			}
			h.WriteString(strconv.Itoa(d))
		}
		fmt.Fprintf(&h, `],"data_offsets":[%d,%d]}`, offset, offset+len(t.Data))
		offset += len(t.Data)
	}
	h.WriteByte('}')
	for h.Len()%8 != 0 {
		h.WriteByte(' ')
	}
	if h.Len() > maxHeader {
		return nil, nil, fmt.Errorf("header of %d bytes exceeds the %d-byte limit", h.Len(), maxHeader)
	}
	return h.Bytes(), ts, nil
}

// writeString writes s as a JSON string, without the HTML escaping of
// encoding/json's default, which is valid but needlessly unlike the
// reference writer's output.
func writeString(b *bytes.Buffer, s string) {
	e := json.NewEncoder(b)
	e.SetEscapeHTML(false)
	_ = e.Encode(s) // cannot fail for a string
	b.Truncate(b.Len() - 1)
}

// Save writes the file atomically: a failure leaves neither the file nor a
// temporary file behind, and an existing file untouched, so a crash while
// checkpointing never costs the previous checkpoint.
func Save(path string, tensors []Tensor, metadata map[string]string) error {
	return atomicfile.Write(path, func(w io.Writer) error { return Encode(w, tensors, metadata) })
}

// MaxFileSize bounds the files Load reads: it holds the whole file in
// memory, and the checkpoints of this project are a few megabytes (the
// training state a few times the weights), so a larger file is far more
// likely a wrong path than a model.
const MaxFileSize = 1 << 30

// Load reads and parses a file; errors name the path. Only a regular file
// (after following symbolic links) of at most MaxFileSize bytes is read: a
// device such as /dev/zero would otherwise be read without end, and opening
// a named pipe would block.
func Load(path string) (*File, error) {
	b, err := boundedio.ReadFile(path, MaxFileSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// Parse decodes a whole file held in memory. The tensors' Data alias b (with
// their capacity clipped, so appending to one cannot overwrite another).
//
// As in the reference reader, the tensors must tile the data section exactly:
// no overlaps, no gaps, no trailing bytes.
func Parse(b []byte) (*File, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("truncated file: %d bytes, need at least 8", len(b))
	}
	n := binary.LittleEndian.Uint64(b[:8])
	if n > maxHeader {
		return nil, fmt.Errorf("not a safetensors file: its first 8 bytes give a header of %d bytes, over the %d-byte limit (a WAV, PNG or text file gives such numbers)", n, maxHeader)
	}
	if n > uint64(len(b)-8) {
		return nil, fmt.Errorf("header length %d runs past the end of the file (%d bytes)", n, len(b))
	}
	header, data := b[8:8+n], b[8+n:]
	entries, meta, err := decodeHeader(header)
	if err != nil {
		return nil, err
	}
	f := &File{Metadata: meta}
	for _, e := range entries {
		if e.end > len(data) {
			return nil, fmt.Errorf("tensor %s: data_offsets [%d, %d] out of range of the %d data bytes", e.name, e.begin, e.end, len(data))
		}
		t := Tensor{Name: e.name, DType: e.dtype, Shape: e.shape, Data: data[e.begin:e.end:e.end]}
		if err := t.validate(); err != nil {
			return nil, err
		}
		f.Tensors = append(f.Tensors, t)
	}
	// Check the tiling in offset order.
	slices.SortFunc(entries, func(a, b entry) int {
		if a.begin != b.begin {
			return a.begin - b.begin // both in [0, len(data)]: no overflow
		}
		return a.end - b.end
	})
	end, last := 0, ""
	for _, e := range entries {
		switch {
		case e.begin < end:
			return nil, fmt.Errorf("tensors %s and %s overlap", last, e.name)
		case e.begin > end:
			return nil, fmt.Errorf("tensor %s: %d unused data bytes before it", e.name, e.begin-end)
		}
		end, last = e.end, e.name
	}
	if end != len(data) {
		return nil, fmt.Errorf("%d unused data bytes after the last tensor", len(data)-end)
	}
	slices.SortFunc(f.Tensors, func(a, b Tensor) int { return strings.Compare(a.Name, b.Name) })
	return f, nil
}

// entry is one tensor as the header describes it.
type entry struct {
	name       string
	dtype      DType
	shape      []int
	begin, end int
}

// headerDecoder walks the header token by token rather than unmarshalling it,
// because encoding/json silently keeps the last of duplicate keys, and a file
// that names a tensor twice is ambiguous.
type headerDecoder struct{ *json.Decoder }

func decodeHeader(b []byte) ([]entry, map[string]string, error) {
	if !utf8.Valid(b) {
		return nil, nil, errors.New("invalid JSON header: not valid UTF-8")
	}
	d := headerDecoder{json.NewDecoder(bytes.NewReader(b))}
	d.UseNumber()
	var entries []entry
	var meta map[string]string
	seen := map[string]bool{}
	err := d.object("header", func(name string) error {
		if seen[name] {
			if name == metadataKey {
				return fmt.Errorf("duplicate %s", metadataKey)
			}
			return fmt.Errorf("duplicate tensor %s", name)
		}
		seen[name] = true
		if name == metadataKey {
			var err error
			meta, err = d.metadata()
			return err
		}
		if err := checkName(name); err != nil {
			return err
		}
		e, err := d.entry(name)
		if err != nil {
			return fmt.Errorf("tensor %s: %w", name, err)
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	// Only the space padding may follow the object.
	if rest := bytes.TrimLeft(b[d.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return nil, nil, errors.New("invalid JSON header: data after the object")
	}
	return entries, meta, nil
}

// syntax wraps a decoder error; every malformed header ends up here or in
// object, so "invalid JSON" is the one phrase to look for.
func syntax(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("invalid JSON header: %v", err)
}

// object reads a JSON object, calling field for each key with the decoder
// positioned at its value, which field must consume.
func (d headerDecoder) object(what string, field func(key string) error) error {
	tok, err := d.Token()
	if err != nil {
		return syntax(err)
	}
	if tok != json.Delim('{') {
		return fmt.Errorf("%s is not an object", what)
	}
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return syntax(err)
		}
		key, ok := tok.(string)
		if !ok { // the decoder only yields string keys; be sure anyway
			return syntax(fmt.Errorf("key %v is not a string", tok))
		}
		if err := field(key); err != nil {
			return err
		}
	}
	if _, err := d.Token(); err != nil { // the closing brace
		return syntax(err)
	}
	return nil
}

func (d headerDecoder) metadata() (map[string]string, error) {
	meta := map[string]string{}
	err := d.object(metadataKey, func(k string) error {
		if _, dup := meta[k]; dup {
			return fmt.Errorf("%s: duplicate key %q", metadataKey, k)
		}
		tok, err := d.Token()
		if err != nil {
			return syntax(err)
		}
		v, ok := tok.(string)
		if !ok {
			return fmt.Errorf("%s: value of %q is not a string", metadataKey, k)
		}
		meta[k] = v
		return nil
	})
	return meta, err
}

func (d headerDecoder) entry(name string) (entry, error) {
	e := entry{name: name}
	var offsets []int
	var haveDType, haveShape bool
	err := d.object("entry", func(k string) error {
		var err error
		switch k {
		case "dtype":
			if haveDType {
				return errors.New("duplicate dtype")
			}
			haveDType = true
			tok, err := d.Token()
			if err != nil {
				return syntax(err)
			}
			s, ok := tok.(string)
			if !ok {
				return fmt.Errorf("dtype %v is not a string", tok)
			}
			e.dtype = DType(s)
			if e.dtype.Size() == 0 {
				return fmt.Errorf("unknown dtype %q", s)
			}
		case "shape":
			if haveShape {
				return errors.New("duplicate shape")
			}
			haveShape = true
			e.shape, err = d.ints("shape")
		case "data_offsets":
			if offsets != nil {
				return errors.New("duplicate data_offsets")
			}
			offsets, err = d.ints("data_offsets")
		default:
			err = fmt.Errorf("unknown field %q", k)
		}
		return err
	})
	switch {
	case err != nil:
		return e, err
	case !haveDType || !haveShape || offsets == nil:
		return e, errors.New("entry needs dtype, shape and data_offsets")
	case len(offsets) != 2:
		return e, fmt.Errorf("data_offsets %v is not [begin, end]", offsets)
	case offsets[0] > offsets[1]:
		return e, fmt.Errorf("invalid data_offsets [%d, %d]: begin after end", offsets[0], offsets[1])
	}
	e.begin, e.end = offsets[0], offsets[1]
	if e.shape == nil {
		e.shape = []int{}
	}
	return e, nil
}

// ints reads an array of integers. Shapes may hold negative numbers so that
// the error can say "negative dimension"; offsets may not.
func (d headerDecoder) ints(what string) ([]int, error) {
	tok, err := d.Token()
	if err != nil {
		return nil, syntax(err)
	}
	if tok != json.Delim('[') {
		return nil, fmt.Errorf("%s is not an array", what)
	}
	v := []int{}
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return nil, syntax(err)
		}
		num, ok := tok.(json.Number)
		if !ok {
			return nil, fmt.Errorf("%s holds %v, not an integer", what, tok)
		}
		i, err := strconv.ParseInt(string(num), 10, 0)
		if err != nil || i < 0 && what != "shape" {
			return nil, fmt.Errorf("%s holds %s, not a valid integer", what, num)
		}
		if i < 0 {
			return nil, fmt.Errorf("negative dimension %d in shape", i)
		}
		v = append(v, int(i))
	}
	if _, err := d.Token(); err != nil {
		return nil, syntax(err)
	}
	return v, nil
}

// Spec is the expected dtype and shape of a tensor.
type Spec struct {
	DType DType
	Shape []int
}

// Check compares the file with the expected tensors and reports the
// mismatches at once (missing, unexpected, wrong dtype, wrong shape), each
// naming its tensor, sorted by name, the first eight and a count of the rest:
// fixing a checkpoint one error per run is slow, and one mismatch often
// explains the others.
func (f *File) Check(want map[string]Spec) error {
	const maxProblems = 8
	type problem struct {
		name string
		err  error
	}
	var ps []problem
	have := map[string]bool{}
	for _, t := range f.Tensors {
		have[t.Name] = true
		s, ok := want[t.Name]
		if !ok {
			ps = append(ps, problem{t.Name, fmt.Errorf("%s: unexpected tensor", t.Name)})
			continue
		}
		if s.DType != t.DType {
			ps = append(ps, problem{t.Name, fmt.Errorf("%s: dtype %s, want %s", t.Name, t.DType, s.DType)})
		}
		if !slices.Equal(s.Shape, t.Shape) {
			ps = append(ps, problem{t.Name, fmt.Errorf("%s: shape %v, want %v", t.Name, t.Shape, s.Shape)})
		}
	}
	for name := range want {
		if !have[name] {
			ps = append(ps, problem{name, fmt.Errorf("%s: missing tensor", name)})
		}
	}
	slices.SortStableFunc(ps, func(a, b problem) int { return strings.Compare(a.name, b.name) })
	// A file of another model differs everywhere; the first problems say
	// so, and a count stands for the rest, so the message stays readable.
	errs := make([]error, 0, maxProblems+1)
	for i, p := range ps {
		if i == maxProblems {
			errs = append(errs, fmt.Errorf("and %d more", len(ps)-maxProblems))
			break
		}
		errs = append(errs, p.err)
	}
	return errors.Join(errs...) // nil when there is no problem
}
