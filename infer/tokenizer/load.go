package tokenizer

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

const fileJSON = "tokenizer.json"

// jobj is a JSON object being read, with its key path for error messages.
type jobj struct {
	path string
	m    map[string]json.RawMessage
}

// parseObj reads raw as an object; nil, nil for a missing or null value.
func parseObj(path string, raw json.RawMessage) (*jobj, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	o := &jobj{path: path}
	if err := json.Unmarshal(raw, &o.m); err != nil {
		return nil, badValue(fileJSON, path, "an object")
	}
	return o, nil
}

func (o *jobj) key(k string) string {
	if o.path == "" {
		return k
	}
	return o.path + "." + k
}

func (o *jobj) has(k string) bool {
	v, ok := o.m[k]
	return ok && string(v) != "null"
}

func (o *jobj) str(k, def string) (string, error) {
	if !o.has(k) {
		return def, nil
	}
	var s string
	if err := json.Unmarshal(o.m[k], &s); err != nil {
		return "", badValue(fileJSON, o.key(k), "a string")
	}
	return s, nil
}

func (o *jobj) boolean(k string, def bool) (bool, error) {
	if !o.has(k) {
		return def, nil
	}
	var b bool
	if err := json.Unmarshal(o.m[k], &b); err != nil {
		return false, badValue(fileJSON, o.key(k), "a boolean")
	}
	return b, nil
}

func (o *jobj) integer(k string, def int) (int, error) {
	if !o.has(k) {
		return def, nil
	}
	var n int
	if err := json.Unmarshal(o.m[k], &n); err != nil {
		return 0, badValue(fileJSON, o.key(k), "an integer")
	}
	return n, nil
}

func (o *jobj) typ() (string, error) {
	t, err := o.str("type", "")
	if err != nil {
		return "", err
	}
	if t == "" {
		return "", badValue(fileJSON, o.key("type"), "a component type")
	}
	return t, nil
}

func (o *jobj) unsupported(k, v string) error {
	return &UnsupportedError{File: fileJSON, Key: o.key(k), Value: v}
}

// list reads o[k] as an array of objects.
func (o *jobj) list(k string) ([]*jobj, error) {
	var raws []json.RawMessage
	if err := json.Unmarshal(o.m[k], &raws); err != nil {
		return nil, badValue(fileJSON, o.key(k), "an array")
	}
	out := make([]*jobj, 0, len(raws))
	for i, r := range raws {
		c, err := parseObj(fmt.Sprintf("%s[%d]", o.key(k), i), r)
		if err != nil {
			return nil, err
		}
		if c == nil {
			return nil, badValue(fileJSON, fmt.Sprintf("%s[%d]", o.key(k), i), "an object")
		}
		out = append(out, c)
	}
	return out, nil
}

// pattern reads a {"String": s} or {"Regex": r} pattern at o[k].
func (o *jobj) pattern(k string) (lit string, re string, isRegex bool, err error) {
	p, err := parseObj(o.key(k), o.m[k])
	if err != nil || p == nil {
		return "", "", false, badValue(fileJSON, o.key(k), `{"String": ...} or {"Regex": ...}`)
	}
	if p.has("String") {
		s, err := p.str("String", "")
		return s, "", false, err
	}
	if p.has("Regex") {
		s, err := p.str("Regex", "")
		return "", s, true, err
	}
	return "", "", false, badValue(fileJSON, o.key(k), `{"String": ...} or {"Regex": ...}`)
}

