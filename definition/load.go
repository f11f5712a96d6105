package definition

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
)

// Definition is one loaded, checked container definition.
type Definition struct {
	Name      string // the container's (machine) name: the file's base name
	Source    string // the file it came from
	Format    Format
	Container *Container
	// InlineSecrets is true when the file itself holds a key or password,
	// which the node-side helper then reads from it at run time.
	InlineSecrets bool
	fields        map[string]*node // by field path, when files were merged (FileOf)
}

// NameOf returns the container name a definition file stands for.
func NameOf(filename string) string {
	base := filepath.Base(filename)
	return strings.TrimSuffix(base, filepath.Ext(base))
}

// Parse decodes and checks a definition held in memory. filename gives the
// format (by extension) and the container's name, and is used in messages.
// The returned problems may hold warnings even when the definition is usable;
// on any error the definition is nil.
func Parse(filename string, data []byte) (*Definition, Problems) {
	name := NameOf(filename)
	format := FormatOf(filename)
	fail := func(line int, path, format string, args ...any) (*Definition, Problems) {
		return nil, Problems{{File: filename, Line: line, Path: path, Severity: Error, Message: fmt.Sprintf(format, args...)}}
	}
	if format == "" {
		return fail(0, "", "unknown file type: name definitions *.json, *.toml or *.yaml")
	}
	if msg := MachineNameProblem(name); msg != "" {
		return fail(0, "", "the file name gives the container name %q, which %s", name, msg)
	}
	tree, err := parseTree(data, format)
	if err != nil {
		var se *syntaxError
		if errors.As(err, &se) {
			return fail(se.line, se.path, "%s", se.msg)
		}
		return fail(0, "", "%v", err)
	}
	if tree.kind != mapNode {
		return fail(tree.line, "", "a definition is an object with the container's fields (command, mount, ...), not %s", tree.kind)
	}
	return check(name, filename, format, tree)
}

// check binds and validates a decoded definition; filename is named in
// its problems.
func check(name, filename string, format Format, tree *node) (*Definition, Problems) {
	b := &binder{file: filename, lines: map[string]int{}}
	c := &Container{}
	b.bind(tree, reflect.ValueOf(c).Elem(), "", false)
	v := &validator{file: filename, lines: b.lines, badType: map[string]bool{}}
	for _, p := range b.problems {
		v.badType[p.Path] = true
	}
	v.container(c, name)

	// By field path: the same order whatever the format (TOML loses the
	// file's order), and a field's problems side by side.
	problems := append(append(b.problems, v.problems...), placeholders(tree, "", filename, false)...)
	sort.SliceStable(problems, func(i, j int) bool { return problems[i].Path < problems[j].Path })
	if problems.HasErrors() {
		return nil, problems
	}
	return &Definition{Name: name, Source: filename, Format: format, Container: c, InlineSecrets: hasInlineSecret(c)}, problems
}

// Load reads, decodes and checks one definition file.
func Load(path string) (*Definition, Problems) {
	data, fi, err := readFile(path)
	if err != nil {
		return nil, Problems{{File: path, Severity: Error, Message: readProblem(err)}}
	}
	def, problems := Parse(path, data)
	if def != nil && def.InlineSecrets {
		if exposed(fi) {
			problems = append(problems, Problem{File: path, Severity: Warning, Message: "holds a secret (key or password) but other users can read it: chmod 600 and chown root (or move the key to a keyring file or a systemd credential)"})
		}
	}
	return def, problems
}

// hasInlineSecret reports whether any field marked secret is set.
func hasInlineSecret(c *Container) bool {
	found := false
	walkSecrets(reflect.ValueOf(c), func(string) { found = true })
	return found
}

// walkSecrets calls fn with the value of every non-empty secret field.
func walkSecrets(v reflect.Value, fn func(string)) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			walkSecrets(v.Elem(), fn)
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			walkSecrets(v.Index(i), fn)
		}
	case reflect.Struct:
		for _, f := range fieldsOf(v.Type()) {
			fv := v.Field(f.index)
			if f.secret && fv.Kind() == reflect.String && fv.String() != "" {
				fn(fv.String())
				continue
			}
			walkSecrets(fv, fn)
		}
	}
}

