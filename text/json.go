package text

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/latentlm/latentlm/internal/atomicfile"
	"github.com/latentlm/latentlm/internal/boundedio"
	"github.com/latentlm/latentlm/internal/jsonerr"
)

// MaxFileSize bounds the tokenizer.json files ReadFile reads. Ours are tens
// of kilobytes; the largest published ones (vocabularies of 256k tokens)
// are some tens of megabytes.
const MaxFileSize = 64 << 20

// byteLevel is the ByteLevel component as Hugging Face serializes it; the
// same object serves as pre-tokenizer, post-processor and decoder.
const byteLevel = `{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true}`

// WriteFile stores t at path as a Hugging Face tokenizer.json, atomically
// (a temporary file in the same folder, renamed over path), so a crash
// leaves the old file or the new one. See Marshal for the format.
func (t *Tokenizer) WriteFile(path string) error {
	b, err := t.Marshal()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return atomicfile.WriteBytes(path, b)
}

// Marshal returns t as a Hugging Face tokenizer.json: byte for byte what
// the tokenizers library writes (Tokenizer.save with pretty=false) for a
// byte-level BPE with EndOfText as its one added token. Vocabulary entries
// are in id order; merges use the pair form [["a","b"], ...] of tokenizers
// 0.20 and later (Parse also reads the older "a b" form).
func (t *Tokenizer) Marshal() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"version":"1.0","truncation":null,"padding":null,"added_tokens":[{"id":`)
	b.WriteString(strconv.Itoa(t.eot))
	b.WriteString(`,"content":`)
	writeJSONString(&b, EndOfText)
	b.WriteString(`,"single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}],"normalizer":null,"pre_tokenizer":`)
	b.WriteString(byteLevel)
	b.WriteString(`,"post_processor":`)
	b.WriteString(byteLevel)
	b.WriteString(`,"decoder":`)
	b.WriteString(byteLevel)
	b.WriteString(`,"model":{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,"end_of_word_suffix":null,"fuse_unk":false,"byte_fallback":false,"ignore_merges":`)
	b.WriteString(strconv.FormatBool(t.ignoreMerges))
	b.WriteString(`,"vocab":{`)
	for id, tok := range t.tokens {
		if id > 0 {
			b.WriteByte(',')
		}
		s := EndOfText
		if id != t.eot {
			s = byteLevelString(tok)
			if s == EndOfText {
				// Unreachable from Train (pre-tokens never join "<|" and
				// letters), but a JSON object cannot hold the key twice.
				return nil, fmt.Errorf("token %d spells %q, the special token", id, EndOfText)
			}
		}
		writeJSONString(&b, s)
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(id))
	}
	b.WriteString(`},"merges":[`)
	for i, m := range t.merges {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('[')
		writeJSONString(&b, byteLevelString(t.tokens[m.a]))
		b.WriteByte(',')
		writeJSONString(&b, byteLevelString(t.tokens[m.b]))
		b.WriteByte(']')
	}
	b.WriteString(`]}}`)
	return b.Bytes(), nil
}

// writeJSONString writes s quoted as serde_json does: only '"', '\\' and
// control characters are escaped (encoding/json would also escape '<' and
// '>', which the special token holds).
func writeJSONString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r < 0x20:
			fmt.Fprintf(b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
}

// ReadFile reads a tokenizer.json written by WriteFile or by Hugging Face
// tokenizers; see Parse for what it accepts. Only a regular file of at most
// MaxFileSize bytes is read. Errors name the path.
func ReadFile(path string) (*Tokenizer, error) {
	b, err := boundedio.ReadFile(path, MaxFileSize)
	if err != nil {
		return nil, fmt.Errorf("reading tokenizer %s: %w", path, err)
	}
	t, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	return t, nil
}

