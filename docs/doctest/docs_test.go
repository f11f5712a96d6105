package doctest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode"

	"github.com/strata-project/strata/definition"
	"github.com/strata-project/strata/generator"
	"github.com/strata-project/strata/generator/generatortest"
	"github.com/strata-project/strata/helpers/contract"
	"github.com/strata-project/strata/helpers/iscsi"
	"github.com/strata-project/strata/helpers/krbd"
	"github.com/strata-project/strata/helpers/secret"
	"github.com/strata-project/strata/internal/layout"
)

// docs is docs/ seen from this package; etc is where pages say definitions are.
const (
	docs = ".."
	etc  = "/etc/strata"
)

// schemePages must exist, each with a definition and a units excerpt.
var schemePages = []string{"rbd", "iscsi", "nfs", "nfs-loopback", "local", "loopback"}

// otherPages must exist.
var otherPages = []string{"QUICKSTART.md", "MIGRATION.md", "SECURITY.md", "TROUBLESHOOTING.md"}

// exposedWarning depends on the checkout's owner and umask, not on the page.
const exposedWarning = "holds a secret (key or password) but other users can read it: chmod 600 and chown root (or move the key to a keyring file or a systemd credential)"

// block is a fenced block of a page, with the mark before it.
type block struct {
	page string   // relative to docs/
	line int      // of the opening fence
	kind string   // the mark ("" for none)
	args []string // the mark's arguments
	lang string   // the fence's language
	body string
}

func (b block) where() string { return fmt.Sprintf("docs/%s:%d", b.page, b.line) }

// name is the definition file a block is about.
func (b block) name() string {
	if len(b.args) == 0 {
		return ""
	}
	return b.args[len(b.args)-1]
}

var (
	markRE  = regexp.MustCompile(`^<!--\s*(definition|broken|validate|units|message|not-a-definition)(?::\s*(.*?))?\s*-->$`)
	fenceRE = regexp.MustCompile("^(\\s*)```\\s*([A-Za-z0-9_-]*)")
	linkRE  = regexp.MustCompile(`\]\(([^)\s]+)\)`)
)

// page is one Markdown file under docs/.
type page struct {
	name   string
	text   string
	blocks []block
	defs   map[string]block // definition and broken blocks by file name
}

var (
	pagesOnce sync.Once
	allPages  []*page
	pagesErr  []string
)

// pages reads and parses every page once; pagesErr holds the marks that
// cannot be used.
func pages(t *testing.T) []*page {
	t.Helper()
	pagesOnce.Do(func() {
		err := filepath.WalkDir(docs, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".md") {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(docs, p)
			pg, errs := parse(filepath.ToSlash(rel), string(data))
			allPages = append(allPages, pg)
			pagesErr = append(pagesErr, errs...)
			return nil
		})
		if err != nil {
			pagesErr = append(pagesErr, err.Error())
		}
		sort.Slice(allPages, func(i, j int) bool { return allPages[i].name < allPages[j].name })
	})
	if len(allPages) == 0 {
		t.Fatal("no pages under docs/")
	}
	return allPages
}

