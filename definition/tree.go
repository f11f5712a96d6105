package definition

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"sort"
	"strconv"
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
	line  int    // 1-based; 0 when the format does not tell
	file  string // set when drop-ins or a template merge files (see merge.go)
	keys  []string
	vals  []*node // map values, in keys order
	items []*node
	str   string
	src   string // a scalar as written ("0027", "1e3", "True"); "" when the format does not keep it (TOML numbers)
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
	line   int
	path   string // the field path, when known
	msg    string
	parser bool // msg holds the parser's own words, which may quote the file's text
}

func (e *syntaxError) Error() string { return e.msg }

// maxDepth bounds how many objects and lists may sit inside one another. A
// real definition needs about 12; the limit keeps a hostile file from
// exhausting the stack or the parsers' time (BurntSushi/toml is quadratic
// in the depth of inline tables and dotted keys).
const maxDepth = 64

func tooDeep(line int) error {
	return &syntaxError{line: line, msg: fmt.Sprintf("nested more than %d levels (objects and lists inside one another): a definition needs far fewer", maxDepth)}
}

func duplicateKey(line int, path string) error {
	return &syntaxError{line: line, path: path, msg: "duplicate key: give each key once"}
}

// parseTree decodes a document into a tree. A parser's message may quote
// the text it stumbled on, which is the value itself when an unquoted key
// or password is the culprit; the value is not bound yet, so whether it is
// a secret cannot be known. In a file that may hold a secret, the parser's
// words are therefore withheld and only the line is given.
func parseTree(data []byte, f Format) (*node, error) {
	n, err := decodeTree(data, f)
	var se *syntaxError
	if errors.As(err, &se) && se.parser && mayHoldSecret(data) {
		return nil, &syntaxError{line: se.line, path: se.path, msg: fmt.Sprintf("invalid %s here (the parser's description is withheld: this file has a key or password field, whose value it could quote)", strings.ToUpper(string(f)))}
	}
	return n, err
}

// secretNames matches what could name a secret field: the model's secret
// fields, a keyring's "key", and escapes (\u0070assword, YAML's "\
// newline") that could spell one.
var secretNames = regexp.MustCompile(`(?i)secret|passw|\bkey\b|\\[uUx\r\n]`)

func mayHoldSecret(data []byte) bool {
	return secretNames.Match(data)
}

func decodeTree(data []byte, f Format) (*node, error) {
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
	n, err := p.value("", 0)
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
			// Both offsets may fall short of the bad token (Token's own
			// lags); neither passes it.
			off := int(max(se.Offset, p.dec.InputOffset()))
			for off < len(p.data) && strings.IndexByte(" \t\r\n", p.data[off]) >= 0 {
				off++
			}
			return nil, p.lines.line(off), &syntaxError{line: p.lines.line(off), msg: "invalid JSON: " + se.Error(), parser: true}
		}
		if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, line, &syntaxError{line: line, msg: "invalid JSON: unexpected end of file"}
		}
		return nil, line, &syntaxError{line: line, msg: "invalid JSON: " + err.Error(), parser: true}
	}
	return tok, line, nil
}

// value reads the value at path; depth counts the objects and lists
// around it.
func (p *jsonParser) value(path string, depth int) (*node, error) {
	tok, line, err := p.token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); ok {
		if depth >= maxDepth {
			return nil, tooDeep(line)
		}
		if d == '{' {
			return p.object(path, line, depth+1)
		}
		return p.list(path, line, depth+1)
	}
	return scalarJSON(tok, line)
}

