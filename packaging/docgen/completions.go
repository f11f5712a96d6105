package main

import (
	"bytes"
	"embed"
	"strings"
	"text/template"

	"github.com/strata-project/strata/definition"
)

// Shell completions are made from the same command table as strata(1):
// a command, a flag or an operand added to the usage is completed without
// touching the scripts. The templates hold only the shell logic.

//go:embed all:templates
var templates embed.FS

// completion names a template and the file it becomes.
type completion struct {
	Template string
	File     string // path under the output directory
}

var completionFiles = []completion{
	{"strata.bash", "completions/bash/strata"},
	{"_strata", "completions/zsh/_strata"},
	{"strata.fish", "completions/fish/strata.fish"},
}

type completionData struct {
	Commands       []command
	SearchPathEnv  string
	SearchPath     string   // colon-separated
	SearchPathDirs []string //
	PathExpr       string   // ${ENV-default} for POSIX shells
}

// sq quotes for a POSIX or zsh shell.
func sq(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// fq quotes for fish, where a single-quoted string knows \' and \\.
func fq(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// zarguments is the _arguments call that completes a command's flags and
// operands in zsh.
func zarguments(c command) string {
	var specs []string
	for _, f := range c.Flags {
		if f.Arg == "" {
			specs = append(specs, sq(f.Name))
		} else {
			// "=": --output=DIR or --output DIR, as Go's flag package takes.
			specs = append(specs, sq(f.Name+"=:"+strings.ToLower(f.Arg)+":"+zaction(f.Arg)))
		}
	}
	switch c.OperandKind() {
	case "name":
		specs = append(specs, sq("*:container:_strata_names"))
	case "definition":
		specs = append(specs, sq("*:definition file or directory:_strata_definitions"))
	case "words":
		specs = append(specs, sq("1:"+strings.ToLower(c.Operand)+":("+strings.Join(c.Words(), " ")+")"), sq("*:file:_files"))
	case "file":
		specs = append(specs, sq("*:file:_files"))
	}
	if len(specs) == 0 {
		return "_message 'no more arguments'"
	}
	return "_arguments " + strings.Join(specs, " \\\n        ")
}

// argKind says what a flag's argument is, for the three shells: "dir",
// "name" (a container), "file", or "value" (a number, a time: typed, with
// nothing to offer).
func argKind(arg string) string {
	switch {
	case arg == "DIR", arg == "DIRECTORY":
		return "dir"
	case arg == "NAME":
		return "name"
	case strings.Contains(arg, "FILE"), strings.Contains(arg, "PATH"):
		return "file"
	}
	return "value"
}

// zaction is how zsh completes a flag's argument.
func zaction(arg string) string {
	switch argKind(arg) {
	case "dir":
		return "_files -/"
	case "name":
		return "_strata_names"
	case "file":
		return "_files"
	}
	return "" // _arguments shows the argument's name and offers nothing
}

func renderCompletions(c *cli) (map[string][]byte, error) {
	funcs := template.FuncMap{
		"zq":         sq,
		"fq":         fq,
		"lower":      strings.ToLower,
		"join":       strings.Join,
		"zarguments": zarguments,
		"trimdash":   func(s string) string { return strings.TrimLeft(s, "-") },
		"argkind":    argKind,
		"short":      func(s string) bool { return len(s) == 2 && s[0] == '-' && s[1] != '-' }, // -f, as journalctl's
	}
	data := completionData{
		Commands:       c.Commands,
		SearchPathEnv:  definition.SearchPathEnv,
		SearchPath:     strings.Join(definition.DefaultSearchPath, ":"),
		SearchPathDirs: definition.DefaultSearchPath,
	}
	data.PathExpr = "${" + data.SearchPathEnv + "-" + data.SearchPath + "}"
	out := map[string][]byte{}
	for _, f := range completionFiles {
		t, err := template.New(f.Template).Funcs(funcs).ParseFS(templates, "templates/"+f.Template)
		if err != nil {
			return nil, err
		}
		var b bytes.Buffer
		if err := t.Execute(&b, data); err != nil {
			return nil, err
		}
		out[f.File] = b.Bytes()
	}
	return out, nil
}
