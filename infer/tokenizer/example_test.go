package tokenizer_test

import (
	"fmt"
	"log"

	"github.com/sluicehq/sluice/infer/tokenizer"
)

func Example() {
	// testdata/tiny_sp is a hand-written SentencePiece-style tokenizer; a
	// model directory with tokenizer.json and tokenizer_config.json loads
	// the same way.
	tok, err := tokenizer.Load("testdata/tiny_sp")
	if err != nil {
		log.Fatal(err)
	}
	ids := tok.Encode("hello world", true)
	fmt.Println(ids)
	fmt.Printf("%q\n", tok.Decode(ids, true))

	prompt, err := tok.ApplyChatTemplate([]tokenizer.Message{{Role: "user", Content: "hello"}}, true)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%q\n", prompt)

	stream := tok.NewDecoder(nil, true)
	for _, id := range ids {
		fmt.Printf("%q ", stream.Add(id))
	}
	fmt.Println()
	// Output:
	// [1 271 276]
	// "hello world"
	// "<s>[user] hello\n[assistant] "
	// "" "hello" " world"
}
