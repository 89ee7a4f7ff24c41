package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// The request and response bodies of OpenAI's API (and vLLM's extensions:
// top_k, min_p, repetition_penalty, stop_token_ids, ignore_eos,
// min_tokens), as the server reads and writes them.

// samplingFields are the sampling parameters completions and chat share.
type samplingFields struct {
	Model             string          `json:"model"`
	N                 *int            `json:"n"`
	MaxTokens         *int            `json:"max_tokens"`
	Temperature       *float64        `json:"temperature"`
	TopP              *float64        `json:"top_p"`
	TopK              *int            `json:"top_k"`
	MinP              *float64        `json:"min_p"`
	Seed              *int64          `json:"seed"`
	Stop              stopList        `json:"stop"`
	StopTokenIDs      []int32         `json:"stop_token_ids"`
	PresencePenalty   *float64        `json:"presence_penalty"`
	FrequencyPenalty  *float64        `json:"frequency_penalty"`
	RepetitionPenalty *float64        `json:"repetition_penalty"`
	IgnoreEOS         bool            `json:"ignore_eos"`
	MinTokens         int             `json:"min_tokens"`
	Stream            bool            `json:"stream"`
	StreamOptions     *streamOptions  `json:"stream_options"`
	ResponseFormat    *responseFormat `json:"response_format"`
	User              string          `json:"user"`
	// ReturnTokenIDs (vLLM's return_token_ids) adds each choice's token
	// ids, the EOS or stop token included, and the prompt's.
	ReturnTokenIDs bool `json:"return_token_ids"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// responseFormat is OpenAI's response_format.
type responseFormat struct {
	Type       string `json:"type"` // text | json_object | json_schema
	JSONSchema *struct {
		Name   string          `json:"name"`
		Schema json.RawMessage `json:"schema"`
		Strict *bool           `json:"strict"`
	} `json:"json_schema"`
}

// CompletionRequest is the body of POST /v1/completions.
type completionRequest struct {
	samplingFields
	Prompt   promptList `json:"prompt"`
	Echo     bool       `json:"echo"`
	Logprobs *int       `json:"logprobs"`
}

// chatRequest is the body of POST /v1/chat/completions.
type chatRequest struct {
	samplingFields
	Messages            []chatMessage `json:"messages"`
	MaxCompletionTokens *int          `json:"max_completion_tokens"`
	Logprobs            bool          `json:"logprobs"`
	TopLogprobs         *int          `json:"top_logprobs"`
}

type chatMessage struct {
	Role    string         `json:"role"`
	Content messageContent `json:"content"`
}

// messageContent is a string or an array of content parts, of which the
// text parts are joined.
type messageContent struct {
	text string
	set  bool
}

func (c *messageContent) UnmarshalJSON(b []byte) error {
	c.set = true
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		return nil
	}
	if err := json.Unmarshal(b, &c.text); err == nil {
		return nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(b, &parts); err != nil {
		return fmt.Errorf("content must be a string or an array of text parts")
	}
	for i, p := range parts {
		if p.Type != "text" {
			return fmt.Errorf("content[%d].type %q is not supported (only \"text\")", i, p.Type)
		}
		c.text += p.Text
	}
	return nil
}

// stopList is a string or an array of strings.
type stopList []string

func (s *stopList) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		*s = nil
		return nil
	}
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = stopList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("stop must be a string or an array of strings")
	}
	*s = many
	return nil
}

// promptList is the completions prompt: a string, an array of strings, an
// array of token ids, or an array of arrays of token ids.
type promptList struct {
	texts []string
	ids   [][]int32
	set   bool
}

func (p *promptList) UnmarshalJSON(b []byte) error {
	p.set = true
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		p.texts = []string{one}
		return nil
	}
	var texts []string
	if err := json.Unmarshal(b, &texts); err == nil && len(texts) > 0 {
		p.texts = texts
		return nil
	}
	var ids []int32
	if err := json.Unmarshal(b, &ids); err == nil && len(ids) > 0 {
		p.ids = [][]int32{ids}
		return nil
	}
	var lists [][]int32
	if err := json.Unmarshal(b, &lists); err == nil && len(lists) > 0 {
		p.ids = lists
		return nil
	}
	return fmt.Errorf("prompt must be a string, an array of strings, an array of token ids or an array of arrays of token ids")
}

func (p promptList) len() int { return len(p.texts) + len(p.ids) }

// usage is OpenAI's usage object.
type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// completionLogprobs is the legacy completions logprobs object.
type completionLogprobs struct {
	Tokens        []string             `json:"tokens"`
	TokenLogprobs []float32            `json:"token_logprobs"`
	TopLogprobs   []map[string]float32 `json:"top_logprobs"`
	TextOffset    []int                `json:"text_offset"`
}

type completionChoice struct {
	Index        int                 `json:"index"`
	Text         string              `json:"text"`
	Logprobs     *completionLogprobs `json:"logprobs"`
	FinishReason *string             `json:"finish_reason"`
	TokenIDs     []int32             `json:"token_ids,omitempty"`
	PromptIDs    []int32             `json:"prompt_token_ids,omitempty"`
}

type completionResponse struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"`
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []completionChoice `json:"choices"`
	Usage   *usage             `json:"usage,omitempty"`
}

