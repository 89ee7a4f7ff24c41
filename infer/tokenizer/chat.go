package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nikolalohinski/gonja/v2"
	"github.com/nikolalohinski/gonja/v2/builtins"
	"github.com/nikolalohinski/gonja/v2/config"
	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/loaders"
)

// Message is one chat turn for ApplyChatTemplate.
type Message struct {
	Role    string
	Content string
	// Extra holds further fields a template may read, such as
	// reasoning_content or tool_calls; Role and Content win over it.
	Extra map[string]any
}

// chatTemplate is a parsed Jinja chat template.
type chatTemplate struct {
	tpl *exec.Template
	now func() time.Time // strftime_now's clock; tests replace it
}

var (
	chatEnvOnce sync.Once
	chatEnv     *exec.Environment
)

// environment is gonja's Python-compatible environment with what
// transformers adds for chat templates: raise_exception, strftime_now (set
// per call), and a tojson that writes like Python's json.dumps.
func environment() *exec.Environment {
	chatEnvOnce.Do(func() {
		filters := exec.NewFilterSet(map[string]exec.FilterFunction{})
		filters.Update(builtins.Filters)
		if err := filters.Replace("tojson", toJSONFilter); err != nil {
			panic(err) // gonja always has tojson
		}
		chatEnv = &exec.Environment{
			Context:           gonja.DefaultContext.Inherit(),
			Filters:           filters,
			Tests:             builtins.Tests,
			ControlStructures: builtins.ControlStructures,
			Methods:           builtins.Methods,
		}
	})
	return chatEnv
}

// setChatTemplate parses src with transformers' Jinja settings
// (trim_blocks, lstrip_blocks).
func (t *Tokenizer) setChatTemplate(src string) error {
	cfg := config.New()
	cfg.TrimBlocks = true
	cfg.LeftStripBlocks = true
	const name = "chat_template"
	loader, err := loaders.NewFileSystemLoader("")
	if err != nil {
		return err
	}
	shifted, err := loaders.NewShiftedLoader(name, strings.NewReader(src), loader)
	if err != nil {
		return err
	}
	tpl, err := parseJinja(name, cfg, shifted)
	if err != nil {
		return err
	}
	t.chat = &chatTemplate{tpl: tpl, now: time.Now}
	return nil
}

// HasChatTemplate reports whether a chat template was loaded.
func (t *Tokenizer) HasChatTemplate() bool { return t.chat != nil }

// ApplyChatTemplate renders messages with the tokenizer's chat template, as
// transformers' apply_chat_template(tokenize=False) does. Encode the result
// with addSpecial false: templates write BOS themselves.
func (t *Tokenizer) ApplyChatTemplate(messages []Message, addGenerationPrompt bool) (string, error) {
	return t.ApplyChatTemplateVars(messages, addGenerationPrompt, nil)
}

// ApplyChatTemplateVars is ApplyChatTemplate with further template
// variables, such as tools or enable_thinking.
func (t *Tokenizer) ApplyChatTemplateVars(messages []Message, addGenerationPrompt bool, vars map[string]any) (string, error) {
	if t.chat == nil {
		return "", ErrNoChatTemplate
	}
	// Ordered dicts, so that tojson writes role and content first as
	// Python's dicts would; Extra follows in key order.
	msgs := make([]*exec.Dict, len(messages))
	for i, m := range messages {
		d := &exec.Dict{Pairs: []*exec.Pair{
			{Key: exec.AsValue("role"), Value: exec.AsValue(m.Role)},
			{Key: exec.AsValue("content"), Value: exec.AsValue(m.Content)},
		}}
		keys := make([]string, 0, len(m.Extra))
		for k := range m.Extra {
			if k != "role" && k != "content" {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			d.Pairs = append(d.Pairs, &exec.Pair{Key: exec.AsValue(k), Value: exec.AsValue(m.Extra[k])})
		}
		msgs[i] = d
	}
	data := map[string]any{}
	for k, v := range t.cfg.specials {
		data[k] = v
	}
	if t.cfg.extra != nil {
		data["additional_special_tokens"] = t.cfg.extra
	}
	now := t.chat.now
	data["strftime_now"] = func(format string) string { return strftime(now(), format) }
	data["raise_exception"] = func(msg string) (string, error) { return "", errors.New(msg) }
	for k, v := range vars {
		data[k] = v
	}
	data["messages"] = msgs
	data["add_generation_prompt"] = addGenerationPrompt
	out, err := render(t.chat.tpl, data)
	if err != nil {
		return "", fmt.Errorf("tokenizer: chat template: %w", err)
	}
	return out, nil
}

// parseJinja and render turn a panic inside gonja into an error: a
// template comes from a model's files and must never crash the engine.
func parseJinja(name string, cfg *config.Config, l loaders.Loader) (tpl *exec.Template, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("parsing the template panicked: %v", r)
		}
	}()
	return exec.NewTemplate(name, cfg, l, environment())
}

