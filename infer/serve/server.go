package serve

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/infer/engine"
	"github.com/sluicehq/sluice/infer/serve/structured"
	"github.com/sluicehq/sluice/infer/tokenizer"
)

// Config tunes a Server. Start from DefaultConfig.
type Config struct {
	// ModelName is the name clients give as "model"; requests naming
	// another get 404. A request that names none gets this model.
	ModelName string
	// APIKey, when set, must come as "Authorization: Bearer KEY" on every
	// call but /health and /metrics; without it the answer is 401.
	APIKey string
	// MaxQueue bounds the completions (prompts × n) admitted at once,
	// running and waiting in the engine; past it a request gets 429 at
	// once (load shedding) instead of queueing without bound.
	MaxQueue int
	// RequestTimeout ends a request that has not finished after it (the
	// engine aborts it and frees its blocks); 0 is none.
	RequestTimeout time.Duration
	// ShutdownTimeout is how long Run waits for in-flight requests to
	// finish after its context ends, before closing their connections.
	ShutdownTimeout time.Duration
	// MaxBodyBytes bounds a request body.
	MaxBodyBytes int64
	// AllowRuntimeLoRA enables POST /v1/load_lora_adapter and
	// /v1/unload_lora_adapter (vLLM gates them behind
	// VLLM_ALLOW_RUNTIME_LORA_UPDATING): they read any path the server
	// can, so they are off by default.
	AllowRuntimeLoRA bool
	// Logger receives the server's events; nil is slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns a server without an API key, admitting 1024
// completions at once, with a 10-minute request timeout and 30 s to drain.
func DefaultConfig() Config {
	return Config{
		ModelName:       "sluice",
		MaxQueue:        1024,
		RequestTimeout:  10 * time.Minute,
		ShutdownTimeout: 30 * time.Second,
		MaxBodyBytes:    8 << 20,
	}
}

// Validate checks the fields.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	switch {
	case c.ModelName == "":
		return bad("ModelName is required")
	case c.MaxQueue < 1:
		return bad("MaxQueue must be positive, got %d", c.MaxQueue)
	case c.RequestTimeout < 0:
		return bad("RequestTimeout must be non-negative, got %s", c.RequestTimeout)
	case c.ShutdownTimeout < 0:
		return bad("ShutdownTimeout must be non-negative, got %s", c.ShutdownTimeout)
	case c.MaxBodyBytes < 1:
		return bad("MaxBodyBytes must be positive, got %d", c.MaxBodyBytes)
	}
	return nil
}

// Server answers OpenAI's completions and chat API over one engine: every
// HTTP request's completions join the engine's continuous batch. Its
// handlers may run on any number of goroutines.
type Server struct {
	e       *engine.Engine
	tok     *tokenizer.Tokenizer // nil: token ids only
	cfg     Config
	log     *slog.Logger
	created int64
	mux     *http.ServeMux
	reg     *prometheus.Registry
	m       *metrics

	vocabOnce sync.Once
	jsonVocab *structured.Vocab // the tokens' bytes, for response_format

	admitted atomic.Int64 // completions admitted and not finished
	draining atomic.Bool
	inflight sync.WaitGroup
}

// New returns a server over e, whose tokenizer tok is (nil when e has
// none: prompts and outputs are then token ids only, and chat needs one).
// The engine stays the caller's; close it after the server has drained.
func New(e *engine.Engine, tok *tokenizer.Tokenizer, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{e: e, tok: tok, cfg: cfg, log: cfg.Logger, created: time.Now().Unix(), mux: http.NewServeMux()}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.reg = prometheus.NewRegistry()
	s.m = newMetrics(s, s.reg)
	s.mux.HandleFunc("POST /v1/completions", s.auth(s.completions))
	s.mux.HandleFunc("POST /v1/chat/completions", s.auth(s.chat))
	s.mux.HandleFunc("GET /v1/models", s.auth(s.models))
	s.mux.HandleFunc("POST /v1/load_lora_adapter", s.auth(s.loadLoRA))
	s.mux.HandleFunc("POST /v1/unload_lora_adapter", s.auth(s.unloadLoRA))
	s.mux.HandleFunc("POST /tokenize", s.auth(s.tokenize))
	s.mux.HandleFunc("POST /detokenize", s.auth(s.detokenize))
	s.mux.HandleFunc("GET /health", s.health)
	s.mux.Handle("GET /metrics", s.metricsHandler())
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{status: http.StatusNotFound, typ: "not_found_error",
			message: fmt.Sprintf("no route %s %s", r.Method, r.URL.Path)})
	})
	return s, nil
}