func parseNormalizer(o *jobj) (normalizer, error) {
	t, err := o.typ()
	if err != nil {
		return nil, err
	}
	switch t {
	case "Sequence":
		items, err := o.list("normalizers")
		if err != nil {
			return nil, err
		}
		var q normSequence
		for _, it := range items {
			n, err := parseNormalizer(it)
			if err != nil {
				return nil, err
			}
			q = append(q, n)
		}
		return q, nil
	case "NFC":
		return unicodeNorm{norm.NFC}, nil
	case "NFD":
		return unicodeNorm{norm.NFD}, nil
	case "NFKC":
		return unicodeNorm{norm.NFKC}, nil
	case "NFKD":
		return unicodeNorm{norm.NFKD}, nil
	case "Lowercase":
		return lowercaseNorm{}, nil
	case "Strip":
		l, err := o.boolean("strip_left", false)
		if err != nil {
			return nil, err
		}
		r, err := o.boolean("strip_right", false)
		if err != nil {
			return nil, err
		}
		return stripNorm{l, r}, nil
	case "Prepend":
		p, err := o.str("prepend", "")
		return prependNorm{p}, err
	case "Replace":
		lit, re, isRe, err := o.pattern("pattern")
		if err != nil {
			return nil, err
		}
		content, err := o.str("content", "")
		if err != nil {
			return nil, err
		}
		if !isRe {
			return replaceNorm{old: lit, new: content}, nil
		}
		if strings.Contains(re, "(?=") || strings.Contains(re, "(?!") || strings.Contains(re, "(?<") {
			return nil, o.unsupported("pattern.Regex", re)
		}
		cre, err := regexp.Compile(translateRegex(re))
		if err != nil {
			return nil, o.unsupported("pattern.Regex", re)
		}
		return replaceNorm{new: content, re: cre}, nil
	}
	return nil, o.unsupported("type", t)
}

// parsePreTokenizer appends the flattened steps of o to dst.
func parsePreTokenizer(dst []preTokenizer, o *jobj) ([]preTokenizer, error) {
	t, err := o.typ()
	if err != nil {
		return nil, err
	}
	switch t {
	case "Sequence":
		items, err := o.list("pretokenizers")
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			if dst, err = parsePreTokenizer(dst, it); err != nil {
				return nil, err
			}
		}
		return dst, nil
	case "Split":
		lit, re, isRe, err := o.pattern("pattern")
		if err != nil {
			return nil, err
		}
		bs, err := o.str("behavior", "")
		if err != nil {
			return nil, err
		}
		b, ok := behaviors[bs]
		if !ok {
			return nil, o.unsupported("behavior", bs)
		}
		inv, err := o.boolean("invert", false)
		if err != nil {
			return nil, err
		}
		var m matcher = literalMatcher(lit)
		if isRe {
			if m, err = newMatcher(re); err != nil {
				return nil, o.unsupported("pattern.Regex", re)
			}
		}
		return append(dst, splitPT{m: m, b: b, invert: inv}), nil
	case "ByteLevel":
		aps, err := o.boolean("add_prefix_space", true)
		if err != nil {
			return nil, err
		}
		ur, err := o.boolean("use_regex", true)
		if err != nil {
			return nil, err
		}
		return append(dst, byteLevelPT{addPrefixSpace: aps, useRegex: ur}), nil
	case "Metaspace":
		repl, err := o.str("replacement", "▁")
		if err != nil {
			return nil, err
		}
		if utf8.RuneCountInString(repl) != 1 {
			return nil, badValue(fileJSON, o.key("replacement"), "one char")
		}
		scheme, err := metaspaceScheme(o)
		if err != nil {
			return nil, err
		}
		sp, err := o.boolean("split", true)
		if err != nil {
			return nil, err
		}
		return append(dst, metaspacePT{repl: repl, scheme: scheme, splitOn: sp}), nil
	case "Digits":
		ind, err := o.boolean("individual_digits", false)
		return append(dst, digitsPT{ind}), err
	case "WhitespaceSplit":
		return append(dst, whitespaceSplitPT{}), nil
	}
	return nil, o.unsupported("type", t)
}

// metaspaceScheme reads prepend_scheme, or the older add_prefix_space.
func metaspaceScheme(o *jobj) (prependScheme, error) {
	if o.has("prepend_scheme") {
		s, err := o.str("prepend_scheme", "")
		if err != nil {
			return 0, err
		}
		switch s {
		case "always":
			return prependAlways, nil
		case "never":
			return prependNever, nil
		case "first":
			return prependFirst, nil
		}
		return 0, o.unsupported("prepend_scheme", s)
	}
	aps, err := o.boolean("add_prefix_space", true)
	if !aps {
		return prependNever, err
	}
	return prependAlways, err
}

