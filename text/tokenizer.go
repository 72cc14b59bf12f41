// Package text holds LatentLM's text side: a byte-level BPE tokenizer stored
// as a Hugging Face tokenizer.json, and the text corpora it is trained on.
//
// # Tokenizer
//
// Byte-pair encoding (Sennrich, Haddow and Birch, "Neural Machine
// Translation of Rare Words with Subword Units", 2016,
// https://arxiv.org/abs/1508.07909) starts from single symbols and
// repeatedly merges the most frequent adjacent pair into a new symbol. The
// byte-level variant of GPT-2 (Radford et al., "Language Models are
// Unsupervised Multitask Learners", 2019) starts from the 256 byte values
// instead of characters, so every string, in any script, encodes without
// an unknown token, and first splits text into pre-tokens (words with
// their leading space, runs of digits, of punctuation, of whitespace) so
// that merges never cross a word boundary.
//
// No maintained pure-Go library trains and reads tokenizer.json, so this
// package is a compact one: Train learns a tokenizer, Encode and Decode use
// it, WriteFile and ReadFile store it in the format Hugging Face's tokenizers
// library writes for a byte-level BPE, and read such files strictly,
// refusing what they would encode differently. The scripts/tokenizer folder
// holds a maintainer check that compares Encode with the Hugging Face
// library itself.
//
// # Corpora
//
// Fortunes reads Debian's fortunes package as a small English corpus with a
// fixed train/validation split; ReadFiles reads a user's own text files.
// BitsPerByte turns a model's loss into a figure that compares across
// tokenizers.
package text

import (
	"fmt"
	"slices"
	"sync"
	"unicode/utf8"
)

// EndOfText is the special token that separates documents. Train gives it
// id 0; Encode never emits it for plain text.
const EndOfText = "<|endoftext|>"

// Tokenizer is a byte-level BPE tokenizer, made by Train or ReadFile (the
// zero value is not usable). Its methods are safe for concurrent use.
type Tokenizer struct {
	// tokens[id] holds the bytes of each id; nil for the special token.
	tokens [][]byte
	// ids maps the bytes of every byte-level token to its id.
	ids    map[string]int
	byteID [256]int32
	eot    int
	// merges in rank order (rank = index), and their index by pair.
	merges []merge
	rank   map[pair]rankID
	// ignoreMerges is the BPE option of that name (Llama 3 sets it): a
	// pre-token that is itself in the vocabulary encodes to its id without
	// merging. Train never sets it; ReadFile keeps it.
	ignoreMerges bool

	mu    sync.Mutex
	cache map[string][]int32
}

// merge is one BPE merge: tokens a and b (adjacent, in that order) become
// token id.
type merge struct{ a, b, id int32 }

// pair is two adjacent token ids, packed for use as a map key.
type pair uint64

func mkpair(a, b int32) pair { return pair(uint64(uint32(a))<<32 | uint64(uint32(b))) }

// rankID is a merge's rank (lower merges first) and the id it makes.
type rankID struct{ rank, id int32 }

// cacheLimit bounds the per-pre-token cache of Encode; when full it is
// emptied, which costs only speed. Pre-tokens longer than cacheMaxLen bytes
// (runs of letters with no space, ASCII art) are rare and would pin memory,
// so they are not cached (Hugging Face's BPE does the same).
const (
	cacheLimit  = 1 << 16
	cacheMaxLen = 256
)

// newTokenizer returns a tokenizer over tokens (nil for the special token
// at eot) and merges, building the indexes. The caller has checked them.
func newTokenizer(tokens [][]byte, eot int, merges []merge, ignoreMerges bool) *Tokenizer {
	t := &Tokenizer{
		tokens:       tokens,
		ids:          make(map[string]int, len(tokens)),
		eot:          eot,
		merges:       merges,
		rank:         make(map[pair]rankID, len(merges)),
		ignoreMerges: ignoreMerges,
	}
	for id, b := range tokens {
		if id == eot {
			continue
		}
		t.ids[string(b)] = id
		if len(b) == 1 {
			t.byteID[b[0]] = int32(id)
		}
	}
	for r, m := range merges {
		t.rank[mkpair(m.a, m.b)] = rankID{int32(r), m.id}
	}
	return t
}

// Size returns the number of ids, the special token included.
func (t *Tokenizer) Size() int { return len(t.tokens) }

// EOT returns the id of EndOfText: 0 for a tokenizer from Train, whatever
// the file says for one from ReadFile.
func (t *Tokenizer) EOT() int { return t.eot }

// TokenBytes returns a copy of the raw bytes of id: empty for EndOfText and
// for an id out of range. A token may hold part of a multi-byte UTF-8
// character, so a caller streaming text buffers bytes until they form
// valid UTF-8 (utf8.Valid, or utf8.FullRune on the tail).
func (t *Tokenizer) TokenBytes(id int) []byte {
	if id < 0 || id >= len(t.tokens) {
		return nil
	}
	return slices.Clone(t.tokens[id])
}

// Encode returns the ids of s. It works on bytes, so it accepts any string:
// for valid UTF-8 it gives exactly the ids Hugging Face tokenizers gives for
// the same tokenizer.json, except that the literal text "<|endoftext|>" is
// encoded as ordinary text, never as the EndOfText id (which callers add
// themselves between documents, so text cannot forge a document boundary).
// Bytes that are not UTF-8 still encode, one byte-level character each, and
// Decode returns them unchanged; callers that want only text refuse such
// input first with CheckUTF8.
func (t *Tokenizer) Encode(s string) []int {
	var ids []int
	for piece := range preTokens(s) {
		for _, id := range t.encodePiece(piece) {
			ids = append(ids, int(id))
		}
	}
	return ids
}

