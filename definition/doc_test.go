package definition

import (
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// modelFields returns every field name a definition can hold.
func modelFields() map[string]bool {
	names := map[string]bool{}
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
			names[f.name] = true
			walk(t.Field(f.index).Type)
		}
	}
	walk(reflect.TypeOf(Container{}))
	return names
}

// docs/DEFINITIONS.md and the model name the same fields: a field added to
// the model without documentation, or documented but not in the model,
// fails here.
func TestDefinitionsDocMatchesModel(t *testing.T) {
	doc, err := os.ReadFile("../docs/DEFINITIONS.md")
	if err != nil {
		t.Fatal(err)
	}
	model := modelFields()
	documented := map[string]bool{}
	row := regexp.MustCompile("(?m)^\\| (`[^|]*) \\|")
	name := regexp.MustCompile("`([A-Za-z_]+)`")
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		for _, n := range name.FindAllStringSubmatch(m[1], -1) {
			documented[n[1]] = true
		}
	}
	// Output-only fields are documented in prose, not in the tables.
	prose := string(doc)
	var missing, unknown []string
	for n := range model {
		if !documented[n] && !strings.Contains(prose, "`"+n+"`") {
			missing = append(missing, n)
		}
	}
	for n := range documented {
		if !model[n] {
			unknown = append(unknown, n)
		}
	}
	sort.Strings(missing)
	sort.Strings(unknown)
	if len(missing) > 0 {
		t.Errorf("fields of the model not in docs/DEFINITIONS.md: %v", missing)
	}
	if len(unknown) > 0 {
		t.Errorf("fields in docs/DEFINITIONS.md tables that the model lacks: %v", unknown)
	}
	if len(documented) < 60 {
		t.Errorf("only %d documented fields found: did the table format change?", len(documented))
	}
}
