// Command docgen writes Strata's man pages and shell completions from
// their single sources, for packaging/build.sh (and `make man`):
//
//	go run ./packaging/docgen -out DIR [-version V] [-date YYYY-MM-DD]
//
// writes DIR/man/strata.1, DIR/man/strata-generator.8,
// DIR/man/strata.definition.5 (from packaging/man/*.md, which include
// docs/DEFINITIONS.md and the CLI's command table, cmd/strata/cli) and
// DIR/completions/{bash/strata,zsh/_strata,fish/strata.fish} (from the
// command table). Nothing generated is committed; the tests beside this file
// check the pages against the definition model, the CLI and the generator.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
)

func main() {
	out := flag.String("out", "", "output directory (man/ and completions/ are written under it)")
	root := flag.String("root", "", "the repository (default: the directory holding go.mod, upwards from here)")
	version := flag.String("version", "dev", "version shown in the man pages' footer")
	date := flag.String("date", time.Now().UTC().Format("2006-01-02"), "date shown in the man pages' footer")
	flag.Parse()
	if *out == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: docgen -out DIR [-root REPO] [-version V] [-date YYYY-MM-DD]")
		os.Exit(2)
	}
	if *root == "" {
		r, err := findRoot()
		if err != nil {
			fmt.Fprintln(os.Stderr, "docgen:", err)
			os.Exit(1)
		}
		*root = r
	}
	files, err := generate(pageOptions{Root: *root, Version: *version, Date: *date})
	if err != nil {
		fmt.Fprintln(os.Stderr, "docgen:", err)
		os.Exit(1)
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := filepath.Join(*out, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "docgen:", err)
			os.Exit(1)
		}
		if err := os.WriteFile(p, files[n], 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "docgen:", err)
			os.Exit(1)
		}
	}
}

// manSources are the page sources, under packaging/man.
var manSources = []string{"strata.1.md", "strata-generator.8.md", "strata.definition.5.md"}

// generate returns every generated file by its path under the output
// directory.
func generate(o pageOptions) (map[string][]byte, error) {
	files := map[string][]byte{}
	for _, src := range manSources {
		name, page, err := renderPage(filepath.Join(o.Root, "packaging", "man", src), o)
		if err != nil {
			return nil, err
		}
		files[filepath.Join("man", name)] = []byte(page)
	}
	c, err := readCLI(o.Root)
	if err != nil {
		return nil, err
	}
	comps, err := renderCompletions(c)
	if err != nil {
		return nil, err
	}
	for n, b := range comps {
		files[n] = b
	}
	return files, nil
}

func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory: pass -root")
		}
		dir = parent
	}
}