// fileJSON is the top level of tokenizer.json. Components are kept raw so
// that each is checked with a message saying which one is unsupported.
type fileJSON struct {
	Version       *string         `json:"version"`
	Truncation    json.RawMessage `json:"truncation"`
	Padding       json.RawMessage `json:"padding"`
	AddedTokens   []addedToken    `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         json.RawMessage `json:"model"`
}

type addedToken struct {
	ID      int    `json:"id"`
	Content string `json:"content"`
	Special bool   `json:"special"`
}

// byteLevelJSON is a ByteLevel component; absent flags take the defaults
// of tokenizers (all true).
type byteLevelJSON struct {
	Type           string `json:"type"`
	AddPrefixSpace *bool  `json:"add_prefix_space"`
	UseRegex       *bool  `json:"use_regex"`
}

type modelJSON struct {
	Type                    *string         `json:"type"`
	Dropout                 *float64        `json:"dropout"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
	IgnoreMerges            bool            `json:"ignore_merges"`
	Vocab                   json.RawMessage `json:"vocab"`
	Merges                  json.RawMessage `json:"merges"`
}

// isNull reports whether a raw component is absent or JSON null.
func isNull(m json.RawMessage) bool {
	m = bytes.TrimSpace(m)
	return len(m) == 0 || string(m) == "null"
}

// typeOf returns the "type" of a component object, for messages.
func typeOf(m json.RawMessage) string {
	var v struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(m, &v) != nil || v.Type == "" {
		return "an object without a type"
	}
	return strconv.Quote(v.Type)
}