// Handler is the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.mux }

// Registry holds the server's Prometheus metrics (served on /metrics).
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Drain stops admitting requests: new ones get 503 and /health answers
// 503, while those admitted go on.
func (s *Server) Drain() { s.draining.Store(true) }

// Wait returns once every admitted request has finished, or ctx ends.
func (s *Server) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run serves on ln until ctx ends, then shuts down gracefully: it stops
// admitting requests, waits up to ShutdownTimeout for those in flight
// (streams included) to finish, and then closes the connections left,
// which aborts their requests in the engine.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{Handler: s.mux, ReadHeaderTimeout: 30 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.Drain()
	s.log.Info("serve: draining", "in_flight", s.admitted.Load(), "timeout", s.cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err := hs.Shutdown(sctx)
	if err != nil {
		err = errors.Join(fmt.Errorf("serve: draining: %w", err), hs.Close())
	}
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// auth checks the API key.
func (s *Server) auth(h http.HandlerFunc) http.HandlerFunc {
	if s.cfg.APIKey == "" {
		return h
	}
	want := []byte("Bearer " + s.cfg.APIKey)
	return func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			writeError(w, &apiError{status: http.StatusUnauthorized, typ: "authentication_error",
				message: "missing or wrong API key: send the server's --api-key as \"Authorization: Bearer KEY\""})
			return
		}
		h(w, r)
	}
}

// decode reads a JSON body into v, naming the field of a type error.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) *apiError {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return &apiError{status: http.StatusRequestEntityTooLarge, typ: "invalid_request_error",
				message: fmt.Sprintf("the request body is larger than %d bytes", s.cfg.MaxBodyBytes)}
		}
		return badRequest("", "reading the request body: %v", err)
	}
	if err := json.Unmarshal(body, v); err != nil {
		if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && te.Field != "" {
			field := strings.TrimPrefix(te.Field, "samplingFields.")
			return badRequest(field, "%s: expected %s, got JSON %s", field, jsonKind(te.Type.Kind().String()), te.Value)
		}
		if se, ok := errors.AsType[*json.SyntaxError](err); ok {
			return badRequest("", "the request body is not valid JSON: %v (at byte %d)", se, se.Offset)
		}
		return badRequest("", "the request body: %v", err)
	}
	return nil
}

func jsonKind(goKind string) string {
	switch {
	case strings.HasPrefix(goKind, "int"), strings.HasPrefix(goKind, "uint"):
		return "an integer"
	case strings.HasPrefix(goKind, "float"):
		return "a number"
	case goKind == "bool":
		return "a boolean"
	case goKind == "string":
		return "a string"
	case goKind == "slice":
		return "an array"
	case goKind == "struct", goKind == "map":
		return "an object"
	}
	return goKind
}

// checkModel answers 404 for a model other than the served one or one of
// its LoRA adapters.
func (s *Server) checkModel(name string) *apiError {
	_, _, err := s.resolveModel(name)
	return err
}