// chatLogprob is one position of a chat choice's logprobs.content.
type chatLogprob struct {
	Token       string           `json:"token"`
	Logprob     float32          `json:"logprob"`
	Bytes       []int            `json:"bytes"`
	TopLogprobs []chatTopLogprob `json:"top_logprobs"`
}

type chatTopLogprob struct {
	Token   string  `json:"token"`
	Logprob float32 `json:"logprob"`
	Bytes   []int   `json:"bytes"`
}

type chatLogprobs struct {
	Content []chatLogprob `json:"content"`
}

type chatResponseMessage struct {
	Role    string `json:"role,omitempty"`
	Content string `json:"content"`
}

type chatChoice struct {
	Index        int                 `json:"index"`
	Message      chatResponseMessage `json:"message"`
	Logprobs     *chatLogprobs       `json:"logprobs"`
	FinishReason *string             `json:"finish_reason"`
	TokenIDs     []int32             `json:"token_ids,omitempty"`
}

type chatDelta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

type chatChunkChoice struct {
	Index        int           `json:"index"`
	Delta        chatDelta     `json:"delta"`
	Logprobs     *chatLogprobs `json:"logprobs"`
	FinishReason *string       `json:"finish_reason"`
	TokenIDs     []int32       `json:"token_ids,omitempty"`
}

type chatResponse struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   *usage       `json:"usage,omitempty"`
}

type chatChunk struct {
	ID      string            `json:"id"`
	Object  string            `json:"object"`
	Created int64             `json:"created"`
	Model   string            `json:"model"`
	Choices []chatChunkChoice `json:"choices"`
	Usage   *usage            `json:"usage,omitempty"`
}

type modelCard struct {
	ID          string  `json:"id"`
	Object      string  `json:"object"`
	Created     int64   `json:"created"`
	OwnedBy     string  `json:"owned_by"`
	MaxModelLen int     `json:"max_model_len"`
	Root        string  `json:"root,omitempty"`
	Parent      *string `json:"parent"` // the base model of a LoRA adapter, else null
}

type modelList struct {
	Object string      `json:"object"`
	Data   []modelCard `json:"data"`
}

type tokenizeRequest struct {
	Model               string        `json:"model"`
	Prompt              *string       `json:"prompt"`
	Messages            []chatMessage `json:"messages"`
	AddSpecialTokens    *bool         `json:"add_special_tokens"`
	AddGenerationPrompt *bool         `json:"add_generation_prompt"`
}

type tokenizeResponse struct {
	Count       int     `json:"count"`
	MaxModelLen int     `json:"max_model_len"`
	Tokens      []int32 `json:"tokens"`
}

type detokenizeRequest struct {
	Model  string  `json:"model"`
	Tokens []int32 `json:"tokens"`
}

type detokenizeResponse struct {
	Prompt string `json:"prompt"`
}
