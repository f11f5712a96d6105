// Package cli is strata's command table: each command's name, operands,
// flags, one line of what it does, what it prints and how it exits. The
// CLI prints its usage and every --help from it, and packaging/docgen
// makes strata(1) and the shell completions from it, so the three cannot
// drift. It lives beside cmd/strata (a library package there can be
// imported, unlike the command itself) because it describes that command
// and nothing else.
package cli

import (
	"fmt"
	"strings"
)

// Doc is what strata(1)'s description starts with (after "strata").
const Doc = `is Strata's command-line tool: check and render container definitions
(what the generator would write), show the containers and their unit chains
as systemd runs them, start, stop and restart them, show their journal,
open a shell in them, reload systemd, and show its version.`

// Flag is one option of a command.
type Flag struct {
	Name string // "--json"
	Arg  string // "DIR" for "--output DIR", "" for a switch
}

// Command is one subcommand.
type Command struct {
	Name    string
	Flags   []Flag
	Operand string // as in the synopsis: "NAME", "[FILE|DIR...]", "build|ls|info|rm ...", ""
	Summary string // one line, no final period
	// Output and Exit are strata(1)'s account of what the command prints
	// and its exit statuses ("" when there is nothing to add).
	Output, Exit string
}

// Synopsis is the command's name, flags and operands, as in the usage.
func (c Command) Synopsis() string {
	words := []string{c.Name}
	for _, f := range c.Flags {
		if f.Arg != "" {
			words = append(words, "["+f.Name+" "+f.Arg+"]")
		} else {
			words = append(words, "["+f.Name+"]")
		}
	}
	if c.Operand != "" {
		words = append(words, c.Operand)
	}
	return strings.Join(words, " ")
}

// jobExit is how start, stop and restart exit.
const jobExit = `0 when the job is done (with --no-block: queued); 1 when it fails, with the failed units of the chain and their journal lines, or when the definition is not loaded or changed on disk since (run strata reload); 5 for a name neither defined nor known to systemd, as systemctl for an unknown unit.`

