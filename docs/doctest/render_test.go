package doctest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/strata-project/strata/definition"
	"github.com/strata-project/strata/generator"
	"github.com/strata-project/strata/generator/generatortest"
)

// rendered is what Strata makes of one definition block.
type rendered struct {
	dir      string
	path     string
	result   *generator.Result
	files    map[string]string // the output tree, paths shown under /etc/strata
	links    map[string]string
	validate string // `strata validate FILE`
}

func (r *rendered) show(s string) string { return strings.ReplaceAll(s, r.dir, etc) }

var (
	renderMu    sync.Mutex
	renderCache = map[string]*rendered{}
)

// renderOnce writes a page's definition block to a directory of its own
// and runs the generator on it, once for all tests.
func renderOnce(t *testing.T, b block) *rendered {
	t.Helper()
	key := b.page + "\x00" + b.name()
	renderMu.Lock()
	defer renderMu.Unlock()
	if r, ok := renderCache[key]; ok {
		return r
	}
	dir, err := os.MkdirTemp("", "strata-doctest")
	if err != nil {
		t.Fatal(err)
	}
	tempDirs = append(tempDirs, dir) // removed by TestMain
	r := &rendered{dir: dir, path: filepath.Join(dir, b.name()), files: map[string]string{}, links: map[string]string{}}
	if err := os.WriteFile(r.path, []byte(b.body), 0o600); err != nil {
		t.Fatal(err)
	}
	// As `strata render FILE` and `strata validate FILE` run it.
	r.result = generator.RunSources([]definition.Source{{Name: definition.NameOf(r.path), Path: r.path}}, nil)
	for p, data := range r.result.Output.Files {
		r.files[p] = r.show(string(data))
	}
	for p, target := range r.result.Output.Links {
		r.links[p] = target
	}
	var v strings.Builder
	for _, p := range r.result.Problems {
		if p.Message == exposedWarning {
			continue
		}
		v.WriteString(r.show(p.String()) + "\n")
	}
	fmt.Fprintf(&v, "%d valid, %d invalid\n", len(r.result.Loaded), len(r.result.Failed))
	r.validate = v.String()
	renderCache[key] = r
	return r
}

var tempDirs []string

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range tempDirs {
		os.RemoveAll(d)
	}
	os.Exit(code)
}

// TestDefinitions loads, renders and verifies every definition and broken
// block.
func TestDefinitions(t *testing.T) {
	verifier, err := generatortest.NewVerifier(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, pg := range pages(t) {
		for _, b := range pg.blocks {
			if b.kind != "definition" && b.kind != "broken" {
				continue
			}
			n++
			t.Run(b.page+"/"+b.name(), func(t *testing.T) {
				r := renderOnce(t, b)
				def, problems := definition.Load(r.path)
				switch {
				case b.kind == "definition" && (def == nil || problems.HasErrors()):
					t.Errorf("%s: %s does not load:\n%s", b.where(), b.name(), r.show(problems.Error()))
				case b.kind == "definition" && len(r.result.Failed) > 0:
					t.Errorf("%s: the generator refuses %s: %+v", b.where(), b.name(), r.result.Failed)
				case b.kind == "broken" && !problems.HasErrors():
					t.Errorf("%s: %s is marked broken but loads", b.where(), b.name())
				}
				if def != nil {
					// Secrets are read at run time: no unit and no message holds one.
					for _, sec := range def.Secrets() {
						for f, text := range r.files {
							if strings.Contains(text, sec) {
								t.Errorf("%s: a secret of %s appears in %s", b.where(), b.name(), f)
							}
						}
						if strings.Contains(r.validate, sec) {
							t.Errorf("%s: a secret of %s appears in strata validate's output", b.where(), b.name())
						}
					}
				}
				for _, p := range problems {
					if p.Severity == definition.Warning && p.Message != exposedWarning {
						t.Logf("%s: %s", b.where(), r.show(p.String()))
					}
				}
				switch {
				case len(r.files) > 0:
					verify(t, verifier, b, r)
				case b.kind == "definition":
					t.Errorf("%s: no units rendered for %s", b.where(), b.name())
				}
				// A broken definition gets a placeholder unit unless its
				// file name cannot name a unit at all.
			})
		}
	}
	if n == 0 {
		t.Fatal("no definitions found in the pages")
	}
}

// verify runs systemd-analyze verify on the units of r, as the generator's
// golden tests do.
func verify(t *testing.T, v *generatortest.Verifier, b block, r *rendered) {
	t.Helper()
	if err := v.Verify(r.result.Output, t.TempDir()); err != nil {
		t.Errorf("%s: %v", b.where(), err)
	}
}

// TestValidateOutput compares every validate block with `strata validate`.
func TestValidateOutput(t *testing.T) {
	for _, pg := range pages(t) {
		for _, b := range pg.blocks {
			if b.kind != "validate" {
				continue
			}
			def, ok := pg.defs[b.name()]
			if !ok {
				continue // TestPages says so
			}
			r := renderOnce(t, def)
			if b.body != r.validate {
				t.Errorf("%s: strata validate %s/%s prints\n%s--- the page quotes\n%s", b.where(), etc, b.name(), r.validate, b.body)
			}
		}
	}
}
