package text

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestWriteReadFile(t *testing.T) {
	tok := trained(t)
	path := filepath.Join(t.TempDir(), "tokenizer.json")
	if err := tok.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	back, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.Size() != tok.Size() || back.EOT() != tok.EOT() {
		t.Fatalf("read back Size %d EOT %d, want %d %d", back.Size(), back.EOT(), tok.Size(), tok.EOT())
	}
	for _, s := range append(slices.Clone(roundTripCases), testCorpus...) {
		if a, b := tok.Encode(s), back.Encode(s); !slices.Equal(a, b) {
			t.Fatalf("Encode(%q): %v before writing, %v after reading", s, a, b)
		}
	}
	for id := range tok.Size() {
		if !bytes.Equal(tok.TokenBytes(id), back.TokenBytes(id)) {
			t.Fatalf("token %d: %q before writing, %q after reading", id, tok.TokenBytes(id), back.TokenBytes(id))
		}
	}
	// Writing what was read gives the same file.
	a, _ := os.ReadFile(path)
	b, err := back.Marshal()
	if err != nil || !bytes.Equal(a, b) {
		t.Fatalf("rewriting a read tokenizer changed the file (err %v)", err)
	}
	// No temporary file is left beside it.
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("folder holds %d entries after WriteFile, want 1", len(entries))
	}
}

// TestFileFormat checks the fields Hugging Face tokenizers reads and
// writes for a byte-level BPE.
func TestFileFormat(t *testing.T) {
	tok, err := Train([]string{"aaabdaaabac", "hello  world\n"}, MinVocabSize+3)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := tok.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(raw, []byte(`{"version":"1.0","truncation":null,"padding":null,"added_tokens":[{"id":0,"content":"<|endoftext|>",`)) {
		t.Fatalf("file starts %.100s, not as tokenizers writes it", raw)
	}
	var f map[string]any
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatalf("tokenizer.json is not JSON: %v", err)
	}
	for _, k := range []string{"truncation", "padding", "normalizer"} {
		if v, ok := f[k]; !ok || v != nil {
			t.Errorf("%s = %v, want null", k, v)
		}
	}
	added := f["added_tokens"].([]any)
	if len(added) != 1 {
		t.Fatalf("added_tokens = %v", added)
	}
	wantAdded := map[string]any{"id": 0.0, "content": EndOfText, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
	for k, v := range wantAdded {
		if got := added[0].(map[string]any)[k]; got != v {
			t.Errorf("added_tokens[0].%s = %v, want %v", k, got, v)
		}
	}
	for _, k := range []string{"pre_tokenizer", "post_processor", "decoder"} {
		c := f[k].(map[string]any)
		if c["type"] != "ByteLevel" || c["add_prefix_space"] != false || c["use_regex"] != true || c["trim_offsets"] != true {
			t.Errorf("%s = %v, want ByteLevel without prefix space, with regex", k, c)
		}
	}
	m := f["model"].(map[string]any)
	for k, v := range map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil, "end_of_word_suffix": nil, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false} {
		if got, ok := m[k]; !ok || got != v {
			t.Errorf("model.%s = %v, want %v", k, got, v)
		}
	}
	vocab := m["vocab"].(map[string]any)
	if len(vocab) != tok.Size() {
		t.Fatalf("vocab has %d entries, want %d", len(vocab), tok.Size())
	}
	for s, id := range map[string]float64{EndOfText: 0, "a": 1 + 'a', "Ġ": 1 + ' ', "Ċ": 1 + '\n', "aa": 257, "ab": 258, "aaab": 259} {
		if vocab[s] != id {
			t.Errorf("vocab[%q] = %v, want %v", s, vocab[s], id)
		}
	}
	merges, _ := json.Marshal(m["merges"])
	if string(merges) != `[["a","a"],["a","b"],["aa","ab"]]` {
		t.Errorf("merges = %s", merges)
	}
	// Vocab in id order, as tokenizers writes it.
	if !bytes.Contains(raw, []byte(`"vocab":{"<|endoftext|>":0,"Ā":1,"ā":2,`)) {
		t.Errorf("vocab is not written in id order")
	}
}

// TestParseOldMerges reads the "a b" merge form of tokenizers before 0.20.
func TestParseOldMerges(t *testing.T) {
	tok := trained(t)
	f := fileMap(t, tok)
	model := f["model"].(map[string]any)
	var old []any
	for _, m := range model["merges"].([]any) {
		p := m.([]any)
		old = append(old, p[0].(string)+" "+p[1].(string))
	}
	model["merges"] = old
	back, err := Parse(remarshal(t, f))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range testCorpus {
		if a, b := tok.Encode(s), back.Encode(s); !slices.Equal(a, b) {
			t.Fatalf("Encode(%q) with old-form merges: %v, want %v", s, b, a)
		}
	}
}

