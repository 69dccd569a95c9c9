package desired

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/cfaccess/reconciler/internal/suggest"
)

// maxAliasNodes bounds how many YAML nodes one file may reach through
// aliases. Aliases are handy for sharing a member list; an alias bomb
// (aliases of aliases, growing exponentially) must fail, not hang.
const maxAliasNodes = 10_000

// fileParser walks the YAML nodes of one file, recording diagnostics with
// positions.
type fileParser struct {
	file       string
	diags      *Diagnostics
	aliasNodes int
	aliasBomb  bool
	// unicodeEmails: Options.UnicodeEmails.
	unicodeEmails bool
}

func (p *fileParser) pos(n *yaml.Node) Pos {
	if n == nil {
		return Pos{File: p.file}
	}
	return Pos{File: p.file, Line: n.Line}
}

func (p *fileParser) errorf(n *yaml.Node, format string, args ...any) {
	*p.diags = append(*p.diags, Diagnostic{Pos: p.pos(n), Severity: Error, Message: fmt.Sprintf(format, args...)})
}

func (p *fileParser) warnf(n *yaml.Node, format string, args ...any) {
	*p.diags = append(*p.diags, Diagnostic{Pos: p.pos(n), Severity: Warning, Message: fmt.Sprintf(format, args...)})
}

// resolve follows an alias, charging the nodes it reaches against the file's
// alias budget. It returns nil once the budget is spent.
func (p *fileParser) resolve(n *yaml.Node) *yaml.Node {
	if n == nil || n.Kind != yaml.AliasNode {
		return n
	}
	if p.aliasBomb {
		return nil
	}
	budget := maxAliasNodes - p.aliasNodes
	used := countNodes(n.Alias, budget+1, 0)
	p.aliasNodes += used
	if p.aliasNodes > maxAliasNodes {
		p.aliasBomb = true
		p.errorf(n, "YAML aliases expand to more than %d nodes in this file: write the values out, or use groups", maxAliasNodes)
		return nil
	}
	return p.resolve(n.Alias)
}

// countNodes counts the nodes under n, following aliases, and stops early
// once the count passes limit.
func countNodes(n *yaml.Node, limit, depth int) int {
	if n == nil || depth > 100 {
		return limit
	}
	if n.Kind == yaml.AliasNode {
		return countNodes(n.Alias, limit, depth+1)
	}
	c := 1
	for _, ch := range n.Content {
		if c > limit {
			return c
		}
		c += countNodes(ch, limit-c, depth+1)
	}
	return c
}

// pair is one key and value of a mapping.
type pair struct {
	key   string
	keyN  *yaml.Node
	value *yaml.Node
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "empty"
		case "!!str":
			return "a string"
		case "!!int", "!!float":
			return "a number"
		case "!!bool":
			return "true or false"
		case "!!timestamp":
			return "a time"
		}
		return "a " + strings.TrimPrefix(n.Tag, "!!") + " value"
	}
	return "something else"
}

