package serve

import (
	"encoding/json"
	"net/http"
)

// sse writes server-sent events: one "data: JSON" per chunk, flushed,
// and "data: [DONE]" at the end. After a write fails (the client went
// away), every later one is skipped and err says why.
type sse struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	err error
}

func startSSE(w http.ResponseWriter) *sse {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	w.WriteHeader(http.StatusOK)
	return &sse{w: w, rc: http.NewResponseController(w)}
}

func (e *sse) data(b []byte) error {
	if e.err != nil {
		return e.err
	}
	buf := make([]byte, 0, len(b)+8)
	buf = append(append(append(buf, "data: "...), b...), "\n\n"...)
	if _, err := e.w.Write(buf); err != nil {
		e.err = err
		return err
	}
	e.err = e.rc.Flush()
	return e.err
}

func (e *sse) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return e.data(b)
}

// fail sends an error event in OpenAI's shape (the status has gone out
// already).
func (e *sse) fail(ae *apiError) { e.data(ae.body()) }

func (e *sse) done() error { return e.data([]byte("[DONE]")) }
