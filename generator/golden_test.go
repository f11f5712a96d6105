package generator_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"go.yaml.in/yaml/v3"

	"github.com/strata-project/strata/generator"
	"github.com/strata-project/strata/generator/generatortest"
)

// Golden cases, like systemd's fstab-generator tests: testdata/cases/NAME
// holds input/ (definitions, as if in /etc/strata) and expected/ (the tree
// the generator must write, symlinks as symlinks), plus problems.txt (what
// the generator logs). UPDATE=1 go test ./generator -run Golden rewrites
// expected/ and problems.txt from the current output: review the diff.

var update = flag.Bool("update", os.Getenv("UPDATE") == "1", "rewrite golden files")

const etc = "/etc/strata"

func cases(t *testing.T) []string {
	dirs, err := filepath.Glob("testdata/cases/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no golden cases found: %v", err)
	}
	return dirs
}

// searchPath is the search path of a case's input dir: the dir itself,
// shown as /etc/strata, or, when it holds etc/strata, the whole search
// path under it (etc/strata, run/strata/definitions, usr/lib/strata),
// shown as in /. shown turns the input's location into the shown one, so
// the goldens do not depend on the checkout.
func searchPath(t *testing.T, input string) (dirs []string, shown func(string) string) {
	t.Helper()
	abs, err := filepath.Abs(input)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(abs, etc)); err != nil || !fi.IsDir() {
		return []string{abs}, func(s string) string { return strings.ReplaceAll(s, abs, etc) }
	}
	for _, d := range []string{etc, "/run/strata/definitions", "/usr/lib/strata"} {
		dirs = append(dirs, filepath.Join(abs, d))
	}
	return dirs, func(s string) string { return strings.ReplaceAll(s, abs, "") }
}

// generate runs the generator on a case's input dir (see searchPath).
func generate(t *testing.T, input string) (files map[string]string, links map[string]string, problems string) {
	t.Helper()
	dirs, shown := searchPath(t, input)
	r := generator.Run(dirs)
	files, links = map[string]string{}, map[string]string{}
	for p, b := range r.Output.Files {
		files[p] = shown(string(b))
	}
	for p, l := range r.Output.Links {
		links[p] = l
	}
	var lines []string
	for _, p := range r.Problems {
		if p.Message == "holds a secret (key or password) but other users can read it: chmod 600 and chown root (or move the key to a keyring file or a systemd credential)" {
			continue // depends on the checkout's umask; tested in definition
		}
		lines = append(lines, shown(p.String()))
	}
	sort.Strings(lines)
	if len(lines) > 0 {
		problems = strings.Join(lines, "\n") + "\n"
	}
	return files, links, problems
}

func readTree(t *testing.T, dir string) (files, links map[string]string) {
	t.Helper()
	files, links = map[string]string{}, map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.Type()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			links[rel] = target
			return err
		}
		b, err := os.ReadFile(p)
		files[rel] = string(b)
		return err
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return files, links
}

