// Command strata is Strata's command-line tool. Its commands, their flags,
// what they print and how they exit are the table of package cli
// (cmd/strata/cli), from which strata(1) is made too.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/strata-project/strata/cmd/strata/cli"
	"github.com/strata-project/strata/helpers/contract"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

// commands run each command of the table (cli.Commands) with its arguments.
var commands = map[string]func(args []string, stdout, stderr io.Writer) int{
	"validate": validate,
	"render":   render,
	"list":     list,
	"status":   status,
	"start":    func(args []string, stdout, stderr io.Writer) int { return job("start", args, stdout, stderr) },
	"stop":     func(args []string, stdout, stderr io.Writer) int { return job("stop", args, stdout, stderr) },
	"restart":  func(args []string, stdout, stderr io.Writer) int { return job("restart", args, stdout, stderr) },
	"logs":     logs,
	"shell":    shell,
	"reload":   reload,
	"gc":       gc,
	"image":    func(args []string, _, stderr io.Writer) int { return image(args, stderr) },
	"version":  printVersion,
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, cli.Usage())
		return 2
	}
	switch args[0] {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, cli.Usage())
		return 0
	case "--version":
		return printVersion(args[1:], stdout, stderr)
	}
	if f, ok := commands[args[0]]; ok {
		return f(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "strata: unknown command %q\n\n%s", args[0], cli.Usage())
	return 2
}

func printVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("version")
	if rest, err := contract.ParseFlags(fs, args); err != nil {
		return flagExit(fs, err, stdout, stderr)
	} else if len(rest) > 0 {
		return usageError(fs, stderr, fmt.Sprintf("unexpected argument %q", rest[0]))
	}
	fmt.Fprintf(stdout, "strata %s\n", version)
	return 0
}
