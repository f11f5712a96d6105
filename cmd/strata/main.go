// Command strata is Strata's command-line tool: check and render container
// definitions (what the generator would write), and show its version.
package main

import (
	"fmt"
	"io"
	"os"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

const usage = `usage: strata COMMAND [ARGS]

Commands:
  validate [--json] [FILE|DIR...]        check definitions; exit 1 on any error
  render [--output DIR] [FILE|DIR...]    print (or write) what strata-generator would write
  version                                print the version

Without FILE|DIR, the search path is used: $STRATA_DEFINITION_PATH, or
/etc/strata:/run/strata/definitions:/usr/lib/strata.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "validate":
		return validate(args[1:], stdout, stderr)
	case "render":
		return render(args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "strata %s\n", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "strata: unknown command %q\n\n%s", args[0], usage)
	return 2
}
