package router

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Errors of the package; test them with errors.Is.
var (
	// ErrInvalidConfig: a Config field is out of range.
	ErrInvalidConfig = errors.New("router: invalid config")
)

// Policies of Config.Policy.
const (
	// PolicyAffinity sends a request to the replica its prompt prefix
	// hashes to (rendezvous hashing over the live replicas), so that
	// requests sharing a prefix find it in that replica's prefix cache,
	// unless that replica is loaded well past the least loaded one; then
	// it falls back to PolicyP2C.
	PolicyAffinity = "affinity"
	// PolicyP2C picks two live replicas at random and sends the request to
	// the one with the smaller load (power of two choices): its reported
	// queue, or this router's requests in flight to it when more.
	PolicyP2C = "p2c"
	// PolicyRandom picks a live replica at random (the baseline).
	PolicyRandom = "random"
)

// Config tunes a Router. Start from DefaultConfig.
type Config struct {
	// Replicas are the base URLs of the servers (sluice serve), http://host:port.
	Replicas []string
	// Dynamic says the replicas come from SetReplicas (a deployment's
	// controller, see Controller): Replicas may then be empty.
	Dynamic bool
	// Policy is PolicyAffinity, PolicyP2C or PolicyRandom.
	Policy string
	// PrefixBytes is how much of a prompt's start keys its affinity.
	PrefixBytes int
	// Imbalance is how many more requests in flight than the least loaded
	// replica the affinity replica may hold before load wins.
	Imbalance int
	// DownFor is how long a replica that failed is left out.
	DownFor time.Duration
	// Seed seeds the random choices.
	Seed uint64
	// Logger receives the router's events; nil is slog.Default().
	Logger *slog.Logger
}

// DefaultConfig routes by prefix affinity on the first 256 bytes, with an
// imbalance of 8 requests, leaving a failed replica out for 5 s.
func DefaultConfig() Config {
	return Config{Policy: PolicyAffinity, PrefixBytes: 256, Imbalance: 8, DownFor: 5 * time.Second}
}

// Validate checks the fields.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	switch {
	case len(c.Replicas) == 0 && !c.Dynamic:
		return bad("Replicas is empty")
	case c.Policy != PolicyAffinity && c.Policy != PolicyP2C && c.Policy != PolicyRandom:
		return bad("Policy must be %q, %q or %q, got %q", PolicyAffinity, PolicyP2C, PolicyRandom, c.Policy)
	case c.PrefixBytes < 1:
		return bad("PrefixBytes must be positive, got %d", c.PrefixBytes)
	case c.Imbalance < 0:
		return bad("Imbalance must be non-negative, got %d", c.Imbalance)
	}
	for i, r := range c.Replicas {
		if !strings.HasPrefix(r, "http://") && !strings.HasPrefix(r, "https://") {
			return bad("Replicas[%d] %q must be an http:// or https:// URL", i, r)
		}
	}
	return nil
}

type replica struct {
	url       string
	inflight  atomic.Int64 // this router's requests to it
	reported  atomic.Int64 // its requests running and waiting, as last reported (SetReplicas)
	downUntil atomic.Int64 // unix nanoseconds
	served    atomic.Int64
}

// load is the replica's queue as the router knows it: what the replica
// last reported, or this router's own requests in flight to it when more
// (the report lags by a heartbeat; the router's own count does not).
func (rp *replica) load() int64 { return max(rp.inflight.Load(), rp.reported.Load()) }

// Router is an http.Handler that forwards OpenAI API requests to
// replicas, retrying a request on another replica when its replica fails
// before the response has begun (for a stream, before its first event).
type Router struct {
	cfg    Config
	set    sync.RWMutex // guards reps, which SetReplicas replaces
	reps   []*replica
	client *http.Client
	log    *slog.Logger
	mu     sync.Mutex // guards rng
	rng    *rand.Rand
}

// New returns a router over cfg.Replicas.
func New(cfg Config) (*Router, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Router{cfg: cfg, client: &http.Client{}, log: cfg.Logger, rng: rand.New(rand.NewPCG(cfg.Seed, 0x7017e))}
	if r.log == nil {
		r.log = slog.Default()
	}
	for _, u := range cfg.Replicas {
		r.reps = append(r.reps, &replica{url: strings.TrimRight(u, "/")})
	}
	return r, nil
}

// Served returns how many requests each replica answered, in Replicas'
// order (for a dynamic router, in the order of the last SetReplicas).
func (r *Router) Served() []int64 {
	reps := r.replicas()
	out := make([]int64, len(reps))
	for i, rp := range reps {
		out[i] = rp.served.Load()
	}
	return out
}

// Target is a replica as SetReplicas takes it: its URL and its queue
// (requests running and waiting) as it reported it.
type Target struct {
	URL  string
	Load int
}

// SetReplicas replaces the replicas with targets; a replica that stays
// keeps its counts and its time left out after a failure. Requests in
// flight to a replica that goes finish there.
func (r *Router) SetReplicas(targets []Target) {
	r.set.Lock()
	defer r.set.Unlock()
	old := map[string]*replica{}
	for _, rp := range r.reps {
		old[rp.url] = rp
	}
	reps := make([]*replica, 0, len(targets))
	for _, t := range targets {
		u := strings.TrimRight(t.URL, "/")
		rp := old[u]
		if rp == nil {
			rp = &replica{url: u}
		}
		rp.reported.Store(int64(t.Load))
		reps = append(reps, rp)
	}
	r.reps = reps
}

