package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/strata-project/strata/definition"
	"github.com/strata-project/strata/generator"
)

// sources turns FILE|DIR arguments into definition sources: directories are
// read like the search path (in the order given), files are taken as named.
func sources(args []string) ([]definition.Source, map[string]definition.Problems) {
	if len(args) == 0 {
		return definition.Discover(definition.SearchPath())
	}
	var out []definition.Source
	problems := map[string]definition.Problems{}
	seen := map[string]string{}
	for _, a := range args {
		fi, err := os.Stat(a)
		if err == nil && fi.IsDir() {
			srcs, ps := definition.Discover([]string{a})
			for n, p := range ps {
				problems[n] = append(problems[n], p...)
			}
			for _, s := range srcs {
				if first, dup := seen[s.Name]; !dup {
					seen[s.Name] = s.Path
					out = append(out, s)
				} else {
					problems[s.Name] = append(problems[s.Name], dupProblem(s, first))
				}
			}
			continue
		}
		s := definition.Source{Name: definition.NameOf(a), Path: a}
		if first, dup := seen[s.Name]; dup {
			problems[s.Name] = append(problems[s.Name], dupProblem(s, first))
			continue
		}
		seen[s.Name] = a
		out = append(out, s)
	}
	return out, problems
}

func dupProblem(s definition.Source, first string) definition.Problem {
	return definition.Problem{File: s.Path, Severity: definition.Error,
		Message: fmt.Sprintf("container %q is also defined by %s: container names must be unique", s.Name, first)}
}

func validate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print problems as JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	// Features newer than the node's systemd are refused, as the generator
	// refuses them; an unknown version refuses nothing.
	if err := generator.DetectSystemd(); err != nil {
		fmt.Fprintf(stderr, "strata: %v: settings newer than systemd %d are not checked\n", err, generator.MinimumSystemd)
	}
	r := generator.RunSources(sources(fs.Args()))
	if *asJSON {
		report := struct {
			Valid    []string            `json:"valid"`
			Invalid  []string            `json:"invalid"`
			Problems definition.Problems `json:"problems"`
		}{Valid: []string{}, Invalid: []string{}, Problems: r.Problems}
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
		fmt.Fprintf(stdout, "%d valid, %d invalid\n", len(r.Loaded), len(r.Failed))
	}
	if r.Problems.HasErrors() {
		return 1
	}
	return 0
}

func render(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	fs.SetOutput(stderr)
	output := fs.String("output", "", "write the tree into this (empty or new) directory instead of printing it")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	r := generator.RunSources(sources(fs.Args()))
	for _, p := range r.Problems {
		fmt.Fprintln(stderr, p)
	}
	var err error
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
