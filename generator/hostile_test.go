package generator_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/strata-project/strata/definition"
	"github.com/strata-project/strata/generator"
	"github.com/strata-project/strata/internal/netid"
)

// hostileChars are the characters that mean something to systemd's unit
// parser, its word splitting, specifiers, environment expansion, mount
// options and the helper's command line.
var hostileChars = []string{"\r", "\n", "\x00", "\v", "\f", "\t", " ", ",", ":", "%", "$", `\`, `"`, "'", ";"}

// notInAnyValidDefinition are string fields that no usable definition can
// hold, and why.
var notInAnyValidDefinition = map[string]string{
	"URIMount.uri": "uri mounts are always refused (never implemented)",
}

// TestHostileValues puts each hostile character into every string of the
// definitions in testdata/hostile (in the middle and at the end of the
// value, into map keys too). Each result is either refused with a problem
// at the field's path (or an enclosing one), or generated into units that
// systemd and the helper read back with exactly that value wherever the
// original value was. The definitions together hold every string field of
// the model, found by reflection: a new field without a hostile case fails.
func TestHostileValues(t *testing.T) {
	files, _ := filepath.Glob("testdata/hostile/*.json")
	covered := map[string]bool{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc any
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Fatal(err)
		}
		name := "/etc/strata/" + filepath.Base(f)
		baseDef, baseValues := generateValues(t, name, doc)
		if baseDef == nil {
			t.Fatalf("%s is not usable as it is", f)
		}
		for _, loc := range locations(doc, reflect.TypeOf(definition.Container{}), "", "", nil) {
			covered[loc.field] = true
			for _, c := range hostileChars {
				for _, changed := range loc.variants(c) {
					checkHostile(t, name, doc, loc, changed, baseValues)
				}
			}
		}
	}
	for _, f := range stringFields(reflect.TypeOf(definition.Container{})) {
		if !covered[f] && notInAnyValidDefinition[f] == "" {
			t.Errorf("string field %s is in no definition of testdata/hostile: add it there", f)
		}
	}
}

// checkHostile tries one changed value.
func checkHostile(t *testing.T, name string, doc any, loc location, changed string, baseValues map[string]bool) {
	t.Helper()
	what := fmt.Sprintf("%s = %q", loc.path, changed)
	data, err := json.Marshal(loc.set(doc, changed))
	if err != nil {
		t.Fatal(err)
	}
	def, problems := definition.Parse(name, data)
	if def == nil {
		p := loc.path
		if loc.key {
			p = joinPath(loc.parent, changed) // or at the map itself
		}
		if !refusedAt(problems, p) {
			t.Errorf("%s: refused, but not at the field: %v", what, problems)
		}
		return
	}
	out, failed := generator.Generate([]*definition.Definition{def}, nil)
	if len(failed) > 0 {
		t.Errorf("%s: valid, but the generator refused it: %v", what, failed[0].Problems)
		return
	}
	values, err := readBack(out, def)
	if err != nil {
		t.Errorf("%s: systemd would read it differently: %v", what, err)
		return
	}
	for _, want := range expected(loc, changed, baseValues) {
		if !values[want] {
			t.Errorf("%s: %q is not read back from the units", what, want)
		}
	}
}

// bootedInits are the commands that systemd-nspawn --boot runs without
// being told (generator/container.go).
var bootedInits = []string{"/usr/lib/systemd/systemd", "/lib/systemd/systemd", "/sbin/init"}

// expected are the values that must be read back: each value of the
// unchanged definition's units that held the original, with the change.
func expected(loc location, changed string, baseValues map[string]bool) []string {
	if strings.HasSuffix(loc.path, ".host") {
		// One server spelt several ways is one attachment: the units
		// carry the canonical spelling (internal/netid).
		changed = netid.Host(changed)
	}
	if loc.path == "command" {
		words, _ := definition.SplitCommand(changed)
		if slices.Contains(bootedInits, words[0]) && baseValues["--boot"] {
			words = words[1:] // systemd-nspawn --boot finds init itself
		}
		return words
	}
	var out []string
	for v := range baseValues {
		if strings.Contains(v, loc.value) && !generatedID.MatchString(v) {
			out = append(out, strings.ReplaceAll(v, loc.value, changed))
		}
	}
	sort.Strings(out)
	return out
}

// generatedID matches Strata's names for shared units (kind_tail_hash):
// values holding one are derived from the definition, not copied.
var generatedID = regexp.MustCompile(`_[0-9a-f]{10}\b`)

