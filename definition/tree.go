package definition

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"go.yaml.in/yaml/v3"
)

// The three formats are first decoded into one format-neutral tree that
// keeps each value's source line. The strict binder (bind.go) then walks
// that tree once, so unknown fields, type errors and their messages are the
// same whatever the format.

type nodeKind int

const (
	nullNode nodeKind = iota
	mapNode
	listNode
	stringNode
	boolNode
	intNode
	floatNode
)

func (k nodeKind) String() string {
	return [...]string{"null", "an object", "a list", "a string", "a boolean", "an integer", "a number"}[k]
}

type node struct {
	kind  nodeKind
	line  int // 1-based; 0 when the format does not tell
	keys  []string
	vals  []*node // map values, in keys order
	items []*node
	str   string
	b     bool
	i     int64
	f     float64
}

func (n *node) get(key string) *node {
	for i, k := range n.keys {
		if k == key {
			return n.vals[i]
		}
	}
	return nil
}

// Format is a definition file format, chosen by the file's extension.
type Format string

const (
	JSON Format = "json"
	TOML Format = "toml"
	YAML Format = "yaml"
)

// FormatOf returns the format for a file name, or "" when the extension is
// not one Strata reads.
func FormatOf(filename string) Format {
	switch {
	case strings.HasSuffix(filename, ".json"):
		return JSON
	case strings.HasSuffix(filename, ".toml"):
		return TOML
	case strings.HasSuffix(filename, ".yaml"), strings.HasSuffix(filename, ".yml"):
		return YAML
	}
	return ""
}

// syntaxError is a document that does not parse at all.
type syntaxError struct {
	line int
	msg  string
}

func (e *syntaxError) Error() string { return e.msg }

func parseTree(data []byte, f Format) (*node, error) {
	switch f {
	case JSON:
		return parseJSON(data)
	case TOML:
		return parseTOML(data)
	case YAML:
		return parseYAML(data)
	}
	return nil, &syntaxError{msg: fmt.Sprintf("unknown format %q", f)}
}

// --- JSON ---

func parseJSON(data []byte) (*node, error) {
	lines := newLineIndex(data)
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	p := &jsonParser{dec: dec, data: data, lines: lines}
	n, err := p.value()
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &syntaxError{line: p.line(), msg: "unexpected data after the top-level object"}
	}
	return n, nil
}

type jsonParser struct {
	dec   *json.Decoder
	data  []byte
	lines lineIndex
}

// line returns the line of the next token: InputOffset points just past
// the previous token, so skip the separators in between.
func (p *jsonParser) line() int {
	off := int(p.dec.InputOffset())
	for off < len(p.data) && strings.IndexByte(" \t\r\n:,", p.data[off]) >= 0 {
		off++
	}
	return p.lines.line(off)
}

func (p *jsonParser) token() (json.Token, int, error) {
	line := p.line()
	tok, err := p.dec.Token()
	if err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, p.lines.line(int(se.Offset)), &syntaxError{line: p.lines.line(int(se.Offset)), msg: "invalid JSON: " + se.Error()}
		}
		if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, line, &syntaxError{line: line, msg: "invalid JSON: unexpected end of file"}
		}
		return nil, line, &syntaxError{line: line, msg: "invalid JSON: " + err.Error()}
	}
	return tok, line, nil
}

func (p *jsonParser) value() (*node, error) {
	tok, line, err := p.token()
	if err != nil {
		return nil, err
	}
	return p.valueFrom(tok, line)
}

func (p *jsonParser) valueFrom(tok json.Token, line int) (*node, error) {
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			n := &node{kind: mapNode, line: line}
			for p.dec.More() {
				ktok, kline, err := p.token()
				if err != nil {
					return nil, err
				}
				key := ktok.(string) // the decoder guarantees a string key here
				if n.get(key) != nil {
					return nil, &syntaxError{line: kline, msg: fmt.Sprintf("duplicate key %q", key)}
				}
				v, err := p.value()
				if err != nil {
					return nil, err
				}
				if v.line == 0 {
					v.line = kline
				}
				n.keys = append(n.keys, key)
				n.vals = append(n.vals, v)
			}
			if _, _, err := p.token(); err != nil { // '}'
				return nil, err
			}
			return n, nil
		case '[':
			n := &node{kind: listNode, line: line}
			for p.dec.More() {
				v, err := p.value()
				if err != nil {
					return nil, err
				}
				n.items = append(n.items, v)
			}
			if _, _, err := p.token(); err != nil { // ']'
				return nil, err
			}
			return n, nil
		}
	case string:
		return &node{kind: stringNode, line: line, str: t}, nil
	case bool:
		return &node{kind: boolNode, line: line, b: t}, nil
	case nil:
		return &node{kind: nullNode, line: line}, nil
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return &node{kind: intNode, line: line, i: i}, nil
		}
		f, err := t.Float64()
		if err != nil {
			return nil, &syntaxError{line: line, msg: fmt.Sprintf("number %s is out of range", t)}
		}
		return &node{kind: floatNode, line: line, f: f}, nil
	}
	return nil, &syntaxError{line: line, msg: fmt.Sprintf("unexpected JSON token %v", tok)}
}

// lineIndex maps byte offsets to 1-based line numbers.
type lineIndex []int

func newLineIndex(data []byte) lineIndex {
	idx := lineIndex{0}
	for i, c := range data {
		if c == '\n' {
			idx = append(idx, i+1)
		}
	}
	return idx
}