// Parse reads a tokenizer.json held in memory. It is strict: it accepts
// only what Encode reproduces exactly, that is a byte-level BPE as GPT-2's
// and ours, and it says what else it found: no normalizer, truncation or
// padding; a ByteLevel pre-tokenizer with GPT-2's split (use_regex) and no
// added prefix space; a ByteLevel decoder; no post-processor other than
// ByteLevel; a BPE model without dropout or subword affixes whose vocab has
// ids 0..n-1 once each, holds all 256 byte tokens and EndOfText as an added
// special token, and whose merges join tokens of the vocab into tokens of
// the vocab, each pair once. Merges may be written "a b" or ["a","b"].
func Parse(data []byte) (*Tokenizer, error) {
	if !json.Valid(data) {
		var v any
		err := json.Unmarshal(data, &v)
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("not JSON: %v (at byte offset %d)", se, se.Offset)
		}
		return nil, fmt.Errorf("not JSON: %v", err)
	}
	var f fileJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("not a tokenizer.json: %w", jsonerr.Describe(err))
	}
	if f.Version == nil || f.Model == nil {
		return nil, errors.New("not a tokenizer.json: no version or model")
	}
	if *f.Version != "1.0" {
		return nil, fmt.Errorf("tokenizer.json version %q is not supported (want \"1.0\")", *f.Version)
	}
	if !isNull(f.Truncation) || !isNull(f.Padding) {
		return nil, errors.New("truncation and padding are not supported (they must be null)")
	}
	if !isNull(f.Normalizer) {
		return nil, fmt.Errorf("normalizer %s is not supported (it must be null)", typeOf(f.Normalizer))
	}
	if err := checkByteLevel("pre_tokenizer", f.PreTokenizer, true); err != nil {
		return nil, err
	}
	if err := checkByteLevel("decoder", f.Decoder, false); err != nil {
		return nil, err
	}
	if !isNull(f.PostProcessor) {
		if err := checkByteLevel("post_processor", f.PostProcessor, false); err != nil {
			return nil, err
		}
	}

	var m modelJSON
	if err := json.Unmarshal(f.Model, &m); err != nil {
		return nil, fmt.Errorf("model: %w", jsonerr.Describe(err))
	}
	if m.Type == nil || *m.Type != "BPE" {
		kind := "no type"
		if m.Type != nil {
			kind = strconv.Quote(*m.Type)
		}
		return nil, fmt.Errorf("not a BPE tokenizer: the model has %s, want \"BPE\"", kind)
	}
	if m.Dropout != nil && *m.Dropout != 0 {
		return nil, fmt.Errorf("model: BPE dropout %g is not supported (encoding would be random)", *m.Dropout)
	}
	if m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "" ||
		m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "" {
		return nil, errors.New("model: continuing_subword_prefix and end_of_word_suffix are not supported in a byte-level BPE")
	}
	if isNull(m.Vocab) {
		return nil, errors.New("model: missing vocab")
	}
	vocab, err := parseVocab(m.Vocab)
	if err != nil {
		return nil, fmt.Errorf("model.vocab: %w", err)
	}

	eot := -1
	for i, a := range f.AddedTokens {
		if a.Content != EndOfText {
			return nil, fmt.Errorf("added_tokens[%d] %q is not supported (only %q is)", i, a.Content, EndOfText)
		}
		if !a.Special {
			return nil, fmt.Errorf("added_tokens[%d] %q is not marked special", i, a.Content)
		}
		if eot >= 0 {
			return nil, fmt.Errorf("added_tokens[%d]: %q appears twice", i, a.Content)
		}
		id, ok := vocab.ids[EndOfText]
		if !ok || id != a.ID {
			return nil, fmt.Errorf("added_tokens[%d]: %q has id %d, but model.vocab gives it %s", i, a.Content, a.ID, idOrNone(id, ok))
		}
		eot = id
	}
	if eot < 0 {
		return nil, fmt.Errorf("no %q among added_tokens", EndOfText)
	}

	tokens := make([][]byte, len(vocab.tokens))
	byteLevelIDs := make(map[string]int, len(vocab.tokens))
	for id, s := range vocab.tokens {
		if id == eot {
			continue
		}
		b, ok := byteLevelBytes(s)
		if !ok {
			return nil, fmt.Errorf("model.vocab: token %q (id %d) is not byte-level (a character outside GPT-2's byte alphabet)", s, id)
		}
		if len(b) == 0 {
			return nil, fmt.Errorf("model.vocab: empty token (id %d)", id)
		}
		tokens[id] = b
		byteLevelIDs[s] = id
	}
	for c := range 256 {
		if _, ok := byteLevelIDs[string(byteRune[c])]; !ok {
			return nil, fmt.Errorf("model.vocab: no token %q for byte 0x%02x: not a byte-level vocabulary", string(byteRune[c]), c)
		}
	}

	merges, err := parseMerges(m.Merges, byteLevelIDs)
	if err != nil {
		return nil, err
	}
	return newTokenizer(tokens, eot, merges, m.IgnoreMerges), nil
}

func idOrNone(id int, ok bool) string {
	if !ok {
		return "none"
	}
	return strconv.Itoa(id)
}

// checkByteLevel checks that component name is a ByteLevel one; for the
// pre-tokenizer, also that it splits with GPT-2's pattern and adds no
// prefix space, since Encode does exactly that.
func checkByteLevel(name string, raw json.RawMessage, pre bool) error {
	if isNull(raw) {
		return fmt.Errorf("%s is missing: not a byte-level tokenizer", name)
	}
	var c byteLevelJSON
	if err := json.Unmarshal(raw, &c); err != nil {
		return fmt.Errorf("%s: %w", name, jsonerr.Describe(err))
	}
	if c.Type != "ByteLevel" {
		return fmt.Errorf("%s is %s, want \"ByteLevel\": not a byte-level tokenizer", name, typeOf(raw))
	}
	if pre {
		if c.AddPrefixSpace == nil || *c.AddPrefixSpace {
			return fmt.Errorf("%s: add_prefix_space is not supported (it must be false)", name)
		}
		if c.UseRegex != nil && !*c.UseRegex {
			return fmt.Errorf("%s: use_regex false is not supported (GPT-2's split is)", name)
		}
	}
	return nil
}

// vocabJSON is a vocab object: tokens[id] is the string of each id.
type vocabJSON struct {
	tokens []string
	ids    map[string]int
}

