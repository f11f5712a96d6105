//go:build ceph && pacific && cgo

package main

import (
	"regexp"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-project/strata/definition"
	cephtest "github.com/strata-project/strata/test/ceph"
)

// An OCI layout into RBD from the command line, with --verity: the
// definition printed names the image and snapshot with the nodes'
// read-only user and pins the root hash, and info shows where the image
// came from and the same root hash.
func TestCLIOCI(t *testing.T) {
	c := cephtest.Start(t)
	lay, dig := testLayout(t, v1.Config{Cmd: []string{"/bin/sleep", "infinity"}}, map[string]string{"bin/sleep": "x"})
	conn := []string{"--conf", c.Conf, "--id", c.Build.ID, "--keyring", c.Build.Keyring}
	code, out, errOut := runCmd(append([]string{"build", "oci:" + lay + ":1.0", "--pool", "rbd", "--image", "app",
		"--snapshot", "v1", "--progress", "none", "--print-definition", "--verity", "--mon", c.MonHost}, conn...)...)
	if code != 0 {
		t.Fatalf("build: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"built rbd/app@v1", "digest " + dig.String(), "definition for /etc/strata/app.json"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	m := regexp.MustCompile(`verity: root hash ([0-9a-f]{64})`).FindStringSubmatch(errOut)
	if m == nil {
		t.Fatalf("no root hash on stderr:\n%s", errOut)
	}
	def, problems := definition.Parse("app.json", []byte(out))
	if def == nil {
		t.Fatalf("%v\n%s", problems, out)
	}
	r := def.Container.Mount.Overlay.Lower[0].Attach.Attach.RBD
	if r.Pool != "rbd" || r.Image != "app" || r.Snapshot != "v1" || r.Options.Name != "node" || def.Container.Command != "/bin/sleep infinity" {
		t.Errorf("definition:\n%s", out)
	}
	if v := def.Container.Mount.Overlay.Lower[0].Attach.Verity; v == nil || v.RootHash != m[1] {
		t.Errorf("definition's verity %+v, want root hash %s", v, m[1])
	}
	code, out, errOut = runCmd(append([]string{"info", "rbd/app@v1"}, conn...)...)
	for _, want := range []string{"built from:  oci:" + lay + ":1.0", "oci digest:  " + dig.String() + " (linux/", "root hash " + m[1]} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("info: exit %d, %q lacks %q (%s)", code, out, want, errOut)
		}
	}
}
