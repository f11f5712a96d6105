package definition

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Drop-ins and templates follow systemd's rules for unit files
// (systemd.unit(5)), with definitions for units:
//
//   - NAME.d/*.{json,toml,yaml} beside a definition, and the site-wide
//     SiteDropInDir, hold JSON merge patches (RFC 7396) applied over the
//     definition. All of a container's drop-ins apply in file-name order,
//     whichever directory holds them; of two drop-ins of one file name, the
//     one in the higher search directory wins, and within one search
//     directory the more specific one (NAME.d over a template's NAME@.d
//     over SiteDropInDir), as a unit's foo.service.d/ overrides the
//     top-level service.d/. A drop-in that is a symlink to /dev/null masks
//     that file name.
//   - NAME@.json is a template; NAME@INST.json is an instance, holding
//     only its differences (a merge patch over the template). The
//     container is NAME-INST: systemd takes "@" in a unit's instance
//     (systemd-nspawn@web@1.service is valid) but a machine name is a host
//     name (hostname_is_valid: letters, digits, '-' and '.'), so "@" cannot
//     be in it. Instance drop-ins apply too: NAME@.d/ for every instance,
//     NAME@INST.d/ for one.

// SiteDropInDir is the drop-in directory, in each search directory, that
// applies to every container (systemd's top-level "service.d/").
const SiteDropInDir = "strata.d"

// InstancePlaceholder in a template's (or an instance's) string values is
// replaced by the instance name. Not a systemd specifier (%i): the value
// the units get is the substituted one, escaped like any other.
const InstancePlaceholder = "${instance}"

// templateOf splits an instance's (or a template's) file stem NAME@INST
// into NAME@ and INST; ok is false for an ordinary name.
func templateOf(stem string) (template, instance string, ok bool) {
	i := strings.IndexByte(stem, '@')
	if i < 0 {
		return "", "", false
	}
	return stem[:i+1], stem[i+1:], true
}

// InstanceName is the container an instance NAME@INST stands for.
func InstanceName(template, instance string) string {
	return strings.TrimSuffix(template, "@") + "-" + instance
}

// withDropIns turns the files discoverFiles chose into containers: templates
// are set aside, instances get their template, every container its drop-ins.
func withDropIns(dirs []string, files []Source, problems map[string]Problems) ([]Source, map[string]Problems) {
	templates := map[string]string{}
	ls := listings{}
	for _, s := range files {
		if t, inst, ok := templateOf(s.Name); ok && inst == "" {
			templates[t] = s.Path
		}
	}
	var out []Source
	for _, s := range files {
		t, inst, ok := templateOf(s.Name)
		if ok && inst == "" {
			continue
		}
		stem := s.Name
		if ok {
			s = instanceSource(dirs, s, t, inst, templates, problems)
			if s.Name == "" {
				continue
			}
		}
		var ps Problems
		s.DropIns, ps = dropIns(dirs, dropInDirs(stem, t, ok), ls)
		if len(ps) > 0 {
			problems[s.Name] = append(problems[s.Name], ps...)
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Name < out[j].Name || out[i].Name == out[j].Name && out[i].Path < out[j].Path
	})
	return sameName(out, problems)
}

// instanceSource is the container of instance file s, or a Source without
// a name when its template is masked (so is every instance, as in systemd).
func instanceSource(dirs []string, s Source, template, instance string, templates map[string]string, problems map[string]Problems) Source {
	name := InstanceName(template, instance)
	ps := append(problems[s.Name], problems[template]...)
	delete(problems, s.Name)
	tpath, found := templates[template]
	if !found && templateMasked(dirs, template) {
		return Source{}
	}
	if !found {
		ps = append(ps, Problem{File: s.Path, Severity: Error, Message: fmt.Sprintf("is an instance of template %q, but no %s.json, .toml or .yaml is in the search path: write the template, or rename the file (an instance's name is TEMPLATE@INSTANCE)", template, template)})
	}
	if len(ps) > 0 {
		problems[name] = append(problems[name], ps...)
	}
	return Source{Name: name, Path: s.Path, Template: tpath, Instance: instance}
}