// parseVocab reads a vocab object token by token, since encoding/json
// would silently keep the last of two equal keys.
func parseVocab(raw json.RawMessage) (vocabJSON, error) {
	v := vocabJSON{ids: make(map[string]int)}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return v, errors.New("not an object of token: id")
	}
	byID := make(map[int]string)
	maxID := -1
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return v, err
		}
		key, ok := k.(string)
		if !ok {
			return v, errors.New("not an object of token: id")
		}
		val, err := dec.Token()
		if err != nil {
			return v, err
		}
		num, ok := val.(json.Number)
		if !ok {
			return v, fmt.Errorf("token %q: id %v is not a number", key, val)
		}
		id64, err := strconv.ParseInt(num.String(), 10, 32)
		if err != nil || id64 < 0 {
			return v, fmt.Errorf("token %q: id %s is not a non-negative integer", key, num)
		}
		id := int(id64)
		if _, dup := v.ids[key]; dup {
			return v, fmt.Errorf("token %q appears twice", key)
		}
		if other, dup := byID[id]; dup {
			return v, fmt.Errorf("duplicate id %d (tokens %q and %q)", id, other, key)
		}
		v.ids[key] = id
		byID[id] = key
		maxID = max(maxID, id)
	}
	if len(v.ids) == 0 {
		return v, errors.New("empty vocabulary")
	}
	if maxID != len(v.ids)-1 {
		return v, fmt.Errorf("ids are not 0..%d: the largest is %d, so some are missing", len(v.ids)-1, maxID)
	}
	v.tokens = make([]string, len(v.ids))
	for id, s := range byID {
		v.tokens[id] = s
	}
	return v, nil
}

// parseMerges reads the merges list, in either the "a b" or the ["a","b"]
// form, checking each side and their concatenation against the vocab.
func parseMerges(raw json.RawMessage, ids map[string]int) ([]merge, error) {
	if isNull(raw) {
		return nil, errors.New("model: missing merges")
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("model.merges: not a list: %w", jsonerr.Describe(err))
	}
	merges := make([]merge, 0, len(list))
	seen := make(map[pair]int, len(list))
	for i, item := range list {
		var a, b string
		var s string
		var p []string
		if json.Unmarshal(item, &s) == nil {
			parts := strings.Split(s, " ")
			if len(parts) != 2 {
				return nil, fmt.Errorf("model.merges[%d] %q: want two tokens separated by one space", i, s)
			}
			a, b = parts[0], parts[1]
		} else if json.Unmarshal(item, &p) == nil && len(p) == 2 {
			a, b = p[0], p[1]
		} else {
			return nil, fmt.Errorf("model.merges[%d]: %s is neither \"a b\" nor [\"a\",\"b\"]", i, clip(item))
		}
		ia, oka := ids[a]
		ib, okb := ids[b]
		switch {
		case !oka:
			return nil, fmt.Errorf("model.merges[%d] (%q, %q): unknown token %q (not in model.vocab)", i, a, b, a)
		case !okb:
			return nil, fmt.Errorf("model.merges[%d] (%q, %q): unknown token %q (not in model.vocab)", i, a, b, b)
		}
		id, ok := ids[a+b]
		if !ok {
			return nil, fmt.Errorf("model.merges[%d] (%q, %q): the merged token %q is not in model.vocab", i, a, b, a+b)
		}
		pr := mkpair(int32(ia), int32(ib))
		if j, dup := seen[pr]; dup {
			return nil, fmt.Errorf("model.merges[%d] (%q, %q) repeats model.merges[%d]", i, a, b, j)
		}
		seen[pr] = i
		merges = append(merges, merge{int32(ia), int32(ib), int32(id)})
	}
	return merges, nil
}

// clip shortens raw JSON for an error message.
func clip(raw json.RawMessage) string {
	const n = 40
	if len(raw) <= n {
		return string(raw)
	}
	return string(raw[:n]) + "..."
}
