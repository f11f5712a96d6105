// Package generator turns checked container definitions into the systemd
// unit graph that runs them, and writes it out as a generator must: units,
// drop-ins and symlinks only, each file created once, same input same bytes.
//
// For each container the graph is
//
//	attach service  →  layer .mount  →  overlay .mount  →  systemd-nspawn@NAME.service
//	(map/login/loop)   (read-only)      (+ upper prepare)   (drop-in; machined)
//
// Units below the container are StopWhenUnneeded=yes and shared by name:
// two containers using one image get one attach unit and one layer mount,
// and systemd itself counts the users and stops what nobody needs.
package generator

import (
	"bytes"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/strata-project/strata/definition"
	"github.com/strata-project/strata/units"
)

// Name of this generator, in headers and logs.
const Name = "strata-generator"

// Output is what the generator writes: unit files and drop-ins by relative
// path, and symlinks (relative path → target).
type Output struct {
	Files map[string][]byte
	Links map[string]string
}

// Paths returns every file and link path, sorted.
func (o *Output) Paths() []string {
	var out []string
	for p := range o.Files {
		out = append(out, p)
	}
	for p := range o.Links {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// Failed is a container whose definition cannot be used. It still gets a
// placeholder unit that fails with Problems, so `systemctl status` says why.
type Failed struct {
	Name     string
	Source   string
	Problems definition.Problems
}

// graph collects units from all containers. Units that several containers
// need are shared by name; a name built twice with different content is a
// conflict, reported for the container that came second.
type graph struct {
	units  map[string]*entry
	links  map[string]string
	uppers map[string]*definition.Definition // directory uppers, see upper.go
}

type entry struct {
	unit   *units.Unit
	source string // the first definition that needed it (SourcePath=)
	owner  string
	bytes  []byte // rendered when staged, with this source
}

// staged is one container's units before they join the graph, so that a
// container that conflicts with another adds nothing.
type staged struct {
	def   *definition.Definition
	units []*units.Unit
	links map[string]string
	bytes [][]byte // units rendered by check, in order
	// dropIn is the container unit's drop-in, which records at start the
	// generation of the units (set by check).
	dropIn *units.Unit
	err    error // a unit that cannot be written: the container fails
	// refused: what the helper would refuse at run time, found by the
	// helper's own checks at generation (so validate says it first).
	refused definition.Problems
}

func (s *staged) add(u *units.Unit) { s.units = append(s.units, u) }

// check renders each unit once, so that a value no unit can hold fails
// its container (with a placeholder saying why) instead of the whole run,
// and never reaches a file. The bytes are what the graph writes: a unit
// joins it from the first container that needs it, with that one's
// SourcePath=. The drop-in, which records a hash of them all, is rendered
// again with the record.
func (s *staged) check() *staged {
	s.bytes = make([][]byte, len(s.units))
	for i, u := range s.units {
		if s.bytes[i], s.err = s.render(u); s.err != nil {
			return s
		}
	}
	if s.dropIn != nil {
		s.recordStarted()
		i := slices.Index(s.units, s.dropIn)
		s.bytes[i], s.err = s.render(s.dropIn)
	}
	return s
}

func (s *staged) render(u *units.Unit) ([]byte, error) {
	return (&entry{unit: u, source: s.def.Source}).render()
}

// commit adds a container's units to the graph, or returns the conflicts.
func (g *graph) commit(s *staged) []string {
	conflicts := g.upperConflicts(s.def)
	for _, u := range s.units {
		if e, ok := g.units[u.Name]; ok && !sameUnit(e.unit, u) {
			conflicts = append(conflicts, fmt.Sprintf("%s is shared with container %q (%s) but would differ: use the same attach and mount settings for the same image in both definitions, or a different image", u.Name, e.owner, e.source))
		}
	}
	if len(conflicts) > 0 {
		return conflicts
	}
	g.claimUpper(s.def)
	for i, u := range s.units {
		if _, ok := g.units[u.Name]; !ok {
			g.units[u.Name] = &entry{unit: u, source: s.def.Source, owner: s.def.Name, bytes: s.bytes[i]}
		}
	}
	for k, v := range s.links {
		g.links[k] = v
	}
	return nil
}

// sameUnit compares what two units do, ignoring which definition they came from.
func sameUnit(a, b *units.Unit) bool {
	if a.Identity != "" || b.Identity != "" {
		return a.Identity == b.Identity
	}
	return bytes.Equal(a.Bytes(), b.Bytes())
}

// Generate builds the output tree for usable definitions and placeholders
// for failed ones. Containers that could not join the graph (a shared unit
// conflict) are returned as further failures; they got placeholders too.
func Generate(defs []*definition.Definition, failed []Failed) (*Output, []Failed) {
	defs = append([]*definition.Definition(nil), defs...)
	sort.Slice(defs, func(i, j int) bool { return defs[i].Name < defs[j].Name })

	g := &graph{units: map[string]*entry{}, links: map[string]string{}}
	var more []Failed
	built := make([]*staged, len(defs))
	parallel(len(defs), func(i int) { built[i] = buildContainer(defs[i]).check() })
	for i, d := range defs {
		if ps := built[i].refused; len(ps) > 0 {
			more = append(more, Failed{Name: d.Name, Source: d.Source, Problems: ps})
			continue
		}
		if err := built[i].err; err != nil {
			more = append(more, Failed{Name: d.Name, Source: d.Source, Problems: definition.Problems{{File: d.Source, Severity: definition.Error,
				Message: fmt.Sprintf("cannot be written as a unit that systemd reads as meant: %v", err)}}})
			continue
		}
		// Committed in name order: which of two conflicting containers
		// fails must not depend on scheduling.
		if conflicts := g.commit(built[i]); conflicts != nil {
			f := Failed{Name: d.Name, Source: d.Source}
			for _, c := range conflicts {
				f.Problems = append(f.Problems, definition.Problem{File: d.Source, Severity: definition.Error, Message: c})
			}
			more = append(more, f)
		}
	}
	for _, f := range append(append([]Failed(nil), failed...), more...) {
		if definition.MachineNameProblem(f.Name) != "" {
			continue // no unit can carry this name; kmsg has the problem
		}
		u := placeholder(f)
		g.units[u.Name] = &entry{unit: u, source: f.Source, owner: f.Name}
	}

	names := make([]string, 0, len(g.units))
	for name := range g.units {
		names = append(names, name)
	}
	rendered := make([][]byte, len(names))
	// Containers' units were rendered by check; placeholders escape what
	// they show: an error here leaves the file out, never half-written.
	parallel(len(names), func(i int) {
		if e := g.units[names[i]]; e.bytes != nil {
			rendered[i] = e.bytes
		} else {
			rendered[i], _ = e.render()
		}
	})
	out := &Output{Files: make(map[string][]byte, len(names)), Links: g.links}
	for i, name := range names {
		if rendered[i] != nil {
			out.Files[name] = rendered[i]
		}
	}
	return out, more
}

// parallel runs fn(0..n-1) on every CPU. Generators of all kinds run at
// once at boot under one time-out, so Strata's should finish quickly.
func parallel(n int, fn func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				fn(i)
			}
		}()
	}
	wg.Wait()
}

func (e *entry) render() ([]byte, error) {
	u := *e.unit
	u.Sections = append([]*units.Section(nil), u.Sections...)
	// SourcePath= goes first in [Unit]: it is the file to edit.
	unitSec := &units.Section{Name: "Unit", Entries: []units.Entry{{Key: "SourcePath", Value: e.source}}}
	if len(u.Sections) > 0 && u.Sections[0].Name == "Unit" {
		unitSec.Entries = append(unitSec.Entries, u.Sections[0].Entries...)
		u.Sections[0] = unitSec
	} else {
		u.Sections = append([]*units.Section{unitSec}, u.Sections...)
	}
	return u.Render(
		"Automatically generated by "+Name+" from "+e.source+".",
		"Edit the definition and run 'systemctl daemon-reload'; changes here are lost.",
	)
}
