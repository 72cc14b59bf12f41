package text

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestHuggingFace compares Encode, Decode and the written file with
// Hugging Face's tokenizers library, through the Node bindings and
// scripts/tokenizer/check_hf.mjs. It is a maintainer check, skipped unless
// LATENTLM_HF_CHECK=1; LATENTLM_HF_NODE_PATH names the node_modules folder
// where the npm package tokenizers is installed (see
// scripts/tokenizer/README.md).
func TestHuggingFace(t *testing.T) {
	if os.Getenv("LATENTLM_HF_CHECK") != "1" {
		t.Skip("maintainer check: set LATENTLM_HF_CHECK=1 and LATENTLM_HF_NODE_PATH (see scripts/tokenizer/README.md)")
	}
	nodePath := os.Getenv("LATENTLM_HF_NODE_PATH")
	if nodePath == "" {
		t.Fatal("LATENTLM_HF_NODE_PATH is not set: point it at the node_modules folder holding the npm package tokenizers")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is needed: %v", err)
	}

	// The fortunes tokenizer the project trains, when the corpus is there.
	corpus, vocab, valid := testCorpus, 400, []string(nil)
	if train, v, err := Fortunes(FortunesDir); err == nil {
		corpus, vocab, valid = train, 2048, v
	} else {
		t.Logf("training on the test corpus: %v", err)
	}
	tok, err := Train(corpus, vocab)
	if err != nil {
		t.Fatal(err)
	}
	strs := hfStrings(corpus, valid)

	dir := t.TempDir()
	tokPath := filepath.Join(dir, "tokenizer.json")
	if err := tok.WriteFile(tokPath); err != nil {
		t.Fatal(err)
	}
	var lines bytes.Buffer
	for _, s := range strs {
		b, _ := json.Marshal(s)
		lines.Write(b)
		lines.WriteByte('\n')
	}
	strPath := filepath.Join(dir, "strings.jsonl")
	if err := os.WriteFile(strPath, lines.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	resave := filepath.Join(dir, "resaved.json")
	cmd := exec.Command(node, filepath.Join("..", "scripts", "tokenizer", "check_hf.mjs"), tokPath, strPath, resave)
	cmd.Env = append(os.Environ(), "NODE_PATH="+nodePath)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("check_hf.mjs: %v\n%s", err, stderr.Bytes())
	}

	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<24)
	i, bad := 0, 0
	for ; sc.Scan(); i++ {
		if i >= len(strs) {
			t.Fatalf("check_hf.mjs printed more lines than the %d strings", len(strs))
		}
		var got struct {
			IDs  []int  `json:"ids"`
			Text string `json:"text"`
		}
		if err := json.Unmarshal(sc.Bytes(), &got); err != nil {
			t.Fatalf("line %d of check_hf.mjs: %v", i+1, err)
		}
		s := strs[i]
		want := tok.Encode(s)
		if !slices.Equal(got.IDs, want) {
			bad++
			t.Errorf("Encode(%q):\n ours %v\n   HF %v", s, want, got.IDs)
		}
		if got.Text != s {
			bad++
			t.Errorf("HF decodes the ids of %q to %q", s, got.Text)
		}
	}
	if i != len(strs) {
		t.Fatalf("check_hf.mjs printed %d lines for %d strings", i, len(strs))
	}
	ours, _ := os.ReadFile(tokPath)
	theirs, err := os.ReadFile(resave)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ours, theirs) {
		t.Errorf("tokenizers saves the file differently from WriteFile (%d bytes, ours %d)", len(theirs), len(ours))
	}
	t.Logf("%d strings, %d mismatches, vocabulary of %d; file saved by tokenizers identical: %v", len(strs), bad, tok.Size(), bytes.Equal(ours, theirs))
}

// hfStrings returns the strings compared: the test tables, captions,
// fortunes and their lines, and random mixtures of the characters the
// split pattern treats differently. The literal "<|endoftext|>" is left
// out: tokenizers matches it as the special token, Encode on purpose does
// not.
func hfStrings(train, valid []string) []string {
	var out []string
	add := func(s string) {
		if utf8.ValidString(s) && !strings.Contains(s, EndOfText) {
			out = append(out, s)
		}
	}
	for _, c := range preTokenCases {
		add(c.in)
	}
	for _, s := range roundTripCases {
		add(s)
	}
	for _, s := range testCorpus {
		add(s)
	}
	for d := range 10 {
		add(fmt.Sprintf("a handwritten digit %d", d))
	}
	for _, c := range []string{"T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"} {
		add("a photo of a " + c)
		add(strings.ToUpper(c[:1]) + c[1:] + ", seen from the side.")
	}
	for i, f := range valid {
		if i >= 150 {
			break
		}
		add(f)
	}
	for i := 0; i < len(train) && i < 2000; i += 40 {
		for line := range strings.Lines(train[i]) {
			add(line)
		}
	}
	pool := []string{
		"a", "b", "Z", "word", "it", "s", "t", "re", "ll", "'", "'s", "'ll", "'RE", " ", " ", "  ", "\t", "\n", "\r\n",
		"0", "42", "3.14", ",", ".", "!", "?", "--", "(", ")", "\"", "#", "<", "|", ">",
		"é", "e\u0301", "ß", "中", "文", "日本", "한", "Ω", "ж", "ع", "א",
		"👍", "🏽", "😀", "\u200d", "🇫🇷", "\u00a0", "\u3000", "\u2028", "\u0085", "\u200b", "\u000b", "\f",
		"Ⅻ", "½", "١", "²", "\u0000", "\u007f", "\ufffd", "\u00ad",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 250 {
		var sb strings.Builder
		for range 1 + rng.IntN(24) {
			sb.WriteString(pool[rng.IntN(len(pool))])
		}
		add(sb.String())
	}
	return out
}
