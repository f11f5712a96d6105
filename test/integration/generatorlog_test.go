//go:build integration

package integration

import (
	"os"
	"strings"
	"testing"

	"github.com/strata-project/strata/test/testbed"
)

// The generator's problems are found with the one command the documents
// give, `journalctl -b -t strata-generator`, on a node that is itself a
// container (no /dev/kmsg): after a daemon-reload (the journal's socket)
// and after a boot (before the journal runs).
func TestGeneratorLog(t *testing.T) {
	n := boot(t, testbed.Options{Persistent: true}) // the installed package survives the reboot
	if out, code := n.try("test", "-e", "/dev/kmsg"); code == 0 {
		t.Fatalf("the node has a /dev/kmsg: this test is about nodes without one %s", out)
	}
	n.define("broken.json", `{"comand": "/bin/true"}`)
	n.run("systemctl", "daemon-reload")
	want := `/etc/strata/broken.json:1: comand: unknown field "comand"; did you mean "command"?`
	n.waitUntil("the problem in the journal after daemon-reload", func() (bool, string) {
		out, _ := n.try("journalctl", "--no-pager", "-b", "-t", "strata-generator")
		return strings.Contains(out, want), out
	})
	if out, _ := n.try("journalctl", "--no-pager", "-b", "-t", "strata-generator", "-p", "err"); !strings.Contains(out, want) {
		t.Errorf("not logged as an error:\n%s", out)
	}
	if _, err := os.Stat(n.Path("/run/systemd/generator/strata-generator-log.service")); err == nil {
		t.Errorf("a replay unit after a daemon-reload, when the journal took the messages")
	}
	if err := n.Reboot(t.Context()); err != nil {
		t.Fatal(err)
	}
	n.waitUntil("the problem in the journal after a boot", func() (bool, string) {
		out, _ := n.try("journalctl", "--no-pager", "-b", "-t", "strata-generator")
		if strings.Contains(out, want) {
			return true, ""
		}
		replay, _ := n.try("systemctl", "status", "--no-pager", "strata-generator-log.service")
		gen, _ := n.try("ls", "/run/systemd/generator", "/run/systemd/generator/sysinit.target.wants")
		return false, out + "\n" + replay + "\n" + gen
	})
	// As an error, from the unit that replays what had nowhere to go.
	if out, _ := n.try("journalctl", "--no-pager", "-b", "-t", "strata-generator", "-p", "err", "_SYSTEMD_UNIT=strata-generator-log.service"); !strings.Contains(out, want) {
		t.Errorf("not replayed as an error by strata-generator-log.service:\n%s", out)
	}
}