func writeGolden(t *testing.T, dir string, files, links map[string]string, problems string) {
	t.Helper()
	exp := filepath.Join(dir, "expected")
	if err := os.RemoveAll(exp); err != nil {
		t.Fatal(err)
	}
	for p, content := range files {
		full := filepath.Join(exp, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for p, target := range links {
		full := filepath.Join(exp, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.Symlink(target, full); err != nil {
			t.Fatal(err)
		}
	}
	pf := filepath.Join(dir, "problems.txt")
	os.Remove(pf)
	if problems != "" {
		if err := os.WriteFile(pf, []byte(problems), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestGolden(t *testing.T) {
	for _, dir := range cases(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			files, links, problems := generate(t, filepath.Join(dir, "input"))
			if *update {
				writeGolden(t, dir, files, links, problems)
				return
			}
			wantFiles, wantLinks := readTree(t, filepath.Join(dir, "expected"))
			compareTrees(t, wantFiles, wantLinks, files, links)
			wantProblems, _ := os.ReadFile(filepath.Join(dir, "problems.txt"))
			if string(wantProblems) != problems {
				t.Errorf("problems differ\n--- want\n%s--- got\n%s", wantProblems, problems)
			}
		})
	}
}

func compareTrees(t *testing.T, wantFiles, wantLinks, files, links map[string]string) {
	t.Helper()
	for p, want := range wantFiles {
		got, ok := files[p]
		switch {
		case !ok:
			t.Errorf("missing file %s", p)
		case got != want:
			t.Errorf("%s differs\n--- want\n%s--- got\n%s", p, want, got)
		}
	}
	for p := range files {
		if _, ok := wantFiles[p]; !ok {
			t.Errorf("unexpected file %s", p)
		}
	}
	for p, want := range wantLinks {
		if got, ok := links[p]; !ok || got != want {
			t.Errorf("symlink %s: want -> %s, got -> %q (present: %v)", p, want, got, ok)
		}
	}
	for p := range links {
		if _, ok := wantLinks[p]; !ok {
			t.Errorf("unexpected symlink %s", p)
		}
	}
}

// TestFormatsAgree converts every JSON input of every case to TOML and to
// YAML and checks that the generator writes the same tree for each: the
// three formats decode to one model.
var generationRE = regexp.MustCompile(`--generation=[0-9a-f]+`)

func TestFormatsAgree(t *testing.T) {
	for _, dir := range cases(t) {
		inputs, _ := filepath.Glob(filepath.Join(dir, "input", "*.json"))
		all, _ := filepath.Glob(filepath.Join(dir, "input", "*"))
		if len(inputs) == 0 || len(inputs) != len(all) {
			continue // hand-written TOML/YAML or symlinks: the case is about those
		}
		t.Run(filepath.Base(dir), func(t *testing.T) {
			wantFiles, wantLinks, _ := generate(t, filepath.Join(dir, "input"))
			for _, format := range []string{"toml", "yaml"} {
				tmp := t.TempDir()
				converted := true
				for _, in := range inputs {
					data, _ := os.ReadFile(in)
					doc, err := decodeJSON(data)
					if err != nil {
						converted = false // a case about broken JSON
						break
					}
					out, ok := encode(doc, format)
					if !ok {
						converted = false // TOML has no null, for example
						break
					}
					name := strings.TrimSuffix(filepath.Base(in), ".json") + "." + format
					if err := os.WriteFile(filepath.Join(tmp, name), out, 0o600); err != nil {
						t.Fatal(err)
					}
				}
				if !converted {
					continue
				}
				files, links, _ := generate(t, tmp)
				// Only the source file's extension may differ, the
				// lines in messages (TOML gives none for fields), and so
				// the generation, a hash of units that name the file.
				for p, f := range files {
					files[p] = generationRE.ReplaceAllString(lineRE.ReplaceAllString(strings.ReplaceAll(f, "."+format, ".json"), ".json:"), "--generation=X")
				}
				for p, f := range wantFiles {
					wantFiles[p] = generationRE.ReplaceAllString(lineRE.ReplaceAllString(f, ".json:"), "--generation=X")
				}
				compareTrees(t, wantFiles, wantLinks, files, links)
			}
		})
	}
}

// decodeJSON keeps integers integers, so TOML and YAML get them as such.
func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	return ints(doc), nil
}

func ints(v any) any {
	switch t := v.(type) {
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		f, _ := t.Float64()
		return f
	case map[string]any:
		for k, e := range t {
			t[k] = ints(e)
		}
	case []any:
		for i, e := range t {
			t[i] = ints(e)
		}
	}
	return v
}

var lineRE = regexp.MustCompile(`\.json:(\d+:)?`)

func encode(doc any, format string) ([]byte, bool) {
	var buf bytes.Buffer
	switch format {
	case "toml":
		m, ok := doc.(map[string]any)
		if !ok || hasNull(doc) {
			return nil, false
		}
		if err := toml.NewEncoder(&buf).Encode(m); err != nil {
			return nil, false
		}
	case "yaml":
		if err := yaml.NewEncoder(&buf).Encode(doc); err != nil {
			return nil, false
		}
	}
	return buf.Bytes(), true
}

func hasNull(v any) bool {
	switch t := v.(type) {
	case nil:
		return true
	case map[string]any:
		for _, e := range t {
			if hasNull(e) {
				return true
			}
		}
	case []any:
		for _, e := range t {
			if hasNull(e) {
				return true
			}
		}
	}
	return false
}

// TestVerify runs systemd-analyze verify on every unit every case
// generates.
func TestVerify(t *testing.T) {
	v, err := generatortest.NewVerifier(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range cases(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			dirs, _ := searchPath(t, filepath.Join(dir, "input"))
			if err := v.Verify(generator.Run(dirs).Output, t.TempDir()); err != nil {
				t.Error(err)
			}
		})
	}
}
