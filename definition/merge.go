package definition

import (
	"fmt"
	"io/fs"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// LoadSource reads a container's definition with what applies over it: an
// instance's template, then its own file, then the drop-ins (see dropin.go).
// The merge works on the line-keeping trees, each node remembering its
// file, so a problem names the file and line of the value that is wrong.
func LoadSource(src Source) (*Definition, Problems) {
	if src.Template == "" && src.Instance == "" && len(src.DropIns) == 0 {
		return Load(src.Path)
	}
	if src.Instance != "" && src.Template == "" {
		return nil, nil // Discover's problem says the template is missing
	}
	if msg := MachineNameProblem(src.Name); msg != "" {
		return nil, Problems{{File: src.Path, Severity: Error, Message: fmt.Sprintf("the file name gives the container name %q, which %s", src.Name, msg)}}
	}
	m, problems := merge(src)
	if problems.HasErrors() {
		return nil, problems
	}
	def, ps := check(src.Name, src.Path, FormatOf(src.Path), m.tree)
	m.place(ps)
	problems = append(problems, ps...)
	if def == nil {
		return nil, problems
	}
	def.fields = m.fields
	return def, append(problems, m.exposedSecrets(def)...)
}

// merged is a definition's tree merged from its files.
type merged struct {
	tree   *node
	fields map[string]*node // field path → node, for locating problems
	infos  map[string]fs.FileInfo
}

// merge reads the files of src in the order they apply and merges them.
// Every file is read and parsed even after one fails, so that one run
// names every broken file.
func merge(src Source) (*merged, Problems) {
	files := append([]string{src.Path}, src.DropIns...)
	if src.Template != "" {
		files = append([]string{src.Template}, files...)
	}
	m := &merged{infos: map[string]fs.FileInfo{}}
	var problems Problems
	for i, f := range files {
		n, fi, p := readTree(f)
		if p != nil {
			problems = append(problems, *p)
			continue
		}
		m.infos[f] = fi
		if n.kind != mapNode {
			msg := fmt.Sprintf("a definition is an object with the container's fields (command, mount, ...), not %s", n.kind)
			if i > 0 {
				msg = notObject(n.kind)
			}
			problems = append(problems, Problem{File: f, Line: n.line, Severity: Error, Message: msg})
			continue
		}
		m.tree = mergePatch(m.tree, n)
	}
	if problems.HasErrors() {
		return nil, problems
	}
	if src.Instance != "" {
		substitute(m.tree, src.Instance, false)
	}
	m.fields = map[string]*node{}
	index(m.tree, "", m.fields)
	return m, problems
}

// readTree reads and decodes one file, every node marked with the file.
func readTree(path string) (*node, fs.FileInfo, *Problem) {
	data, fi, err := readFile(path)
	if err != nil {
		return nil, nil, &Problem{File: path, Severity: Error, Message: readProblem(err)}
	}
	format := FormatOf(path)
	n, err := parseTree(data, format)
	if err != nil {
		p := &Problem{File: path, Severity: Error, Message: err.Error()}
		if se, ok := err.(*syntaxError); ok {
			p.Line, p.Path = se.line, se.path
		}
		return nil, nil, p
	}
	setFile(n, path)
	return n, fi, nil
}

func setFile(n *node, file string) {
	n.file = file
	for _, c := range n.vals {
		setFile(c, file)
	}
	for _, c := range n.items {
		setFile(c, file)
	}
}

// mergePatch applies patch over target as RFC 7396 says: an object merges
// key by key (null deletes the key), anything else, lists too, replaces
// the target whole. target may be nil, and is changed in place.
func mergePatch(target, patch *node) *node {
	if patch.kind != mapNode {
		return patch
	}
	if target == nil || target.kind != mapNode {
		target = &node{kind: mapNode, line: patch.line, file: patch.file}
	}
	for i, key := range patch.keys {
		val := patch.vals[i]
		j := indexOf(target.keys, key)
		switch {
		case val.kind == nullNode && j >= 0:
			target.keys = append(target.keys[:j], target.keys[j+1:]...)
			target.vals = append(target.vals[:j], target.vals[j+1:]...)
		case val.kind == nullNode:
		case j >= 0:
			target.vals[j] = mergePatch(target.vals[j], val)
		default:
			target.keys = append(target.keys, key)
			target.vals = append(target.vals, mergePatch(nil, val))
		}
	}
	return target
}

func indexOf(keys []string, key string) int {
	for i, k := range keys {
		if k == key {
			return i
		}
	}
	return -1
}

// substitute puts the instance name in place of InstancePlaceholder in
// string values. Secret fields keep theirs: the helper reads a secret from
// its file at run time, as written there.
func substitute(n *node, instance string, secret bool) {
	if n.kind == stringNode && !secret {
		n.str = strings.ReplaceAll(n.str, InstancePlaceholder, instance)
	}
	for i, c := range n.vals {
		substitute(c, instance, secretKeys[n.keys[i]])
	}
	for _, c := range n.items {
		substitute(c, instance, secret)
	}
}

// placeholders reports InstancePlaceholder left in a value: substitute has
// replaced those of instances, so these are in a container that is not one.
// Secret fields are the helper's, read as written.
func placeholders(n *node, path, file string, secret bool) Problems {
	var out Problems
	if n.kind == stringNode && !secret && strings.Contains(n.str, InstancePlaceholder) {
		out = append(out, Problem{File: file, Line: n.line, Path: path, Severity: Error,
			Message: InstancePlaceholder + " is replaced only in a template's instances (NAME@INST), and this container is not one: write the value out"})
	}
	for i, c := range n.vals {
		out = append(out, placeholders(c, join(path, n.keys[i]), file, secretKeys[n.keys[i]])...)
	}
	for i, c := range n.items {
		out = append(out, placeholders(c, fmt.Sprintf("%s[%d]", path, i), file, secret)...)
	}
	return out
}

// secretKeys are the names of the model's secret fields.
var secretKeys = func() map[string]bool {
	keys := map[string]bool{}
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] {
			return
		}
		seen[t] = true
		for _, f := range fieldsOf(t) {
			if f.secret {
				keys[f.name] = true
			}
			walk(t.Field(f.index).Type)
		}
	}
	walk(reflect.TypeOf(Container{}))
	return keys
}()

