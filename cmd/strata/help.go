package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/strata-project/strata/cmd/strata/cli"
)

// Each command's --help and usage errors come from the command table
// (cli.Commands), from which strata(1) and the completions are made too.

// commandLine returns cmd's synopsis and one-line description.
func commandLine(cmd string) (synopsis, description string) {
	c, ok := cli.Find(cmd)
	if !ok {
		return cmd, ""
	}
	return c.Synopsis(), c.Summary
}

// newFlags returns the flag set of a command, which prints nothing itself:
// flagExit says what went wrong, and where.
func newFlags(cmd string) *flag.FlagSet {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// writeHelp prints a command's help: usage, what it does, its flags.
func writeHelp(w io.Writer, fs *flag.FlagSet) {
	synopsis, description := commandLine(fs.Name())
	fmt.Fprintf(w, "usage: strata %s\n\n%s\n", synopsis, description)
	if hasFlags(fs) {
		fmt.Fprintln(w, "\nFlags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// flagExit ends a command whose arguments did not parse: --help is
// printed on stdout and exits 0; a usage error exits 2.
func flagExit(fs *flag.FlagSet, err error, stdout, stderr io.Writer) int {
	if errors.Is(err, flag.ErrHelp) {
		writeHelp(stdout, fs)
		return 0
	}
	return usageError(fs, stderr, err.Error())
}

// usageError reports wrong arguments and the command's synopsis (exit 2).
func usageError(fs *flag.FlagSet, stderr io.Writer, msg string) int {
	synopsis, _ := commandLine(fs.Name())
	fmt.Fprintf(stderr, "strata %s: %s\nusage: strata %s (see strata %s --help)\n", fs.Name(), msg, synopsis, fs.Name())
	return 2
}
