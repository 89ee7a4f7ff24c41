package tokenizer

import (
	"errors"
	"fmt"
)

var (
	// ErrUnsupported is wrapped by the errors for tokenizer.json features
	// this package does not implement; see UnsupportedError.
	ErrUnsupported = errors.New("tokenizer: unsupported feature")
	// ErrNoChatTemplate is returned by ApplyChatTemplate when
	// tokenizer_config.json (or chat_template.jinja) has no template.
	ErrNoChatTemplate = errors.New("tokenizer: no chat template")
)

// UnsupportedError names the JSON key whose value this package cannot load,
// for example pre_tokenizer.type "Foo".
type UnsupportedError struct {
	File  string // tokenizer.json
	Key   string // pre_tokenizer.pretokenizers[1].type
	Value string // Foo
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("tokenizer: %s: %s %q is not supported", e.File, e.Key, e.Value)
}

func (e *UnsupportedError) Unwrap() error { return ErrUnsupported }

// badValue reports a malformed value at a key.
func badValue(file, key, want string) error {
	return fmt.Errorf("tokenizer: %s: %s: want %s", file, key, want)
}