// admit takes n completions' room in the queue, or says why not.
func (s *Server) admit(n int) (release func(), _ *apiError) {
	if s.draining.Load() {
		return nil, &apiError{status: http.StatusServiceUnavailable, typ: "service_unavailable", message: "the server is shutting down"}
	}
	if now := s.admitted.Add(int64(n)); now > int64(s.cfg.MaxQueue) {
		s.admitted.Add(-int64(n))
		s.m.rejected.Inc()
		return nil, &apiError{status: http.StatusTooManyRequests, typ: "rate_limit_exceeded",
			message: fmt.Sprintf("the server's queue is full (%d completions admitted, at most %d); retry later", now-int64(n), s.cfg.MaxQueue)}
	}
	s.inflight.Add(1)
	return func() { s.admitted.Add(-int64(n)); s.inflight.Done() }, nil
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	cards := []modelCard{{
		ID: s.cfg.ModelName, Object: "model", Created: s.created, OwnedBy: "sluice", MaxModelLen: s.e.Config().MaxModelLen,
		Root: s.cfg.ModelName,
	}}
	for _, a := range s.e.LoRAs() {
		// As vLLM lists adapters: root is the adapter's path, parent the base.
		cards = append(cards, modelCard{ID: a.Name, Object: "model", Created: s.created, OwnedBy: "sluice",
			MaxModelLen: s.e.Config().MaxModelLen, Root: a.Path, Parent: &s.cfg.ModelName})
	}
	writeJSON(w, http.StatusOK, modelList{Object: "list", Data: cards})
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeError(w, &apiError{status: http.StatusServiceUnavailable, typ: "service_unavailable", message: "the server is shutting down"})
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) tokenize(w http.ResponseWriter, r *http.Request) {
	var req tokenizeRequest
	if err := s.decode(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	if err := s.checkModel(req.Model); err != nil {
		writeError(w, err)
		return
	}
	if s.tok == nil {
		writeError(w, badRequest("", "the model has no tokenizer"))
		return
	}
	var ids []int32
	switch {
	case req.Prompt != nil && req.Messages != nil:
		writeError(w, badRequest("prompt", "give one of prompt and messages"))
		return
	case req.Prompt != nil:
		ids = s.tok.Encode(*req.Prompt, req.AddSpecialTokens == nil || *req.AddSpecialTokens)
	case req.Messages != nil:
		var err *apiError
		if ids, err = s.chatPrompt(req.Messages, req.AddGenerationPrompt == nil || *req.AddGenerationPrompt); err != nil {
			writeError(w, err)
			return
		}
	default:
		writeError(w, badRequest("prompt", "give prompt or messages"))
		return
	}
	if ids == nil {
		ids = []int32{}
	}
	writeJSON(w, http.StatusOK, tokenizeResponse{Count: len(ids), MaxModelLen: s.e.Config().MaxModelLen, Tokens: ids})
}

func (s *Server) detokenize(w http.ResponseWriter, r *http.Request) {
	var req detokenizeRequest
	if err := s.decode(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	if err := s.checkModel(req.Model); err != nil {
		writeError(w, err)
		return
	}
	if s.tok == nil {
		writeError(w, badRequest("", "the model has no tokenizer"))
		return
	}
	for i, id := range req.Tokens {
		if id < 0 || int(id) >= s.tok.VocabSize() {
			writeError(w, badRequest("tokens", "tokens[%d] (%d) is outside the vocabulary of %d", i, id, s.tok.VocabSize()))
			return
		}
	}
	writeJSON(w, http.StatusOK, detokenizeResponse{Prompt: s.tok.Decode(req.Tokens, false)})
}

// chatPrompt renders messages with the chat template and tokenizes them
// as the engine does for engine.Request.Messages.
func (s *Server) chatPrompt(msgs []chatMessage, addGen bool) ([]int32, *apiError) {
	if s.tok == nil || !s.tok.HasChatTemplate() {
		return nil, badRequest("messages", "the model's tokenizer has no chat template; use /v1/completions")
	}
	if len(msgs) == 0 {
		return nil, badRequest("messages", "messages is empty")
	}
	tm := make([]tokenizer.Message, len(msgs))
	for i, m := range msgs {
		if m.Role == "" {
			return nil, badRequest(fmt.Sprintf("messages[%d].role", i), "messages[%d].role is required", i)
		}
		tm[i] = tokenizer.Message{Role: m.Role, Content: m.Content.text}
	}
	text, err := s.tok.ApplyChatTemplate(tm, addGen)
	if err != nil {
		return nil, badRequest("messages", "the chat template failed on these messages: %v", err)
	}
	return s.tok.Encode(text, false), nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, &apiError{status: http.StatusInternalServerError, typ: "internal_error", message: err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func newID(prefix string) string {
	var b [12]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}
