//go:build integration

package integration

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/strata-project/strata/test/testbed"
)

// quickstartStep is a fenced block of docs/QUICKSTART.md and the mark on
// the line before it:
//
//	<!-- quickstart: run -->          shell commands, one a line, run as written
//	<!-- quickstart: skip REASON -->  not run here, and why
//	<!-- definition: NAME.json -->    written to /etc/strata/NAME.json
//	<!-- validate: NAME.json -->      the output `strata validate` must print
type quickstartStep struct {
	line       int
	kind, arg  string
	lang, body string
}

var quickstartMarkRE = regexp.MustCompile(`^<!--\s*(quickstart|definition|validate):\s*(\S+)\s*(.*?)\s*-->$`)

func quickstartSteps(t *testing.T) []quickstartStep {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "QUICKSTART.md"))
	if err != nil {
		t.Fatal(err)
	}
	var steps []quickstartStep
	var mark *quickstartStep
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if m := quickstartMarkRE.FindStringSubmatch(l); m != nil {
			mark = &quickstartStep{line: i + 1, kind: m[1], arg: m[2]}
			if m[1] == "quickstart" {
				mark.kind, mark.arg = m[2], m[3]
			}
			continue
		}
		if !strings.HasPrefix(l, "```") {
			continue
		}
		lang := strings.TrimPrefix(l, "```")
		var body []string
		for i++; i < len(lines) && lines[i] != "```"; i++ {
			body = append(body, lines[i])
		}
		if mark == nil {
			if lang == "sh" {
				t.Errorf("QUICKSTART.md:%d: a sh block without a mark: <!-- quickstart: run --> or <!-- quickstart: skip REASON -->", i+1)
			}
			continue
		}
		mark.lang, mark.body = lang, strings.Join(body, "\n")
		if mark.kind == "skip" && mark.arg == "" {
			t.Errorf("QUICKSTART.md:%d: a skipped block says why", mark.line)
		}
		steps = append(steps, *mark)
		mark = nil
	}
	return steps
}

// TestQuickstart walks docs/QUICKSTART.md on a node under a real systemd:
// its definition, its commands as written (in order, each must succeed) and
// the outputs it shows, so that the quick start cannot drift from what
// Strata does. The node has the package installed and the image at the
// path the page uses (the two steps it cannot run: no network).
func TestQuickstart(t *testing.T) {
	steps := quickstartSteps(t)
	n := boot(t, testbed.Options{Binds: []testbed.Bind{{Host: image, Guest: "/srv/images/demo.sqfs", ReadOnly: true}}})
	ran := 0
	for _, s := range steps {
		switch s.kind {
		case "definition":
			n.define(s.arg, s.body+"\n")
		case "validate":
			out, code := n.try("strata", "validate", "/etc/strata/"+s.arg)
			if code != 0 || out != strings.TrimSpace(s.body) {
				t.Errorf("QUICKSTART.md:%d: strata validate /etc/strata/%s exited %d and printed:\n%s\nthe page shows:\n%s", s.line, s.arg, code, out, s.body)
			}
		case "run":
			for _, cmd := range strings.Split(s.body, "\n") {
				out, code := n.typeInto(cmd, quickstartTyped[command(cmd)])
				t.Logf("# %s\n%s", cmd, out)
				if code != 0 {
					t.Fatalf("QUICKSTART.md:%d: %q exited %d:\n%s", s.line, cmd, code, out)
				}
				quickstartCheck(t, n, s.line, cmd, out)
				ran++
			}
		case "skip":
		default:
			t.Errorf("QUICKSTART.md:%d: unknown mark %q", s.line, s.kind)
		}
	}
	if ran < 8 {
		t.Errorf("ran %d commands of the page, want every one of steps 4-7 (at least 8)", ran)
	}
	n.waitInactive(n.strataUnits()...)
	n.assertReleased()
}

// quickstartTyped is what the reader types into an interactive command,
// line by line: a command, then Ctrl-D as the page says (the byte a
// terminal sends).
var quickstartTyped = map[string][]string{
	"machinectl shell demo": {"cat /proc/1/comm\n", "\x04"},
}

// typing gives lines one at a time, as a person types them: a second
// apart, and the input stays open for a while after the last one (a closed
// input ends machinectl's session at once, before the output comes).
func typing(lines []string) io.Reader {
	if len(lines) == 0 {
		return strings.NewReader("")
	}
	r, w := io.Pipe()
	go func() {
		for _, l := range lines {
			time.Sleep(time.Second)
			w.Write([]byte(l))
		}
		time.Sleep(5 * time.Second)
		w.Close()
	}()
	return r
}

// command is a page's command line without its comment.
func command(line string) string {
	return strings.TrimSpace(strings.SplitN(line, "#", 2)[0])
}

