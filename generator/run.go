package generator

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/strata-project/strata/definition"
)

// Result is one generator run: the output tree and every problem found.
type Result struct {
	Output   *Output
	Problems definition.Problems // errors and warnings, file by file
	Failed   []Failed            // containers that got a failing placeholder
	Loaded   []*definition.Definition
}

// Run reads the definitions in dirs (see definition.Discover) and builds
// the output. One broken definition never stops the others.
func Run(dirs []string) *Result {
	return RunSources(definition.Discover(dirs))
}

// RunSources builds the output from chosen sources; discovered holds
// problems found while choosing them, by container name ("" for none).
func RunSources(sources []definition.Source, discovered map[string]definition.Problems) *Result {
	r := &Result{Problems: discovered[""]}
	var failed []Failed
	loaded := loadAll(sources)
	for i, src := range sources {
		def, problems := loaded[i].def, loaded[i].problems
		problems = append(discovered[src.Name], problems...)
		r.Problems = append(r.Problems, problems...)
		if def == nil || problems.HasErrors() {
			failed = append(failed, Failed{Name: src.Name, Source: src.Path, Problems: problems})
			continue
		}
		r.Loaded = append(r.Loaded, def)
	}
	out, conflicts := Generate(r.Loaded, failed)
	for _, c := range conflicts {
		r.Problems = append(r.Problems, c.Problems...)
		for i, d := range r.Loaded {
			if d.Name == c.Name {
				r.Loaded = append(r.Loaded[:i], r.Loaded[i+1:]...)
				break
			}
		}
	}
	r.Output = out
	r.Failed = append(failed, conflicts...)
	sort.Slice(r.Failed, func(i, j int) bool { return r.Failed[i].Name < r.Failed[j].Name })
	return r
}

// Retire adds, for each container started on this node (names from its
// state records) that has no definition any more, a drop-in that releases
// what it used once it stops. Definitions that exist, broken or not, have
// their own units already.
func (r *Result) Retire(started []string) {
	have := map[string]bool{}
	for _, d := range r.Loaded {
		have[d.Name] = true
	}
	for _, f := range r.Failed {
		have[f.Name] = true
	}
	for _, name := range started {
		if have[name] || definition.MachineNameProblem(name) != "" {
			continue
		}
		u := retiring(name)
		data, err := (&entry{unit: u, source: "/run/strata/state", owner: name}).render()
		if err != nil {
			continue // a checked machine name renders; nothing else varies
		}
		r.Output.Files[u.Name] = data
	}
}

type loadResult struct {
	def      *definition.Definition
	problems definition.Problems
}

// loadAll loads the sources on every CPU: files are independent.
func loadAll(sources []definition.Source) []loadResult {
	out := make([]loadResult, len(sources))
	parallel(len(sources), func(i int) { out[i].def, out[i].problems = definition.Load(sources[i].Path) })
	return out
}

// Write puts the output tree into dir as systemd.generator(7) asks: each
// file created exclusively (O_EXCL: a second writer of one name is an error,
// not a silent overwrite), directories for drop-ins and .wants, symlinks.
func (o *Output) Write(dir string) error {
	var errs []error
	made := map[string]bool{}
	for _, rel := range o.Paths() {
		full := filepath.Join(dir, rel)
		// Drop-in and .wants directories, and dir itself ("." : strata
		// render --output may name a new one): one mkdir each, not one
		// per file.
		if sub := filepath.Dir(rel); !made[sub] {
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				errs = append(errs, err)
				continue
			}
			made[sub] = true
		}
		if target, ok := o.Links[rel]; ok {
			if err := os.Symlink(target, full); err != nil {
				errs = append(errs, fmt.Errorf("symlink %s: %w", rel, err))
			}
			continue
		}
		f, err := os.OpenFile(full, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			errs = append(errs, fmt.Errorf("create %s: %w", rel, err))
			continue
		}
		_, err = f.Write(o.Files[rel])
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("write %s: %w", rel, err))
		}
	}
	return errors.Join(errs...)
}

// Print writes the tree as text, file by file, each under a "# path"
// header line (symlinks as "# path -> target"): exactly what Write would create.
func (o *Output) Print(w io.Writer) error {
	for i, rel := range o.Paths() {
		if i > 0 {
			if _, err := fmt.Fprintln(w); err != nil {
				return err
			}
		}
		if target, ok := o.Links[rel]; ok {
			if _, err := fmt.Fprintf(w, "# %s -> %s\n", rel, target); err != nil {
				return err
			}
			continue
		}
		if _, err := fmt.Fprintf(w, "# %s\n%s", rel, o.Files[rel]); err != nil {
			return err
		}
	}
	return nil
}
