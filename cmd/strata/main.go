// Command strata is Strata's command-line tool: check and render container
// definitions (what the generator would write), show the containers and
// their unit chains as systemd runs them, start, stop and restart them,
// reload systemd, and show its version.
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
  list [--json]                          the defined containers, their state, machine and mounts
  status [--json] NAME                   a container's unit chain, machine and failures
  start [--no-block] NAME                start a container; exit 1 with the reason if it fails
  stop [--no-block] NAME                 stop it, and wait for its layers to be released
  restart [--no-block] NAME              restart it
  reload [--json]                        systemctl daemon-reload, then validate the definitions
  gc [--dry-run]                         release layers and devices no running container needs
  image build|ls|info|rm ...             RBD images (runs strata-image, the admin package)
  version                                print the version

Without FILE|DIR, the search path is used: $STRATA_DEFINITION_PATH, or
/etc/strata:/run/strata/definitions:/usr/lib/strata.

list, status, start, stop, restart and reload talk to systemd on the system
bus ($DBUS_SYSTEM_BUS_ADDRESS when set). Exit status: 0 ok, 1 failure, 2 usage.
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
	case "list":
		return list(args[1:], stdout, stderr)
	case "status":
		return status(args[1:], stdout, stderr)
	case "start", "stop", "restart":
		return job(args[0], args[1:], stdout, stderr)
	case "reload":
		return reload(args[1:], stdout, stderr)
	case "gc":
		return gc(args[1:], stdout, stderr)
	case "image":
		return image(args[1:], stderr)
	case "version", "--version":
		return printVersion(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "strata: unknown command %q\n\n%s", args[0], usage)
	return 2
}

func printVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("version")
	if rest, err := parseArgs(fs, args); err != nil {
		return flagExit(fs, err, stdout, stderr)
	} else if len(rest) > 0 {
		return usageError(fs, stderr, fmt.Sprintf("unexpected argument %q", rest[0]))
	}
	fmt.Fprintf(stdout, "strata %s\n", version)
	return 0
}
