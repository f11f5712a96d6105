package generator_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/strata-project/strata/definition"
	"github.com/strata-project/strata/generator"
	"github.com/strata-project/strata/internal/layout"
)

// FuzzGenerate runs the whole path on any bytes, as each format: parse,
// generate, read every generated file back as systemd would, parse helper
// command lines with the helper's own parser. A definition that validates
// must generate, read back without surprises, and hold the definition's
// values; one that does not gets a placeholder that reads back with its
// problems, word for word. No secret ever appears in a file.
func FuzzGenerate(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/cases/*/input/*")
	hostile, _ := filepath.Glob("testdata/hostile/*")
	if len(seeds) < minCases || len(hostile) == 0 {
		f.Fatalf("%d case inputs and %d hostile inputs to seed from: the globs miss them", len(seeds), len(hostile))
	}
	for _, s := range append(seeds, hostile...) {
		if data, err := os.ReadFile(s); err == nil {
			for format := range uint8(3) {
				f.Add(data, format)
			}
		}
	}
	f.Add([]byte(`{"command": "/bin/x \"a b\" 50% $HOME", "mount": {"nfs": {"host": "h", "path": "/a b/c"}}}`), uint8(0))
	f.Add([]byte("command = '/bin/x'\n[mount.nfs]\nhost = 'h'\npath = \"/a\\nb\"\n"), uint8(1))
	names := []string{"fuzz.json", "fuzz.toml", "fuzz.yaml"}
	f.Fuzz(func(t *testing.T, data []byte, format uint8) {
		name := "/etc/strata/" + names[int(format)%3]
		def, problems := definition.Parse(name, data)
		if def == nil {
			checkPlaceholder(t, name, problems)
			return
		}
		out, failed := generator.Generate([]*definition.Definition{def}, nil)
		if len(failed) > 0 {
			t.Fatalf("valid, but the generator refused it: %v", failed[0].Problems)
		}
		values, err := readBack(out, def)
		if err != nil {
			t.Fatalf("systemd would read it differently: %v", err)
		}
		for _, want := range definitionValues(def) {
			if !values[want] {
				t.Errorf("%q is not read back from the units", want)
			}
		}
		checkNoSecrets(t, out, def.Secrets())
	})
}

// definitionValues are values of a definition that its units must carry
// verbatim: the command's words, environment, nspawn_args, binds, and the
// administrator's own settings.
func definitionValues(def *definition.Definition) []string {
	c := def.Container
	words, _ := definition.SplitCommand(c.Command)
	if c.Systemd && slices.Contains(bootedInits, words[0]) {
		words = words[1:]
	}
	out := words
	for k, v := range c.Environment {
		out = append(out, "--setenv="+k+"="+v)
	}
	out = append(out, c.NspawnArgs...)
	for _, b := range c.Binds {
		out = append(out, b.Source)
	}
	for _, m := range []map[string]definition.Values{c.Unit, c.Service} {
		for _, vs := range m {
			out = append(out, vs...)
		}
	}
	return out
}

// checkPlaceholder generates the placeholder of a refused definition: it
// must read back, and the helper must get every problem as one argument,
// printable as it was.
func checkPlaceholder(t *testing.T, name string, problems definition.Problems) {
	t.Helper()
	out, _ := generator.Generate(nil, []generator.Failed{{Name: "fuzz", Source: name, Problems: problems}})
	file := layout.ContainerUnit("fuzz") + ".d/" + layout.DropInName
	if out.Files[file] == nil {
		t.Fatalf("no placeholder for %v", problems)
	}
	values, err := readBack(out)
	if err != nil {
		t.Fatalf("the placeholder reads differently: %v", err)
	}
	for _, p := range problems.Errors() {
		if want := p.String(); printable(want) && !values[want] {
			t.Errorf("problem %q is not read back from the placeholder", want)
		}
	}
}

func printable(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || r == 0xfffd })
}

func checkNoSecrets(t *testing.T, out *generator.Output, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if len(s) < 4 {
			continue // too short to tell from other text
		}
		for name, data := range out.Files {
			if strings.Contains(string(data), s) {
				t.Errorf("secret in %s", name)
			}
		}
	}
}
