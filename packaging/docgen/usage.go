package main

import (
	"strings"

	clitable "github.com/strata-project/strata/cmd/strata/cli"
)

// strata(1)'s synopsis, description, command list and notes, and the shell
// completions, come from the CLI's command table (cmd/strata/cli), the one
// the binary prints its usage and --help from: no copy that could drift.

// cli is what strata(1) and the completions say about the CLI.
type cli struct {
	Doc      string    // "is Strata's command-line tool: ..." (after "strata")
	Commands []command // in usage order
	Notes    []string  // the paragraphs after the command list
}

// command is one command of the table, with its operand as completions
// see it.
type command struct {
	Name        string
	Args        string // as in the synopsis: "[--json] [FILE|DIR...]"
	Description string
	Output      string // what it prints, "" when nothing is said
	Exit        string // its exit statuses, likewise
	Flags       []flagSpec
	Operand     string // NAME, FILE|DIR..., a list of words (a|b), or ""
}

type flagSpec struct {
	Name string // "--json"
	Arg  string // "DIR" for "--output DIR", "" for a switch
}

// readCLI returns the CLI's command table. root is unused: the table is
// compiled in, and a test (TestHelp in cmd/strata) keeps the binary to it.
func readCLI(root string) (*cli, error) {
	return fromTable(clitable.Commands, clitable.Notes, clitable.Doc), nil
}

func fromTable(cmds []clitable.Command, notes []string, doc string) *cli {
	c := &cli{Doc: doc, Notes: notes}
	for _, t := range cmds {
		cmd := command{Name: t.Name, Description: t.Summary, Output: t.Output, Exit: t.Exit,
			Args: strings.TrimSpace(strings.TrimPrefix(t.Synopsis(), t.Name))}
		for _, f := range t.Flags {
			cmd.Flags = append(cmd.Flags, flagSpec{Name: f.Name, Arg: f.Arg})
		}
		if words := strings.Fields(t.Operand); len(words) > 0 {
			cmd.Operand = strings.Trim(words[0], "[]")
		}
		c.Commands = append(c.Commands, cmd)
	}
	return c
}

// operandKind is how a shell completes a command's operand.
func (c command) OperandKind() string {
	switch {
	case c.Operand == "":
		return "none"
	case strings.TrimSuffix(c.Operand, "...") == "NAME", strings.HasPrefix(c.Operand, "NAME "): // NAME [COMMAND...] too
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
