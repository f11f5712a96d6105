package doctest

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"unicode"
)

// docs is docs/ seen from this package; etc is where pages say definitions are.
const (
	docs = ".."
	etc  = "/etc/strata"
)

// schemePages must exist, each with a definition and a units excerpt.
var schemePages = []string{"rbd", "iscsi", "nfs", "nfs-loopback", "local", "loopback", "verity"}

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
	markRE  = regexp.MustCompile(`^<!--\s*(definition|broken|validate|units|message|not-a-definition|file|explain)(?::\s*(.*?))?\s*-->$`)
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
	case "file", "explain":
		return checkLayoutMark(b)
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