func parse(name, text string) (*page, []string) {
	pg := &page{name: name, text: text, defs: map[string]block{}}
	var errs []string
	lines := strings.Split(text, "\n")
	var mark *block
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		trimmed := strings.TrimSpace(line)
		if m := markRE.FindStringSubmatch(trimmed); m != nil {
			if mark != nil {
				errs = append(errs, fmt.Sprintf("docs/%s:%d: mark %q is followed by another mark, not a fenced block", name, mark.line, mark.kind))
			}
			mark = &block{page: name, line: i + 1, kind: m[1], args: strings.Fields(m[2])}
			continue
		}
		f := fenceRE.FindStringSubmatch(line)
		if f == nil {
			if mark != nil && trimmed != "" {
				errs = append(errs, fmt.Sprintf("docs/%s:%d: mark %q is not followed by a fenced block", name, mark.line, mark.kind))
				mark = nil
			}
			continue
		}
		b := block{page: name, line: i + 1, lang: f[2]}
		if mark != nil {
			b.kind, b.args = mark.kind, mark.args
			mark = nil
		}
		indent := f[1]
		var body []string
		closed := false
		for i++; i < len(lines); i++ {
			if strings.TrimSpace(lines[i]) == "```" {
				closed = true
				break
			}
			body = append(body, strings.TrimPrefix(lines[i], indent))
		}
		if !closed {
			errs = append(errs, fmt.Sprintf("%s: the block is not closed", b.where()))
		}
		b.body = strings.Join(body, "\n") + "\n"
		if err := checkMark(b); err != "" {
			errs = append(errs, b.where()+": "+err)
			continue
		}
		if b.kind == "definition" || b.kind == "broken" {
			if _, dup := pg.defs[b.name()]; dup {
				errs = append(errs, fmt.Sprintf("%s: %s is defined twice on this page", b.where(), b.name()))
			}
			pg.defs[b.name()] = b
		}
		pg.blocks = append(pg.blocks, b)
	}
	if mark != nil {
		errs = append(errs, fmt.Sprintf("docs/%s:%d: mark %q at the end of the page", name, mark.line, mark.kind))
	}
	return pg, errs
}

var formats = map[string][]string{"json": {".json"}, "toml": {".toml"}, "yaml": {".yaml", ".yml"}}

// checkMark checks a block's mark against its fence.
func checkMark(b block) string {
	_, isDef := formats[b.lang]
	switch b.kind {
	case "":
		if isDef {
			return "a " + b.lang + " block without a mark: mark it <!-- definition: NAME." + b.lang + " -->, <!-- broken: ... --> or <!-- not-a-definition -->"
		}
	case "not-a-definition":
	case "definition", "broken":
		if len(b.args) != 1 {
			return "want <!-- " + b.kind + ": NAME.EXT -->"
		}
		if !isDef || !slices.Contains(formats[b.lang], filepath.Ext(b.name())) {
			return fmt.Sprintf("%s is in a %q block: use a json, toml or yaml fence matching the file's extension", b.name(), b.lang)
		}
	case "validate", "units":
		if len(b.args) != 1 {
			return "want <!-- " + b.kind + ": NAME.EXT -->"
		}
	case "message":
		if len(b.args) != 2 {
			return "want <!-- message: SCENARIO NAME.EXT -->"
		}
		if _, ok := scenarios[b.args[0]]; !ok {
			return fmt.Sprintf("no scenario %q (the test knows %s)", b.args[0], strings.Join(scenarioNames(), ", "))
		}
	}
	return ""
}

func TestPages(t *testing.T) {
	all := pages(t)
	for _, e := range pagesErr {
		t.Error(e)
	}
	byName := map[string]*page{}
	for _, pg := range all {
		byName[pg.name] = pg
	}
	for _, name := range otherPages {
		if byName[name] == nil {
			t.Errorf("docs/%s is missing", name)
		}
	}
	for _, s := range schemePages {
		pg := byName["schemes/"+s+".md"]
		if pg == nil {
			t.Errorf("docs/schemes/%s.md is missing: every scheme has a page", s)
			continue
		}
		defs, excerpts := 0, 0
		for _, b := range pg.blocks {
			switch b.kind {
			case "definition":
				defs++
			case "units":
				excerpts++
			}
		}
		if defs == 0 {
			t.Errorf("docs/%s has no <!-- definition: NAME.json --> block: a scheme page shows a complete definition", pg.name)
		}
		if excerpts == 0 {
			t.Errorf("docs/%s has no <!-- units: NAME.json --> excerpt of what the definition becomes", pg.name)
		}
	}
	for _, pg := range all {
		if strings.HasPrefix(pg.name, "schemes/") && !slices.Contains(schemePages, strings.TrimSuffix(strings.TrimPrefix(pg.name, "schemes/"), ".md")) {
			t.Errorf("docs/%s is not a known scheme: add it to schemePages", pg.name)
		}
		// Blocks that quote a definition's output name one of the page's.
		for _, b := range pg.blocks {
			switch b.kind {
			case "validate", "units", "message":
				if _, ok := pg.defs[b.name()]; !ok {
					t.Errorf("%s: no definition or broken block %s on this page", b.where(), b.name())
				}
			}
		}
	}
}