// Secrets returns every secret value the definition holds, so callers can
// check that none of them leaks into what they produce.
func (d *Definition) Secrets() []string {
	var out []string
	walkSecrets(reflect.ValueOf(d.Container), func(s string) { out = append(out, s) })
	return out
}

// SplitCommand splits a command line into words as a POSIX shell does
// (sh(1), "Quoting"): blanks separate words; 'single quotes' keep every
// character; "double quotes" keep every character but \" \\ \$ \` and
// \newline, which a backslash escapes; outside quotes a backslash keeps the
// next character (and \newline joins lines). It expands nothing: $HOME, *
// and ~ reach the program as written. What a shell would read as more than
// words is refused: an unquoted operator (| & ; < > ( )) or comment (#), an
// unbalanced quote, and a newline or NUL byte.
func SplitCommand(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\n' || c == 0:
			return nil, errCommandLines
		case c == '\\':
			if i+1 == len(s) {
				return nil, fmt.Errorf("ends with a lone backslash")
			}
			i++
			if s[i] == 0 {
				return nil, errCommandLines
			}
			if s[i] != '\n' {
				cur.WriteByte(s[i])
				inWord = true
			}
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("has an unterminated ' quote")
			}
			quoted := s[i+1 : i+1+end]
			if strings.ContainsAny(quoted, "\n\x00") {
				return nil, errCommandLines
			}
			cur.WriteString(quoted)
			i += end + 1
			inWord = true
		case c == '"':
			end, err := doubleQuoted(s[i+1:], &cur)
			if err != nil {
				return nil, err
			}
			i += end + 1
			inWord = true
		case strings.IndexByte("|&;<>()", c) >= 0:
			return nil, fmt.Errorf("has an unquoted %q, which a shell reads as an operator: quote it, or run a shell (/bin/sh -c '...')", string(c))
		case c == '#' && !inWord:
			return nil, fmt.Errorf("has an unquoted # starting a word, which a shell reads as a comment: quote it")
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

var errCommandLines = errors.New("contains a newline or NUL byte: give one command line")

// doubleQuoted writes the text of a double-quoted part, s starting just
// after the opening quote, and returns the index of the closing one.
func doubleQuoted(s string, cur *strings.Builder) (int, error) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			return i, nil
		case c == '\n' || c == 0:
			return 0, errCommandLines
		case c == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`\n", s[i+1]) >= 0:
			i++
			if s[i] != '\n' {
				cur.WriteByte(s[i])
			}
		default:
			cur.WriteByte(c)
		}
	}
	return 0, fmt.Errorf(`has an unterminated " quote`)
}

// Field returns the string at a field path ("mount.overlay.lower[0].attach.
// attach.rbd.options.secret") of a definition held in memory. The node-side
// helper reads secrets this way at run time. Errors name the path, never
// the value.
func Field(filename string, data []byte, path string) (string, error) {
	n, err := parseTree(data, FormatOf(filename))
	if err != nil {
		return "", fmt.Errorf("%s: %v", filename, err)
	}
	for _, part := range splitPath(path) {
		switch {
		case part.key != "" && n.kind == mapNode:
			n = n.get(part.key)
		case part.key == "" && n.kind == listNode && part.index < len(n.items):
			n = n.items[part.index]
		default:
			n = nil
		}
		if n == nil {
			return "", fmt.Errorf("%s: %s: no such field", filename, path)
		}
	}
	if n.kind != stringNode {
		return "", fmt.Errorf("%s: %s: not a string", filename, path)
	}
	return n.str, nil
}

type pathPart struct {
	key   string
	index int
}

func splitPath(path string) []pathPart {
	var parts []pathPart
	for _, seg := range strings.Split(path, ".") {
		key, rest, _ := strings.Cut(seg, "[")
		if key != "" {
			parts = append(parts, pathPart{key: key})
		}
		for rest != "" {
			var i int
			fmt.Sscanf(rest, "%d]", &i)
			parts = append(parts, pathPart{index: i})
			_, rest, _ = strings.Cut(rest, "[")
		}
	}
	return parts
}
