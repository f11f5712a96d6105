package main

// The commands that talk to systemd: list, status, start, stop, restart,
// reload. The client package does the talking; this file parses arguments
// and prints.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/strata-project/strata/client"
	"github.com/strata-project/strata/definition"
	"github.com/strata-project/strata/generator"
	"github.com/strata-project/strata/helpers/contract"
	"github.com/strata-project/strata/internal/layout"
)

// Exit statuses beyond 0 ok, 1 failure and 2 usage, as systemctl's (LSB):
// status says 3 for a container that does not run and 4 for a name it does
// not know; start, stop and restart say 5 for a name they do not know.
const (
	exitNotRunning   = 3
	exitStatusNoSuch = 4
	exitJobNoSuch    = 5
)

// withClient connects to systemd and runs f. The context ends on Ctrl-C or
// SIGTERM, which stops waiting for a job (the job itself goes on, as with
// systemctl).
func withClient(stderr io.Writer, f func(context.Context, *client.Client) int) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cl, err := client.Connect(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "strata: %v\n", err)
		return 1
	}
	defer cl.Close()
	return f(ctx, cl)
}

// definitions lists the containers the search path defines, as the
// generator sees them: usable ones and those that got a failing
// placeholder, sorted by name.
func definitions() []defined {
	r := generator.Run(definition.SearchPath())
	var out []defined
	for _, d := range r.Loaded {
		out = append(out, defined{Name: d.Name, Source: d.Source, Generation: r.Output.Generation(d.Name)})
	}
	for _, f := range r.Failed {
		out = append(out, defined{Name: f.Name, Source: f.Source, Invalid: true, Problems: f.Problems})
	}
	for _, m := range definition.Scan(definition.SearchPath()).Masked {
		out = append(out, defined{Name: m.Name, Source: m.Path, Masked: true})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func printJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func list(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("list")
	asJSON := fs.Bool("json", false, "print as JSON")
	if rest, err := contract.ParseFlags(fs, args); err != nil {
		return flagExit(fs, err, stdout, stderr)
	} else if len(rest) > 0 {
		return usageError(fs, stderr, fmt.Sprintf("unexpected argument %q", rest[0]))
	}
	return withClient(stderr, func(ctx context.Context, cl *client.Client) int {
		entries := []listEntry{}
		defs, err := withRemoved(ctx, cl, definitions())
		if err != nil {
			fmt.Fprintf(stderr, "strata: %v\n", err)
			return 1
		}
		for _, d := range defs {
			var ct *client.Container
			// A name no unit can carry has no systemd side: only its problems.
			if definition.MachineNameProblem(d.Name) == "" {
				var err error
				if ct, err = cl.Container(ctx, d.Name); err != nil {
					fmt.Fprintf(stderr, "strata: %v\n", err)
					return 1
				}
			}
			entries = append(entries, viewListEntry(d, ct))
		}
		left, err := orphans()
		if err != nil {
			fmt.Fprintf(stderr, "strata: cannot tell what no container needs: %v\n", err)
		} else if left == nil {
			left = []orphan{} // none, as opposed to unknown (null)
		}
		if *asJSON {
			printJSON(stdout, struct {
				Containers []listEntry `json:"containers"`
				Orphans    []orphan    `json:"orphans"`
			}{entries, left})
			return 0
		}
		if err := writeList(stdout, entries); err != nil {
			fmt.Fprintf(stderr, "strata: %v\n", err)
			return 1
		}
		writeOrphans(stdout, left)
		return 0
	})
}

// withRemoved adds to the definitions the containers that still run with
// Strata's units though their definition was removed (or renamed) since.
func withRemoved(ctx context.Context, cl *client.Client, defs []defined) ([]defined, error) {
	known := map[string]bool{}
	for _, d := range defs {
		known[d.Name] = true
	}
	names, err := cl.Loaded(ctx)
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if known[n] {
			continue
		}
		u, err := cl.Unit(ctx, layout.ContainerUnit(n))
		if err != nil {
			return nil, err
		}
		if u.HasStrataDropIn() {
			defs = append(defs, defined{Name: n})
		}
	}
	sort.Slice(defs, func(i, j int) bool { return defs[i].Name < defs[j].Name })
	return defs, nil
}

// oneName parses the arguments of commands taking exactly one container
// name. When they do not, or ask for --help, ok is false and code is the
// exit status.
func oneName(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (name string, code int, ok bool) {
	rest, err := contract.ParseFlags(fs, args)
	if err != nil {
		return "", flagExit(fs, err, stdout, stderr), false
	}
	if len(rest) != 1 {
		return "", usageError(fs, stderr, fmt.Sprintf("want one container name, got %d arguments", len(rest))), false
	}
	if code, ok := checkName(fs, rest[0], stderr); !ok {
		return "", code, false
	}
	return rest[0], 0, true
}

// checkName refuses an operand that is no container name (exit 2).
func checkName(fs *flag.FlagSet, name string, stderr io.Writer) (int, bool) {
	if p := definition.MachineNameProblem(name); p != "" {
		return usageError(fs, stderr, fmt.Sprintf("%q is not a container name: %s", name, p)), false
	}
	return 0, true
}

func status(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("status")
	asJSON := fs.Bool("json", false, "print as JSON")
	name, code, ok := oneName(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	return withContainer(name, stderr, func(ctx context.Context, cl *client.Client, d defined, ct *client.Container) int {
		view := viewStatus(d, ct, cl.Failures(ctx, ct.Chain))
		if *asJSON {
			printJSON(stdout, view)
		} else {
			writeStatus(stdout, view)
		}
		return statusExit(ct.Unit().ActiveState)
	})
}

// statusExit is status's exit code for a container unit's state, as
// systemctl status: 0 when it runs, 3 otherwise.
func statusExit(activeState string) int {
	if activeState == "active" || activeState == "reloading" {
		return 0
	}
	return exitNotRunning
}

// lookup returns the definition of name, or one with only the name.
func lookup(name string) defined {
	for _, d := range definitions() {
		if d.Name == name {
			return d
		}
	}
	return defined{Name: name}
}

func noSuch(name string) string {
	return fmt.Sprintf("strata: no container %q: not defined in the search path (%s), and systemd has no Strata unit for it",
		name, strings.Join(definition.SearchPath(), ":"))
}

// jobRefusal says why a job on a container's unit u must not run, with
// its exit code: an unknown name, a definition systemd has not loaded, or
// one changed since (a start would run the old one).
func jobRefusal(cmd string, d defined, u *client.Unit) (string, int) {
	switch {
	case u.HasStrataDropIn():
		if u.NeedDaemonReload && cmd != "stop" {
			return fmt.Sprintf("strata %s: %s changed on disk since systemd loaded it: run strata reload first (a %s now would run the old definition)", cmd, d.Name, cmd), 1
		}
		return "", 0
	case cmd == "stop" && (d.Source != "" || u.ActiveState != "inactive" && u.ActiveState != "failed"):
		return "", 0 // a name it knows, or a unit that runs: stopping is always safe
	case d.Masked:
		return fmt.Sprintf("strata %s: %s is masked (%s)", cmd, d.Name, d.Source), 1
	case d.Source != "":
		return fmt.Sprintf("strata %s: %s is defined (%s) but systemd has not loaded it: run strata reload", cmd, d.Name, d.Source), 1
	}
	return noSuch(d.Name), exitJobNoSuch
}

// job runs start, stop or restart.
func job(cmd string, args []string, stdout, stderr io.Writer) int {
	fs := newFlags(cmd)
	noBlock := fs.Bool("no-block", false, "return once the job is queued, without waiting for it")
	name, code, ok := oneName(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	d := lookup(name)
	return withClient(stderr, func(ctx context.Context, cl *client.Client) int {
		u, err := cl.Unit(ctx, layout.ContainerUnit(name))
		if err != nil {
			fmt.Fprintf(stderr, "strata: %v\n", err)
			return 1
		}
		if msg, code := jobRefusal(cmd, d, u); code != 0 {
			fmt.Fprintln(stderr, msg)
			return code
		}
		switch cmd {
		case "start":
			err = cl.Start(ctx, name, !*noBlock)
		case "restart":
			err = cl.Restart(ctx, name, !*noBlock)
		case "stop":
			var kept []client.Kept
			kept, err = cl.Stop(ctx, name, !*noBlock)
			// Not an error: a layer another running container shares.
			for _, k := range kept {
				fmt.Fprintf(stdout, "%s stays active: needed by %s\n", k.Unit, strings.Join(k.By, ", "))
			}
		}
		if err == nil {
			return 0
		}
		fmt.Fprintf(stderr, "strata: %v\n", err)
		var je *client.JobError
		var se *client.StopError
		switch {
		case errors.As(err, &je):
			writeFailures(stderr, je.Failures)
		case errors.As(err, &se):
			writeFailures(stderr, se.Failures)
		}
		return 1
	})
}

// reload is systemctl daemon-reload, then strata validate: the generator
// has just read the definitions, and this says which it could not use.
func reload(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("reload")
	asJSON := fs.Bool("json", false, "print the validation report as JSON (as strata validate --json)")
	if rest, err := contract.ParseFlags(fs, args); err != nil {
		return flagExit(fs, err, stdout, stderr)
	} else if len(rest) > 0 {
		return usageError(fs, stderr, fmt.Sprintf("unexpected argument %q", rest[0]))
	}
	return withClient(stderr, func(ctx context.Context, cl *client.Client) int {
		if err := cl.Reload(ctx); err != nil {
			fmt.Fprintf(stderr, "strata: %v\n", err)
			return 1
		}
		var vargs []string
		if *asJSON {
			vargs = append(vargs, "--json")
		}
		return validate(vargs, stdout, stderr)
	})
}
