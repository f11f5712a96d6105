package main

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/strata-project/strata/definition"
	"github.com/strata-project/strata/generator"
	"github.com/strata-project/strata/internal/layout"
)

// The man pages are generated, never committed: these tests generate them
// and check them against the code they describe, so a page cannot drift
// from the model, the CLI or the generator.

var (
	genOnce  sync.Once
	genFiles map[string][]byte
	genErr   error
)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func generated(t *testing.T) map[string][]byte {
	t.Helper()
	genOnce.Do(func() {
		root, err := filepath.Abs("../..")
		if err != nil {
			genErr = err
			return
		}
		genFiles, genErr = generate(pageOptions{Root: root, Version: "test", Date: "2000-01-01"})
	})
	if genErr != nil {
		t.Fatal(genErr)
	}
	return genFiles
}

func page(t *testing.T, name string) string {
	t.Helper()
	b, ok := generated(t)[filepath.Join("man", name)]
	if !ok {
		t.Fatalf("docgen did not make man/%s", name)
	}
	return string(b)
}

// section is a part of a page: its .SH and .SS titles, the tags of its
// tagged paragraphs and the rest of its text.
type section struct {
	sh, ss string
	tags   []string
	text   string
}

func (s section) key() string {
	k := strings.ToLower(titleKey(s.sh))
	if s.ss != "" {
		k += "/" + titleKey(s.ss)
	}
	return k
}

// titleKey is a title up to its first ":" or " (": "rbd: a Ceph RBD
// image" is "rbd", "bind (ext)" is "bind", "rbd options" stays.
func titleKey(title string) string {
	t := plain(title)
	if i := strings.Index(t, ":"); i >= 0 {
		t = t[:i]
	}
	if i := strings.Index(t, " ("); i >= 0 {
		t = t[:i]
	}
	return strings.TrimSpace(t)
}