// TestParseGPT2Layout reads a file laid out as GPT-2's: the special token
// last rather than first, the post-processor's and decoder's flags as
// tokenizers writes them by default, and use_regex absent.
func TestParseGPT2Layout(t *testing.T) {
	f := fileMap(t, trained(t))
	model := f["model"].(map[string]any)
	vocab := model["vocab"].(map[string]any)
	n := float64(len(vocab))
	for k, v := range vocab {
		vocab[k] = v.(float64) - 1
	}
	vocab[EndOfText] = n - 1
	f["added_tokens"].([]any)[0].(map[string]any)["id"] = n - 1
	f["pre_tokenizer"] = map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true}
	f["post_processor"] = map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false}
	f["decoder"] = map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true}
	tok, err := Parse(remarshal(t, f))
	if err != nil {
		t.Fatal(err)
	}
	if tok.EOT() != int(n-1) {
		t.Fatalf("EOT() = %d, want %v", tok.EOT(), n-1)
	}
	for _, s := range roundTripCases {
		checkRoundTrip(t, tok, s)
	}
	want := trained(t).Encode(testCorpus[0])
	got := tok.Encode(testCorpus[0])
	for i := range want {
		want[i]--
	}
	if !slices.Equal(got, want) {
		t.Fatalf("shifted ids: Encode = %v, want %v", got, want)
	}
}

