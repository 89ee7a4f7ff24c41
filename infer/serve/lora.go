package serve

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/sluicehq/sluice/infer/engine"
)

// LoRA adapters, as vLLM serves them: the "model" field of a request names
// the base model or one of the engine's adapters, which /v1/models lists
// with the base as parent; /v1/load_lora_adapter and
// /v1/unload_lora_adapter change the set while serving, when
// Config.AllowRuntimeLoRA is set.

// resolveModel maps a request's model to the engine's adapter ("" for the
// base model) and the name to answer with, or a 404 in OpenAI's shape.
func (s *Server) resolveModel(name string) (lora, model string, _ *apiError) {
	if name == "" || name == s.cfg.ModelName {
		return "", s.cfg.ModelName, nil
	}
	names := []string{s.cfg.ModelName}
	for _, a := range s.e.LoRAs() {
		if a.Name == name {
			return name, name, nil
		}
		names = append(names, a.Name)
	}
	return "", "", &apiError{status: http.StatusNotFound, typ: "not_found_error", param: "model",
		message: fmt.Sprintf("the model %q does not exist; this server serves %s", name, quoteAll(names))}
}

func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}

// loraRequest is the body of /v1/load_lora_adapter and
// /v1/unload_lora_adapter, as vLLM's.
type loraRequest struct {
	Name string `json:"lora_name"`
	Path string `json:"lora_path"`
}

func (s *Server) loraBody(w http.ResponseWriter, r *http.Request, needPath bool) (loraRequest, bool) {
	var req loraRequest
	if !s.cfg.AllowRuntimeLoRA {
		writeError(w, &apiError{status: http.StatusNotFound, typ: "not_found_error",
			message: "loading and unloading LoRA adapters at run time is off: start the server with --allow-runtime-lora-updating"})
		return req, false
	}
	if err := s.decode(w, r, &req); err != nil {
		writeError(w, err)
		return req, false
	}
	switch {
	case req.Name == "":
		writeError(w, badRequest("lora_name", "lora_name is required"))
		return req, false
	case needPath && req.Path == "":
		writeError(w, badRequest("lora_path", "lora_path is required"))
		return req, false
	case req.Name == s.cfg.ModelName:
		writeError(w, badRequest("lora_name", "lora_name %q is the base model's name", req.Name))
		return req, false
	}
	return req, true
}

// loadLoRA answers POST /v1/load_lora_adapter.
func (s *Server) loadLoRA(w http.ResponseWriter, r *http.Request) {
	req, ok := s.loraBody(w, r, true)
	if !ok {
		return
	}
	if err := s.e.LoadLoRA(req.Name, req.Path); err != nil {
		if errors.Is(err, engine.ErrClosed) {
			writeError(w, engineError(err, 0))
			return
		}
		writeError(w, badRequest("lora_path", "%v", err))
		return
	}
	s.log.Info("serve: LoRA adapter loaded", "name", req.Name, "path", req.Path)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "Success: LoRA adapter '%s' added successfully.", req.Name)
}

// unloadLoRA answers POST /v1/unload_lora_adapter.
func (s *Server) unloadLoRA(w http.ResponseWriter, r *http.Request) {
	req, ok := s.loraBody(w, r, false)
	if !ok {
		return
	}
	if err := s.e.UnloadLoRA(req.Name); err != nil {
		if errors.Is(err, engine.ErrUnknownLoRA) {
			writeError(w, &apiError{status: http.StatusNotFound, typ: "not_found_error", param: "lora_name", message: err.Error()})
			return
		}
		writeError(w, badRequest("lora_name", "%v", err))
		return
	}
	s.log.Info("serve: LoRA adapter unloaded", "name", req.Name)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "Success: LoRA adapter '%s' removed successfully.", req.Name)
}
