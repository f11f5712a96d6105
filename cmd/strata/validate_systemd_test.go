package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// validate refuses what the node's systemd cannot run, like the generator;
// $STRATA_SYSTEMD_VERSION names another node's version.
func TestValidateRefusesNewerThanNodeSystemd(t *testing.T) {
	dir := t.TempDir()
	def := `{"command": "/bin/true", "mount": {"kind": "attach", "attach": {"fs_type": "squashfs", "attach": {"kind": "rbd",
		"rbd": {"pool": "rbd", "image": "img", "monitors": ["127.0.0.1"], "options": {"name": "node", "credential": "/etc/credstore.encrypted/k.cred"}}}}}}`
	os.WriteFile(filepath.Join(dir, "enc.json"), []byte(def), 0o600)
	for version, want := range map[string]string{
		"249": "enc.json: mount.attach.attach.rbd.options.credential: encrypted credentials (LoadCredentialEncrypted=) need systemd 250 or newer; this node runs systemd 249",
		"250": "1 valid, 0 invalid",
	} {
		t.Setenv("STRATA_SYSTEMD_VERSION", version)
		var out, errOut bytes.Buffer
		code := run([]string{"validate", dir}, &out, &errOut)
		if !strings.Contains(out.String(), want) || (code == 0) != (version == "250") {
			t.Errorf("systemd %s: exit %d, got:\n%s%s\nwant: %s", version, code, out.String(), errOut.String(), want)
		}
	}
	t.Setenv("STRATA_SYSTEMD_VERSION", "new")
	var out, errOut bytes.Buffer
	run([]string{"validate", dir}, &out, &errOut)
	if !strings.Contains(errOut.String(), `$STRATA_SYSTEMD_VERSION="new": want a systemd version such as 252`) {
		t.Errorf("a bad version is not reported: %q", errOut.String())
	}
}