func (li lineIndex) line(off int) int {
	return sort.Search(len(li), func(i int) bool { return li[i] > off })
}

// --- YAML ---

func parseYAML(data []byte) (*node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return nil, &syntaxError{msg: "the file is empty"}
		}
		return nil, yamlError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		return nil, &syntaxError{line: extra.Line, msg: "a definition file holds one YAML document; found a second one"}
	}
	return fromYAML(&doc, 0)
}

func yamlError(err error) error {
	msg := err.Error()
	line := 0
	// yaml.v3 reports "yaml: line N: message".
	if _, scanErr := fmt.Sscanf(msg, "yaml: line %d:", &line); scanErr == nil {
		msg = strings.TrimSpace(msg[strings.Index(msg, ":")+1:])
		msg = strings.TrimSpace(msg[strings.Index(msg, ":")+1:])
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	return &syntaxError{line: line, msg: "invalid YAML: " + msg}
}

func fromYAML(y *yaml.Node, depth int) (*node, error) {
	if depth > 64 {
		return nil, &syntaxError{line: y.Line, msg: "invalid YAML: nested too deeply"}
	}
	switch y.Kind {
	case yaml.DocumentNode:
		if len(y.Content) == 0 {
			return &node{kind: nullNode, line: y.Line}, nil
		}
		return fromYAML(y.Content[0], depth+1)
	case yaml.AliasNode:
		return nil, &syntaxError{line: y.Line, msg: "YAML aliases (*name) are not supported in definitions: write the value out"}
	case yaml.MappingNode:
		n := &node{kind: mapNode, line: y.Line}
		for i := 0; i+1 < len(y.Content); i += 2 {
			k, v := y.Content[i], y.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				return nil, &syntaxError{line: k.Line, msg: "invalid YAML: a key must be a plain string"}
			}
			if k.Tag == "!!merge" {
				return nil, &syntaxError{line: k.Line, msg: "YAML merge keys (<<) are not supported in definitions: write the fields out"}
			}
			val, err := fromYAML(v, depth+1)
			if err != nil {
				return nil, err
			}
			n.keys = append(n.keys, k.Value)
			n.vals = append(n.vals, val)
		}
		return n, nil
	case yaml.SequenceNode:
		n := &node{kind: listNode, line: y.Line}
		for _, c := range y.Content {
			val, err := fromYAML(c, depth+1)
			if err != nil {
				return nil, err
			}
			n.items = append(n.items, val)
		}
		return n, nil
	case yaml.ScalarNode:
		n := &node{line: y.Line}
		switch y.ShortTag() {
		case "!!null":
			n.kind = nullNode
		case "!!bool":
			n.kind = boolNode
			if err := y.Decode(&n.b); err != nil {
				return nil, yamlError(err)
			}
		case "!!int":
			n.kind = intNode
			if err := y.Decode(&n.i); err != nil {
				return nil, &syntaxError{line: y.Line, msg: fmt.Sprintf("integer %s is out of range", y.Value)}
			}
		case "!!float":
			n.kind = floatNode
			if err := y.Decode(&n.f); err != nil {
				return nil, yamlError(err)
			}
		case "!!str":
			n.kind = stringNode
			n.str = y.Value
		default:
			return nil, &syntaxError{line: y.Line, msg: fmt.Sprintf("YAML tag %s is not supported in definitions", y.ShortTag())}
		}
		return n, nil
	}
	return nil, &syntaxError{line: y.Line, msg: "invalid YAML document"}
}

// --- TOML ---

// BurntSushi/toml does not expose key positions, so TOML field errors carry
// no line; syntax errors do.
func parseTOML(data []byte) (*node, error) {
	var m map[string]any
	if _, err := toml.Decode(string(data), &m); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &syntaxError{line: pe.Position.Line, msg: "invalid TOML: " + pe.Message}
		}
		return nil, &syntaxError{msg: "invalid TOML: " + err.Error()}
	}
	return fromTOML(m)
}

func fromTOML(v any) (*node, error) {
	switch t := v.(type) {
	case map[string]any:
		n := &node{kind: mapNode}
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys) // Go maps lose the file's order; sorted keeps errors deterministic
		for _, k := range keys {
			c, err := fromTOML(t[k])
			if err != nil {
				return nil, err
			}
			n.keys = append(n.keys, k)
			n.vals = append(n.vals, c)
		}
		return n, nil
	case []map[string]any:
		n := &node{kind: listNode}
		for _, e := range t {
			c, err := fromTOML(e)
			if err != nil {
				return nil, err
			}
			n.items = append(n.items, c)
		}
		return n, nil
	case []any:
		n := &node{kind: listNode}
		for _, e := range t {
			c, err := fromTOML(e)
			if err != nil {
				return nil, err
			}
			n.items = append(n.items, c)
		}
		return n, nil
	case string:
		return &node{kind: stringNode, str: t}, nil
	case bool:
		return &node{kind: boolNode, b: t}, nil
	case int64:
		return &node{kind: intNode, i: t}, nil
	case float64:
		if math.IsInf(t, 0) || math.IsNaN(t) {
			return &node{kind: floatNode, f: 0}, nil
		}
		return &node{kind: floatNode, f: t}, nil
	case time.Time:
		return nil, &syntaxError{msg: "a TOML date/time value: no definition field is a date; quote it if a string was meant"}
	}
	return nil, &syntaxError{msg: fmt.Sprintf("unsupported TOML value of type %T", v)}
}