func parseDecoder(o *jobj) (decoder, error) {
	t, err := o.typ()
	if err != nil {
		return nil, err
	}
	switch t {
	case "Sequence":
		items, err := o.list("decoders")
		if err != nil {
			return nil, err
		}
		var q decSequence
		for _, it := range items {
			d, err := parseDecoder(it)
			if err != nil {
				return nil, err
			}
			q = append(q, d)
		}
		return q, nil
	case "ByteLevel":
		return byteLevelDec{}, nil
	case "ByteFallback":
		return byteFallbackDec{}, nil
	case "Fuse":
		return fuseDec{}, nil
	case "Strip":
		c, err := o.str("content", " ")
		if err != nil {
			return nil, err
		}
		if utf8.RuneCountInString(c) != 1 {
			return nil, badValue(fileJSON, o.key("content"), "one char")
		}
		start, err := o.integer("start", 0)
		if err != nil {
			return nil, err
		}
		stop, err := o.integer("stop", 0)
		if err != nil {
			return nil, err
		}
		r, _ := utf8.DecodeRuneInString(c)
		return stripDec{content: r, start: start, stop: stop}, nil
	case "Replace":
		lit, re, isRe, err := o.pattern("pattern")
		if err != nil {
			return nil, err
		}
		if isRe {
			return nil, o.unsupported("pattern.Regex", re)
		}
		content, err := o.str("content", "")
		return replaceDec{old: lit, new: content}, err
	case "Metaspace":
		repl, err := o.str("replacement", "▁")
		if err != nil {
			return nil, err
		}
		r, size := utf8.DecodeRuneInString(repl)
		if size != len(repl) || size == 0 {
			return nil, badValue(fileJSON, o.key("replacement"), "one char")
		}
		scheme, err := metaspaceScheme(o)
		return metaspaceDec{repl: r, scheme: scheme}, err
	}
	return nil, o.unsupported("type", t)
}

// parsePostProcessor returns nil for processors that add no ids (ByteLevel).
func parsePostProcessor(o *jobj, tokenID func(string) (int32, bool)) (postProcessor, error) {
	t, err := o.typ()
	if err != nil {
		return nil, err
	}
	switch t {
	case "ByteLevel":
		return nil, nil
	case "Sequence":
		items, err := o.list("processors")
		if err != nil {
			return nil, err
		}
		var q postSequence
		for _, it := range items {
			p, err := parsePostProcessor(it, tokenID)
			if err != nil {
				return nil, err
			}
			if p != nil {
				q = append(q, p)
			}
		}
		if len(q) == 0 {
			return nil, nil
		}
		return q, nil
	case "TemplateProcessing":
		return parseTemplate(o)
	case "BertProcessing", "RobertaProcessing":
		var parts []templatePart
		for _, k := range []string{"cls", "sep"} {
			var pair []json.RawMessage
			var tok string
			var id int32
			if err := json.Unmarshal(o.m[k], &pair); err != nil || len(pair) != 2 ||
				json.Unmarshal(pair[0], &tok) != nil || json.Unmarshal(pair[1], &id) != nil {
				return nil, badValue(fileJSON, o.key(k), `["token", id]`)
			}
			parts = append(parts, templatePart{ids: []int32{id}})
			if k == "cls" {
				parts = append(parts, templatePart{seq: true})
			}
		}
		return templatePost{parts}, nil
	}
	return nil, o.unsupported("type", t)
}

func parseTemplate(o *jobj) (postProcessor, error) {
	var special map[string]struct {
		IDs []int32 `json:"ids"`
	}
	if err := json.Unmarshal(o.m["special_tokens"], &special); err != nil {
		return nil, badValue(fileJSON, o.key("special_tokens"), "an object of {id, ids, tokens}")
	}
	var single []struct {
		SpecialToken *struct {
			ID string `json:"id"`
		}
		Sequence *struct {
			ID string `json:"id"`
		}
	}
	if err := json.Unmarshal(o.m["single"], &single); err != nil {
		return nil, badValue(fileJSON, o.key("single"), "a template list")
	}
	var tp templatePost
	for i, it := range single {
		switch {
		case it.Sequence != nil:
			tp.parts = append(tp.parts, templatePart{seq: true})
		case it.SpecialToken != nil:
			st, ok := special[it.SpecialToken.ID]
			if !ok {
				return nil, fmt.Errorf("tokenizer: %s: %s[%d]: special token %q is missing from special_tokens",
					fileJSON, o.key("single"), i, it.SpecialToken.ID)
			}
			tp.parts = append(tp.parts, templatePart{ids: st.IDs})
		default:
			return nil, badValue(fileJSON, fmt.Sprintf("%s[%d]", o.key("single"), i), "SpecialToken or Sequence")
		}
	}
	return tp, nil
}