// fileMap returns tok's tokenizer.json as a generic JSON value to edit.
func fileMap(t *testing.T, tok *Tokenizer) map[string]any {
	t.Helper()
	raw, err := tok.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var f map[string]any
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

func remarshal(t *testing.T, f map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReadFileRefuses checks that each kind of bad file is refused with an
// error naming the file and what is wrong.
func TestReadFileRefuses(t *testing.T) {
	dir := t.TempDir()
	good := fileMap(t, trained(t))
	edit := func(change func(f map[string]any)) []byte {
		raw, _ := json.Marshal(good)
		var f map[string]any
		_ = json.Unmarshal(raw, &f)
		change(f)
		return remarshal(t, f)
	}
	model := func(f map[string]any) map[string]any { return f["model"].(map[string]any) }
	firstMerge := func(f map[string]any) []any { return model(f)["merges"].([]any)[0].([]any) }

	cases := []struct {
		name    string
		content []byte // nil: no file
		want    string
	}{
		{"missing", nil, "no such file"},
		{"notjson", []byte("vocab: {a: 1}\n"), "not JSON"},
		{"truncated", []byte(`{"version":"1.0","model":{"type":"BPE"`), "not JSON"},
		{"array", []byte(`[1, 2]`), "not a tokenizer.json: want an object, found array"},
		{"version-number", []byte(`{"version": 1, "model": {}}`), `field "version": want a string, found number`},
		{"empty-object", []byte(`{}`), "no version or model"},
		{"version", edit(func(f map[string]any) { f["version"] = "2.0" }), `version "2.0"`},
		{"wordpiece", edit(func(f map[string]any) {
			f["model"] = map[string]any{"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100, "vocab": map[string]any{"[UNK]": 0, "a": 1}}
		}), `not a BPE tokenizer: the model has "WordPiece"`},
		{"no-vocab", edit(func(f map[string]any) { delete(model(f), "vocab") }), "missing vocab"},
		{"no-merges", edit(func(f map[string]any) { delete(model(f), "merges") }), "missing merges"},
		{"unknown-merge-token", edit(func(f map[string]any) { firstMerge(f)[1] = "zzzzqq" }), `unknown token "zzzzqq"`},
		{"merged-not-in-vocab", edit(func(f map[string]any) {
			model(f)["merges"] = append(model(f)["merges"].([]any), []any{"ÿ", "ÿ"})
		}), `the merged token "ÿÿ" is not in model.vocab`},
		{"bad-merge-form", edit(func(f map[string]any) { model(f)["merges"].([]any)[0] = "a b c" }), "two tokens"},
		{"bad-merge-pair", edit(func(f map[string]any) { model(f)["merges"].([]any)[0] = []any{"a"} }), "neither"},
		{"duplicate-merge", edit(func(f map[string]any) {
			model(f)["merges"] = append(model(f)["merges"].([]any), firstMerge(f))
		}), "repeats model.merges[0]"},
		{"duplicate-id", edit(func(f map[string]any) { model(f)["vocab"].(map[string]any)["a"] = 5.0 }), "duplicate id 5"},
		{"missing-id", edit(func(f map[string]any) { delete(model(f)["vocab"].(map[string]any), "Ā") }), "some are missing"},
		{"missing-byte", edit(func(f map[string]any) {
			// Byte 0x00 ("Ā") renamed: every id is still there.
			v := model(f)["vocab"].(map[string]any)
			v["ĀĀĀ"] = v["Ā"]
			delete(v, "Ā")
		}), `no token "Ā" for byte 0x00`},
		{"not-byte-level-token", edit(func(f map[string]any) {
			model(f)["vocab"].(map[string]any)["a b"] = float64(len(model(f)["vocab"].(map[string]any)))
		}), "not byte-level"},
		{"whitespace-pretokenizer", edit(func(f map[string]any) { f["pre_tokenizer"] = map[string]any{"type": "Whitespace"} }), `pre_tokenizer is "Whitespace", want "ByteLevel"`},
		{"sequence-pretokenizer", edit(func(f map[string]any) {
			f["pre_tokenizer"] = map[string]any{"type": "Sequence", "pretokenizers": []any{}}
		}), `pre_tokenizer is "Sequence"`},
		{"no-pretokenizer", edit(func(f map[string]any) { f["pre_tokenizer"] = nil }), "pre_tokenizer is missing"},
		{"prefix-space", edit(func(f map[string]any) { f["pre_tokenizer"].(map[string]any)["add_prefix_space"] = true }), "add_prefix_space"},
		{"no-regex", edit(func(f map[string]any) { f["pre_tokenizer"].(map[string]any)["use_regex"] = false }), "use_regex"},
		{"metaspace-decoder", edit(func(f map[string]any) { f["decoder"] = map[string]any{"type": "Metaspace"} }), `decoder is "Metaspace"`},
		{"template-processor", edit(func(f map[string]any) { f["post_processor"] = map[string]any{"type": "TemplateProcessing"} }), `post_processor is "TemplateProcessing"`},
		{"normalizer", edit(func(f map[string]any) { f["normalizer"] = map[string]any{"type": "NFC"} }), `normalizer "NFC"`},
		{"truncation", edit(func(f map[string]any) { f["truncation"] = map[string]any{"max_length": 512} }), "truncation"},
		{"dropout", edit(func(f map[string]any) { model(f)["dropout"] = 0.1 }), "dropout"},
		{"suffix", edit(func(f map[string]any) { model(f)["end_of_word_suffix"] = "</w>" }), "end_of_word_suffix"},
		{"no-eot", edit(func(f map[string]any) { f["added_tokens"] = []any{} }), `no "<|endoftext|>"`},
		{"other-added", edit(func(f map[string]any) {
			f["added_tokens"] = append(f["added_tokens"].([]any), map[string]any{"id": 1, "content": "<pad>", "special": true})
		}), `"<pad>" is not supported`},
		{"eot-id-mismatch", edit(func(f map[string]any) { f["added_tokens"].([]any)[0].(map[string]any)["id"] = 7 }), "has id 7"},
	}
	for _, c := range cases {
		path := filepath.Join(dir, c.name+".json")
		if c.content != nil {
			if err := os.WriteFile(path, c.content, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		_, err := ReadFile(path)
		if err == nil {
			t.Errorf("%s: ReadFile accepted the file", c.name)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, path) || !strings.Contains(msg, c.want) {
			t.Errorf("%s: error %q, want the path and %q", c.name, msg, c.want)
		}
		if strings.Contains(msg, "\n") || strings.Contains(msg, "Go ") {
			t.Errorf("%s: error spans lines or names a Go type: %q", c.name, msg)
		}
	}
}

func TestReadFileOversizedAndNotRegular(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.json")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: no disk is used, and the size is refused before reading.
	if err := f.Truncate(MaxFileSize + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := ReadFile(big); err == nil || !strings.Contains(err.Error(), big) || !strings.Contains(err.Error(), "exceeds") {
		t.Errorf("oversized file: error %v, want the path and the limit", err)
	}
	if _, err := ReadFile(dir); err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("folder: error %v, want the path and not a regular file", err)
	}
}

// TestParseNeverPanics feeds Parse every prefix of a good file, and some
// odd values, which must all be refused or accepted without a panic.
func TestParseNeverPanics(t *testing.T) {
	raw, err := Train([]string{"hello world"}, MinVocabSize+4)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := raw.Marshal()
	for n := 0; n < len(b); n += 97 {
		if _, err := Parse(b[:n]); err == nil {
			t.Fatalf("Parse accepted a file cut at %d bytes", n)
		}
	}
	for _, s := range []string{`null`, `""`, `{"version":null,"model":null}`, `{"version":"1.0","model":[]}`,
		`{"version":"1.0","model":{"type":"BPE","vocab":[],"merges":[]}}`,
		`{"version":"1.0","pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false},"decoder":{"type":"ByteLevel"},"added_tokens":[{"id":0,"content":"<|endoftext|>","special":true}],"model":{"type":"BPE","vocab":{"<|endoftext|>":-1},"merges":[]}}`,
		`{"version":"1.0","pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false},"decoder":{"type":"ByteLevel"},"added_tokens":[{"id":0,"content":"<|endoftext|>","special":true}],"model":{"type":"BPE","vocab":{"<|endoftext|>":1e30},"merges":[]}}`,
		`{"version":"1.0","pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false},"decoder":{"type":"ByteLevel"},"added_tokens":[{"id":0,"content":"<|endoftext|>","special":true}],"model":{"type":"BPE","vocab":{"<|endoftext|>":"0"},"merges":[]}}`,
	} {
		if _, err := Parse([]byte(s)); err == nil {
			t.Errorf("Parse(%s) accepted it", s)
		}
	}
}
