package coordinator

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
	"github.com/sluicehq/sluice/internal/testcert"
)

func servers(t *testing.T, c *Coordinator) map[string]string {
	t.Helper()
	f := c.Raft().GetConfiguration()
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, sv := range f.Configuration().Servers {
		out[string(sv.ID)] = sv.Suffrage.String()
	}
	return out
}

// startLone starts a coordinator that neither bootstraps nor joins, so the
// test makes its join call itself.
func startLone(t *testing.T, id string, edit func(*Config)) *Coordinator {
	cfg := newConfig(t, id)
	edit(&cfg)
	c, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Shutdown() })
	return c
}

// With TLS, a node whose certificate another CA signed is refused at join,
// even with the cluster secret, and the cluster keeps its voters.
func TestJoinRefusesForeignCertificate(t *testing.T) {
	cert, pool := testcert.SelfSigned(t)
	server := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	client := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	h := startWith(t, 2, func(c *Config) { c.TLS, c.ClientTLS = server, client })
	l := h.leader()
	for id, s := range servers(t, l) {
		if s != "Voter" {
			t.Fatalf("%s is %s after joining, want Voter", id, s)
		}
	}

	foreign, _ := testcert.SelfSigned(t) // its own CA
	rogue := startLone(t, "rogue", func(c *Config) {
		c.TLS = &tls.Config{Certificates: []tls.Certificate{foreign}, MinVersion: tls.VersionTLS12}
		c.ClientTLS = client // trusts the cluster, but the cluster does not trust it
	})
	cl := api.NewClient([]string{l.URL()}, secret)
	cl.SetTLS(client)
	cl.Retry = 0
	err := cl.Do(context.Background(), http.MethodPost, "/v1/cluster/join",
		api.JoinRequest{ID: "rogue", RaftAddr: rogue.cfg.RaftAddr, APIAddr: rogue.cfg.APIAddr}, nil)
	if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("join of a node with a foreign certificate: %v", err)
	}
	if s := servers(t, l); len(s) != 2 || s["rogue"] != "" {
		t.Fatalf("servers after the refused join: %v", s)
	}
}

// Without TLS, a node that does not know the cluster secret is refused at
// join, and the client token cannot join a node at all.
func TestJoinRefusesWithoutSecret(t *testing.T) {
	h := start(t, 1)
	l := h.leader()
	rogue := startLone(t, "rogue", func(c *Config) { c.Secret = "another-secret-0123456789" })
	req := api.JoinRequest{ID: "rogue", RaftAddr: rogue.cfg.RaftAddr, APIAddr: rogue.cfg.APIAddr}

	cl := api.NewClient([]string{l.URL()}, token)
	cl.Retry = 0
	if err := cl.Do(context.Background(), http.MethodPost, "/v1/cluster/join", req, nil); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("join with the client token: %v", err)
	}
	cl = api.NewClient([]string{l.URL()}, secret)
	cl.Retry = 0
	err := cl.Do(context.Background(), http.MethodPost, "/v1/cluster/join", req, nil)
	if err == nil || !strings.Contains(err.Error(), "handshake") {
		t.Fatalf("join of a node without the secret: %v", err)
	}
	if s := servers(t, l); len(s) != 1 {
		t.Fatalf("servers after the refused joins: %v", s)
	}
}

// Each worker has its own credential: the token (or another worker's
// credential) can neither heartbeat nor report as a worker, nor register
// over a registered one; the worker's credential serves only its calls.
func TestWorkerCredentials(t *testing.T) {
	h := start(t, 1)
	ctx := context.Background()
	cl := api.NewClient(h.urls(), token)
	cl.Retry = 0
	reg := func(cl *api.Client, id string) (api.RegisterResponse, error) {
		var r api.RegisterResponse
		err := cl.Do(ctx, http.MethodPost, "/v1/workers", api.RegisterRequest{ID: id, Addr: "127.0.0.1:1",
			Resources: state.Resources{CPU: 1}}, &r)
		return r, err
	}
	a, err := reg(cl, "w-a")
	if err != nil || a.Credential == "" {
		t.Fatalf("register w-a: %+v %v", a, err)
	}
	b, err := reg(cl, "w-b")
	if err != nil || b.Credential == "" || b.Credential == a.Credential {
		t.Fatalf("register w-b: %+v %v", b, err)
	}
	beat := func(tok, id string) error {
		c := api.NewClient(h.urls(), tok)
		c.Retry = 0
		return c.Do(ctx, http.MethodPost, "/v1/workers/"+id+"/heartbeat", nil, nil)
	}
	if err := beat(a.Credential, "w-a"); err != nil {
		t.Fatalf("w-a's own heartbeat: %v", err)
	}
	for _, tc := range []struct{ who, tok string }{{"the token", token}, {"the cluster secret", secret},
		{"w-b's credential", b.Credential}, {"a forged credential", "sw1.w-a." + strings.Repeat("0", 64)}} {
		if err := beat(tc.tok, "w-a"); err == nil {
			t.Errorf("%s heartbeat as w-a", tc.who)
		}
		c := api.NewClient(h.urls(), tc.tok)
		c.Retry = 0
		if err := c.Do(ctx, http.MethodPost, "/v1/workers/w-a/reports", api.ReportBatch{Reports: []api.TaskReport{
			{Task: "j-1-t0", Phase: "finish", Worker: "w-a", Attempt: 1, OK: true}}}, nil); err == nil {
			t.Errorf("%s reported as w-a", tc.who)
		}
	}
	wb := api.NewClient(h.urls(), b.Credential)
	wb.Retry = 0
	if err := wb.Do(ctx, http.MethodPost, "/v1/tasks/j-1-t0/finish", api.TaskReport{Worker: "w-a", Attempt: 1, OK: true}, nil); err == nil ||
		!strings.Contains(err.Error(), "403") {
		t.Errorf("w-b's credential reported a task as w-a: %v", err)
	}
	if _, err := reg(cl, "w-a"); !errors.Is(err, api.ErrConflict) {
		t.Errorf("the token registered over w-a: %v", err)
	}
	if _, err := reg(api.NewClient(h.urls(), a.Credential), "w-a"); err != nil {
		t.Errorf("w-a registering again with its credential: %v", err)
	}
	if err := wb.Do(ctx, http.MethodGet, "/v1/jobs", nil, nil); err == nil {
		t.Error("a worker's credential listed the jobs")
	}
	if err := cl.Do(ctx, http.MethodGet, "/v1/jobs", nil, nil); err != nil {
		t.Errorf("the token lists the jobs: %v", err)
	}
}
