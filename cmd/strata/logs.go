package main

// logs and shell: the commands that hand the terminal to a systemd tool
// (journalctl, machinectl, systemd-run) once the client has found what to
// show or where to go. The tools do the paging, following and terminal
// handling users know from them.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/strata-project/strata/client"
)

// Tools the commands run; variables so that tests can point them elsewhere.
var (
	machinectl = "machinectl"
	systemdRun = "systemd-run"
)

func logs(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("logs")
	o := client.LogsOptions{Lines: -1}
	fs.BoolVar(&o.Follow, "f", false, "keep showing new lines as they come (journalctl --follow)")
	fs.Func("n", "show the last `N` lines only", func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("want a number of lines, 0 or more")
		}
		o.Lines = n
		return nil
	})
	fs.StringVar(&o.Since, "since", "", "show lines from `TIME` on, in journalctl's syntax (\"-1h\", \"today\", \"2026-12-03 17:00\")")
	machine := fs.Bool("machine", false, "show the machine's own journal instead (what its system logs inside); only while it runs")
	name, code, ok := oneName(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	return withContainer(name, stderr, func(ctx context.Context, cl *client.Client, _ defined, ct *client.Container) int {
		argv := cl.LogsCommand(ct.Chain, o)
		if *machine {
			if ct.Machine == nil {
				fmt.Fprintf(stderr, "strata logs: %s is not running, and its machine's journal is read from the running machine; without --machine, strata logs shows its units' lines of every run\n", name)
				return 1
			}
			argv = cl.MachineLogsCommand(ct.Machine, o)
		}
		return runTool(argv, stdout, stderr)
	})
}

func shell(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("shell")
	// Flags come before NAME only: what follows NAME is the command
	// line to run inside, flags included.
	if err := fs.Parse(args); err != nil {
		return flagExit(fs, err, stdout, stderr)
	}
	if fs.NArg() == 0 {
		return usageError(fs, stderr, "want a container name")
	}
	name, command := fs.Arg(0), fs.Args()[1:]
	if code, ok := checkName(fs, name, stderr); !ok {
		return code
	}
	return withContainer(name, stderr, func(ctx context.Context, cl *client.Client, _ defined, ct *client.Container) int {
		if ct.Machine == nil || ct.Machine.State != "running" {
			fmt.Fprintf(stderr, "strata shell: %s is not running (%s): start it with strata start %s\n", name, inWords(ct), name)
			return exitNotRunning
		}
		return runTool(shellCommand(name, command, isTerminal(os.Stdin)), stdout, stderr)
	})
}

// shellCommand is the command line that opens a shell in machine name, or
// runs command there: machinectl shell for the login shell on a terminal
// (utmp, the user's environment); systemd-run for a command, which passes
// its exit status on, with a terminal only when there is one to give it
// (a script's pipes stay pipes). Without a terminal the shell is /bin/sh
// reading its commands from the pipe: machinectl shell would hang up at
// the pipe's end before the shell has read it.
func shellCommand(name string, command []string, terminal bool) []string {
	switch {
	case len(command) == 0 && terminal:
		return []string{machinectl, "shell", name}
	case len(command) == 0:
		command = []string{"/bin/sh"}
	}
	io := "--pipe"
	if terminal {
		io = "--pty"
	}
	argv := []string{systemdRun, "--machine=" + name, "--quiet", "--wait", "--collect", "--service-type=exec", io, "--"}
	return append(argv, command...)
}

// inWords says what a container's unit is doing.
func inWords(ct *client.Container) string {
	u := ct.Unit()
	if ct.Machine != nil {
		return "machine " + ct.Machine.State
	}
	return u.ActiveState + " (" + u.SubState + ")"
}

// withContainer runs f with a client and the container called name, once
// it is known (knownContainer); otherwise it returns knownContainer's code.
func withContainer(name string, stderr io.Writer, f func(context.Context, *client.Client, defined, *client.Container) int) int {
	d := lookup(name)
	return withClient(stderr, func(ctx context.Context, cl *client.Client) int {
		ct, code := knownContainer(ctx, cl, d, stderr)
		if ct == nil {
			return code
		}
		return f(ctx, cl, d, ct)
	})
}

// knownContainer reads d's container, or says that the name is unknown
// (exit 4, as systemctl status): neither defined nor known to systemd as
// Strata's, a typo most likely. (Defined but not loaded, or loaded but no
// longer defined, is worth showing: status says which.)
func knownContainer(ctx context.Context, cl *client.Client, d defined, stderr io.Writer) (*client.Container, int) {
	ct, err := cl.Container(ctx, d.Name)
	if err != nil {
		fmt.Fprintf(stderr, "strata: %v\n", err)
		return nil, 1
	}
	if !d.Masked && d.Source == "" && !ct.Unit().HasStrataDropIn() {
		fmt.Fprintln(stderr, noSuch(d.Name))
		return nil, exitStatusNoSuch
	}
	return ct, 0
}

// runTool runs argv on the CLI's own terminal (or the writers it was
// given) and returns its exit status. The tool is not tied to the
// command's context: Ctrl-C reaches it from the terminal, and it ends as it
// does under systemctl or journalctl (withClient keeps strata itself
// alive to pass the status on).
func runTool(argv []string, stdout, stderr io.Writer) int {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case !errors.As(err, &ee):
		fmt.Fprintf(stderr, "strata: %s: %v\n", argv[0], err)
		return 1
	case ee.ExitCode() >= 0:
		return ee.ExitCode()
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()) // as a shell reports it
	}
	return 1
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
