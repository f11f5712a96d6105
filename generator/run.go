package generator

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/strata-project/strata/definition"
	"github.com/strata-project/strata/internal/layout"
	"github.com/strata-project/strata/units"
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

// Retire keeps what still runs on this node from losing its teardown when
// its definition is edited, removed or broken (the helper's state records
// name it: containers started, devices attached):
//   - a container that has no definition any more gets a drop-in that
//     releases what it used once it stops (broken ones have that in their
//     placeholder);
//   - such a container, and a broken one, keeps its clean-up unit, which
//     a reload would otherwise leave unneeded and stop, until the
//     container stops (the clean-up is PartOf= it);
//   - an attach unit no definition describes any more is not stopped as
//     unneeded (its layer may still be mounted under a running
//     container): the collector stops it once nothing uses its device.
func (r *Result) Retire(started, attached []string) {
	have := map[string]bool{}
	for _, d := range r.Loaded {
		have[d.Name] = true
	}
	broken := map[string]bool{}
	for _, f := range r.Failed {
		broken[f.Name] = true
	}
	for _, name := range started {
		if have[name] || definition.MachineNameProblem(name) != "" {
			continue
		}
		if !broken[name] {
			r.addRetiring(retiring(name), name)
		}
		// Not pinned by the container any more, so not stopped as
		// unneeded: its PartOf= stops it with the container.
		keep := units.New(layout.CleanupUnit(name) + ".d/" + RetiringDropInName)
		keep.Add("Unit", "StopWhenUnneeded", "no")
		r.addRetiring(keep, name)
	}
	for _, id := range attached {
		if _, ok := r.Output.Files[layout.AttachUnit(id)+".d/"+layout.DropInName]; ok || !validID(id) {
			continue
		}
		keep := units.New(layout.AttachUnit(id) + ".d/" + RetiringDropInName)
		keep.Add("Unit", "StopWhenUnneeded", "no")
		r.addRetiring(keep, id)
	}
}

// RetiringDropInName is the drop-in that keeps a unit whose definition is
// gone until the collector lets it go.
const RetiringDropInName = "40-strata-retiring.conf"

func (r *Result) addRetiring(u *units.Unit, owner string) {
	data, err := (&entry{unit: u, source: layout.StateDir, owner: owner}).render()
	if err != nil {
		return // names are checked before; nothing else varies
	}
	r.Output.Files[u.Name] = data
}

// validID reports whether id could be an attachment ID the generator made
// (see id()): anything else in the state directory is not ours to name.
func validID(id string) bool {
	return id != "" && len(id) <= 100 && strings.IndexFunc(id, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_')
	}) < 0
}

type loadResult struct {
	def      *definition.Definition
	problems definition.Problems
}

// loadAll loads the sources on every CPU: files are independent.
func loadAll(sources []definition.Source) []loadResult {
	out := make([]loadResult, len(sources))
	parallel(len(sources), func(i int) { out[i].def, out[i].problems = definition.LoadSource(sources[i]) })
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