// FuzzHostileValue inserts any text anywhere into any string of the
// definitions in testdata/hostile, with the same verdict as
// TestHostileValues: refused at the field, or read back exactly.
func FuzzHostileValue(f *testing.F) {
	type base struct {
		name   string
		doc    any
		locs   []location
		values map[string]bool // read back from the unchanged units
	}
	var bases []base
	files, _ := filepath.Glob("testdata/hostile/*.json")
	for _, file := range files {
		data, _ := os.ReadFile(file)
		var doc any
		if err := json.Unmarshal(data, &doc); err != nil {
			f.Fatal(err)
		}
		name := "/etc/strata/" + filepath.Base(file)
		_, values := generateValues(f, name, doc)
		bases = append(bases, base{name, doc, locations(doc, reflect.TypeOf(definition.Container{}), "", "", nil), values})
	}
	for i, c := range hostileChars {
		f.Add(uint8(i), uint16(i*7), uint8(i), c+c)
	}
	f.Add(uint8(0), uint16(3), uint8(2), "%%i$$HOME\\x41")
	f.Fuzz(func(t *testing.T, which uint8, at uint16, pos uint8, insert string) {
		if !utf8.ValidString(insert) {
			return // JSON cannot carry it (TestStringRule* covers the rule)
		}
		b := bases[int(which)%len(bases)]
		loc := b.locs[int(at)%len(b.locs)]
		i := int(pos) % (len(loc.value) + 1)
		checkHostile(t, b.name, b.doc, loc, loc.value[:i]+insert+loc.value[i:], b.values)
	})
}

// refusedAt reports an error at path or at a field enclosing it.
func refusedAt(problems definition.Problems, path string) bool {
	for _, p := range problems.Errors() {
		if p.Path != "" && (p.Path == path || strings.HasPrefix(path, p.Path+".") || strings.HasPrefix(path, p.Path+"[")) {
			return true
		}
	}
	return false
}

func generateValues(t testing.TB, name string, doc any) (*definition.Definition, map[string]bool) {
	t.Helper()
	data, _ := json.Marshal(doc)
	def, problems := definition.Parse(name, data)
	if def == nil {
		t.Fatalf("%s: %v", name, problems)
	}
	out, failed := generator.Generate([]*definition.Definition{def}, nil)
	if len(failed) > 0 {
		t.Fatalf("%s: %v", name, failed[0].Problems)
	}
	values, err := readBack(out, def)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return def, values
}

// location is one string of a definition document: a value, or a key of a
// map the user names (environment, unit, service).
type location struct {
	path   string // field path, as in problems
	parent string // the enclosing field's path
	field  string // Type.field in the model
	steps  []any  // keys and indexes into the document
	value  string
	key    bool
}

// variants are the changed values to try: c in the middle and at the end.
func (l location) variants(c string) []string {
	mid := len(l.value) / 2
	return []string{l.value[:mid] + c + l.value[mid:], l.value + c}
}

// set returns a copy of doc with the location's string replaced.
func (l location) set(doc any, s string) any {
	data, _ := json.Marshal(doc)
	var cp any
	json.Unmarshal(data, &cp)
	parent := cp
	for _, st := range l.steps[:len(l.steps)-1] {
		parent = step(parent, st)
	}
	last := l.steps[len(l.steps)-1]
	switch p := parent.(type) {
	case map[string]any:
		if l.key {
			v := p[last.(string)]
			delete(p, last.(string))
			p[s] = v
		} else {
			p[last.(string)] = s
		}
	case []any:
		p[last.(int)] = s
	}
	return cp
}

func step(v any, st any) any {
	if k, ok := st.(string); ok {
		return v.(map[string]any)[k]
	}
	return v.([]any)[st.(int)]
}

// locations walks a document along the model's types.
func locations(doc any, t reflect.Type, path, field string, steps []any) []location {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	at := func(s any) []any { return append(append([]any(nil), steps...), s) }
	var out []location
	switch t.Kind() {
	case reflect.String:
		if s, ok := doc.(string); ok {
			out = append(out, location{path: path, parent: parentPath(path), field: field, steps: steps, value: s})
		}
	case reflect.Struct:
		m, _ := doc.(map[string]any)
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if f, ok := fieldByTag(t, k); ok {
				out = append(out, locations(m[k], f.Type, joinPath(path, k), t.Name()+"."+k, at(k))...)
			}
		}
	case reflect.Slice:
		if s, ok := doc.(string); ok { // a Values scalar
			return locations(s, t.Elem(), path, field, steps)
		}
		items, _ := doc.([]any)
		for i, item := range items {
			out = append(out, locations(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), field, at(i))...)
		}
	case reflect.Map:
		m, _ := doc.(map[string]any)
		for _, k := range slices.Sorted(maps.Keys(m)) {
			p := joinPath(path, k)
			out = append(out, location{path: p, parent: path, field: field, steps: at(k), value: k, key: true})
			out = append(out, locations(m[k], t.Elem(), p, field, at(k))...)
		}
	}
	return out
}

// stringFields lists every field of the model that holds text: strings,
// lists of strings, maps.
func stringFields(t reflect.Type) []string {
	var out []string
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] {
			return
		}
		seen[t] = true
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := strings.Split(f.Tag.Get("json"), ",")[0]
			ft := f.Type
			for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.String || ft.Kind() == reflect.Map {
				out = append(out, t.Name()+"."+name)
			}
			walk(f.Type)
		}
	}
	walk(t)
	return out
}

func fieldByTag(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		if strings.Split(t.Field(i).Tag.Get("json"), ",")[0] == key {
			return t.Field(i), true
		}
	}
	return reflect.StructField{}, false
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func parentPath(path string) string {
	if i := strings.LastIndexAny(path, ".["); i >= 0 {
		return path[:i]
	}
	return ""
}
