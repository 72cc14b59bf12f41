package text

import (
	"fmt"
	"slices"
)

// Bounds of Train's vocabSize. The least is the special token and the 256
// bytes, with no merges; the most keeps every id within 16 bits, so token
// streams can be stored as uint16.
const (
	MinVocabSize = 1 + 256
	MaxVocabSize = 1 << 16
)

// Train learns a byte-level BPE of vocabSize ids from docs: EndOfText is id
// 0, byte b is id 1+b, and each merge learned adds the next id.
//
// The docs are split into pre-tokens as GPT-2 does (see Encode), and the
// distinct pre-tokens counted. Then, until the vocabulary is full, the
// adjacent pair of tokens that occurs most often (each pre-token counted as
// often as it occurs) is merged everywhere, left to right. Training is
// deterministic: among equally frequent pairs the one with the smallest
// (left id, right id) wins, so the same docs give the same tokenizer.json,
// byte for byte.
//
// Pair counts are updated incrementally, touching only the pre-tokens that
// hold the merged pair, and the most frequent pair comes from a heap whose
// stale entries are skipped, as in Hugging Face's BpeTrainer: the 2.4 MB
// of the fortunes training split train to 2048 ids in well under a second.
//
// When no pair is left to merge (every pre-token is a single token) training
// stops early, and Size is less than vocabSize. If two merges spell the same
// bytes (possible, rarely, through different pairs), the second reuses the
// first's id, as Hugging Face does, so there may be more merges than ids
// above 256.
func Train(docs []string, vocabSize int) (*Tokenizer, error) {
	if vocabSize < MinVocabSize || vocabSize > MaxVocabSize {
		return nil, fmt.Errorf("training a tokenizer: vocabulary size %d is out of range [%d, %d] (the special token, the 256 bytes, then merges)", vocabSize, MinVocabSize, MaxVocabSize)
	}
	freqOf := make(map[string]int64)
	for _, d := range docs {
		for p := range preTokens(d) {
			freqOf[p]++
		}
	}
	// Sorted only so that the working order is reproducible too; the result
	// does not depend on it.
	keys := make([]string, 0, len(freqOf))
	for k := range freqOf {
		keys = append(keys, k)
	}
	slices.Sort(keys)

	tokens := make([][]byte, 1+256, vocabSize)
	ids := make(map[string]int32, vocabSize)
	for b := range 256 {
		tokens[1+b] = []byte{byte(b)}
		ids[string(tokens[1+b])] = int32(1 + b)
	}
	words := make([][]int32, len(keys))
	freq := make([]int64, len(keys))
	counts := make(map[pair]int64)
	where := make(map[pair][]int32) // words that held the pair (maybe no longer)
	addWhere := func(p pair, w int32) {
		if l := where[p]; len(l) == 0 || l[len(l)-1] != w {
			where[p] = append(l, w)
		}
	}
	for w, k := range keys {
		word := make([]int32, len(k))
		for i := range len(k) {
			word[i] = int32(1 + int(k[i]))
		}
		words[w], freq[w] = word, freqOf[k]
		for i := 0; i+1 < len(word); i++ {
			p := mkpair(word[i], word[i+1])
			counts[p] += freq[w]
			addWhere(p, int32(w))
		}
	}

	// A max-heap by count, ties to the smaller pair: packed pairs compare as
	// (left, right). An entry is current if its count is the pair's count;
	// every change of a count pushes a new entry.
	type entry struct {
		count int64
		p     pair
	}
	before := func(x, y entry) bool {
		if x.count != y.count {
			return x.count > y.count
		}
		return x.p < y.p
	}
	var h []entry
	for p, c := range counts {
		h = heapPush(h, entry{c, p}, before)
	}

	var merges []merge
	stamp := make([]int, len(words)) // 1 + the merge that last visited a word
	delta := make(map[pair]int64)
	for len(tokens) < vocabSize {
		var best entry
		found := false
		for len(h) > 0 {
			best, h = heapPop(h, before)
			if best.count > 0 && counts[best.p] == best.count {
				found = true
				break
			}
		}
		if !found {
			break // nothing left to merge
		}
		a, b := int32(best.p>>32), int32(uint32(best.p))
		joined := append(slices.Clip(tokens[a]), tokens[b]...)
		id, ok := ids[string(joined)]
		if !ok {
			id = int32(len(tokens))
			tokens = append(tokens, joined)
			ids[string(joined)] = id
		}
		merges = append(merges, merge{a, b, id})

		clear(delta)
		for _, w := range where[best.p] {
			if stamp[w] == len(merges) {
				continue
			}
			stamp[w] = len(merges)
			word, f := words[w], freq[w]
			if !hasPair(word, a, b) {
				continue
			}
			for i := 0; i+1 < len(word); i++ {
				delta[mkpair(word[i], word[i+1])] -= f
			}
			word = mergeWord(word, a, b, id)
			for i := 0; i+1 < len(word); i++ {
				p := mkpair(word[i], word[i+1])
				delta[p] += f
				if word[i] == id || word[i+1] == id {
					addWhere(p, w)
				}
			}
			words[w] = word
		}
		delete(where, best.p) // no (a, b) is left anywhere
		for p, d := range delta {
			if d == 0 {
				continue
			}
			c := counts[p] + d
			if c <= 0 {
				delete(counts, p)
				continue
			}
			counts[p] = c
			h = heapPush(h, entry{c, p}, before)
		}
	}
	return newTokenizer(tokens, 0, merges, false), nil
}

func hasPair(word []int32, a, b int32) bool {
	for i := 0; i+1 < len(word); i++ {
		if word[i] == a && word[i+1] == b {
			return true
		}
	}
	return false
}

// mergeWord replaces each (a, b) in word, left to right without overlap,
// by id, in place, and returns the shortened word.
func mergeWord(word []int32, a, b, id int32) []int32 {
	j := 0
	for i := 0; i < len(word); j++ {
		if i+1 < len(word) && word[i] == a && word[i+1] == b {
			word[j] = id
			i += 2
		} else {
			word[j] = word[i]
			i++
		}
	}
	return word[:j]
}