func (p *jsonParser) object(path string, line, depth int) (*node, error) {
	n := &node{kind: mapNode, line: line}
	seen := map[string]bool{} // not n.get: quadratic in a file of many keys
	for p.dec.More() {
		ktok, kline, err := p.token()
		if err != nil {
			return nil, err
		}
		key := ktok.(string) // the decoder guarantees a string key here
		if seen[key] {
			return nil, duplicateKey(kline, join(path, key))
		}
		seen[key] = true
		v, err := p.value(join(path, key), depth)
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
}

func (p *jsonParser) list(path string, line, depth int) (*node, error) {
	n := &node{kind: listNode, line: line}
	for p.dec.More() {
		v, err := p.value(fmt.Sprintf("%s[%d]", path, len(n.items)), depth)
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

func scalarJSON(tok json.Token, line int) (*node, error) {
	switch t := tok.(type) {
	case string:
		return &node{kind: stringNode, line: line, str: t}, nil
	case bool:
		return &node{kind: boolNode, line: line, b: t, src: strconv.FormatBool(t)}, nil
	case nil:
		return &node{kind: nullNode, line: line}, nil
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return &node{kind: intNode, line: line, i: i, src: t.String()}, nil
		}
		f, err := t.Float64()
		if err != nil {
			return nil, &syntaxError{line: line, msg: "a number out of range: quote it if text was meant"}
		}
		return &node{kind: floatNode, line: line, f: f, src: t.String()}, nil
	}
	return nil, &syntaxError{line: line, msg: fmt.Sprintf("unexpected JSON token %T", tok)}
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
	return fromYAML(&doc, "", 0)
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
	if strings.Contains(msg, "exceeded max depth") {
		return tooDeep(line)
	}
	return &syntaxError{line: line, msg: "invalid YAML: " + msg, parser: true}
}

// fromYAML converts the node at path; depth counts the mappings and
// sequences around it.
func fromYAML(y *yaml.Node, path string, depth int) (*node, error) {
	switch y.Kind {
	case yaml.DocumentNode:
		if len(y.Content) == 0 {
			return &node{kind: nullNode, line: y.Line}, nil
		}
		return fromYAML(y.Content[0], path, depth)
	case yaml.AliasNode:
		return nil, &syntaxError{line: y.Line, msg: "YAML aliases (*name) are not supported in definitions: write the value out"}
	case yaml.MappingNode, yaml.SequenceNode:
		if depth >= maxDepth {
			return nil, tooDeep(y.Line)
		}
		if y.Kind == yaml.MappingNode {
			return mappingYAML(y, path, depth+1)
		}
		return sequenceYAML(y, path, depth+1)
	case yaml.ScalarNode:
		return scalarYAML(y)
	}
	return nil, &syntaxError{line: y.Line, msg: "invalid YAML document"}
}

func mappingYAML(y *yaml.Node, path string, depth int) (*node, error) {
	n := &node{kind: mapNode, line: y.Line}
	seen := map[string]bool{} // not n.get: quadratic in a file of many keys
	for i := 0; i+1 < len(y.Content); i += 2 {
		k, v := y.Content[i], y.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, &syntaxError{line: k.Line, msg: "invalid YAML: a key must be a plain string"}
		}
		if k.Tag == "!!merge" {
			return nil, &syntaxError{line: k.Line, msg: "YAML merge keys (<<) are not supported in definitions: write the fields out"}
		}
		kpath := join(path, k.Value)
		// yaml.v3 keeps the last of two equal keys; the helper and the
		// generator must not read different values, so refuse, as JSON does.
		if seen[k.Value] {
			return nil, duplicateKey(k.Line, kpath)
		}
		seen[k.Value] = true
		val, err := fromYAML(v, kpath, depth)
		if err != nil {
			return nil, err
		}
		n.keys = append(n.keys, k.Value)
		n.vals = append(n.vals, val)
	}
	return n, nil
}

func sequenceYAML(y *yaml.Node, path string, depth int) (*node, error) {
	n := &node{kind: listNode, line: y.Line}
	for i, c := range y.Content {
		val, err := fromYAML(c, fmt.Sprintf("%s[%d]", path, i), depth)
		if err != nil {
			return nil, err
		}
		n.items = append(n.items, val)
	}
	return n, nil
}

// scalarYAML keeps a scalar's text as written beside its value. Decoding
// errors name the line, not the value: it may be a secret.
func scalarYAML(y *yaml.Node) (*node, error) {
	n := &node{line: y.Line, src: y.Value}
	var err error
	switch y.ShortTag() {
	case "!!null":
		n.kind = nullNode
	case "!!bool":
		n.kind = boolNode
		err = y.Decode(&n.b)
	case "!!int":
		n.kind = intNode
		if y.Decode(&n.i) != nil {
			// Beyond 64 bits: a number still, its text kept (as JSON's).
			n.kind = floatNode
			n.f, err = strconv.ParseFloat(y.Value, 64)
		}
	case "!!float":
		n.kind = floatNode
		err = y.Decode(&n.f)
	case "!!str":
		n.kind = stringNode
		n.str = y.Value
	default:
		// The tag is the file's text: a parser's word, as far as secrets go.
		return nil, &syntaxError{line: y.Line, msg: fmt.Sprintf("YAML tag %s is not supported in definitions", y.ShortTag()), parser: true}
	}
	if err != nil {
		return nil, &syntaxError{line: y.Line, msg: fmt.Sprintf("invalid YAML: not a valid %s value (or out of range): quote it if text was meant", y.ShortTag())}
	}
	return n, nil
}

// --- TOML ---

// BurntSushi/toml does not expose key positions, so TOML field errors carry
// no line; syntax errors do. Nor does it keep how a number was written:
// scanTOML finds the numbers written otherwise than Go would print them
// (0o027, 1_000, +5, 1.50), and those values are refused where text is
// expected, rather than re-spelt.
func parseTOML(data []byte) (*node, error) {
	scan := scanTOML(data)
	if scan.tooDeep > 0 {
		return nil, tooDeep(scan.tooDeep)
	}
	var m map[string]any
	if _, err := toml.Decode(string(data), &m); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, tomlError(pe)
		}
		return nil, &syntaxError{msg: "invalid TOML: " + err.Error(), parser: true}
	}
	return fromTOML(m, 0, scan.respelt)
}