func render(tpl *exec.Template, data map[string]any) (out string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("rendering panicked: %v", r)
		}
	}()
	return tpl.ExecuteToString(exec.NewContext(data))
}

// strftime formats tm with Python's strftime directives.
func strftime(tm time.Time, format string) string {
	var sb strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' || i+1 == len(format) {
			sb.WriteByte(c)
			continue
		}
		i++
		switch format[i] {
		case 'd':
			fmt.Fprintf(&sb, "%02d", tm.Day())
		case 'e':
			fmt.Fprintf(&sb, "%2d", tm.Day())
		case 'm':
			fmt.Fprintf(&sb, "%02d", int(tm.Month()))
		case 'Y':
			fmt.Fprintf(&sb, "%d", tm.Year())
		case 'y':
			fmt.Fprintf(&sb, "%02d", tm.Year()%100)
		case 'H':
			fmt.Fprintf(&sb, "%02d", tm.Hour())
		case 'I':
			h := tm.Hour() % 12
			if h == 0 {
				h = 12
			}
			fmt.Fprintf(&sb, "%02d", h)
		case 'M':
			fmt.Fprintf(&sb, "%02d", tm.Minute())
		case 'S':
			fmt.Fprintf(&sb, "%02d", tm.Second())
		case 'p':
			sb.WriteString(tm.Format("PM"))
		case 'b', 'h':
			sb.WriteString(tm.Format("Jan"))
		case 'B':
			sb.WriteString(tm.Format("January"))
		case 'a':
			sb.WriteString(tm.Format("Mon"))
		case 'A':
			sb.WriteString(tm.Format("Monday"))
		case 'j':
			fmt.Fprintf(&sb, "%03d", tm.YearDay())
		case 'Z':
			sb.WriteString(tm.Format("MST"))
		case 'z':
			sb.WriteString(tm.Format("-0700"))
		case '%':
			sb.WriteByte('%')
		default:
			sb.WriteByte('%')
			sb.WriteByte(format[i])
		}
	}
	return sb.String()
}

// toJSONFilter is transformers' tojson: json.dumps(x, ensure_ascii=False,
// indent=None, separators=None, sort_keys=False). Go maps have no order, so
// their keys are sorted; Jinja dict literals keep theirs.
func toJSONFilter(e *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	indent, ascii := -1, false
	for k, v := range params.KwArgs {
		switch k {
		case "indent":
			if v.IsInteger() {
				indent = v.Integer()
			}
		case "ensure_ascii":
			ascii = v.IsTrue()
		}
	}
	if len(params.Args) > 0 && params.Args[0].IsInteger() {
		indent = params.Args[0].Integer()
	}
	var b bytes.Buffer
	w := pyJSON{buf: &b, indent: indent, ascii: ascii}
	if err := w.value(in.Interface(), 0); err != nil {
		return exec.AsValue(fmt.Errorf("tojson: %w", err))
	}
	return exec.AsSafeValue(b.String())
}

// pyJSON writes values as Python's json.dumps does.
type pyJSON struct {
	buf    *bytes.Buffer
	indent int // -1: one line with ", " and ": "
	ascii  bool
}

func (w pyJSON) newline(depth int) {
	if w.indent >= 0 {
		w.buf.WriteByte('\n')
		w.buf.WriteString(strings.Repeat(" ", w.indent*depth))
	}
}

func (w pyJSON) sep() {
	if w.indent >= 0 {
		w.buf.WriteByte(',')
	} else {
		w.buf.WriteString(", ")
	}
}

