package doctest

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// headerRE is a "# PATH" or "# PATH -> TARGET" line of strata render's output.
var headerRE = regexp.MustCompile(`^# (\S+)(?: -> (\S+))?$`)

// TestUnitExcerpts compares every units excerpt with `strata render`.
func TestUnitExcerpts(t *testing.T) {
	for _, pg := range pages(t) {
		for _, b := range pg.blocks {
			if b.kind != "units" {
				continue
			}
			def, ok := pg.defs[b.name()]
			if !ok {
				continue
			}
			r := renderOnce(t, def)
			for _, e := range compareExcerpt(b.body, r) {
				t.Errorf("%s: %s", b.where(), e)
			}
		}
	}
}

// compareExcerpt checks an excerpt against the rendered tree.
func compareExcerpt(excerpt string, r *rendered) []string {
	var errs []string
	type section struct {
		path, target string
		link         bool
		lines        []string
	}
	var sections []*section
	for _, l := range strings.Split(strings.TrimRight(excerpt, "\n"), "\n") {
		if m := headerRE.FindStringSubmatch(l); m != nil {
			sections = append(sections, &section{path: m[1], target: m[2], link: m[2] != ""})
			continue
		}
		if len(sections) == 0 {
			if strings.TrimSpace(l) != "" {
				errs = append(errs, fmt.Sprintf("the excerpt starts with %q, not a \"# PATH\" line naming a file strata render writes", l))
			}
			continue
		}
		s := sections[len(sections)-1]
		s.lines = append(s.lines, l)
	}
	if len(sections) == 0 {
		return append(errs, "the excerpt names no file")
	}
	var paths []string
	for p := range r.files {
		paths = append(paths, p)
	}
	for p := range r.links {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, s := range sections {
		for len(s.lines) > 0 && strings.TrimSpace(s.lines[len(s.lines)-1]) == "" {
			s.lines = s.lines[:len(s.lines)-1]
		}
		if s.link {
			got, ok := r.links[s.path]
			switch {
			case !ok:
				errs = append(errs, fmt.Sprintf("strata render makes no symlink %s (it writes %s)", s.path, strings.Join(paths, ", ")))
			case got != s.target:
				errs = append(errs, fmt.Sprintf("%s points to %s, not %s", s.path, got, s.target))
			}
			if len(s.lines) > 0 {
				errs = append(errs, fmt.Sprintf("lines after the symlink %s", s.path))
			}
			continue
		}
		content, ok := r.files[s.path]
		if !ok {
			errs = append(errs, fmt.Sprintf("strata render writes no file %s (it writes %s)", s.path, strings.Join(paths, ", ")))
			continue
		}
		// A generation is a hash of all the units: pages write HASH.
		got := strings.Split(strings.TrimRight(generationRE.ReplaceAllString(content, "--generation=HASH"), "\n"), "\n")
		if !matchLines(s.lines, got) {
			errs = append(errs, fmt.Sprintf("the excerpt of %s does not match what strata render writes:\n--- excerpt\n%s\n--- %s\n%s", s.path, strings.Join(s.lines, "\n"), s.path, content))
		}
	}
	return errs
}

var generationRE = regexp.MustCompile(`--generation=[0-9a-f]+`)

// matchLines reports whether got matches want, where a "..." line of want
// stands for any number of lines.
func matchLines(want, got []string) bool {
	segs := [][]string{nil}
	for _, w := range want {
		if strings.TrimSpace(w) == "..." {
			segs = append(segs, nil)
			continue
		}
		segs[len(segs)-1] = append(segs[len(segs)-1], w)
	}
	if len(segs) == 1 {
		return slices.Equal(segs[0], got)
	}
	first, last := segs[0], segs[len(segs)-1]
	if len(first)+len(last) > len(got) || !slices.Equal(got[:len(first)], first) || !slices.Equal(got[len(got)-len(last):], last) {
		return false
	}
	mid := got[len(first) : len(got)-len(last)]
	for _, s := range segs[1 : len(segs)-1] {
		i := index(mid, s)
		if i < 0 {
			return false
		}
		mid = mid[i+len(s):]
	}
	return true
}

func index(hay, needle []string) int {
	for i := 0; i+len(needle) <= len(hay); i++ {
		if slices.Equal(hay[i:i+len(needle)], needle) {
			return i
		}
	}
	return -1
}

func TestMatchLines(t *testing.T) {
	got := []string{"a", "b", "c", "d", "e"}
	for _, c := range []struct {
		want []string
		ok   bool
	}{
		{[]string{"a", "b", "c", "d", "e"}, true},
		{[]string{"a", "b"}, false},
		{[]string{"a", "...", "e"}, true},
		{[]string{"...", "c", "..."}, true},
		{[]string{"...", "c", "b", "..."}, false},
		{[]string{"a", "...", "b", "...", "d", "e"}, true},
		{[]string{"a", "...", "d"}, false},
		{[]string{"...", "e"}, true},
		{[]string{"a", "b", "...", "b", "c", "d", "e"}, false},
	} {
		if matchLines(c.want, got) != c.ok {
			t.Errorf("matchLines(%q) = %v", c.want, !c.ok)
		}
	}
}