// index records every node of the tree by field path, as the binder
// spells paths.
func index(n *node, path string, fields map[string]*node) {
	fields[path] = n
	for i, c := range n.vals {
		index(c, join(path, n.keys[i]), fields)
	}
	for i, c := range n.items {
		index(c, fmt.Sprintf("%s[%d]", path, i), fields)
	}
}

// lookupField is the node at path, or at the nearest enclosing one when
// the field is missing (as the validator's lines are).
func lookupField(fields map[string]*node, path string) *node {
	for {
		if n, ok := fields[path]; ok {
			return n
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return fields[""]
		}
		path = path[:i]
	}
}

// place gives each problem the file and line of the value it is about.
func (m *merged) place(ps Problems) {
	for i := range ps {
		if ps[i].Path == "" {
			continue
		}
		if n := lookupField(m.fields, ps[i].Path); n != nil {
			ps[i].File, ps[i].Line = n.file, n.line
		}
	}
}

// exposedSecrets warns of each file holding a secret that others can read.
func (m *merged) exposedSecrets(def *Definition) Problems {
	var out Problems
	warned := map[string]bool{}
	for _, path := range secretPaths(m.fields) {
		f := m.fields[path].file
		if fi := m.infos[f]; fi != nil && !warned[f] && exposed(fi) {
			warned[f] = true
			out = append(out, Problem{File: f, Severity: Warning, Message: "holds a secret (key or password) but other users can read it: chmod 600 and chown root (or move the key to a keyring file or a systemd credential)"})
		}
	}
	return out
}

// secretPaths lists the field paths of set secret fields, in order.
func secretPaths(fields map[string]*node) []string {
	var out []string
	for path, n := range fields {
		key := path[strings.LastIndexAny(path, ".")+1:]
		if secretKeys[key] && n.kind == stringNode && n.str != "" {
			out = append(out, path)
		}
	}
	sort.Strings(out)
	return out
}

// FileOf returns the file that holds the value at a field path: a drop-in,
// a template or the definition itself. The helper reads a secret there.
func (d *Definition) FileOf(path string) string {
	if d.fields == nil {
		return d.Source
	}
	if n := lookupField(d.fields, path); n != nil && n.file != "" {
		return n.file
	}
	return d.Source
}

// Explain returns the merged definition of src, one line per value with
// the file and line it came from. Secret values are not shown.
func Explain(src Source) (string, Problems) {
	if src.Instance != "" && src.Template == "" {
		return "", Problems{{File: src.Path, Severity: Error, Message: "its template is missing: nothing to explain"}}
	}
	m, problems := merge(src)
	if problems.HasErrors() {
		return "", problems
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# %s: %s\n", src.Name, strings.Join(mergedFiles(src), " + "))
	explain(&b, m.tree, "", false)
	return b.String(), problems
}

func mergedFiles(src Source) []string {
	files := append([]string{src.Path}, src.DropIns...)
	if src.Template != "" {
		files = append([]string{src.Template}, files...)
	}
	return files
}

func explain(b *strings.Builder, n *node, path string, secret bool) {
	switch {
	case n.kind == mapNode && len(n.keys) > 0:
		for i, k := range n.keys {
			explain(b, n.vals[i], join(path, k), secretKeys[k])
		}
		return
	case n.kind == listNode && len(n.items) > 0:
		for i, c := range n.items {
			explain(b, c, fmt.Sprintf("%s[%d]", path, i), secret)
		}
		return
	}
	value := "{}"
	switch {
	case n.kind == listNode:
		value = "[]"
	case secret:
		value = "(secret, not shown)"
	case n.kind != mapNode:
		value = scalarText(n)
	}
	where := n.file
	if n.line > 0 {
		where += ":" + strconv.Itoa(n.line)
	}
	fmt.Fprintf(b, "%s = %s  # %s\n", printablePath(path), value, where)
}
