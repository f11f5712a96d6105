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
)

// parseArgs parses flags anywhere among the arguments (`strata status demo
// --json` as well as `strata status --json demo`; the flag package alone
// stops at the first non-flag) and returns the other arguments.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return rest, nil
		}
		// After "--" (which Parse consumed), everything is an argument.
		if used := len(args) - fs.NArg(); used > 0 && args[used-1] == "--" {
			return append(rest, fs.Args()...), nil
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

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
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func printJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func list(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print as JSON")
	if rest, err := parseArgs(fs, args); err != nil {
		return 2
	} else if len(rest) > 0 {
		fmt.Fprintf(stderr, "strata list: unexpected argument %q\n", rest[0])
		return 2
	}
	return withClient(stderr, func(ctx context.Context, cl *client.Client) int {
		entries := []listEntry{}
		for _, d := range definitions() {
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

// oneName parses the arguments of commands taking exactly one container name.
func oneName(cmd string, fs *flag.FlagSet, args []string, stderr io.Writer) (string, bool) {
	rest, err := parseArgs(fs, args)
	if err != nil {
		return "", false
	}
	if len(rest) != 1 {
		fmt.Fprintf(stderr, "usage: strata %s [FLAGS] NAME\n", cmd)
		fs.PrintDefaults()
		return "", false
	}
	if p := definition.MachineNameProblem(rest[0]); p != "" {
		fmt.Fprintf(stderr, "strata %s: %q is not a container name: %s\n", cmd, rest[0], p)
		return "", false
	}
	return rest[0], true
}

func status(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print as JSON")
	name, ok := oneName("status", fs, args, stderr)
	if !ok {
		return 2
	}
	d := defined{Name: name}
	for _, x := range definitions() {
		if x.Name == name {
			d = x
		}
	}
	return withClient(stderr, func(ctx context.Context, cl *client.Client) int {
		ct, err := cl.Container(ctx, name)
		if err != nil {
			fmt.Fprintf(stderr, "strata: %v\n", err)
			return 1
		}
		// Neither defined nor known to systemd as Strata's: a typo, most
		// likely. (Defined but not loaded, or loaded but no longer
		// defined, is worth showing: the status says which.)
		if d.Source == "" && !ct.Unit().HasStrataDropIn() {
			fmt.Fprintf(stderr, "strata: no container %q: not defined in the search path (%s), and systemd has no Strata unit for it\n",
				name, strings.Join(definition.SearchPath(), ":"))
			return 1
		}
		view := viewStatus(d, ct, cl.Failures(ctx, ct.Chain))
		if *asJSON {
			printJSON(stdout, view)
		} else {
			writeStatus(stdout, view)
		}
		return 0
	})
}

// job runs start, stop or restart.
func job(cmd string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	noBlock := fs.Bool("no-block", false, "return once the job is queued, without waiting for it")
	name, ok := oneName(cmd, fs, args, stderr)
	if !ok {
		return 2
	}
	return withClient(stderr, func(ctx context.Context, cl *client.Client) int {
		var err error
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
				fmt.Fprintf(stdout, "%s stays active: needed by %v\n", k.Unit, k.By)
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
	fs := flag.NewFlagSet("reload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the validation report as JSON (as strata validate --json)")
	if rest, err := parseArgs(fs, args); err != nil {
		return 2
	} else if len(rest) > 0 {
		fmt.Fprintf(stderr, "strata reload: unexpected argument %q\n", rest[0])
		return 2
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