func tomlError(pe toml.ParseError) error {
	if strings.HasPrefix(pe.Message, "Key '") && strings.HasSuffix(pe.Message, "' has already been defined.") {
		key := strings.TrimSuffix(strings.TrimPrefix(pe.Message, "Key '"), "' has already been defined.")
		return duplicateKey(pe.Position.Line, key)
	}
	return &syntaxError{line: pe.Position.Line, msg: "invalid TOML: " + pe.Message, parser: true}
}

// fromTOML converts a decoded value; depth counts the tables and arrays
// around it; respelt holds the numbers whose text is not known.
func fromTOML(v any, depth int, respelt map[string]bool) (*node, error) {
	switch t := v.(type) {
	case map[string]any:
		if depth >= maxDepth {
			return nil, tooDeep(0)
		}
		n := &node{kind: mapNode}
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys) // Go maps lose the file's order; sorted keeps errors deterministic
		for _, k := range keys {
			c, err := fromTOML(t[k], depth+1, respelt)
			if err != nil {
				return nil, err
			}
			n.keys = append(n.keys, k)
			n.vals = append(n.vals, c)
		}
		return n, nil
	case []map[string]any:
		items := make([]any, len(t))
		for i, e := range t {
			items[i] = e
		}
		return fromTOML(items, depth, respelt)
	case []any:
		if depth >= maxDepth {
			return nil, tooDeep(0)
		}
		n := &node{kind: listNode}
		for _, e := range t {
			c, err := fromTOML(e, depth+1, respelt)
			if err != nil {
				return nil, err
			}
			n.items = append(n.items, c)
		}
		return n, nil
	case string:
		return &node{kind: stringNode, str: t}, nil
	case bool:
		return &node{kind: boolNode, b: t, src: strconv.FormatBool(t)}, nil // TOML spells booleans one way
	case int64:
		return &node{kind: intNode, i: t, src: tomlText(strconv.FormatInt(t, 10), respelt)}, nil
	case float64:
		if math.IsInf(t, 0) || math.IsNaN(t) { // shown as TOML spells them; the binder refuses them
			return &node{kind: floatNode, f: t, src: strings.ToLower(strings.TrimPrefix(strconv.FormatFloat(t, 'g', -1, 64), "+"))}, nil
		}
		return &node{kind: floatNode, f: t, src: tomlText(strconv.FormatFloat(t, 'g', -1, 64), respelt)}, nil
	case time.Time:
		return nil, &syntaxError{msg: "a TOML date/time value: no definition field is a date; quote it if a string was meant"}
	}
	return nil, &syntaxError{msg: fmt.Sprintf("unsupported TOML value of type %T", v)}
}

// tomlText is a number's text when the file spelt every number of that
// value as Go prints it, else "" (unknown).
func tomlText(canonical string, respelt map[string]bool) string {
	if respelt[canonical] {
		return ""
	}
	return canonical
}

type tomlScan struct {
	tooDeep int             // the line where the text nests deeper than maxDepth, or 0
	respelt map[string]bool // values (as Go prints them) of numbers written otherwise
}

