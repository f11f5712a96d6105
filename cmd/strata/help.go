package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Each command's --help is its line of the usage text (the one list of
// commands: strata(1) and the completions are made from it too) and its
// flags.

// commandLine returns cmd's synopsis and description from the usage text.
func commandLine(cmd string) (synopsis, description string) {
	for _, l := range strings.Split(usage, "\n") {
		l = strings.TrimSpace(l)
		if w, _, _ := strings.Cut(l, " "); w != cmd {
			continue
		}
		if i := strings.Index(l, "  "); i > 0 {
			return l[:i], strings.TrimSpace(l[i:])
		}
		return l, ""
	}
	return cmd, ""
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
