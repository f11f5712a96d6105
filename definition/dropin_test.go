package definition

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// RFC 7396's own examples (appendix A), on the line-keeping tree.
func TestMergePatchRFC7396(t *testing.T) {
	for _, c := range []struct{ target, patch, want string }{
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{`{"e":null}`, `{"a":1}`, `{"e":null,"a":1}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
	} {
		target, _ := parseJSON([]byte(c.target))
		patch, _ := parseJSON([]byte(c.patch))
		want, _ := parseJSON([]byte(c.want))
		if got := mergePatch(target, patch); !sameTree(got, want) {
			t.Errorf("%s + %s: got %+v, want %s", c.target, c.patch, got, c.want)
		}
	}
}

func sameTree(a, b *node) bool {
	if a.kind != b.kind || a.str != b.str || a.i != b.i || !slices.Equal(a.keys, b.keys) || len(a.vals) != len(b.vals) || len(a.items) != len(b.items) {
		return false
	}
	for i := range a.vals {
		if !sameTree(a.vals[i], b.vals[i]) {
			return false
		}
	}
	for i := range a.items {
		if !sameTree(a.items[i], b.items[i]) {
			return false
		}
	}
	return true
}

// Drop-ins apply in file-name order whichever directory holds them; of one
// file name, the higher search directory wins, then the more specific
// drop-in directory; /dev/null masks the name.
func TestDropInPrecedence(t *testing.T) {
	root := t.TempDir()
	etc, run, usr := filepath.Join(root, "etc"), filepath.Join(root, "run"), filepath.Join(root, "usr")
	write(t, filepath.Join(usr, "c.json"), `{"command": "/bin/true"}`)
	write(t, filepath.Join(usr, "c.d", "10-a.json"), `{}`)           // overridden by etc's site-wide 10-a
	write(t, filepath.Join(etc, "strata.d", "10-a.yaml"), "{}")      // another name: applies
	write(t, filepath.Join(etc, "strata.d", "10-a.json"), `{}`)      // wins over usr's c.d/10-a.json
	write(t, filepath.Join(run, "strata.d", "20-b.toml"), "")        // overridden by run's c.d/20-b.toml
	write(t, filepath.Join(run, "c.d", "20-b.toml"), "")             // more specific in the same directory
	write(t, filepath.Join(usr, "strata.d", "30-masked.json"), `{}`) // masked in etc
	write(t, filepath.Join(usr, "c.d", "05-first.json"), `{}`)
	if err := os.Symlink(os.DevNull, filepath.Join(etc, "strata.d", "30-masked.json")); err != nil {
		t.Fatal(err)
	}
	got, problems := Discover([]string{etc, run, usr})
	want := []Source{{Name: "c", Path: filepath.Join(usr, "c.json"), DropIns: []string{
		filepath.Join(usr, "c.d", "05-first.json"),
		filepath.Join(etc, "strata.d", "10-a.json"),
		filepath.Join(etc, "strata.d", "10-a.yaml"),
		filepath.Join(run, "c.d", "20-b.toml"),
	}}}
	if !reflect.DeepEqual(got, want) || len(problems) != 0 {
		t.Errorf("Discover = %+v, %v\nwant %+v", got, problems, want)
	}
}

// An instance NAME@INST.json is the container NAME-INST: its template, then
// its own differences, then drop-ins; ${instance} is its name, except in
// secrets (the helper reads those as written).
func TestTemplateInstance(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "web@.yaml"), "command: /bin/run ${instance}\nenvironment: {A: 'a-${instance}', B: b}\nmount:\n  kind: nfs\n  nfs: {host: h, path: '/srv/${instance}'}\n")
	write(t, filepath.Join(dir, "web@one.json"), `{"environment": {"B": null}}`)
	write(t, filepath.Join(dir, "web@two.toml"), "")
	write(t, filepath.Join(dir, "web@.d", "10-all.json"), `{"environment": {"C": "${instance}"}}`)
	write(t, filepath.Join(dir, "web@two.d", "10-all.json"), `{}`) // masks the template's for two
	srcs, problems := Discover([]string{dir})
	if len(srcs) != 2 || len(problems) != 0 {
		t.Fatalf("Discover = %+v, %v", srcs, problems)
	}
	one, ps := LoadSource(srcs[0])
	if one == nil || ps.HasErrors() {
		t.Fatalf("web-one: %v", ps)
	}
	if one.Name != "web-one" || one.Container.Command != "/bin/run one" || one.Container.Mount.NFS.Path != "/srv/one" ||
		!reflect.DeepEqual(one.Container.Environment, map[string]string{"A": "a-one", "C": "one"}) {
		t.Errorf("web-one: %+v %+v", one, one.Container)
	}
	two, ps := LoadSource(srcs[1])
	if two == nil || ps.HasErrors() || two.Name != "web-two" || !reflect.DeepEqual(two.Container.Environment, map[string]string{"A": "a-two", "B": "b"}) {
		t.Errorf("web-two: %+v %v", two, ps)
	}
}

// An instance name is checked as any container name, and the values it
// goes into as any value: both are the file system's, so hostile input.
func TestTemplateInstanceHostile(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "web@.json"), `{"command": "/bin/true", "mount": {"kind": "nfs", "nfs": {"host": "h", "path": "${instance}"}}}`)
	write(t, filepath.Join(dir, "web@a_b.json"), `{}`)
	write(t, filepath.Join(dir, "web@rel.json"), `{}`)
	srcs, _ := Discover([]string{dir})
	_, ps := LoadSource(srcs[0])
	if len(ps) != 1 || !strings.Contains(ps[0].Message, `container name "web-a_b"`) || ps[0].File != filepath.Join(dir, "web@a_b.json") {
		t.Errorf("web-a_b: %v", ps)
	}
	_, ps = LoadSource(srcs[1])
	if len(ps) != 1 || ps[0].Path != "mount.nfs.path" || ps[0].File != filepath.Join(dir, "web@.json") || ps[0].Line != 1 {
		t.Errorf("web-rel: %v", ps)
	}
}

// A masked template masks its instances, as in systemd; a missing one is
// an error for the instance.
func TestTemplateMaskedOrMissing(t *testing.T) {
	root := t.TempDir()
	etc, usr := filepath.Join(root, "etc"), filepath.Join(root, "usr")
	write(t, filepath.Join(usr, "web@.json"), `{"command": "/bin/true"}`)
	write(t, filepath.Join(usr, "web@a.json"), `{}`)
	write(t, filepath.Join(usr, "db@a.json"), `{}`)
	os.MkdirAll(etc, 0o755)
	if err := os.Symlink(os.DevNull, filepath.Join(etc, "web@.json")); err != nil {
		t.Fatal(err)
	}
	srcs, problems := Discover([]string{etc, usr})
	if len(srcs) != 1 || srcs[0].Name != "db-a" || len(problems["db-a"]) != 1 || !strings.Contains(problems["db-a"][0].Message, `template "db@"`) {
		t.Errorf("Discover = %+v, %v", srcs, problems)
	}
}

// The helper reads an inline secret from the file that holds it; a
// drop-in holding one that others can read is warned about.
func TestDropInSecretFile(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "c.json"), `{"command": "/bin/true", "mount": {"kind": "attach", "attach": {"fs_type": "squashfs", "attach": {"kind": "rbd", "rbd": {"pool": "p", "image": "i", "monitors": ["10.0.0.1"], "options": {"name": "n"}}}}}}`)
	dropIn := filepath.Join(dir, "c.d", "10-key.yaml")
	write(t, dropIn, "mount: {attach: {attach: {rbd: {options: {secret: AQBSdFhcS0o=}}}}}\n")
	if err := os.Chmod(dropIn, 0o644); err != nil {
		t.Fatal(err)
	}
	srcs, _ := Discover([]string{dir})
	def, ps := LoadSource(srcs[0])
	if def == nil || ps.HasErrors() {
		t.Fatalf("%v", ps)
	}
	if got := def.FileOf("mount.attach.attach.rbd.options.secret"); got != dropIn {
		t.Errorf("FileOf(secret) = %s, want %s", got, dropIn)
	}
	if got := def.FileOf("command"); got != filepath.Join(dir, "c.json") {
		t.Errorf("FileOf(command) = %s", got)
	}
	if len(ps) != 1 || ps[0].File != dropIn || !strings.Contains(ps[0].Message, "holds a secret") {
		t.Errorf("warnings: %v", ps)
	}
	if v, err := Field(dropIn, mustRead(t, dropIn), "mount.attach.attach.rbd.options.secret"); err != nil || v != "AQBSdFhcS0o=" {
		t.Errorf("the helper's read: %q, %v", v, err)
	}
}

// A drop-in is read with the same safety rules as a definition.
func TestDropInRefused(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "c.json"), `{"command": "/bin/true"}`)
	dropIn := filepath.Join(dir, "c.d", "10-open.json")
	write(t, dropIn, `{}`)
	if err := os.Chmod(dropIn, 0o666); err != nil {
		t.Fatal(err)
	}
	srcs, _ := Discover([]string{dir})
	def, ps := LoadSource(srcs[0])
	if def != nil || len(ps) != 1 || ps[0].File != dropIn || !strings.Contains(ps[0].Message, "writable by") {
		t.Errorf("%v %v", def, ps)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// An instance enabled the way systemctl enables template units, a symlink
// to the template, is an instance with no differences.
func TestTemplateInstanceSymlink(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "web@.json"), `{"command": "/bin/true", "environment": {"I": "${instance}"}, "mount": {"kind": "nfs", "nfs": {"host": "h", "path": "/x"}}}`)
	if err := os.Symlink("web@.json", filepath.Join(dir, "web@3.json")); err != nil {
		t.Fatal(err)
	}
	srcs, problems := Discover([]string{dir})
	if len(srcs) != 1 || len(problems) != 0 {
		t.Fatalf("Discover = %+v, %v", srcs, problems)
	}
	def, ps := LoadSource(srcs[0])
	if def == nil || ps.HasErrors() || def.Name != "web-3" || def.Container.Environment["I"] != "3" {
		t.Errorf("web-3: %+v %v", def, ps)
	}
}

// An instance NAME@INST and a definition NAME-INST are one container: an
// error for it, with one Source (so one placeholder).
func TestInstanceBesideSameName(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "web@.json"), `{"command": "/bin/true"}`)
	write(t, filepath.Join(dir, "web@1.json"), `{}`)
	write(t, filepath.Join(dir, "web-1.json"), `{"command": "/bin/true"}`)
	srcs, problems := Discover([]string{dir})
	if len(srcs) != 1 || srcs[0].Name != "web-1" || len(problems["web-1"]) != 1 || !strings.Contains(problems["web-1"][0].Message, "is also defined by") {
		t.Errorf("Discover = %+v, %v", srcs, problems)
	}
}

// A drop-in directory that cannot be read is an error for its container:
// what it would change is unknown.
func TestDropInDirectoryUnreadable(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "c.json"), `{"command": "/bin/true"}`)
	write(t, filepath.Join(dir, "c.d"), "")
	_, problems := Discover([]string{dir})
	if len(problems["c"]) != 1 || problems["c"][0].File != filepath.Join(dir, "c.d") || !strings.Contains(problems["c"][0].Message, "not a directory") {
		t.Errorf("problems = %v", problems)
	}
}

// A file named alone is read as its directory would be.
func TestSourceOf(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "web@.json"), `{"command": "/bin/true"}`)
	write(t, filepath.Join(dir, "web@1.json"), `{}`)
	write(t, filepath.Join(dir, "strata.d", "10-a.json"), `{}`)
	src, ps := SourceOf(filepath.Join(dir, "web@1.json"))
	want := Source{Name: "web-1", Path: filepath.Join(dir, "web@1.json"), Template: filepath.Join(dir, "web@.json"), Instance: "1", DropIns: []string{filepath.Join(dir, "strata.d", "10-a.json")}}
	if !reflect.DeepEqual(src, want) || len(ps) != 0 {
		t.Errorf("SourceOf = %+v, %v", src, ps)
	}
	if src, _ := SourceOf(filepath.Join(dir, "missing.json")); src.Name != "missing" {
		t.Errorf("SourceOf(missing) = %+v", src)
	}
}

// A drop-in's file name is shown in logs and placeholders: one with a
// control character is refused, quoted.
func TestDropInControlName(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "c.json"), `{"command": "/bin/true"}`)
	write(t, filepath.Join(dir, "c.d", "10-a\nforged.json"), `{}`)
	srcs, problems := Discover([]string{dir})
	if len(srcs) != 1 || len(srcs[0].DropIns) != 0 || len(problems["c"]) != 1 || strings.Contains(problems["c"][0].String(), "\n") {
		t.Errorf("Discover = %+v, %v", srcs, problems)
	}
}

// ${instance} in a container that is not an instance is an error where it
// is written, a drop-in's line too.
func TestPlaceholderOutsideInstance(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "c.json"), `{"command": "/bin/true", "mount": {"kind": "nfs", "nfs": {"host": "h", "path": "/x"}}}`)
	write(t, filepath.Join(dir, "c.d", "10-a.yaml"), "# a comment\nenvironment: {A: 'x${instance}'}\n")
	srcs, _ := Discover([]string{dir})
	_, ps := LoadSource(srcs[0])
	if len(ps) != 1 || ps[0].File != filepath.Join(dir, "c.d", "10-a.yaml") || ps[0].Line != 2 || ps[0].Path != "environment.A" {
		t.Errorf("problems = %v", ps)
	}
	if _, ps := Parse("d.json", []byte(`{"command": "/bin/${instance}", "mount": {"kind": "nfs", "nfs": {"host": "h", "path": "/x"}}}`)); len(ps) != 1 || ps[0].Path != "command" {
		t.Errorf("Parse: %v", ps)
	}
}

// FuzzMergePatch checks the tree merge against RFC 7396's own algorithm
// (section 2) on decoded JSON values: the same result for any two documents.
func FuzzMergePatch(f *testing.F) {
	f.Add(`{"a":{"b":1,"c":[1,2]},"d":"x"}`, `{"a":{"b":null,"c":{"e":1}},"f":[{"g":null}]}`)
	f.Add(`[1]`, `{"a":null}`)
	f.Add(`{"a":{"b":{}}}`, `{"a":{"b":{"c":null}}, "a2": {"x": null}}`)
	f.Fuzz(func(t *testing.T, target, patch string) {
		tn, err1 := parseJSON([]byte(target))
		pn, err2 := parseJSON([]byte(patch))
		var tv, pv any
		if err1 != nil || err2 != nil || json.Unmarshal([]byte(target), &tv) != nil || json.Unmarshal([]byte(patch), &pv) != nil {
			return
		}
		got := plain(mergePatch(tn, pn))
		if want := rfcMergePatch(tv, pv); !reflect.DeepEqual(got, want) {
			t.Errorf("%s + %s: got %#v, want %#v", target, patch, got, want)
		}
	})
}

// rfcMergePatch is RFC 7396's MergePatch(Target, Patch), as written there.
func rfcMergePatch(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	if !ok {
		t = map[string]any{}
	}
	for k, v := range p {
		if v == nil {
			delete(t, k)
		} else {
			t[k] = rfcMergePatch(t[k], v)
		}
	}
	return t
}

// plain turns a tree into what encoding/json decodes the same document to.
func plain(n *node) any {
	switch n.kind {
	case mapNode:
		m := map[string]any{}
		for i, k := range n.keys {
			m[k] = plain(n.vals[i])
		}
		return m
	case listNode:
		l := []any{}
		for _, c := range n.items {
			l = append(l, plain(c))
		}
		return l
	case stringNode:
		return n.str
	case boolNode:
		return n.b
	case intNode:
		return float64(n.i)
	case floatNode:
		return n.f
	}
	return nil
}
