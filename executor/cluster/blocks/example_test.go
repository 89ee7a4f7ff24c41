package blocks_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"os"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/executor/cluster/blocks"
)

// A producing task puts its output into its worker's store; a task on
// another worker fetches it over Flight; the job's end frees it.
func Example() {
	dir, err := os.MkdirTemp("", "blocks-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	store, err := blocks.NewStore(dir, 64<<20, memory.DefaultAllocator)
	if err != nil {
		log.Fatal(err)
	}
	schema := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil)
	b := array.NewInt64Builder(memory.DefaultAllocator)
	b.AppendValues([]int64{1, 2, 3}, nil)
	col := b.NewArray()
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, 3)
	col.Release()
	b.Release()
	if err := store.Put("j-000001/s0/t0/a0/p0", schema, []arrow.RecordBatch{rec}); err != nil {
		log.Fatal(err)
	}
	rec.Release() // the store keeps its own reference

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := blocks.NewServer(store, blocks.WithToken("cluster-token"))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	defer func() {
		srv.Stop()
		<-served
	}()

	client := blocks.NewClient("cluster-token")
	defer client.Close()
	_, recs, err := client.Fetch(context.Background(), lis.Addr().String(), "j-000001/s0/t0/a0/p0")
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range recs {
		fmt.Println(r.Column(0))
		r.Release()
	}

	fmt.Println("freed:", store.DeletePrefix("j-000001/"))
	// Output:
	// [1 2 3]
	// freed: 1
}
