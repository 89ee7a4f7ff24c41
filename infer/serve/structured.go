package serve

import "github.com/sluicehq/sluice/infer"

// constraint returns the token mask response_format asks for, or nil.
func (s *Server) constraint(rf *responseFormat) (func(int) infer.Constraint, *apiError) {
	if rf == nil || rf.Type == "" || rf.Type == "text" {
		return nil, nil
	}
	return nil, badRequest("response_format.type", "response_format type %q is not supported", rf.Type)
}