// TestLinks checks that relative links between pages resolve.
func TestLinks(t *testing.T) {
	for _, pg := range pages(t) {
		for _, m := range linkRE.FindAllStringSubmatch(pg.text, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "#") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			p := filepath.Join(docs, filepath.Dir(pg.name), file)
			if _, err := os.Stat(p); err != nil {
				t.Errorf("docs/%s: link %s does not resolve: %v", pg.name, m[1], err)
				continue
			}
			if anchor == "" || !strings.HasSuffix(file, ".md") {
				continue
			}
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(anchors(string(data)), anchor) {
				t.Errorf("docs/%s: link %s: %s has no heading #%s (it has %s)", pg.name, m[1], file, anchor, strings.Join(anchors(string(data)), ", "))
			}
		}
	}
}

// anchors are the fragment names of a page's headings, as GitHub makes them:
// lower case, punctuation dropped, spaces as hyphens.
func anchors(text string) []string {
	var out []string
	inFence := false
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			inFence = !inFence
		}
		if inFence || !strings.HasPrefix(l, "#") {
			continue
		}
		h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(l, "#")))
		var b strings.Builder
		for _, r := range h {
			switch {
			case r == ' ':
				b.WriteByte('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		out = append(out, b.String())
	}
	return out
}

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

// A scenario plays a failure of the attach unit of a definition and returns
// the line the helper logs for it (the journal's MESSAGE).
type scenario func(t *testing.T, r *rendered) string

var scenarios = map[string]scenario{
	// The kernel's answers to the map request (errno of the sysfs write),
	// through the real krbd mapper; the kernel log is left empty.
	"rbd-not-found":         rbdKernel(syscall.ENOENT),
	"rbd-permission-denied": rbdKernel(syscall.EACCES),
	"rbd-unreachable":       rbdKernel(syscall.ETIMEDOUT),
	// The keyring the definition names is not there.
	"rbd-keyring-missing": rbdKeyringMissing,
	// The target refuses the CHAP login.
	"iscsi-chap-failed": iscsiCHAPFailed,
	// The image file is not there (the real helper binary; needs root).
	"loop-file-missing": loopFileMissing,
	// The placeholder unit of a broken definition is started (the real
	// helper binary).
	"definition-errors": definitionErrors,
}

func scenarioNames() []string {
	var out []string
	for n := range scenarios {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// TestMessages compares every message block with what the scenario logs.
func TestMessages(t *testing.T) {
	for _, pg := range pages(t) {
		for _, b := range pg.blocks {
			if b.kind != "message" {
				continue
			}
			def, ok := pg.defs[b.name()]
			play, known := scenarios[b.args[0]]
			if !ok || !known {
				continue // TestPages says so
			}
			t.Run(b.page+"/"+b.args[0], func(t *testing.T) {
				got := play(t, renderOnce(t, def)) + "\n"
				if got != b.body {
					t.Errorf("%s: the helper logs\n%s--- the page quotes\n%s", b.where(), got, b.body)
				}
			})
		}
	}
}

// helperCommand finds the attach unit of r whose ExecStart runs verb and
// returns its name, the definition it names and the parsed command.
func helperCommand(t *testing.T, r *rendered, verb string) (unit, source string, cmd contract.Command) {
	t.Helper()
	for p, text := range r.files {
		if !strings.HasPrefix(p, "strata-attach@") {
			continue
		}
		argv := execStart(t, text)
		if len(argv) < 2 || argv[0] != layout.HelperPath || argv[1] != verb {
			continue
		}
		c, err := contract.Parse(argv[1:])
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		unit, _, _ := strings.Cut(p, ".d/") // a drop-in of the attach template
		return unit, sourcePath(text), c
	}
	t.Fatalf("%s renders no attach unit running %s", filepath.Base(r.path), verb)
	return
}

// execStart splits a unit's last ExecStart= line into words, undoing
// units.QuoteExec: "..." with \" \\ \t escapes, %% and $$.
func execStart(t *testing.T, unit string) []string {
	t.Helper()
	var line string
	sc := bufio.NewScanner(strings.NewReader(unit))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "ExecStart="); ok && v != "" {
			line = v
		}
	}
	var words []string
	var w strings.Builder
	inWord, quoted := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quoted && c == '\\' && i+1 < len(line):
			i++
			if line[i] == 't' {
				w.WriteByte('\t')
			} else {
				w.WriteByte(line[i])
			}
		case quoted && c == '"':
			quoted = false
		case quoted:
			w.WriteByte(c)
		case c == '"':
			quoted, inWord = true, true
		case c == ' ':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if quoted {
		t.Fatalf("ExecStart=%s: unterminated quote", line)
	}
	if inWord {
		words = append(words, w.String())
	}
	for i, w := range words {
		words[i] = strings.NewReplacer("%%", "%", "$$", "$").Replace(w)
	}
	return words
}

func sourcePath(unit string) string {
	for _, l := range strings.Split(unit, "\n") {
		if v, ok := strings.CutPrefix(l, "SourcePath="); ok {
			return v
		}
	}
	return ""
}

// helperLine is the helper's failure line (cmd/strata-helper/log.go
// failureText), checked against the real binary by loop-file-missing.
func helperLine(verb, layer, source, unit string, err error) string {
	return fmt.Sprintf("%s failed for %s (definition %s, unit %s): %v", verb, layer, source, unit, err)
}

// cephKey is a well-formed cephx key (CryptoKey, AES, 16 bytes).
func cephKey() string {
	b := make([]byte, 12+16)
	binary.LittleEndian.PutUint16(b[0:], 1)
	binary.LittleEndian.PutUint32(b[2:], 1700000000)
	binary.LittleEndian.PutUint16(b[10:], 16)
	copy(b[12:], "DocumentedKey!!!")
	return base64.StdEncoding.EncodeToString(b)
}

type keyring struct{}

func (keyring) Add(string, []byte) (int, error) { return 1, nil }
func (keyring) Remove(int) error                { return nil }

func rbdLayer(c contract.RBDMap) krbd.Spec {
	return krbd.Spec{Pool: c.Pool, Namespace: c.Namespace, Image: c.Image, Snapshot: c.Snapshot}
}

// rbdKernel makes the kernel answer the map request with errno.
func rbdKernel(errno syscall.Errno) scenario {
	return func(t *testing.T, r *rendered) string {
		unit, source, cmd := helperCommand(t, r, contract.VerbRBDMap)
		c := cmd.(contract.RBDMap)
		root := t.TempDir()
		sys, dev := filepath.Join(root, "sys"), filepath.Join(root, "dev")
		bus := filepath.Join(sys, "bus", "rbd")
		for _, d := range []string{filepath.Join(bus, "devices"), dev, filepath.Join(root, "proc", "self")} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for _, f := range []string{"add", "remove", "add_single_major", "remove_single_major"} {
			if err := os.WriteFile(filepath.Join(bus, f), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		m := &krbd.Mapper{
			Keyring: keyring{},
			Write: func(path string, data []byte) error {
				return &fs.PathError{Op: "write", Path: path, Err: errno}
			},
			Modprobe:   func(context.Context) error { return errors.New("no modprobe in this test") },
			KernelLog:  func() func() []string { return func() []string { return nil } },
			StatDevice: func(string) (krbd.DevNode, error) { return krbd.DevNode{}, os.ErrNotExist },
			ProcRoot:   filepath.Join(root, "proc"),
		}
		spec := krbd.Spec{Monitors: c.Monitors, User: c.User, Pool: c.Pool, Namespace: c.Namespace, Image: c.Image, Snapshot: c.Snapshot, Options: c.Options}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := m.Map(ctx, sys, dev, spec, cephKey())
		if err == nil {
			t.Fatal("the map succeeded")
		}
		return helperLine(contract.VerbRBDMap, "rbd image "+rbdLayer(c).String(), source, unit, err)
	}
}

// rbdKeyringMissing reads the key where the unit says it is, as the helper
// does (cmd/strata-helper/rbd.go rbdKey), from a keyring that must not exist.
func rbdKeyringMissing(t *testing.T, r *rendered) string {
	unit, source, cmd := helperCommand(t, r, contract.VerbRBDMap)
	c := cmd.(contract.RBDMap)
	if c.Secret.Keyring == "" {
		t.Fatal("the definition names no keyring file")
	}
	if _, err := os.Stat(c.Secret.Keyring); err == nil {
		t.Fatalf("%s exists on this machine: the scenario needs it missing", c.Secret.Keyring)
	}
	_, err := secret.Read(c.Secret, c.User)
	if err == nil {
		t.Fatal("the key was read")
	}
	spec := krbd.Spec{Monitors: c.Monitors, User: c.User, Pool: c.Pool, Namespace: c.Namespace, Image: c.Image, Snapshot: c.Snapshot, Options: c.Options}
	return helperLine(contract.VerbRBDMap, "rbd image "+rbdLayer(c).String(), source, unit,
		fmt.Errorf("rbd %s: %w", spec, err))
}

// iscsiCHAPFailed runs the real iSCSI login against an iscsiadm that answers
// as open-iscsi 2.1.8 (Debian 12) does when the target refuses the CHAP
// user or password.
func iscsiCHAPFailed(t *testing.T, r *rendered) string {
	unit, source, cmd := helperCommand(t, r, contract.VerbISCSILogin)
	c := cmd.(contract.ISCSILogin)
	if c.CHAPUser == "" {
		t.Fatal("the definition has no CHAP user")
	}
	root := t.TempDir()
	config := filepath.Join(root, "etc", "iscsi")
	target := iscsi.Target{Host: c.Host, Port: c.Port, Target: c.Target, LUN: c.LUN, Initiator: c.Initiator,
		MaxCommands: c.MaxCommands, QueueDepth: c.QueueDepth, Scheduler: c.Scheduler, CHAPUser: c.CHAPUser}
	portal := fmt.Sprintf("%s:%d", c.Host, c.Port)
	iface := iscsi.IfaceName(c.Initiator)
	run := func(ctx context.Context, args []string) (iscsi.Result, error) {
		joined := strings.Join(args, " ")
		switch {
		case strings.HasPrefix(joined, "-m discovery"):
			rec := filepath.Join(config, "nodes", c.Target, fmt.Sprintf("%s,%d,1", c.Host, c.Port), iface)
			if err := os.MkdirAll(filepath.Dir(rec), 0o700); err != nil {
				return iscsi.Result{}, err
			}
			if err := os.WriteFile(rec, []byte("# BEGIN RECORD 2.1.8\nnode.name = "+c.Target+"\n# END RECORD\n"), 0o600); err != nil {
				return iscsi.Result{}, err
			}
			return iscsi.Result{Stdout: fmt.Sprintf("%s,1 %s\n", portal, c.Target)}, nil
		case strings.HasSuffix(joined, "--login"):
			where := fmt.Sprintf("[iface: %s, target: %s, portal: %s,%d]", iface, c.Target, c.Host, c.Port)
			return iscsi.Result{Exit: 24,
				Stdout: "Logging in to " + where + "\n",
				Stderr: "iscsiadm: Could not login to " + where + ".\n" +
					"iscsiadm: initiator reported error (24 - iSCSI login failed due to authorization failure)\n" +
					"iscsiadm: Could not log into all portals\n"}, nil
		}
		return iscsi.Result{}, nil // iface new/update, node update, delete
	}
	m := &iscsi.Manager{Run: run, SysfsRoot: filepath.Join(root, "sys"), DevRoot: filepath.Join(root, "dev"),
		ConfigRoot: config, LockDir: filepath.Join(root, "lock"), StateDir: filepath.Join(root, "state")}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := m.Login(ctx, target, "a-chap-password")
	if err == nil {
		t.Fatal("the login succeeded")
	}
	return helperLine(contract.VerbISCSILogin, "iSCSI "+target.String(), source, unit, err)
}

var (
	helperOnce sync.Once
	helperBin  string
	helperErr  error
)

// helper builds the real strata-helper once.
func helper(t *testing.T) string {
	t.Helper()
	helperOnce.Do(func() {
		dir, err := os.MkdirTemp("", "strata-doctest-helper")
		if err != nil {
			helperErr = err
			return
		}
		tempDirs = append(tempDirs, dir)
		helperBin = filepath.Join(dir, "strata-helper")
		cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", helperBin, "github.com/strata-project/strata/cmd/strata-helper")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			helperErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if helperErr != nil {
		t.Fatal(helperErr)
	}
	return helperBin
}

// runHelper runs the real helper with argv (after the program name) as the
// unit runs it: its cgroup names the unit and the generator directory holds
// the unit's file (STRATA_HELPER_TEST_ROOT moves /proc/self/cgroup and
// /run/systemd/generator; loop devices stay the host's). It returns the
// lines the helper printed, without their "strata-helper: " prefix.
func runHelper(t *testing.T, unit, file, text string, argv []string) []string {
	t.Helper()
	root := t.TempDir()
	gen := filepath.Join(root, "run", "systemd", "generator")
	for _, d := range []string{filepath.Join(root, "proc", "self"), filepath.Dir(filepath.Join(gen, file))} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "proc", "self", "cgroup"), []byte("0::/system.slice/"+unit+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(gen, file), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	run := exec.Command(helper(t), argv...)
	run.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "STRATA_HELPER_TEST_ROOT=" + root}
	var stderr bytes.Buffer
	run.Stderr = &stderr
	err := run.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("the helper: %v, want exit status 1\n%s", err, stderr.String())
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n") {
		line, ok := strings.CutPrefix(l, "strata-helper: ")
		if !ok {
			t.Fatalf("the helper printed %q, not a strata-helper: line", l)
		}
		lines = append(lines, line)
	}
	return lines
}

// loopFileMissing runs the attach unit's command line with a file that is
// not there.
func loopFileMissing(t *testing.T, r *rendered) string {
	unit, source, cmd := helperCommand(t, r, contract.VerbLoopAttach)
	c := cmd.(contract.LoopAttach)
	if os.Geteuid() != 0 {
		t.Skip("needs root: the helper opens /dev/loop-control before the image file")
	}
	if _, err := os.Stat(c.File); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s exists on this machine (%v): the scenario needs it missing", c.File, err)
	}
	lines := runHelper(t, unit, unit+".d/"+layout.DropInName, r.files[unit+".d/"+layout.DropInName], contract.Argv(c)[1:])
	if len(lines) != 1 {
		t.Fatalf("the helper printed %q, want one line", lines)
	}
	// The other scenarios rebuild this line with helperLine: check it holds.
	line := lines[0]
	verb, rest, _ := strings.Cut(line, " failed for ")
	if want := "loop file " + c.File + " (definition " + source + ", unit " + unit + "): "; verb != contract.VerbLoopAttach || !strings.HasPrefix(rest, want) {
		t.Errorf("the helper's failure line %q does not start as helperLine builds it (%s failed for %s)", line, contract.VerbLoopAttach, want)
	}
	return line
}

// definitionErrors starts the placeholder unit of a broken definition: the
// helper logs each problem, then its failure.
func definitionErrors(t *testing.T, r *rendered) string {
	if len(r.result.Failed) != 1 {
		t.Fatalf("%s is not a broken definition", filepath.Base(r.path))
	}
	unit := layout.ContainerUnit(r.result.Failed[0].Name)
	file := unit + ".d/" + layout.DropInName
	text, ok := r.files[file]
	if !ok {
		t.Fatalf("no placeholder %s", file)
	}
	argv := execStart(t, text)
	if len(argv) < 2 || argv[0] != layout.HelperPath || argv[1] != contract.VerbFail {
		t.Fatalf("the placeholder runs %q", argv)
	}
	return strings.Join(runHelper(t, unit, file, text, argv[1:]), "\n")
}
