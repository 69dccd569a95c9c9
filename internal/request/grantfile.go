package request

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/cfaccess/reconciler/internal/desired"
)

// Grant is the grant a request adds.
type Grant struct {
	User, Role, Reason string
	NotBefore          time.Time // zero: from when it is applied
	Expires            time.Time
	BreakGlass         bool
}

// Edit is one file of the repository changed, or made: Path relative to
// the repository's root, Data the whole new content.
type Edit struct {
	Path    string
	Data    []byte
	Created bool
	// Line is the line of the new grant.
	Line int
}

// Add returns the edit that adds g to the repository read as src, in the
// file and the style the repository already uses: after the last grant of
// the file that holds the most (flow `- {users: …}` or block, as that
// grant is written, at its indentation). A repository without grants gets
// a grants.yaml at its root. src is not changed.
func Add(src *desired.Source, repo *desired.Repo, g Grant) (Edit, error) {
	counts := map[string]int{}
	for _, gr := range repo.Grants {
		counts[gr.Pos.File]++
	}
	var file *desired.File
	for i := range src.YAML {
		f := &src.YAML[i]
		if counts[f.Path] > 0 && (file == nil || counts[f.Path] >= counts[file.Path]) {
			file = f
		}
	}
	if file == nil {
		p := path.Join(src.Root, "grants.yaml")
		for _, f := range src.YAML {
			if f.Path == p {
				return Edit{}, fmt.Errorf("%s exists but holds no grants: add a grants: list to it", p)
			}
		}
		return Edit{Path: p, Data: []byte("grants:\n" + render(g, "  ", true)), Created: true, Line: 2}, nil
	}
	last, err := lastGrant(file.Data)
	if err != nil {
		return Edit{}, fmt.Errorf("%s: %w", file.Path, err)
	}
	indent := strings.Repeat(" ", max(last.Column-3, 0))
	end := endLine(last)
	lines := strings.SplitAfter(string(file.Data), "\n")
	if end > len(lines) {
		end = len(lines)
	}
	var b strings.Builder
	for _, l := range lines[:end] {
		b.WriteString(l)
	}
	if !strings.HasSuffix(b.String(), "\n") {
		b.WriteString("\n")
	}
	b.WriteString(render(g, indent, last.Style&yaml.FlowStyle != 0))
	for _, l := range lines[end:] {
		b.WriteString(l)
	}
	return Edit{Path: file.Path, Data: []byte(b.String()), Line: end + 1}, nil
}

// lastGrant finds the last item of the last top-level grants list in a
// file's documents.
func lastGrant(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var last *yaml.Node
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); err != nil {
			break
		}
		if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
			continue
		}
		m := doc.Content[0]
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == "grants" && m.Content[i+1].Kind == yaml.SequenceNode && len(m.Content[i+1].Content) > 0 {
				if m.Content[i+1].Style&yaml.FlowStyle != 0 {
					return nil, fmt.Errorf("its grants are a flow list ([…]): write them as a block list (- …) to add one")
				}
				items := m.Content[i+1].Content
				last = items[len(items)-1]
			}
		}
	}
	if last == nil {
		return nil, fmt.Errorf("no grants list found")
	}
	return last, nil
}

// endLine is the last line a node spans.
func endLine(n *yaml.Node) int {
	end := n.Line
	if n.Kind == yaml.ScalarNode && (n.Style&(yaml.LiteralStyle|yaml.FoldedStyle)) != 0 {
		end += strings.Count(strings.TrimRight(n.Value, "\n"), "\n") + 1
	}
	for _, c := range n.Content {
		end = max(end, endLine(c))
	}
	return end
}

// render writes the grant as a list item at indent, flow or block.
func render(g Grant, indent string, flow bool) string {
	fields := [][2]string{{"users", "[" + g.User + "]"}, {"roles", "[" + g.Role + "]"}, {"reason", quote(g.Reason)}}
	if g.BreakGlass {
		fields = append(fields, [2]string{"break_glass", "true"})
	}
	if !g.NotBefore.IsZero() {
		fields = append(fields, [2]string{"not_before", g.NotBefore.UTC().Format(time.RFC3339)})
	}
	fields = append(fields, [2]string{"expires", g.Expires.UTC().Format(time.RFC3339)})
	var b strings.Builder
	if flow {
		b.WriteString(indent + "- {")
		for i, f := range fields {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(f[0] + ": " + f[1])
		}
		b.WriteString("}\n")
		return b.String()
	}
	for i, f := range fields {
		lead := indent + "  "
		if i == 0 {
			lead = indent + "- "
		}
		b.WriteString(lead + f[0] + ": " + f[1] + "\n")
	}
	return b.String()
}

// quote writes s as a YAML double-quoted scalar (JSON's escapes are
// YAML's).
func quote(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}
