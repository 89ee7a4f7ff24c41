package serve

import (
	"strings"

	"github.com/sluicehq/sluice/infer/engine"
	"github.com/sluicehq/sluice/infer/serve/structured"
)

// constraint returns the token masks response_format asks for (one per
// completion), or nil for plain text.
func (s *Server) constraint(rf *responseFormat) (func(int) engine.Constraint, *apiError) {
	if rf == nil || rf.Type == "" || rf.Type == "text" {
		return nil, nil
	}
	var g *structured.Grammar
	switch rf.Type {
	case "json_object":
		g = structured.Object()
	case "json_schema":
		if rf.JSONSchema == nil || len(rf.JSONSchema.Schema) == 0 {
			return nil, badRequest("response_format.json_schema.schema", "response_format json_schema needs json_schema.schema")
		}
		var err error
		if g, err = structured.Schema(rf.JSONSchema.Schema); err != nil {
			return nil, badRequest("response_format.json_schema.schema", "%s", strings.TrimPrefix(err.Error(), "structured: "))
		}
	default:
		return nil, badRequest("response_format.type", "response_format type %q is not supported (text, json_object, json_schema)", rf.Type)
	}
	if s.tok == nil {
		return nil, badRequest("response_format", "structured output needs the model's tokenizer")
	}
	s.vocabOnce.Do(func() {
		sp := s.e.Spec()
		s.jsonVocab = structured.NewVocab(s.tok, sp.Vocab, sp.EOS)
	})
	return func(int) engine.Constraint { return g.Constraint(s.jsonVocab) }, nil
}
