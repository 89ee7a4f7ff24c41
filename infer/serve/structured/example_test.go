package structured_test

import (
	"fmt"

	"github.com/sluicehq/sluice/infer/serve/structured"
)

func Example() {
	g, err := structured.Schema([]byte(`{"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}`))
	if err != nil {
		panic(err)
	}
	p := g.Start()
	fmt.Println(p.Feed([]byte(`{"ok":tr`)), p.Done())
	fmt.Println(p.Feed([]byte(`ue}`)), p.Done())
	fmt.Println(g.Start().Feed([]byte(`{"no":1}`)))
	// Output:
	// true false
	// true true
	// false
}