// Commands are the subcommands, in the order the usage lists them.
var Commands = []Command{
	{Name: "validate", Flags: []Flag{{Name: "--json"}}, Operand: "[FILE|DIR...]",
		Summary: "check definitions; exit 1 on any error",
		Output:  `one line per problem (file, field path, line, what is wrong), one per masked name and skipped file ("skipped: why"), then "N valid, M invalid". With --json: {"valid", "invalid", "masked", "skipped", "problems"}.`,
		Exit:    `0 when no definition has an error, 1 otherwise (a FILE|DIR that does not exist is an error).`},
	{Name: "render", Flags: []Flag{{Name: "--explain", Arg: "NAME"}, {Name: "--output", Arg: "DIR"}}, Operand: "[FILE|DIR...]",
		Summary: "print (or write) what strata-generator would write, or NAME's merged definition with each value's file:line",
		Output:  `every file the generator would write, each after a "# PATH" header (a link as "# PATH -> TARGET"); with --output DIR, the tree is written into DIR (empty or new) instead, as the generator writes /run/systemd/generator. With --explain NAME, NAME's definition after its template and drop-ins are merged, one value a line with the file and line it came from (secrets not shown). Problems go to standard error.`,
		Exit:    `1 when a definition has an error (its placeholder is still rendered).`},
	{Name: "list", Flags: []Flag{{Name: "--json"}}, Operand: "",
		Summary: "the defined containers, their state, machine and mounts",
		Output:  `a table: NAME, STATE (the container unit's, with its result when not success, or "masked"), BOOT ("yes" when a boot target wants it), MACHINE (machined's state), MOUNTS (mounted/all, while any is up), SOURCE (the definition) and NOTE: invalid, not loaded or "changed on disk: run strata reload", "restart to apply", "definition removed" for one that runs on after its file went, and "failed:" with the failed units of the chain. Then what no running container needs (strata gc releases it). With nothing defined, one line naming the search path. With --json, the same as {"containers", "orphans"}.`,
		Exit:    `0, whatever the containers' states.`},
	{Name: "status", Flags: []Flag{{Name: "--json"}}, Operand: "NAME",
		Summary: "a container's unit chain, machine and failures",
		Output:  `the definition (and its problems, "changed on disk", "restart to apply"), the machine, whether it starts at boot, then the unit chain as a tree, each unit with its state and result, mounts with what is mounted where, and under each failed unit the journal lines of its last run. With --json, the same as one object.`,
		Exit:    `as systemctl status: 0 when the container runs, 3 when it does not (stopped or failed), 4 for a name neither defined nor known to systemd.`},
	{Name: "start", Flags: []Flag{{Name: "--no-block"}}, Operand: "NAME",
		Summary: "start a container; exit 1 with the reason if it fails",
		Output:  `nothing when it starts. Without --no-block it waits for the start job, which starts the whole chain below the container.`,
		Exit:    jobExit},
	{Name: "stop", Flags: []Flag{{Name: "--no-block"}}, Operand: "NAME",
		Summary: "stop it, and wait for its layers to be released",
		Output:  `the layers that stay active because another running container needs them. A container that did not stop cleanly (killed after its stop time-out, or by a signal) is reported with its result and exits 1.`,
		Exit:    jobExit},
	{Name: "restart", Flags: []Flag{{Name: "--no-block"}}, Operand: "NAME",
		Summary: "restart it",
		Exit:    jobExit},
	{Name: "logs", Flags: []Flag{{Name: "-f"}, {Name: "--machine"}, {Name: "-n", Arg: "N"}, {Name: "--since", Arg: "TIME"}}, Operand: "NAME",
		Summary: "the journal of a container and its whole chain, every run",
		Output:  `journalctl's lines (paged on a terminal) of the container's unit and every unit of its chain as systemd has it loaded (attach services, layer, upper and root mounts, the upper and clean-up services), of the current run and the earlier ones the journal still holds: what systemd says about each, the helper's lines (an attach failure is also logged for the container) and the container's console (a plain command's output, a booted system's status lines). -f follows, -n N shows the last N lines, --since TIME starts at TIME (journalctl's syntax). With --machine, the machine's own journal instead (what its systemd logs inside), read below its root as journalctl -M NAME does: only while it runs, since the container's journal lives in it (the container unit's command line does not link it to the host's /var/log/journal unless /var/log/journal/MACHINE-ID exists there).`,
		Exit:    `journalctl's (0 when it could read the journal); 1 for --machine when the container does not run; 4 for a name neither defined nor known to systemd, as status.`},
	{Name: "shell", Operand: "NAME [COMMAND...]",
		Summary: "a shell in a running container, or COMMAND run there",
		Output:  `without COMMAND, machinectl shell NAME: root's login shell on a terminal (without a terminal, /bin/sh reading its commands from the standard input, run as COMMAND is). With COMMAND (an absolute path, then its arguments, flags included), systemd-run --machine=NAME --wait runs it inside with the standard input and output given (a terminal when strata has one, else the pipes).`,
		Exit:    `COMMAND's exit status (machinectl's for the login shell); 3 when the container is not running, with its state; 4 for a name neither defined nor known to systemd.`},
	{Name: "reload", Flags: []Flag{{Name: "--json"}}, Operand: "",
		Summary: "systemctl daemon-reload, then validate the definitions",
		Output:  `what strata validate prints, for the definitions the generator has just read.`,
		Exit:    `as strata validate; 1 when systemd cannot be reloaded.`},
	{Name: "gc", Flags: []Flag{{Name: "--dry-run"}}, Operand: "",
		Summary: "release layers and devices no running container needs",
		Output:  `with --dry-run, one line per thing it would release: "would release KIND NAME: WHY".`,
		Exit:    `1 when something could not be released.`},
	{Name: "image", Operand: "build|ls|info|rm ...",
		Summary: "RBD images (runs strata-image, the admin package)"},
	{Name: "version", Operand: "",
		Summary: "print the version"},
}

// Notes follow the command list in the usage and in strata(1).
var Notes = []string{
	`Without FILE|DIR, the search path is used: $STRATA_DEFINITION_PATH, or /etc/strata:/run/strata/definitions:/usr/lib/strata. A FILE is read as its directory would be: an instance's template and the drop-ins beside it apply.`,
	`list, status, start, stop, restart, logs, shell and reload talk to systemd on the system bus ($DBUS_SYSTEM_BUS_ADDRESS when set). Every command takes --help. Exit status: 0 ok, 1 failure, 2 usage; status and the jobs also exit as systemctl does (see each command).`,
}

// Find returns the command called name.
func Find(name string) (Command, bool) {
	for _, c := range Commands {
		if c.Name == name {
			return c, true
		}
	}
	return Command{}, false
}

// Usage is the text `strata` and `strata --help` print.
func Usage() string {
	var b strings.Builder
	b.WriteString("usage: strata COMMAND [ARGS]\n\nCommands:\n")
	width := 0
	for _, c := range Commands {
		width = max(width, len(c.Synopsis()))
	}
	for _, c := range Commands {
		fmt.Fprintf(&b, "  %-*s  %s\n", width, c.Synopsis(), c.Summary)
	}
	for _, n := range Notes {
		b.WriteString("\n" + wrap(n, 76) + "\n")
	}
	return b.String()
}

// wrap breaks text into lines of at most width characters.
func wrap(text string, width int) string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = w
			continue
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return strings.Join(append(lines, line), "\n")
}