var roffPlain = strings.NewReplacer(`\fB`, "", `\fI`, "", `\fR`, "", `\fP`, "", `\-`, "-", `\e`, `\`, `\&`, "", `\(em`, "—", `\(->`, "→", `\(>=`, "≥", `\(dq`, `"`, `\|`, "")

// plain is roff text without its markup.
func plain(s string) string {
	return roffPlain.Replace(s)
}

func sections(roff string) []section {
	var out []section
	cur := section{}
	flush := func() {
		if cur.sh != "" {
			out = append(out, cur)
		}
	}
	lines := strings.Split(roff, "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		switch {
		case strings.HasPrefix(l, ".SH "):
			flush()
			cur = section{sh: unquote(l[4:])}
		case strings.HasPrefix(l, ".SS "):
			flush()
			cur = section{sh: cur.sh, ss: unquote(l[4:])}
		case l == ".TP" && i+1 < len(lines):
			cur.tags = append(cur.tags, lines[i+1])
			i++
		case strings.HasPrefix(l, "."):
		default:
			cur.text += l + "\n"
		}
	}
	flush()
	return out
}

func unquote(s string) string {
	return strings.ReplaceAll(strings.Trim(s, `"`), `\(dq`, `"`)
}

var boldName = regexp.MustCompile(`\\fB([A-Za-z_]+)\\fR`)

// tagFields splits "\fBa\fR, \fBb\fR (type; default: x)" into the field
// names and the attributes.
func tagFields(tag string) (names []string, attrs string) {
	head, rest, _ := strings.Cut(tag, " (")
	for _, m := range boldName.FindAllStringSubmatch(head, -1) {
		names = append(names, m[1])
	}
	return names, strings.TrimSuffix(rest, ")")
}

type modelField struct {
	name   string
	output bool // reported by imageapi's API only, or an {"id": N} reference
}

func fieldsOf(t reflect.Type) []modelField {
	var out []modelField
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("json"), ",")[0]
		if name == "" || name == "-" {
			continue
		}
		tag := f.Tag.Get("strata")
		out = append(out, modelField{name: name, output: tag == "output" || tag == "ref"})
	}
	return out
}

func structOf(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	return t
}

// modelTypes lists every object type a definition can hold.
func modelTypes() []reflect.Type {
	var out []reflect.Type
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		if t = structOf(t); t == nil || seen[t] {
			return
		}
		seen[t] = true
		out = append(out, t)
		for i := 0; i < t.NumField(); i++ {
			walk(t.Field(i).Type)
		}
	}
	walk(reflect.TypeOf(definition.Container{}))
	return out
}

// The page's sections (docs/DEFINITIONS.md's headings) and the model's
// types. A new object type in the model fails the test until it has a
// section and a line here.
var objectSections = map[string]reflect.Type{
	"container":          reflect.TypeOf(definition.Container{}),
	"container/bind":     reflect.TypeOf(definition.Bind{}),
	"container/device":   reflect.TypeOf(definition.Device{}),
	"container/health":   reflect.TypeOf(definition.Health{}),
	"mount":              reflect.TypeOf(definition.Mount{}),
	"mount/attach":       reflect.TypeOf(definition.AttachMount{}),
	"mount/bind":         reflect.TypeOf(definition.BindMount{}),
	"mount/nfs":          reflect.TypeOf(definition.NFSMount{}),
	"mount/overlay":      reflect.TypeOf(definition.OverlayMount{}),
	"mount/upper":        reflect.TypeOf(definition.Upper{}),
	"mount/verity":       reflect.TypeOf(definition.Verity{}),
	"attach":             reflect.TypeOf(definition.Attach{}),
	"attach/rbd":         reflect.TypeOf(definition.RBD{}),
	"attach/rbd options": reflect.TypeOf(definition.RBDOptions{}),
	"attach/iscsi":       reflect.TypeOf(definition.ISCSI{}),
	"attach/chap":        reflect.TypeOf(definition.CHAP{}),
	"attach/loopback":    reflect.TypeOf(definition.Loopback{}),
	"attach/local":       reflect.TypeOf(definition.Local{}),
}

// refusedTypes are in the model only to be refused with a clear message;
// the page says so in the prose of the section named.
var refusedTypes = map[reflect.Type]string{
	reflect.TypeOf(definition.URIMount{}): "mount",
}

// strata.definition(5) documents every field of every object of the model,
// in the section of that object, with its type, and names no field the
// object lacks. Objects that only select one of their members (mount,
// attach) name their fields in prose; fields imageapi's API only reported
// are named in the description.
func TestDefinitionPageMatchesModel(t *testing.T) {
	roff := page(t, "strata.definition.5")
	secs := map[string]section{}
	for _, s := range sections(roff) {
		secs[s.key()] = s
	}
	mapped := map[reflect.Type]bool{}
	for _, typ := range objectSections {
		mapped[typ] = true
	}
	for _, typ := range modelTypes() {
		if !mapped[typ] {
			if _, ok := refusedTypes[typ]; !ok {
				t.Errorf("the model's %s has no section in strata.definition(5): document it in docs/DEFINITIONS.md and map its heading in objectSections", typ.Name())
			}
		}
	}
	for key, s := range secs {
		if _, ok := objectSections[key]; !ok && len(s.tags) > 0 && s.ss != "" {
			t.Errorf("section %q documents fields but is not mapped to a model type in objectSections", key)
		}
	}

	keys := make([]string, 0, len(objectSections))
	for k := range objectSections {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		typ := objectSections[key]
		s, ok := secs[key]
		if !ok {
			t.Errorf("strata.definition(5) has no section %q for %s (headings of docs/DEFINITIONS.md changed?)", key, typ.Name())
			continue
		}
		documented := map[string]bool{}
		for _, tag := range s.tags {
			names, attrs := tagFields(tag)
			if len(names) == 0 {
				t.Errorf("section %q: tag %q names no field", key, tag)
			}
			if typ, _, _ := strings.Cut(attrs, ";"); strings.TrimSpace(typ) == "" {
				t.Errorf("section %q: %v has no type", key, names)
			}
			for _, n := range names {
				documented[n] = true
			}
		}
		model := map[string]bool{}
		for _, f := range fieldsOf(typ) {
			model[f.name] = true
			switch {
			case f.output:
				if !strings.Contains(roff, `\fB`+f.name+`\fR`) {
					t.Errorf("%s.%s (json %q, reported by imageapi's API) is not named in strata.definition(5)", typ.Name(), f.name, f.name)
				}
			case len(s.tags) == 0:
				// A selector object: its members are named in its prose.
				if !strings.Contains(s.text, `\fB`+f.name+`\fR`) {
					t.Errorf("field %q of %s is not named in section %q of strata.definition(5)", f.name, typ.Name(), key)
				}
			case !documented[f.name]:
				t.Errorf("field %q of %s is not documented in section %q of strata.definition(5) (docs/DEFINITIONS.md)", f.name, typ.Name(), key)
			}
		}
		for n := range documented {
			if !model[n] {
				t.Errorf("section %q of strata.definition(5) documents %q, which %s lacks", key, n, typ.Name())
			}
		}
	}
	for typ, key := range refusedTypes {
		for _, f := range fieldsOf(typ) {
			if !strings.Contains(secs[key].text, `\fB`+f.name+`\fR`) {
				t.Errorf("%s (refused) is not named in section %q", typ.Name(), key)
			}
		}
	}
}

// Every example in strata.definition(5) is a definition that loads without
// error (each is a golden test input of the generator, whose units are
// checked there), and the examples together show every kind of mount and
// attachment.
func TestDefinitionExamples(t *testing.T) {
	root := repoRoot(t)
	src, err := os.ReadFile(filepath.Join(root, "packaging", "man", "strata.definition.5.md"))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	n := 0
	for _, b := range parseMarkdown(string(src)) {
		verb, arg, _ := strings.Cut(b.text, " ")
		if b.kind != "directive" || verb != "strata:example" {
			continue
		}
		n++
		path := filepath.Join(root, strings.TrimSpace(arg))
		data, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("example: %v", err)
			continue
		}
		def, problems := definition.Parse(path, data)
		if def == nil || problems.HasErrors() {
			t.Errorf("example %s does not load: %v", arg, problems)
			continue
		}
		if !strings.Contains(arg, "generator/testdata/cases/") {
			t.Errorf("example %s is not an input of the generator's golden tests", arg)
		}
		collectKinds(reflect.ValueOf(def.Container), kinds)
	}
	if n == 0 {
		t.Fatal("no strata:example directive in strata.definition.5.md")
	}
	for _, sel := range []reflect.Type{reflect.TypeOf(definition.Mount{}), reflect.TypeOf(definition.Attach{})} {
		for i := 0; i < sel.NumField(); i++ {
			f := sel.Field(i)
			if structOf(f.Type) == nil || refusedTypes[structOf(f.Type)] != "" {
				continue
			}
			k := strings.ToLower(sel.Name()) + "/" + f.Tag.Get("json")
			if !kinds[k] {
				t.Errorf("no example in strata.definition(5) uses %s", k)
			}
		}
	}
}

