package blocks

import (
	"context"
	"crypto/tls"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/internal/testcert"
)

// A block server with TLS (client certificates required) serves a client
// with a certificate of its CA, and no plaintext or certificate-less one.
func TestFetchTLS(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	s := newStore(t, 1<<30, mem)
	defer s.DeletePrefix("")
	recs := makeBlock(mem, 10)
	defer release(recs)
	if err := s.Put("j-1/p0", testSchema, recs); err != nil {
		t.Fatal(err)
	}
	cert, pool := testcert.SelfSigned(t)
	_, addr := serve(t, s, WithToken("tok"), WithServerTLS(&tls.Config{Certificates: []tls.Certificate{cert},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS12}))
	ctx := context.Background()

	good := NewClient("tok", WithClientTLS(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}))
	defer good.Close()
	schema, got, err := good.Fetch(ctx, addr, "j-1/p0")
	if err != nil {
		t.Fatal(err)
	}
	if err := sameRows(schema, recs, got); err != nil {
		t.Fatal(err)
	}
	release(got)

	for name, c := range map[string]*Client{
		"plaintext":          NewClient("tok"),
		"no client cert":     NewClient("tok", WithClientTLS(&tls.Config{RootCAs: pool})),
		"server not trusted": NewClient("tok", WithClientTLS(&tls.Config{Certificates: []tls.Certificate{cert}})),
	} {
		if _, got, err := c.Fetch(ctx, addr, "j-1/p0"); err == nil {
			release(got)
			t.Errorf("%s client fetched a block", name)
		}
		c.Close()
	}
}