// templateMasked reports whether the first search directory holding
// template NAME@ masks it (discoverFiles drops masked names silently).
func templateMasked(dirs []string, template string) bool {
	for _, dir := range dirs {
		for _, ext := range []string{".json", ".toml", ".yaml", ".yml"} {
			full := filepath.Join(dir, template+ext)
			if _, err := os.Lstat(full); err == nil {
				return isNull(full)
			}
		}
	}
	return false
}

// sameName keeps one container of each name, out sorted by name then
// path: an instance NAME@INST and a definition NAME-INST are both the
// container NAME-INST, an error for it.
func sameName(out []Source, problems map[string]Problems) ([]Source, map[string]Problems) {
	kept := out[:0]
	for _, s := range out {
		if n := len(kept); n > 0 && kept[n-1].Name == s.Name {
			problems[s.Name] = append(problems[s.Name], Problem{File: s.Path, Severity: Error,
				Message: fmt.Sprintf("container %q is also defined by %s: an instance NAME@INST is the container NAME-INST, so keep one of the two", s.Name, kept[n-1].Path)})
			continue
		}
		kept = append(kept, s)
	}
	return kept, problems
}

// dropInDirs are the drop-in directory names that apply to a file stem,
// most specific first.
func dropInDirs(stem, template string, instance bool) []string {
	dirs := []string{stem + ".d"}
	if instance {
		dirs = append(dirs, template+".d")
	}
	return append(dirs, SiteDropInDir)
}

// dropIns lists the drop-in files that apply, in the order they apply: the
// first of each file name found (search directories first, then names,
// most specific first) wins, and /dev/null masks it. A drop-in directory
// that cannot be read is an error: what it would change is unknown.
func dropIns(dirs, names []string, ls listings) ([]string, Problems) {
	chosen := map[string]string{} // file name → path, "" when masked
	var problems Problems
	for _, dir := range dirs {
		for _, name := range names {
			entries, err := ls.read(filepath.Join(dir, name))
			if err != nil {
				if !errors.Is(err, fs.ErrNotExist) {
					problems = append(problems, Problem{File: filepath.Join(dir, name), Severity: Error, Message: fmt.Sprintf("cannot read this drop-in directory: %v", errors.Unwrap(err))})
				}
				continue
			}
			for _, e := range entries {
				fn := e.Name()
				if _, seen := chosen[fn]; seen || strings.HasPrefix(fn, ".") || FormatOf(fn) == "" {
					continue
				}
				full := filepath.Join(dir, name, fn)
				if msg := ControlProblem(fn); msg != "" {
					problems = append(problems, Problem{File: strconv.Quote(full), Severity: Error, Message: "the drop-in's file name " + msg})
					continue
				}
				if e.Type()&fs.ModeSymlink != 0 && isNull(full) {
					full = ""
				}
				chosen[fn] = full
			}
		}
	}
	fns := make([]string, 0, len(chosen))
	for fn, p := range chosen {
		if p != "" {
			fns = append(fns, fn)
		}
	}
	sort.Strings(fns)
	var out []string
	for _, fn := range fns {
		out = append(out, chosen[fn])
	}
	return out, problems
}

// listings reads each directory once: strata.d/ (and a template's
// NAME@.d/) serve every container.
type listings map[string]listing

type listing struct {
	entries []fs.DirEntry
	err     error
}

func (ls listings) read(dir string) ([]fs.DirEntry, error) {
	l, ok := ls[dir]
	if !ok {
		l.entries, l.err = os.ReadDir(dir)
		ls[dir] = l
	}
	return l.entries, l.err
}

// notObject is why a drop-in (or instance file) whose top level is kind is
// refused: a merge patch that is not an object would replace the whole
// definition.
func notObject(kind nodeKind) string {
	return fmt.Sprintf("a drop-in is an object with the fields to change, not %s (a JSON merge patch, RFC 7396: null deletes a field, an object merges, anything else replaces)", kind)
}

// SourceOf is the container an explicitly named file stands for, its
// directory taken as the search path: an instance gets the template beside
// it, and the drop-ins there apply, as the generator would see them there.
func SourceOf(path string) (Source, Problems) {
	srcs, problems := Discover([]string{filepath.Dir(path)})
	for _, s := range srcs {
		if s.Path == filepath.Clean(path) {
			return s, problems[s.Name]
		}
	}
	return Source{Name: NameOf(path), Path: path}, nil
}