// typeInto runs a command line with input typed on its stdin (none:
// empty), bounded, and returns its output and exit code.
func (n *node) typeInto(cmd string, input []string) (string, int) {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := n.Exec(ctx, testbed.Command{Args: []string{"sh", "-c", cmd}, Stdin: typing(input)})
	if err != nil {
		n.t.Fatalf("%q: %v", cmd, err)
	}
	return strings.TrimSpace(res.Stdout + res.Stderr), res.ExitCode
}

// quickstartCheck holds the output of a command to what the page says of
// it.
func quickstartCheck(t *testing.T, n *node, line int, cmd, out string) {
	t.Helper()
	want := map[string][]string{
		"systemctl daemon-reload": nil, // checked below: the units step 5 names
		"strata status demo":      {"systemd-nspawn@demo.service", "var-lib-machines-demo.mount", "run-strata-upper-demo.mount", "strata-upper-demo.service"},
		"machinectl list":         {"demo"},
		"machinectl shell demo":   {"systemd"}, // what cat /proc/1/comm printed inside
		"systemd-run --machine=demo --wait --pipe cat /etc/os-release": {"Debian GNU/Linux 12 (bookworm)"},
	}
	for _, w := range want[command(cmd)] {
		if !strings.Contains(out, w) {
			t.Errorf("QUICKSTART.md:%d: %q printed:\n%s\nwithout %q", line, cmd, out, w)
		}
	}
	switch {
	case strings.HasPrefix(cmd, "systemctl daemon-reload"):
		gen := n.run("sh", "-c", "cd /run/systemd/generator && ls -d strata-attach@loop_demo.sqfs_*.service.d run-strata-layers-*.mount run-strata-upper-demo.mount strata-upper-demo.service var-lib-machines-demo.mount systemd-nspawn@demo.service.d")
		t.Logf("generated: %s", gen)
	case strings.HasPrefix(cmd, "strata start demo"):
		if s, _ := n.try("systemctl", "is-active", "systemd-nspawn@demo.service"); s != "active" {
			t.Errorf("after strata start: systemd-nspawn@demo.service is %s", s)
		}
		// The helper says what it attached in words, not "(read-only true)".
		log, _ := n.try("journalctl", "--no-pager", "-b", "-u", "strata-attach@*")
		if !regexp.MustCompile(`(attached|reused) /srv/images/demo\.sqfs: /dev/loop\d+, read-only`).MatchString(log) {
			t.Errorf("the attach unit's journal lacks the attach line:\n%s", log)
		}
	case strings.HasPrefix(cmd, "strata stop demo"):
		if s, _ := n.try("systemctl", "is-active", "systemd-nspawn@demo.service"); s != "inactive" {
			t.Errorf("after strata stop: systemd-nspawn@demo.service is %s", s)
		}
	}
}

// What the other pages claim about systemd around the quick start, checked
// on a node: TROUBLESHOOTING's "No image for machine" (a start before the
// reload runs systemd's own template), OPERATIONS' enabling (machinectl
// enable refuses a stopped container, systemctl enable works) and
// strata-generator(8)'s note that list-dependencies does not expand the
// chain without --all.
func TestQuickstartClaims(t *testing.T) {
	n := boot(t, testbed.Options{})
	n.define("demo.json", demo)

	if out, code := n.try("systemctl", "start", "systemd-nspawn@demo.service"); code == 0 {
		t.Fatalf("started before the reload: %s", out)
	}
	n.waitUntil("the stock template's message", func() (bool, string) {
		out, _ := n.try("journalctl", "--no-pager", "-b", "-u", "systemd-nspawn@demo.service")
		return strings.Contains(out, "No image for machine 'demo'."), out
	})
	n.run("systemctl", "reset-failed", "systemd-nspawn@demo.service")
	n.run("strata", "reload")

	if out, code := n.try("machinectl", "enable", "demo"); code == 0 {
		t.Errorf("machinectl enable of a stopped container worked (the docs say it fails): %s", out)
	}
	n.run("systemctl", "enable", "systemd-nspawn@demo")
	if out, _ := n.try("systemctl", "is-enabled", "systemd-nspawn@demo"); out != "enabled" {
		t.Errorf("systemctl enable systemd-nspawn@demo: is-enabled says %q", out)
	}
	n.run("systemctl", "disable", "systemd-nspawn@demo")

	plain, _ := n.try("systemctl", "list-dependencies", "--plain", "--no-pager", "systemd-nspawn@demo.service")
	all, _ := n.try("systemctl", "list-dependencies", "--all", "--plain", "--no-pager", "systemd-nspawn@demo.service")
	if !strings.Contains(plain, "var-lib-machines-demo.mount") || strings.Contains(plain, "strata-attach@") || !strings.Contains(all, "strata-attach@") {
		t.Errorf("list-dependencies does not behave as strata-generator(8) says:\nwithout --all:\n%s\nwith --all:\n%s", plain, all)
	}
}
