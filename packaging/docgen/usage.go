package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
)

// The CLI's usage text is the one source of strata(1)'s synopsis and
// command list and of the shell completions. A cmd/ package cannot be
// imported, so the `usage` constant is read from cmd/strata's source with
// go/parser: the exact string the binary prints, without building or
// running it, and without a copy that could drift.

// cli is what the usage text and the package comment of cmd/strata say.
type cli struct {
	Doc      string    // the package comment, "Command strata is ..."
	Usage    string    // the usage constant, verbatim
	Commands []command // in usage order
	Notes    []string  // the paragraphs after the command list
	Cases    []string  // the command words run() dispatches on
}

// command is one line of the usage's command list.
type command struct {
	Name        string
	Args        string // as written: "[--json] [FILE|DIR...]"
	Description string
	Flags       []flagSpec
	Operand     string // NAME, FILE|DIR..., a list of words (a|b), or ""
}

type flagSpec struct {
	Name string // "--json"
	Arg  string // "DIR" for "--output DIR", "" for a switch
}

// readCLI parses cmd/strata/*.go under root.
func readCLI(root string) (*cli, error) {
	dir := filepath.Join(root, "cmd", "strata")
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	c := &cli{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		if file.Doc != nil && strings.HasPrefix(file.Doc.Text(), "Command strata ") {
			c.Doc = file.Doc.Text()
		}
		ast.Inspect(file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.ValueSpec:
				for i, name := range n.Names {
					if name.Name == "usage" && i < len(n.Values) {
						if lit, ok := n.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							c.Usage, _ = strconv.Unquote(lit.Value)
						}
					}
				}
			case *ast.FuncDecl:
				if n.Name.Name == "run" && n.Recv == nil {
					c.Cases = append(c.Cases, dispatched(n)...)
				}
			}
			return true
		})
	}
	if c.Usage == "" {
		return nil, fmt.Errorf("%s: no `usage` string constant found (strata(1) and the completions are made from it)", dir)
	}
	if c.Doc == "" {
		return nil, fmt.Errorf("%s: no package comment starting \"Command strata \"", dir)
	}
	if err := c.parseUsage(); err != nil {
		return nil, err
	}
	return c, nil
}

// dispatched returns the string cases of the first-level switch statements
// in run(): the commands the CLI actually accepts.
func dispatched(fn *ast.FuncDecl) []string {
	var out []string
	ast.Inspect(fn.Body, func(n ast.Node) bool {
		sw, ok := n.(*ast.SwitchStmt)
		if !ok {
			return true
		}
		for _, st := range sw.Body.List {
			cc := st.(*ast.CaseClause)
			for _, e := range cc.List {
				if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					s, _ := strconv.Unquote(lit.Value)
					out = append(out, s)
				}
			}
		}
		return false
	})
	return out
}

// parseUsage reads "Commands:" lines, "  NAME ARGS   DESCRIPTION" with at
// least two spaces before the description, and the paragraphs after them.
func (c *cli) parseUsage() error {
	paras := strings.Split(strings.TrimSpace(c.Usage), "\n\n")
	inCommands := false
	for _, p := range paras {
		lines := strings.Split(p, "\n")
		if strings.TrimSpace(lines[0]) == "Commands:" {
			inCommands = true
			for _, l := range lines[1:] {
				cmd, err := parseCommandLine(l)
				if err != nil {
					return err
				}
				c.Commands = append(c.Commands, cmd)
			}
			continue
		}
		if inCommands {
			c.Notes = append(c.Notes, strings.Join(strings.Fields(p), " "))
		}
	}
	if len(c.Commands) == 0 {
		return fmt.Errorf("the usage text has no \"Commands:\" list")
	}
	return nil
}

func parseCommandLine(l string) (command, error) {
	l = strings.TrimSpace(l)
	i := strings.Index(l, "  ")
	if i < 0 {
		return command{}, fmt.Errorf("usage line %q: want \"COMMAND [ARGS]  DESCRIPTION\"", l)
	}
	synopsis, desc := l[:i], strings.TrimSpace(l[i:])
	words := strings.Fields(synopsis)
	cmd := command{Name: words[0], Args: strings.Join(words[1:], " "), Description: desc}
	for j := 1; j < len(words); j++ {
		w := strings.Trim(words[j], "[]")
		switch {
		case strings.HasPrefix(w, "-"):
			f := flagSpec{Name: w}
			// "[--output DIR]": the argument is the next word, before the "]".
			if !strings.HasSuffix(words[j], "]") && j+1 < len(words) && strings.HasSuffix(words[j+1], "]") {
				f.Arg = strings.Trim(words[j+1], "[]")
				j++
			}
			if k := strings.IndexByte(f.Name, '='); k > 0 {
				f.Name, f.Arg = f.Name[:k], f.Name[k+1:]
			}
			cmd.Flags = append(cmd.Flags, f)
		case cmd.Operand == "":
			cmd.Operand = w
		}
	}
	return cmd, nil
}

// operandKind is how a shell completes a command's operand.
func (c command) OperandKind() string {
	switch {
	case c.Operand == "":
		return "none"
	case strings.TrimSuffix(c.Operand, "...") == "NAME":
		return "name"
	case strings.Contains(c.Operand, "FILE|DIR"):
		return "definition" // definition files, or directories of them
	case strings.ToLower(c.Operand) == c.Operand:
		return "words"
	}
	return "file"
}

// Words are the literal choices of an operand like "build|push".
func (c command) Words() []string {
	if c.OperandKind() != "words" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(c.Operand, "..."), "|")
}
