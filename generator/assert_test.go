package generator_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Golden cases state their intent in cases/NAME/assert.txt, in the style of
// Quadlet's test cases: the keys and Exec arguments that matter, checked
// on the generated tree, so that a regenerated expected/ that loses them
// fails even when nobody reads the diff. testdata/README.md describes the
// format.

func TestGoldenAssertions(t *testing.T) {
	asserted := 0
	for _, dir := range cases(t) {
		name := filepath.Base(dir)
		data, err := os.ReadFile(filepath.Join(dir, "assert.txt"))
		if os.IsNotExist(err) {
			t.Errorf("%s has no assert.txt: say what the case is for (testdata/README.md)", name)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		asserted++
		t.Run(name, func(t *testing.T) {
			files, links, problems := generate(t, filepath.Join(dir, "input"))
			tree := &tree{files: files, links: links, problems: problems}
			n := 0
			sc := bufio.NewScanner(strings.NewReader(string(data)))
			for line := 1; sc.Scan(); line++ {
				text := strings.TrimSpace(sc.Text())
				if text == "" || strings.HasPrefix(text, "#") {
					continue
				}
				n++
				if err := tree.check(text); err != nil {
					t.Errorf("assert.txt:%d: %s: %v", line, text, err)
				}
			}
			if n == 0 {
				t.Error("assert.txt asserts nothing")
			}
		})
	}
	if asserted < minCases {
		t.Errorf("%d cases with assertions, want at least %d", asserted, minCases)
	}
}

type tree struct {
	files, links map[string]string
	problems     string
}

// check evaluates one assertion line.
func (tr *tree) check(line string) error {
	switch verb, rest, _ := strings.Cut(line, " "); verb {
	case "file":
		if len(tr.match(rest)) == 0 {
			return fmt.Errorf("no such file")
		}
		return nil
	case "no-file":
		if m := tr.match(rest); len(m) > 0 {
			return fmt.Errorf("written: %v", m)
		}
		if _, ok := tr.links[rest]; ok {
			return fmt.Errorf("written as a link")
		}
		return nil
	case "link":
		name, target, ok := strings.Cut(rest, " -> ")
		if !ok {
			return fmt.Errorf("want link NAME -> TARGET")
		}
		if got, ok := tr.links[name]; !ok || got != target {
			return fmt.Errorf("link is %q (present: %v)", got, ok)
		}
		return nil
	case "problem:":
		if !strings.Contains(tr.problems, rest) {
			return fmt.Errorf("no problem says that; the problems:\n%s", tr.problems)
		}
		return nil
	}
	file, claim, ok := strings.Cut(line, ": ")
	if !ok {
		return fmt.Errorf("unknown assertion")
	}
	names := tr.match(file)
	if len(names) == 0 {
		return fmt.Errorf("no file matches %s", file)
	}
	if key, found := strings.CutPrefix(claim, "no "); found {
		for _, n := range names {
			if vs := values(tr.files[n], key); len(vs) > 0 {
				return fmt.Errorf("%s has %s%s", n, key, vs[0])
			}
		}
		return nil
	}
	key, rest, ok := strings.Cut(claim, " ")
	op, want, ok2 := strings.Cut(rest, " ")
	if !ok || !ok2 || !strings.HasSuffix(key, "=") {
		return fmt.Errorf("want FILE: KEY= is|has|lacks|contains VALUE, or FILE: no KEY=")
	}
	if op == "lacks" {
		for _, n := range names {
			for _, v := range values(tr.files[n], key) {
				if slices.Contains(strings.Fields(v), want) {
					return fmt.Errorf("%s has %s%s", n, key, v)
				}
			}
		}
		return nil
	}
	var seen []string
	for _, n := range names {
		for _, v := range values(tr.files[n], key) {
			seen = append(seen, v)
			switch op {
			case "is":
				ok = v == want
			case "has":
				ok = slices.Contains(strings.Fields(v), want)
			case "contains":
				ok = strings.Contains(v, want)
			default:
				return fmt.Errorf("unknown comparison %q", op)
			}
			if ok {
				return nil
			}
		}
	}
	return fmt.Errorf("%s values in %v: %q", key, names, seen)
}

// match is the files whose name matches pattern: '*' stands for any run of
// characters within one path element; nothing else is special ('\' is part
// of escaped unit names).
func (tr *tree) match(pattern string) []string {
	re := regexp.MustCompile("^" + strings.ReplaceAll(regexp.QuoteMeta(pattern), `\*`, `[^/]*`) + "$")
	var out []string
	for n := range tr.files {
		if re.MatchString(n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// values are the values of key (with its '=') in a unit file, any section.
func values(unit, key string) []string {
	var out []string
	for _, l := range strings.Split(unit, "\n") {
		if v, ok := strings.CutPrefix(l, key); ok {
			out = append(out, v)
		}
	}
	return out
}
