package data

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// inflate decodes a whole gzip file independently of parseIdx, reading at
// most limit bytes of output; ok is false if the stream is broken or longer.
func inflate(file []byte, limit int) (raw []byte, ok bool) {
	zr, err := gzip.NewReader(bytes.NewReader(file))
	if err != nil {
		return nil, false
	}
	raw, err = io.ReadAll(io.LimitReader(zr, int64(limit)+1))
	return raw, err == nil && len(raw) <= limit
}

// FuzzReadIdx: no file may panic the idx decoder, every error is one line,
// and accepted data are exactly what the file holds: the gzip stream
// inflates to the magic number, the dimensions returned and the data
// returned, with nothing after, in a file within its size limit. With
// compress set, content is gzipped first, so that the fuzzer reaches the idx
// checks behind the gzip ones; labels picks the labels format (rank 1)
// rather than images (rank 3).
func FuzzReadIdx(f *testing.F) {
	f.Add(tinyImages, true, false)
	f.Add(tinyLabels, true, true)
	f.Add(gz(tinyImages), false, false)
	f.Add(gz(tinyLabels), false, true)
	f.Add(tinyLabels, true, false)                                        // labels read as images
	f.Add(append(slices.Clone(tinyImages), 0), true, false)               // trailing byte
	f.Add(tinyImages[:20], true, false)                                   // truncated data
	f.Add([]byte{0, 0, 8, 1, 0xff, 0xff, 0xff, 0xff}, true, true)         // huge count
	f.Add([]byte{0, 0, 8, 3, 0, 0, 0x27, 0x10, 0, 0, 0, 28}, true, false) // short header
	f.Add([]byte{}, false, false)
	f.Fuzz(func(t *testing.T, content []byte, compress, labels bool) {
		file := content
		if compress {
			file = gz(content)
		}
		magic, rank := uint32(0x803), 3
		if labels {
			magic, rank = 0x801, 1
		}
		buf, dims, err := parseIdx(bytes.NewReader(file), int64(len(file)), magic, rank)
		if err != nil {
			if buf != nil || dims != nil {
				t.Fatalf("results along with error %v", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q is not one line", err)
			}
			return
		}
		if len(dims) != rank {
			t.Fatalf("dimensions %v for rank %d", dims, rank)
		}
		size := 1
		for _, d := range dims {
			if d <= 0 {
				t.Fatalf("dimensions %v", dims)
			}
			size *= d
		}
		hdr := 4 * (1 + rank)
		if size != len(buf) || size > maxElements {
			t.Fatalf("%d bytes of data for dimensions %v", len(buf), dims)
		}
		if int64(len(file)) > maxFileSize(int64(hdr+size)) {
			t.Fatalf("accepted a file of %d bytes for %d bytes of data", len(file), hdr+size)
		}
		raw, ok := inflate(file, hdr+size)
		if !ok || len(raw) != hdr+size {
			t.Fatalf("accepted a file that does not inflate to exactly %d bytes", hdr+size)
		}
		if compress && !bytes.Equal(raw, content) {
			t.Fatal("accepted data differ from the content")
		}
		if binary.BigEndian.Uint32(raw) != magic {
			t.Fatalf("accepted magic number %x", raw[:4])
		}
		for i, d := range dims {
			if int(binary.BigEndian.Uint32(raw[4+4*i:])) != d {
				t.Fatalf("dimensions %v, the header says %x", dims, raw[4:hdr])
			}
		}
		if !bytes.Equal(raw[hdr:], buf) {
			t.Fatal("returned data differ from the file's")
		}
	})
}

// FuzzLoadDir: no pair of files may panic LoadDir; an error names a file of
// the folder on one line, and an accepted data set is the files' content:
// as many labels as images, each in range, images of the declared size.
// With compress set, the two contents are gzipped first.
func FuzzLoadDir(f *testing.F) {
	f.Add(tinyImages, tinyLabels, true)
	f.Add(gz(tinyImages), gz(tinyLabels), false)
	f.Add(tinyImages, []byte{0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3}, true) // 3 labels, 2 images
	f.Add(tinyImages, []byte{0, 0, 8, 1, 0, 0, 0, 2, 1, 12}, true)   // label 12
	f.Add(tinyLabels, tinyImages, true)                              // swapped
	f.Add([]byte("hello"), gz(tinyLabels), false)                    // not gzip
	f.Add(tinyImages[:10], tinyLabels, true)                         // short header
	// One folder, its files rewritten by each execution: they run one at a
	// time in a process.
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, images, labels []byte, compress bool) {
		if compress {
			images, labels = gz(images), gz(labels)
		}
		for name, b := range map[string][]byte{imagesFile: images, labelsFile: labels} {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		d, err := LoadDir(dir, "mnist", "test")
		if err != nil {
			if d != nil {
				t.Fatalf("data set along with error %v", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, filepath.Join(dir, imagesFile)) && !strings.Contains(msg, filepath.Join(dir, labelsFile)) || strings.Contains(msg, "\n") {
				t.Fatalf("error %q does not name a file of %s on one line", msg, dir)
			}
			return
		}
		if d.N <= 0 || d.Height <= 0 || d.Width <= 0 || len(d.Labels) != d.N || len(d.Images) != d.N*d.Height*d.Width {
			t.Fatalf("%d images of %dx%d in %d bytes, %d labels", d.N, d.Height, d.Width, len(d.Images), len(d.Labels))
		}
		for i, l := range d.Labels {
			if l >= Classes {
				t.Fatalf("label %d of item %d", l, i)
			}
		}
		rawImages, ok1 := inflate(images, 16+len(d.Images))
		rawLabels, ok2 := inflate(labels, 8+len(d.Labels))
		if !ok1 || !ok2 {
			t.Fatal("accepted files that do not inflate to their data")
		}
		var want [4]uint32
		binary.Decode(rawImages, binary.BigEndian, want[:])
		if want != [4]uint32{0x803, uint32(d.N), uint32(d.Height), uint32(d.Width)} || !bytes.Equal(rawImages[16:], d.Images) {
			t.Fatalf("images differ from the file, whose header is %x", rawImages[:16])
		}
		if binary.BigEndian.Uint32(rawLabels) != 0x801 || !bytes.Equal(rawLabels[8:], d.Labels) {
			t.Fatalf("labels differ from the file, whose header is %x", rawLabels[:8])
		}
	})
}
