package generator

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/strata-project/strata/definition"
)

// A directory upper belongs to one container (see definition.UpperPathProblem
// for what one definition is checked for): two overlays writing one upper
// directory, or one nested in another's, corrupt each other. Containers
// claim their uppers in commit order; a later one that overlaps fails.

// upperOf returns a definition's directory upper, cleaned, or "" (tmpfs
// uppers are per container by name).
func upperOf(d *definition.Definition) string {
	m := d.Container.Mount
	if m == nil || m.Overlay == nil || m.Overlay.Upper == nil || m.Overlay.Upper.Kind != definition.UpperDirectory {
		return ""
	}
	return path.Clean(m.Overlay.Upper.Path)
}

// upperConflicts says how d's upper overlaps one already claimed.
func (g *graph) upperConflicts(d *definition.Definition) []string {
	mine := upperOf(d)
	if mine == "" {
		return nil
	}
	var out []string
	for theirs, owner := range g.uppers {
		how := ""
		switch {
		case mine == theirs:
			how = "is also the upper path of"
		case strings.HasPrefix(mine, theirs+"/"):
			how = "is inside the upper path " + theirs + " of"
		case strings.HasPrefix(theirs, mine+"/"):
			how = "contains the upper path " + theirs + " of"
		default:
			continue
		}
		out = append(out, fmt.Sprintf("mount.overlay.upper.path %s %s container %q (%s): two overlays in one upper directory corrupt each other; give each container a directory of its own", mine, how, owner.Name, owner.Source))
	}
	sort.Strings(out) // the map's order is random
	return out
}

func (g *graph) claimUpper(d *definition.Definition) {
	if p := upperOf(d); p != "" {
		if g.uppers == nil {
			g.uppers = map[string]*definition.Definition{}
		}
		g.uppers[p] = d
	}
}