// mapping returns the pairs of a mapping node, with merge keys ("<<")
// expanded and duplicate keys reported. what names the object in messages.
// A null node is an empty mapping.
func (p *fileParser) mapping(n *yaml.Node, what string) ([]pair, bool) {
	n = p.resolve(n)
	if n == nil || isNull(n) {
		return nil, n != nil
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s must be a mapping, not %s", what, kindName(n))
		return nil, false
	}
	var out []pair
	seen := map[string]int{} // key -> line
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := p.resolve(n.Content[i]), n.Content[i+1]
		if k == nil {
			return nil, false
		}
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			p.errorf(k, "keys of %s must be plain strings", what)
			continue
		}
		if line, dup := seen[k.Value]; dup {
			p.errorf(k, "key %q in %s already set at line %d", k.Value, what, line)
			continue
		}
		seen[k.Value] = k.Line
		out = append(out, pair{key: k.Value, keyN: k, value: v})
	}
	// Explicit keys win over merged ones, whatever their order (YAML's
	// merge key rule).
	for _, m := range merges {
		src := p.resolve(m)
		if src == nil {
			return nil, false
		}
		var maps []*yaml.Node
		switch src.Kind {
		case yaml.MappingNode:
			maps = []*yaml.Node{src}
		case yaml.SequenceNode:
			for _, e := range src.Content {
				if e = p.resolve(e); e != nil && e.Kind == yaml.MappingNode {
					maps = append(maps, e)
				}
			}
		}
		if len(maps) == 0 {
			p.errorf(m, "a merge key (<<) takes a mapping or a list of mappings")
			continue
		}
		for _, mp := range maps {
			sub, _ := p.mapping(mp, what)
			for _, pr := range sub {
				if _, dup := seen[pr.key]; !dup {
					seen[pr.key] = pr.keyN.Line
					out = append(out, pr)
				}
			}
		}
	}
	return out, true
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// unknownKey reports a key that is not one of known, with a suggestion. The
// value is never echoed: it might be a credential.
func (p *fileParser) unknownKey(pr pair, what string, known []string) {
	hint := suggest.Hint(pr.key, known)
	if hint == "" {
		sorted := append([]string(nil), known...)
		sort.Strings(sorted)
		hint = " (expected one of: " + strings.Join(sorted, ", ") + ")"
	}
	p.errorf(pr.keyN, "unknown key %q in %s%s", pr.key, what, hint)
}

// str reads a scalar as a string. A null value is "".
func (p *fileParser) str(n *yaml.Node, what string) (string, bool) {
	n = p.resolve(n)
	if n == nil {
		return "", false
	}
	if isNull(n) {
		return "", true
	}
	if n.Kind != yaml.ScalarNode {
		p.errorf(n, "%s must be a string, not %s", what, kindName(n))
		return "", false
	}
	return n.Value, true
}

func (p *fileParser) boolean(n *yaml.Node, what string) (bool, bool) {
	n = p.resolve(n)
	if n == nil {
		return false, false
	}
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		p.errorf(n, "%s must be true or false, not %s", what, kindName(n))
		return false, false
	}
	b, err := strconv.ParseBool(strings.ToLower(n.Value))
	if err != nil {
		p.errorf(n, "%s must be true or false", what)
		return false, false
	}
	return b, true
}

func (p *fileParser) integer(n *yaml.Node, what string) (int, bool) {
	n = p.resolve(n)
	if n == nil {
		return 0, false
	}
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		p.errorf(n, "%s must be a whole number, not %s", what, kindName(n))
		return 0, false
	}
	v, err := strconv.Atoi(n.Value)
	if err != nil {
		p.errorf(n, "%s must be a whole number", what)
		return 0, false
	}
	return v, true
}

// item is a string from a list, with the node and position it came from.
type item struct {
	value string
	node  *yaml.Node
	pos   Pos
}

// list reads a list of strings. A single string is accepted as a list of
// one; null is an empty list.
func (p *fileParser) list(n *yaml.Node, what string) ([]item, bool) {
	n = p.resolve(n)
	if n == nil {
		return nil, false
	}
	if isNull(n) {
		return nil, true
	}
	if n.Kind == yaml.ScalarNode {
		return []item{{n.Value, n, p.pos(n)}}, true
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "%s must be a list of strings, not %s", what, kindName(n))
		return nil, false
	}
	out := make([]item, 0, len(n.Content))
	ok := true
	for _, e := range n.Content {
		alias := e.Kind == yaml.AliasNode
		e = p.resolve(e)
		if e == nil {
			return nil, false
		}
		if alias && e.Kind == yaml.SequenceNode {
			// An alias of a list inside a list is flattened, so that
			// "members: [*sre, dave@example.com]" reads naturally.
			sub, subOK := p.list(e, what)
			out = append(out, sub...)
			ok = ok && subOK
			continue
		}
		if e.Kind != yaml.ScalarNode || isNull(e) {
			p.errorf(e, "%s must be a list of strings; this entry is %s", what, kindName(e))
			ok = false
			continue
		}
		out = append(out, item{e.Value, e, p.pos(e)})
	}
	return out, ok
}
