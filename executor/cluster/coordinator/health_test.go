package coordinator

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// A follower that no longer hears from a leader (here: the other two
// coordinators are gone; a full disk stops its acknowledgements the same
// way) reports unhealthy on /health and stops answering reads from its
// state, which no longer moves: it served 14-minute-old state silently.
func TestStaleFollowerUnhealthy(t *testing.T) {
	if testing.Short() {
		t.Skip("three coordinators and a stale wait")
	}
	h := start(t, 3)
	defer h.shutdown()
	l := h.leader()
	get := func(c *Coordinator, path string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, c.URL()+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	var f *Coordinator
	for _, c := range h.nodes {
		if c != l {
			f = c
		}
	}
	h.waitFor("the follower healthy", func() bool { code, _ := get(f, "/health"); return code == http.StatusOK })
	if code, msg := get(f, "/v1/jobs"); code != http.StatusOK {
		t.Fatalf("a healthy follower's read: %d %s", code, msg)
	}
	for i, c := range h.nodes {
		if c != f {
			c.Shutdown()
			h.nodes[i] = nil
		}
	}
	var msg string
	h.waitFor("the follower unhealthy", func() bool {
		var code int
		code, msg = get(f, "/health")
		return code == http.StatusServiceUnavailable
	})
	if !strings.Contains(msg, "stale") || !strings.Contains(msg, f.cfg.NodeID) {
		t.Fatalf("/health: %s", msg)
	}
	for _, path := range []string{"/v1/jobs", "/v1/cluster"} {
		if code, body := get(f, path); code == http.StatusOK {
			t.Fatalf("%s served from a stale state: %s", path, body)
		}
	}
}