func (w pyJSON) value(v any, depth int) error {
	switch x := v.(type) {
	case nil:
		w.buf.WriteString("null")
		return nil
	case *exec.Value:
		if x == nil || x.IsNil() {
			w.buf.WriteString("null")
			return nil
		}
		return w.value(x.Interface(), depth)
	case *exec.Dict:
		keys := make([]string, len(x.Pairs))
		vals := make([]any, len(x.Pairs))
		for i, p := range x.Pairs {
			keys[i], vals[i] = p.Key.String(), p.Value.Interface()
		}
		return w.object(keys, vals, depth)
	case exec.Dict:
		return w.value(&x, depth)
	case string:
		w.str(x)
		return nil
	case bool:
		if x {
			w.buf.WriteString("true")
		} else {
			w.buf.WriteString("false")
		}
		return nil
	case json.Number:
		w.buf.WriteString(string(x))
		return nil
	case float32:
		w.float(float64(x))
		return nil
	case float64:
		w.float(x)
		return nil
	case json.Marshaler:
		return w.viaJSON(x, depth)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		w.buf.WriteString(strconv.FormatInt(rv.Int(), 10))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		w.buf.WriteString(strconv.FormatUint(rv.Uint(), 10))
	case reflect.Slice, reflect.Array:
		if rv.Len() == 0 {
			w.buf.WriteString("[]")
			return nil
		}
		w.buf.WriteByte('[')
		for i := 0; i < rv.Len(); i++ {
			if i > 0 {
				w.sep()
			}
			w.newline(depth + 1)
			if err := w.value(rv.Index(i).Interface(), depth+1); err != nil {
				return err
			}
		}
		w.newline(depth)
		w.buf.WriteByte(']')
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return fmt.Errorf("map keys must be strings, not %s", rv.Type().Key())
		}
		keys := make([]string, 0, rv.Len())
		for _, k := range rv.MapKeys() {
			keys = append(keys, k.String())
		}
		sort.Strings(keys)
		vals := make([]any, len(keys))
		for i, k := range keys {
			vals[i] = rv.MapIndex(reflect.ValueOf(k).Convert(rv.Type().Key())).Interface()
		}
		return w.object(keys, vals, depth)
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			w.buf.WriteString("null")
			return nil
		}
		return w.value(rv.Elem().Interface(), depth)
	default:
		return w.viaJSON(v, depth)
	}
	return nil
}

// viaJSON writes a value through encoding/json (structs, Marshalers).
func (w pyJSON) viaJSON(v any, depth int) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return err
	}
	return w.value(x, depth)
}

func (w pyJSON) object(keys []string, vals []any, depth int) error {
	if len(keys) == 0 {
		w.buf.WriteString("{}")
		return nil
	}
	w.buf.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			w.sep()
		}
		w.newline(depth + 1)
		w.str(k)
		w.buf.WriteString(": ")
		if err := w.value(vals[i], depth+1); err != nil {
			return err
		}
	}
	w.newline(depth)
	w.buf.WriteByte('}')
	return nil
}

// float writes repr(float): shortest digits, ".0" on integers, exponent
// from 1e16.
func (w pyJSON) float(f float64) {
	switch {
	case math.IsNaN(f):
		w.buf.WriteString("NaN")
		return
	case math.IsInf(f, 1):
		w.buf.WriteString("Infinity")
		return
	case math.IsInf(f, -1):
		w.buf.WriteString("-Infinity")
		return
	}
	a := math.Abs(f)
	if a != 0 && (a < 1e-4 || a >= 1e16) {
		w.buf.WriteString(strconv.FormatFloat(f, 'e', -1, 64))
		return
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	w.buf.WriteString(s)
}

func (w pyJSON) str(s string) {
	b := w.buf
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			switch {
			case r < 0x20 || (w.ascii && r == 0x7f):
				fmt.Fprintf(b, `\u%04x`, r)
			case w.ascii && r > 0x7f:
				if r > 0xFFFF {
					r -= 0x10000
					fmt.Fprintf(b, `\u%04x\u%04x`, 0xD800+(r>>10), 0xDC00+(r&0x3FF))
				} else {
					fmt.Fprintf(b, `\u%04x`, r)
				}
			default:
				var tmp [4]byte
				n := utf8.EncodeRune(tmp[:], r)
				b.Write(tmp[:n])
			}
		}
	}
	b.WriteByte('"')
}
