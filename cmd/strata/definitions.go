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
// read like the search path (in the order given), files as their directory
// would be (definition.SourceOf: an instance's template, drop-ins). A path
// that does not exist is a problem of no container.
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
			s, ps := definition.SourceOf(a)
			if _, dup := seen[s.Name]; !dup {
				f.Problems[s.Name] = append(f.Problems[s.Name], ps...)
			}
			add(s)
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
	// Features newer than the node's systemd are refused, as the generator
	// refuses them; an unknown version refuses nothing.
	generator.DetectSystemd()
	found := sources(files)
	r := generator.RunSources(found.Sources, found.Problems)
	if err := generator.Systemd.Err(); err != nil {
		fmt.Fprintf(stderr, "strata: %v: settings newer than systemd %d are not checked\n", err, generator.MinimumSystemd)
	}
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
	explain := fs.String("explain", "", "print container `NAME`'s merged definition, each value with its file and line, instead of units")
	files, err := contract.ParseFlags(fs, args)
	if err != nil {
		return flagExit(fs, err, stdout, stderr)
	}
	if *explain != "" {
		return explainOne(*explain, files, stdout, stderr)
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

// explainOne prints where each value of a container's definition comes
// from: its file, template and drop-ins (definition.Explain).
func explainOne(name string, args []string, stdout, stderr io.Writer) int {
	found := sources(args)
	for _, src := range found.Sources {
		if src.Name != name {
			continue
		}
		text, problems := definition.Explain(src)
		problems = append(found.Problems[name], problems...)
		for _, p := range problems {
			fmt.Fprintln(stderr, p)
		}
		fmt.Fprint(stdout, text)
		if problems.HasErrors() {
			return 1
		}
		return 0
	}
	fmt.Fprintf(stderr, "strata: no container %q in the definitions\n", name)
	return 1
}
