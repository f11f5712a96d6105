package definition

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// The binder walks a decoded tree into the model's structs by their `json`
// tags. It is strict: an unknown field, a wrong type or an imageapi
// reference is a problem naming the field path, and binding goes on so that
// one run reports every problem of a file.

type binder struct {
	file     string
	problems Problems
	lines    map[string]int // field path → source line
}

func (b *binder) errorf(path string, n *node, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.line
	}
	b.problems = append(b.problems, Problem{File: b.file, Line: line, Path: path, Severity: Error, Message: fmt.Sprintf(format, args...)})
}

func (b *binder) warnf(path string, n *node, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.line
	}
	b.problems = append(b.problems, Problem{File: b.file, Line: line, Path: path, Severity: Warning, Message: fmt.Sprintf(format, args...)})
}

// field describes one struct field as the binder sees it.
type field struct {
	name   string // the key in a definition
	index  int
	output bool // reported by imageapi's API only: accepted, ignored
	ref    bool // imageapi's {"id": N} reference
	secret bool // never quoted
}

var fieldCache sync.Map // reflect.Type → []field

func fieldsOf(t reflect.Type) []field {
	if f, ok := fieldCache.Load(t); ok {
		return f.([]field)
	}
	var fs []field
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		name := strings.Split(sf.Tag.Get("json"), ",")[0]
		if name == "" || name == "-" {
			continue
		}
		tag := sf.Tag.Get("strata")
		fs = append(fs, field{name: name, index: i, output: tag == "output", ref: tag == "ref", secret: tag == "secret"})
	}
	fieldCache.Store(t, fs)
	return fs
}

func knownNames(fs []field) []string {
	names := make([]string, 0, len(fs))
	for _, f := range fs {
		names = append(names, f.name)
	}
	return names
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// bind stores n into v (addressable), reporting problems under path.
func (b *binder) bind(n *node, v reflect.Value, path string, secret bool) {
	b.lines[path] = n.line
	if n.kind == nullNode {
		return // null is the same as leaving the field out
	}
	if !b.finite(path, n, secret) {
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		// Set a scalar pointer only if the value bound, so that a type
		// error does not also read as a zero value to the validator.
		before := len(b.problems.Errors())
		elem := reflect.New(v.Type().Elem())
		b.bind(n, elem.Elem(), path, secret)
		if v.Type().Elem().Kind() == reflect.Struct || len(b.problems.Errors()) == before {
			v.Set(elem)
		}
	case reflect.Struct:
		b.bindStruct(n, v, path)
	case reflect.String:
		if n.kind != stringNode {
			b.typeError(path, n, "a string", secret)
			return
		}
		v.SetString(n.str)
	case reflect.Bool:
		if n.kind != boolNode {
			b.typeError(path, n, "a boolean (true or false)", secret)
			return
		}
		v.SetBool(n.b)
	case reflect.Int64:
		if n.kind != intNode {
			b.typeError(path, n, "an integer", secret)
			return
		}
		if leadingZero(n.src) {
			b.errorf(path, n, "%s has a leading zero, which YAML 1.1 reads as octal and YAML 1.2 as decimal: write it without the zero (0o for octal)", n.src)
			return
		}
		v.SetInt(n.i)
	case reflect.Slice:
		if v.Type() == reflect.TypeOf(Values(nil)) {
			b.bindValues(n, v, path)
			return
		}
		if n.kind != listNode {
			b.typeError(path, n, "a list", secret)
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.items), len(n.items))
		for i, item := range n.items {
			b.bind(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i), secret)
		}
		v.Set(s)
	case reflect.Map:
		b.bindMap(n, v, path)
	default:
		panic("definition: binder cannot handle " + v.Type().String())
	}
}

func (b *binder) typeError(path string, n *node, want string, secret bool) {
	if secret || n.kind == mapNode || n.kind == listNode {
		b.errorf(path, n, "expected %s, got %s", want, n.kind)
		return
	}
	b.errorf(path, n, "expected %s, got %s (%s)", want, n.kind, scalarText(n))
}

// leadingZero reports an integer written as 0027: yaml.v3 reads it as
// octal 23, YAML 1.2 and the user may mean 27. (JSON and TOML refuse it.)
func leadingZero(src string) bool {
	digits := strings.TrimLeft(src, "+-")
	return len(digits) > 1 && digits[0] == '0' && digits[1] >= '0' && digits[1] <= '9'
}

// finite refuses infinity and NaN (TOML's inf, nan; YAML's .inf, .nan)
// wherever they appear: no field holds one, and as text they would not
// mean to systemd what they look like.
func (b *binder) finite(path string, n *node, secret bool) bool {
	if n.kind != floatNode || !math.IsInf(n.f, 0) && !math.IsNaN(n.f) {
		return true
	}
	what := "is not a finite number"
	if !secret {
		what = scalarText(n) + " " + what
	}
	b.errorf(path, n, "%s: no field takes infinity or NaN; for systemd's \"no limit\", write the string \"infinity\"", what)
	return false
}

