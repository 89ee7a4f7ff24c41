package blocks

import "errors"

// Errors callers test for with errors.Is. Both mean the block is lost for
// this consumer and must be recomputed.
var (
	// ErrNotFound: the store (local or remote) holds no block of that id.
	ErrNotFound = errors.New("blocks: block not found")
	// ErrUnreachable: the worker serving the block cannot be reached, or
	// went away during the transfer.
	ErrUnreachable = errors.New("blocks: worker unreachable")
)
