package doctest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/strata-project/strata/definition"
	"github.com/strata-project/strata/generator"
	"github.com/strata-project/strata/generator/generatortest"
)

// A page's file blocks make one layout across the search path (drop-ins
// and templates need more than one file); explain blocks quote what
// `strata render --explain` prints for it.

var searchDirs = []string{"/etc/strata", "/run/strata/definitions", "/usr/lib/strata"}

func checkLayoutMark(b block) string {
	if len(b.args) != 1 {
		return "want <!-- " + b.kind + ": ARG -->"
	}
	if b.kind == "explain" {
		return ""
	}
	inSearchPath := false
	for _, d := range searchDirs {
		inSearchPath = inSearchPath || strings.HasPrefix(b.name(), d+"/")
	}
	if !inSearchPath {
		return b.name() + " is not under " + strings.Join(searchDirs, ", ")
	}
	if _, ok := formats[b.lang]; !ok || !slices.Contains(formats[b.lang], filepath.Ext(b.name())) {
		return b.name() + " is in a " + b.lang + " block: use a json, toml or yaml fence matching the file's extension"
	}
	return ""
}

// writeLayout writes a page's file blocks under a new root and returns it.
func writeLayout(t *testing.T, pg *page) (root string, n int) {
	t.Helper()
	root = t.TempDir()
	for _, b := range pg.blocks {
		if b.kind != "file" {
			continue
		}
		n++
		full := filepath.Join(root, b.name())
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(b.body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return root, n
}

func TestLayouts(t *testing.T) {
	verifier, err := generatortest.NewVerifier(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, pg := range pages(t) {
		root, n := writeLayout(t, pg)
		if n == 0 {
			continue
		}
		var dirs []string
		for _, d := range searchDirs {
			dirs = append(dirs, filepath.Join(root, d))
		}
		srcs, discovered := definition.Discover(dirs)
		r := generator.RunSources(srcs, discovered)
		for _, p := range r.Problems {
			if p.Message != exposedWarning {
				t.Errorf("docs/%s: the page's layout: %s", pg.name, strings.ReplaceAll(p.String(), root, ""))
			}
		}
		if len(r.Loaded) == 0 {
			t.Errorf("docs/%s: the page's layout defines no container", pg.name)
		}
		if err := verifier.Verify(r.Output, t.TempDir()); err != nil {
			t.Errorf("docs/%s: %v", pg.name, err)
		}
		for _, b := range pg.blocks {
			if b.kind == "explain" {
				checkExplain(t, b, srcs, root)
			}
		}
	}
}

func checkExplain(t *testing.T, b block, srcs []definition.Source, root string) {
	t.Helper()
	for _, src := range srcs {
		if src.Name != b.name() {
			continue
		}
		text, _ := definition.Explain(src)
		if got := strings.ReplaceAll(text, root, ""); got != b.body {
			t.Errorf("%s: strata render --explain %s prints\n%s--- the page quotes\n%s", b.where(), b.name(), got, b.body)
		}
		return
	}
	t.Errorf("%s: no container %s in the page's layout", b.where(), b.name())
}