func (r *Router) replicas() []*replica {
	r.set.RLock()
	defer r.set.RUnlock()
	return r.reps
}

// prefixKey is the start of the request's prompt, or of its messages.
func prefixKey(body []byte, n int) string {
	var req struct {
		Prompt   json.RawMessage `json:"prompt"`
		Messages []struct {
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
	}
	if json.Unmarshal(body, &req) != nil {
		return ""
	}
	var b strings.Builder
	b.Write(req.Prompt)
	for _, m := range req.Messages {
		b.Write(m.Content)
	}
	s := b.String()
	return s[:min(len(s), n)]
}

// pick chooses a live replica not in tried.
func (r *Router) pick(key string, tried map[*replica]bool) *replica {
	now := time.Now().UnixNano()
	reps := r.replicas()
	var live []*replica
	for _, rp := range reps {
		if !tried[rp] && rp.downUntil.Load() <= now {
			live = append(live, rp)
		}
	}
	if len(live) == 0 {
		for _, rp := range reps { // all down: try those not tried yet anyway
			if !tried[rp] {
				live = append(live, rp)
			}
		}
	}
	if len(live) == 0 {
		return nil
	}
	r.mu.Lock()
	i, j := r.rng.IntN(len(live)), r.rng.IntN(len(live))
	r.mu.Unlock()
	p2c := live[i]
	if live[j].load() < p2c.load() {
		p2c = live[j]
	}
	switch r.cfg.Policy {
	case PolicyRandom:
		return live[i]
	case PolicyP2C:
		return p2c
	}
	if key == "" {
		return p2c
	}
	var best *replica
	var bestScore uint64
	least := live[0].load()
	for _, rp := range live {
		h := fnv.New64a()
		h.Write([]byte(rp.url))
		h.Write([]byte{0})
		h.Write([]byte(key))
		if s := h.Sum64(); best == nil || s > bestScore {
			best, bestScore = rp, s
		}
		least = min(least, rp.load())
	}
	if best.load() > least+int64(r.cfg.Imbalance) {
		return p2c
	}
	return best
}

// ServeHTTP forwards one request.
func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, 16<<20))
	if err != nil {
		writeError(w, http.StatusBadRequest, "reading the request body: "+err.Error())
		return
	}
	key := prefixKey(body, r.cfg.PrefixBytes)
	tried := map[*replica]bool{}
	var lastErr error
	for range r.replicas() {
		rp := r.pick(key, tried)
		if rp == nil {
			break
		}
		tried[rp] = true
		done, err := r.forward(w, req, body, rp)
		if done {
			return
		}
		lastErr = err
		rp.downUntil.Store(time.Now().Add(r.cfg.DownFor).UnixNano())
		r.log.Warn("router: replica failed before answering; retrying elsewhere", "replica", rp.url, "err", err)
	}
	if lastErr == nil {
		writeError(w, http.StatusServiceUnavailable, "no replica is serving yet")
		return
	}
	writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("no replica could answer: %v", lastErr))
}

// forward sends the request to rp. done says the client has its answer
// (or is gone); otherwise nothing was written and err says why.
func (r *Router) forward(w http.ResponseWriter, req *http.Request, body []byte, rp *replica) (done bool, err error) {
	rp.inflight.Add(1)
	defer rp.inflight.Add(-1)
	out, err := http.NewRequestWithContext(req.Context(), req.Method, rp.url+req.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	for _, h := range []string{"Authorization", "Content-Type", "Accept"} {
		if v := req.Header.Get(h); v != "" {
			out.Header.Set(h, v)
		}
	}
	resp, err := r.client.Do(out)
	if err != nil {
		if req.Context().Err() != nil {
			return true, nil // the client went away
		}
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 500 && resp.StatusCode != http.StatusGatewayTimeout {
		io.Copy(io.Discard, resp.Body)
		return false, fmt.Errorf("%s answered %s", rp.url, resp.Status)
	}
	// Hold the answer back until it has begun for sure: a whole body, or
	// a stream's first event.
	br := bufio.NewReader(resp.Body)
	var head []byte
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		for !bytes.HasSuffix(head, []byte("\n\n")) {
			line, err := br.ReadBytes('\n')
			head = append(head, line...)
			if err != nil {
				return false, fmt.Errorf("%s: the stream ended before its first event: %w", rp.url, err)
			}
		}
	} else if head, err = io.ReadAll(br); err != nil {
		return false, fmt.Errorf("%s: reading the answer: %w", rp.url, err)
	}
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(head)
	rp.served.Add(1)
	rc := http.NewResponseController(w)
	rc.Flush()
	buf := make([]byte, 32<<10)
	for {
		n, err := br.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return true, nil
			}
			rc.Flush()
		}
		if err != nil {
			return true, nil // past the first event, a failure reaches the client as a cut stream
		}
	}
}

func writeError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": "service_unavailable", "param": nil, "code": status}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
