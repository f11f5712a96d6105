//go:build integration

package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-project/strata/test/testbed"
)

// defineFile writes a file under /etc/strata (drop-ins: NAME.d/, strata.d/).
func (n *node) defineFile(rel, body string) {
	n.t.Helper()
	full := filepath.Join(n.defs, rel)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		n.t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(body), 0o600); err != nil {
		n.t.Fatal(err)
	}
}

// guestFile writes a file in the guest (root's, 0600), for the search
// directories that are not /etc/strata.
func (n *node) guestFile(path, body string) {
	n.t.Helper()
	n.run("sh", "-c", `umask 077 && mkdir -p "$(dirname "$1")" && printf '%s' "$2" > "$1"`, "sh", path, body)
}

// initEnv is the environment of a running container's init.
func (n *node) initEnv(machine string) string {
	n.t.Helper()
	return n.run("systemd-run", "--machine="+machine, "--wait", "--pipe", "--quiet", "/bin/sh", "-c", "tr '\\0' '\\n' < /proc/1/environ")
}

// Drop-ins across the search path take effect at daemon-reload: a file name
// in a higher directory overrides the same name in a lower one, all names
// apply in order, and /dev/null masks a name, a site-wide one too.
func TestDropInPrecedenceAndMasking(t *testing.T) {
	n := boot(t, testbed.Options{})
	n.define("c.json", demo)
	n.defineFile("strata.d/10-site.json", `{"environment": {"FROM": "site", "SITE": "yes"}}`)
	n.guestFile("/usr/lib/strata/c.d/20-env.yaml", "environment: {FROM: usr, USR: kept}\n")
	n.guestFile("/run/strata/definitions/c.d/20-env.yaml", "environment: {FROM: run}\n")
	n.run("systemctl", "daemon-reload")
	exec := n.unitProp("systemd-nspawn@c.service", "ExecStart")
	for _, want := range []string{"--setenv=FROM=run", "--setenv=SITE=yes"} {
		if !strings.Contains(exec, want) {
			t.Errorf("ExecStart lacks %s: %s", want, exec)
		}
	}
	if strings.Contains(exec, "USR=kept") {
		t.Errorf("/usr/lib's 20-env.yaml applied although /run has one of that name: %s", exec)
	}
	n.run("systemctl", "start", "systemd-nspawn@c.service")
	if env := n.initEnv("c"); !strings.Contains(env, "FROM=run") || !strings.Contains(env, "SITE=yes") {
		t.Errorf("the container's init lacks FROM=run, SITE=yes:\n%s", env)
	}
	if explain := n.run("strata", "render", "--explain", "c"); !strings.Contains(explain, `environment.FROM = "run"  # /run/strata/definitions/c.d/20-env.yaml:1`) {
		t.Errorf("strata render --explain c:\n%s", explain)
	}
	n.run("systemctl", "stop", "systemd-nspawn@c.service")
	n.waitInactive(n.strataUnits()...)

	// Masking /run's 20-env.yaml in /etc masks the name: /usr/lib's does not come back.
	n.run("mkdir", "-p", "/etc/strata/c.d")
	n.run("ln", "-s", "/dev/null", "/etc/strata/c.d/20-env.yaml")
	n.run("systemctl", "daemon-reload")
	if exec := n.unitProp("systemd-nspawn@c.service", "ExecStart"); !strings.Contains(exec, "--setenv=FROM=site") || strings.Contains(exec, "USR=kept") {
		t.Errorf("after masking 20-env.yaml: %s", exec)
	}
	// A site-wide drop-in masked for this container only.
	n.run("ln", "-s", "/dev/null", "/etc/strata/c.d/10-site.json")
	n.run("systemctl", "daemon-reload")
	if exec := n.unitProp("systemd-nspawn@c.service", "ExecStart"); strings.Contains(exec, "--setenv=") {
		t.Errorf("after masking every drop-in: %s", exec)
	}
	n.run("systemctl", "start", "systemd-nspawn@c.service")
	if env := n.initEnv("c"); strings.Contains(env, "FROM=") || strings.Contains(env, "SITE=") {
		t.Errorf("masked drop-ins still reach the container:\n%s", env)
	}
	n.run("systemctl", "stop", "systemd-nspawn@c.service")
	n.waitInactive(n.strataUnits()...)
	n.assertReleased()
}

// Two instances of one template run side by side, each with its instance
// name substituted, sharing the template's image.
func TestTemplateInstances(t *testing.T) {
	n := boot(t, testbed.Options{})
	n.define("web@.json", strings.Replace(demo, `"systemd": true,`, `"systemd": true, "environment": {"INST": "web-${instance}"},`, 1))
	n.define("web@a.json", "{}")
	n.define("web@b.yaml", "environment: {EXTRA: b-only}\n")
	n.run("systemctl", "daemon-reload")
	n.run("systemctl", "start", "systemd-nspawn@web-a.service", "systemd-nspawn@web-b.service")
	machines := n.run("machinectl", "list", "--no-legend")
	for _, m := range []string{"web-a", "web-b"} {
		if !strings.Contains(machines, m) {
			t.Errorf("machine %s is not registered:\n%s", m, machines)
		}
	}
	if env := n.initEnv("web-a"); !strings.Contains(env, "INST=web-a") || strings.Contains(env, "EXTRA=") {
		t.Errorf("web-a's init:\n%s", env)
	}
	if env := n.initEnv("web-b"); !strings.Contains(env, "INST=web-b") || !strings.Contains(env, "EXTRA=b-only") {
		t.Errorf("web-b's init:\n%s", env)
	}
	// The host's loop devices are shared with other testbeds on the same
	// image: count this node's layer mounts instead.
	if layers := n.run("findmnt", "--raw", "--noheadings", "--output=TARGET", "--types=squashfs"); len(strings.Fields(layers)) != 1 {
		t.Errorf("want one layer mount shared by both instances, got %q", layers)
	}
	n.run("systemctl", "stop", "systemd-nspawn@web-a.service", "systemd-nspawn@web-b.service")
	n.waitInactive(n.strataUnits()...)
	n.assertReleased()
}
