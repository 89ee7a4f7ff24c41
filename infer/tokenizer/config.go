package tokenizer

import (
	"encoding/json"
	"fmt"
)

const fileConfig = "tokenizer_config.json"

// tokConfig is what Sluice reads from tokenizer_config.json.
type tokConfig struct {
	specials map[string]string // bos_token, eos_token, ... -> content
	extra    []string          // additional_special_tokens
	addBOS   bool
	addEOS   bool
}

// tokenString reads a special-token value: "text", {"content": "text"} or null.
func tokenString(raw json.RawMessage) (string, bool, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, true, nil
	}
	var o struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(raw, &o); err != nil || o.Content == nil {
		return "", false, fmt.Errorf("want a string or {\"content\": ...}")
	}
	return *o.Content, true, nil
}

func (t *Tokenizer) loadConfig(data []byte) error {
	t.cfg.specials = map[string]string{}
	if len(data) == 0 {
		return nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return fmt.Errorf("tokenizer: %s: %w", fileConfig, err)
	}
	for _, k := range []string{"bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token"} {
		s, ok, err := tokenString(top[k])
		if err != nil {
			return fmt.Errorf("tokenizer: %s: %s: %w", fileConfig, k, err)
		}
		if ok {
			t.cfg.specials[k] = s
		}
	}
	if raw, ok := top["additional_special_tokens"]; ok && string(raw) != "null" {
		var list []json.RawMessage
		if err := json.Unmarshal(raw, &list); err != nil {
			return fmt.Errorf("tokenizer: %s: additional_special_tokens: want a list", fileConfig)
		}
		for i, it := range list {
			s, _, err := tokenString(it)
			if err != nil {
				return fmt.Errorf("tokenizer: %s: additional_special_tokens[%d]: %w", fileConfig, i, err)
			}
			t.cfg.extra = append(t.cfg.extra, s)
		}
	}
	for k, dst := range map[string]*bool{"add_bos_token": &t.cfg.addBOS, "add_eos_token": &t.cfg.addEOS} {
		if raw, ok := top[k]; ok && string(raw) != "null" {
			if err := json.Unmarshal(raw, dst); err != nil {
				return fmt.Errorf("tokenizer: %s: %s: want a boolean", fileConfig, k)
			}
		}
	}
	tpl, err := chatTemplateSource(top["chat_template"])
	if err != nil {
		return err
	}
	if tpl != "" {
		if err := t.setChatTemplate(tpl); err != nil {
			return fmt.Errorf("tokenizer: %s: chat_template: %w", fileConfig, err)
		}
	}
	return nil
}

// chatTemplateSource reads chat_template: a string, or a list of
// {"name", "template"} of which transformers uses "default".
func chatTemplateSource(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var list []struct {
		Name     string `json:"name"`
		Template string `json:"template"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return "", fmt.Errorf("tokenizer: %s: chat_template: want a string or a list of {name, template}", fileConfig)
	}
	for _, it := range list {
		if it.Name == "default" {
			return it.Template, nil
		}
	}
	if len(list) == 1 {
		return list[0].Template, nil
	}
	return "", fmt.Errorf("tokenizer: %s: chat_template: no template named \"default\"", fileConfig)
}

func (t *Tokenizer) specialID(key string) (int32, bool) {
	s, ok := t.cfg.specials[key]
	if !ok {
		return 0, false
	}
	return t.TokenID(s)
}

// BOS returns the id of tokenizer_config.json's bos_token.
func (t *Tokenizer) BOS() (int32, bool) { return t.specialID("bos_token") }

// EOS returns the id of tokenizer_config.json's eos_token.
func (t *Tokenizer) EOS() (int32, bool) { return t.specialID("eos_token") }

// AddBOS reports tokenizer_config.json's add_bos_token. Encode does not read
// it: like the tokenizers library, Encode adds what tokenizer.json's
// post_processor adds.
func (t *Tokenizer) AddBOS() bool { return t.cfg.addBOS }
