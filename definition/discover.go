package definition

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/strata-project/strata/internal/layout"
)

// DefaultSearchPath is where definitions are read from, highest priority
// first: the administrator's, transient ones, the vendor's (as Quadlet and
// systemd's own unit directories do).
var DefaultSearchPath = []string{"/etc/strata", "/run/strata/definitions", "/usr/lib/strata"}

// SearchPathEnv overrides DefaultSearchPath (colon-separated directories),
// for tests and dry runs.
const SearchPathEnv = "STRATA_DEFINITION_PATH"

// SearchPath returns the directories to read, from the environment or the default.
func SearchPath() []string {
	if env, ok := os.LookupEnv(SearchPathEnv); ok {
		var dirs []string
		for _, d := range strings.Split(env, ":") {
			if d != "" {
				dirs = append(dirs, d)
			}
		}
		return dirs
	}
	return DefaultSearchPath
}

// Source is the file that defines a container, chosen from the search path,
// with what applies over it (see dropin.go).
type Source struct {
	Name string
	Path string // the definition, or an instance's file (NAME@INST.json)
	// Template is an instance's template file (NAME@.json), "" for an
	// ordinary definition; Instance is the INST of NAME@INST.
	Template string
	Instance string
	// DropIns are the drop-in files that apply, in the order they apply.
	DropIns []string
}

// Skipped is a file in a search directory that defines nothing, and why.
type Skipped struct {
	Path string `json:"path"`
	Why  string `json:"why"`
}

// Found is what a search path holds: the definitions, their problems (by
// name; "" for a directory), the masked names (Path is the link) and the
// files skipped.
type Found struct {
	Sources  []Source
	Problems map[string]Problems
	Masked   []Source
	Skipped  []Skipped
}

// Discover lists the definitions in dirs. The first directory holding a name
// wins; a symlink to /dev/null there masks the name. Two files of one name
// in the same directory (test.json and test.yaml) are an error for that
// name, returned as a problem and as a Source with that problem so that the
// container still gets a unit that explains it. Templates (NAME@.json) are
// not containers, their instances are; each Source carries its template
// and drop-ins (see dropin.go).
func Discover(dirs []string) ([]Source, map[string]Problems) {
	f := Scan(dirs)
	return f.Sources, f.Problems
}

// Scan is Discover, also saying which names are masked and which files
// are skipped (so that `strata validate` can say what the generator does
// not read, and why).
func Scan(dirs []string) Found {
	f := scanFiles(dirs)
	f.Sources, f.Problems = withDropIns(dirs, f.Sources, f.Problems)
	return f
}

// scanFiles chooses each name's file (a definition, a template or an
// instance) from the search path.
func scanFiles(dirs []string) Found {
	seen := map[string]string{} // name → the file that defines or masks it
	var out []Source
	f := Found{Problems: map[string]Problems{}}
	problems := f.Problems
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				problems[""] = append(problems[""], Problem{File: dir, Severity: Error, Message: fmt.Sprintf("cannot read directory: %v", errors.Unwrap(err))})
			}
			continue
		}
		byName := map[string][]string{}
		var masked []Source
		for _, e := range entries {
			fn := e.Name()
			full := filepath.Join(dir, fn)
			if e.IsDir() && strings.HasSuffix(fn, ".d") {
				continue // drop-ins (dropin.go)
			}
			if e.IsDir() && fn == filepath.Base(layout.TrustDir) {
				continue // the trust store of signed verity root hashes
			}
			if why := skipReason(e); why != "" {
				f.Skipped = append(f.Skipped, Skipped{Path: full, Why: why})
				continue
			}
			name := NameOf(fn)
			if first, ok := seen[name]; ok {
				f.Skipped = append(f.Skipped, Skipped{Path: full, Why: "overridden by " + first + ", earlier in the search path"})
				continue
			}
			if e.Type()&fs.ModeSymlink != 0 && isNull(full) {
				masked = append(masked, Source{Name: name, Path: full})
				continue
			}
			byName[name] = append(byName[name], full)
		}
		for _, m := range masked {
			seen[m.Name] = m.Path
			delete(byName, m.Name)
		}
		f.Masked = append(f.Masked, masked...)
		names := make([]string, 0, len(byName))
		for n := range byName {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, name := range names {
			paths := byName[name]
			seen[name] = paths[0]
			out = append(out, Source{Name: name, Path: paths[0]})
			if len(paths) > 1 {
				problems[name] = append(problems[name], Problem{File: paths[0], Severity: Error,
					Message: fmt.Sprintf("container %q is defined by %d files in one directory (%s): keep one", name, len(paths), strings.Join(paths, ", "))})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	f.Sources = out
	return f
}

// skipReason says why a directory entry is not read as a definition, ""
// when it is one.
func skipReason(e fs.DirEntry) string {
	fn := e.Name()
	switch {
	case strings.HasPrefix(fn, "."):
		return "a hidden file (its name starts with \".\")"
	case strings.HasSuffix(fn, "~"):
		return "an editor's backup file (its name ends in \"~\")"
	case FormatOf(fn) == "" && e.IsDir():
		return "a directory"
	case FormatOf(fn) == "" && FormatOf(strings.ToLower(fn)) != "":
		return "the extension must be lower case (.json, .toml, .yaml or .yml)"
	case FormatOf(fn) == "":
		return "not a definition: the name must end in .json, .toml, .yaml or .yml"
	}
	return ""
}

// isNull reports whether a symlink leads to the null device, as systemd
// tells a masked unit: /dev/null or any other way there (../../dev/null).
// stat(2) opens nothing, so a link to a FIFO cannot block here.
func isNull(path string) bool {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode()&fs.ModeCharDevice == 0 {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Rdev == unix.Mkdev(1, 3)
}