// scalarText shows a scalar as written when the format kept it.
func scalarText(n *node) string {
	if n.kind == stringNode {
		return strconv.Quote(n.str)
	}
	if n.src != "" {
		return n.src
	}
	switch n.kind {
	case boolNode:
		return strconv.FormatBool(n.b)
	case intNode:
		return strconv.FormatInt(n.i, 10)
	case floatNode:
		return strconv.FormatFloat(n.f, 'g', -1, 64)
	}
	return n.kind.String()
}

func (b *binder) bindStruct(n *node, v reflect.Value, path string) {
	if n.kind != mapNode {
		b.typeError(path, n, "an object", false)
		return
	}
	fs := fieldsOf(v.Type())
	var ref *field
	refNode, meaningful := (*node)(nil), false
	for i, key := range n.keys {
		val := n.vals[i]
		fpath := join(path, key)
		f := lookup(fs, key)
		if f == nil {
			b.unknownField(fpath, val, key, fs)
			continue
		}
		switch {
		case f.ref:
			ref, refNode = f, val
			b.bind(val, v.Field(f.index), fpath, false)
		case f.output:
			b.lines[fpath] = val.line
		default:
			if key != "kind" && val.kind != nullNode {
				meaningful = true
			}
			b.bind(val, v.Field(f.index), fpath, f.secret)
		}
	}
	// An object holding only "id" (and perhaps "kind") is an imageapi
	// reference to something created through its REST API earlier. With
	// real fields beside it, "id" is the API's read-only output: ignored.
	if ref != nil && !meaningful {
		b.errorf(join(path, ref.name), refNode,
			"{\"id\": N} refers to an object created earlier through imageapi's REST API; a definition file has no such objects: write the object inline here instead")
	}
}

func lookup(fs []field, key string) *field {
	for i := range fs {
		if fs[i].name == key {
			return &fs[i]
		}
	}
	return nil
}

// unsupported are imageapi fields Strata knows but does not take, and why.
var unsupported = map[string]string{
	"hooks": "imageapi v0.2.1's container hooks are not supported: run scripts from the container unit with service.ExecStartPre / service.ExecStopPost, or inside the container",
}

func (b *binder) unknownField(path string, n *node, key string, fs []field) {
	if why, ok := unsupported[key]; ok && path == key {
		b.errorf(path, n, "%s", why)
		return
	}
	known := knownNames(fs)
	if s := suggest(key, known); s != "" {
		b.errorf(path, n, "unknown field %q; did you mean %q?", key, s)
		return
	}
	var visible []string
	for _, f := range fs {
		if !f.output && !f.ref {
			visible = append(visible, f.name)
		}
	}
	sort.Strings(visible)
	b.errorf(path, n, "unknown field %q; the fields here are: %s", key, strings.Join(visible, ", "))
}

// bindMap binds an object whose keys are the user's (environment, unit
// settings); scalar values of any type are taken as text, as systemd would.
func (b *binder) bindMap(n *node, v reflect.Value, path string) {
	if n.kind != mapNode {
		b.typeError(path, n, "an object", false)
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.keys))
	for i, key := range n.keys {
		val := n.vals[i]
		kpath := join(path, key)
		elem := reflect.New(v.Type().Elem()).Elem()
		if elem.Kind() == reflect.String {
			s, ok := b.text(kpath, val, "a string")
			if !ok {
				continue
			}
			elem.SetString(s)
		} else {
			b.bind(val, elem, kpath, false)
		}
		b.lines[kpath] = val.line
		m.SetMapIndex(reflect.ValueOf(key), elem)
	}
	v.Set(m)
}

func (b *binder) bindValues(n *node, v reflect.Value, path string) {
	items := []*node{n}
	if n.kind == listNode {
		items = n.items
	}
	out := make(Values, 0, len(items))
	for i, item := range items {
		p := path
		if n.kind == listNode {
			p = fmt.Sprintf("%s[%d]", path, i)
		}
		if s, ok := b.text(p, item, "a string or a list of strings"); ok {
			out = append(out, s)
		}
	}
	v.Set(reflect.ValueOf(out))
}

// text returns a scalar as the text a unit file or environment holds: as
// the user wrote it, so that UMask: 0027 stays 0027 (not 23). TOML keeps a
// number's value but not its spelling: a TOML number whose text is unknown
// (see scanTOML) must be quoted.
func (b *binder) text(path string, n *node, want string) (string, bool) {
	switch {
	case n.kind == stringNode:
		return n.str, true
	case n.kind == nullNode || n.kind == mapNode || n.kind == listNode:
		b.typeError(path, n, want, false)
	case !b.finite(path, n, false):
	case n.src == "":
		b.errorf(path, n, "expected %s, got %s (%s): TOML keeps a number's value, not how it was written (0o027 would become 23): quote it as the unit should read it", want, n.kind, scalarText(n))
	default:
		return n.src, true
	}
	return "", false
}