// encodePiece returns the ids of one pre-token, from the cache when it has
// been seen. The returned slice is shared: callers must not modify it.
func (t *Tokenizer) encodePiece(piece string) []int32 {
	if t.ignoreMerges {
		if id, ok := t.ids[piece]; ok {
			return []int32{int32(id)}
		}
	}
	t.mu.Lock()
	ids, ok := t.cache[piece]
	t.mu.Unlock()
	if ok {
		return ids
	}
	ids = t.bpe(piece)
	if len(piece) > cacheMaxLen {
		return ids
	}
	t.mu.Lock()
	if t.cache == nil || len(t.cache) >= cacheLimit {
		t.cache = make(map[string][]int32)
	}
	t.cache[piece] = ids
	t.mu.Unlock()
	return ids
}

// symbol is one token of a pre-token being merged, in a linked list over
// the positions of its bytes so that a merge leaves the other positions in
// place.
type symbol struct {
	id         int32
	prev, next int32 // positions; -1 at the ends
	gone       bool  // merged into the symbol on its left
}

// candidate is a merge that may apply at position pos.
type candidate struct{ rank, pos, id int32 }

func (c candidate) less(d candidate) bool {
	if c.rank != d.rank {
		return c.rank < d.rank
	}
	return c.pos < d.pos
}

// bpe applies the merges to one pre-token as Hugging Face's BPE model does
// (Word::merge_all): start from its bytes, and repeatedly apply the merge of
// lowest rank among the adjacent pairs, the leftmost one on a tie, until no
// adjacent pair has a merge. A min-heap of candidates holds every pair that
// had a merge when it became adjacent; entries that a later merge made
// stale are skipped when popped.
func (t *Tokenizer) bpe(piece string) []int32 {
	if piece == "" {
		return nil
	}
	syms := make([]symbol, len(piece))
	for i := range len(piece) {
		syms[i] = symbol{id: t.byteID[piece[i]], prev: int32(i - 1), next: int32(i + 1)}
	}
	syms[len(syms)-1].next = -1
	var h []candidate
	push := func(pos int32) {
		next := syms[pos].next
		if next < 0 {
			return
		}
		if r, ok := t.rank[mkpair(syms[pos].id, syms[next].id)]; ok {
			h = heapPush(h, candidate{r.rank, pos, r.id}, candidate.less)
		}
	}
	for i := range syms {
		push(int32(i))
	}
	for len(h) > 0 {
		var c candidate
		c, h = heapPop(h, candidate.less)
		s := &syms[c.pos]
		if s.gone || s.next < 0 {
			continue
		}
		// Stale unless the pair there still makes the same token.
		if r, ok := t.rank[mkpair(s.id, syms[s.next].id)]; !ok || r.id != c.id {
			continue
		}
		right := &syms[s.next]
		s.id = c.id
		right.gone = true
		s.next = right.next
		if s.next >= 0 {
			syms[s.next].prev = c.pos
		}
		if s.prev >= 0 {
			push(s.prev)
		}
		push(c.pos)
	}
	var ids []int32
	for i := int32(0); i >= 0; i = syms[i].next {
		ids = append(ids, syms[i].id)
	}
	return ids
}

// heapPush and heapPop keep h a binary heap whose top is the least element
// under less. They are written out rather than taken from container/heap,
// whose interface calls cost more than the merging itself on short
// pre-tokens.
func heapPush[T any](h []T, x T, less func(a, b T) bool) []T {
	h = append(h, x)
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if !less(h[i], h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	return h
}

func heapPop[T any](h []T, less func(a, b T) bool) (T, []T) {
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < n && less(h[l], h[m]) {
			m = l
		}
		if r := l + 1; r < n && less(h[r], h[m]) {
			m = r
		}
		if m == i {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	return top, h
}

// Decode returns the bytes of ids concatenated, as a string; EndOfText
// decodes to nothing. The result is the input of Encode again, byte for
// byte, including any invalid UTF-8 in it; ids from a model's sampling
// may end mid-character, which a caller checks with utf8.ValidString. An
// id out of range is an error naming its position.
func (t *Tokenizer) Decode(ids []int) (string, error) {
	n := 0
	for i, id := range ids {
		if id < 0 || id >= len(t.tokens) {
			return "", fmt.Errorf("decoding: id %d at position %d is out of range [0, %d)", id, i, len(t.tokens))
		}
		n += len(t.tokens[id])
	}
	b := make([]byte, 0, n)
	for _, id := range ids {
		b = append(b, t.tokens[id]...)
	}
	return string(b), nil
}

// CheckUTF8 returns an error naming the byte offset of the first invalid
// UTF-8 in s, or nil. Encode accepts any bytes; commands use this to refuse
// a prompt that is not text with a one-line message rather than train or
// sample on mojibake.
func CheckUTF8(s string) error {
	if utf8.ValidString(s) {
		return nil
	}
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 {
			return fmt.Errorf("invalid UTF-8 at byte offset %d (byte 0x%02x)", i, s[i])
		}
		i += size
	}
	return nil
}
