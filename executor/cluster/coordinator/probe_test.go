package coordinator

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/internal/testcert"
)

// Trailing data after a JSON body is refused with 400; an oversized body
// sent through a follower answers 413, and the client does not retry it.
func TestBadBodies(t *testing.T) {
	h := start(t, 2)
	l := h.leader()
	var f *Coordinator
	for _, c := range h.nodes {
		if c != l {
			f = c
		}
	}
	post := func(url, body string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, url+"/v1/jobs", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	plan := `{"file":"p.yaml","plan":"name: p\nread: {parquet: x/}\nwrite: {parquet: y/}\n"}`
	for _, body := range []string{plan + "garbage", plan + `{"plan":"x"}`, plan + " ]"} {
		if code, msg := post(l.URL(), body); code != http.StatusBadRequest || !strings.Contains(msg, "trailing") {
			t.Errorf("body %q: %d %s, want 400 naming the trailing data", body[len(plan):], code, msg)
		}
	}
	if code, msg := post(l.URL(), plan+" \n"); code != http.StatusOK {
		t.Errorf("trailing white space: %d %s", code, msg)
	}
	cl := api.NewClient([]string{f.URL()}, token) // Retry: 30 s
	big := api.SubmitRequest{File: "p.yaml", Plan: strings.Repeat("#", api.MaxBody+1)}
	err := cl.Do(context.Background(), http.MethodPost, "/v1/jobs", big, nil)
	if err == nil || errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "413") {
		t.Fatalf("oversized body through the follower: %v, want a 413 answered at once", err)
	}
}

// A client that does not trust the coordinators' certificate fails at
// once with the certificate error, without retrying.
func TestCertificateErrorNotRetried(t *testing.T) {
	cert, pool := testcert.SelfSigned(t)
	h := startWith(t, 1, func(c *Config) {
		c.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		c.ClientTLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	})
	cl := api.NewClient(h.urls(), token)                 // Retry: 30 s
	cl.SetTLS(&tls.Config{MinVersion: tls.VersionTLS12}) // the system's roots
	err := cl.Do(context.Background(), http.MethodGet, "/v1/jobs", nil, nil)
	if err == nil || errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted certificate: %v, want the certificate error at once", err)
	}
}

// The coordinator checks a submitted plan's templates without reading its
// own environment: a template that pasted one of its variables into an
// error sent the value back in the 400 body.
func TestSubmitNeverReadsCoordinatorEnv(t *testing.T) {
	const secret = "coordinator-only-value-42"
	t.Setenv("SLUICE_REGION", secret)
	h := start(t, 1)
	body, _ := json.Marshal(api.SubmitRequest{File: "p.yaml",
		Plan: "name: p\nread: {parquet: x/}\nsteps:\n  - limit: '{{ env \"SLUICE_REGION\" }}'\nwrite: {parquet: y/}\n"})
	req, _ := http.NewRequest(http.MethodPost, h.leader().URL()+"/v1/jobs", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || strings.Contains(string(msg), secret) || !strings.Contains(string(msg), "limit") {
		t.Fatalf("%d %s: want a 400 about the limit, without the coordinator's value", resp.StatusCode, msg)
	}
}