// collectKinds records "mount/KIND" and "attach/KIND" for every member set
// in a definition.
func collectKinds(v reflect.Value, out map[string]bool) {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			collectKinds(v.Index(i), out)
		}
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := v.Field(i)
			if (t == reflect.TypeOf(definition.Mount{}) || t == reflect.TypeOf(definition.Attach{})) &&
				f.Kind() == reflect.Pointer && !f.IsNil() && structOf(f.Type()) != nil {
				out[strings.ToLower(t.Name())+"/"+t.Field(i).Tag.Get("json")] = true
			}
			collectKinds(f, out)
		}
	}
}

// strata(1) has every command of the usage text, with its flags, and the
// usage text has every command the CLI dispatches.
func TestCLIPageMatchesUsage(t *testing.T) {
	c, err := readCLI(repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	roff := page(t, "strata.1")
	var commands section
	var synopsis string
	for _, s := range sections(roff) {
		switch s.sh {
		case "COMMANDS":
			commands = s
		case "SYNOPSIS":
			synopsis = s.text
		}
	}
	inPage := map[string]string{}
	for _, tag := range commands.tags {
		if m := regexp.MustCompile(`^\\fB([a-z-]+)\\fR`).FindStringSubmatch(tag); m != nil {
			inPage[m[1]] = tag
		}
	}
	inUsage := map[string]bool{}
	for _, cmd := range c.Commands {
		inUsage[cmd.Name] = true
		tag, ok := inPage[cmd.Name]
		if !ok {
			t.Errorf("command %q of the usage text is not in strata(1)'s COMMANDS", cmd.Name)
			continue
		}
		if !strings.Contains(synopsis, `\fB`+cmd.Name+`\fR`) {
			t.Errorf("command %q is not in strata(1)'s SYNOPSIS", cmd.Name)
		}
		for _, f := range cmd.Flags {
			if !strings.Contains(plain(tag), f.Name) {
				t.Errorf("flag %s of %s is not in strata(1): %s", f.Name, cmd.Name, plain(tag))
			}
		}
	}
	for name := range inPage {
		if !inUsage[name] {
			t.Errorf("strata(1) lists command %q, which the usage text lacks", name)
		}
	}
	if len(c.Commands) < 3 {
		t.Errorf("only %d commands parsed from the usage text: did its format change?", len(c.Commands))
	}

	// Commands shown in the pages' examples exist.
	for _, src := range manSources {
		b, err := os.ReadFile(filepath.Join(repoRoot(t), "packaging", "man", src))
		if err != nil {
			t.Fatal(err)
		}
		for _, blk := range parseMarkdown(string(b)) {
			if blk.kind != "code" {
				continue
			}
			for _, l := range blk.lines {
				if f := strings.Fields(l); len(f) > 1 && f[0] == "strata" && !inUsage[f[1]] {
					t.Errorf("%s shows %q, but strata has no command %q", src, l, f[1])
				}
			}
		}
	}
}

// strata-generator(8) says what the code does: the search path and its
// variable, the helper, the drop-in, and every kind of file the generator
// writes in its golden tests.
func TestGeneratorPageMatchesGenerator(t *testing.T) {
	roff := page(t, "strata-generator.8")
	text := plain(roff)
	musts := append([]string{definition.SearchPathEnv, layout.HelperPath, generator.Name, layout.DropInName, "--dryrun"}, definition.DefaultSearchPath...)
	for _, m := range musts {
		if !strings.Contains(text, m) {
			t.Errorf("strata-generator(8) does not mention %q", m)
		}
	}

	patterns := []struct {
		re  *regexp.Regexp
		doc string
	}{
		{regexp.MustCompile(`^strata-attach@([a-z]+)_.+_[0-9a-f]{10}\.service\.d/` + regexp.QuoteMeta(layout.DropInName) + `$`), "strata-attach@KIND_ID_HASH.service.d/" + layout.DropInName},
		{regexp.MustCompile(`^run-strata-layers-([a-z]+)_.+_[0-9a-f]{10}\.mount$`), "run-strata-layers-KIND_ID_HASH.mount"},
		{regexp.MustCompile(`^dev-.+\.device\.d/` + regexp.QuoteMeta(layout.DropInName) + `$`), "DEVICE.device.d/" + layout.DropInName},
		{regexp.MustCompile(`^strata-cleanup@.+\.service\.d/` + regexp.QuoteMeta(layout.DropInName) + `$`), "strata-cleanup@NAME.service.d/" + layout.DropInName},
		{regexp.MustCompile(`^run-strata-upper-.+\.mount$`), "run-strata-upper-NAME.mount"},
		{regexp.MustCompile(`^strata-upper-.+\.service$`), "strata-upper-NAME.service"},
		{regexp.MustCompile(`^var-lib-machines-.+\.mount$`), "var-lib-machines-NAME.mount"},
		{regexp.MustCompile(`^strata-health@.+\.(?:timer|service)$`), "strata-health@NAME.timer"},
		{regexp.MustCompile(`^systemd-nspawn@.+\.service\.d/` + regexp.QuoteMeta(layout.DropInName) + `$`), "systemd-nspawn@NAME.service.d/" + layout.DropInName},
		{regexp.MustCompile(`^machines\.target\.wants/systemd-nspawn@.+\.service$`), "machines.target.wants/systemd-nspawn@NAME.service"},
		{regexp.MustCompile(`^multi-user\.target\.wants/machines\.target$`), "multi-user.target.wants/machines.target"},
	}
	for _, p := range patterns {
		if !strings.Contains(text, p.doc) {
			t.Errorf("strata-generator(8) does not describe %s", p.doc)
		}
	}
	cases, err := filepath.Glob(filepath.Join(repoRoot(t), "generator", "testdata", "cases", "*", "expected"))
	if err != nil || len(cases) == 0 {
		t.Fatalf("no golden trees found: %v", err)
	}
	kinds := map[string]bool{}
	seen := 0
	for _, dir := range cases {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			seen++
			for _, pat := range patterns {
				if m := pat.re.FindStringSubmatch(rel); m != nil {
					if len(m) > 1 {
						kinds[m[1]] = true
					}
					return nil
				}
			}
			t.Errorf("the generator writes %s (%s), a kind of file strata-generator(8) does not describe", rel, filepath.Base(filepath.Dir(dir)))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if seen == 0 {
		t.Fatal("the golden trees hold no file")
	}
	for k := range kinds {
		if !strings.Contains(roff, `\fB`+k+`\fR`) {
			t.Errorf("strata-generator(8) does not list KIND %q (seen in the golden trees)", k)
		}
	}
}

// Every page renders without a warning, with groff alone and through
// man(1) at 80 columns as a reader sees it.
func TestPagesRender(t *testing.T) {
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Fatal("groff is needed (Debian package groff-base; run packaging/setup-host.sh)")
	}
	man, err := exec.LookPath("man")
	if err != nil {
		t.Fatal("man is needed (Debian package man-db; run packaging/setup-host.sh)")
	}
	dir := t.TempDir()
	for _, src := range manSources {
		name := strings.TrimSuffix(src, ".md")
		roff := page(t, name)
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(roff), 0o644); err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd := exec.Command(groff, "-man", "-ww", "-z", path)
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Errorf("groff -man -ww %s: %v\n%s", name, err, stderr.String())
		}
		stderr.Reset()
		var stdout bytes.Buffer
		cmd = exec.Command(man, "--warnings", "-l", path)
		cmd.Env = append(os.Environ(), "MANWIDTH=80", "MANPAGER=cat", "PAGER=cat", "LC_ALL=C.UTF-8")
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Errorf("man --warnings -l %s: %v\n%s", name, err, stderr.String())
		}
		out := stdout.String()
		if !strings.Contains(out, "NAME") || strings.Contains(out, `\f`) || strings.Contains(out, "`") {
			t.Errorf("%s renders badly (leftover markup):\n%s", name, out)
		}
	}
}
