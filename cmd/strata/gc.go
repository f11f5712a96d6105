package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/strata-project/strata/helpers/contract"
	collector "github.com/strata-project/strata/helpers/gc"
	"github.com/strata-project/strata/helpers/state"
	"github.com/strata-project/strata/internal/layout"
)

// helperPath is the node-side helper; STRATA_HELPER overrides it (tests
// of a build tree).
func helperPath() string {
	if p := os.Getenv("STRATA_HELPER"); p != "" {
		return p
	}
	return layout.HelperPath
}

// gc runs the helper's collector, the same one a container's clean-up
// runs when it stops: it releases what no unit file describes any more and
// nothing uses, and never what a running container uses.
func gc(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("gc")
	dry := fs.Bool("dry-run", false, "only say what would be released")
	if rest, err := contract.ParseFlags(fs, args); err != nil {
		return flagExit(fs, err, stdout, stderr)
	} else if len(rest) > 0 {
		return usageError(fs, stderr, fmt.Sprintf("unexpected argument %q", rest[0]))
	}
	argv := contract.Argv(contract.GC{DryRun: *dry})[1:]
	cmd := exec.Command(helperPath(), argv...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Run(); err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			fmt.Fprintf(stderr, "strata gc: %v\n", err)
		}
		return 1
	}
	return 0
}

// orphan is something of Strata's on this node that no running container
// needs and no unit file describes (strata gc releases it).
type orphan = collector.Action

// orphans asks the collector for a dry run, as JSON. It reads this node's
// mount table: run where the containers run.
func orphans() ([]orphan, error) {
	argv := contract.Argv(contract.GC{DryRun: true, JSON: true})[1:]
	var out, errb bytes.Buffer
	cmd := exec.Command(helperPath(), argv...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %v: %s", helperPath(), strings.Join(argv, " "), err, strings.TrimSpace(errb.String()))
	}
	rep, err := collector.ReadReport(&out)
	return rep.Actions, err
}

// restartToApply reports whether a running container started from other
// units than its definition now gives (an edit awaiting a restart).
func restartToApply(name, generation string) bool {
	if generation == "" {
		return false
	}
	c, ok, err := state.Store{Dir: layout.StateDir}.Container(name)
	return err == nil && ok && c.Generation != "" && c.Generation != generation
}
