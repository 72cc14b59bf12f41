package text_test

import (
	"fmt"
	"log"
	"strings"

	"github.com/latentlm/latentlm/text"
)

// Example trains a tiny tokenizer: 256 byte tokens, the special token and
// ten merges, enough for the frequent words; encoding splits text into
// pieces, each keeping the space before it, and decoding gives the text
// back.
func Example() {
	docs := []string{
		"the cat sat on the mat",
		"the dog sat on the log",
		"the cat and the dog",
	}
	tok, err := text.Train(docs, text.MinVocabSize+10)
	if err != nil {
		log.Fatal(err)
	}
	ids := tok.Encode("the cat sat")
	var pieces []string
	for _, id := range ids {
		pieces = append(pieces, string(tok.TokenBytes(id)))
	}
	back, err := tok.Decode(ids)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("ids:", tok.Size(), "with <|endoftext|> at", tok.EOT())
	fmt.Println("encoded:", ids)
	fmt.Println("pieces:", strings.Join(pieces, "|"))
	fmt.Println("decoded:", back)
	// Output:
	// ids: 267 with <|endoftext|> at 0
	// encoded: [258 266 265 259]
	// pieces: the| cat| s|at
	// decoded: the cat sat
}