// scanTOML reads a TOML text before the decoder does, for what the
// decoder does not tell: nesting (which it handles in quadratic time), and
// how numbers were written. It counts depth as fromTOML does: each
// component of a table header or dotted key, each array and inline table
// is a level; but a header below an [[array of tables]] is one level
// deeper for each such array above it, which it does not remember. So the
// decoder may see up to twice maxDepth there, harmless; fromTOML's check is
// the exact one (without a line). Strings and comments are skipped.
func scanTOML(data []byte) tomlScan {
	type open struct {
		outer, depth int
		brace        bool
	}
	var stack []open
	scan := tomlScan{respelt: map[string]bool{}}
	line, base, depth := 1, 1, 1
	inKey, inHeader := true, false
	deeper := func() bool { depth++; return depth > maxDepth }
	for i := 0; i < len(data); i++ {
		c := data[i]
		if !inKey && !inHeader && (c >= '0' && c <= '9' || c == '+' || c == '-') {
			end := i
			for end < len(data) && isTOMLWordByte(data[end]) {
				end++
			}
			if canonical, ok := tomlNumber(string(data[i:end])); ok && canonical != string(data[i:end]) {
				scan.respelt[canonical] = true
			}
			i = end - 1
			continue
		}
		switch c {
		case '\n':
			line++
			if len(stack) == 0 {
				depth, inKey, inHeader = base, true, false
			}
		case '#':
			for i+1 < len(data) && data[i+1] != '\n' {
				i++
			}
		case '"', '\'':
			var n int
			i, n = skipTOMLString(data, i)
			line += n
		case '.':
			if (inKey || inHeader) && deeper() {
				scan.tooDeep = line
				return scan
			}
		case '=':
			inKey = false
		case ',':
			if len(stack) > 0 && stack[len(stack)-1].brace {
				depth, inKey = stack[len(stack)-1].depth, true
			}
		case '[', '{':
			if c == '[' && inKey && len(stack) == 0 { // a table header
				depth, inKey, inHeader = 1, false, true
				if i+1 < len(data) && data[i+1] == '[' { // [[array of tables]]: a list, then a table
					i++
					depth++
				}
			} else {
				stack = append(stack, open{outer: depth, brace: c == '{'})
				inKey = c == '{'
			}
			if deeper() {
				scan.tooDeep = line
				return scan
			}
			if !inHeader {
				stack[len(stack)-1].depth = depth
			}
		case ']', '}':
			if inHeader {
				base, inHeader = depth, false
			} else if len(stack) > 0 {
				depth = stack[len(stack)-1].outer
				stack = stack[:len(stack)-1]
			}
		}
	}
	return scan
}

func isTOMLWordByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || strings.IndexByte("_+-.:", c) >= 0
}

// tomlNumber returns how Go prints the TOML number a word spells, or false
// if it is not one (a date, say).
func tomlNumber(word string) (string, bool) {
	s := strings.ReplaceAll(word, "_", "")
	sign := ""
	if s != "" && (s[0] == '+' || s[0] == '-') {
		sign, s = s[:1], s[1:]
	}
	for prefix, base := range map[string]int{"0x": 16, "0o": 8, "0b": 2} {
		if strings.HasPrefix(s, prefix) {
			i, err := strconv.ParseInt(sign+s[2:], base, 64)
			return strconv.FormatInt(i, 10), err == nil
		}
	}
	if i, err := strconv.ParseInt(sign+s, 10, 64); err == nil {
		return strconv.FormatInt(i, 10), true
	}
	if f, err := strconv.ParseFloat(sign+s, 64); err == nil {
		return strconv.FormatFloat(f, 'g', -1, 64), true
	}
	return "", false
}

// skipTOMLString returns the index of the last byte of the string that
// starts at i (or of the line, if it is not closed there), and how many
// newlines it holds.
func skipTOMLString(data []byte, i int) (end, newlines int) {
	q := data[i]
	multi := i+2 < len(data) && data[i+1] == q && data[i+2] == q
	if multi {
		i += 2
	}
	for i++; i < len(data); i++ {
		switch c := data[i]; {
		case c == '\\' && q == '"':
			i++
			if i < len(data) && data[i] == '\n' {
				newlines++
			}
		case c == '\n':
			if !multi {
				return i - 1, newlines
			}
			newlines++
		case c == q && !multi:
			return i, newlines
		case c == q && i+2 < len(data) && data[i+1] == q && data[i+2] == q:
			return i + 2, newlines
		}
	}
	return len(data) - 1, newlines
}
