package plans

import (
	"fmt"
	"regexp"
	"strings"
	"text/template"
	"text/template/parse"
)

// Templates inside expressions (a filter, a with_column expr) are escaped
// the way html/template escapes HTML: each action's output becomes one
// literal of the expression language, so a param cannot change the
// expression's shape (min_price=0 OR TRUE must not widen a filter).
//
//   - Outside quotes, a number (50, -2.5, 1e3) or true/false is written as
//     is; anything else becomes a quoted string literal ('0 OR TRUE'), which
//     then fails the expression's type check rather than run as code.
//   - Inside a '...' string literal, quotes in the value are doubled.
//   - Inside a "..." quoted identifier, double quotes are doubled.
//   - {{ ... | raw }} inserts the text as written: the plan's author marks
//     where raw expression text is wanted.

// exprPath matches the template paths whose text is an expression.
var exprPath = regexp.MustCompile(`^steps\[\d+\]\.(filter|with_column\.expr)$`)

var numberLit = regexp.MustCompile(`^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$`)

// exprFuncs are the escapers the rewritten templates call.
var exprFuncs = template.FuncMap{
	"raw":          func(v any) string { return fmt.Sprint(v) },
	"_sluiceValue": exprValue,
	"_sluiceStr":   func(v any) string { return strings.ReplaceAll(fmt.Sprint(v), "'", "''") },
	"_sluiceIdent": func(v any) string { return strings.ReplaceAll(fmt.Sprint(v), `"`, `""`) },
}

// exprValue is one action's output outside quotes, as a literal.
func exprValue(v any) string {
	s := fmt.Sprint(v)
	if numberLit.MatchString(s) {
		return s
	}
	switch strings.ToLower(s) {
	case "true", "false":
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// quoteState is where an action sits in the expression text.
type quoteState byte

const (
	outside quoteState = iota
	inString
	inIdent
)

// escapeExpr rewrites t so that each action in the expression template
// ends with the escaper for its place; it fails when an if/range/with
// leaves the quotes open differently in its branches.
func escapeExpr(t *template.Template) error {
	_, err := escapeList(t.Tree, t.Tree.Root, outside)
	return err
}

func escapeList(tr *parse.Tree, l *parse.ListNode, st quoteState) (quoteState, error) {
	if l == nil {
		return st, nil
	}
	for _, n := range l.Nodes {
		var err error
		switch x := n.(type) {
		case *parse.TextNode:
			st = scanQuotes(x.Text, st)
		case *parse.ActionNode:
			if len(x.Pipe.Decl) > 0 {
				continue // {{ $x := ... }} prints nothing
			}
			addEscaper(tr, x.Pipe, st)
		case *parse.IfNode:
			st, err = escapeBranches(tr, &x.BranchNode, st)
		case *parse.RangeNode:
			st, err = escapeBranches(tr, &x.BranchNode, st)
		case *parse.WithNode:
			st, err = escapeBranches(tr, &x.BranchNode, st)
		}
		if err != nil {
			return st, err
		}
	}
	return st, nil
}

func escapeBranches(tr *parse.Tree, b *parse.BranchNode, st quoteState) (quoteState, error) {
	a, err := escapeList(tr, b.List, st)
	if err != nil {
		return st, err
	}
	e, err := escapeList(tr, b.ElseList, st)
	if err != nil {
		return st, err
	}
	if a != e || (b.NodeType == parse.NodeRange && a != st) {
		return st, fmt.Errorf("template: the branches of {{%s}} leave a quote open differently; close quotes inside each branch", branchName(b))
	}
	return a, nil
}

// scanQuotes follows the quotes of literal expression text.
func scanQuotes(text []byte, st quoteState) quoteState {
	for _, c := range text {
		switch {
		case st == outside && c == '\'':
			st = inString
		case st == outside && c == '"':
			st = inIdent
		case st == inString && c == '\'', st == inIdent && c == '"':
			st = outside // a doubled quote closes and reopens
		}
	}
	return st
}

func addEscaper(tr *parse.Tree, p *parse.PipeNode, st quoteState) {
	if n := len(p.Cmds); n > 0 {
		if id, ok := p.Cmds[n-1].Args[0].(*parse.IdentifierNode); ok && id.Ident == "raw" {
			return
		}
	}
	name := "_sluiceValue"
	switch st {
	case inString:
		name = "_sluiceStr"
	case inIdent:
		name = "_sluiceIdent"
	}
	p.Cmds = append(p.Cmds, &parse.CommandNode{NodeType: parse.NodeCommand, Pos: p.Pos,
		Args: []parse.Node{parse.NewIdentifier(name).SetTree(tr).SetPos(p.Pos)}})
}

// Type names the branch's action for messages.
func branchName(b *parse.BranchNode) string {
	switch b.NodeType {
	case parse.NodeIf:
		return "if"
	case parse.NodeRange:
		return "range"
	}
	return "with"
}