// mergeEntry is one merge, written "a b" or ["a", "b"].
type mergeEntry [2]string

func (m *mergeEntry) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		a, c, ok := strings.Cut(s, " ")
		if !ok || strings.Contains(c, " ") {
			return fmt.Errorf("merge %q is not two tokens", s)
		}
		m[0], m[1] = a, c
		return nil
	}
	var pair []string
	if err := json.Unmarshal(b, &pair); err != nil || len(pair) != 2 {
		return fmt.Errorf("merge %s is not a pair", b)
	}
	m[0], m[1] = pair[0], pair[1]
	return nil
}

func parseModel(o *jobj) (*bpe, error) {
	if o == nil {
		return nil, badValue(fileJSON, "model", "an object")
	}
	t, err := o.str("type", "")
	if err != nil {
		return nil, err
	}
	if t == "" && o.has("merges") {
		t = "BPE"
	}
	if t != "BPE" {
		return nil, o.unsupported("type", t)
	}
	if o.has("dropout") {
		var d float64
		if err := json.Unmarshal(o.m["dropout"], &d); err != nil || d != 0 {
			return nil, o.unsupported("dropout", string(o.m["dropout"]))
		}
	}
	m := &bpe{unk: -1}
	if err := json.Unmarshal(o.m["vocab"], &m.vocab); err != nil {
		return nil, badValue(fileJSON, o.key("vocab"), "an object of token ids")
	}
	var merges []mergeEntry
	if o.has("merges") {
		if err := json.Unmarshal(o.m["merges"], &merges); err != nil {
			return nil, fmt.Errorf("tokenizer: %s: %s: %w", fileJSON, o.key("merges"), err)
		}
	}
	if m.prefix, err = o.str("continuing_subword_prefix", ""); err != nil {
		return nil, err
	}
	if m.suffix, err = o.str("end_of_word_suffix", ""); err != nil {
		return nil, err
	}
	m.merges = make(map[uint64]uint64, len(merges))
	for rank, mg := range merges {
		a, ok1 := m.vocab[mg[0]]
		b, ok2 := m.vocab[mg[1]]
		merged := mg[0] + strings.TrimPrefix(mg[1], m.prefix)
		if m.prefix == "" {
			merged = mg[0] + mg[1]
		}
		id, ok3 := m.vocab[merged]
		if !ok1 || !ok2 || !ok3 {
			return nil, fmt.Errorf("tokenizer: %s: %s[%d]: merge %q %q: token not in model.vocab",
				fileJSON, o.key("merges"), rank, mg[0], mg[1])
		}
		// Later duplicates win, as when tokenizers collects its HashMap.
		m.merges[pairKey(a, b)] = uint64(rank)<<32 | uint64(uint32(id))
	}
	if unk, err := o.str("unk_token", ""); err != nil {
		return nil, err
	} else if id, ok := m.vocab[unk]; ok && unk != "" {
		m.unk = id
	}
	if m.fuseUnk, err = o.boolean("fuse_unk", false); err != nil {
		return nil, err
	}
	if m.fallback, err = o.boolean("byte_fallback", false); err != nil {
		return nil, err
	}
	if m.ignore, err = o.boolean("ignore_merges", false); err != nil {
		return nil, err
	}
	for b := 0; b < 256; b++ {
		m.fbID[b] = -1
		if id, ok := m.vocab[fallbackName(byte(b))]; ok && m.fallback {
			m.fbID[b] = id
		}
	}
	return m, nil
}
