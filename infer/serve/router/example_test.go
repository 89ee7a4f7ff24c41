package router_test

import (
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/sluicehq/sluice/infer/engine"
	"github.com/sluicehq/sluice/infer/serve"
	"github.com/sluicehq/sluice/infer/serve/router"
)

func Example() {
	// Two replicas over fake engines; real ones are `sluice serve` processes.
	var urls []string
	for range 2 {
		e, err := engine.New(engine.NewFakeRunner(256), engine.FakeTokenizer(), engine.DefaultConfig())
		if err != nil {
			log.Fatal(err)
		}
		defer e.Close()
		s, err := serve.New(e, engine.FakeTokenizer(), serve.DefaultConfig())
		if err != nil {
			log.Fatal(err)
		}
		hs := httptest.NewServer(s.Handler())
		defer hs.Close()
		urls = append(urls, hs.URL)
	}
	cfg := router.DefaultConfig()
	cfg.Replicas = urls
	r, err := router.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	front := httptest.NewServer(r)
	defer front.Close()
	for range 3 {
		resp, err := http.Post(front.URL+"/v1/completions", "application/json", strings.NewReader(`{"prompt": "same prefix", "max_tokens": 2}`))
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
	}
	served := r.Served()
	fmt.Println(served[0]+served[1], served[0] == 0 || served[1] == 0) // one prompt, one replica
	// Output: 3 true
}
