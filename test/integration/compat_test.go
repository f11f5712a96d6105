//go:build integration

package integration

import (
	"os"
	"strings"
	"testing"

	"github.com/strata-project/strata/test/testbed"
)

// nodeSystemd is the systemd of each release of the matrix
// ($STRATA_TESTBED_SUITE; test/testbed/README.md).
var nodeSystemd = map[string]string{"bullseye": "247", "bookworm": "252", "trixie": "257"}

// encrypted keeps its cephx key in an encrypted credential
// (LoadCredentialEncrypted=, systemd 250).
const encrypted = `{"command": "/usr/lib/systemd/systemd", "systemd": true, "mount": {"kind": "overlay", "overlay": {"lower": [
  {"kind": "attach", "attach": {"fs_type": "squashfs", "attach": {"kind": "rbd", "rbd": {"pool": "rbd", "image": "image1",
    "monitors": ["127.0.0.1"], "options": {"name": "node", "credential": "/etc/credstore.encrypted/ceph-key.cred"}}}}}]}}}
`

// The node runs the release's systemd, the generator and strata validate
// read that version, and a definition that needs a newer systemd is
// refused with the feature and the version it needs (a placeholder), while
// on a systemd that has it the setting is written.
func TestNodeSystemdVersion(t *testing.T) {
	suite := os.Getenv("STRATA_TESTBED_SUITE")
	if suite == "" {
		suite = "bookworm"
	}
	want, ok := nodeSystemd[suite]
	if !ok {
		t.Fatalf("STRATA_TESTBED_SUITE=%s: the matrix knows %v", suite, nodeSystemd)
	}
	n := boot(t, testbed.Options{})
	if v := n.run("systemctl", "--version"); !strings.HasPrefix(v, "systemd "+want+" ") {
		t.Fatalf("%s runs %q, want systemd %s", suite, strings.SplitN(v, "\n", 2)[0], want)
	}
	n.define("enc.json", encrypted)
	n.run("systemctl", "daemon-reload")
	generated := n.run("sh", "-c", "cat /run/systemd/generator/systemd-nspawn@enc.service.d/*.conf /run/systemd/generator/strata-attach@*.service.d/*.conf 2>/dev/null; true")
	validate, code := n.try("strata", "validate", "/etc/strata")
	refusal := "encrypted credentials (LoadCredentialEncrypted=) need systemd 250 or newer; this node runs systemd " + want
	if want < "250" {
		if code != 1 || !strings.Contains(validate, "mount.overlay.lower[0].attach.attach.rbd.options.credential: "+refusal) {
			t.Errorf("strata validate on systemd %s: exit %d\n%s", want, code, validate)
		}
		if !strings.Contains(generated, "strata-helper fail") || !strings.Contains(generated, refusal) || strings.Contains(generated, "LoadCredentialEncrypted=strata") {
			t.Errorf("the generator on systemd %s wrote:\n%s", want, generated)
		}
		status, _ := n.try("systemctl", "status", "--no-pager", "--lines=0", "systemd-nspawn@enc.service")
		if !strings.Contains(status, "invalid definition") {
			t.Errorf("systemctl status does not say the definition is invalid:\n%s", status)
		}
		return
	}
	if code != 0 {
		t.Errorf("strata validate on systemd %s: exit %d\n%s", want, code, validate)
	}
	if !strings.Contains(generated, "LoadCredentialEncrypted=strata-rbd-key:/etc/credstore.encrypted/ceph-key.cred") {
		t.Errorf("the generator on systemd %s wrote:\n%s", want, generated)
	}
	// systemd itself holds the setting (one it does not know is ignored:
	// no property; systemctl shows this one as "[unprintable]").
	attach := n.run("sh", "-c", "cd /run/systemd/generator && ls -d strata-attach@*.service.d | sed 's/.d$//'")
	if v := n.unitProp(strings.TrimSpace(attach), "LoadCredentialEncrypted"); strings.TrimSpace(v) == "" {
		t.Errorf("systemd %s does not hold LoadCredentialEncrypted: %q", want, v)
	}
}
