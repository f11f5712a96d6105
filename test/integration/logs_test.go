//go:build integration

package integration

// strata logs and strata shell under a real systemd: the journal of a
// container's whole chain across runs, and commands run inside it.

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-project/strata/test/testbed"
)

// syncBuffer is a buffer written by one goroutine and read by another.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// follow starts strata with args inside the node, ended at the test's end,
// and returns what it has printed so far.
func (n *node) follow(args ...string) func() string {
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Exec(ctx, testbed.Command{Args: append([]string{"strata"}, args...), Stdout: &out, Stderr: &out})
	}()
	n.t.Cleanup(func() { cancel(); <-done })
	return out.String
}

// count returns how many lines of out contain s.
func count(out, s string) int {
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}

// strata logs shows the chain (the helper's attach lines, systemd's lines
// about the container) of every run, -n bounds it, --machine reads the
// journal inside, and an unknown name exits as strata status.
func TestCliLogs(t *testing.T) {
	n := boot(t, testbed.Options{})
	n.define("demo.json", demo)
	n.define("missing.json", missing)
	n.ok("reload", n.cli("reload"))

	n.ok("start", n.cli("start", "demo"))
	n.ok("stop", n.cli("stop", "demo"))
	n.ok("start again", n.cli("start", "demo"))
	out := n.ok("logs", n.cli("logs", "demo")).stdout
	t.Logf("strata logs demo:\n%s", out)
	// Each run: the helper attaches the image (or reuses the device of
	// another testbed on this host), systemd starts the container, whose
	// console says what it boots.
	if c := count(out, "attached /srv/images/base.sqfs: /dev/loop") + count(out, "reused /srv/images/base.sqfs: /dev/loop"); c != 2 {
		t.Errorf("logs demo: the helper's attach line %d times, want once per run (2):\n%s", c, out)
	}
	if count(out, "systemd[1]: Started systemd-nspawn@demo.service") != 2 || count(out, "systemd-nspawn[") == 0 || count(out, "Welcome to Debian") != 2 {
		t.Errorf("logs demo: want systemd's start line and the container's console of both runs:\n%s", out)
	}
	// From the host, through the testbed's bus: its journal, read below
	// its root.
	if host := n.ok("logs from the host", n.hostCLI("logs", "demo")).stdout; count(host, "Welcome to Debian") != 2 {
		t.Errorf("logs demo from the host: want the container's console of both runs:\n%s", host)
	}
	if last := n.ok("logs -n 3", n.cli("logs", "-n", "3", "demo")).stdout; len(strings.Split(strings.TrimSpace(last), "\n")) != 3 {
		t.Errorf("logs -n 3: want 3 lines:\n%s", last)
	}
	if inside := n.ok("logs --machine", n.cli("logs", "--machine", "demo")).stdout; !strings.Contains(inside, "systemd-journald") {
		t.Errorf("logs --machine: want the journal inside the container (journald's own lines):\n%s", inside)
	}

	// -f follows: a restart's lines arrive while it runs.
	followed := n.follow("logs", "-f", "-n", "0", "demo")
	n.ok("restart", n.cli("restart", "demo"))
	n.waitUntil("strata logs -f shows the restarted container's console", func() (bool, string) {
		out := followed()
		return strings.Contains(out, "Welcome to Debian"), out
	})

	// A failing attach, twice: each run's failure in the logs, once.
	for range 2 {
		if r := n.cli("start", "missing"); r.code != 1 {
			t.Fatalf("failing start: %s", r)
		}
	}
	out = n.ok("logs missing", n.cli("logs", "missing")).stdout
	if c := count(out, "loop-attach failed for loop file /srv/images/missing.sqfs"); c != 2 {
		t.Errorf("logs missing: the attach failure %d times, want once per run (2):\n%s", c, out)
	}
	// The one entry is the container's too: its own journal (what
	// systemctl status shows) says why it did not start.
	if c := count(n.run("journalctl", "--no-pager", "-u", "systemd-nspawn@missing.service"), "loop-attach failed for loop file /srv/images/missing.sqfs"); c != 2 {
		t.Errorf("the container's journal has the attach failure %d times, want once per run (2)", c)
	}
	// The failure line names the image once (the layer), not again in
	// the loop device's error.
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "loop-attach failed") && strings.Count(l, "/srv/images/missing.sqfs") != 1 {
			t.Errorf("the failure names the image more than once: %s", l)
		}
	}

	n.ok("stop", n.cli("stop", "demo"))
	if r := n.cli("logs", "--machine", "demo"); r.code != 1 || !strings.Contains(r.stderr, "demo is not running") {
		t.Errorf("logs --machine of a stopped container: %s", r)
	}
	if r := n.cli("logs", "nosuch"); r.code != 4 || !strings.Contains(r.stderr, `no container "nosuch"`) {
		t.Errorf("logs of an unknown container: %s, want exit 4 as strata status", r)
	}
}

// strata shell runs a command inside the running container (its effect
// seen in the container's root from the node, its exit status passed on),
// and refuses a container that does not run.
func TestCliShell(t *testing.T) {
	n := boot(t, testbed.Options{})
	n.define("demo.json", demo)
	n.ok("reload", n.cli("reload"))
	if r := n.cli("shell", "demo", "/bin/true"); r.code != 3 || !strings.Contains(r.stderr, "demo is not running (inactive (dead)): start it with strata start demo") {
		t.Errorf("shell before start: %s, want exit 3 and the state", r)
	}

	n.ok("start", n.cli("start", "demo"))
	n.ok("shell", n.cli("shell", "demo", "/bin/sh", "-c", "echo inside > /from-strata-shell"))
	if got := n.run("cat", "/var/lib/machines/demo/from-strata-shell"); got != "inside" {
		t.Errorf("the file the command wrote inside holds %q, want inside", got)
	}
	if r := n.cli("shell", "demo", "/bin/cat", "/from-strata-shell"); r.code != 0 || r.stdout != "inside\n" {
		t.Errorf("shell cat: %s, want the file's line on stdout", r)
	}
	// Without a command and without a terminal: a shell reading its
	// commands from the pipe (machinectl shell needs a terminal).
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := n.Exec(ctx, testbed.Command{Args: []string{"strata", "shell", "demo"}, Stdin: strings.NewReader("echo login > /from-login-shell; exit\n")})
	if err != nil || res.ExitCode != 0 {
		t.Errorf("strata shell demo, commands on stdin: %v, exit %d\n%s%s", err, res.ExitCode, res.Stdout, res.Stderr)
	}
	if got, _ := n.try("cat", "/var/lib/machines/demo/from-login-shell"); got != "login" {
		t.Errorf("the login shell's file holds %q, want login", got)
	}
	if r := n.cli("shell", "demo", "/bin/sh", "-c", "exit 7"); r.code != 7 {
		t.Errorf("shell exit 7: %s, want the command's exit status", r)
	}
	if r := n.cli("shell", "nosuch", "/bin/true"); r.code != 4 || !strings.Contains(r.stderr, `no container "nosuch"`) {
		t.Errorf("shell of an unknown container: %s, want exit 4", r)
	}

	n.ok("stop", n.cli("stop", "demo"))
	if r := n.cli("shell", "demo", "/bin/true"); r.code != 3 || !strings.Contains(r.stderr, "demo is not running") {
		t.Errorf("shell after stop: %s, want exit 3", r)
	}
}
