package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/strata-project/strata/definition"
	"github.com/strata-project/strata/generator"
	"github.com/strata-project/strata/helpers/contract"
)

// sources turns FILE|DIR arguments into definition sources: directories are
// read like the search path (in the order given), files are taken as named.
// A path that does not exist is a problem of no container.
func sources(args []string) definition.Found {
	if len(args) == 0 {
		return definition.Scan(definition.SearchPath())
	}
	f := definition.Found{Problems: map[string]definition.Problems{}}
	seen := map[string]string{}
	add := func(s definition.Source) {
		if first, dup := seen[s.Name]; dup {
			f.Problems[s.Name] = append(f.Problems[s.Name], dupProblem(s, first))
			return
		}
		seen[s.Name] = s.Path
		f.Sources = append(f.Sources, s)
	}
	for _, a := range args {
		fi, err := os.Stat(a)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			f.Problems[""] = append(f.Problems[""], definition.Problem{File: a, Severity: definition.Error, Message: "no such file or directory"})
		case err == nil && fi.IsDir():
			dir := definition.Scan([]string{a})
			for n, p := range dir.Problems {
				f.Problems[n] = append(f.Problems[n], p...)
			}
			for _, s := range dir.Sources {
				add(s)
			}
			f.Masked = append(f.Masked, dir.Masked...)
			f.Skipped = append(f.Skipped, dir.Skipped...)
		default:
			add(definition.Source{Name: definition.NameOf(a), Path: a})
		}
	}
	return f
}

// writeSkipped says which names are masked and which files define nothing.
func writeSkipped(w io.Writer, f definition.Found) {
	for _, m := range f.Masked {
		fmt.Fprintf(w, "%s: masked: %s links to /dev/null\n", m.Name, m.Path)
	}
	for _, s := range f.Skipped {
		fmt.Fprintf(w, "%s: skipped: %s\n", s.Path, s.Why)
	}
}

func dupProblem(s definition.Source, first string) definition.Problem {
	return definition.Problem{File: s.Path, Severity: definition.Error,
		Message: fmt.Sprintf("container %q is also defined by %s: container names must be unique", s.Name, first)}
}

func validate(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("validate")
	asJSON := fs.Bool("json", false, "print problems as JSON")
	files, err := contract.ParseFlags(fs, args)
	if err != nil {
		return flagExit(fs, err, stdout, stderr)
	}
	found := sources(files)
	r := generator.RunSources(found.Sources, found.Problems)
	if *asJSON {
		report := struct {
			Valid    []string             `json:"valid"`
			Invalid  []string             `json:"invalid"`
			Masked   []string             `json:"masked"`
			Skipped  []definition.Skipped `json:"skipped"`
			Problems definition.Problems  `json:"problems"`
		}{Valid: []string{}, Invalid: []string{}, Masked: []string{}, Skipped: found.Skipped, Problems: r.Problems}
		if report.Skipped == nil {
			report.Skipped = []definition.Skipped{}
		}
		for _, m := range found.Masked {
			report.Masked = append(report.Masked, m.Name)
		}
		if report.Problems == nil {
			report.Problems = definition.Problems{}
		}
		for _, d := range r.Loaded {
			report.Valid = append(report.Valid, d.Name)
		}
		for _, f := range r.Failed {
			report.Invalid = append(report.Invalid, f.Name)
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(report)
	} else {
		for _, p := range r.Problems {
			fmt.Fprintln(stdout, p)
		}
		writeSkipped(stdout, found)
		fmt.Fprintf(stdout, "%d valid, %d invalid\n", len(r.Loaded), len(r.Failed))
	}
	if r.Problems.HasErrors() {
		return 1
	}
	return 0
}

func render(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("render")
	output := fs.String("output", "", "write the tree into this (empty or new) directory instead of printing it")
	files, err := contract.ParseFlags(fs, args)
	if err != nil {
		return flagExit(fs, err, stdout, stderr)
	}
	found := sources(files)
	r := generator.RunSources(found.Sources, found.Problems)
	for _, p := range r.Problems {
		fmt.Fprintln(stderr, p)
	}
	if *output != "" {
		err = r.Output.Write(*output)
	} else {
		err = r.Output.Print(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "strata: %v\n", err)
		return 1
	}
	if r.Problems.HasErrors() {
		return 1
	}
	return 0
}
