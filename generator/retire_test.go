package generator_test

import (
	"strings"
	"testing"

	"github.com/strata-project/strata/generator"
	"github.com/strata-project/strata/internal/layout"
)

// What still runs keeps its teardown whatever happened to its definition:
// Retire adds drop-ins from the names in the node's state records.
func TestRetireKeepsTeardownOfWhatRuns(t *testing.T) {
	r := generator.Run([]string{"testdata/cases/error-broken-beside-good/input"})
	if len(r.Loaded) == 0 || len(r.Failed) == 0 {
		t.Fatalf("the case needs good and broken definitions: %d loaded, %d failed", len(r.Loaded), len(r.Failed))
	}
	good, broken := r.Loaded[0].Name, r.Failed[0].Name
	var attach string
	for p := range r.Output.Files {
		if strings.HasPrefix(p, "strata-attach@") {
			attach = strings.TrimSuffix(strings.TrimPrefix(p, "strata-attach@"), ".service.d/"+layout.DropInName)
		}
	}
	before := len(r.Output.Files)
	r.Retire([]string{good, broken, "gone", "-bad-"}, []string{attach, "loop_old.sqfs_0123456789", "../etc"})

	file := func(p string) string {
		t.Helper()
		data, ok := r.Output.Files[p]
		if !ok {
			t.Errorf("no %s", p)
		}
		return string(data)
	}
	// Removed: runs the collector at stop, fails to start, keeps its clean-up.
	if f := file("systemd-nspawn@gone.service.d/" + layout.DropInName); !strings.Contains(f, "ExecStopPost=-/usr/libexec/strata/strata-helper gc --container=gone") ||
		!strings.Contains(f, "strata-helper fail") {
		t.Errorf("retiring drop-in:\n%s", f)
	}
	for _, name := range []string{"gone", broken} {
		if f := file("strata-cleanup@" + name + ".service.d/" + generator.RetiringDropInName); !strings.Contains(f, "StopWhenUnneeded=no") {
			t.Errorf("%s does not keep its clean-up:\n%s", name, f)
		}
	}
	// An attachment no definition describes is not stopped as unneeded.
	if f := file("strata-attach@loop_old.sqfs_0123456789.service.d/" + generator.RetiringDropInName); !strings.Contains(f, "StopWhenUnneeded=no") {
		t.Errorf("retiring attach drop-in:\n%s", f)
	}
	// Nothing for what the definitions describe, or for names no unit can hold.
	if want := before + 4; len(r.Output.Files) != want {
		var names []string
		for p := range r.Output.Files {
			names = append(names, p)
		}
		t.Errorf("%d files, want %d: %v", len(r.Output.Files), want, names)
	}
}
